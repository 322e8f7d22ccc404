using Microsoft.Extensions.Time.Testing;
using Steward.Core.Cluster;
using Steward.Core.Ha;
using Steward.Core.Postgres;
using static Steward.Tests.Ha.Scenario;

namespace Steward.Tests.Ha;

/// <summary>
/// The leader's half of the PgBouncer handshake (docs/pgbouncer.md): before it demotes for a switchover it waits for
/// every router that drives PgBouncers to answer the request in <c>pause/&lt;router&gt;</c>, at most the largest
/// pause_timeout + 2 s from the moment it saw the request due; a cycle that waits keeps the leader running and asks to
/// be woken when the wait ends.
/// </summary>
public sealed class SwitchoverPauseTests
{
    private static readonly HaStep[] Demotion =
        [new Checkpoint(), new StopPostgres(StopMode.Fast), new ReleaseLeader(), new StartPostgres(StartRole.Replica, null, null)];

    /// <summary>node1 leads, a switchover to node2 is due, and node2 answered as a healthy replica.</summary>
    private static Scenario Due() =>
        PrimaryHoldingTheLock().Failover("node1", "node2").Peers(Peer("node2", Pg.DefaultLsn), Peer("node3", Pg.DefaultLsn));

    private static void AssertDemotes(HaPlan plan, string message)
    {
        Assert.Equal(message, plan.Message);
        Assert.Equal(Demotion, plan.Steps);
        Assert.Null(plan.RecheckAfter);
    }

    [Fact]
    public void Without_routers_that_drive_pgbouncers_nothing_waits()
    {
        AssertDemotes(Due().SwitchoverDueFor(TimeSpan.Zero).Decide(), "switchover: demoting self so that node2 can take over");
        AssertDemotes(Due().Router("r1", pgBouncers: 0).SwitchoverDueFor(TimeSpan.Zero).Decide(), "switchover: demoting self so that node2 can take over");
    }

    [Fact]
    public void A_router_that_has_not_answered_keeps_the_leader_running_and_the_cycle_comes_back_when_the_wait_ends()
    {
        var plan = Due().Router("r1", pauseTimeout: 5).SwitchoverDueFor(TimeSpan.FromSeconds(1.5)).Decide();

        Assert.Equal("switchover: waiting up to 7 s for router(s) r1 to pause their PgBouncers", plan.Message);
        Assert.Equal([new LeaderHousekeeping()], plan.Steps);
        Assert.Equal(TimeSpan.FromSeconds(5.5), plan.RecheckAfter);
    }

    [Fact]
    public void The_router_answering_this_request_lets_the_leader_demote()
    {
        AssertDemotes(Due().Router("r1").RouterAnswered("r1").SwitchoverDueFor(TimeSpan.FromSeconds(0.2)).Decide(),
            "switchover: demoting self so that node2 can take over (PgBouncers paused by 1 router(s))");
    }

    [Fact]
    public void An_answer_to_an_earlier_request_does_not_count()
    {
        var plan = Due().Router("r1").RouterAnswered("r1", revision: 17).SwitchoverDueFor(TimeSpan.FromSeconds(1)).Decide();

        Assert.StartsWith("switchover: waiting up to 7 s for router(s) r1", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_registered_router_is_waited_for_with_the_largest_pause_timeout()
    {
        var plan = Due().Router("r1", pauseTimeout: 3).Router("r2", pauseTimeout: 10).Router("r3").RouterAnswered("r2")
            .SwitchoverDueFor(TimeSpan.FromSeconds(11)).Decide();

        Assert.Equal("switchover: waiting up to 12 s for router(s) r1, r3 to pause their PgBouncers", plan.Message);
        Assert.Equal(TimeSpan.FromSeconds(1), plan.RecheckAfter);
    }

    [Fact]
    public void Past_the_bound_the_leader_demotes_anyway_and_says_which_router_did_not_answer()
    {
        AssertDemotes(Due().Router("r1").SwitchoverDueFor(TimeSpan.FromSeconds(7)).Decide(),
            "switchover: demoting self so that node2 can take over (router(s) r1 did not confirm the PgBouncer pause within 7 s)");
    }

    [Fact]
    public void Pgbouncers_that_timed_out_or_were_unreachable_are_named_in_the_decision()
    {
        var plan = Due().Router("r1", pgBouncers: 3).RouterAnswered("r1", 41,
                new PgBouncerOutcome { Address = "10.0.0.1:6432", State = "paused" },
                new PgBouncerOutcome { Address = "10.0.0.2:6432", State = "timeout", Detail = "PAUSE did not complete within 5 s" },
                new PgBouncerOutcome { Address = "10.0.0.3:6432", State = "unreachable", Detail = "connection refused" })
            .SwitchoverDueFor(TimeSpan.FromSeconds(5.1)).Decide();

        AssertDemotes(plan, "switchover: demoting self so that node2 can take over (router r1: PAUSE of 10.0.0.2:6432 timed out, " +
                            "transactions still running there are cut; router r1: PgBouncer 10.0.0.3:6432 unreachable (connection refused), not paused)");
    }

    [Fact]
    public void In_maintenance_mode_an_explicit_switchover_waits_for_the_routers_too()
    {
        var plan = Due().Paused().Router("r1").SwitchoverDueFor(TimeSpan.Zero).Decide();

        Assert.StartsWith("switchover: waiting up to 7 s for router(s) r1", plan.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_wait_is_counted_on_the_monotonic_clock_from_the_first_cycle_that_saw_the_request_due()
    {
        var time = new FakeTimeProvider(Now);
        var timer = new SwitchoverTimer(time);
        var scenario = Due().Router("r1", pauseTimeout: 5);
        var request = scenario.Build().Cluster!;

        Assert.Null(timer.Observe(request with { Failover = null }, Now));
        Assert.Equal(TimeSpan.Zero, timer.Observe(request, Now));
        time.Advance(TimeSpan.FromSeconds(6.9));
        var waited = timer.Observe(request, Now);
        Assert.Equal(TimeSpan.FromSeconds(6.9), waited);
        Assert.StartsWith("switchover: waiting", scenario.SwitchoverDueFor(waited).Decide().Message, StringComparison.Ordinal);

        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(TimeSpan.FromSeconds(7), timer.Observe(null, Now)); // etcd unreachable this cycle: the start is kept
        waited = timer.Observe(request, Now);
        Assert.Equal(Demotion, scenario.SwitchoverDueFor(waited).Decide().Steps);

        // The wall clock plays no part: a jump of the system time neither ends nor extends the wait.
        var again = request with { Failover = request.Failover! with { ModRevision = 99 } };
        Assert.Equal(TimeSpan.Zero, timer.Observe(again, Now.AddHours(1)));
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(TimeSpan.FromSeconds(2), timer.Observe(again, Now.AddHours(-1)));
    }

    [Fact]
    public void A_switchover_scheduled_later_starts_no_wait_until_it_is_due()
    {
        var time = new FakeTimeProvider(Now);
        var timer = new SwitchoverTimer(time);
        var view = PrimaryHoldingTheLock().Failover("node1", "node2", Now.AddMinutes(1)).Build().Cluster;

        Assert.Null(timer.Observe(view, Now));
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(TimeSpan.Zero, timer.Observe(view, Now.AddMinutes(1)));
    }
}
