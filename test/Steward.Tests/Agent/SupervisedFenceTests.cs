using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Time.Testing;
using Steward.Agent.Fence;
using Steward.Testing;

namespace Steward.Tests.Agent;

/// <summary>
/// The in-process half of the fence (no supervisor child): what Arm, Disarm, Extend and FireNow decide, against stand-in
/// postmasters — copies of bash named <c>postgres</c> with a child — started and killed by PID here.
/// </summary>
public sealed class SupervisedFenceTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("steward-fence-unit");
    private readonly List<Process> _started = [];
    private readonly List<string> _lines = [];

    [Fact]
    public void Unarmed_it_fires_at_nothing_even_when_postmaster_pid_names_a_live_postmaster()
    {
        var postmaster = StartFakePostmaster();
        WritePidFile(postmaster.Id);
        using var fence = Fence();
        Assert.False(fence.Armed);
        Assert.False(fence.Start(), "an unsupervised fence starts no supervisor");
        fence.Extend(FakeTime().GetTimestamp());

        Assert.False(fence.FireNow("deadline"));
        Assert.True(Alive(postmaster));
        Assert.Empty(_lines);
    }

    [Fact]
    public async Task Armed_with_a_pid_it_kills_that_postmaster()
    {
        var postmaster = StartFakePostmaster();
        using var fence = Fence();
        fence.Arm(postmaster.Id);
        Assert.True(fence.Armed);
        Assert.Equal($"Information: fence armed: postmaster {postmaster.Id} is killed if the leader lease deadline passes without renewal", Assert.Single(_lines));

        Assert.True(fence.FireNow("lease deadline passed"));
        await WaitGoneAsync(postmaster);
        Assert.Equal("Critical: fence: lease deadline passed: killed the postmaster and its processes, so it takes no writes the cluster may lose", _lines[^1]);
    }

    [Fact]
    public async Task Armed_without_a_pid_it_kills_the_postmaster_that_postmaster_pid_names()
    {
        var postmaster = StartFakePostmaster();
        WritePidFile(postmaster.Id);
        using var fence = Fence();
        fence.Arm(null);
        Assert.True(fence.Armed);
        Assert.Equal("Information: fence armed: postmaster the one postmaster.pid names is killed if the leader lease deadline passes without renewal", Assert.Single(_lines));

        Assert.True(fence.FireNow("deadline"));
        await WaitGoneAsync(postmaster);
    }

    [Fact]
    public async Task Armed_with_one_pid_it_also_kills_another_postmaster_that_postmaster_pid_names()
    {
        var armed = StartFakePostmaster();
        var other = StartFakePostmaster();
        WritePidFile(other.Id);
        using var fence = Fence();
        fence.Arm(armed.Id);

        Assert.True(fence.FireNow("deadline"));
        await WaitGoneAsync(armed);
        await WaitGoneAsync(other);
    }

    [Fact]
    public async Task Armed_with_a_pid_already_gone_it_still_kills_the_one_postmaster_pid_names()
    {
        var gone = StartFakePostmaster();
        var other = StartFakePostmaster();
        using var fence = Fence();
        fence.Arm(gone.Id);
        gone.Kill();
        await WaitGoneAsync(gone);
        WritePidFile(other.Id);

        Assert.True(fence.FireNow("deadline"), "the postmaster.pid one was killed");
        await WaitGoneAsync(other);
    }

    [Fact]
    public void Armed_with_nothing_to_kill_it_reports_that_no_postmaster_was_running()
    {
        var gone = StartFakePostmaster();
        gone.Kill();
        Assert.True(gone.WaitForExit(TimeSpan.FromSeconds(10)));
        using var fence = Fence();
        fence.Arm(null);
        Assert.False(fence.FireNow("deadline"), "no postmaster.pid");

        WritePidFile(gone.Id);
        Assert.False(fence.FireNow("deadline"), "postmaster.pid names a process that is gone");
        WritePidFile(Environment.ProcessId);
        Assert.False(fence.FireNow("deadline"), "postmaster.pid names a process that is not a postmaster");
        Assert.Equal("Critical: fence: deadline: no postmaster was running, so it takes no writes the cluster may lose", _lines[^1]);
    }

    [Fact]
    public void Armed_with_the_pid_postmaster_pid_names_it_kills_it_once_and_reports_it_killed()
    {
        var postmaster = StartFakePostmaster();
        WritePidFile(postmaster.Id);
        using var fence = Fence();
        fence.Arm(postmaster.Id);
        Assert.True(fence.FireNow("deadline"));
        Assert.True(postmaster.WaitForExit(TimeSpan.FromSeconds(10)));
        Assert.False(fence.FireNow("again"), "nothing left to kill");
    }

    [Fact]
    public void Disarm_stops_the_fence_and_arming_again_logs_only_a_change_of_target()
    {
        var postmaster = StartFakePostmaster();
        WritePidFile(postmaster.Id);
        using var fence = Fence();
        fence.Disarm();
        Assert.Empty(_lines); // disarming a disarmed fence says nothing

        fence.Arm(postmaster.Id);
        fence.Arm(postmaster.Id);
        Assert.Single(_lines); // the same target again: nothing new
        fence.Arm(null);
        Assert.Equal(2, _lines.Count);
        Assert.Contains("the one postmaster.pid names", _lines[^1], StringComparison.Ordinal);
        fence.Arm(null);
        Assert.Equal(2, _lines.Count);

        fence.Disarm();
        Assert.False(fence.Armed);
        Assert.Equal("Information: fence disarmed: PostgreSQL is not a primary and the leader key is not held", _lines[^1]);
        fence.Disarm();
        Assert.Equal(3, _lines.Count);
        fence.Extend(FakeTime().GetTimestamp());
        Assert.False(fence.FireNow("deadline"));
        Assert.True(Alive(postmaster), "a disarmed fence killed the postmaster");

        fence.Arm(postmaster.Id); // armed again after a disarm: logged again
        Assert.Equal(4, _lines.Count);
        Assert.True(fence.Armed);
        fence.Extend(FakeTime().GetTimestamp());

        // Unsupervised: none of this started a supervisor process; the only children here are the stand-ins.
        Assert.Empty(Children(Environment.ProcessId).Except(_started.Select(p => p.Id)));
        fence.Disarm(); // a supervisor started by mistake is told to exit when the fence is disposed
        fence.Dispose();
        fence.Dispose();
    }

    [Fact]
    public void Arming_with_a_pid_that_is_no_postmaster_falls_back_to_postmaster_pid()
    {
        var postmaster = StartFakePostmaster();
        using var fence = Fence();
        fence.Arm(Environment.ProcessId); // not a postgres process: no identity
        Assert.Contains("the one postmaster.pid names", Assert.Single(_lines), StringComparison.Ordinal);
        fence.Arm(null); // the same (no) target: nothing new
        Assert.Single(_lines);
        WritePidFile(postmaster.Id);
        Assert.True(fence.FireNow("deadline"));
        Assert.True(postmaster.WaitForExit(TimeSpan.FromSeconds(10)));
    }

    private static FakeTimeProvider FakeTime() => new(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));

    private SupervisedFence Fence()
    {
        var log = new CapturingLoggerFactory((level, _, text) =>
        {
            lock (_lines)
            {
                _lines.Add($"{level}: {text}");
            }
        }).CreateLogger("fence");
        return new SupervisedFence(_dir.FullName, FakeTime(), log, supervised: false);
    }

    private void WritePidFile(int pid) =>
        File.WriteAllText(Path.Combine(_dir.FullName, "postmaster.pid"), $"{pid.ToString(CultureInfo.InvariantCulture)}\n{_dir.FullName}\n");

    private static bool Alive(Process p) => !p.HasExited;

    private static async Task WaitGoneAsync(Process p)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await p.WaitForExitAsync(cts.Token);
    }

    /// <summary>A process named postgres (a copy of bash) with a child, as a postmaster with one backend.</summary>
    private Process StartFakePostmaster()
    {
        var exe = Path.Combine(_dir.FullName, "postgres");
        if (!File.Exists(exe))
        {
            File.Copy("/bin/bash", exe);
        }

        var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("sleep 600 & wait");
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start the stand-in postmaster");
        _started.Add(p);
        var clock = Stopwatch.StartNew();
        while (Postmaster.Identify(p.Id) is null || Children(p.Id).Count == 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the stand-in postmaster did not start its child");
            Thread.Sleep(10);
        }

        foreach (var child in Children(p.Id))
        {
            _started.Add(Process.GetProcessById(child));
        }

        return p;
    }

    private static List<int> Children(int pid)
    {
        try
        {
            return [.. Directory.EnumerateDirectories($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task")
                .SelectMany(t => File.ReadAllText(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Select(c => int.Parse(c, CultureInfo.InvariantCulture))];
        }
        catch (IOException)
        {
            return [];
        }
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

        _dir.Delete(recursive: true);
    }
}
