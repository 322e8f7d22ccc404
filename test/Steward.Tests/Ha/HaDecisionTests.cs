using Steward.Core.Cluster;
using Steward.Core.Ha;
using Steward.Core.Postgres;
using static Steward.Tests.Ha.Scenario;

namespace Steward.Tests.Ha;

/// <summary>Every branch of <see cref="HaDecision.Decide"/>, in Patroni's order of checks: the steps and the sentence.</summary>
public sealed class HaDecisionTests
{
    private static readonly Upstream FromNode1ForNode2 = UpstreamOf("node1", "node2");

    private static void AssertPlan(HaPlan plan, string message, params HaStep[] steps)
    {
        Assert.Contains(message, plan.Message, StringComparison.Ordinal);
        Assert.Equal(steps, plan.Steps);
    }

    // ---- etcd unreachable ----

    [Fact]
    public void Replica_takes_no_action_when_the_store_is_unreachable()
    {
        var plan = ReplicaStreamingFrom("node1").StoreUnreachable().Decide();

        AssertPlan(plan, "DCS is not accessible; no action. I am (node2), a secondary");
    }

    [Fact]
    public void Stopped_member_takes_no_action_when_the_store_is_unreachable()
    {
        var plan = Of("node2").WithPg(Pg.CrashedPrimary()).StoreUnreachable().Decide();

        AssertPlan(plan, "DCS is not accessible; no action. I am (node2), a secondary");
    }

