using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Router.Routing;
using static Steward.Tests.Router.Views;

namespace Steward.Tests.Router;

public sealed class RoutingTableTests
{
    private const long MaxLag = 1 << 20;

    [Theory]
    [InlineData("primary")]
    [InlineData("master")]
    public void Writes_go_to_the_key_holder_that_reports_a_running_primary(string role)
    {
        var table = RoutingTable.From(Healthy().WithMember(Member("node1", role)), MaxLag, Now);

        Assert.Equal(Backend("node1"), table.Writer);
        Assert.Equal(Backend("node1"), table.Leader);
        Assert.Null(table.Reason);
        Assert.Equal([Backend("node2"), Backend("node3")], table.Readers);
    }

    [Theory]
    [InlineData("replica", "running")]   // took the key, pg_ctl promote not done yet: its member key still says replica
    [InlineData("replica", "promoting")]
    [InlineData("primary", "starting")]
    [InlineData("primary", "promoting")]
    [InlineData(null, null)]
    public void A_member_that_took_the_key_but_has_not_finished_promotion_gets_no_writes(string? role, string? state)
    {
        // node1 is gone; node2 took the key and is promoting.
        var view = Healthy("node2") with { Members = [Member("node2", "replica") with { Data = Member("node2", "replica").Data with { Role = role, State = state } }, Member("node3", "replica")] };

        var table = RoutingTable.From(view, MaxLag, Now);

        Assert.Null(table.Writer);
        Assert.Equal(Backend("node2"), table.Leader);
        Assert.Contains("not a running primary", table.Reason, StringComparison.Ordinal);
        Assert.DoesNotContain(Backend("node2"), table.Readers);   // nor reads meant for replicas
    }

    [Fact]
    public void Once_the_promoted_member_reports_a_running_primary_it_gets_writes()
    {
        var promoting = Healthy("node2").WithMember(Member("node2", "replica"));
        var promoted = promoting.WithMember(Member("node2", "primary"));

        Assert.Null(RoutingTable.From(promoting, MaxLag, Now).Writer);
        Assert.Equal(Backend("node2"), RoutingTable.From(promoted, MaxLag, Now).Writer);
    }

    [Fact]
    public void A_demoted_leader_gets_no_writes_whether_the_key_moved_or_it_still_holds_it()
    {
        // The key moved to node2 (running primary); node1, demoted, now streams from it.
        var moved = Healthy("node2").WithMember(Member("node1", "replica"));
        var table = RoutingTable.From(moved, MaxLag, Now);
        Assert.Equal(Backend("node2"), table.Writer);
        Assert.Equal(Backend("node2"), table.Leader);
        Assert.Contains(Backend("node1"), table.Readers);

        // node1 still holds the key but reports that it is no longer a running primary (demoting, or restarted read-only).
        foreach (var (role, state) in new[] { ("replica", "running"), ("primary", "stopping"), ("primary", "stopped"), ("primary", "restarting") })
        {
            var holding = Healthy().WithMember(Member("node1", role, state));
            var t = RoutingTable.From(holding, MaxLag, Now);
            Assert.Null(t.Writer);
            Assert.Equal(Backend("node1"), t.Leader);
        }
    }

