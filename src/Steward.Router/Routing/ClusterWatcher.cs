using Microsoft.Extensions.Logging;
using Steward.Core.Cluster;

namespace Steward.Router.Routing;

/// <summary>
/// Keeps the <see cref="RoutingTable"/> current by etcd watch (a change of <c>leader</c> re-routes within milliseconds,
/// not after polling). When etcd cannot be reached it keeps the last view for a bounded grace, confirming it every
/// second through the agents' REST API: the writer must answer <c>/leader</c> with 200, readers <c>/replica</c>. It
/// fails closed: past the grace, or when a check fails, that member gets no connections.
/// </summary>
public sealed partial class ClusterWatcher : IAsyncDisposable
{
    private readonly IClusterStore _store;
    private readonly HttpClient _http;
    private readonly long _maxLag;
    private readonly TimeSpan _grace;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RoutingTable _table = RoutingTable.Empty;
    private ClusterView? _view;
    private Task? _loop;

    public ClusterWatcher(IClusterStore store, HttpClient http, long maxLag, TimeSpan grace, TimeProvider time, ILogger log)
    {
        _store = store;
        _http = http;
        _maxLag = maxLag;
        _grace = grace;
        _time = time;
        _log = log;
    }

    public RoutingTable Table => Volatile.Read(ref _table);

    /// <summary>The last view read from etcd (null before the first read); kept while etcd is unreachable.</summary>
    public ClusterView? View => Volatile.Read(ref _view);

    /// <summary>Raised (on the watcher's thread) after every read of the cluster from etcd, whether or not routing changed.</summary>
    public event Action<ClusterView>? ViewChanged;

    /// <summary>Raised (on the watcher's thread) after every table change, with the old and the new table.</summary>
    public event Action<RoutingTable, RoutingTable>? Changed;

    /// <summary>Reads the cluster once (throws <see cref="StoreUnavailableException"/> if etcd cannot be reached), then follows it.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        var view = await _store.LoadAsync(ct).ConfigureAwait(false);
        PublishView(view);
        _loop = Task.Run(() => LoopAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>Completes at the next table change.</summary>
    public Task WaitForChangeAsync(CancellationToken ct)
    {
        lock (_gate)
        {
            return _changed.Task.WaitAsync(ct);
        }
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        DateTimeOffset? unreachableSince = null;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (unreachableSince is null)
                {
                    await _store.WaitForChangeAsync(ct).ConfigureAwait(false);
                }

                var view = await _store.LoadAsync(ct).ConfigureAwait(false);
                if (unreachableSince is not null)
                {
                    LogEtcdBack(_log);
                    unreachableSince = null;
                }

                PublishView(view);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (StoreUnavailableException e)
            {
                var now = _time.GetUtcNow();
                if (unreachableSince is null)
                {
                    LogEtcdUnreachable(_log, e.Message, _grace.TotalSeconds);
                }

                unreachableSince ??= now;
                var confirmed = now - unreachableSince > _grace
                    ? RoutingTable.Empty with { Reason = $"etcd unreachable for more than {_grace.TotalSeconds:0} s" }
                    : await ConfirmAsync(Table, ct).ConfigureAwait(false);
                Publish(confirmed);
                await Task.Delay(TimeSpan.FromSeconds(1), _time, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The last table, keeping only the members whose REST API still confirms their role.</summary>
    private async Task<RoutingTable> ConfirmAsync(RoutingTable table, CancellationToken ct)
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
            Reason = writerOk ? table.Reason : "etcd unreachable and the last known leader does not confirm it leads",
        };
    }

    private async Task<bool> AnswersAsync(Backend backend, string path, CancellationToken ct)
    {
        if (backend.Api is null)
        {
            return false;
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(TimeSpan.FromSeconds(1));
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

    private void PublishView(ClusterView view)
    {
        Volatile.Write(ref _view, view);
        Publish(RoutingTable.From(view, _maxLag));
        ViewChanged?.Invoke(view);
    }

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
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        _stop.Dispose();
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "routing: writes -> {Writer} {Reason}; reads -> [{Readers}]")]
    private static partial void LogTable(ILogger logger, string writer, string reason, string readers);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "etcd unreachable ({Reason}); keeping the last view for up to {Grace} s, confirmed through the agents' REST API")]
    private static partial void LogEtcdUnreachable(ILogger logger, string reason, double grace);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "etcd reachable again; following it")]
    private static partial void LogEtcdBack(ILogger logger);
}
