using System.Diagnostics;
using Steward.Core.Cluster;
using Steward.Core.Ha;
using Steward.Core.Postgres;
using Steward.IntegrationTests.Infrastructure;

namespace Steward.IntegrationTests.Postgres;

/// <summary>
/// What a replica reports as its timeline, and what an inspection and an immediate stop do with a postmaster that does
/// not answer (issue 9, defects 0 and 1), against real PostgreSQL 15.
/// </summary>
public sealed class ReplicaTimelineTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>
    /// Story (issue 9, defect 0): after a failover a replica that was not streaming took its timeline from
    /// pg_control_checkpoint(), which keeps the old timeline until the next restartpoint; it concluded it had diverged,
    /// stopped its healthy PostgreSQL and re-cloned the whole database.
    /// </summary>
    [Fact]
    public async Task Replica_that_stopped_streaming_after_following_a_promotion_reports_the_new_timeline()
    {
        await using var cluster = new PgTestCluster("tli");
        var oldPrimary = cluster.Node("node1");
        var newPrimary = cluster.Node("node2");
        var replica = cluster.Node("node3");
        await oldPrimary.BootstrapAsync();
        await newPrimary.CloneAndFollowAsync(oldPrimary);
        await replica.CloneAndFollowAsync(oldPrimary);
        await oldPrimary.ExecuteAsync("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')");
        await oldPrimary.Control.StopAsync(StopMode.Fast, None);

        // As the agent promotes: no checkpoint, so nothing forces a restartpoint on the replica.
        await newPrimary.Control.PromoteAsync(checkpoint: false, None);
        await newPrimary.Control.SyncReplicationSlotsAsync([replica.Slot], None);
        await replica.Control.FollowAsync(new Upstream(newPrimary.Address, replica.Slot), None);
        await newPrimary.ExecuteAsync("INSERT INTO t VALUES ('after')");
        await Eventually.TrueAsync(async () => (await replica.ColumnAsync("SELECT v FROM t ORDER BY v")).SequenceEqual(["after", "before"]),
            "node3 replays node2's timeline 2", replica.ServerLogTail);

        await replica.Control.FollowAsync(null, None);
        await Eventually.TrueAsync(async () => !(await replica.InspectAsync()).Streaming, "node3 stops streaming");

        var state = await replica.InspectAsync();
        Assert.Equal(["1"], await replica.ColumnAsync("SELECT timeline_id FROM pg_control_checkpoint()")); // the stale source
        Assert.Null(state.ReceiveTimeline);
        Assert.Equal(2, state.ReplayTimeline);
        Assert.Equal(2, state.Timeline);
        Assert.Null(HaDecision.DivergedFrom(state.ReplayTimeline, state.ReplayLsn, 2, await HistoryOfAsync(newPrimary)));
    }

    /// <summary>The proof of divergence the decision relies on, with real numbers: a replica that replayed its timeline past the switch point.</summary>
    [Fact]
    public async Task Replica_that_replayed_past_the_switch_point_reports_its_old_timeline_and_is_proven_diverged()
    {
        await using var cluster = new PgTestCluster("diverge");
        var oldPrimary = cluster.Node("node1");
        var newPrimary = cluster.Node("node2");
        var replica = cluster.Node("node3");
        await oldPrimary.BootstrapAsync();
        await oldPrimary.ExecuteAsync("CREATE TABLE t (v text); INSERT INTO t VALUES ('both')");
        await newPrimary.CloneAndFollowAsync(oldPrimary);
        await replica.CloneAndFollowAsync(oldPrimary);

        // node2 is cut off and promoted; node3 keeps replaying node1's timeline 1 past the point where node2 left it.
        await newPrimary.Control.FollowAsync(null, None);
        await Eventually.TrueAsync(async () => !(await newPrimary.InspectAsync()).Streaming, "node2 stops streaming");
        await oldPrimary.ExecuteAsync("INSERT INTO t VALUES ('only node1 and node3')");
        await Eventually.TrueAsync(async () => (await replica.ColumnAsync("SELECT count(*) FROM t")).SequenceEqual(["2"]), "node3 has the second row");
        await newPrimary.Control.PromoteAsync(checkpoint: false, None);
        var timelineSwitch = await newPrimary.Control.ReadLastTimelineSwitchAsync(2, None);
        HistoryEntry[] history = [new(1, timelineSwitch!.SwitchLsn, timelineSwitch.Reason, DateTimeOffset.UnixEpoch, "node2")];

        await replica.Control.FollowAsync(null, None);
        await Eventually.TrueAsync(async () => !(await replica.InspectAsync()).Streaming, "node3 stops streaming");
        var state = await replica.InspectAsync();

        Assert.Equal(1, state.ReplayTimeline);
        Assert.True(state.ReplayLsn > timelineSwitch.SwitchLsn, $"node3 replayed {state.ReplayLsn} past {timelineSwitch.SwitchLsn}");
        Assert.NotNull(HaDecision.DivergedFrom(state.ReplayTimeline, state.ReplayLsn, 2, history));
    }

    /// <summary>
    /// Story (issue 9, defect 1): a primary whose postmaster hangs kept the lock, because the agent's pooled connection kept
    /// answering through its own backend, and an immediate stop waited on a postmaster that never acted on SIGQUIT.
    /// </summary>
    [Fact]
    public async Task Stopped_postmaster_is_reported_as_not_answering_and_an_immediate_stop_kills_it()
    {
        await using var cluster = new PgTestCluster("hang");
        var node = cluster.Node("node1");
        await node.BootstrapAsync();
        await node.ExecuteAsync("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')");
        var pid = (await node.InspectAsync()).PostmasterPid!.Value;
        Assert.True(Signals.Send(pid, Signals.SIGSTOP));
        try
        {
            var watch = Stopwatch.StartNew();
            var hung = await node.InspectAsync();
            Assert.True(hung.Running, "the postmaster is alive");
            Assert.False(hung.Accepting, "a stopped postmaster accepts no new connection, so it does not answer");
            Assert.Null(hung.InRecovery);
            Assert.InRange(watch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(10));

            watch.Restart();
            await node.Control.StopAsync(StopMode.Immediate, None);
            Assert.InRange(watch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(30));
            Assert.False((await node.InspectAsync()).Running);
        }
        finally
        {
            Signals.Send(pid, Signals.SIGCONT);
        }

        await node.Control.StartAsync(StartRole.Primary, null, new DynamicConfig(), None);
        Assert.Equal(["kept"], await node.ColumnAsync("SELECT v FROM t"));
    }

    private static async Task<IReadOnlyList<HistoryEntry>> HistoryOfAsync(PgTestNode primary)
    {
        var timelineSwitch = await primary.Control.ReadLastTimelineSwitchAsync(2, None);
        return [new HistoryEntry(1, timelineSwitch!.SwitchLsn, timelineSwitch.Reason, DateTimeOffset.UnixEpoch, primary.Name)];
    }
}
