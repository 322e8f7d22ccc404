using System.Diagnostics;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>Runs the real <c>steward</c> program (built next to the tests) as a separate process.</summary>
internal static class StewardProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "steward.dll");

    /// <summary>
    /// <c>STEWARD_TEST_BINARY</c>: an executable to run instead of <c>dotnet steward.dll</c>, e.g. the native AOT build
    /// (<c>scripts/package.sh</c>, bench/footprint), so the same tests check the binary that ships.
    /// </summary>
    public static string? Binary => Environment.GetEnvironmentVariable("STEWARD_TEST_BINARY") is { Length: > 0 } b ? b : null;

    /// <summary>The program and first arguments that run steward: the native binary, or <c>dotnet steward.dll</c>.</summary>
    public static ProcessStartInfo StartInfo(string? binary = null)
    {
        binary ??= Binary;
        var psi = new ProcessStartInfo(binary ?? "dotnet");
        if (binary is null)
        {
            psi.ArgumentList.Add(Dll);
        }

        return psi;
    }

    /// <summary>Starts <c>dotnet steward.dll args</c> (or <see cref="Binary"/>), appending stdout and stderr to <paramref name="logPath"/>.</summary>
    public static Process Start(IReadOnlyList<string> args, string logPath, IReadOnlyDictionary<string, string>? environment = null, string? binary = null)
    {
        var psi = StartInfo(binary);
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true;
        psi.UseShellExecute = false;
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var v in new[] { "PGPASSWORD", "PGUSER", "PGHOST", "PGPORT", "PGDATABASE" })
        {
            psi.Environment.Remove(v);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[name] = value;
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start steward");
        var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        var gate = new Lock();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (gate) { log.WriteLine(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (gate) { log.WriteLine(e.Data); } } };
        process.Exited += (_, _) => { lock (gate) { log.Flush(); } };
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>
    /// Runs steward to completion and returns its exit code and combined output. Standard input gets <paramref name="stdin"/>
    /// and is then closed (so a prompt with no answer is refused rather than waited on).
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(IReadOnlyList<string> args, TimeSpan timeout, string? stdin = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var logPath = Path.GetTempFileName();
        try
        {
            using var p = Start(args, logPath, environment);
            if (stdin is not null)
            {
                await p.StandardInput.WriteAsync(stdin).ConfigureAwait(false);
            }

            p.StandardInput.Close();
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                p.Kill();
                await p.WaitForExitAsync().ConfigureAwait(false);
                throw new TimeoutException($"steward {string.Join(' ', args)} did not exit within {timeout.TotalSeconds} s");
            }

            p.WaitForExit();
            return (p.ExitCode, await File.ReadAllTextAsync(logPath).ConfigureAwait(false));
        }
        finally
        {
            File.Delete(logPath);
        }
    }
}
