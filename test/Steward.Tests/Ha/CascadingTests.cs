using Steward.Core.Cluster;
using Steward.Core.Ha;
using Steward.Core.Postgres;
using static Steward.Tests.Ha.Scenario;

namespace Steward.Tests.Ha;

/// <summary>
/// Patroni's <c>replicatefrom</c> tag (cascading replication): a replica streams from the named member while that member is
/// a running, streaming replica, and from the leader otherwise; the election and the rewind rules do not change.
/// </summary>
public sealed class CascadingTests
{
    /// <summary>node2 (me) tagged replicatefrom node3; node3 a streaming replica of leader node1.</summary>
    private static Scenario Cascade(string? node3ReplicationState = "streaming", string node3State = "running") =>
        ReplicaStreamingFrom("node1").Tag("replicatefrom", "node3").Replica("node3", node3State)
            .MemberData("node3", d => d with { ReplicationState = node3ReplicationState });

    [Fact]
    public void A_replica_tagged_replicatefrom_streams_from_that_replica()
    {
        var plan = Cascade().Upstream("node1").Decide();

        Assert.Equal([new Follow("node3", UpstreamOf("node3", "node2"))], plan.Steps);
        Assert.Equal("following replica 'node3' (replicatefrom) of leader 'node1'", plan.Message);
    }

    [Fact]
    public void Once_it_does_nothing_more_is_done()
    {
        var plan = Cascade().Upstream("node3").Decide();

        Assert.Empty(plan.Steps);
    }

    [Theory]
    [InlineData(null, "running")]
    [InlineData("streaming", "stopped")]
    [InlineData("in archive recovery", "running")]
    public void When_the_named_replica_does_not_stream_itself_the_leader_is_followed(string? replicationState, string state)
    {
        var plan = Cascade(replicationState, state).Upstream("node3").Decide();

        Assert.Equal([new Follow("node1", UpstreamOf("node1", "node2"))], plan.Steps);
        Assert.Equal("following new leader 'node1'", plan.Message);
    }

    [Fact]
    public void Two_replicas_naming_each_other_follow_the_leader_instead_of_a_loop()
    {
        var plan = Cascade().MemberData("node3", d => d with { Tags = new Dictionary<string, object?> { ["replicatefrom"] = "node2" } })
            .Upstream("node3").Decide();

        Assert.Equal([new Follow("node1", UpstreamOf("node1", "node2"))], plan.Steps);
    }

    [Theory]
    [InlineData("node1")]   // the leader itself: a normal replica
    [InlineData("node2")]   // myself
    [InlineData("node9")]   // nobody
    [InlineData("")]
    public void A_tag_naming_the_leader_myself_or_nobody_follows_the_leader(string from)
    {
        var plan = ReplicaStreamingFrom("node1").Tag("replicatefrom", from).Replica("node3").Upstream("node3").Decide();

        Assert.Equal([new Follow("node1", UpstreamOf("node1", "node2"))], plan.Steps);
    }

    [Fact]
    public void A_stopped_replica_starts_streaming_from_the_named_replica()
    {
        var plan = Cascade().WithPg(Pg.StoppedReplica()).Decide();

        Assert.Equal([new StartPostgres(StartRole.Replica, "node3", UpstreamOf("node3", "node2"))], plan.Steps);
    }

    [Fact]
    public void Without_a_leader_a_cascading_replica_still_takes_part_in_the_election()
    {
        var plan = NoLeader().Tag("replicatefrom", "node3").Replica("node3", state: "stopped").Peers().Decide();

        Assert.Equal([new AcquireLeader(), new Promote("no leader")], plan.Steps);
    }

    [Fact]
    public void The_cascade_source_is_read_from_json_tags_as_etcd_returns_them()
    {
        var json = System.Text.Json.JsonDocument.Parse("\"node3\"").RootElement;
        var view = Cascade().Build().Cluster!;

        Assert.Equal("node3", HaDecision.CascadeSource(view, "node2", new Dictionary<string, object?> { ["replicatefrom"] = json }));
        Assert.Null(HaDecision.CascadeSource(view, "node2", new Dictionary<string, object?> { ["replicatefrom"] = 3L }));
        Assert.Null(HaDecision.CascadeSource(view, "node2", null));
    }
}
