using Steward.Core.Cluster;
using Steward.Core.Ha;
using static Steward.Tests.Ha.Scenario;

namespace Steward.Tests.Ha;

/// <summary>
/// Quorum commit's pure parts: who may promote (a voter that sees quorum + 1 voters, none ahead of it), and the order in
/// which the leader changes <c>synchronous_standby_names = ANY k (…)</c> and the <c>sync</c> key (voters, quorum) so that any
/// acknowledged commit is missing from at most <c>quorum</c> voters at every step.
/// </summary>
public sealed class QuorumCommitTests
{
    private static readonly DynamicConfig Quorum = new() { SynchronousMode = true, SynchronousModeQuorum = true };

    private static StandbyNames Any(int k, params string[] names) => SyncReplication.Parse(QuorumCommit.Render(k, names, strict: false), managed: true);

    private static readonly StandbyNames Async = new([], Any: false, Placeholder: false, Managed: true);
    private static readonly StandbyNames Nobody = SyncReplication.Parse(SyncReplication.NobodyPlaceholder, managed: true);

    private static SyncState Key(int quorum, params string[] voters) => SyncState.For("node1", voters, voters.Length == 0 ? 0 : quorum);

    private static WriteSyncKey Writes(int quorum, params string[] voters) => new(Key(quorum, voters));

    private static SetStandbyNames Sets(int k, params string[] names) => new(QuorumCommit.Render(k, names, strict: false), names);

    private static SyncChange? Next(StandbyNames ssn, SyncState? key, string[] wanted, string[] caughtUp, int nodeCount = 1, bool strict = false) =>
        QuorumCommit.Next("node1", strict, nodeCount, ssn, key, wanted, caughtUp);

    private static void AssertChange(SyncChange expected, SyncChange? actual)
    {
        switch (expected)
        {
            case WriteSyncKey write:
                var got = Assert.IsType<WriteSyncKey>(actual);
                Assert.Equal(write.State?.Leader, got.State?.Leader);
                Assert.Equal(write.State?.Standbys, got.State?.Standbys);
                Assert.Equal(write.State?.Quorum, got.State?.Quorum);
                break;
            case SetStandbyNames set:
                var names = Assert.IsType<SetStandbyNames>(actual);
                Assert.Equal(set.Value, names.Value);
                Assert.Equal(set.Names, names.Names);
                break;
        }
    }

    // ---- synchronous_standby_names in the ANY form ----

    [Theory]
    [InlineData("ANY 2 (a, \"b\", c)", 2, true, new[] { "a", "b", "c" })]
    [InlineData("any 1 (a)", 1, true, new[] { "a" })]
    [InlineData("FIRST 2 (a, b, c)", 2, false, new[] { "a", "b", "c" })]
    [InlineData("2 (a, b, c)", 2, false, new[] { "a", "b", "c" })]
    [InlineData("a, b", 1, false, new[] { "a", "b" })]
    [InlineData("ANY 5 (a, b)", 2, true, new[] { "a", "b" })]
    public void Standby_names_are_read_with_their_count_and_form(string value, int num, bool quorum, string[] names)
    {
        var parsed = SyncReplication.Parse(value, managed: true);
        Assert.Equal(num, parsed.Num);
        Assert.Equal(quorum, parsed.Quorum);
        Assert.Equal(names, parsed.Names);
    }

    [Fact]
    public void The_ANY_form_is_rendered_sorted_and_quoted_and_nobody_is_the_strict_placeholder()
    {
        Assert.Equal("ANY 2 (\"a\",\"b\",\"c\")", QuorumCommit.Render(2, ["c", "a", "b"], strict: false));
        Assert.Equal("", QuorumCommit.Render(1, [], strict: false));
        Assert.Equal(SyncReplication.NobodyPlaceholder, QuorumCommit.Render(1, [], strict: true));
        Assert.Equal(SyncReplication.NobodyPlaceholder, QuorumCommit.Render(0, ["a"], strict: true));
    }

    // ---- the safe quorum ----

    [Fact]
    public void While_the_primary_acknowledges_alone_every_voter_may_lack_a_commit()
    {
        Assert.Equal(2, QuorumCommit.SafeQuorum(["a", "b"], [], 0, Async, ["a", "b"]));
        Assert.Equal(0, QuorumCommit.SafeQuorum([], ["a"], 1, Async, []));
    }

    [Fact]
    public void While_commits_wait_for_nobody_only_what_came_before_counts()
    {
        Assert.Equal(1, QuorumCommit.SafeQuorum(["a", "b"], [], 0, Nobody, ["a"]));
        Assert.Equal(0, QuorumCommit.SafeQuorum(["a", "b"], [], 0, Nobody, ["a", "b"]));
    }

