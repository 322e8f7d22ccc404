using System.Globalization;
using Microsoft.Extensions.Logging;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Router.Routing;

namespace Steward.Router.PgBouncer;

/// <summary>One PgBouncer as the router last saw it (for /stats, /metrics and the dashboard).</summary>
/// <param name="Address">host:port of its admin console.</param>
/// <param name="State"><c>resumed</c>, <c>pausing</c>, <c>paused</c> or <c>unreachable</c>.</param>
/// <param name="Detail">Why it is unreachable, or what the last pause did.</param>
/// <param name="LastPause">How long its last switchover pause lasted (PAUSE sent to RESUME answered); null before the first.</param>
/// <param name="LastPauseAt">When that pause began (wall clock, for people).</param>
/// <param name="Pauses">Switchover pauses since the router started.</param>
public sealed record PgBouncerStatus(string Address, string State, string? Detail, TimeSpan? LastPause, DateTimeOffset? LastPauseAt, int Pauses);

/// <summary>
/// Drives the PgBouncers of router.yml's <c>pgbouncer:</c> through a planned switchover so that their clients see a pause
/// and no error (docs/pgbouncer.md):
/// <list type="number">
/// <item>registers <c>routers/&lt;name&gt;</c> in etcd on its own lease, so the leader knows to wait for it;</item>
/// <item>when a switchover is due (<see cref="PauseDecision"/>), PAUSEs every PgBouncer at once, each bounded by its
/// <c>pause_timeout</c> (PAUSE returns when the transactions in flight have finished and PgBouncer has closed its
/// server connections; past the timeout the pause stays pending and the switchover cuts what still runs), then answers
/// in <c>pause/&lt;name&gt;</c> with the request's revision: the leader demotes only after that answer or its timeout;</item>
/// <item>once the write port has a writer again: RECONNECT (if it is a new member) and RESUME, then deletes its answer.
/// RESUME is retried every second until each PgBouncer has taken it, at start-up (a router killed while its PgBouncers
/// were paused) and at shutdown: a PgBouncer is never left paused by this router.</item>
/// </list>
/// A PgBouncer that is down or refuses the login is logged, shown as unreachable and skipped: the switchover goes on as
/// without it. Unplanned failovers are not paused for.
/// </summary>
public sealed partial class PgBouncerCoordinator : IAsyncDisposable
{
    /// <summary>TTL of the router's lease in etcd (its registration and answer go with it).</summary>
    public const int LeaseTtlSeconds = 10;

