using Microsoft.Extensions.Logging;
using Steward.Core.Cluster;
using Steward.Core.Configuration;

namespace Steward.Router.Routing;

/// <summary>
/// Keeps the <see cref="RoutingTable"/> current: a change under the prefix wakes it through the etcd watch (re-routing
/// within milliseconds), and a linearizable read of the whole prefix every <see cref="ConfirmInterval"/> confirms the
/// view even when the watch is silent. A watch can be silent because nothing happens, or because the etcd member serving
/// it is frozen or cut off from quorum (its stream stays open and says nothing); only a read that goes through the
/// quorum tells the two apart.
/// <para>
/// Stale guard: when no read has been confirmed for <see cref="StaleAfter"/> (monotonic clock, counted from the moment
/// the last successful read was sent), writes fail closed at once: the writer of the last view is kept only while its
/// own REST API answers <c>/leader</c> with 200 (checked then and every second), readers while they answer
/// <c>/replica</c>; otherwise new clients are held. Past <c>etcd_unreachable_grace</c> nothing is routed. The first
/// confirmed read ends it.
/// </para>
/// </summary>
public sealed partial class ClusterWatcher : IRoutingSource, IAsyncDisposable
{
    /// <summary>How often the view is re-read (linearizable) while the watch is silent.</summary>
    public static readonly TimeSpan DefaultConfirmInterval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The staleness bound: the confirm interval (1 s) plus the router's etcd request timeout (2 s). A healthy etcd
    /// confirms the view at least once in any such window unless one read takes the whole timeout.
    /// </summary>
    public static readonly TimeSpan DefaultStaleAfter = TimeSpan.FromSeconds(3);

    private readonly IClusterStore _store;
    private readonly HttpClient _http;
    private readonly long _maxLag;
    private readonly SyncStandbyReads _syncStandbys;
    private readonly TimeSpan _grace;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly Lock _publishGate = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RoutingTable _table = RoutingTable.Empty;
    private RoutingTable _base = RoutingTable.Empty;
    private ClusterView? _view;
    private long _confirmedAt;
    private bool _stale;
    private Task? _readLoop;
    private Task? _guardLoop;

    public ClusterWatcher(IClusterStore store, HttpClient http, long maxLag, TimeSpan grace, TimeProvider time, ILogger log,
        TimeSpan? confirmInterval = null, TimeSpan? staleAfter = null, SyncStandbyReads syncStandbys = SyncStandbyReads.Include)
    {
        _syncStandbys = syncStandbys;
        _store = store;
        _http = http;
        _maxLag = maxLag;
        _grace = grace;
        _time = time;
        _log = log;
        ConfirmInterval = confirmInterval ?? DefaultConfirmInterval;
        StaleAfter = staleAfter ?? DefaultStaleAfter;
        _confirmedAt = time.GetTimestamp();
    }

    public TimeSpan ConfirmInterval { get; }

    public TimeSpan StaleAfter { get; }

    public RoutingTable Table => Volatile.Read(ref _table);

    /// <summary>The last view read from etcd (null before the first read); kept while etcd is unreachable.</summary>
    public ClusterView? View => Volatile.Read(ref _view);

    /// <summary>The last view and the table published from it (or from the stale guard), read together.</summary>
    public (ClusterView? View, RoutingTable Table) Current
    {
        get
        {
            lock (_publishGate)
            {
                return (_view, _table);
            }
        }
    }

    /// <summary>True while the last confirmed read is older than <see cref="StaleAfter"/> (writes fail closed).</summary>
    public bool IsStale
    {
        get
        {
            lock (_publishGate)
            {
                return _stale;
            }
        }
    }

    /// <summary>Time since the last successful linearizable read was sent (monotonic).</summary>
    public TimeSpan ConfirmationAge
    {
        get
        {
            lock (_publishGate)
            {
                return _time.GetElapsedTime(_confirmedAt);
            }
        }
    }

    /// <summary>Raised (on the watcher's thread) after every read that returned a new etcd revision, whether or not routing changed.</summary>
    public event Action<ClusterView>? ViewChanged;

