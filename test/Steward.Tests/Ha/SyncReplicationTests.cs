using Steward.Core.Cluster;
using Steward.Core.Ha;
using Steward.Core.Postgres;
using static Steward.Tests.Ha.Scenario;

namespace Steward.Tests.Ha;

/// <summary>
/// Synchronous mode's pure parts: who may promote (the decider), which standbys the leader picks, and the order in which
/// it changes synchronous_standby_names and the sync key (the key always names every standby PostgreSQL may wait for).
/// </summary>
public sealed class SyncReplicationTests
{
    private static readonly DynamicConfig Sync = new() { SynchronousMode = true };
    private static readonly DynamicConfig Strict = new() { SynchronousMode = true, SynchronousModeStrict = true };

    private static Scenario WithSyncKey(Scenario s, string leader, params string[] standbys) =>
        s.WithCluster(c => c with { Sync = SyncState.For(leader, standbys) });

    // ---- the decider: only a synchronous standby on record may promote ----

    [Fact]
    public void A_replica_not_on_record_in_the_sync_key_does_not_promote()
    {
        var plan = WithSyncKey(NoLeader("node2").WithSettings(_ => Sync), "node1", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn, reachable: false)).Decide();
        Assert.Empty(plan.Steps);
        Assert.Contains("'node2' is not a synchronous standby (sync key: node3", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_synchronous_standby_promotes_even_behind_the_lag_limit_and_ignores_an_asynchronous_replica_ahead()
    {
        var plan = WithSyncKey(NoLeader("node2").WithSettings(_ => Sync with { MaximumLagOnFailover = 0 }), "node1", "node2")
            .WithCluster(c => c with { Status = new ClusterStatus { Optime = Pg.DefaultLsn + 100, Timeline = 1 } })
            .Peers(Peer("node3", Pg.DefaultLsn + 100)).Decide();
        Assert.Equal([new AcquireLeader(), new Promote("no leader")], plan.Steps);
    }

    [Fact]
    public void Without_synchronous_mode_the_same_replica_waits_for_the_one_ahead()
    {
        var plan = WithSyncKey(NoLeader("node2"), "node1", "node2").Peers(Peer("node3", Pg.DefaultLsn + 100)).Decide();
        Assert.Empty(plan.Steps);
        Assert.Contains("'node3' is ahead", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_synchronous_standbys_on_record_the_one_behind_waits_for_the_one_ahead()
    {
        var plan = WithSyncKey(NoLeader("node2").WithSettings(_ => Sync), "node1", "node2", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn + 100)).Decide();
        Assert.Empty(plan.Steps);
        Assert.Contains("'node3' is ahead", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void With_no_standby_on_record_anyone_may_promote_unless_strict()
    {
        var relaxed = WithSyncKey(NoLeader("node2").WithSettings(_ => Sync), "node1").Peers().Decide();
        Assert.Equal([new AcquireLeader(), new Promote("no leader")], relaxed.Steps);

        var strict = WithSyncKey(NoLeader("node2").WithSettings(_ => Strict), "node1").Peers().Decide();
        Assert.Empty(strict.Steps);
        Assert.Contains("synchronous_mode_strict is on and no synchronous standby is on record", strict.Message, StringComparison.Ordinal);

        var noKey = NoLeader("node2").WithSettings(_ => Strict).Peers().Decide();
        Assert.Empty(noKey.Steps);
    }

    [Fact]
    public void The_leader_named_in_the_sync_key_may_take_over_in_strict_mode()
    {
        Assert.Null(SyncReplication.PromotionBlocked(Strict, SyncState.For("node1", []), "node1"));
        Assert.NotNull(SyncReplication.PromotionBlocked(Strict, SyncState.For("node1", []), "node2"));
        Assert.Null(SyncReplication.PromotionBlocked(new DynamicConfig(), SyncState.For("node1", ["node3"]), "node2"));
    }

    [Fact]
    public void A_switchover_in_synchronous_mode_goes_only_to_a_synchronous_standby()
    {
        var toAsync = WithSyncKey(PrimaryHoldingTheLock().WithSettings(_ => Sync), "node1", "node3").Failover("node1", "node2").Decide();
        Assert.Contains("switchover cancelled: no healthy candidate 'node2' (synchronous mode", toAsync.Message, StringComparison.Ordinal);

        var toSync = WithSyncKey(PrimaryHoldingTheLock().WithSettings(_ => Sync), "node1", "node3").Failover("node1", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn)).Decide();
        Assert.Contains(toSync.Steps, s => s is ReleaseLeader);
    }

    [Fact]
    public void A_failover_request_naming_an_asynchronous_candidate_is_ignored_and_the_election_runs()
    {
        var plan = WithSyncKey(NoLeader("node3").WithSettings(_ => Sync), "node1", "node3").Failover(null, "node2")
            .Peers(Peer("node2", Pg.DefaultLsn)).Decide();
        Assert.Equal([new AcquireLeader(), new Promote("no leader")], plan.Steps);
        Assert.Contains("candidate 'node2' 'node2' is not a synchronous standby", plan.Message, StringComparison.Ordinal);
    }

    // ---- which standbys ----

    private static ClusterView Members(params (string Name, bool NoSync)[] members) => new()
    {
        Members = [.. members.Select(m => new Member(m.Name, new MemberData
        {
            State = "running", Role = "replica",
            Tags = m.NoSync ? new Dictionary<string, object?> { ["nosync"] = true } : null,
        }, 1, 1))],
    };

    private static PgState Primary(long lsn, params (string Name, string State, long Flush)[] standbys) => new()
    {
        Running = true, Accepting = true, InRecovery = false, WriteLsn = lsn,
        Replication = [.. standbys.Select(s => new ReplicationConnection("replicator", s.Name, null, s.State, "async", s.Flush) { FlushLsn = s.Flush })],
    };

    [Fact]
    public void Choose_takes_streaming_members_without_nosync_least_lagging_first_and_keeps_the_current_ones()
    {
        var cluster = Members(("node2", false), ("node3", false), ("node4", true));
        var pg = Primary(1000, ("node2", "streaming", 900), ("node3", "streaming", 990), ("node4", "streaming", 1000), ("node5", "streaming", 1000), ("node6", "catchup", 1000));
        Assert.Equal(["node3"], SyncReplication.Choose("node1", cluster, pg, Sync, []));
        Assert.Equal(["node2"], SyncReplication.Choose("node1", cluster, pg, Sync, ["node2"]));
        Assert.Equal(["node3", "node2"], SyncReplication.Choose("node1", cluster, pg, Sync with { SynchronousNodeCount = 5 }, []));
        Assert.Equal(["node3"], SyncReplication.Choose("node1", cluster, pg, Sync with { MaximumLagOnSyncnode = 50 }, ["node2"]));
    }

    private static ClusterView Tagged(params (string Name, Dictionary<string, object?> Tags)[] members) => new()
    {
        Members = [.. members.Select(m => new Member(m.Name, new MemberData { State = "running", Role = "replica", Tags = m.Tags }, 1, 1))],
    };

    [Fact]
    public void Choose_prefers_the_higher_sync_priority_and_never_takes_priority_0_nostream_or_failover_priority_0()
    {
        var pg = Primary(1000, ("node2", "streaming", 900), ("node3", "streaming", 990), ("node4", "streaming", 1000), ("node5", "streaming", 1000), ("node6", "streaming", 1000));
        var cluster = Tagged(
            ("node2", new() { ["sync_priority"] = 5L }),
            ("node3", new()),
            ("node4", new() { ["sync_priority"] = 0L }),
            ("node5", new() { ["nostream"] = true }),
            ("node6", new() { ["failover_priority"] = 0L }));

        // node2 lags most but has the highest priority; it even displaces the current one.
        Assert.Equal(["node2"], SyncReplication.Choose("node1", cluster, pg, Sync, []));
        Assert.Equal(["node2"], SyncReplication.Choose("node1", cluster, pg, Sync, ["node3"]));
        Assert.Equal(["node2", "node3"], SyncReplication.Choose("node1", cluster, pg, Sync with { SynchronousNodeCount = 5 }, []));
    }

    // ---- the order of changes ----

    private static StandbyNames Names(bool managed, params string[] names) => new(names, Any: false, Placeholder: false, managed);

    private static void AssertSets(string? value, SyncChange? change)
    {
        var set = Assert.IsType<SetStandbyNames>(change);
        Assert.Equal(value, set.Value);
        Assert.Equal(SyncReplication.Parse(value, managed: true).Names, set.Names);
    }

    [Fact]
    public void Turning_on_names_the_leader_alone_then_postgres_waits_then_the_standby_joins_once_caught_up()
    {
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", [])), SyncReplication.Next("node1", true, false, Names(false), null, ["node2"], ["node2"], []));

        var key = SyncState.For("node1", []);
        var set = Assert.IsType<SetStandbyNames>(SyncReplication.Next("node1", true, false, Names(false), key, ["node2"], ["node2"], []));
        Assert.Equal("FIRST 1 (\"node2\")", set.Value);
        Assert.Equal(["node2"], set.Names);

        // PostgreSQL waits for node2, which has not caught up: the key does not name it yet.
        Assert.Null(SyncReplication.Next("node1", true, false, Names(true, "node2"), key, ["node2"], ["node2"], []));
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", ["node2"])),
            SyncReplication.Next("node1", true, false, Names(true, "node2"), key, ["node2"], ["node2"], ["node2"]));
        Assert.Null(SyncReplication.Next("node1", true, false, Names(true, "node2"), SyncState.For("node1", ["node2"]), ["node2"], ["node2"], ["node2"]));
    }

    [Fact]
    public void Replacing_a_healthy_standby_waits_for_both_until_the_new_one_is_on_record_then_drops_the_old_from_the_key_first()
    {
        var key = SyncState.For("node1", ["node2"]);
        var both = Assert.IsType<SetStandbyNames>(SyncReplication.Next("node1", true, false, Names(true, "node2"), key, ["node3"], ["node2", "node3"], []));
        Assert.Equal("FIRST 2 (\"node2\",\"node3\")", both.Value);

        // node3 not caught up: node2 stays on record and PostgreSQL waits for both.
        Assert.Null(SyncReplication.Next("node1", true, false, Names(true, "node2", "node3"), key, ["node3"], ["node2", "node3"], ["node2"]));
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", ["node2", "node3"])),
            SyncReplication.Next("node1", true, false, Names(true, "node2", "node3"), key, ["node3"], ["node2", "node3"], ["node3"]));

        key = SyncState.For("node1", ["node2", "node3"]);
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", ["node3"])),
            SyncReplication.Next("node1", true, false, Names(true, "node2", "node3"), key, ["node3"], ["node2", "node3"], ["node3"]));

        key = SyncState.For("node1", ["node3"]);
        var only = Assert.IsType<SetStandbyNames>(SyncReplication.Next("node1", true, false, Names(true, "node2", "node3"), key, ["node3"], ["node2", "node3"], ["node3"]));
        Assert.Equal(["node3"], only.Names);
        Assert.Null(SyncReplication.Next("node1", true, false, Names(true, "node3"), key, ["node3"], ["node2", "node3"], ["node3"]));
    }