    [Fact]
    public void Under_ANY_k_of_the_voters_at_most_voters_minus_k_lack_a_new_commit()
    {
        Assert.Equal(1, QuorumCommit.SafeQuorum(["a", "b", "c"], ["a", "b", "c"], 1, Any(2, "a", "b", "c"), ["a", "b", "c"]));
        Assert.Equal(0, QuorumCommit.SafeQuorum(["a", "b"], ["a", "b"], 0, Any(2, "a", "b"), ["a", "b"]));
        // A name PostgreSQL may count that is not a voter: one more voter may lack the commit.
        Assert.Equal(1, QuorumCommit.SafeQuorum(["a", "b"], ["a", "b", "c"], 1, Any(2, "a", "b", "c"), ["a", "b", "c"]));
    }

    [Fact]
    public void What_came_before_is_bounded_by_the_key_now_or_by_who_caught_up()
    {
        // A newcomer may lack everything acknowledged before: one more voter may lack it.
        Assert.Equal(1, QuorumCommit.SafeQuorum(["a", "b"], ["a"], 0, Any(1, "a"), ["a"]));
        // Unless it caught up since synchronous_standby_names came into force.
        Assert.Equal(0, QuorumCommit.SafeQuorum(["a"], ["a", "b"], 1, Any(1, "a"), ["a"]));
        Assert.Equal(1, QuorumCommit.SafeQuorum(["a"], ["a", "b"], 1, Any(1, "a", "b"), []));
    }

    // ---- the order of changes ----

    [Fact]
    public void A_new_leader_starts_with_no_voters()
    {
        AssertChange(Writes(0), Next(Async, null, ["node2"], []));
        AssertChange(Writes(0), Next(Async, SyncState.For("node9", ["node2"], 0), ["node2"], []));
    }

    [Fact]
    public void Turning_on_postgres_waits_first_then_the_caught_up_standbys_become_voters()
    {
        var empty = Key(0);
        AssertChange(Sets(1, "node2", "node3"), Next(Async, empty, ["node2", "node3"], []));

        // PostgreSQL waits for any one of them; neither is known to hold what came before: nobody joins yet.
        Assert.Null(Next(Any(1, "node2", "node3"), empty, ["node2", "node3"], []));

        // One caught up: what came before is on node2, what comes after on one of the two — a candidate must see both.
        AssertChange(Writes(1, "node2", "node3"), Next(Any(1, "node2", "node3"), empty, ["node2", "node3"], ["node2"]));
        AssertChange(Writes(1, "node2", "node3"), Next(Any(1, "node2", "node3"), empty, ["node2", "node3"], ["node2", "node3"]));
        // Waiting for both: once both caught up, either alone holds every commit.
        AssertChange(Writes(0, "node2", "node3"), Next(Any(2, "node2", "node3"), empty, ["node2", "node3"], ["node2", "node3"], nodeCount: 2));
        Assert.Null(Next(Any(1, "node2", "node3"), Key(1, "node2", "node3"), ["node2", "node3"], ["node2", "node3"]));
    }

    [Fact]
    public void A_standby_joins_the_voters_with_the_quorum_raised_then_postgres_counts_it()
    {
        AssertChange(Writes(1, "node2", "node3"), Next(Any(1, "node2"), Key(0, "node2"), ["node2", "node3"], ["node2"]));
        AssertChange(Sets(1, "node2", "node3"), Next(Any(1, "node2"), Key(1, "node2", "node3"), ["node2", "node3"], ["node2"]));
    }

    [Fact]
    public void A_voter_that_stops_streaming_leaves_with_the_quorum_kept_until_the_others_caught_up()
    {
        // ANY 2 of three: a commit may be on node3 and one other only; without node3, a candidate must see both others.
        AssertChange(Writes(1, "node2", "node3"), Next(Any(2, "node2", "node3", "node4"), Key(1, "node2", "node3", "node4"), ["node2", "node3"], ["node2", "node3", "node4"], nodeCount: 2));
        AssertChange(Sets(2, "node2", "node3"), Next(Any(2, "node2", "node3", "node4"), Key(1, "node2", "node3"), ["node2", "node3"], ["node2", "node3"], nodeCount: 2));
        Assert.Null(Next(Any(2, "node2", "node3"), Key(1, "node2", "node3"), ["node2", "node3"], ["node2"], nodeCount: 2));
        AssertChange(Writes(0, "node2", "node3"), Next(Any(2, "node2", "node3"), Key(1, "node2", "node3"), ["node2", "node3"], ["node2", "node3"], nodeCount: 2));
    }