    [Fact]
    public void Primary_keeps_running_while_its_lease_lasts_when_the_store_is_unreachable()
    {
        var plan = PrimaryHoldingTheLock().StoreUnreachable().LeaseLeft(TimeSpan.FromSeconds(3)).Decide();

        AssertPlan(plan, "DCS is not accessible; keeping the primary running while the lease lasts (3.0 s)");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Primary_past_its_lease_deadline_stops_immediately_and_stays_down_until_etcd_is_back(int secondsLeft)
    {
        var plan = PrimaryHoldingTheLock().StoreUnreachable().LeaseLeft(TimeSpan.FromSeconds(secondsLeft)).Decide();

        AssertPlan(plan, "demoting self because DCS is not accessible and I was a leader",
            new StopPostgres(StopMode.Immediate));
    }

    [Fact]
    public void Primary_without_any_lease_deadline_is_demoted_when_the_store_is_unreachable()
    {
        var plan = PrimaryHoldingTheLock().StoreUnreachable().Decide();

        AssertPlan(plan, "demoting self because DCS is not accessible and I was a leader",
            new StopPostgres(StopMode.Immediate));
    }

    // ---- paused ----

    [Fact]
    public void Paused_leader_keeps_its_housekeeping()
    {
        var plan = PrimaryHoldingTheLock().Paused().Decide();

        AssertPlan(plan, "PAUSE: no action. I am (node1), the leader with the lock", new LeaderHousekeeping());
    }

    [Fact]
    public void Paused_primary_without_the_leader_key_takes_it_back()
    {
        var plan = PrimaryHoldingTheLock().NoLeaderKey().Paused().Decide();

        AssertPlan(plan, "PAUSE: acquiring the leader key for the running primary (node1)", new AcquireLeader());
    }

    /// <summary>
    /// Found while writing these tests: in pause, a primary of another PostgreSQL system (a data directory restored from
    /// elsewhere during maintenance) took the leader key, because pause is decided before the system id check; the router
    /// would then send the cluster's writes to a foreign database. Patroni requires the system id to match here.
    /// </summary>
    [Fact]
    public void Paused_primary_of_another_system_does_not_take_the_leader_key()
    {
        var plan = PrimaryHoldingTheLock().NoLeaderKey().Paused().WithPg(p => p with { SystemId = "7000000000000000000" }).Decide();

        AssertPlan(plan, "PAUSE: no action. I am (node1)");
    }

    [Fact]
    public void Paused_replica_takes_no_action()
    {
        var plan = ReplicaStreamingFrom("node1").Upstream("node3").Paused().Decide();

        AssertPlan(plan, "PAUSE: no action. I am (node2)");
    }

    [Fact]
    public void Paused_replica_takes_no_action_without_a_leader()
    {
        AssertPlan(NoLeader().Paused().Decide(), "PAUSE: no action. I am (node2)");
    }

    [Fact]
    public void Paused_member_with_stopped_postgres_does_not_start_it()
    {
        var plan = ReplicaStreamingFrom("node1").WithPg(Pg.StoppedReplica()).Paused().Decide();

        AssertPlan(plan, "PAUSE: no action. I am (node2)");
    }

    // ---- data directory and initialize ----

    [Fact]
    public void Invalid_data_directory_is_fatal()
    {
        var reason = "data directory is not empty and is not a PostgreSQL data directory; refusing to touch it";

        AssertPlan(ReplicaStreamingFrom("node1").WithPg(Pg.Invalid).Decide(), reason, new Fatal(reason));
    }

    [Fact]
    public void Uninitialized_cluster_with_an_empty_data_directory_is_bootstrapped()
    {
        var plan = Of("node1").WithCluster(c => c with { Initialize = null }).Decide();

        AssertPlan(plan, "trying to bootstrap a new cluster", new BootstrapCluster());
    }

    [Fact]
    public void Uninitialized_cluster_with_an_existing_data_directory_is_claimed_with_its_system_id()
    {
        var plan = Of("node1").WithCluster(c => c with { Initialize = null }).WithPg(Pg.Primary()).Decide();

        AssertPlan(plan, $"initialize key is missing: claiming the cluster with the existing data directory (system {SystemId})",
            new ClaimInitialize(SystemId));
    }

    [Fact]
    public void Uninitialized_cluster_with_a_data_directory_without_system_id_is_fatal()
    {
        var plan = Of("node1").WithCluster(c => c with { Initialize = null }).WithPg(Pg.StoppedReplica() with { SystemId = null }).Decide();

        Assert.Contains("initialize key is missing and the data directory has no readable system identifier", plan.Message, StringComparison.Ordinal);
        Assert.IsType<Fatal>(Assert.Single(plan.Steps));
    }

    /// <summary>
    /// Found while writing these tests: with the initialize key gone (deleted by hand, or a restore of etcd) but node1
    /// leading, an empty node2 ran initdb for a new cluster and overwrote initialize with its own system id; node1 then
    /// hit "system ID mismatch", exited, and the router followed the empty newcomer. Patroni clones from the leader instead
    /// and leaves initialize to the leader.
    /// </summary>
    [Fact]
    public void Member_does_not_bootstrap_a_new_cluster_while_another_member_holds_the_leader_key()
    {
        var plan = Of("node2").Leader("node1").WithCluster(c => c with { Initialize = null }).Decide();

        AssertPlan(plan, "waiting for leader to bootstrap");
    }

    [Fact]
    public void Member_does_not_claim_initialize_while_another_member_holds_the_leader_key()
    {
        var plan = ReplicaStreamingFrom("node1").WithCluster(c => c with { Initialize = null }).WithPg(p => p with { SystemId = "7000000000000000000" }).Decide();

        AssertPlan(plan, "waiting for leader to bootstrap");
    }

    [Fact]
    public void Leader_claims_the_missing_initialize_key_with_its_system_id()
    {
        var plan = PrimaryHoldingTheLock().WithCluster(c => c with { Initialize = null }).Decide();

        AssertPlan(plan, "claiming the cluster with the existing data directory", new ClaimInitialize(SystemId));
    }

    [Fact]
    public void Nofailover_member_never_bootstraps_a_new_cluster()
    {
        var plan = Of("node3").NoFailover().WithCluster(c => c with { Initialize = null }).Decide();

        AssertPlan(plan, "waiting for leader to bootstrap");
    }

    [Fact]
    public void Empty_data_directory_waits_when_there_is_no_leader()
    {
        AssertPlan(Of("node2").Replica("node3").Decide(), "waiting for a leader to clone from");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Empty_data_directory_waits_while_the_bootstrap_is_in_progress(bool leaderKeyTaken)
    {
        var scenario = Of("node2").WithCluster(c => c with { Initialize = "" });
        if (leaderKeyTaken)
        {
            scenario.Leader("node1").Member("node1", "primary", "initializing new cluster");
        }

        AssertPlan(scenario.Decide(), "waiting for leader to bootstrap");
    }

    [Theory]
    [InlineData("starting", true)]
    [InlineData("stopped", true)]
    [InlineData("running", false)]
    public void Empty_data_directory_waits_for_the_leader_to_be_running_and_published(string state, bool published)
    {
        var plan = Of("node2").Leader("node1").Member("node1", "primary", state, published: published).Decide();

        AssertPlan(plan, "waiting for leader 'node1' to be running before cloning from it");
    }

    [Fact]
    public void Empty_data_directory_waits_when_the_leader_has_no_member_key()
    {
        var plan = Of("node2").LeaderKeyOnly("node1", OtherLease).Decide();

        AssertPlan(plan, "waiting for leader 'node1' to be running before cloning from it");
    }

    [Fact]
    public void Empty_data_directory_is_cloned_from_the_running_leader_and_started_as_its_replica_with_a_slot()
    {
        var plan = Of("node2").Leader("node1").Replica("node3").Decide();

        AssertPlan(plan, "trying to bootstrap from leader 'node1'",
            new CloneFrom("node1", Address("node1")),
            new StartPostgres(StartRole.Replica, "node1", new Upstream(Address("node1"), "node2")));
    }

    [Fact]
    public void Empty_data_directory_is_cloned_from_a_streaming_clonefrom_replica_and_follows_the_leader()
    {
        var plan = Of("node2").Leader("node1").Replica("node4").Replica("node3").Replica("node5")
            .MemberData("node3", d => d with { Tags = new Dictionary<string, object?> { ["clonefrom"] = true }, ReplicationState = "streaming" })
            .MemberData("node4", d => d with { Tags = new Dictionary<string, object?> { ["clonefrom"] = true } }) // not streaming
            .MemberData("node5", d => d with { ReplicationState = "streaming" }) // not tagged
            .Decide();

        AssertPlan(plan, "trying to bootstrap from replica 'node3' (tagged clonefrom), then following leader 'node1'",
            new CloneFrom("node3", Address("node3")),
            new StartPostgres(StartRole.Replica, "node1", new Upstream(Address("node1"), "node2")));
    }

    [Fact]
    public void Clone_uses_no_slot_when_use_slots_is_off()
    {
        var plan = Of("node2").Leader("node1").WithSettings(s => s with { Postgresql = s.Postgresql with { UseSlots = false } }).Decide();

        Assert.Equal(new StartPostgres(StartRole.Replica, "node1", new Upstream(Address("node1"), null)), plan.Steps[^1]);
    }

    /// <summary>
    /// Found while writing these tests: a member whose data directory was wiped while the leader key still named it (its
    /// own live lock, or the key of its previous session) planned a pg_basebackup from its own address.
    /// </summary>
    [Theory]
    [InlineData(MyLease)]
    [InlineData(1234)]
    public void Empty_data_directory_never_clones_from_itself_when_the_leader_key_names_me(long lease)
    {
        var plan = Of("node1").Leader("node1").LeaderKeyOnly("node1", lease).PastLeases(1234).Decide();

        AssertPlan(plan, "releasing the leader key: my data directory is empty", new ReleaseLeader());
    }

    /// <summary>
    /// Issue 16: a second agent started with an existing member's name saw that member's leader key as "my previous
    /// session" and released it — opening an election under a running primary. A key with my name on a lease none of my
    /// runs held is never released or acted on, whatever the local PostgreSQL looks like.
    /// </summary>
    [Fact]
    public void A_leader_key_with_my_name_on_a_lease_none_of_my_runs_held_is_never_touched()
    {
        const string NotMine = "held by session 10e1, which is not one of mine: another agent may be running with the name 'node1'";
        foreach (var (scenario, expected) in new[]
                 {
                     (PrimaryHoldingTheLock().WithPg(Pg.CrashedPrimary()), NotMine),
                     (PrimaryHoldingTheLock(), NotMine),
                     (PrimaryHoldingTheLock().WithPg(Pg.StoppedReplica()), NotMine),
                     (Of("node1").Leader("node1"), NotMine),
                     (Of("node1").Leader("node1").WithCluster(c => c with { Initialize = "" }), "waiting for leader to bootstrap"),
                 })
        {
            var plan = scenario.LeaderKeyOnly("node1", 4321).PastLeases(1234).Decide();

            Assert.DoesNotContain(plan.Steps, s => s is ReleaseLeader or AcquireLeader or Promote);
            Assert.Contains(expected, plan.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Failover_priority_breaks_a_tie_in_position_and_priority_0_never_takes_over()
    {
        static Scenario Election(long myPriority, long theirPriority, long theirLsn) =>
            ReplicaStreamingFrom("node1").NoLeaderKey()
                .Tag("failover_priority", myPriority)
                .Peers(new PeerStatus { Name = "node3", Reachable = true, Role = "replica", State = "running", Timeline = 1, Lsn = theirLsn, FailoverPriority = theirPriority });

        var lsn = Election(1, 1, 0).Build().Pg.Lsn!.Value;

        // Same position: the higher priority takes over; the lower one waits and says why.
        AssertPlan(Election(1, 2, lsn).Decide(), "its failover_priority 2 is higher than mine (1): it should take over");
        Assert.Contains(Election(2, 1, lsn).Decide().Steps, s => s is AcquireLeader);
        Assert.Contains(Election(1, 1, lsn).Decide().Steps, s => s is AcquireLeader);

        // Further ahead wins whatever the priorities (Patroni 4): a higher priority does not let a member lose commits.
        Assert.Contains(Election(1, 5, lsn - 1).Decide().Steps, s => s is AcquireLeader);
        Assert.Contains("is ahead", Election(5, 1, lsn + 1).Decide().Message, StringComparison.Ordinal);

        // Priority 0 never takes over, and is not waited for.
        Assert.Contains("failover_priority 0", Election(0, 1, 0).Decide().Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Election(0, 1, 0).Decide().Steps, s => s is AcquireLeader);
        Assert.Contains(Election(1, 0, lsn + 100).Decide().Steps, s => s is AcquireLeader);
    }

    [Fact]
    public void System_id_mismatch_is_fatal()
    {
        var plan = ReplicaStreamingFrom("node1").WithPg(p => p with { SystemId = "7000000000000000000" }).Decide();

        Assert.Contains($"system ID mismatch, node node2 belongs to a different cluster: 7000000000000000000 != {SystemId}", plan.Message, StringComparison.Ordinal);
        Assert.Equal([new Fatal(plan.Message)], plan.Steps);
    }

    [Fact]
    public void Member_with_data_waits_while_the_bootstrap_is_in_progress_and_nobody_leads()
    {
        AssertPlan(NoLeader().WithCluster(c => c with { Initialize = "" }).Decide(), "waiting for leader to bootstrap");
    }

    [Fact]
    public void Stale_leader_key_of_my_previous_lease_is_released_when_PostgreSQL_is_not_a_running_primary()
    {
        var plan = PrimaryHoldingTheLock().WithPg(Pg.CrashedPrimary()).LeaderKeyOnly("node1", 1234).PastLeases(1234).Decide();

        AssertPlan(plan, "removing the leader key of my previous session", new ReleaseLeader());
    }

    [Fact]
    public void Stale_leader_key_of_my_previous_lease_is_left_to_expire_while_my_primary_runs()
    {
        // Releasing it would open an election while this primary still takes writes (review finding S5).
        var plan = PrimaryHoldingTheLock().LeaderKeyOnly("node1", 1234).PastLeases(1234).Decide();

        AssertPlan(plan, "waiting for the leader key of my previous session to expire");
    }

    // ---- PostgreSQL stopped ----

    [Fact]
    public void Leader_restarts_its_stopped_primary_as_primary()
    {
        var plan = PrimaryHoldingTheLock().WithPg(Pg.CrashedPrimary()).PgDownFor(TimeSpan.FromSeconds(5)).Decide();

        AssertPlan(plan, "starting PostgreSQL as primary: I hold the leader lock", new StartPostgres(StartRole.Primary, null, null));
    }

    [Fact]
    public void Leader_starts_a_stopped_standby_as_a_standby_to_promote_when_standby_signal_is_present()
    {
        var plan = PrimaryHoldingTheLock().WithPg(Pg.StoppedReplica()).Decide();

        AssertPlan(plan, "starting PostgreSQL as a standby to promote: I hold the leader lock", new StartPostgres(StartRole.Replica, null, null));
    }

    /// <summary>
    /// The mark is written before pg_promote: killed in between, the directory is marked but still a standby's. Started as a
    /// primary it would take writes on the timeline the other members share (the simulation found two histories under one
    /// timeline id when the mark decided this); started as a standby and promoted, it gets a timeline of its own.
    /// </summary>
    [Fact]
    public void Leader_starts_a_marked_standby_whose_promotion_never_happened_as_a_standby_to_promote()
    {
        var plan = PrimaryHoldingTheLock().WithPg(Pg.StoppedReplica() with { PrimaryMark = true }).Decide();

        AssertPlan(plan, "starting PostgreSQL as a standby to promote: I hold the leader lock", new StartPostgres(StartRole.Replica, null, null));
    }

    [Fact]
    public void Leader_releases_the_lock_when_postgres_did_not_start_within_primary_start_timeout()
    {
        var plan = PrimaryHoldingTheLock().WithPg(Pg.CrashedPrimary()).PgDownFor(TimeSpan.FromSeconds(31)).Decide();

        AssertPlan(plan, "releasing the leader key: PostgreSQL did not start within primary_start_timeout (30 s)", new ReleaseLeader());
    }

    [Fact]
    public void Stopped_member_starts_as_a_secondary_when_there_is_no_leader()
    {
        AssertPlan(NoLeader().WithPg(Pg.CrashedPrimary()).Decide(), "starting as a secondary: there is no leader",
            new StartPostgres(StartRole.Replica, null, null));
    }

    [Fact]
    public void Stopped_replica_starts_following_the_leader()
    {
        var plan = ReplicaStreamingFrom("node1").WithPg(Pg.StoppedReplica()).Decide();

        AssertPlan(plan, "starting as a secondary following leader 'node1'", new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    [Theory]
    [InlineData("in production")]
    [InlineData("shut down")]
    [InlineData("in crash recovery")]
    public void Stopped_former_primary_is_rewound_before_following_the_new_leader(string controlState)
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).WithPg(Pg.CrashedPrimary() with { ControlState = controlState })
            .LeaderAnswers("node1", timeline: 2).Decide();

        AssertPlan(plan, "rewinding from leader 'node1' before following it: this data directory was a primary",
            new RewindOrReclone("node1", Address("node1"), true), new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    [Fact]
    public void Stopped_former_primary_is_recloned_when_use_pg_rewind_is_off()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).WithPg(Pg.CrashedPrimary()).UsePgRewind(false).LeaderAnswers("node1", timeline: 2).Decide();

        AssertPlan(plan, "re-cloning from leader 'node1': this data directory was a primary and use_pg_rewind is off",
            new RewindOrReclone("node1", Address("node1"), false), new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    /// <summary>
    /// Story (fault campaign, LivenessTests): node3 promoted 1 → 2 and was killed before any replica saw timeline 2; node1
    /// took over from timeline 1 (1 → 3). node3's directory, restarted as a standby, was on a branch the leader never had.
    /// </summary>
    [Fact]
    public void Stopped_standby_on_a_timeline_off_the_leaders_line_is_rewound()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 3).History(BranchOf1To2, LeaderLine1To3)
            .WithPg(Pg.StoppedReplica(timeline: 2)).LeaderAnswers("node1", timeline: 3).Decide();

        AssertPlan(plan, "rewinding from leader 'node1' before following it: my timeline 2 is not on the leader's line of timelines 1 → 3",
            new RewindOrReclone("node1", Address("node1"), true), new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Stopped_standby_on_the_leaders_line_starts_without_a_rewind(long controlTimeline)
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 3).History(BranchOf1To2, LeaderLine1To3)
            .WithPg(Pg.StoppedReplica(timeline: controlTimeline)).LeaderAnswers("node1", timeline: 3).Decide();

        AssertPlan(plan, "starting as a secondary following leader 'node1'", new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    [Fact]
    public void Stopped_standby_on_a_timeline_of_an_unknown_line_starts_without_a_rewind()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 3).History(BranchOf1To2)
            .WithPg(Pg.StoppedReplica(timeline: 2)).LeaderAnswers("node1", timeline: 3).Decide();

        AssertPlan(plan, "starting as a secondary following leader 'node1'", new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    /// <summary>The running half of the same story: the standby replays its branch and streams from nobody, forever.</summary>
    [Fact]
    public void Replica_replaying_a_timeline_off_the_leaders_line_is_rewound_from_the_answering_leader()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 3).History(BranchOf1To2, LeaderLine1To3)
            .WithPg(Pg.Replica(timeline: 2, lsn: 0x402A2A8)).NotStreamingFor(TimeSpan.FromSeconds(1)).LeaderAnswers("node1", timeline: 3).Decide();

        AssertPlan(plan, "rewinding from leader 'node1': I replay timeline 2, which is not on the leader's line of timelines 1 → 3",
            new StopPostgres(StopMode.Fast), new RewindOrReclone("node1", Address("node1"), true), new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    private static readonly HistoryEntry BranchOf1To2 = new(1, 0x402A278, "no recovery target specified", DateTimeOffset.UnixEpoch, "node3");
    private static readonly HistoryEntry LeaderLine1To3 = new(1, 0x402A278, "no recovery target specified", DateTimeOffset.UnixEpoch, "node1") { NewTimeline = 3 };

    [Fact]
    public void Divergence_is_proven_against_the_switch_point_of_the_leaders_line_not_of_another_branch()
    {
        // Timeline 2 left timeline 1 late (a leader that crashed after writing on), the leader's timeline 3 left it early.
        HistoryEntry[] history = [new(1, 0x5000000, "late", DateTimeOffset.UnixEpoch, "node3"), new(1, 0x3000000, "early", DateTimeOffset.UnixEpoch, "node1") { NewTimeline = 3 }];

        Assert.Equal("I replayed timeline 1 up to 0/4000000, past 0/3000000 where the cluster left it for timeline 3",
            HaDecision.DivergedFrom(1, 0x4000000, 3, history));
        Assert.Null(HaDecision.DivergedFrom(1, 0x3000000, 3, history));
        Assert.Equal("I replayed timeline 1 up to 0/5000001, past 0/5000000 where the cluster left it for timeline 2",
            HaDecision.DivergedFrom(1, 0x5000001, 2, history));
        Assert.Null(HaDecision.DivergedFrom(1, 0x4000000, 2, history));
    }

    /// <summary>
    /// A reservation row carries the position the promoting replica had reserved from: the real switch point is at or past
    /// it. It is proof enough (a needless pg_rewind says "no rewind required"); waiting for an exact row would wait for ever
    /// on a leader killed after its promotion. Which timeline it left is certain: enough to tell a branch off the line.
    /// </summary>
    [Fact]
    public void A_reservation_row_proves_divergence_by_its_position_and_its_parent_timeline()
    {
        var reserved = new HistoryEntry(1, 0x3000000, "promote " + HistoryEntry.ProvisionalSuffix, DateTimeOffset.UnixEpoch, "node1") { NewTimeline = 2 };

        Assert.Equal("I replayed timeline 1 up to 0/3000200, past 0/3000000 where the cluster left it for timeline 2",
            HaDecision.DivergedFrom(1, 0x3000200, 2, [reserved]));
        Assert.Null(HaDecision.DivergedFrom(1, 0x3000000, 2, [reserved]));
        var deadBranch = new HistoryEntry(1, 0x2000000, "r", DateTimeOffset.UnixEpoch, "node3") { NewTimeline = 3 };
        Assert.Equal("I replay timeline 3, which is not on the leader's line of timelines 1 → 4",
            HaDecision.DivergedFrom(3, 0x2000100, 4, [deadBranch, reserved with { NewTimeline = 4 }]));
    }

    [Fact]
    public void The_leaders_line_is_known_only_when_every_timeline_on_it_was_created_once_from_an_earlier_one()
    {
        var oneToTwo = new HistoryEntry(1, 0x3000000, "r", DateTimeOffset.UnixEpoch, "node1");
        var twoToFour = new HistoryEntry(2, 0x4000000, "r", DateTimeOffset.UnixEpoch, "node2") { NewTimeline = 4 };

        Assert.Equal(new Dictionary<long, HistoryEntry?> { [4] = null, [2] = twoToFour, [1] = oneToTwo }, HaDecision.LineOf(4, [oneToTwo, twoToFour]));
        Assert.Equal(new Dictionary<long, HistoryEntry?> { [1] = null }, HaDecision.LineOf(1, []));
        Assert.Null(HaDecision.LineOf(4, [twoToFour]));                                                         // 2 has no row
        Assert.Null(HaDecision.LineOf(3, [oneToTwo, twoToFour]));                                                // 3 has no row
        Assert.Null(HaDecision.LineOf(2, [oneToTwo, oneToTwo with { Lsn = 0x3000008 }]));                           // two rows disagree
        Assert.NotNull(HaDecision.LineOf(2, [oneToTwo, oneToTwo with { Reason = "same switch, written twice" }])); // two rows agree
        Assert.Null(HaDecision.LineOf(2, [oneToTwo with { Timeline = 2, NewTimeline = 2 }]));                    // created from itself
        Assert.Null(HaDecision.LineOf(2, [oneToTwo with { Timeline = 0, NewTimeline = 2 }]));                    // from no timeline
    }

    [Fact]
    public void Stopped_standby_on_a_timeline_ahead_of_the_leader_is_rewound()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).WithPg(Pg.StoppedReplica(timeline: 3)).LeaderAnswers("node1", timeline: 2).Decide();

        AssertPlan(plan, "rewinding from leader 'node1' before following it: my timeline 3 is ahead of the leader's timeline 2",
            new RewindOrReclone("node1", Address("node1"), true), new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    [Fact]
    public void Stopped_former_primary_asks_the_leader_before_rewinding_from_it()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).WithPg(Pg.CrashedPrimary()).Decide();

        AssertPlan(plan, "this data directory was a primary: asking leader 'node1' before rewinding from it", new FetchPeers());
    }

    /// <summary>
    /// Story (issue 9): the leader crashed; its key had not expired yet. A former primary restarting then ran pg_rewind
    /// against the dead leader, which failed, so its data directory was moved aside and a clone from the dead leader was
    /// tried: the node that might hold the best copy was left empty. A rewind needs a leader that answers.
    /// </summary>
    [Theory]
    [InlineData(false, "replica")]
    [InlineData(true, "replica")]
    public void Stopped_former_primary_is_not_rewound_from_a_leader_that_does_not_answer_as_a_primary(bool reachable, string role)
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).WithPg(Pg.CrashedPrimary()).Peers(Peer("node1", Pg.DefaultLsn, role, reachable)).Decide();

        AssertPlan(plan, "not rewinding: this data directory was a primary, but leader 'node1' does not answer as a running primary; waiting");
    }

    [Fact]
    public void Stopped_replica_starts_as_a_standby_without_upstream_when_the_leader_has_not_published_its_address()
    {
        var plan = ReplicaStreamingFrom("node1").Member("node1", "primary", published: false).WithPg(Pg.StoppedReplica()).Decide();

        AssertPlan(plan, "starting as a secondary: leader 'node1' has not published its address yet", new StartPostgres(StartRole.Replica, null, null));
    }

    /// <summary>
    /// Found while writing these tests: a crashed former primary whose new leader had not published its address yet was
    /// started as a plain standby. That writes standby.signal, so pg_control no longer says "in production" and the next
    /// cycles followed the new leader without pg_rewind (safety rule 3) — only PostgreSQL's own fork check stood in the way.
    /// </summary>
    [Fact]
    public void Stopped_former_primary_waits_for_the_leader_address_instead_of_starting_unrewound()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).Member("node1", "primary", timeline: 2, published: false)
            .WithPg(Pg.CrashedPrimary()).Decide();

        AssertPlan(plan, "waiting for leader 'node1' to publish its address: this data directory was a primary and must be rewound before following");
    }

    [Fact]
    public void Starting_postgres_is_left_alone()
    {
        AssertPlan(ReplicaStreamingFrom("node1").WithPg(Pg.StartingUp()).Decide(), "PostgreSQL is starting up; waiting. I am (node2)");
    }

    [Fact]
    public void Postgres_accepting_without_a_known_recovery_state_is_left_alone()
    {
        var plan = ReplicaStreamingFrom("node1").WithPg(p => p with { InRecovery = null }).Decide();

        AssertPlan(plan, "PostgreSQL is starting up; waiting. I am (node2)");
    }

    // ---- I hold the lock, but PostgreSQL does not answer ----

    /// <summary>
    /// Story (issue 9, defect 1): "starting up; waiting" was decided before the lock was looked at, so a primary whose
    /// storage stalled (or whose postmaster was stopped) kept the key for ever while its lease was renewed: writes went to a
    /// dead server and no replica took over.
    /// </summary>
    [Fact]
    public void Leader_whose_postgres_has_not_answered_past_primary_start_timeout_stops_it_and_releases_the_lock()
    {
        var plan = PrimaryHoldingTheLock().PgUnresponsiveFor(TimeSpan.FromSeconds(31)).Decide();

        AssertPlan(plan, "stopping PostgreSQL and releasing the leader key: it has not answered for 31 s (primary_start_timeout 30 s)",
            new StopPostgres(StopMode.Immediate), new ReleaseLeader());
    }

    [Fact]
    public void Leader_whose_postgres_answers_without_a_recovery_state_is_treated_as_not_answering()
    {
        var plan = PrimaryHoldingTheLock().PgUnresponsiveFor(TimeSpan.FromSeconds(31)).WithPg(p => p with { Accepting = true }).Decide();

        Assert.Equal([new StopPostgres(StopMode.Immediate), new ReleaseLeader()], plan.Steps);
    }

    [Fact]
    public void Leader_whose_postgres_does_not_answer_keeps_the_lock_within_primary_start_timeout()
    {
        var plan = PrimaryHoldingTheLock().PgUnresponsiveFor(TimeSpan.FromSeconds(12)).Decide();

        AssertPlan(plan, "PostgreSQL is starting up or not answering; waiting. I am (node1), the leader with the lock; " +
                         $"releasing it if PostgreSQL does not answer within primary_start_timeout (30 s) of {Now.AddSeconds(-12):O}");
    }

    [Fact]
    public void Leader_with_primary_start_timeout_zero_hands_over_as_soon_as_postgres_stops_answering()
    {
        var plan = PrimaryHoldingTheLock().WithSettings(s => s with { PrimaryStartTimeout = 0 }).PgUnresponsiveFor(TimeSpan.FromSeconds(1)).Decide();

        Assert.Equal([new StopPostgres(StopMode.Immediate), new ReleaseLeader()], plan.Steps);
    }

    [Fact]
    public void Replica_that_does_not_answer_is_left_alone_whatever_the_time()
    {
        var plan = ReplicaStreamingFrom("node1").PgUnresponsiveFor(TimeSpan.FromMinutes(10)).Decide();

        AssertPlan(plan, "PostgreSQL is starting up; waiting. I am (node2)");
    }

    // ---- I hold the lock ----

    [Fact]
    public void Leader_with_a_healthy_primary_does_housekeeping()
    {
        AssertPlan(PrimaryHoldingTheLock().Decide(), "no action. I am (node1), the leader with the lock", new LeaderHousekeeping());
    }

    [Fact]
    public void Leader_whose_postgres_is_still_in_recovery_promotes_it()
    {
        var plan = PrimaryHoldingTheLock().WithPg(Pg.Replica()).Decide();

        Assert.Contains("promoted self to leader because I had the session lock", plan.Message, StringComparison.Ordinal);
        Assert.IsType<Promote>(Assert.Single(plan.Steps));
    }

    // ---- switchover ----

    [Fact]
    public void Switchover_scheduled_in_the_future_keeps_the_leader_running()
    {
        var at = Now.AddMinutes(5);
        var plan = PrimaryHoldingTheLock().Failover("node1", "node2", at).Decide();

        AssertPlan(plan, $"no action. I am (node1), the leader with the lock; switchover scheduled at {at:O}", new LeaderHousekeeping());
    }

    [Theory]
    [InlineData("node1")]
    [InlineData(null)]
    public void Due_switchover_to_a_healthy_candidate_demotes_the_leader_cleanly(string? leader)
    {
        var plan = PrimaryHoldingTheLock().Failover(leader, "node2", Now.AddSeconds(-1))
            .Peers(Peer("node2", Pg.DefaultLsn - 100), Peer("node3", Pg.DefaultLsn)).Decide();

        AssertPlan(plan, "switchover: demoting self so that node2 can take over",
            new Checkpoint(), new StopPostgres(StopMode.Fast), new ReleaseLeader(), new StartPostgres(StartRole.Replica, null, null));
    }

    [Fact]
    public void Switchover_without_a_candidate_hands_over_to_the_healthiest_replica()
    {
        var plan = PrimaryHoldingTheLock().Failover("node1", null).Peers(Peer("node2", Pg.DefaultLsn), Peer("node3", 0)).Decide();

        AssertPlan(plan, "switchover: demoting self so that the healthiest replica can take over",
            new Checkpoint(), new StopPostgres(StopMode.Fast), new ReleaseLeader(), new StartPostgres(StartRole.Replica, null, null));
    }

    [Fact]
    public void Switchover_to_a_missing_candidate_is_cancelled()
    {
        var plan = PrimaryHoldingTheLock().Failover("node1", "node4").Decide();

        AssertPlan(plan, "switchover cancelled: no healthy candidate 'node4'", new DeleteFailoverKey(), new LeaderHousekeeping());
    }

    [Fact]
    public void Switchover_to_a_nofailover_candidate_is_cancelled()
    {
        var plan = PrimaryHoldingTheLock().Replica("node2", nofailover: true).Failover("node1", "node2").Decide();

        AssertPlan(plan, "switchover cancelled: no healthy candidate 'node2'", new DeleteFailoverKey(), new LeaderHousekeeping());
    }

    [Fact]
    public void Switchover_to_a_candidate_that_is_not_running_is_cancelled()
    {
        var plan = PrimaryHoldingTheLock().Replica("node2", state: "stopped").Failover("node1", "node2").Decide();

        AssertPlan(plan, "switchover cancelled: no healthy candidate 'node2'", new DeleteFailoverKey(), new LeaderHousekeeping());
    }

    [Fact]
    public void Switchover_to_myself_is_cancelled()
    {
        var plan = PrimaryHoldingTheLock().Failover("node1", "node1").Decide();

        AssertPlan(plan, "switchover cancelled: no healthy candidate 'node1'", new DeleteFailoverKey(), new LeaderHousekeeping());
    }

    [Fact]
    public void Switchover_asks_the_peers_before_demoting()
    {
        AssertPlan(PrimaryHoldingTheLock().Failover("node1", "node2").Decide(), "checking the switchover candidates", new FetchPeers());
    }

    [Theory]
    [InlineData(0x2000000, true)]
    [InlineData(Pg.DefaultLsn, false)]
    public void Switchover_to_a_lagging_or_unreachable_candidate_is_cancelled(long candidateLsn, bool reachable)
    {
        var plan = PrimaryHoldingTheLock().Failover("node1", "node2").Peers(Peer("node2", candidateLsn, reachable: reachable)).Decide();

        AssertPlan(plan, "switchover cancelled: the candidate is not reachable or lags more than maximum_lag_on_failover",
            new DeleteFailoverKey(), new LeaderHousekeeping());
    }

    // ---- someone else holds the lock ----

    [Fact]
    public void Primary_without_the_lock_stops_immediately_when_another_member_leads()
    {
        var plan = ReplicaStreamingFrom("node1").WithPg(Pg.Primary()).Decide();

        AssertPlan(plan, "demoting self because I do not have the lock and I was a leader", new StopPostgres(StopMode.Immediate));
    }

    [Theory]
    [InlineData("node3")]
    [InlineData(null)]
    public void Replica_follows_the_new_leader_when_the_upstream_changed(string? previousUpstream)
    {
        var plan = ReplicaStreamingFrom("node1").Upstream(previousUpstream).Decide();

        AssertPlan(plan, "following new leader 'node1'", new Follow("node1", FromNode1ForNode2));
    }

    [Fact]
    public void A_nostream_replica_follows_the_leader_without_conninfo_or_slot_and_not_streaming_is_normal_for_it()
    {
        var plan = ReplicaStreamingFrom("node1").Upstream(null).Tag("nostream", true).Decide();
        AssertPlan(plan, "following new leader 'node1'", new Follow("node1", FromNode1ForNode2 with { SlotName = null, Stream = false }));

        var quiet = ReplicaStreamingFrom("node1").Tag("nostream", true).WithPg(p => p with { Streaming = false }).Decide();
        Assert.Empty(quiet.Steps);
        Assert.Contains("tagged nostream, following a leader (node1) from the WAL archive", quiet.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Replica_streaming_from_the_leader_takes_no_action()
    {
        AssertPlan(ReplicaStreamingFrom("node1").Decide(), "no action. I am (node2), a secondary, and following a leader (node1)");
    }

    [Fact]
    public void Replica_waits_while_the_leader_has_not_published_its_address()
    {
        var plan = ReplicaStreamingFrom("node1").Member("node1", "primary", published: false).Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary; leader 'node1' has not published its address yet");
    }

    /// <summary>
    /// Story (issue 9, defect 0): after a failover, replication to the healthy new leader was refused for 25 s. Both replicas
    /// had not streamed for 10 s, read a stale timeline from pg_control_checkpoint(), concluded they had diverged, stopped,
    /// moved their data aside and cloned the whole database again. Not streaming is no proof of divergence.
    /// </summary>
    [Fact]
    public void Replica_not_streaming_for_minutes_from_a_leader_on_a_newer_timeline_is_left_alone_when_it_has_not_passed_the_switch_point()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).History(2)
            .WithPg(Pg.Replica(timeline: 1, lsn: 0x3000000) with { ControlTimeline = 1 }).NotStreamingFor(TimeSpan.FromMinutes(5))
            .LeaderAnswers("node1", timeline: 2).Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary, and following a leader (node1); not streaming since");
        Assert.Contains("nothing shows that my timeline left the leader's history", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Replica_on_the_leaders_timeline_with_a_stale_checkpoint_timeline_is_left_alone()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).History(2)
            .WithPg(Pg.Replica(timeline: 2, lsn: 0x3100000) with { ControlTimeline = 1 }).NotStreamingFor(TimeSpan.FromMinutes(5)).Decide();

        Assert.Empty(plan.Steps);
    }

    [Fact]
    public void Replica_not_streaming_on_the_leaders_timeline_takes_no_action()
    {
        var plan = ReplicaStreamingFrom("node1").NotStreamingFor(TimeSpan.FromMinutes(5)).Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary, and following a leader (node1)");
    }

    [Fact]
    public void Replica_that_replayed_past_the_switch_point_asks_the_leader_before_rewinding()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).History(2)
            .WithPg(Pg.Replica(timeline: 1, lsn: 0x3000200)).NotStreamingFor(TimeSpan.FromSeconds(1)).Decide();

