using System.Diagnostics;
using Steward.Agent.Fence;
using Steward.IntegrationTests.Infrastructure;

namespace Steward.IntegrationTests.Agent;

/// <summary>
/// The fence's supervisor as a real process (<c>steward fence-supervisor</c>) against a stand-in postmaster: a copy of
/// bash named <c>postgres</c> with two children, one of them in a session of its own (as PostgreSQL's backends are).
/// The supervisor is driven through its stdin exactly as the agent drives it.
/// </summary>
public sealed class FenceSupervisorTests : IDisposable
{
    private readonly TempDir _dir = new("steward-fence");
    private readonly List<Process> _started = [];

    [Fact]
    public async Task Kills_the_postmaster_and_every_child_at_the_deadline_once_the_agent_is_gone_not_before()
    {
        var (postmaster, children) = await StartFakePostmasterAsync();
        using var supervisor = StartSupervisor();
        var armedAt = Stopwatch.StartNew();
        Send(supervisor, Arm(TimeSpan.FromSeconds(2), postmaster));
        supervisor.StandardInput.Close(); // the agent died (kill -9): end of input, the deadline stands

        await Poll.UntilAsync(() => Task.FromResult(!Alive(postmaster)), TimeSpan.FromSeconds(20), "the postmaster killed by the supervisor");
        Assert.True(armedAt.Elapsed >= TimeSpan.FromSeconds(1.9), $"killed {armedAt.Elapsed.TotalSeconds:0.00} s after arming, before its 2 s deadline");
        await Poll.UntilAsync(() => Task.FromResult(children.All(c => !Alive(c))), TimeSpan.FromSeconds(5), "every child of the postmaster killed");
        Assert.True(supervisor.WaitForExit(TimeSpan.FromSeconds(10)), "the supervisor exits after firing once its agent is gone");
    }

    [Fact]
    public async Task A_frozen_agent_sends_nothing_and_the_deadline_fires()
    {
        var (postmaster, _) = await StartFakePostmasterAsync();
        using var supervisor = StartSupervisor();
        Send(supervisor, Arm(TimeSpan.FromSeconds(1), postmaster));

        // stdin stays open, as with a SIGSTOPped agent
        await Poll.UntilAsync(() => Task.FromResult(!Alive(postmaster)), TimeSpan.FromSeconds(20), "the postmaster killed while the agent is silent");
        Assert.False(supervisor.HasExited, "the supervisor stays for an agent that may resume");
        supervisor.StandardInput.Close();
    }

    [Fact]
    public async Task Renewed_deadlines_keep_the_postmaster_alive_and_disarm_lets_it_live()
    {
        var (postmaster, _) = await StartFakePostmasterAsync();
        using var supervisor = StartSupervisor();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(3))
        {
            Send(supervisor, Arm(TimeSpan.FromSeconds(1), postmaster)); // each renewal moves the deadline a second ahead
            await Task.Delay(200);
            Assert.True(Alive(postmaster), $"killed at {clock.Elapsed.TotalSeconds:0.0} s although every deadline was renewed in time");
        }

        Send(supervisor, "disarm");
        Send(supervisor, "bye");
        Assert.True(supervisor.WaitForExit(TimeSpan.FromSeconds(10)), "a disarmed supervisor exits when told");
        Assert.True(Alive(postmaster), "a disarmed fence killed the postmaster");
    }

    [Fact]
    public async Task A_disarmed_supervisor_whose_agent_dies_exits_and_kills_nothing()
    {
        var (postmaster, _) = await StartFakePostmasterAsync();
        using var supervisor = StartSupervisor();
        Send(supervisor, Arm(TimeSpan.FromSeconds(1), postmaster));
        Send(supervisor, "disarm");
        supervisor.StandardInput.Close();
        Assert.True(supervisor.WaitForExit(TimeSpan.FromSeconds(10)), "the supervisor exits at end of input when disarmed");
        Assert.True(Alive(postmaster));
    }

    [Fact]
    public async Task A_reused_pid_is_never_killed()
    {
        var (postmaster, _) = await StartFakePostmasterAsync();
        using var supervisor = StartSupervisor();
        var identity = Postmaster.Identify(postmaster.Id) ?? throw new InvalidOperationException("no identity");
        // The armed identity names the PID with another start time: the process there now is not the one armed.
        Send(supervisor, $"arm {FenceSupervisor.NowNs() + 300_000_000} {identity.Pid} {identity.StartTicks + 1}");
        supervisor.StandardInput.Close();
        Assert.True(supervisor.WaitForExit(TimeSpan.FromSeconds(15)), "the supervisor exits after its deadline");
        Assert.True(Alive(postmaster), "a process that merely reuses the armed PID was killed");
    }

    private static string Arm(TimeSpan fromNow, Process postmaster)
    {
        var identity = Postmaster.Identify(postmaster.Id) ?? throw new InvalidOperationException($"{postmaster.Id} is not identified as a postgres process");
        return $"arm {FenceSupervisor.NowNs() + (long)fromNow.TotalMilliseconds * 1_000_000} {identity.Pid} {identity.StartTicks}";
    }

    private static void Send(Process supervisor, string line)
    {
        supervisor.StandardInput.WriteLine(line);
        supervisor.StandardInput.Flush();
    }

    private static bool Alive(Process p)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{p.Id}/stat");
            return !stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z') && !p.HasExited;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private Process StartSupervisor()
    {
        var psi = StewardProcess.StartInfo();
        psi.RedirectStandardInput = true;
        psi.UseShellExecute = false;
        psi.ArgumentList.Add(FenceSupervisor.Verb);
        psi.ArgumentList.Add("--data-dir");
        psi.ArgumentList.Add(_dir.Path);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start the supervisor");
        _started.Add(p);
        return p;
    }

    /// <summary>A process named postgres (a copy of bash) with two children, one in a session of its own.</summary>
    private async Task<(Process Postmaster, List<Process> Children)> StartFakePostmasterAsync()
    {
        var exe = Path.Combine(_dir.Path, "postgres");
        if (!File.Exists(exe))
        {
            File.Copy("/bin/bash", exe);
        }

        var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("sleep 600 & setsid sleep 600 & wait");
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start the stand-in postmaster");
        _started.Add(p);
        var children = new List<Process>();
        await Poll.UntilAsync(() =>
        {
            children = Directory.EnumerateDirectories($"/proc/{p.Id}/task")
                .SelectMany(t => File.ReadAllText(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Select(int.Parse).Select(Process.GetProcessById).ToList();
            return Task.FromResult(children.Count == 2);
        }, TimeSpan.FromSeconds(10), "the stand-in postmaster's two children");
        _started.AddRange(children);
        return (p, children);
    }

    public void Dispose()
    {
        foreach (var p in _started)
        {
            try
            {
                if (!p.HasExited)
                {
                    p.Kill();
                }
            }
            catch (InvalidOperationException)
            {
            }

            p.Dispose();
        }

        _dir.Dispose();
    }
}
