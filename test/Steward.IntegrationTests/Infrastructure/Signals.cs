using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>Signals to one process, by PID (tests never kill by name), and what /proc says about it.</summary>
internal static partial class Signals
{
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;
    public const int SIGQUIT = 3;
    public const int SIGSTOP = 19;
    public const int SIGCONT = 18;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    public static bool Send(int pid, int signal) => Kill(pid, signal) == 0;

    /// <summary>
    /// The process exists and is not a zombie (an orphaned postmaster killed by a fence may stay a zombie until
    /// something reaps it: it takes no connection and holds no lock, so for the tests it is gone).
    /// </summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var state = StateOf(File.ReadAllText($"/proc/{pid}/stat"));
            return state is not 'Z' and not 'X' and not 'x';
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// SIGSTOP takes effect as each thread is next scheduled: waits (up to <paramref name="timeout"/>) until the kernel
    /// reports every thread of <paramref name="pid"/> stopped, so nothing sent afterwards can still be served.
    /// </summary>
    public static void WaitUntilStopped(int pid, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout && !AllThreadsStopped(pid))
        {
            Thread.Sleep(5);
        }
    }

    private static bool AllThreadsStopped(int pid)
    {
        try
        {
            return Directory.GetDirectories($"/proc/{pid}/task").All(t => StateOf(File.ReadAllText(Path.Combine(t, "stat"))) is 'T' or 't');
        }
        catch (IOException)
        {
            return true;
        }
    }

    // /proc/<pid>/stat: "pid (comm) S ..."; comm may hold spaces and parentheses, the state follows the last ')'.
    private static char StateOf(string stat) => stat[(stat.LastIndexOf(')') + 2)..].TrimStart()[0];
}
