using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Steward.Core.Postgres;

namespace Steward.Postgres;

/// <summary>What a finished program printed and returned.</summary>
internal sealed record PgProgramResult(string Program, int ExitCode, string StdOut, IReadOnlyList<string> Tail)
{
    public bool Succeeded => ExitCode == 0;

    public string TailText => string.Join('\n', Tail);

    /// <summary>"initdb exited with code 1: &lt;last lines&gt;".</summary>
    public PostgresException Failure(string? what = null) =>
        new($"{what ?? Program} failed: {Program} exited with code {ExitCode}" + (Tail.Count == 0 ? "" : ":\n" + TailText));
}

/// <summary>
/// Runs PostgreSQL's programs as the OS user (through setpriv when the agent is root), without the agent's PG*
/// environment, with stdin closed. Keeps stdout and the last lines of stdout+stderr, and kills the child by PID
/// on timeout or cancellation.
/// </summary>
internal sealed class PgProgram
{
    private const int TailLines = 20;
    private const int MaxStdOutChars = 1 << 20;

    private readonly PgOsUser _user;
    private readonly string _binDir;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public PgProgram(PgOsUser user, string binDir, TimeProvider time, ILogger logger)
    {
        _user = user;
        _binDir = binDir;
        _time = time;
        _logger = logger;
    }

    public string PathOf(string program) => Path.Combine(_binDir, program);

    /// <summary>
    /// Runs <paramref name="program"/> from bin_dir. <paramref name="timeout"/> null = only <paramref name="ct"/> stops it.
    /// <paramref name="newSession"/> starts it in its own session (setsid) so a terminal's signals never reach what it spawns.
    /// Throws <see cref="PostgresException"/> when it cannot be started or times out; a non-zero exit is returned, not thrown.
    /// </summary>
    public async Task<PgProgramResult> RunAsync(
        string program,
        IEnumerable<string> arguments,
        TimeSpan? timeout,
        CancellationToken ct,
        IReadOnlyDictionary<string, string>? environment = null,
        bool newSession = false)
    {
        var path = PathOf(program);
        if (!File.Exists(path))
        {
            throw new PostgresException($"{program} not found at {path} (postgresql.bin_dir = {_binDir}); PostgreSQL 15 not found: apt-get install postgresql-15");
        }
        return await RunPathAsync(program, path, arguments.ToList(), timeout, ct, environment, newSession).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs a configured command (a custom bootstrap's, say) as the OS user, the same way: <paramref name="commandLine"/>
    /// is the program (looked up in PATH unless it has a '/') and its arguments.
    /// </summary>
    public Task<PgProgramResult> RunCommandAsync(IReadOnlyList<string> commandLine, TimeSpan? timeout, CancellationToken ct, IReadOnlyDictionary<string, string>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(commandLine);
        return RunPathAsync(Path.GetFileName(commandLine[0]), commandLine[0], commandLine.Skip(1).ToList(), timeout, ct, environment, newSession: false);
    }

    private async Task<PgProgramResult> RunPathAsync(
        string program,
        string path,
        List<string> args,
        TimeSpan? timeout,
        CancellationToken ct,
        IReadOnlyDictionary<string, string>? environment,
        bool newSession)
    {
        var info = BuildStartInfo(path, args, environment, newSession);

        Log.Running(_logger, program, string.Join(' ', args));
        var started = _time.GetTimestamp();
        using var process = new Process { StartInfo = info };
        var stdout = new System.Text.StringBuilder();
        var tail = new Queue<string>(TailLines);
        var gate = new Lock();
        void Keep(string? line, bool isStdOut)
        {
            if (line is null)
            {
                return;
            }
            lock (gate)
            {
                if (isStdOut && stdout.Length < MaxStdOutChars)
                {
                    stdout.Append(line).Append('\n');
                }
                if (tail.Count == TailLines)
                {
                    tail.Dequeue();
                }
                tail.Enqueue(line);
            }
        }
        process.OutputDataReceived += (_, e) => Keep(e.Data, isStdOut: true);
        process.ErrorDataReceived += (_, e) => Keep(e.Data, isStdOut: false);

        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new PostgresException($"could not start {program} ({info.FileName}): {e.Message}", e);
        }
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var timeoutCts = timeout is { } t ? new CancellationTokenSource(t, _time) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeoutCts.Token);
        try
        {
            await process.WaitForExitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            var pid = process.Id;
            KillByPid(process);
            if (ct.IsCancellationRequested)
            {
                Log.Cancelled(_logger, program, pid);
                throw;
            }
            Log.TimedOut(_logger, program, timeout!.Value.TotalSeconds, pid);
            lock (gate)
            {
                throw new PostgresException($"{program} did not finish within {timeout.Value.TotalSeconds:0} s and was killed (pid {pid})"
                    + (tail.Count == 0 ? "" : ":\n" + string.Join('\n', tail)));
            }
        }

        var elapsed = _time.GetElapsedTime(started);
        Log.Exited(_logger, program, process.ExitCode, (long)elapsed.TotalMilliseconds);
        lock (gate)
        {
            return new PgProgramResult(program, process.ExitCode, stdout.ToString(), tail.ToArray());
        }
    }

    internal ProcessStartInfo BuildStartInfo(string path, List<string> args, IReadOnlyDictionary<string, string>? environment, bool newSession)
    {
        var commandLine = new List<string>();
        if (newSession)
        {
            commandLine.AddRange(["setsid", "--wait"]);
        }
        if (_user.Switch)
        {
            commandLine.AddRange([
                "setpriv",
                FormattableString.Invariant($"--reuid={_user.Uid}"),
                FormattableString.Invariant($"--regid={_user.Gid}"),
                "--init-groups",
                "--",
            ]);
        }
        commandLine.Add(path);
        commandLine.AddRange(args);

        var info = new ProcessStartInfo(commandLine[0])
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            // the OS user may not be able to enter the agent's working directory (e.g. /root)
            WorkingDirectory = "/",
        };
        foreach (var arg in commandLine.Skip(1))
        {
            info.ArgumentList.Add(arg);
        }
        // A PGPASSWORD / PGUSER / PGHOST... leaked from the agent's environment silently changes what the programs do.
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("PG", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(key);
        }
        if (_user.Switch)
        {
            info.Environment["USER"] = _user.Name;
            info.Environment["LOGNAME"] = _user.Name;
            // Not root's HOME: libpq (pg_rewind, pg_basebackup, the postmaster's WAL receiver) opens ~/.postgresql/
            // postgresql.crt when no sslcert is given, and fails on a home the user may not enter.
            info.Environment["HOME"] = _user.Home.Length > 0 ? _user.Home : "/";
        }
        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                info.Environment[key] = value;
            }
        }
        return info;
    }

    private static void KillByPid(Process process)
    {
        try
        {
            // only the child itself: pg_ctl's postmaster must never be taken down with it
            process.Kill(entireProcessTree: false);
            process.WaitForExit(TimeSpan.FromSeconds(5));
        }
        catch (InvalidOperationException)
        {
            // it exited on its own in the meantime
        }
    }
}
