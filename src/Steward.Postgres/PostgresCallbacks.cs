using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Steward.Core.Configuration;
using Steward.Core.Postgres;

namespace Steward.Postgres;

/// <summary>
/// Patroni's <c>postgresql.callbacks</c> and <c>pre_promote</c>, run as the PostgreSQL OS user.
/// <para>
/// Callbacks follow what the agent sees of PostgreSQL (<see cref="Observe"/>, every published inspection), so they fire
/// whichever path changed it: <c>on_start</c> / <c>on_stop</c> when it comes up or goes down, <c>on_restart</c> when it
/// came back with a new start time in the same role, <c>on_role_change</c> on a promotion or when it comes back in
/// another role (a demoted primary that follows: Patroni's on_stop then on_role_change), <c>on_reload</c> after the agent
/// reloaded its configuration. Each runs as <c>command action role scope</c> in its own process group, never waited for:
/// one at a time, a newer callback killing the one still running, as Patroni's CallbackExecutor does (on_reload apart).
/// The first inspection after the agent starts is only recorded; callbacks still running when the agent exits are left
/// to finish (the on_stop of its shutdown among them).
/// </para>
/// </summary>
public sealed class PostgresCallbacks
{
    private readonly StewardConfig _config;
    private readonly ILogger _logger;
    private readonly Lazy<PgOsUser> _user;
    private readonly Lazy<PgProgram> _programs;
    private readonly Lock _gate = new();
    private (bool Up, string? Role, DateTimeOffset? Started)? _last;
    private string? _lastRole;
    private Process? _running;
    private Process? _reloading;
    private readonly System.Threading.Channels.Channel<(string Action, string Role)> _queue =
        System.Threading.Channels.Channel.CreateUnbounded<(string Action, string Role)>(new() { SingleReader = true });
    private Task? _starter;

    public PostgresCallbacks(StewardConfig config, ILoggerFactory loggers, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(loggers);
        _config = config;
        _logger = loggers.CreateLogger("steward.callbacks");
        _user = new(() => PgOsUser.Resolve(config.Postgresql.OsUser));
        _programs = new(() => new PgProgram(_user.Value, config.Postgresql.BinDir, time, _logger));
    }

    /// <summary>Whether anything is configured (else the agent need not call this class at all).</summary>
    public bool Any => _config.Postgresql.Callbacks.Count > 0 || _config.Postgresql.PrePromote is not null;

    /// <summary>The callback (action, role) an inspection implies, given the previous one; null when none. Pure, for tests.</summary>
    internal static (string Action, string Role)? Transition((bool Up, string? Role, DateTimeOffset? Started)? last, string? lastRole, (bool Up, string? Role, DateTimeOffset? Started) now) =>
        (last, now) switch
        {
            (null, _) => null,
            ({ Up: false }, { Up: true, Role: { } role }) => lastRole is not null && lastRole != role ? ("on_role_change", role) : ("on_start", role),
            ({ Up: true, Role: { } was }, { Up: false }) => ("on_stop", was),
            ({ Up: true, Role: { } was, Started: var then }, { Up: true, Role: { } role, Started: var started }) =>
                role != was ? ("on_role_change", role) : then != started ? ("on_restart", role) : null,
            _ => null,
        };

    /// <summary>An inspection the agent published. A postmaster that runs but does not accept connections yet changes nothing.</summary>
    public void Observe(PgState pg)
    {
        ArgumentNullException.ThrowIfNull(pg);
        if (pg.Running && (!pg.Accepting || pg.InRecovery is null))
        {
            return;
        }

        var now = (Up: pg.Running, Role: pg.Running ? pg.InRecovery == false ? "primary" : "replica" : null, Started: pg.PostmasterStartTime);
        (string Action, string Role)? fire;
        lock (_gate)
        {
            fire = Transition(_last, _lastRole, now);
            _last = now;
            _lastRole = now.Role ?? _lastRole;
        }

        if (fire is { } callback)
        {
            Enqueue(callback.Action, callback.Role);
        }
    }

    /// <summary>The agent reloaded PostgreSQL's configuration.</summary>
    public void Reloaded()
    {
        string? role;
        lock (_gate)
        {
            role = _last is { Up: true } last ? last.Role : null;
        }

        if (role is not null)
        {
            Enqueue("on_reload", role);
        }
    }

    /// <summary>Callbacks start in order on a background task: the HA loop only queues them.</summary>
    private void Enqueue(string action, string role)
    {
        if (!_config.Postgresql.Callbacks.ContainsKey(action))
        {
            return;
        }

        lock (_gate)
        {
            _starter ??= Task.Run(StartQueuedAsync);
        }

        _queue.Writer.TryWrite((action, role));
    }

    private async Task StartQueuedAsync()
    {
        await foreach (var (action, role) in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            Fire(action, role);
        }
    }

    /// <summary>
    /// Runs <c>pre_promote</c> and waits for it (at most <paramref name="timeout"/>, then it is killed): true when it exited
    /// 0 or none is configured. Patroni's fencing hook: a non-zero exit must abort the promotion.
    /// </summary>
    public async Task<bool> PrePromoteAsync(TimeSpan timeout, CancellationToken ct)
    {
        if (_config.Postgresql.PrePromote is not { } command)
        {
            return true;
        }

        Log.PrePromote(_logger, string.Join(' ', command));
        try
        {
            var result = await _programs.Value.RunCommandAsync(command, timeout, ct).ConfigureAwait(false);
            Log.PrePromoteExited(_logger, string.Join(' ', command), result.ExitCode, result.TailText);
            return result.Succeeded;
        }
        catch (PostgresException e)
        {
            Log.PrePromoteExited(_logger, string.Join(' ', command), -1, e.Message);
            return false;
        }
    }

    private void Fire(string action, string role)
    {
        if (!_config.Postgresql.Callbacks.TryGetValue(action, out var command))
        {
            return;
        }

        List<string> commandLine = [.. command, action, role, _config.Scope];
        Log.Callback(_logger, string.Join(' ', commandLine));
        try
        {
            var info = _programs.Value.BuildStartInfo(commandLine[0], commandLine.Skip(1).ToList(), environment: null, newSession: true);
            info.RedirectStandardInput = false;
            info.RedirectStandardOutput = false;
            info.RedirectStandardError = false;
            var process = Process.Start(info) ?? throw new InvalidOperationException("no process");
            Process? previous;
            lock (_gate)
            {
                if (action == "on_reload")
                {
                    (previous, _reloading) = (_reloading, process);
                }
                else
                {
                    (previous, _running) = (_running, process);
                }
            }

            KillGroup(previous);
            _ = ReapAsync(process, string.Join(' ', commandLine));
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or PostgresException)
        {
            Log.CallbackFailed(_logger, string.Join(' ', commandLine), e.Message);
        }
    }

    private async Task ReapAsync(Process process, string commandLine)
    {
        try
        {
            await process.WaitForExitAsync().ConfigureAwait(false);
            if (process.ExitCode != 0)
            {
                Log.CallbackFailed(_logger, commandLine, $"exited with code {process.ExitCode}");
            }
        }
        finally
        {
            lock (_gate)
            {
                if (_running == process)
                {
                    _running = null;
                }

                if (_reloading == process)
                {
                    _reloading = null;
                }
            }

            process.Dispose();
        }
    }

    /// <summary>A callback still running when the next one starts is killed with its children (its own process group).</summary>
    private static void KillGroup(Process? process)
    {
        if (process is null)
        {
            return;
        }

        try
        {
            if (!process.HasExited)
            {
                Native.Kill(-process.Id, Native.SigKill);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone and disposed
        }
    }
}