    /// <summary>How long PgBouncers stay paused at most while no leader accepts writes (the REST switchover gives up after 30 s).</summary>
    public static readonly TimeSpan MaxPause = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);

    private readonly IReadOnlyList<PgBouncerConfig> _pgBouncers;
    private readonly string _name;
    private readonly IClusterStore _store;
    private readonly IRouterKeys _keys;
    private readonly ClusterWatcher _watcher;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Func<PgBouncerConfig, CancellationToken, Task<IAdminConsole>> _connect;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly Dictionary<string, PgBouncerStatus> _status = [];
    private readonly HashSet<string> _resumePending = [];
    private readonly Dictionary<string, long> _pauseStarts = [];
    private readonly Dictionary<string, IAdminConsole> _held = [];
    private PausedFor? _paused;
    private Task _maintenance = Task.CompletedTask;
    private Task _resumeRetries = Task.CompletedTask;
    private CancellationTokenSource? _maintenanceStop;
    private long _handledRevision;
    private long _lastProbe;
    private long _leaseId;
    private long _nextKeepAlive;
    private Task? _loop;

    public PgBouncerCoordinator(RouterConfig config, IClusterStore store, IRouterKeys keys, ClusterWatcher watcher, TimeProvider time, ILogger log,
        Func<PgBouncerConfig, CancellationToken, Task<IAdminConsole>>? connect = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        _pgBouncers = config.PgBouncers;
        _name = config.Name;
        _store = store;
        _keys = keys;
        _watcher = watcher;
        _time = time;
        _log = log;
        _connect = connect ?? (async (c, ct) => await AdminConsole.ConnectAsync(c, ct).ConfigureAwait(false));
        foreach (var p in _pgBouncers)
        {
            _status[p.Address.ToString()] = new PgBouncerStatus(p.Address.ToString(), "resumed", "not checked yet", null, null, 0);
        }
    }

    /// <summary>
    /// Fault injection for tests only (<c>STEWARD_TEST_PAUSE_DELAY_MS</c>): the router waits this long after it saw a
    /// switchover due before it sends PAUSE, as a router that sees etcd late would; the leader must wait for it.
    /// </summary>
    public TimeSpan PauseDelay { get; init; }

    /// <summary>Each PgBouncer's state, in router.yml's order.</summary>
    public IReadOnlyList<PgBouncerStatus> Status
    {
        get
        {
            lock (_gate)
            {
                return [.. _pgBouncers.Select(p => _status[p.Address.ToString()])];
            }
        }
    }

    /// <summary>The longest pause of the last switchover (null before the first).</summary>
    public TimeSpan? LastPause
    {
        get
        {
            lock (_gate)
            {
                return _status.Values.Select(s => s.LastPauseAt).Max() is { } last
                    ? _status.Values.Where(s => s.LastPauseAt == last).Max(s => s.LastPause)
                    : null;
            }
        }
    }

    /// <summary>Resumes what a previous run may have left paused, registers in etcd, and starts following the cluster.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        lock (_gate)
        {
            foreach (var p in _pgBouncers)
            {
                _resumePending.Add(p.Address.ToString());
            }
        }

        await RetryResumesAsync(reconnect: false, ct).ConfigureAwait(false);
        await KeepRegisteredAsync(ct).ConfigureAwait(false);
        _loop = Task.Run(() => LoopAsync(_stop.Token), CancellationToken.None);
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await StepAsync(ct).ConfigureAwait(false);
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct);
                await Task.WhenAny(_watcher.WaitForChangeAsync(linked.Token), Task.Delay(Tick, _time, linked.Token)).ConfigureAwait(false);
                await linked.CancelAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                // The loop must survive anything a step throws: a PgBouncer left paused is resumed only from here.
                LogStepFailed(_log, e.Message);
                await Task.Delay(Tick, _time, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// One look at the cluster: pause or resume when due; otherwise, in the background (never delaying a pause by more
    /// than one bounded admin command), retry pending resumes and probe every PgBouncer. And keep the lease.
    /// </summary>
    private async Task StepAsync(CancellationToken ct)
    {
        var (view, table) = _watcher.Current;
        var pausedFor = _paused is { } p ? _time.GetElapsedTime(p.Since) : TimeSpan.Zero;
        switch (PauseDecision.Next(view, table, _paused, _handledRevision, _time.GetUtcNow(), pausedFor, MaxPause))
        {
            case PauseFor pause:
                // A retried RESUME still in flight must not land after the PAUSE, and a PgBouncer that hangs must not
                // delay it: the background work is cut short first.
                await StopMaintenanceAsync().ConfigureAwait(false);
                await PauseAsync(pause, ct).ConfigureAwait(false);
                break;
            case ResumeAll resume:
                await StopMaintenanceAsync().ConfigureAwait(false);
                await ResumeAsync(resume, ct).ConfigureAwait(false);
                break;
            default:
                if (_paused is null && _maintenance.IsCompleted && _time.GetElapsedTime(_lastProbe) >= ProbeInterval)
                {
                    _lastProbe = _time.GetTimestamp();
                    _maintenanceStop?.Dispose();
                    _maintenanceStop = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    var token = _maintenanceStop.Token;
                    _resumeRetries = Task.Run(() => RetryResumesUntilStoppedAsync(token), CancellationToken.None);
                    _maintenance = Task.Run(() => ProbeAllAsync(token), CancellationToken.None);
                }

                break;
        }

        if (_time.GetTimestamp() >= _nextKeepAlive)
        {
            await KeepRegisteredAsync(ct).ConfigureAwait(false);
        }
    }

    private async Task StopMaintenanceAsync()
    {
        if (_maintenanceStop is not null)
        {
            await _maintenanceStop.CancelAsync().ConfigureAwait(false);
        }

        await _resumeRetries.ConfigureAwait(false);
        await _maintenance.ConfigureAwait(false);
    }

    private async Task RetryResumesUntilStoppedAsync(CancellationToken ct)
    {
        try
        {
            await RetryResumesAsync(reconnect: false, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // stopping: DisposeAsync resumes what is still pending
        }
    }

    /// <summary>Probe every PgBouncer that does not wait for a RESUME (after the pending resumes were tried).</summary>
    private async Task ProbeAllAsync(CancellationToken ct)
    {
        try
        {
            await _resumeRetries.ConfigureAwait(false);
            await Task.WhenAll(_pgBouncers.Where(b => !IsResumePending(b)).Select(b => ProbeAsync(b, ct))).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private async Task PauseAsync(PauseFor pause, CancellationToken ct)
    {
        _handledRevision = pause.Revision;
        _paused = new PausedFor(pause.Revision, pause.Leader, _time.GetTimestamp());
        LogPausing(_log, pause.Leader, pause.Revision, _pgBouncers.Count);
        if (PauseDelay > TimeSpan.Zero)
        {
            await Task.Delay(PauseDelay, _time, ct).ConfigureAwait(false);
        }

        var outcomes = await Task.WhenAll(_pgBouncers.Select(b => PauseOneAsync(b, ct))).ConfigureAwait(false);
        var confirmation = new PauseConfirmation { FailoverRevision = pause.Revision, PgBouncers = outcomes };
        try
        {
            await _keys.PutPauseAsync(_name, confirmation, ct).ConfigureAwait(false);
        }
        catch (StoreUnavailableException e)
        {
            // The leader goes on after its own timeout (pause_timeout + margin): a pause that etcd did not carry costs time, not safety.
            LogAnswerNotWritten(_log, ClusterKeys.PauseDir + _name, e.Message);
            await KeepRegisteredAsync(ct).ConfigureAwait(false);
            await _keys.PutPauseAsync(_name, confirmation, ct).ConfigureAwait(false);
        }
    }

    private async Task<PgBouncerOutcome> PauseOneAsync(PgBouncerConfig bouncer, CancellationToken ct)
    {
        var address = bouncer.Address.ToString();
        var started = _time.GetTimestamp();
        var timeout = TimeSpan.FromSeconds(bouncer.PauseTimeout);
        SetState(address, "pausing", null, pauseStarted: true); // from now on, whatever happens: RESUME
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(timeout);
        IAdminConsole? console = null;
        try
        {
            console = await _connect(bouncer, bounded.Token).ConfigureAwait(false);
            foreach (var command in Commands("PAUSE", bouncer))
            {
                await RunAsync(console, command, "already suspended/paused", bounded.Token).ConfigureAwait(false);
            }

            // Kept for RECONNECT and RESUME: no new login (a SCRAM exchange) on the clients' critical path.
            lock (_gate)
            {
                _held[address] = console;
            }

            console = null;
            var took = _time.GetElapsedTime(started);
            SetState(address, "paused", string.Create(CultureInfo.InvariantCulture, $"paused in {took.TotalMilliseconds:0} ms"));
            LogPaused(_log, address, took.TotalMilliseconds);
            return new PgBouncerOutcome { Address = address, State = "paused" };
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            if (console is not null)
            {
                // PAUSE is still pending in PgBouncer (it stays so after we hang up): new transactions wait, the ones still
                // running are cut by the demotion, and then the pause completes.
                SetState(address, "pausing", $"PAUSE did not complete within {bouncer.PauseTimeout:0.#} s");
                LogPauseTimedOut(_log, address, bouncer.PauseTimeout);
                return new PgBouncerOutcome { Address = address, State = "timeout", Detail = $"PAUSE did not complete within {bouncer.PauseTimeout:0.#} s" };
            }

            var detail = $"no answer within {bouncer.PauseTimeout:0.#} s";
            SetState(address, "unreachable", detail);
            LogUnreachable(_log, address, detail);
            return new PgBouncerOutcome { Address = address, State = "unreachable", Detail = detail };
        }
        catch (AdminConsoleException e)
        {
            SetState(address, "unreachable", e.Message);
            LogUnreachable(_log, address, e.Message);
            return new PgBouncerOutcome { Address = address, State = "unreachable", Detail = e.Message };
        }
        finally
        {
            if (console is not null)
            {
                await console.DisposeAsync().ConfigureAwait(false); // a PAUSE still pending stays in effect
            }
        }
    }

    private async Task ResumeAsync(ResumeAll resume, CancellationToken ct)
    {
        LogResuming(_log, resume.Why, resume.Reconnect ? "RECONNECT and RESUME" : "RESUME");
        await RetryResumesAsync(resume.Reconnect, ct).ConfigureAwait(false);
        _paused = null;
        try
        {
            await _keys.DeletePauseAsync(_name, ct).ConfigureAwait(false);
        }
        catch (StoreUnavailableException e)
        {
            LogAnswerNotWritten(_log, ClusterKeys.PauseDir + _name, e.Message); // it names an old request and goes with the lease
        }
    }

    /// <summary>RESUME (after RECONNECT) every PgBouncer still waiting for it; the ones that fail are tried again next step.</summary>
    private async Task RetryResumesAsync(bool reconnect, CancellationToken ct)
    {
        var pending = _pgBouncers.Where(IsResumePending).ToList();
        if (pending.Count == 0)
        {
            return;
        }

        await Task.WhenAll(pending.Select(b => ResumeOneAsync(b, reconnect, ct))).ConfigureAwait(false);
    }

    /// <summary>The connection kept from the PAUSE if it still works (a trivial command answers), else a new one.</summary>
    private async Task<IAdminConsole> HeldOrNewAsync(IAdminConsole? held, PgBouncerConfig bouncer, CancellationToken ct)
    {
        if (held is not null)
        {
            try
            {
                await held.ExecuteAsync("SHOW VERSION", ct).ConfigureAwait(false);
                return held;
            }
            catch (AdminConsoleException)
            {
                await held.DisposeAsync().ConfigureAwait(false); // PgBouncer restarted meanwhile, or the network cut it
            }
        }

        return await _connect(bouncer, ct).ConfigureAwait(false);
    }

    private bool IsResumePending(PgBouncerConfig bouncer)
    {
        lock (_gate)
        {
            return _resumePending.Contains(bouncer.Address.ToString());
        }
    }

    private async Task ResumeOneAsync(PgBouncerConfig bouncer, bool reconnect, CancellationToken ct)
    {
        var address = bouncer.Address.ToString();
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(CommandTimeout);
        IAdminConsole? held;
        lock (_gate)
        {
            _held.Remove(address, out held);
        }

        try
        {
            await using var console = await HeldOrNewAsync(held, bouncer, bounded.Token).ConfigureAwait(false);
            if (reconnect)
            {
                foreach (var command in Commands("RECONNECT", bouncer))
                {
                    await RunAsync(console, command, null, bounded.Token).ConfigureAwait(false);
                }
            }

            foreach (var command in Commands("RESUME", bouncer))
            {
                await RunAsync(console, command, "not paused", bounded.Token).ConfigureAwait(false);
            }

            TimeSpan? pause = null;
            lock (_gate)
            {
                _resumePending.Remove(address);
                var old = _status[address];
                if (_pauseStarts.Remove(address, out var since))
                {
                    pause = _time.GetElapsedTime(since);
                }

                _status[address] = old with { State = "resumed", Detail = null, LastPause = pause ?? old.LastPause };
            }

            if (pause is { } took)
            {
                LogResumed(_log, address, took.TotalMilliseconds);
            }
        }
        catch (Exception e) when (e is AdminConsoleException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            var reason = e is AdminConsoleException ? e.Message : $"no answer within {CommandTimeout.TotalSeconds:0} s";
            if (Status.First(s => s.Address == address).State != "unreachable")
            {
                LogResumeFailed(_log, address, reason);
            }

            SetState(address, "unreachable", $"RESUME pending: {reason}");
        }
    }

    /// <summary>Is it there, and does it answer? (Only when nothing is paused: a probe must not race a PAUSE.)</summary>
    private async Task ProbeAsync(PgBouncerConfig bouncer, CancellationToken ct)
    {
        var address = bouncer.Address.ToString();
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bounded.CancelAfter(CommandTimeout);
        try
        {
            await using var console = await _connect(bouncer, bounded.Token).ConfigureAwait(false);
            await console.ExecuteAsync("SHOW VERSION", bounded.Token).ConfigureAwait(false);
            if (Status.First(s => s.Address == address).State == "unreachable")
            {
                LogReachable(_log, address);
            }

            SetState(address, "resumed", null);
        }
        catch (Exception e) when (e is AdminConsoleException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            var reason = e is AdminConsoleException ? e.Message : $"no answer within {CommandTimeout.TotalSeconds:0} s";
            if (Status.First(s => s.Address == address).State != "unreachable")
            {
                LogUnreachable(_log, address, reason);
            }

            SetState(address, "unreachable", reason);
        }
    }

    private static async Task RunAsync(IAdminConsole console, string command, string? harmless, CancellationToken ct)
    {
        try
        {
            await console.ExecuteAsync(command, ct).ConfigureAwait(false);
        }
        catch (AdminConsoleException e) when (harmless is not null && e.SqlState is not null && e.Message.Contains(harmless, StringComparison.Ordinal))
        {
            // PAUSE of a paused PgBouncer, RESUME of a running one: already where we want it.
        }
    }

    /// <summary>The command for the whole PgBouncer, or once per configured database.</summary>
    internal static IEnumerable<string> Commands(string verb, PgBouncerConfig bouncer) =>
        bouncer.Databases.Count == 0 ? [verb] : bouncer.Databases.Select(d => $"{verb} {d}");

    private void SetState(string address, string state, string? detail, bool pauseStarted = false)
    {
        lock (_gate)
        {
            var old = _status[address];
            if (pauseStarted)
            {
                _resumePending.Add(address);
                _pauseStarts[address] = _time.GetTimestamp();
                _status[address] = old with { State = state, Detail = detail, LastPauseAt = _time.GetUtcNow(), Pauses = old.Pauses + 1 };
                return;
            }

            // A PgBouncer that cannot be reached while its pause is pending keeps its pause start: the pause lasts until RESUME.
            _status[address] = old with { State = state, Detail = detail };
        }
    }

    /// <summary>Keeps the lease alive and the registration in place (re-put on a new lease).</summary>
    private async Task KeepRegisteredAsync(CancellationToken ct)
    {
        _nextKeepAlive = _time.GetTimestamp() + (long)(_time.TimestampFrequency * (LeaseTtlSeconds / 3.0));
        try
        {
            var lease = await _store.KeepAliveAsync(LeaseTtlSeconds, ct).ConfigureAwait(false);
            if (lease.IsNew || lease.LeaseId != _leaseId)
            {
                var registration = new RouterRegistration
                {
                    PgBouncers = [.. _pgBouncers.Select(p => p.Address.ToString())],
                    PauseTimeout = _pgBouncers.Max(p => p.PauseTimeout),
                };
                await _keys.PutRouterAsync(_name, registration, ct).ConfigureAwait(false);
                _leaseId = lease.LeaseId;
                LogRegistered(_log, ClusterKeys.RoutersDir + _name, string.Join(", ", registration.PgBouncers), registration.PauseTimeout);
            }
        }
        catch (StoreUnavailableException e)
        {
            _leaseId = 0;
            LogAnswerNotWritten(_log, ClusterKeys.RoutersDir + _name, e.Message);
        }
    }

    /// <summary>Stops following the cluster, RESUMEs whatever is still paused (bounded), and gives up its keys in etcd.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        await StopMaintenanceAsync().ConfigureAwait(false);
        _maintenanceStop?.Dispose();
        if (_pgBouncers.Any(IsResumePending))
        {
            LogResuming(_log, "the router is stopping", "RESUME");
            await RetryResumesAsync(reconnect: false, CancellationToken.None).ConfigureAwait(false);
        }

        List<IAdminConsole> held;
        lock (_gate)
        {
            held = [.. _held.Values];
            _held.Clear();
        }

        foreach (var console in held)
        {
            await console.DisposeAsync().ConfigureAwait(false);
        }

        try
        {
            using var bounded = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _store.RevokeLeaseAsync(bounded.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is StoreUnavailableException or OperationCanceledException)
        {
            LogAnswerNotWritten(_log, ClusterKeys.RoutersDir + _name, e.Message); // it goes with the lease's TTL
        }

        _stop.Dispose();
    }

    [LoggerMessage(EventId = 4040, Level = LogLevel.Information, Message = "switchover from {Leader} (failover revision {Revision}): pausing {Count} PgBouncer(s)")]
    private static partial void LogPausing(ILogger logger, string leader, long revision, int count);

    [LoggerMessage(EventId = 4041, Level = LogLevel.Information, Message = "PgBouncer {Address} paused in {Milliseconds:0} ms")]
    private static partial void LogPaused(ILogger logger, string address, double milliseconds);

    [LoggerMessage(EventId = 4042, Level = LogLevel.Warning, Message = "PgBouncer {Address}: PAUSE did not complete within {Timeout} s (transactions still running); the switchover goes on and cuts them")]
    private static partial void LogPauseTimedOut(ILogger logger, string address, double timeout);

    [LoggerMessage(EventId = 4043, Level = LogLevel.Warning, Message = "PgBouncer {Address} is unreachable ({Reason}); skipped: its clients see a switchover as errors")]
    private static partial void LogUnreachable(ILogger logger, string address, string reason);

    [LoggerMessage(EventId = 4044, Level = LogLevel.Information, Message = "{Why}: {Commands} of every PgBouncer")]
    private static partial void LogResuming(ILogger logger, string why, string commands);

    [LoggerMessage(EventId = 4045, Level = LogLevel.Information, Message = "PgBouncer {Address} resumed after a pause of {Milliseconds:0} ms")]
    private static partial void LogResumed(ILogger logger, string address, double milliseconds);

    [LoggerMessage(EventId = 4046, Level = LogLevel.Warning, Message = "RESUME of PgBouncer {Address} failed ({Reason}); retrying every 2 s until it takes it")]
    private static partial void LogResumeFailed(ILogger logger, string address, string reason);

    [LoggerMessage(EventId = 4047, Level = LogLevel.Information, Message = "PgBouncer {Address} answers its admin console again")]
    private static partial void LogReachable(ILogger logger, string address);

    [LoggerMessage(EventId = 4048, Level = LogLevel.Warning, Message = "could not write {Key} to etcd ({Reason}); a leader that waits for this router goes on after its timeout")]
    private static partial void LogAnswerNotWritten(ILogger logger, string key, string reason);

    [LoggerMessage(EventId = 4049, Level = LogLevel.Information, Message = "registered in etcd as {Key} (PgBouncers {PgBouncers}, pause_timeout {PauseTimeout} s)")]
    private static partial void LogRegistered(ILogger logger, string key, string pgBouncers, double pauseTimeout);

    [LoggerMessage(EventId = 4050, Level = LogLevel.Warning, Message = "PgBouncer step failed: {Reason}")]
    private static partial void LogStepFailed(ILogger logger, string reason);
}
