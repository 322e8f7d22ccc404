using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;
using Steward.Core.Postgres;
using static Steward.Tests.Ha.Scenario;

namespace Steward.Tests.Ha;

/// <summary>
/// Patroni's standby cluster: the lock holder is a standby leader that follows the remote primary and never promotes; the
/// election, the release of the lock and the followers' rules are a normal cluster's; removing the section promotes.
/// </summary>
public sealed class StandbyClusterTests
{
    private static readonly StandbyClusterConfig Remote = new() { Host = "10.9.0.1", Port = 5444, PrimarySlotName = "dr_site" };
    private static readonly Upstream RemoteUpstream = new(new HostPort("10.9.0.1", 5444), "dr_site");

    private static Scenario Standby(Scenario scenario) => scenario.WithSettings(s => s with { StandbyCluster = Remote });

    [Fact]
    public void The_lock_holder_running_as_a_standby_follows_the_remote_primary_instead_of_promoting()
    {
        var plan = Standby(PrimaryHoldingTheLock().WithPg(Pg.Replica())).Decide();

        Assert.Equal([new Follow(HaDecision.RemotePrimary, RemoteUpstream), new LeaderHousekeeping()], plan.Steps);
        Assert.Contains("standby leader", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_standby_leader_already_following_the_remote_primary_only_does_housekeeping()
    {
        var scenario = Standby(PrimaryHoldingTheLock().WithPg(Pg.Replica()));
        var input = scenario.Build() with { CurrentUpstream = RemoteUpstream.Address.ToString() };

        var plan = HaDecision.Decide(input);

        Assert.Equal([new LeaderHousekeeping()], plan.Steps);
        Assert.Equal("no action. I am (node1), the standby leader with the lock, following the remote primary 10.9.0.1:5444", plan.Message);
    }

    [Fact]
    public void Without_a_leader_the_healthiest_replica_takes_the_lock_as_a_standby_leader()
    {
        var plan = Standby(NoLeader().Replica("node3", state: "stopped")).Peers().Decide();

        Assert.Equal([new AcquireLeader(), new Follow(HaDecision.RemotePrimary, RemoteUpstream), new LeaderHousekeeping()], plan.Steps);
        Assert.DoesNotContain(plan.Steps, s => s is Promote);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_lock_holder_starts_its_stopped_postgres_as_a_standby_of_the_remote_primary(bool crashedPrimary)
    {
        var plan = Standby(PrimaryHoldingTheLock().WithPg(crashedPrimary ? Pg.CrashedPrimary() : Pg.StoppedReplica())
            .PgDownFor(TimeSpan.FromSeconds(5))).Decide();

        Assert.Equal([new StartPostgres(StartRole.Replica, HaDecision.RemotePrimary, RemoteUpstream)], plan.Steps);
    }

    [Fact]
    public void A_replica_of_a_standby_cluster_follows_the_standby_leader_as_any_replica_follows_its_leader()
    {
        var normal = ReplicaStreamingFrom("node1").Upstream("node3").Decide();
        var standby = Standby(ReplicaStreamingFrom("node1").Upstream("node3")).Decide();

        Assert.Equal(normal.Steps, standby.Steps);
        Assert.Equal([new Follow("node1", UpstreamOf("node1", "node2"))], standby.Steps);
    }

    [Fact]
    public void Removing_the_section_promotes_the_standby_leader()
    {
        var plan = PrimaryHoldingTheLock().WithPg(Pg.Replica()).Decide();

        Assert.IsType<Promote>(Assert.Single(plan.Steps));
    }

    [Fact]
    public void Synchronous_mode_is_ignored_in_a_standby_cluster()
    {
        // In a normal cluster the sync key names node3, so node2 may not take over; in a standby cluster it may.
        Scenario Build(Scenario s) => s.Replica("node3", state: "stopped")
            .WithSettings(c => c with { SynchronousMode = true, SynchronousModeStrict = true })
            .WithCluster(c => c with { Sync = new SyncState { Leader = "node1", SyncStandby = "node3" } }).Peers();

        Assert.DoesNotContain(Build(NoLeader()).Decide().Steps, s => s is AcquireLeader);
        Assert.Equal([new AcquireLeader(), new Follow(HaDecision.RemotePrimary, RemoteUpstream), new LeaderHousekeeping()],
            Standby(Build(NoLeader())).Decide().Steps);
    }

    [Fact]
    public void A_missing_input_is_refused() => Assert.Throws<ArgumentNullException>(() => HaDecision.Decide(null!));

    [Fact]
    public void A_replica_that_does_not_hold_the_lock_starts_with_no_upstream_when_there_is_no_leader()
    {
        var plan = Standby(NoLeader().WithPg(Pg.StoppedReplica())).Decide();

        Assert.Equal([new StartPostgres(StartRole.Replica, null, null)], plan.Steps);
    }

    [Fact]
    public void A_plan_that_makes_no_primary_is_left_as_it_is()
    {
        var normal = ReplicaStreamingFrom("node1").Upstream("node1").Decide();
        var standby = Standby(ReplicaStreamingFrom("node1").Upstream("node1")).Decide();

        Assert.Equal(normal, standby);
    }

    [Fact]
    public void A_standby_leader_that_must_still_follow_the_remote_says_so_and_keeps_the_plans_recheck()
    {
        var plan = Standby(PrimaryHoldingTheLock().WithPg(Pg.Replica())).Decide();

        Assert.StartsWith("promoted self to leader because I had the session lock (standby cluster: as the standby leader, following the remote primary 10.9.0.1:5444)", plan.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, "on")]
    [InlineData(true, "TRUE")]
    [InlineData(false, "off")]
    [InlineData(false, "yes")]
    public void Tags_are_true_as_patroni_reads_them(bool expected, string value)
    {
        Assert.Equal(expected, HaDecision.TagIsTrue(new Dictionary<string, object?> { ["nofailover"] = value }, "nofailover"));
        Assert.Equal(expected, HaDecision.TagIsTrue(new Dictionary<string, object?> { ["nofailover"] = expected }, "nofailover"));
        Assert.Equal(expected, HaDecision.TagIsTrue(new Dictionary<string, object?>
        {
            ["nofailover"] = System.Text.Json.JsonDocument.Parse(expected ? "true" : "false").RootElement,
        }, "nofailover"));
        Assert.False(HaDecision.TagIsTrue(new Dictionary<string, object?> { ["nofailover"] = 1L }, "nofailover"));
        Assert.False(HaDecision.TagIsTrue(null, "nofailover"));
    }

    [Theory]
    [InlineData("""{"standby_cluster": {"host": "10.9.0.1", "port": 5444, "primary_slot_name": "dr_site", "restore_command": "cp /a/%f %p", "recovery_min_apply_delay": 0}}""", "10.9.0.1", 5444)]
    [InlineData("""{"standby_cluster": {"host": "pg.remote", "port": "5433"}}""", "pg.remote", 5433)]
    [InlineData("""{"standby_cluster": {"host": "pg.remote"}}""", "pg.remote", 5432)]
    public void The_section_is_read_from_the_config_key_as_patroni_writes_it(string json, string host, int port)
    {
        var standby = DynamicConfigJson.TryParse(json, out var error)?.StandbyCluster;

        Assert.Null(error);
        Assert.NotNull(standby);
        Assert.Equal((host, port), (standby.Host, standby.Port));
        Assert.Null(DynamicConfigJson.Problem(DynamicConfigJson.TryParse(json, out _)!));
        Assert.Empty(DynamicConfigJson.NotActedOn(DynamicConfigJson.TryParse(json, out _)!));
    }

    [Fact]
    public void It_round_trips_through_the_config_key_and_null_or_empty_means_a_normal_cluster()
    {
        var config = new DynamicConfig { StandbyCluster = Remote with { RestoreCommand = "cp /a/%f %p", RecoveryMinApplyDelay = "5min" } };

        var json = DynamicConfigJson.Serialize(config);

        Assert.Equal(config.StandbyCluster, DynamicConfigJson.TryParse(json, out _)!.StandbyCluster);
        Assert.DoesNotContain("standby_cluster", DynamicConfigJson.Serialize(new DynamicConfig()), StringComparison.Ordinal);
        Assert.Null(DynamicConfigJson.TryParse("""{"standby_cluster": null}""", out _)!.StandbyCluster);
        Assert.Null(DynamicConfigJson.TryParse("""{"standby_cluster": {}}""", out _)!.StandbyCluster);
        Assert.Equal(
            [new("restore_command", "cp /a/%f %p"), new("recovery_min_apply_delay", "5min")],
            config.StandbyCluster.RecoveryParameters());
    }

    [Theory]
    [InlineData("""{"standby_cluster": {"port": 5432}}""", "standby_cluster.host: required")]
    [InlineData("""{"standby_cluster": {"host": "a b"}}""", "standby_cluster.host: 'a b' is not a host name")]
    [InlineData("""{"standby_cluster": {"host": "a", "port": 70000}}""", "standby_cluster.port: expected 1-65535, got 70000")]
    [InlineData("""{"standby_cluster": {"host": "a", "primary_slot_name": "Bad-Slot"}}""", "standby_cluster.primary_slot_name: 'Bad-Slot' is not a valid replication slot name")]
    public void A_section_that_cannot_work_is_named(string json, string expected) =>
        Assert.StartsWith(expected, DynamicConfigJson.Problem(DynamicConfigJson.TryParse(json, out _)!), StringComparison.Ordinal);

    [Theory]
    [InlineData("""{"standby_cluster": {"host": "a", "create_replica_methods": ["basebackup"]}}""", "standby_cluster.create_replica_methods: not implemented")]
    [InlineData("""{"standby_cluster": {"host": "a", "hots": 1}}""", "standby_cluster.hots: unknown key")]
    [InlineData("""{"standby_cluster": "a"}""", "standby_cluster: expected an object")]
    [InlineData("""{"standby_cluster": {"host": 5}}""", "host: expected a string")]
    public void A_key_steward_does_not_act_on_or_a_wrong_type_makes_the_document_invalid(string json, string expected)
    {
        Assert.Null(DynamicConfigJson.TryParse(json, out var error));
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }
}