    [Fact]
    public void Fewer_acknowledgements_the_quorum_grows_first_more_postgres_first()
    {
        // synchronous_node_count 2 → 1: quorum 1 → 2, then ANY 1.
        AssertChange(Writes(2, "node2", "node3", "node4"), Next(Any(2, "node2", "node3", "node4"), Key(1, "node2", "node3", "node4"), ["node2", "node3", "node4"], ["node2", "node3", "node4"]));
        AssertChange(Sets(1, "node2", "node3", "node4"), Next(Any(2, "node2", "node3", "node4"), Key(2, "node2", "node3", "node4"), ["node2", "node3", "node4"], ["node2", "node3", "node4"]));
        Assert.Null(Next(Any(1, "node2", "node3", "node4"), Key(2, "node2", "node3", "node4"), ["node2", "node3", "node4"], ["node2", "node3", "node4"]));

        // 1 → 2: ANY 2 first; the quorum comes down once the voters caught up under it.
        AssertChange(Sets(2, "node2", "node3", "node4"), Next(Any(1, "node2", "node3", "node4"), Key(2, "node2", "node3", "node4"), ["node2", "node3", "node4"], [], nodeCount: 2));
        Assert.Null(Next(Any(2, "node2", "node3", "node4"), Key(2, "node2", "node3", "node4"), ["node2", "node3", "node4"], ["node2"], nodeCount: 2));
        AssertChange(Writes(1, "node2", "node3", "node4"), Next(Any(2, "node2", "node3", "node4"), Key(2, "node2", "node3", "node4"), ["node2", "node3", "node4"], ["node2", "node3"], nodeCount: 2));
    }

    [Fact]
    public void The_last_voter_leaving_empties_the_key_and_postgres_stops_waiting()
    {
        AssertChange(Writes(0), Next(Any(1, "node2"), Key(0, "node2"), [], []));
        AssertChange(Sets(0), Next(Any(1, "node2"), Key(0), [], []));
        Assert.Equal(SyncReplication.NobodyPlaceholder, Assert.IsType<SetStandbyNames>(Next(Any(1, "node2"), Key(0), [], [], strict: true)).Value);
    }

    [Fact]
    public void Strict_with_no_voters_a_caught_up_standby_joins_at_once()
    {
        AssertChange(Writes(0, "node2"), Next(Nobody, Key(0), ["node2"], ["node2"], strict: true));
        Assert.Equal("ANY 1 (\"node2\")", Assert.IsType<SetStandbyNames>(Next(Nobody, Key(0, "node2"), ["node2"], ["node2"], strict: true)).Value);
    }

    [Fact]
    public void A_key_that_no_longer_covers_what_postgres_runs_with_is_repaired_first()
    {
        // Someone set ANY 1 while the key claimed quorum 0 over two voters: raise it.
        AssertChange(Writes(1, "node2", "node3"), Next(Any(1, "node2", "node3"), Key(0, "node2", "node3"), ["node2", "node3"], ["node2", "node3"]));
    }

    [Fact]
    public void A_key_that_no_longer_covers_a_lowered_k_raises_the_quorum_rather_than_raise_k_again()
    {
        // synchronous_node_count 2, but PostgreSQL runs with ANY 1: a commit may be on one voter only.
        AssertChange(Writes(1, "node2", "node3"), Next(Any(1, "node2", "node3"), Key(0, "node2", "node3"), ["node2", "node3"], ["node2", "node3"], nodeCount: 2));
    }

    [Fact]
    public void What_the_operator_set_or_a_star_guarantees_nothing_and_is_replaced()
    {
        var operators = SyncReplication.Parse("ANY 1 (\"node2\",\"node3\")", managed: false);
        Assert.Equal(2, QuorumCommit.SafeQuorum(["node2", "node3"], ["node2", "node3"], 0, operators, ["node2", "node3"]));
        Assert.Equal(2, QuorumCommit.SafeQuorum(["node2", "node3"], ["node2", "node3"], 0, SyncReplication.Parse("ANY 1 (*)", managed: true), ["node2", "node3"]));
        // The key claimed more than that gives: no voter may promote until Steward's own value is in force.
        AssertChange(Writes(2, "node2", "node3"), Next(operators, Key(1, "node2", "node3"), ["node2", "node3"], ["node2", "node3"]));
        AssertChange(Sets(1, "node2", "node3"), Next(operators, Key(2, "node2", "node3"), ["node2", "node3"], ["node2", "node3"]));
        AssertChange(Sets(1, "node2", "node3"), Next(Any(1, "node2", "node4"), Key(2, "node2", "node3"), ["node2", "node3"], ["node2", "node3"]));
    }

