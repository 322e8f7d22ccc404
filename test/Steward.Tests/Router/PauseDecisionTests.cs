using Steward.Core.Cluster;
using Steward.Router.PgBouncer;
using Steward.Router.Routing;
using static Steward.Tests.Router.Views;

namespace Steward.Tests.Router;

/// <summary>
/// The router's half of the PgBouncer handshake: pause when a planned switchover is due, resume once the write port has
/// a writer again (RECONNECT too when it is a new member), and never stay paused past the bound.
/// </summary>
public sealed class PauseDecisionTests
{
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(30);

    private static ClusterView Request(string? leader, string? candidate, DateTimeOffset? at = null, ClusterView? view = null) =>
        (view ?? Healthy()) with { Failover = new FailoverRequest { Leader = leader, Candidate = candidate, ScheduledAt = at, ModRevision = 120 } };

    private static PauseStep Next(ClusterView view, PausedFor? paused = null, long handled = 0, TimeSpan? pausedFor = null) =>
        PauseDecision.Next(view, RoutingTable.From(view, 1 << 20, Now), paused, handled, Now, pausedFor ?? TimeSpan.Zero, Max);

    [Theory]
    [InlineData("node1", "node2")]
    [InlineData("node1", null)]
    [InlineData(null, "node2")]
    public void A_due_switchover_from_the_leader_is_paused_for(string? leader, string? candidate)
    {
        Assert.Equal(new PauseFor(120, "node1"), Next(Request(leader, candidate)));
        Assert.Equal(new PauseFor(120, "node1"), Next(Request(leader, candidate, Now.AddSeconds(-1))));
    }

    [Fact]
    public void Nothing_is_paused_for_a_later_switchover_one_already_handled_or_one_that_cannot_happen()
    {
        Assert.Equal(PauseStep.None, Next(Healthy()));
        Assert.Equal(PauseStep.None, Next(Request("node1", "node2", Now.AddMinutes(5))));
        Assert.Equal(PauseStep.None, Next(Request("node1", "node2"), handled: 120));
        Assert.Equal(PauseStep.None, Next(Request("node3", "node2"))); // names another leader: the leader deletes it
        Assert.Equal(PauseStep.None, Next(Request(null, "node1")));   // to the leader itself
    }

    [Fact]
    public void An_unplanned_failover_is_not_paused_for()
    {
        var leaderless = Healthy() with { Leader = null };
        Assert.Equal(PauseStep.None, Next(Request(null, "node2", view: leaderless)));
    }

    [Fact]
    public void Paused_the_router_waits_while_no_member_accepts_writes()
    {
        var paused = new PausedFor(120, "node1", 0);
        Assert.Equal(PauseStep.None, Next(Request("node1", "node2"), paused, 120, TimeSpan.FromSeconds(3)));
        var promoting = Healthy("node2").WithMember(Member("node2", "replica")); // holds the key, not a running primary yet
        Assert.Equal(PauseStep.None, Next(promoting, paused, 120, TimeSpan.FromSeconds(4)));
    }

    [Fact]
    public void A_new_writer_ends_the_pause_with_reconnect_and_resume()
    {
        var step = Assert.IsType<ResumeAll>(Next(Healthy("node2"), new PausedFor(120, "node1", 0), 120));
        Assert.True(step.Reconnect);
        Assert.Contains("the new leader node2 accepts writes", step.Why, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cancelled_switchover_ends_the_pause_without_reconnect()
    {
        var step = Assert.IsType<ResumeAll>(Next(Healthy("node1"), new PausedFor(120, "node1", 0), 120));
        Assert.False(step.Reconnect);
    }

    [Fact]
    public void Past_the_bound_the_pgbouncers_are_resumed_even_without_a_writer()
    {
        var step = Assert.IsType<ResumeAll>(Next(Healthy() with { Leader = null }, new PausedFor(120, "node1", 0), 120, Max));
        Assert.Contains("no leader accepts writes 30 s after the pause began", step.Why, StringComparison.Ordinal);
    }

    [Fact]
    public void Commands_go_to_the_whole_pgbouncer_or_to_each_listed_database()
    {
        Assert.Equal(["PAUSE"], PgBouncerCoordinator.Commands("PAUSE", new() { Host = "h" }));
        Assert.Equal(["RESUME app", "RESUME reports"], PgBouncerCoordinator.Commands("RESUME", new() { Host = "h", Databases = ["app", "reports"] }));
    }
}
