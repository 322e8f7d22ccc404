using System.Diagnostics;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>Faults short of a host crash: PostgreSQL dies under a live agent, etcd stalls, etcd goes away.</summary>
[Collection(ClusterCollection.Name)]
public sealed class FaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bootstrap = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Postmaster_killed_under_a_live_agent_is_restarted_and_the_leader_keeps_the_lock()
    {
        await using var cluster = await TestCluster.StartAsync(2, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var replica = cluster.Nodes.Single(n => n != leader);
        await cluster.WaitForStreamingAsync(replica, Bootstrap);
        var before = leader.PostmasterPid();

        var clock = Stopwatch.StartNew();
        await leader.KillPostmasterAsync();
        await Poll.UntilAsync(async () => leader.PostmasterPid() is { } pid && pid != before && await leader.RestStatusAsync("/leader") == 200,
            TimeSpan.FromSeconds(60), "the leader's PostgreSQL restarted by its agent", cluster.DescribeAsync);
        Measurements.Report(output, $"postmaster restart: leader writable again {clock.Elapsed.TotalSeconds:0.0} s after kill -9 of its postmaster");

        Assert.Equal(leader.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(10))).Name);
        Assert.Equal(1, (await leader.PatroniAsync())!.Value.GetProperty("timeline").GetInt64());
        await leader.ExecuteAsync("CREATE TABLE after_restart(id int)");
        await cluster.WaitForStreamingAsync(replica, TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task An_etcd_stall_of_half_the_ttl_causes_no_failover_and_no_demotion()
    {
        var options = new ClusterOptions();
        await using var cluster = await TestCluster.StartAsync(2, output, options);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var replica = cluster.Nodes.Single(n => n != leader);
        await cluster.WaitForStreamingAsync(replica, Bootstrap);
        var postmaster = leader.PostmasterPid();

        cluster.Etcd.Pause();
        await Task.Delay(TimeSpan.FromSeconds(options.Ttl / 2.0)); // the fault itself lasts ttl/2; this is not a wait for a condition
        cluster.Etcd.Resume();

        // Give a failover every chance to happen (more than a ttl), then check that none did.
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(8))
        {
            Assert.NotEqual(200, await replica.RestStatusAsync("/leader"));
            await Task.Delay(200);
        }

        Assert.Equal(leader.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(10))).Name);
        Assert.Equal(postmaster, leader.PostmasterPid());
        Assert.Equal(1, (await leader.PatroniAsync())!.Value.GetProperty("timeline").GetInt64());
        Assert.DoesNotContain("demoting", leader.Log(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_leader_that_cannot_reach_etcd_stops_taking_writes_before_its_lease_can_expire()
    {
        var options = new ClusterOptions();
        await using var cluster = await TestCluster.StartAsync(2, output, options);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var replica = cluster.Nodes.Single(n => n != leader);
        await cluster.WaitForStreamingAsync(replica, Bootstrap);
        await leader.ExecuteAsync("CREATE TABLE w(id int)");

        // etcd frozen: nobody can renew, and the leader key expires (from etcd's point of view) ttl after the last renewal.
        cluster.Etcd.Pause();
        var frozen = Stopwatch.StartNew();
        TimeSpan? lastWrite = null;
        try
        {
            while (frozen.Elapsed < TimeSpan.FromSeconds(options.Ttl + 4))
            {
                try
                {
                    await leader.ExecuteAsync("INSERT INTO w VALUES (1)");
                    lastWrite = frozen.Elapsed;
                }
                catch (Exception e) when (e is Npgsql.NpgsqlException or InvalidOperationException)
                {
                }

                await Task.Delay(50);
            }
        }
        finally
        {
            cluster.Etcd.Resume();
        }

        Measurements.Report(output, $"lease guard: last write accepted {lastWrite?.TotalSeconds:0.00} s after etcd froze (ttl {options.Ttl} s)");
        Assert.NotNull(lastWrite);
        Assert.True(lastWrite < TimeSpan.FromSeconds(options.Ttl), $"the old leader took a write {lastWrite?.TotalSeconds:0.00} s after etcd froze");
        Assert.Contains("leader lease could not be renewed before its deadline", leader.Log(), StringComparison.Ordinal);

        // Once etcd is back the cluster has one leader again and both members stream or lead.
        var newLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        await cluster.WaitForStreamingAsync(cluster.Nodes.Single(n => n != newLeader), TimeSpan.FromSeconds(120));
    }
}
