using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Router.PgBouncer;
using Steward.Router.Routing;

namespace Steward.Router.Dashboard;

/// <summary>
/// What the dashboard shows: the router's etcd view, each member's <c>/patroni</c> (for replay timestamps, probed once
/// a second) and the listeners' counters, as one JSON snapshot; plus the last minutes of lag and session samples for
/// the chart. <see cref="WaitForUpdateAsync"/> completes on every etcd change and after every probe round.
/// </summary>
internal sealed class DashboardState : IAsyncDisposable
{
    /// <summary>Samples kept for the chart: one a second, five minutes.</summary>
    public const int SampleCount = 300;

    private static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromMilliseconds(800);

    private readonly RouterConfig _config;
    private readonly ClusterWatcher _watcher;
    private readonly IReadOnlyList<Listener> _listeners;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly PgBouncerCoordinator? _pgBouncers;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly Queue<JsonObject> _samples = new();
    private TaskCompletionSource _updated = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IReadOnlyDictionary<string, JsonElement> _probes = new Dictionary<string, JsonElement>();
    private Task? _loop;

    public DashboardState(RouterConfig config, ClusterWatcher watcher, IReadOnlyList<Listener> listeners, HttpClient http, TimeProvider time,
        PgBouncerCoordinator? pgBouncers = null)
    {
        _pgBouncers = pgBouncers;
        _config = config;
        _watcher = watcher;
        _listeners = listeners;
        _http = http;
        _time = time;
    }