    [Fact]
    public void No_leader_key_means_no_writer()
    {
        var table = RoutingTable.From(Healthy() with { Leader = null }, MaxLag, Now);

        Assert.Null(table.Writer);
        Assert.Null(table.Leader);
        Assert.Contains("no leader", table.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pending_switchover_holds_writes_from_its_scheduled_time_on_the_instant_passed_in()
    {
        var now = Healthy() with { Failover = new FailoverRequest { Leader = "node1", Candidate = "node2" } };
        var scheduled = Healthy() with { Failover = new FailoverRequest { Leader = "node1", Candidate = "node2", ScheduledAt = Now.AddMinutes(5) } };

        var immediate = RoutingTable.From(now, MaxLag, Now);
        Assert.Null(immediate.Writer);
        Assert.Equal(Backend("node1"), immediate.Leader);   // the key has not moved: no session is cut yet
        Assert.Contains("switchover from 'node1' pending", immediate.Reason, StringComparison.Ordinal);

        // Pure in time: the same view before and after scheduled_at.
        Assert.Equal(Backend("node1"), RoutingTable.From(scheduled, MaxLag, Now).Writer);
        Assert.Equal(Backend("node1"), RoutingTable.From(scheduled, MaxLag, Now.AddMinutes(5).AddTicks(-1)).Writer);
        Assert.Null(RoutingTable.From(scheduled, MaxLag, Now.AddMinutes(5)).Writer);
    }

    [Fact]
    public void Readers_are_running_streaming_replicas_within_the_lag_bound()
    {
        var view = Healthy()
            .WithMember(Member("node1", "primary", lsn: 10_000_000))
            .WithMember(Member("node2", "replica", lsn: 10_000_000 - MaxLag))
            .WithMember(Member("node3", "replica", lsn: 10_000_000 - MaxLag - 1));
        Assert.Equal([Backend("node2")], RoutingTable.From(view, MaxLag, Now).Readers);

        var notStreaming = Healthy().WithMember(Member("node2", "replica", replication: "stopped"));
        Assert.Equal([Backend("node3")], RoutingTable.From(notStreaming, MaxLag, Now).Readers);
    }

    [Fact]
    public void The_read_port_may_use_the_writer_only_as_a_fallback()
    {
        var table = RoutingTable.From(Healthy(), MaxLag, Now);
        Assert.True(table.ReadableBy(Backend("node2"), fallbackToLeader: true));
        Assert.False(table.ReadableBy(Backend("node1"), fallbackToLeader: true));

        var alone = table with { Readers = [] };
        Assert.True(alone.ReadableBy(Backend("node1"), fallbackToLeader: true));
        Assert.False(alone.ReadableBy(Backend("node1"), fallbackToLeader: false));
        Assert.False((alone with { Writer = null }).ReadableBy(Backend("node1"), fallbackToLeader: true));
    }

    [Fact]
    public void Read_port_includes_prefers_or_excludes_the_synchronous_standbys_as_configured()
    {
        var view = Healthy() with { Sync = SyncState.For("node1", ["node3"]) };

        Assert.Equal([Backend("node2"), Backend("node3")], RoutingTable.From(view, MaxLag, Now).Readers);
        Assert.Equal([Backend("node2"), Backend("node3")], RoutingTable.From(view, MaxLag, Now, SyncStandbyReads.Include).Readers);
        Assert.Equal([Backend("node3")], RoutingTable.From(view, MaxLag, Now, SyncStandbyReads.Prefer).Readers);
        Assert.Equal([Backend("node2")], RoutingTable.From(view, MaxLag, Now, SyncStandbyReads.Exclude).Readers);
    }

    [Fact]
    public void Prefer_falls_back_to_the_other_replicas_when_no_synchronous_standby_qualifies()
    {
        // node3 is on record but not streaming; a key left by a former leader does not count either.
        var notStreaming = Healthy() with { Sync = SyncState.For("node1", ["node3"]) };
        notStreaming = notStreaming.WithMember(Member("node3", "replica") with { Data = Member("node3", "replica").Data with { ReplicationState = "in archive recovery" } });
        Assert.Equal([Backend("node2")], RoutingTable.From(notStreaming, MaxLag, Now, SyncStandbyReads.Prefer).Readers);

        var formerLeaders = Healthy() with { Sync = SyncState.For("node9", ["node3"]) };
        Assert.Equal([Backend("node2"), Backend("node3")], RoutingTable.From(formerLeaders, MaxLag, Now, SyncStandbyReads.Prefer).Readers);
        Assert.Equal([Backend("node2"), Backend("node3")], RoutingTable.From(formerLeaders, MaxLag, Now, SyncStandbyReads.Exclude).Readers);
    }
}
