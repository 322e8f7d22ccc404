using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Steward.Agent.Fence;

/// <summary>
/// <c>steward fence-supervisor --data-dir DIR</c>: the out-of-process half of the fence, started by the agent as its
/// child with a pipe on stdin. It does one thing: when it is armed and the lease deadline it was given passes without a
/// newer one, it kills the postmaster. The agent sends it one line per change:
/// <list type="bullet">
/// <item><c>arm &lt;deadline-ns&gt; &lt;pid&gt; &lt;start-ticks&gt;</c> — armed; kill this postmaster (pid 0: the one
/// <c>postmaster.pid</c> names) at the monotonic instant deadline-ns (CLOCK_MONOTONIC, shared by every process);</item>
/// <item><c>disarm</c>; <c>bye</c> — the agent is exiting with PostgreSQL stopped or a replica.</item>
/// </list>
/// End of input (the agent died: kill -9, OOM) keeps the deadline: an armed fence still fires at it, then exits; a disarmed
/// one exits at once. A frozen agent (SIGSTOP) sends nothing, so the deadline passes and the fence fires. The supervisor
/// does no other work, loads no configuration and ignores SIGINT/SIGTERM/SIGHUP (only its agent ends it).
/// </summary>
internal static class FenceSupervisor
{
    public const string Verb = "fence-supervisor";

    private static readonly object Gate = new();
    private static bool _armed;
    private static long _deadlineNs;
    private static Postmaster.Identity? _target;
    private static bool _endOfInput;

    public static int Run(string[] args)
    {
        var dataDir = args.Length == 3 && args[1] == "--data-dir" ? args[2] : null;
        if (dataDir is null)
        {
            Console.Error.WriteLine($"usage: steward {Verb} --data-dir DIR (started by steward node; not for operators)");
            return 2;
        }

        // Terminal and service-manager signals are for the agent; the agent ends this process by closing the pipe.
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => c.Cancel = true);
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);
        using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c => c.Cancel = true);

        var reader = new Thread(ReadCommands) { IsBackground = true, Name = "fence-input" };
        reader.Start();
        Say("INFO", $"fence supervisor for {dataDir} running (agent pid {Environment.GetEnvironmentVariable("STEWARD_FENCE_AGENT") ?? "?"})");

        lock (Gate)
        {
            while (true)
            {
                if (!_armed)
                {
                    if (_endOfInput)
                    {
                        return 0;
                    }

                    Monitor.Wait(Gate);
                    continue;
                }

                var left = _deadlineNs == 0 ? (_endOfInput ? 0 : long.MaxValue) : _deadlineNs - NowNs();
                if (left > 0)
                {
                    Monitor.Wait(Gate, left == long.MaxValue ? Timeout.Infinite : (int)Math.Min(int.MaxValue, Math.Max(1, left / 1_000_000)));
                    continue;
                }

                Fire(dataDir, _endOfInput ? "the agent is gone and its lease deadline passed" : "the lease deadline passed without renewal (the agent is frozen or cannot renew)");
                _armed = false;
            }
        }
    }

    private static void Fire(string dataDir, string why)
    {
        var killed = _target is { } target && Postmaster.Kill(target, Postmaster.WalDrain);
        var what = killed ? $"killed postmaster {_target!.Value.Pid} and its processes" : "no armed postmaster alive";

        // Only after the known PID is dead: postmaster.pid may name a newer postmaster (restarted meanwhile).
        if (Postmaster.PidFromFile(dataDir) is { } pid && pid != _target?.Pid && Postmaster.Identify(pid) is { } current && Postmaster.Kill(current))
        {
            what += $"; killed postmaster {pid} named in postmaster.pid";
        }

        Say("CRITICAL", $"fence: {why}: {what}, so it takes no writes the cluster may lose");
    }

    private static void ReadCommands()
    {
        try
        {
            string? line;
            while ((line = Console.In.ReadLine()) is not null)
            {
                var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                lock (Gate)
                {
                    switch (words)
                    {
                        case ["arm", var deadline, var pid, var start]
                            when long.TryParse(deadline, NumberStyles.Integer, CultureInfo.InvariantCulture, out var ns)
                                 && int.TryParse(pid, NumberStyles.Integer, CultureInfo.InvariantCulture, out var p)
                                 && long.TryParse(start, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s):
                            _armed = true;
                            _deadlineNs = ns;
                            _target = p > 0 ? new Postmaster.Identity(p, s) : null;
                            break;
                        case ["disarm"]:
                            _armed = false;
                            break;
                        case ["bye"]:
                            _armed = false;
                            _endOfInput = true;
                            break;
                        default:
                            Say("ERROR", $"fence: ignoring a malformed command from the agent: '{line}'");
                            break;
                    }

                    Monitor.PulseAll(Gate);
                }
            }
        }
        catch (IOException)
        {
        }

        lock (Gate)
        {
            _endOfInput = true;
            Monitor.PulseAll(Gate);
        }
    }

    /// <summary>CLOCK_MONOTONIC in nanoseconds: the clock the agent's deadlines are measured on (shared by all processes).</summary>
    internal static long NowNs() => ToNs(Stopwatch.GetTimestamp(), Stopwatch.Frequency);

    internal static long ToNs(long timestamp, long frequency) =>
        frequency == 1_000_000_000 ? timestamp : (long)(timestamp * (1_000_000_000.0 / frequency));

    private static void Say(string level, string message) =>
        Console.Error.WriteLine($"{DateTime.Now.ToString("yyyy-MM-dd HH:mm:ss,fff", CultureInfo.InvariantCulture)} {level}: {message}");
}