    [Fact]
    public void With_no_standby_strict_waits_for_nobody_and_not_strict_for_none()
    {
        Assert.Equal(SyncReplication.NobodyPlaceholder, Assert.IsType<SetStandbyNames>(Next(Async, Key(0), [], [], strict: true)).Value);
        Assert.Equal("", Assert.IsType<SetStandbyNames>(Next(Nobody, Key(0), [], [])).Value);
        Assert.Null(Next(Nobody, Key(0), [], [], strict: true));
        Assert.Null(Next(Async, Key(0), [], []));
    }

    [Fact]
    public void Names_with_quotes_are_doubled()
    {
        Assert.Equal("ANY 1 (\"a\"\"b\")", QuorumCommit.Render(1, ["a\"b"], strict: false));
    }

    [Fact]
    public void Null_arguments_are_refused()
    {
        Assert.Throws<ArgumentNullException>(() => QuorumCommit.Next("node1", false, 1, null!, null, [], []));
        Assert.Throws<ArgumentNullException>(() => QuorumCommit.Next("node1", false, 1, Async, null, null!, []));
        Assert.Throws<ArgumentNullException>(() => QuorumCommit.Next("node1", false, 1, Async, null, [], null!));
        Assert.Throws<ArgumentNullException>(() => QuorumCommit.SafeQuorum(null!, [], 0, Async, []));
        Assert.Throws<ArgumentNullException>(() => QuorumCommit.SafeQuorum([], null!, 0, Async, []));
        Assert.Throws<ArgumentNullException>(() => QuorumCommit.SafeQuorum([], [], 0, null!, []));
        Assert.Throws<ArgumentNullException>(() => QuorumCommit.SafeQuorum([], [], 0, Async, null!));
        Assert.Throws<ArgumentNullException>(() => QuorumCommit.Render(1, null!, false));
    }

    [Fact]
    public void Leaving_quorum_commit_for_priority_mode_empties_the_key_first()
    {
        var change = SyncReplication.Next("node1", true, false, Any(1, "node2", "node3"), Key(1, "node2", "node3"), ["node2"], ["node2", "node3"], ["node2"]);
        Assert.Equal(new WriteSyncKey(SyncState.For("node1", [])), change);
        var names = SyncReplication.Next("node1", true, false, Any(1, "node2"), SyncState.For("node1", []), ["node2"], ["node2"], []);
        Assert.Equal("FIRST 1 (\"node2\")", Assert.IsType<SetStandbyNames>(names).Value);
    }

    [Fact]
    public void Choose_takes_every_eligible_standby_as_a_voter()
    {
        var cluster = new ClusterView
        {
            Members = [.. new[] { "node2", "node3", "node4", "node5" }.Select(n => new Member(n, new MemberData
            {
                State = "running", Role = "replica", Tags = n == "node4" ? new Dictionary<string, object?> { ["nosync"] = true } : null,
            }, 1, 1))],
        };
        var pg = new Steward.Core.Postgres.PgState
        {
            Running = true, Accepting = true, InRecovery = false, WriteLsn = 1000,
            Replication = [.. new[] { "node2", "node3", "node4", "node5" }.Select(n => new Steward.Core.Postgres.ReplicationConnection(
                "replicator", n, null, "streaming", "async", 900) { FlushLsn = n == "node3" ? 1000 : 900 })],
        };
        Assert.Equal(["node3", "node2", "node5"], SyncReplication.Choose("node1", cluster, pg, Quorum, []));
        Assert.Equal(["node3"], SyncReplication.Choose("node1", cluster, pg, Quorum with { SynchronousModeQuorum = false }, []));
    }

    // ---- the decider: a voter promotes once it sees quorum + 1 voters, none ahead of it ----

    private static Scenario WithQuorumKey(Scenario s, int quorum, params string[] voters) =>
        s.WithSettings(_ => Quorum).WithCluster(c => c with { Sync = SyncState.For("node1", voters, quorum) });

    [Fact]
    public void A_voter_that_sees_too_few_voters_does_not_promote()
    {
        var plan = WithQuorumKey(NoLeader("node2"), 1, "node2", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn, reachable: false)).Decide();
        Assert.Empty(plan.Steps);
        Assert.Contains("quorum commit: I see 1 of the 2 voters needed", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_voter_that_sees_enough_voters_not_ahead_promotes()
    {
        var plan = WithQuorumKey(NoLeader("node2"), 1, "node2", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn - 10)).Decide();
        Assert.Equal([new AcquireLeader(), new Promote("no leader")], plan.Steps);

        var equal = WithQuorumKey(NoLeader("node2"), 1, "node2", "node3").Peers(Peer("node3", Pg.DefaultLsn)).Decide();
        Assert.Equal([new AcquireLeader(), new Promote("no leader")], equal.Steps);
    }