    /// <summary>
    /// Raised (on the watcher's thread, synchronously, after the new table is visible through <see cref="Table"/>)
    /// after every table change, with the old and the new table.
    /// </summary>
    public event Action<RoutingTable, RoutingTable>? Changed;

    /// <summary>Reads the cluster once (throws <see cref="StoreUnavailableException"/> if etcd cannot be reached), then follows it.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        var sentAt = _time.GetTimestamp();
        var view = await _store.LoadAsync(ct).ConfigureAwait(false);
        Confirmed(view, sentAt);
        _readLoop = Task.Run(() => ReadLoopAsync(_stop.Token), CancellationToken.None);
        _guardLoop = Task.Run(() => GuardLoopAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>Completes at the next table change.</summary>
    public Task WaitForChangeAsync(CancellationToken ct)
    {
        lock (_gate)
        {
            return _changed.Task.WaitAsync(ct);
        }
    }

    /// <summary>Reads the prefix (a linearizable range read) at every watch event, and at least every <see cref="ConfirmInterval"/>.</summary>
    private async Task ReadLoopAsync(CancellationToken ct)
    {
        var reachable = true;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (reachable)
                {
                    await ChangeOrTickAsync(ct).ConfigureAwait(false);
                }
                else
                {
                    await Task.Delay(ConfirmInterval, _time, ct).ConfigureAwait(false);
                }

                var sentAt = _time.GetTimestamp();
                var view = await _store.LoadAsync(ct).ConfigureAwait(false);
                if (!reachable)
                {
                    LogEtcdBack(_log);
                    reachable = true;
                }

                Confirmed(view, sentAt);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (StoreUnavailableException e)
            {
                if (reachable)
                {
                    LogEtcdUnreachable(_log, e.Message);
                }

                reachable = false;
            }
        }
    }

    private async Task ChangeOrTickAsync(CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var change = _store.WaitForChangeAsync(linked.Token);
        var tick = Task.Delay(ConfirmInterval, _time, linked.Token);
        await Task.WhenAny(change, tick).ConfigureAwait(false);
        await linked.CancelAsync().ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
    }

    /// <summary>Fails writes closed once the last confirmation is older than <see cref="StaleAfter"/>; then confirms over REST every interval.</summary>
    private async Task GuardLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                long confirmedAt;
                RoutingTable last;
                lock (_publishGate)
                {
                    confirmedAt = _confirmedAt;
                    last = _base;
                }

                var age = _time.GetElapsedTime(confirmedAt);
                if (age < StaleAfter)
                {
                    await Task.Delay(StaleAfter - age, _time, ct).ConfigureAwait(false);
                    continue;
                }

                FailClosed(confirmedAt, age, last);
                // Reads keep going to the replicas that confirm /replica however long etcd is away. Writes go only to a
                // leader that confirms /leader (its agent answers 200 only while its lease, or with failsafe_mode every
                // member's confirmation, provably holds); past etcd_unreachable_grace only with failsafe_mode on.
                var next = await ConfirmAsync(last, age, ct).ConfigureAwait(false);
                if (age > _grace && View?.Config?.Value.FailsafeMode != true)
                {
                    next = next with
                    {
                        Writer = null,
                        Leader = null,
                        Reason = $"etcd has not confirmed the view for more than {_grace.TotalSeconds:0} s (etcd_unreachable_grace) and failsafe_mode is off: no writes",
                    };
                }

                lock (_publishGate)
                {
                    if (_confirmedAt == confirmedAt)
                    {
                        Publish(next);
                    }
                }

