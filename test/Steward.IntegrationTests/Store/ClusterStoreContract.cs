using System.Text.Json;
using Steward.Core.Cluster;

namespace Steward.IntegrationTests.Store;

/// <summary>
/// The <see cref="IClusterStore"/> contract, run against every implementation so the in-memory store cannot drift from
/// etcd. Each flavour supplies a way to connect another agent to the same cluster, to write a raw value the way a
/// foreign writer could, and to let time pass (a fake clock advances; real time is waited for, in small polls).
/// </summary>
public abstract class ClusterStoreContract : IAsyncLifetime
{
    /// <summary>etcd raises shorter TTLs to its minimum (about 2 s with default settings).</summary>
    protected const int ShortTtl = 2;

    /// <summary>Real time a watch event may take to arrive (generous: CI machines are loaded).</summary>
    private static readonly TimeSpan WatchLatency = TimeSpan.FromSeconds(10);

    private readonly List<IClusterStore> _stores = [];
    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromSeconds(90));

    protected string Prefix { get; } = $"/service/t{Guid.NewGuid():N}"[..24] + "/";

    protected abstract TimeProvider Time { get; }

    /// <summary>A new agent's client on the same cluster and prefix, with no lease yet.</summary>
    protected abstract IClusterStore CreateStore();

    /// <summary>Writes <paramref name="value"/> under <c>Prefix + relativeKey</c>, bypassing the store's encoding.</summary>
    protected abstract Task PutRawAsync(string relativeKey, string value);

    /// <summary>Lets a little time pass: advances a fake clock, or waits on a real one.</summary>
    protected abstract Task TickAsync();

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }
        _testTimeout.Dispose();
    }

    protected IClusterStore Connect()
    {
        var store = CreateStore();
        _stores.Add(store);
        return store;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="within"/> has passed on <see cref="Time"/>.</summary>
    protected async Task EventuallyAsync(Func<Task<bool>> condition, TimeSpan within, string what)
    {
        var start = Time.GetTimestamp();
        while (!await condition())
        {
            if (Time.GetElapsedTime(start) > within)
            {
                Assert.Fail($"not within {within}: {what}");
            }
            await TickAsync();
        }
    }

    /// <summary>A guard against hanging tests, on the real clock.</summary>
    protected CancellationToken Ct => _testTimeout.Token;

    [Fact]
    public async Task Only_one_of_two_agents_acquires_leader()
    {
        var a = Connect();
        var b = Connect();
        await a.KeepAliveAsync(10, Ct);
        await b.KeepAliveAsync(10, Ct);

        Assert.True(await a.TryAcquireLeaderAsync("a", Ct));
        Assert.False(await b.TryAcquireLeaderAsync("b", Ct));

        var view = await b.LoadAsync(Ct);
        Assert.Equal("a", view.Leader?.Name);
        Assert.True(await a.HoldsLeaderAsync("a", Ct));
        Assert.False(await b.HoldsLeaderAsync("b", Ct));
        Assert.False(await b.HoldsLeaderAsync("a", Ct));
    }

    [Fact]
    public async Task Regrant_moves_the_held_leader_key_to_a_lease_of_the_new_ttl_and_leaves_anothers_key_alone()
    {
        var a = Connect();
        var b = Connect();
        var first = await a.KeepAliveAsync(10, Ct);
        await b.KeepAliveAsync(10, Ct);
        Assert.True(await a.TryAcquireLeaderAsync("a", Ct));

        var moved = await a.RegrantAsync(20, "a", Ct);
        Assert.NotEqual(first.LeaseId, moved.LeaseId);
        Assert.Equal(20, moved.TtlSeconds);
        var view = await a.LoadAsync(Ct);
        Assert.Equal(("a", moved.LeaseId), (view.Leader?.Name, view.Leader?.LeaseId));
        Assert.True(await a.HoldsLeaderAsync("a", Ct));

        // b does not hold the key: regranting must not take it.
        await b.RegrantAsync(20, "b", Ct);
        Assert.Equal("a", (await b.LoadAsync(Ct)).Leader?.Name);
    }

    [Fact]
    public async Task Release_by_a_non_holder_fails_and_by_the_holder_succeeds()
    {
        var a = Connect();
        var lease = (await a.KeepAliveAsync(10, Ct)).LeaseId;
        Assert.True(await a.TryAcquireLeaderAsync("a", Ct));

        Assert.False(await Connect().ReleaseLeaderAsync("b", lease, Ct));
        Assert.Equal("a", (await a.LoadAsync(Ct)).Leader?.Name);

        // Same name, another session (a second agent started with the same name): refused.
        var other = Connect();
        var otherLease = (await other.KeepAliveAsync(10, Ct)).LeaseId;
        Assert.False(await other.ReleaseLeaderAsync("a", otherLease, Ct));
        Assert.Equal("a", (await a.LoadAsync(Ct)).Leader?.Name);

        Assert.True(await a.ReleaseLeaderAsync("a", lease, Ct));
        Assert.Null((await a.LoadAsync(Ct)).Leader);
        Assert.False(await a.ReleaseLeaderAsync("a", lease, Ct));
    }

    [Fact]
    public async Task Leader_key_disappears_when_the_lease_expires()
    {
        var a = Connect();
        var lease = await a.KeepAliveAsync(ShortTtl, Ct);
        Assert.True(await a.TryAcquireLeaderAsync("a", Ct));
        var view = await a.LoadAsync(Ct);
        Assert.Equal(lease.LeaseId, view.Leader?.LeaseId);

        await EventuallyAsync(async () => (await a.LoadAsync(Ct)).Leader is null, TimeSpan.FromSeconds(20), "leader key expires with its lease");
        Assert.False(await a.HoldsLeaderAsync("a", Ct));
    }

    [Fact]
    public async Task Keepalive_keeps_a_live_lease_and_grants_a_new_one_after_expiry()
    {
        var a = Connect();
        var first = await a.KeepAliveAsync(ShortTtl, Ct);
        Assert.True(first.IsNew);
        Assert.True(first.TtlSeconds >= ShortTtl);

        var again = await a.KeepAliveAsync(ShortTtl, Ct);
        Assert.False(again.IsNew);
        Assert.Equal(first.LeaseId, again.LeaseId);
        Assert.True(again.RenewedAt >= first.RenewedAt);

        await a.PutMemberAsync("a", new MemberData { State = "running" }, Ct);
        await EventuallyAsync(async () => (await a.LoadAsync(Ct)).Members.Count == 0, TimeSpan.FromSeconds(20), "member key expires with its lease");

        var renewed = await a.KeepAliveAsync(ShortTtl, Ct);
        Assert.True(renewed.IsNew);
        Assert.NotEqual(first.LeaseId, renewed.LeaseId);
    }

    /// <summary>
    /// etcd answers a txn whose branch puts with an expired lease with NotFound "requested lease not found" instead of
    /// Succeeded=false. The store must say "not acquired" and forget the lease, so the next keepalive grants a new one.
    /// </summary>
    [Fact]
    public async Task Acquiring_with_an_expired_lease_fails_and_the_next_keepalive_grants_a_new_lease()
    {
        var a = Connect();
        var observer = Connect();
        var lease = await a.KeepAliveAsync(ShortTtl, Ct);
        await a.PutMemberAsync("a", new MemberData { State = "running" }, Ct);
        await EventuallyAsync(async () => (await observer.LoadAsync(Ct)).Members.Count == 0, TimeSpan.FromSeconds(20), "lease expires");

        Assert.False(await a.TryAcquireLeaderAsync("a", Ct));
        Assert.Null((await a.LoadAsync(Ct)).Leader);

        var next = await a.KeepAliveAsync(ShortTtl, Ct);
        Assert.True(next.IsNew);
        Assert.NotEqual(lease.LeaseId, next.LeaseId);
        Assert.True(await a.TryAcquireLeaderAsync("a", Ct));
    }

    [Fact]
    public async Task Revoking_the_lease_deletes_the_keys_bound_to_it()
    {
        var a = Connect();
        await a.KeepAliveAsync(10, Ct);
        await a.PutMemberAsync("a", new MemberData { State = "running" }, Ct);
        Assert.True(await a.TryAcquireLeaderAsync("a", Ct));

        await a.RevokeLeaseAsync(Ct);

        var view = await Connect().LoadAsync(Ct);
        Assert.Null(view.Leader);
        Assert.Empty(view.Members);
        await a.RevokeLeaseAsync(Ct);
    }

    /// <summary>A router's <c>routers/&lt;name&gt;</c> and <c>pause/&lt;name&gt;</c> (docs/pgbouncer.md): on its lease, read back in every view.</summary>
    [Fact]
    public async Task Router_registration_and_pause_answer_round_trip_and_go_with_the_routers_lease()
    {
        var router = Connect();
        var keys = (IRouterKeys)router;
        var agent = Connect();
        await Assert.ThrowsAsync<StoreUnavailableException>(() => keys.PutRouterAsync("r1", new RouterRegistration(), Ct)); // no lease yet
        var lease = await router.KeepAliveAsync(ShortTtl, Ct);
        await keys.PutRouterAsync("r1", new RouterRegistration { PgBouncers = ["10.0.0.5:6432"], PauseTimeout = 2.5 }, Ct);
        await keys.PutPauseAsync("r1", new PauseConfirmation
        {
            FailoverRevision = 77,
            PgBouncers = [new PgBouncerOutcome { Address = "10.0.0.5:6432", State = "paused" }, new PgBouncerOutcome { Address = "x:1", State = "unreachable", Detail = "refused" }],
        }, Ct);

        var view = await agent.LoadAsync(Ct);
        var registration = Assert.Single(view.Routers);
        Assert.Equal(("r1", lease.LeaseId, 2.5), (registration.Name, registration.LeaseId, registration.Data.PauseTimeout));
        Assert.Equal(["10.0.0.5:6432"], registration.Data.PgBouncers);
        var answer = Assert.Single(view.Pauses);
        Assert.Equal(("r1", 77L), (answer.Name, answer.Data.FailoverRevision));
        Assert.Equal(["paused", "unreachable"], answer.Data.PgBouncers.Select(p => p.State));
        Assert.Equal("refused", answer.Data.PgBouncers[1].Detail);

        await keys.DeletePauseAsync("r1", Ct);
        Assert.Empty((await agent.LoadAsync(Ct)).Pauses);
        await EventuallyAsync(async () => (await agent.LoadAsync(Ct)).Routers.Count == 0, TimeSpan.FromSeconds(20), "the registration expires with the router's lease");
    }

    [Fact]
    public async Task Member_keys_round_trip_Patroni_json()
    {
        var a = Connect();
        var lease = await a.KeepAliveAsync(10, Ct);
        var data = new MemberData
        {
            ConnUrl = "postgres://127.0.0.1:5432/postgres",
            ApiUrl = "http://127.0.0.1:8008/patroni",
            State = "running",
            Role = "replica",
            Version = "0.1.0",
            Timeline = 3,
            XlogLocation = 50331808,
            ReceiveLsn = 50331808,
            ReplayLsn = 50331700,
            ReplicationState = "streaming",
            PendingRestart = true,
            Tags = new Dictionary<string, object?> { ["nofailover"] = true },
        };
        await a.PutMemberAsync("pg1", data, Ct);
        await a.PutMemberAsync("pg0", new MemberData { State = "stopped" }, Ct);

        var view = await Connect().LoadAsync(Ct);
        Assert.Equal(["pg0", "pg1"], view.Members.Select(m => m.Name));
        var member = view.GetMember("pg1")!;
        Assert.Equal(lease.LeaseId, member.LeaseId);
        Assert.Equal(data with { Tags = null }, member.Data with { Tags = null });
        Assert.True(((JsonElement)member.Data.Tags!["nofailover"]!).GetBoolean());

        await a.DeleteMemberAsync("pg0", Ct);
        Assert.Equal(["pg1"], (await a.LoadAsync(Ct)).Members.Select(m => m.Name));
    }

    [Fact]
    public async Task Member_json_written_by_Patroni_with_unknown_fields_parses()
    {
        await PutRawAsync("members/pg2", """
            {"conn_url":"postgres://10.0.0.2:5432/postgres","api_url":"http://10.0.0.2:8008/patroni","state":"running",
             "role":"primary","version":"4.0.4","xlog_location":67108960,"timeline":2,"dcs_last_seen":1728492027}
            """);
        var view = await Connect().LoadAsync(Ct);
        var member = Assert.Single(view.Members);
        Assert.Equal("primary", member.Data.Role);
        Assert.Equal(67108960, member.Data.XlogLocation);
    }

    [Fact]
    public async Task Garbage_in_member_and_config_keys_is_skipped_not_thrown()
    {
        var a = Connect();
        await a.KeepAliveAsync(10, Ct);
        await a.PutMemberAsync("good", new MemberData { State = "running" }, Ct);
        await PutRawAsync("members/bad", "{not json");
        await PutRawAsync("members/array", "[1,2]");
        await PutRawAsync("config", "\"just a string\"");
        await PutRawAsync("status", "{\"optime\":\"not a number\"}");
        await PutRawAsync("history", "{\"oops\":1}");
        await PutRawAsync("failover", "nope");

        var view = await a.LoadAsync(Ct);
        Assert.Equal("good", Assert.Single(view.Members).Name);
        Assert.Null(view.Config);
        Assert.Null(view.Status);
        Assert.Empty(view.History);
        Assert.Null(view.Failover);
    }

    [Fact]
    public async Task Config_written_by_Patroni_with_numbers_and_booleans_parses()
    {
        await PutRawAsync("config", """
            {"ttl":30,"loop_wait":10,"retry_timeout":"10","maximum_lag_on_failover":1048576,"check_timeline":true,
             "postgresql":{"use_pg_rewind":true,"use_slots":false,
               "parameters":{"max_connections":100,"hot_standby":true,"wal_log_hints":false,"shared_buffers":"128MB","archive_command":null}}}
            """);
        var config = (await Connect().LoadAsync(Ct)).Config!.Value;
        Assert.Equal(30, config.Ttl);
        Assert.Equal(10, config.RetryTimeout);
        Assert.False(config.Postgresql.UseSlots);
        Assert.Equal("100", config.Postgresql.Parameters["max_connections"]);
        Assert.Equal("on", config.Postgresql.Parameters["hot_standby"]);
        Assert.Equal("off", config.Postgresql.Parameters["wal_log_hints"]);
        Assert.Equal("128MB", config.Postgresql.Parameters["shared_buffers"]);
        Assert.False(config.Postgresql.Parameters.ContainsKey("archive_command"));
    }

    [Fact]
    public async Task Config_compare_and_set_refuses_a_stale_revision()
    {
        var a = Connect();
        var config = new DynamicConfig
        {
            Ttl = 6,
            Postgresql = new DynamicPostgresConfig { Parameters = new Dictionary<string, string> { ["max_connections"] = "100" } },
        };
        Assert.True(await a.SetConfigAsync(config, 0, Ct));
        Assert.False(await a.SetConfigAsync(config, 0, Ct));

        var read = (await a.LoadAsync(Ct)).Config!;
        Assert.Equal(6, read.Value.Ttl);
        Assert.Equal("100", read.Value.Postgresql.Parameters["max_connections"]);

        Assert.True(await a.SetConfigAsync(config with { Ttl = 10 }, read.ModRevision, Ct));
        Assert.False(await Connect().SetConfigAsync(config with { Ttl = 20 }, read.ModRevision, Ct));
        Assert.Equal(10, (await a.LoadAsync(Ct)).Config!.Value.Ttl);
    }

    [Fact]
    public async Task Initialize_race_has_exactly_one_winner()
    {
        var agents = Enumerable.Range(0, 5).Select(_ => Connect()).ToList();
        var results = await Task.WhenAll(agents.Select(a => a.TryCreateInitializeAsync("", Ct)));
        Assert.Single(results, won => won);

        var winner = agents[Array.IndexOf(results, true)];
        Assert.Equal("", (await winner.LoadAsync(Ct)).Initialize);
        await winner.SetInitializeAsync("7430273838347296777", Ct);
        Assert.Equal("7430273838347296777", (await agents[0].LoadAsync(Ct)).Initialize);

        await winner.DeleteInitializeAsync(Ct);
        Assert.Null((await agents[0].LoadAsync(Ct)).Initialize);
        Assert.True(await agents[1].TryCreateInitializeAsync("", Ct));
    }

    [Fact]
    public async Task History_status_and_failover_round_trip()
    {
        var a = Connect();
        await a.KeepAliveAsync(ShortTtl * 5, Ct);
        Assert.True(await a.TryAcquireLeaderAsync("pg1", Ct));
        var history = new List<HistoryEntry>
        {
            new(1, 50331808, "no recovery target specified", DateTimeOffset.Parse("2025-10-09T16:40:27.38+00:00"), "pg2"),
            new(2, 67108960, "no recovery target specified", DateTimeOffset.Parse("2025-10-09T17:01:02.123456+02:00"), "pg1"),
        };
        Assert.True(await a.SetHistoryAsync(history, 0, "pg1", Ct));
        await a.SetStatusAsync(new ClusterStatus { Optime = 67109000, Timeline = 3 }, Ct);
        var request = new FailoverRequest { Leader = "pg1", Candidate = "pg2", ScheduledAt = DateTimeOffset.Parse("2025-10-10T08:00:00+00:00") };
        Assert.True(await a.TryCreateFailoverAsync(request, Ct));
        Assert.False(await a.TryCreateFailoverAsync(request with { Candidate = "pg3" }, Ct));

        var view = await Connect().LoadAsync(Ct);
        Assert.Equal(history, view.History);
        Assert.Equal(new ClusterStatus { Optime = 67109000, Timeline = 3 }, view.Status);
        Assert.Equal(request with { ModRevision = view.Failover!.ModRevision }, view.Failover);

        Assert.False(await a.DeleteFailoverAsync(view.Failover.ModRevision - 1, Ct));
        Assert.True(await a.DeleteFailoverAsync(view.Failover.ModRevision, Ct));
        Assert.Null((await a.LoadAsync(Ct)).Failover);
        Assert.False(await a.DeleteFailoverAsync(0, Ct));
    }

    [Fact]
    public async Task History_written_by_Patroni_parses_including_short_rows()
    {
        await PutRawAsync("history", """[[1,50331808,"no recovery target specified"],[2,67108960,"no recovery target specified","2025-10-09T16:40:27.380000+00:00","pg2"]]""");
        var history = (await Connect().LoadAsync(Ct)).History;
        Assert.Equal(2, history.Count);
        Assert.Null(history[0].NewLeader);
        Assert.Equal(("pg2", 67108960L), (history[1].NewLeader, history[1].Lsn));
    }

    [Fact]
    public async Task WaitForChange_completes_after_another_clients_put()
    {
        var a = Connect();
        var b = Connect();
        await a.LoadAsync(Ct);
        var change = a.WaitForChangeAsync(Ct);
        await TickAsync();
        Assert.False(change.IsCompleted, "nothing changed yet");

        await b.SetStatusAsync(new ClusterStatus { Optime = 1 }, Ct);

        await change.WaitAsync(WatchLatency, Ct);
    }

    [Fact]
    public async Task WaitForChange_completes_at_once_for_a_change_made_since_the_last_load()
    {
        var a = Connect();
        await a.LoadAsync(Ct);
        var first = a.WaitForChangeAsync(Ct);
        await Connect().SetStatusAsync(new ClusterStatus { Optime = 2 }, Ct);
        await first.WaitAsync(WatchLatency, Ct);

        var second = a.WaitForChangeAsync(Ct);
        Assert.True(second.IsCompleted, "the change was not read yet");
        await a.LoadAsync(Ct);
        var third = a.WaitForChangeAsync(Ct);
        await TickAsync();
        Assert.False(third.IsCompleted, "nothing changed since the load");
    }

    [Fact]
    public async Task Remove_cluster_deletes_every_key_under_the_prefix()
    {
        var a = Connect();
        await a.KeepAliveAsync(ShortTtl * 5, Ct);
        Assert.True(await a.TryAcquireLeaderAsync("node1", Ct));
        await a.PutMemberAsync("node1", new MemberData { State = "running" }, Ct);
        Assert.True(await a.TryCreateInitializeAsync("7000000000000000001", Ct));
        Assert.True(await a.SetConfigAsync(new DynamicConfig(), 0, Ct));
        Assert.True(await a.SetHistoryAsync([new HistoryEntry(1, 100, "no recovery target specified", DateTimeOffset.UnixEpoch, "node1")], 0, "node1", Ct));
        Assert.True(await a.SetSyncStateAsync(SyncState.For("node1", ["node2"]), 0, "node1", Ct));

        Assert.Equal(6, await Connect().RemoveClusterAsync(Ct));

        var view = await a.LoadAsync(Ct);
        Assert.Null(view.Leader);
        Assert.Empty(view.Members);
        Assert.Null(view.Initialize);
        Assert.Null(view.Config);
        Assert.Empty(view.History);
        Assert.Null(view.Sync);
        Assert.Equal(0, await a.RemoveClusterAsync(Ct));
    }

    [Fact]
    public async Task History_is_written_only_by_compare_and_swap_while_the_leader_key_is_held()
    {
        var a = Connect();
        var b = Connect();
        var aLease = (await a.KeepAliveAsync(ShortTtl * 5, Ct)).LeaseId;
        await b.KeepAliveAsync(ShortTtl * 5, Ct);
        IReadOnlyList<HistoryEntry> first = [new HistoryEntry(1, 100, "promoted", DateTimeOffset.UnixEpoch, "node1") { NewTimeline = 2 }];

        Assert.False(await a.SetHistoryAsync(first, 0, "node1", Ct)); // nobody holds the key
        Assert.True(await a.TryAcquireLeaderAsync("node1", Ct));
        Assert.False(await b.SetHistoryAsync(first, 0, "node1", Ct)); // the key is node1's, but on a's lease
        Assert.False(await a.SetHistoryAsync(first, 0, "node2", Ct)); // the key holds another name
        Assert.True(await a.SetHistoryAsync(first, 0, "node1", Ct));
        Assert.False(await a.SetHistoryAsync(first, 0, "node1", Ct)); // 0 means "absent": it exists now

        var view = await b.LoadAsync(Ct);
        Assert.Equal(first, view.History);
        Assert.True(view.HistoryModRevision > 0);
        IReadOnlyList<HistoryEntry> second = [.. first, new HistoryEntry(2, 200, "promoted", DateTimeOffset.UnixEpoch, "node1") { NewTimeline = 3 }];
        Assert.False(await a.SetHistoryAsync(second, view.HistoryModRevision - 1, "node1", Ct)); // stale revision
        Assert.True(await a.SetHistoryAsync(second, view.HistoryModRevision, "node1", Ct));
        Assert.False(await a.SetHistoryAsync(first, view.HistoryModRevision, "node1", Ct)); // a second writer from the same read loses
        Assert.Equal(second, (await b.LoadAsync(Ct)).History);

        Assert.True(await a.ReleaseLeaderAsync("node1", aLease, Ct));
        var after = await a.LoadAsync(Ct);
        Assert.False(await a.SetHistoryAsync(first, after.HistoryModRevision, "node1", Ct)); // released: no longer the leader
        Assert.Equal(second, (await b.LoadAsync(Ct)).History);
    }

    [Fact]
    public async Task Sync_key_round_trips_in_patroni_shape_and_is_leader_guarded()
    {
        var a = Connect();
        var b = Connect();
        await a.KeepAliveAsync(ShortTtl * 5, Ct);
        await b.KeepAliveAsync(ShortTtl * 5, Ct);
        Assert.True(await a.TryAcquireLeaderAsync("node1", Ct));

        Assert.False(await b.SetSyncStateAsync(SyncState.For("node1", ["node2"]), 0, "node1", Ct));
        Assert.True(await a.SetSyncStateAsync(SyncState.For("node1", ["node3", "node2"]), 0, "node1", Ct));
        var view = await b.LoadAsync(Ct);
        Assert.Equal("node1", view.Sync!.Leader);
        Assert.Equal(["node2", "node3"], view.Sync.Standbys);
        Assert.True(view.Sync.IsStandby("node3"));
        Assert.False(view.Sync.IsStandby("node1"));

        Assert.False(await a.SetSyncStateAsync(SyncState.For("node1", []), view.Sync.ModRevision + 1, "node1", Ct));
        Assert.True(await a.SetSyncStateAsync(SyncState.For("node1", []), view.Sync.ModRevision, "node1", Ct));
        view = await b.LoadAsync(Ct);
        Assert.Empty(view.Sync!.Standbys);
        Assert.Null(view.Sync.SyncStandby);

        Assert.False(await b.SetSyncStateAsync(null, view.Sync.ModRevision, "node1", Ct));
        Assert.True(await a.SetSyncStateAsync(null, view.Sync.ModRevision, "node1", Ct));
        Assert.Null((await b.LoadAsync(Ct)).Sync);
    }
}