        AssertPlan(plan, "I replayed timeline 1 up to 0/30001A0, past 0/3000000 where the cluster left it for timeline 2: asking leader 'node1' before rewinding from it",
            new FetchPeers());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Replica_that_replayed_past_the_switch_point_is_rewound_from_the_answering_leader(bool useRewind)
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).History(2).UsePgRewind(useRewind)
            .WithPg(Pg.Replica(timeline: 1, lsn: 0x3000200)).NotStreamingFor(TimeSpan.FromSeconds(1)).LeaderAnswers("node1", timeline: 2).Decide();

        AssertPlan(plan, $"{(useRewind ? "rewinding" : "re-cloning")} from leader 'node1': I replayed timeline 1 up to 0/30001A0, past 0/3000000 where the cluster left it for timeline 2",
            new StopPostgres(StopMode.Fast), new RewindOrReclone("node1", Address("node1"), useRewind), new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    [Fact]
    public void Replica_replaying_a_timeline_ahead_of_the_leader_is_rewound_from_the_answering_leader()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).History(2)
            .WithPg(Pg.Replica(timeline: 3)).NotStreamingFor(TimeSpan.FromSeconds(1)).LeaderAnswers("node1", timeline: 2).Decide();

        AssertPlan(plan, "rewinding from leader 'node1': I replay timeline 3, ahead of the leader's timeline 2",
            new StopPostgres(StopMode.Fast), new RewindOrReclone("node1", Address("node1"), true), new StartPostgres(StartRole.Replica, "node1", FromNode1ForNode2));
    }

    /// <summary>The leader's member key may lag a promotion by a cycle: what the leader answers now decides.</summary>
    [Fact]
    public void Replica_ahead_of_the_leaders_published_timeline_is_left_alone_when_the_leader_answers_on_its_timeline()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).History(3)
            .WithPg(Pg.Replica(timeline: 3)).NotStreamingFor(TimeSpan.FromSeconds(1)).LeaderAnswers("node1", timeline: 3).Decide();

        Assert.Empty(plan.Steps);
    }

    /// <summary>Story (issue 9, defect 0): with the leader killed, both replicas tried to rewind from it and moved their data aside.</summary>
    [Theory]
    [InlineData(false, "primary")]
    [InlineData(true, "replica")]
    public void Diverged_replica_is_not_rewound_while_the_leader_does_not_answer_as_a_primary(bool reachable, string role)
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).History(2)
            .WithPg(Pg.Replica(timeline: 1, lsn: 0x3000200)).NotStreamingFor(TimeSpan.FromSeconds(30))
            .Peers(Peer("node1", Pg.DefaultLsn, role, reachable, timeline: 2)).Decide();

        AssertPlan(plan, "not rewinding: I replayed timeline 1 up to 0/30001A0, past 0/3000000 where the cluster left it for timeline 2, " +
                         "but leader 'node1' does not answer as a running primary; waiting");
    }

    [Fact]
    public void Replica_on_an_older_timeline_missing_from_the_history_is_left_alone()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 3).History(2)
            .WithPg(Pg.Replica(timeline: 2, lsn: 0x9000000)).NotStreamingFor(TimeSpan.FromMinutes(5)).LeaderAnswers("node1", timeline: 3).Decide();

        Assert.Empty(plan.Steps);
    }

    [Fact]
    public void Replica_whose_replay_timeline_is_unknown_is_left_alone()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).History(2)
            .WithPg(Pg.Replica(timeline: 1, lsn: 0x3000200) with { ReplayTimeline = null }).NotStreamingFor(TimeSpan.FromMinutes(5))
            .LeaderAnswers("node1", timeline: 2).Decide();

        Assert.Empty(plan.Steps);
    }

    [Fact]
    public void Streaming_replica_is_never_rewound()
    {
        var plan = ReplicaStreamingFrom("node1", timeline: 2).History(2).WithPg(Pg.Replica(timeline: 1, lsn: 0x3000200)).LeaderAnswers("node1", timeline: 2).Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary, and following a leader (node1)");
    }

    // ---- nobody holds the lock ----

    [Fact]
    public void Running_primary_on_the_newest_timeline_takes_the_leader_key()
    {
        var plan = PrimaryHoldingTheLock().NoLeaderKey().History(3).WithPg(Pg.Primary(timeline: 3)).Decide();

        AssertPlan(plan, "acquired session lock as a leader: I am the running primary", new AcquireLeader(), new LeaderHousekeeping());
    }

    [Fact]
    public void Running_primary_on_an_older_timeline_than_the_history_says_stops()
    {
        var plan = PrimaryHoldingTheLock().NoLeaderKey().History(3).WithPg(Pg.Primary(timeline: 2)).Decide();

        AssertPlan(plan, "demoting self: the cluster moved to timeline 3 while I was a primary on timeline 2", new StopPostgres(StopMode.Immediate));
    }

    [Fact]
    public void Nofailover_replica_does_not_take_over()
    {
        var plan = NoLeader().NoFailover().Peers().Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary with nofailover set; waiting for a leader");
    }

    [Fact]
    public void Replica_waits_for_the_running_member_named_by_the_failover_key()
    {
        var plan = NoLeader().Failover("node1", "node3").Peers().Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary; waiting for 'node3' to take over as requested");
    }

    [Fact]
    public void Replica_does_not_wait_for_a_failover_candidate_that_is_not_running()
    {
        var plan = NoLeader().Replica("node3", state: "stopped").Failover("node1", "node3").Peers().Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock", new AcquireLeader(), new Promote("no leader"));
    }

    // ---- a switchover or failover request that nobody carries out ----

    [Fact]
    public void Member_that_stepped_down_for_a_switchover_stays_out_of_the_election_within_ttl()
    {
        var plan = NoLeader("node1").Replica("node2").Failover("node1", "node2").LeaderMissingFor(TimeSpan.FromSeconds(5)).Peers().Decide();

        AssertPlan(plan, "no action. I am (node1), a secondary; I stepped down for a switchover and do not take part in this election unless nobody takes over within ttl (6 s)");
    }

    /// <summary>
    /// Story (issue 9, defect 2): two nodes, switchover node1 → node2, node2 crashed right after node1 released the key.
    /// node1, the most up-to-date member, stayed a read-only standby for ever: it never ran for leader again.
    /// </summary>
    [Fact]
    public void Member_that_stepped_down_takes_over_when_nobody_did_within_ttl()
    {
        var plan = NoLeader("node1").WithoutMember("node3").Replica("node2").Failover("node1", "node2").LeaderMissingFor(TimeSpan.FromSeconds(7))
            .Peers(Peer("node2", 0, reachable: false)).Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock; ignoring the failover request (leader node1, candidate node2): " +
                         "nobody took over within ttl (6 s) of the leader key disappearing",
            new AcquireLeader(), new Promote("no leader"));
    }

    [Fact]
    public void Member_that_stepped_down_takes_over_at_once_when_the_candidate_has_no_member_key()
    {
        var plan = NoLeader("node1").WithoutMember("node2").WithoutMember("node3").Failover("node1", "node2").LeaderMissingFor(TimeSpan.FromSeconds(1)).Peers().Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock; ignoring the failover request (leader node1, candidate node2): candidate 'node2' has no member key",
            new AcquireLeader(), new Promote("no leader"));
    }

    [Fact]
    public void Replica_stops_waiting_for_the_requested_candidate_when_nobody_took_over_within_ttl()
    {
        var plan = NoLeader().Failover("node1", "node3").LeaderMissingFor(TimeSpan.FromSeconds(7)).Peers(Peer("node3", Pg.DefaultLsn)).Decide();

        Assert.Equal([new AcquireLeader(), new Promote("no leader")], plan.Steps);
        Assert.Contains("nobody took over within ttl (6 s)", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Replica_does_not_wait_for_a_nofailover_candidate_and_the_former_leader_runs_too()
    {
        var waiting = NoLeader().Replica("node3", nofailover: true).Failover("node1", "node3").Peers().Decide();
        var formerLeader = NoLeader("node1").Replica("node3", nofailover: true).Failover("node1", "node3").Peers().Decide();

        AssertPlan(waiting, "promoted self to leader by acquiring session lock; ignoring the failover request (leader node1, candidate node3): candidate 'node3' is tagged nofailover",
            new AcquireLeader(), new Promote("no leader"));
        Assert.Equal([new AcquireLeader(), new Promote("no leader")], formerLeader.Steps);
    }

    [Fact]
    public void Replica_does_not_wait_for_a_candidate_that_does_not_answer()
    {
        var plan = NoLeader().Failover("node1", "node3").LeaderMissingFor(TimeSpan.FromSeconds(1)).Peers(Peer("node3", 0, reachable: false)).Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock; ignoring the failover request (leader node1, candidate node3): candidate 'node3' does not answer",
            new AcquireLeader(), new Promote("no leader"));
    }

    [Fact]
    public void Switchover_scheduled_for_later_does_not_steer_an_election_without_a_leader()
    {
        var plan = NoLeader("node1").Failover("node1", "node3", Now.AddMinutes(5)).Peers().Decide();

        Assert.Equal([new AcquireLeader(), new Promote("no leader")], plan.Steps);
        Assert.Contains("there is no leader to switch over from", plan.Message, StringComparison.Ordinal);
    }

    // ---- election by (timeline, LSN) ----

    /// <summary>
    /// Story (issue 9, defect 4): the election compared raw LSNs across timelines. A stale former primary left on timeline 1
    /// with a long diverged tail beat a replica on timeline 2, and what timeline 2 had acknowledged was lost.
    /// </summary>
    [Fact]
    public void Replica_on_the_newest_timeline_wins_over_a_peer_with_a_larger_LSN_on_an_older_timeline()
    {
        var plan = NoLeader().History(2).WithPg(Pg.Replica(timeline: 2, lsn: 0x3000100))
            .Peers(Peer("node3", 0x3400000, timeline: 1)).Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock", new AcquireLeader(), new Promote("no leader"));
    }

    [Fact]
    public void Replica_on_an_older_timeline_waits_for_a_peer_on_the_newest_timeline_with_a_smaller_LSN()
    {
        var plan = NoLeader().History(2).WithPg(Pg.Replica(timeline: 1, lsn: 0x3400000))
            .Peers(Peer("node3", 0x3000100, timeline: 2)).Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary; 'node3' is ahead (timeline 2 at 0/3000100, I am on timeline 1 at 0/3400000) and should take over");
    }

    [Fact]
    public void Replica_does_not_wait_for_a_peer_on_a_newer_timeline_that_lags_too_far_to_take_over()
    {
        var plan = NoLeader().History(2).WithCluster(c => c with { Status = new ClusterStatus { Optime = 0x3400000, Timeline = 2 } })
            .WithPg(Pg.Replica(timeline: 1, lsn: 0x3400000)).Peers(Peer("node3", 0x3000100, timeline: 2)).Decide();

        Assert.Equal([new AcquireLeader(), new Promote("no leader")], plan.Steps);
    }

    [Fact]
    public void Replica_lagging_beyond_maximum_lag_on_failover_does_not_take_over()
    {
        var plan = NoLeader().WithCluster(c => c with { Status = new ClusterStatus { Optime = Pg.DefaultLsn + 1048577 } }).Peers().Decide();

        AssertPlan(plan, "not eligible for failover: 1048577 bytes behind the last known leader position (maximum_lag_on_failover 1048576)");
    }

    [Fact]
    public void Replica_asks_the_peers_before_taking_over()
    {
        AssertPlan(NoLeader().Decide(), "no leader: asking the other members before taking over", new FetchPeers());
    }

    [Fact]
    public void Replica_waits_for_a_reachable_peer_that_is_ahead()
    {
        var plan = NoLeader().Peers(Peer("node3", Pg.DefaultLsn + 1)).Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary; 'node3' is ahead (timeline 1 at 0/3000061, I am on timeline 1 at 0/3000060) and should take over");
    }

    [Fact]
    public void Peer_ahead_that_has_not_seen_the_store_within_ttl_is_ignored()
    {
        var plan = NoLeader().Peers(Peer("node3", Pg.DefaultLsn + 1, lastSeen: Now.AddSeconds(-7))).Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock", new AcquireLeader(), new Promote("no leader"));
    }

    [Fact]
    public void Peer_ahead_with_nofailover_is_ignored()
    {
        var plan = NoLeader().Peers(Peer("node3", Pg.DefaultLsn + 1, nofailover: true)).Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock", new AcquireLeader(), new Promote("no leader"));
    }

    [Fact]
    public void Unreachable_peer_is_ignored()
    {
        var plan = NoLeader().Peers(Peer("node3", 0, reachable: false)).Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock", new AcquireLeader(), new Promote("no leader"));
    }

    [Fact]
    public void Replica_waits_while_the_former_primary_is_still_running()
    {
        var plan = NoLeader().Peers(Peer("node1", 0, role: "primary")).Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary; the former primary 'node1' is still running and may take the key back");
    }

    /// <summary>
    /// Found while writing these tests: a reachable peer still running as primary was skipped when it had nofailover set,
    /// yet a running primary with no leader key takes the key back whatever its tags — so a replica promoted beside it
    /// and both accepted writes until one lost the race for the key.
    /// </summary>
    [Fact]
    public void Replica_waits_while_a_nofailover_former_primary_is_still_running()
    {
        var plan = NoLeader().Peers(Peer("node1", 0, role: "primary", nofailover: true)).Decide();

        AssertPlan(plan, "no action. I am (node2), a secondary; the former primary 'node1' is still running and may take the key back");
    }

    [Fact]
    public void Healthiest_replica_acquires_the_leader_key_then_promotes()
    {
        var plan = NoLeader().Peers(Peer("node3", Pg.DefaultLsn), Peer("node2", Pg.DefaultLsn)).Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock", new AcquireLeader(), new Promote("no leader"));
    }

    [Fact]
    public void Replica_named_by_the_failover_key_promotes_even_when_lagging_and_behind_a_peer()
    {
        var plan = NoLeader().Failover(null, "node2")
            .WithCluster(c => c with { Status = new ClusterStatus { Optime = Pg.DefaultLsn + 0x10000000 } })
            .Peers(Peer("node3", Pg.DefaultLsn + 0x1000)).Decide();

        AssertPlan(plan, "promoted self to leader by acquiring session lock", new AcquireLeader(), new Promote("manual failover"));
    }

    // Story: under load, etcd did not answer the bootstrapper's "take the leader key" in time; its PostgreSQL was left
    // running with `initialize` still empty and every member waited for ever ("waiting for leader to bootstrap").
    [Fact]
    public void A_bootstrap_cut_short_after_initdb_is_finished_by_the_member_whose_primary_runs()
    {
        var plan = NoLeader("node1").WithCluster(c => c with { Initialize = "" }).WithPg(Pg.Primary() with { SystemId = "7000" }).Decide();

        AssertPlan(plan, "finishing the bootstrap of the cluster", new CompleteBootstrap("7000"));
    }

    [Fact]
    public void Members_without_a_running_primary_keep_waiting_for_the_bootstrap()
    {
        var plan = NoLeader("node2").WithCluster(c => c with { Initialize = "" }).WithPg(Pg.StoppedReplica()).Decide();

        AssertPlan(plan, "waiting for leader to bootstrap");
    }

    [Fact]
    public void Paused_cluster_without_a_leader_promotes_the_candidate_an_operator_named()
    {
        var plan = NoLeader("node2").Paused().Failover(null, "node2").Decide();

        AssertPlan(plan, "manual failover", new AcquireLeader(), new Promote("manual failover"));
    }

    [Fact]
    public void Paused_cluster_does_not_act_on_a_failover_request_naming_someone_else()
    {
        var plan = NoLeader("node2").Paused().Failover(null, "node3").Decide();

        Assert.Empty(plan.Steps);
    }

    [Fact]
    public void A_replica_holds_back_from_an_election_while_a_failsafe_leader_confirmed_itself_within_ttl()
    {
        var input = NoLeader().WithSettings(s => s with { FailsafeMode = true }).Build() with { FailsafeLeader = "node1" };
        AssertPlan(HaDecision.Decide(input), "failsafe: leader 'node1' confirmed itself within ttl");
    }

    [Fact]
    public void A_failsafe_confirmation_counts_only_with_failsafe_mode_on_and_for_another_member()
    {
        var off = NoLeader().Build() with { FailsafeLeader = "node1" };
        Assert.DoesNotContain("failsafe", HaDecision.Decide(off).Message, StringComparison.Ordinal);
        var self = NoLeader().WithSettings(s => s with { FailsafeMode = true }).Build() with { FailsafeLeader = "node2" };
        Assert.DoesNotContain("failsafe", HaDecision.Decide(self).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_marked_former_primary_running_as_a_standby_is_rewound_before_it_follows_an_answering_leader()
    {
        var plan = ReplicaStreamingFrom("node1").WithPg(p => p with { PrimaryMark = true }).LeaderAnswers().Decide();
        Assert.Contains("ran as a primary and has not been checked", plan.Message, StringComparison.Ordinal);
        Assert.Equal([typeof(StopPostgres), typeof(RewindOrReclone), typeof(StartPostgres)], plan.Steps.Select(s => s.GetType()));
    }

    [Fact]
    public void A_marked_former_primary_asks_the_leader_first_and_waits_while_it_does_not_answer()
    {
        var marked = ReplicaStreamingFrom("node1").WithPg(p => p with { PrimaryMark = true });
        Assert.Equal([new FetchPeers()], marked.Decide().Steps);
        var silent = ReplicaStreamingFrom("node1").WithPg(p => p with { PrimaryMark = true }).Peers().Decide();
        Assert.Empty(silent.Steps);
        Assert.Contains("does not answer", silent.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_mark_keeps_the_evidence_when_standby_signal_erased_it_from_pg_control()
    {
        // Started as a standby with no leader (standby.signal written), then stopped: pg_control says "shut down in recovery".
        var pg = Pg.CrashedPrimary() with { StandbySignal = true, ControlState = "shut down in recovery", PrimaryMark = true };
        Assert.True(HaDecision.WasPrimary(pg));
        Assert.False(HaDecision.WasPrimary(pg with { PrimaryMark = false }));
    }
}
