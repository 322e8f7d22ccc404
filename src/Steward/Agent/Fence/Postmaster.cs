using System.Globalization;
using System.Runtime.InteropServices;

namespace Steward.Agent.Fence;

/// <summary>
/// Kills a postmaster and every process of its server at once (SIGKILL), by PID, with nothing in between that could be
/// slow or throw: no PostgreSQL program, no SQL, no data-directory I/O — only <c>/proc</c> and <c>kill(2)</c>.
/// A PID is only killed while <c>/proc/&lt;pid&gt;</c> still shows the same process (command name and start time), so a
/// PID reused by an unrelated process is never hit.
/// </summary>
internal static partial class Postmaster
{
    /// <summary>
    /// How long the walsenders outlive the rest of the server when the fence fires (see <see cref="Kill"/>). Taken from the
    /// lease margin (at least 1 s, see <see cref="LeaseKeeper.Margin"/>), which is what separates the fence's deadline
    /// from the earliest moment etcd lets another member take the leader key.
    /// </summary>
    public static readonly TimeSpan WalDrain = TimeSpan.FromMilliseconds(250);

    private const int SigKill = 9;
    private const int SigStop = 19;

    /// <summary>Identifies one process across PID reuse: its PID and its start time (clock ticks since boot).</summary>
    public readonly record struct Identity(int Pid, long StartTicks)
    {
        public override string ToString() => $"{Pid}@{StartTicks.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>The identity of <paramref name="pid"/> when it is a live PostgreSQL process, else null.</summary>
    public static Identity? Identify(int pid)
    {
        if (pid <= 0 || ReadStat(pid) is not { } stat || !stat.Command.StartsWith("postgres", StringComparison.Ordinal))
        {
            return null;
        }

        return new Identity(pid, stat.StartTicks);
    }

    /// <summary>
    /// Stops the postmaster (SIGSTOP: it forks nothing and restarts nothing from here on) and SIGKILLs each of its children
    /// — PostgreSQL puts every child in a session of its own, so no process-group signal reaches them, and a backend that
    /// outlived its postmaster could still commit — then SIGKILLs the postmaster.
    /// <para>
    /// With a <paramref name="drain"/>, the physical walsenders (and the WAL writer) are spared that long after every
    /// other process is dead: nothing can commit any more, and the replicas receive the WAL of every commit already
    /// acknowledged, so the member that takes over has it. The caller keeps the drain well inside the lease margin.
    /// </para>
    /// Returns false when the process was already gone (or is no longer the one identified). Never throws.
    /// </summary>
    public static bool Kill(Identity target, TimeSpan drain = default)
    {
        try
        {
            if (ReadStat(target.Pid) is not { } stat || stat.StartTicks != target.StartTicks)
            {
                return false;
            }

            // Children first, while /proc still lists them under the postmaster (after its death they are re-parented),
            // with the postmaster stopped so the list cannot grow meanwhile.
            _ = KillSyscall(target.Pid, SigStop);
            var spared = new List<int>();
            foreach (var child in Children(target.Pid))
            {
                if (drain > TimeSpan.Zero && ShipsWal(child))
                {
                    spared.Add(child);
                }
                else
                {
                    _ = KillSyscall(child, SigKill);
                }
            }

            if (spared.Count > 0)
            {
                Thread.Sleep(drain);
            }

            foreach (var child in spared)
            {
                _ = KillSyscall(child, SigKill);
            }

            if (stat.ProcessGroup == target.Pid)
            {
                _ = KillSyscall(-target.Pid, SigKill);
            }

            _ = KillSyscall(target.Pid, SigKill);

            // A child forked just before the stop may not have been listed yet: look once more.
            foreach (var late in Children(target.Pid))
            {
                _ = KillSyscall(late, SigKill);
            }

            return true;
        }
#pragma warning disable CA1031 // the fence must never throw: whatever /proc says, the kill has been attempted
        catch (Exception)
#pragma warning restore CA1031
        {
            _ = KillSyscall(target.Pid, SigKill);
            return true;
        }
    }

    /// <summary>
    /// A physical walsender that is streaming, or the WAL writer: processes that only move WAL already written, never
    /// commit anything. Told apart by the title PostgreSQL gives them (<c>postgres: walsender USER HOST streaming LSN</c>).
    /// </summary>
    private static bool ShipsWal(int pid)
    {
        try
        {
            var title = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/cmdline").Replace('\0', ' ');
            return title.StartsWith("postgres: walwriter", StringComparison.Ordinal)
                || (title.StartsWith("postgres: walsender ", StringComparison.Ordinal) && title.Contains(" streaming ", StringComparison.Ordinal));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>True while the identified process exists (a zombie counts as gone: it runs no code).</summary>
    public static bool IsAlive(Identity target) => ReadStat(target.Pid) is { } stat && stat.StartTicks == target.StartTicks && stat.State != 'Z';

    /// <summary>The PID on the first line of <c>postmaster.pid</c>, or null. Reads the data directory: call it only after every known PID was killed.</summary>
    public static int? PidFromFile(string dataDir)
    {
        try
        {
            using var reader = new StreamReader(Path.Combine(dataDir, "postmaster.pid"));
            return int.TryParse(reader.ReadLine(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0 ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private readonly record struct Stat(string Command, char State, int ProcessGroup, long StartTicks);

    private static Stat? ReadStat(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
        // priority nice num_threads itrealvalue starttime …; comm may hold spaces and parentheses: cut at the last ')'.
        var open = text.IndexOf('(', StringComparison.Ordinal);
        var close = text.LastIndexOf(')');
        if (open < 0 || close < open)
        {
            return null;
        }

        var fields = text[(close + 2)..].Split(' ');
        if (fields.Length < 20
            || !int.TryParse(fields[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out var group)
            || !long.TryParse(fields[19], NumberStyles.Integer, CultureInfo.InvariantCulture, out var start))
        {
            return null;
        }

        return new Stat(text[(open + 1)..close], fields[0][0], group, start);
    }

    private static List<int> Children(int pid)
    {
        var children = new List<int>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task"))
            {
                foreach (var word in File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (int.TryParse(word, NumberStyles.None, CultureInfo.InvariantCulture, out var child))
                    {
                        children.Add(child);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return children;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillSyscall(int pid, int signal);
}
