using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Steward.Campaign;

/// <summary>Signals by PID, the effective user, and running the system's network tools.</summary>
internal static partial class Os
{
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;
    public const int SIGSTOP = 19;
    public const int SIGCONT = 18;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    public static bool IsRoot => GetEuid() == 0;

    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0;

    /// <summary>The process exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].TrimStart()[0];
            return state is not 'Z' and not 'X' and not 'x';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Waits until every thread of <paramref name="pid"/> is stopped (SIGSTOP lands as each is next scheduled).</summary>
    public static void WaitUntilStopped(int pid, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            try
            {
                if (Directory.GetDirectories($"/proc/{pid}/task").All(t =>
                    {
                        var stat = File.ReadAllText(Path.Combine(t, "stat"));
                        return stat[(stat.LastIndexOf(')') + 2)..].TrimStart()[0] is 'T' or 't';
                    }))
                {
                    return;
                }
            }
            catch (IOException)
            {
                return;
            }

            Thread.Sleep(5);
        }
    }

    /// <summary>Runs a program to its end; throws with its output when it fails (unless <paramref name="check"/> is false).</summary>
    public static string Run(string file, params string[] args) => Run(true, file, args);

    public static string Run(bool check, string file, params string[] args)
    {
        var info = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (check && p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited with {p.ExitCode}: {stderr.Trim()}");
        }

        return stdout.Result;
    }

    /// <summary>The dotnet host that runs us (to run steward.dll), else the one on PATH.</summary>
    public static string Dotnet()
    {
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "dotnet")).FirstOrDefault(File.Exists) ?? "dotnet";
    }
}

/// <summary>
/// A process the campaign started inside a namespace; its output appended to a log file by the shell that execs it
/// (no pipe to us, so nothing it leaves behind can hold one). Its PID is recorded in the run's PID file for the
/// script's cleanup trap, and it is stopped by PID only.
/// </summary>
internal sealed class Child
{
    private readonly Process _process;

    private Child(Process process, string name)
    {
        _process = process;
        Name = name;
    }

    public string Name { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;

    public static Child Start(string name, string netns, string logPath, string pidFile, IReadOnlyList<string> command)
    {
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        foreach (var a in new[] { "-c", "exec \"$@\" >>\"$CAMPAIGN_LOG\" 2>&1 </dev/null", "sh", "ip", "netns", "exec", netns })
        {
            info.ArgumentList.Add(a);
        }

        foreach (var a in command)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["CAMPAIGN_LOG"] = logPath;
        foreach (var v in new[] { "PGPASSWORD", "PGUSER", "PGHOST", "PGPORT", "PGDATABASE" })
        {
            info.Environment.Remove(v);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {name}");
        File.AppendAllText(pidFile, $"{process.Id}\n");
        return new Child(process, name);
    }

    public void Signal(int signal)
    {
        if (!_process.HasExited)
        {
            Os.Signal(_process.Id, signal);
        }
    }

    /// <summary>SIGKILL (after SIGCONT, in case it is frozen) and wait for the exit.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            Os.Signal(_process.Id, Os.SIGCONT);
            Os.Signal(_process.Id, Os.SIGKILL);
            _process.WaitForExit(10_000);
        }
    }

    /// <summary>SIGTERM, then SIGKILL after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return;
        }

        Os.Signal(_process.Id, Os.SIGTERM);
        Os.Signal(_process.Id, Os.SIGCONT);
        using var cts = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Kill();
        }
    }
}