    [Fact]
    public void A_standby_that_stopped_streaming_leaves_the_key_before_postgres_stops_waiting_for_it()
    {
        var key = SyncState.For("node1", ["node2"]);
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", [])),
            SyncReplication.Next("node1", true, false, Names(true, "node2"), key, ["node3"], ["node3"], ["node3"]));
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", [])),
            SyncReplication.Next("node1", true, true, Names(true, "node2"), key, [], [], []));

        // Two on record, one gone: the other stays.
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", ["node3"])),
            SyncReplication.Next("node1", true, false, Names(true, "node2", "node3"), SyncState.For("node1", ["node2", "node3"]), ["node3"], ["node3"], []));
    }

    [Fact]
    public void A_healthy_standby_no_longer_wanted_leaves_when_nothing_is_wanted()
    {
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", [])),
            SyncReplication.Next("node1", true, false, Names(true, "node2"), SyncState.For("node1", ["node2"]), [], ["node2"], ["node2"]));
    }

    [Fact]
    public void A_new_leader_first_names_itself_alone()
    {
        Assert.Equal(new WriteSyncKey(SyncState.For("node2", [])),
            SyncReplication.Next("node2", true, false, Names(true, "node3"), SyncState.For("node1", ["node2"]), ["node3"], ["node3"], ["node3"]));
    }

    [Fact]
    public void Postgres_waiting_on_any_standby_or_on_the_operators_list_is_replaced_by_exactly_the_key_and_the_wanted()
    {
        var key = SyncState.For("node1", ["node2"]);
        Assert.Equal("FIRST 1 (\"node2\")", Assert.IsType<SetStandbyNames>(
            SyncReplication.Next("node1", true, false, new StandbyNames(["node2"], Any: true, Placeholder: false, Managed: true), key, ["node2"], ["node2"], ["node2"])).Value);
        Assert.Equal("FIRST 1 (\"node2\")", Assert.IsType<SetStandbyNames>(
            SyncReplication.Next("node1", true, false, Names(false, "node2"), key, ["node2"], ["node2"], ["node2"])).Value);
    }

    [Fact]
    public void With_no_standby_strict_waits_on_the_placeholder_and_relaxed_goes_asynchronous()
    {
        var key = SyncState.For("node1", []);
        AssertSets(SyncReplication.NobodyPlaceholder, SyncReplication.Next("node1", true, true, Names(true), key, [], [], []));
        Assert.Null(SyncReplication.Next("node1", true, true, new StandbyNames([], false, Placeholder: true, Managed: true), key, [], [], []));
        Assert.Null(SyncReplication.Next("node1", true, false, Names(true), key, [], [], []));
        AssertSets("", SyncReplication.Next("node1", true, false, new StandbyNames([], false, Placeholder: true, Managed: true), key, [], [], []));
    }

    [Fact]
    public void Turning_off_empties_the_key_then_clears_postgres_then_deletes_the_key()
    {
        var key = SyncState.For("node1", ["node2"]);
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", [])), SyncReplication.Next("node1", false, false, Names(true, "node2"), key, [], ["node2"], ["node2"]));
        key = SyncState.For("node1", []);
        AssertSets(null, SyncReplication.Next("node1", false, false, Names(true, "node2"), key, [], ["node2"], ["node2"]));
        Assert.Equal(new WriteSyncKey(null), SyncReplication.Next("node1", false, false, Names(false), key, [], [], []));
        Assert.Null(SyncReplication.Next("node1", false, false, Names(false), null, [], [], []));
    }

    [Theory]
    [InlineData("", new string[0], false)]
    [InlineData("node2", new[] { "node2" }, false)]
    [InlineData("FIRST 2 (\"node2\", node3)", new[] { "node2", "node3" }, false)]
    [InlineData("ANY 1 (a,\"b,c\")", new[] { "a", "b,c" }, false)]
    [InlineData("2 (a, b)", new[] { "a", "b" }, false)]
    [InlineData("*", new string[0], true)]
    [InlineData(SyncReplication.NobodyPlaceholder, new string[0], false)]
    public void Standby_names_are_parsed_as_postgres_reads_them(string value, string[] names, bool any)
    {
        var parsed = SyncReplication.Parse(value, managed: true);
        Assert.Equal(names, parsed.Names);
        Assert.Equal(any, parsed.Any);
        Assert.Equal(value == SyncReplication.NobodyPlaceholder, parsed.Placeholder);
    }

    [Fact]
    public void Render_quotes_names_and_lists_exactly_the_chosen_standbys()
    {
        Assert.Equal("FIRST 2 (\"a\",\"b\"\"c\")", SyncReplication.Render(["a", "b\"c"], strict: false));
        Assert.Equal("", SyncReplication.Render([], strict: false));
        Assert.Equal(SyncReplication.NobodyPlaceholder, SyncReplication.Render([], strict: true));
        Assert.Equal(["a", "b\"c"], SyncReplication.Parse(SyncReplication.Render(["a", "b\"c"], false), true).Names);
    }
}
