using System.Diagnostics;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// etcd unreachable for 2 × ttl (every etcd process frozen). Without failsafe_mode the leader stops taking writes before
/// its lease could expire; with failsafe_mode and every member answering POST /failsafe it keeps taking writes; with one
/// member down it stops as without failsafe. Once etcd is back there is one leader and everyone streams.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class FailsafeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bootstrap = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Without_failsafe_the_leader_stops_taking_writes_when_etcd_is_gone()
    {
        var (acceptedLate, cluster) = await WriteThroughOutageAsync(new ClusterOptions(), stopOneReplica: false);
        await using var _ = cluster;
        Assert.False(acceptedLate, "the leader took writes after its lease deadline with failsafe_mode off");
    }

    [Fact]
    public async Task With_failsafe_and_every_member_up_the_leader_keeps_taking_writes()
    {
        var (acceptedLate, cluster) = await WriteThroughOutageAsync(new ClusterOptions { FailsafeMode = true }, stopOneReplica: false);
        await using var _ = cluster;
        Assert.True(acceptedLate, "the leader stopped taking writes although every member confirmed it");
        Assert.Contains("continuing to run as the leader", cluster.Nodes.Single(n => n.Log().Contains("failsafe: DCS is not accessible, and all", StringComparison.Ordinal)).Log(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_failsafe_and_a_member_down_the_leader_stops_taking_writes()
    {
        var (acceptedLate, cluster) = await WriteThroughOutageAsync(new ClusterOptions { FailsafeMode = true }, stopOneReplica: true);
        await using var _ = cluster;
        Assert.False(acceptedLate, "the leader took writes after its lease deadline although a member could not confirm it");
    }

    /// <summary>
    /// Freezes etcd for 2 × ttl while writing to the leader every 50 ms; true when a write was acknowledged after the
    /// lease could have expired (ttl after the freeze). Then checks the cluster comes back whole.
    /// </summary>
    private async Task<(bool AcceptedLate, TestCluster Cluster)> WriteThroughOutageAsync(ClusterOptions options, bool stopOneReplica)
    {
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, 3, options);
        await leader.ExecuteAsync("CREATE TABLE fs(id int)");
        if (stopOneReplica)
        {
            // A member that is down while etcd still answers: its key expires, but the leader saw it a moment before.
            var victim = cluster.Nodes.First(n => n != leader);
            await victim.KillAgentAsync();
            await victim.KillPostmasterAsync();
            // Freeze etcd while the victim's member key is still in the leader's last view.
        }

        var frozen = Stopwatch.StartNew();
        cluster.Etcd.Pause();
        TimeSpan? lastAck = null;
        var acks = 0;
        try
        {
            while (frozen.Elapsed < TimeSpan.FromSeconds(2 * options.Ttl))
            {
                try
                {
                    await leader.ExecuteAsync($"INSERT INTO fs VALUES ({acks})");
                    acks++;
                    lastAck = frozen.Elapsed;
                }
                catch (Exception e) when (e is Npgsql.NpgsqlException or InvalidOperationException or TimeoutException)
                {
                }

                await Task.Delay(50);
            }
        }
        finally
        {
            cluster.Etcd.Resume();
        }

        var late = lastAck is { } at && at > TimeSpan.FromSeconds(options.Ttl);
        Measurements.Report(output, $"failsafe_mode {(options.FailsafeMode ? "on" : "off")}{(stopOneReplica ? ", one member down" : "")}: etcd frozen {2 * options.Ttl} s; " +
                                    $"{acks} writes acknowledged, the last {lastAck?.TotalSeconds:0.00} s after the freeze (ttl {options.Ttl} s)");

        // etcd is back: one leader, every running member streaming from it.
        var newLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(90));
        foreach (var n in cluster.Nodes.Where(n => n != newLeader && n.IsRunning))
        {
            await cluster.WaitForStreamingAsync(n, TimeSpan.FromSeconds(120));
        }

        return (late, cluster);
    }
}