    public void Start()
    {
        _watcher.ViewChanged += OnViewChanged;
        _loop = Task.Run(() => ProbeLoopAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>Completes at the next etcd change or probe round.</summary>
    public Task WaitForUpdateAsync(CancellationToken ct)
    {
        lock (_gate)
        {
            return _updated.Task.WaitAsync(ct);
        }
    }

    private void OnViewChanged(ClusterView view) => Signal();

    private void Signal()
    {
        TaskCompletionSource done;
        lock (_gate)
        {
            done = _updated;
            _updated = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        done.TrySetResult();
    }

    private async Task ProbeLoopAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(ProbeInterval, _time);
        do
        {
            if (_watcher.View is { } view)
            {
                var results = await Task.WhenAll(view.Members.Select(m => ProbeAsync(m, ct))).ConfigureAwait(false);
                Volatile.Write(ref _probes, results.Where(r => r.Body is not null).ToDictionary(r => r.Name, r => r.Body!.Value));
                AddSample(view);
            }

            Signal();
        }
        while (await SafeTickAsync(timer, ct).ConfigureAwait(false));
    }

    private static async Task<bool> SafeTickAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            return await timer.WaitForNextTickAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task<(string Name, JsonElement? Body)> ProbeAsync(Member member, CancellationToken ct)
    {
        if (member.Data.ApiUrl is not { } api || ConnUrl.ApiBase(api) is not { } baseUri)
        {
            return (member.Name, null);
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(ProbeTimeout);
        try
        {
            using var response = await _http.GetAsync(new Uri(baseUri, "/patroni"), cts.Token).ConfigureAwait(false);
            await using var body = await response.Content.ReadAsStreamAsync(cts.Token).ConfigureAwait(false);
            using var doc = await JsonDocument.ParseAsync(body, cancellationToken: cts.Token).ConfigureAwait(false);
            return (member.Name, doc.RootElement.Clone());
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException)
        {
            return (member.Name, null);
        }
    }

    private void AddSample(ClusterView view)
    {
        var lag = new JsonObject();
        foreach (var m in view.Members.Where(m => m.Name != view.Leader?.Name))
        {
            lag[m.Name] = LagBytes(view, m);
        }

        var sessions = new JsonObject();
        foreach (var l in _listeners)
        {
            sessions[l.Stats.Name] = l.Stats.Current;
        }

        var sample = new JsonObject { ["t"] = _time.GetUtcNow().ToUnixTimeMilliseconds(), ["lag"] = lag, ["sessions"] = sessions };
        lock (_gate)
        {
            _samples.Enqueue(sample);
            while (_samples.Count > SampleCount)
            {
                _samples.Dequeue();
            }
        }
    }

    private static long? LagBytes(ClusterView view, Member m) =>
        view.Leader?.Name == m.Name ? 0
        : (view.Status?.Optime ?? view.LeaderMember?.Data.XlogLocation) is { } l && m.Data.XlogLocation is { } x ? Math.Max(0, l - x) : null;

    /// <summary>The whole page's data, as the dashboard's script renders it.</summary>
    public JsonObject Snapshot()
    {
        var now = _time.GetUtcNow();
        var view = _watcher.View;
        var table = _watcher.Table;
        var probes = Volatile.Read(ref _probes);
        var result = new JsonObject
        {
            ["scope"] = _config.Scope,
            ["time"] = now.ToString("O", CultureInfo.InvariantCulture),
            ["revision"] = view?.Revision,
            ["system_id"] = view?.Initialize,
            ["leader"] = view?.Leader?.Name,
            ["writer"] = table.Writer?.Name,
            ["reason"] = table.Reason,
            ["etcd_stale"] = _watcher.IsStale,
            ["paused"] = view?.Config?.Value.Pause == true,
            ["failover"] = view?.Failover is { } f ? new JsonObject { ["leader"] = f.Leader, ["candidate"] = f.Candidate } : null,
            ["switchover"] = _config.Dashboard is null
                ? new JsonObject { ["enabled"] = false, ["message"] = DashboardEndpoints.DisabledMessage }
                : new JsonObject { ["enabled"] = true },
        };

        var members = new JsonArray();
        foreach (var m in view?.Members ?? [])
        {
            var isLeader = view!.Leader?.Name == m.Name;
            probes.TryGetValue(m.Name, out var probe);
            members.Add((JsonNode)new JsonObject
            {
                ["name"] = m.Name,
                ["role"] = isLeader ? "leader" : m.Data.Role ?? "unknown",
                ["sync_standby"] = !isLeader && view.Sync is { } sync && sync.Leader == view.Leader?.Name && sync.IsStandby(m.Name),
                ["state"] = m.Data.State,
                ["replication_state"] = m.Data.ReplicationState,
                ["timeline"] = m.Data.Timeline,
                ["host"] = m.Data.ConnUrl is { } url && ConnUrl.Parse(url) is { } hp ? hp.ToString() : null,
                ["lag_bytes"] = isLeader ? null : LagBytes(view, m),
                ["lag_seconds"] = isLeader ? null : LagSeconds(probe, now),
                ["receive_lsn"] = m.Data.ReceiveLsn,
                ["replay_lsn"] = m.Data.ReplayLsn,
                ["pending_restart"] = m.Data.PendingRestart == true,
                ["api_reachable"] = probe.ValueKind == JsonValueKind.Object,
                ["readable"] = table.Readers.Any(r => r.Name == m.Name),
            });
        }

        result["members"] = members;
        result["listeners"] = RouterHost.StatsJson(_config, _watcher, _listeners, null)["listeners"]!.DeepClone();
        result["pgbouncers"] = RouterHost.PgBouncersJson(_pgBouncers);
        result["history"] = new JsonArray((view?.History ?? []).Reverse().Take(10).Select(h => (JsonNode)new JsonObject
        {
            ["timeline"] = h.Timeline,
            ["lsn"] = h.Lsn,
            ["reason"] = h.Reason,
            ["time"] = h.Time.ToString("O", CultureInfo.InvariantCulture),
            ["new_leader"] = h.NewLeader,
        }).ToArray());
        lock (_gate)
        {
            result["samples"] = new JsonArray(_samples.Select(s => (JsonNode)s.DeepClone()).ToArray());
        }

        return result;
    }

    /// <summary>
    /// Replay delay in seconds, from the member's <c>/patroni</c>: 0 when everything received is replayed, else the age of
    /// the last replayed transaction (PostgreSQL's usual <c>now() - pg_last_xact_replay_timestamp()</c>).
    /// </summary>
    private static double? LagSeconds(JsonElement probe, DateTimeOffset now)
    {
        if (probe.ValueKind != JsonValueKind.Object || !probe.TryGetProperty("xlog", out var xlog) || xlog.ValueKind != JsonValueKind.Object
            || !xlog.TryGetProperty("replayed_location", out var replayed))
        {
            return null;
        }

        if (xlog.TryGetProperty("received_location", out var received) && received.ValueKind == JsonValueKind.Number
            && replayed.ValueKind == JsonValueKind.Number && received.GetInt64() <= replayed.GetInt64())
        {
            return 0;
        }

        return xlog.TryGetProperty("replayed_timestamp", out var ts) && ts.ValueKind == JsonValueKind.String
               && DateTimeOffset.TryParse(ts.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out var at)
            ? Math.Round(Math.Max(0, (now - at).TotalSeconds), 1)
            : null;
    }

    public async ValueTask DisposeAsync()
    {
        _watcher.ViewChanged -= OnViewChanged;
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        _stop.Dispose();
    }
}