    [Fact]
    public void A_voter_whose_position_was_read_while_a_leader_could_still_commit_is_not_a_vote()
    {
        var plan = WithQuorumKey(NoLeader("node2"), 1, "node2", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn - 10) with { WalAfterLeaderGone = false }).Decide();
        Assert.Empty(plan.Steps);
        Assert.Contains("I see 1 of the 2 voters needed", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_named_candidate_needs_the_votes_too_or_the_former_leader_running_as_a_replica_not_ahead()
    {
        var named = WithQuorumKey(NoLeader("node2"), 1, "node2", "node3").Failover(null, "node2")
            .Peers(Peer("node3", Pg.DefaultLsn, reachable: false), Peer("node1", Pg.DefaultLsn + 5)).Decide();
        Assert.Empty(named.Steps);
        Assert.Contains("I see 1 of the 2 voters needed", named.Message, StringComparison.Ordinal);

        var afterSwitchover = WithQuorumKey(NoLeader("node2"), 1, "node2", "node3").Failover(null, "node2")
            .Peers(Peer("node3", Pg.DefaultLsn, reachable: false), Peer("node1", Pg.DefaultLsn)).Decide();
        Assert.Equal([new AcquireLeader(), new Promote("manual failover")], afterSwitchover.Steps);
    }

    [Fact]
    public void A_voter_ahead_is_not_a_vote_it_is_the_one_to_take_over()
    {
        var plan = WithQuorumKey(NoLeader("node2"), 1, "node2", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn + 10)).Decide();
        Assert.Empty(plan.Steps);
        Assert.Contains("'node3' is ahead", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_voter_on_an_older_timeline_with_a_larger_LSN_still_votes_and_a_non_voter_does_not()
    {
        var plan = WithQuorumKey(NoLeader("node2").WithPg(p => p with { Timeline = 2 }), 1, "node2", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn + 10, timeline: 1)).Decide();
        Assert.Equal([new AcquireLeader(), new Promote("no leader")], plan.Steps);

        var nonVoter = WithQuorumKey(NoLeader("node2"), 1, "node2", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn, reachable: false), Peer("node4", Pg.DefaultLsn - 10)).Decide();
        Assert.Empty(nonVoter.Steps);
        Assert.Contains("I see 1 of the 2", nonVoter.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void With_quorum_zero_a_voter_alone_promotes_and_a_non_voter_never_does()
    {
        var alone = WithQuorumKey(NoLeader("node2"), 0, "node2", "node3")
            .Peers(Peer("node3", Pg.DefaultLsn, reachable: false)).Decide();
        Assert.Equal([new AcquireLeader(), new Promote("no leader")], alone.Steps);

        var plan = WithQuorumKey(NoLeader("node4"), 0, "node2", "node3").Peers().Decide();
        Assert.Empty(plan.Steps);
        Assert.Contains("'node4' is not a quorum voter", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Votes_needed_is_quorum_plus_one_and_nothing_outside_quorum_commit()
    {
        var key = SyncState.For("node1", ["node2", "node3", "node4"], 2);
        Assert.Equal(3, SyncReplication.QuorumVotesNeeded(Quorum, key, "node2"));
        Assert.Null(SyncReplication.QuorumVotesNeeded(Quorum, key, "node1"));
        Assert.Null(SyncReplication.QuorumVotesNeeded(Quorum with { SynchronousModeQuorum = false }, key, "node2"));
        Assert.Null(SyncReplication.QuorumVotesNeeded(Quorum with { SynchronousMode = false }, key, "node2"));
        Assert.Null(SyncReplication.QuorumVotesNeeded(Quorum, SyncState.For("node1", [], 0), "node2"));
        Assert.Equal(1, SyncReplication.QuorumVotesNeeded(Quorum, SyncState.For("node1", ["node2"]), "node2"));
    }

    [Fact]
    public void The_sync_key_carries_the_quorum_in_Patronis_shape()
    {
        var json = System.Text.Encoding.UTF8.GetString(PatroniCodec.Serialize(SyncState.For("node1", ["node3", "node2"], 1)));
        Assert.Equal("""{"leader":"node1","sync_standby":"node2,node3","quorum":1}""", json);
        Assert.Equal("""{"leader":"node1","sync_standby":null}""", System.Text.Encoding.UTF8.GetString(PatroniCodec.Serialize(SyncState.For("node1", []))));
    }
}
