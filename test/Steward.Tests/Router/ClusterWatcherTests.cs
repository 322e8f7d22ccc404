using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Core.Cluster;
using Steward.Router.Routing;
using Xunit.Abstractions;
using static Steward.Tests.Router.Views;

namespace Steward.Tests.Router;

/// <summary>
/// The watcher's stale guard against a fake store whose watch can go silent and whose reads can hang (a frozen etcd
/// member, or one cut off from quorum), and fake agent REST APIs. Short intervals on the real clock: confirm every
/// 100 ms, stale after 1 s.
/// </summary>
public sealed class ClusterWatcherTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private readonly FakeStore _store = new(Healthy());
    private readonly FakeAgents _agents = new();
    private HttpClient? _http;

    public Task InitializeAsync()
    {
        _http = new HttpClient(_agents);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        _http?.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_silent_watch_is_detected_within_the_bound_and_writes_fail_closed()
    {
        await using var watcher = await StartAsync();
        Assert.Equal(Backend("node1"), watcher.Table.Writer);

        _store.Freeze();   // the watch goes silent and reads hang until the store's deadline
        var clock = Stopwatch.StartNew();
        await Until(() => watcher.Table.Writer is null);
        var detected = clock.Elapsed;
        output.WriteLine($"stale watch detected {detected.TotalMilliseconds:0} ms after the freeze (bound {StaleAfter.TotalMilliseconds:0} ms after the last confirmed read)");

        Assert.True(watcher.IsStale);
        Assert.True(detected >= StaleAfter - Interval - TimeSpan.FromMilliseconds(50), $"failed closed after {detected.TotalMilliseconds:0} ms, before the bound");
        Assert.True(detected < StaleAfter + TimeSpan.FromSeconds(3), $"took {detected.TotalMilliseconds:0} ms");

        // node1's REST API does not confirm it leads: no writer, no leader (its sessions are cut), nothing routed there.
        await Until(() => watcher.Table.Leader is null);
        Assert.Null(watcher.Table.Writer);
    }

    [Fact]
    public async Task While_stale_writes_go_only_to_the_leader_its_own_rest_api_confirms()
    {
        _agents.Answer("node1", "/leader", HttpStatusCode.OK);
        await using var watcher = await StartAsync();

        _store.Freeze();
        await Until(() => watcher.IsStale);
        await Until(() => watcher.Table.Writer == Backend("node1"));
        Assert.Equal(Backend("node1"), watcher.Table.Leader);

        // Its lease is no longer provably valid: /leader 503. Within a confirmation round, no writer and no leader.
        _agents.Answer("node1", "/leader", HttpStatusCode.ServiceUnavailable);
        var clock = Stopwatch.StartNew();
        await Until(() => watcher.Table.Writer is null && watcher.Table.Leader is null);
        output.WriteLine($"unconfirmed leader dropped {clock.Elapsed.TotalMilliseconds:0} ms after its REST API stopped confirming");
    }

    [Fact]
    public async Task The_stale_guard_never_adds_a_writer_the_last_view_did_not_have()
    {
        _store.Set(Healthy("node2").WithMember(Member("node2", "replica")));   // node2 holds the key, still promoting
        _agents.Answer("node2", "/leader", HttpStatusCode.OK);
        await using var watcher = await StartAsync();
        Assert.Null(watcher.Table.Writer);

        _store.Freeze();
        await Until(() => watcher.IsStale);
        await Until(() => watcher.Table.Leader == Backend("node2"));   // confirmed, so its sessions are not cut
        Assert.Null(watcher.Table.Writer);
    }

    [Fact]
    public async Task A_confirmed_read_ends_the_stale_mode()
    {
        await using var watcher = await StartAsync();
        _store.Freeze();
        await Until(() => watcher.IsStale && watcher.Table.Writer is null);

        _store.Thaw();
        await Until(() => !watcher.IsStale && watcher.Table.Writer == Backend("node1"));
        Assert.True(watcher.ConfirmationAge < StaleAfter);
    }

    [Fact]
    public async Task Past_the_grace_without_failsafe_no_writes_are_routed_but_confirmed_replicas_keep_serving_reads()
    {
        _agents.Answer("node1", "/leader", HttpStatusCode.OK);
        _agents.Answer("node2", "/replica", HttpStatusCode.OK);
        // A grace of a few seconds: the stale-but-within-grace window must be long enough to be seen on a loaded machine.
        await using var watcher = await StartAsync(grace: TimeSpan.FromSeconds(5));
        _store.Freeze();
        await Until(() => watcher.IsStale && watcher.Table.Writer is not null);
        await Until(() => watcher.Table.Writer is null && watcher.Table.Leader is null);
        Assert.Contains("etcd_unreachable_grace", watcher.Table.Reason, StringComparison.Ordinal);
        Assert.Equal([Backend("node2")], watcher.Table.Readers);
    }

    [Fact]
    public async Task Past_the_grace_with_failsafe_a_leader_that_confirms_itself_keeps_the_writes()
    {
        _store.Set(Healthy() with { Config = new DynamicConfigEntry(new DynamicConfig { FailsafeMode = true }, 1) });
        _agents.Answer("node1", "/leader", HttpStatusCode.OK);
        await using var watcher = await StartAsync(grace: TimeSpan.FromSeconds(2));
        _store.Freeze();
        await Until(() => watcher.IsStale && watcher.ConfirmationAge > TimeSpan.FromSeconds(3));
        await Until(() => watcher.Table.Writer == Backend("node1"));
    }

    [Fact]
    public async Task A_healthy_store_with_a_silent_watch_is_confirmed_by_periodic_reads_and_never_goes_stale()
    {
        await using var watcher = await StartAsync();
        var reads = _store.Reads;
        var stale = false;
        watcher.Changed += (_, now) => stale |= now.Writer is null;

        // A change the watch does not announce (a stale watch on a member that still answers reads through the quorum).
        _store.Set(Healthy("node2"), wake: false);
        await Until(() => watcher.Table.Writer == Backend("node2"));

        var clock = Stopwatch.StartNew();
        await Until(() => clock.Elapsed > 3 * StaleAfter);
        Assert.False(stale || watcher.IsStale);
        Assert.True(_store.Reads - reads >= 10, $"{_store.Reads - reads} reads in {clock.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task A_watch_event_re_routes_at_once()
    {
        await using var watcher = await StartAsync(interval: TimeSpan.FromMinutes(1), staleAfter: TimeSpan.FromMinutes(5));
        var changed = watcher.WaitForChangeAsync(CancellationToken.None);
        _store.Set(Healthy("node3"));
        await changed.WaitAsync(Timeout);
        Assert.Equal(Backend("node3"), watcher.Table.Writer);
    }

    private async Task<ClusterWatcher> StartAsync(TimeSpan? grace = null, TimeSpan? interval = null, TimeSpan? staleAfter = null)
    {
        var watcher = new ClusterWatcher(_store, _http!, 1 << 20, grace ?? TimeSpan.FromSeconds(30), TimeProvider.System, NullLogger.Instance,
            interval ?? Interval, staleAfter ?? StaleAfter);
        await watcher.StartAsync(CancellationToken.None);
        return watcher;
    }

    private static async Task Until(Func<bool> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(deadline.Elapsed < Timeout, "condition not reached in time");
            await Task.Delay(10);
        }
    }

    /// <summary>Agents' REST APIs: 503 unless told otherwise.</summary>
    private sealed class FakeAgents : HttpMessageHandler
    {
        private readonly Dictionary<(int Port, string Path), HttpStatusCode> _answers = [];

        public void Answer(string member, string path, HttpStatusCode status)
        {
            lock (_answers)
            {
                _answers[(Api(member).Port, path)] = status;
            }
        }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            HttpStatusCode status;
            lock (_answers)
            {
                status = _answers.GetValueOrDefault((request.RequestUri!.Port, request.RequestUri.AbsolutePath), HttpStatusCode.ServiceUnavailable);
            }

            return Task.FromResult(new HttpResponseMessage(status));
        }
    }

    /// <summary>
    /// The store as the router uses it: linearizable reads and a watch. Frozen, the watch says nothing and a read fails
    /// after the request timeout (200 ms here), as EtcdClusterStore does against a frozen or isolated member.
    /// </summary>
    private sealed class FakeStore(ClusterView view) : IClusterStore
    {
        private readonly Lock _gate = new();
        private ClusterView _view = view;
        private bool _frozen;
        private int _reads;
        private long _loaded;
        private long _announced;
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Prefix => "/service/test/";
        public int Reads => Volatile.Read(ref _reads);

        public void Set(ClusterView view, bool wake = true)
        {
            TaskCompletionSource? done = null;
            lock (_gate)
            {
                _view = view with { Revision = _view.Revision + 1 };
                if (wake && !_frozen)
                {
                    _announced = _view.Revision;
                    done = _changed;
                    _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }

            done?.TrySetResult();
        }

        public void Freeze()
        {
            lock (_gate)
            {
                _frozen = true;
            }
        }

        public void Thaw()
        {
            lock (_gate)
            {
                _frozen = false;
            }
        }

        public async Task<ClusterView> LoadAsync(CancellationToken ct)
        {
            bool frozen;
            ClusterView view;
            lock (_gate)
            {
                frozen = _frozen;
                view = _view;
                if (!frozen)
                {
                    _loaded = view.Revision;
                }
            }

            if (frozen)
            {
                await Task.Delay(200, ct);
                throw new StoreUnavailableException("etcd load: no answer within 0.2 s");
            }

            Interlocked.Increment(ref _reads);
            return view;
        }

        /// <summary>As EtcdClusterStore: at once when the watch announced a change after the last load.</summary>
        public Task WaitForChangeAsync(CancellationToken ct)
        {
            lock (_gate)
            {
                return _announced > _loaded ? Task.CompletedTask : _changed.Task.WaitAsync(ct);
            }
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;

        public Task<LeaseState> KeepAliveAsync(int ttlSeconds, CancellationToken ct) => throw new NotSupportedException();
        public Task<LeaseState> RegrantAsync(int ttlSeconds, string leaderName, CancellationToken ct) => throw new NotSupportedException();
        public Task RevokeLeaseAsync(CancellationToken ct) => throw new NotSupportedException();
        public Task<bool> TryAcquireLeaderAsync(string name, CancellationToken ct) => throw new NotSupportedException();
        public Task<bool> HoldsLeaderAsync(string name, CancellationToken ct) => throw new NotSupportedException();
        public Task<bool> ReleaseLeaderAsync(string name, long leaseId, CancellationToken ct) => throw new NotSupportedException();
        public Task PutMemberAsync(string name, MemberData data, CancellationToken ct) => throw new NotSupportedException();
        public Task DeleteMemberAsync(string name, CancellationToken ct) => throw new NotSupportedException();
        public Task<bool> TryCreateInitializeAsync(string value, CancellationToken ct) => throw new NotSupportedException();
        public Task SetInitializeAsync(string systemId, CancellationToken ct) => throw new NotSupportedException();
        public Task DeleteInitializeAsync(CancellationToken ct) => throw new NotSupportedException();
        public Task<bool> SetConfigAsync(DynamicConfig config, long expectedModRevision, CancellationToken ct) => throw new NotSupportedException();
        public Task SetStatusAsync(ClusterStatus status, CancellationToken ct) => throw new NotSupportedException();
        public Task<bool> SetHistoryAsync(IReadOnlyList<HistoryEntry> history, long expectedModRevision, string leaderName, CancellationToken ct) => throw new NotSupportedException();
        public Task<bool> SetSyncStateAsync(SyncState? state, long expectedModRevision, string leaderName, CancellationToken ct) => throw new NotSupportedException();
        public Task<bool> TryCreateFailoverAsync(FailoverRequest request, CancellationToken ct) => throw new NotSupportedException();
        public Task<bool> DeleteFailoverAsync(long expectedModRevision, CancellationToken ct) => throw new NotSupportedException();
        public Task<long> RemoveClusterAsync(CancellationToken ct) => throw new NotSupportedException();
    }
}
