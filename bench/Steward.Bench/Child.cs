using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Steward.Bench;

/// <summary>A process the bench started; stopped by its PID only, its output appended to a log file.</summary>
internal sealed partial class Child : IDisposable
{
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    private readonly Process process;
    private readonly StreamWriter log;
    private readonly Lock gate = new();

    private Child(Process process, StreamWriter log)
    {
        this.process = process;
        this.log = log;
    }

    public int Pid => process.Id;

    public bool HasExited => process.HasExited;

    public static Child Start(string file, IEnumerable<string> args, string logPath)
    {
        var info = new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        var child = new Child(process, log);
        process.OutputDataReceived += (_, e) => child.Append(e.Data);
        process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Runs a program to its end and returns its exit code and output; on cancellation it is killed by PID.</summary>
    public static async Task<(int Code, string Output)> RunAsync(string file, IEnumerable<string> args, CancellationToken ct)
    {
        var info = new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            Kill(process.Id, SIGKILL);
            await process.WaitForExitAsync(CancellationToken.None);
            throw;
        }
        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>Sends <paramref name="signal"/>, waits up to <paramref name="grace"/>, then SIGKILL.</summary>
    public void Stop(int signal, TimeSpan grace)
    {
        if (!process.HasExited)
        {
            Kill(process.Id, signal);
            if (!process.WaitForExit(grace))
            {
                Kill(process.Id, SIGKILL);
                process.WaitForExit();
            }
        }
        process.WaitForExit();
    }

    public void Dispose()
    {
        process.Dispose();
        lock (gate)
        {
            log.Dispose();
        }
    }

    /// <summary>CPU seconds (user + system) the process used so far, from /proc/PID/stat.</summary>
    public double CpuSeconds()
    {
        var stat = File.ReadAllText($"/proc/{process.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (gate)
        {
            log.WriteLine(line);
        }
    }

    public static bool Kill(int pid, int signal) => KillNative(pid, signal) == 0;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int KillNative(int pid, int signal);
}
