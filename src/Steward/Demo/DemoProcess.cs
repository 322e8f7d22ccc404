using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Serialization;

namespace Steward.Demo;

/// <summary>
/// One process the demo started: its PID and a string its command line must still contain (a path inside the demo
/// directory), so a PID that was reused by an unrelated program is never signalled.
/// </summary>
internal sealed partial record DemoProcess(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("pid")] int Pid,
    [property: JsonPropertyName("marker")] string Marker)
{
    private const int SigTerm = 15;
    private const int SigKill = 9;

    /// <summary>
    /// Starts <paramref name="program"/> in its own session (Ctrl-C in the terminal reaches only the demo, which stops
    /// the processes in order), stdout and stderr appended to <paramref name="log"/>, stdin from /dev/null. It outlives
    /// the demo command (<c>--detach</c>); <c>setsid</c> and <c>sh</c> exec, so the PID is the program's own.
    /// </summary>
    public static DemoProcess Start(string name, IReadOnlyList<string> program, string log, string marker)
    {
        var psi = new ProcessStartInfo("setsid") { UseShellExecute = false };
        foreach (var a in new[] { "sh", "-c", "exec \"$@\" >>\"$STEWARD_DEMO_LOG\" 2>&1 </dev/null", "sh" }.Concat(program))
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["STEWARD_DEMO_LOG"] = log;
        foreach (var v in new[] { "PGPASSWORD", "PGUSER", "PGHOST", "PGPORT", "PGDATABASE" })
        {
            psi.Environment.Remove(v);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {program[0]}");
        return new DemoProcess(name, p.Id, marker);
    }

    /// <summary>True while the PID is alive and still runs the program we started (its command line holds the marker).</summary>
    [JsonIgnore]
    public bool IsOurs
    {
        get
        {
            try
            {
                var cmdline = File.ReadAllBytes($"/proc/{Pid}/cmdline");
                var state = File.ReadAllText($"/proc/{Pid}/stat");
                var zombie = state.LastIndexOf(')') is var i and >= 0 && i + 2 < state.Length && state[i + 2] == 'Z';
                return !zombie && Encoding.UTF8.GetString(cmdline).Replace('\0', ' ').Contains(Marker, StringComparison.Ordinal);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }
    }

    /// <summary>Sends SIGTERM (only if the PID is still ours).</summary>
    public void Terminate()
    {
        if (IsOurs)
        {
            _ = Kill(Pid, SigTerm);
        }
    }

    /// <summary>Waits for the process to end; after <paramref name="grace"/> sends SIGKILL (only if still ours). False if it had to.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan grace, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + grace;
        while (IsOurs)
        {
            if (DateTime.UtcNow > deadline)
            {
                _ = Kill(Pid, SigKill);
                while (IsOurs)
                {
                    await Task.Delay(100, ct).ConfigureAwait(false);
                }

                return false;
            }

            await Task.Delay(100, ct).ConfigureAwait(false);
        }

        return true;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