                await Task.Delay(ConfirmInterval, _time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>The first time a confirmation goes stale: no writer until its REST API confirms it (the same table otherwise, so no session is cut yet).</summary>
    private void FailClosed(long confirmedAt, TimeSpan age, RoutingTable last)
    {
        lock (_publishGate)
        {
            if (_confirmedAt != confirmedAt || _stale)
            {
                return;
            }

            _stale = true;
            LogStale(_log, age.TotalSeconds, StaleAfter.TotalSeconds, _grace.TotalSeconds);
            Publish(last with { Writer = null, Reason = StaleReason(age) });
        }
    }

    private static string StaleReason(TimeSpan age) =>
        FormattableString.Invariant($"etcd has not confirmed the view for {age.TotalSeconds:0.0} s; writes only to a leader that confirms over REST");

    private void Confirmed(ClusterView view, long sentAt)
    {
        bool newView;
        lock (_publishGate)
        {
            var age = _time.GetElapsedTime(_confirmedAt);
            if (_stale)
            {
                LogConfirmedAgain(_log, age.TotalSeconds);
            }

            _confirmedAt = sentAt;
            _stale = false;
            newView = _view is null || _view.Revision != view.Revision;
            Volatile.Write(ref _view, view);
            _base = RoutingTable.From(view, _maxLag, _time.GetUtcNow(), _syncStandbys);
            Publish(_base);
        }

        if (newView)
        {
            ViewChanged?.Invoke(view);
        }
    }

    /// <summary>The last view's table, keeping only the members whose REST API confirms their role now.</summary>
    private async Task<RoutingTable> ConfirmAsync(RoutingTable table, TimeSpan age, CancellationToken ct)
    {
        var writerOk = table.Writer is { } w && await AnswersAsync(w, "/leader", ct).ConfigureAwait(false);
        var leaderOk = table.Leader is { } l && (writerOk && l == table.Writer || await AnswersAsync(l, "/leader", ct).ConfigureAwait(false));
        var readers = new List<Backend>();
        foreach (var r in table.Readers)
        {
            if (await AnswersAsync(r, "/replica", ct).ConfigureAwait(false))
            {
                readers.Add(r);
            }
        }

        return table with
        {
            Writer = writerOk ? table.Writer : null,
            Leader = leaderOk ? table.Leader : null,
            Readers = readers,
            Reason = writerOk ? null : table.Reason ?? StaleReason(age) + " (the last known leader does not)",
        };
    }

    private async Task<bool> AnswersAsync(Backend backend, string path, CancellationToken ct)
    {
        if (backend.Api is null)
        {
            return false;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1), _time);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            using var response = await _http.GetAsync(new Uri(backend.Api, path), cts.Token).ConfigureAwait(false);
            return (int)response.StatusCode == 200;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Swaps the table (the caller holds the publish gate), then tells <see cref="Changed"/> and the waiters.</summary>
    private void Publish(RoutingTable table)
    {
        var old = Interlocked.Exchange(ref _table, table);
        if (old.Writer == table.Writer && old.Leader == table.Leader && old.Readers.SequenceEqual(table.Readers))
        {
            return;
        }

        LogTable(_log, table.Writer?.Name ?? "(none)", table.Reason ?? "", string.Join(", ", table.Readers.Select(r => r.Name)));
        Changed?.Invoke(old, table);
        TaskCompletionSource done;
        lock (_gate)
        {
            done = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        done.TrySetResult();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var loop in new[] { _readLoop, _guardLoop })
        {
            if (loop is not null)
            {
                await loop.ConfigureAwait(false);
            }
        }

        _stop.Dispose();
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "routing: writes -> {Writer} {Reason}; reads -> [{Readers}]")]
    private static partial void LogTable(ILogger logger, string writer, string reason, string readers);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "etcd unreachable ({Reason}); retrying every second")]
    private static partial void LogEtcdUnreachable(ILogger logger, string reason);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "etcd reachable again; following it")]
    private static partial void LogEtcdBack(ILogger logger);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "etcd has not confirmed the view for {Age:0.0} s (bound {Bound} s): writes fail closed, only to a leader that confirms /leader over its REST API, for up to {Grace} s")]
    private static partial void LogStale(ILogger logger, double age, double bound, double grace);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "etcd confirmed the view again after {Age:0.0} s; following it")]
    private static partial void LogConfirmedAgain(ILogger logger, double age);
}
