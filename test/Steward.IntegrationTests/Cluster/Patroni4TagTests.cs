using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// Issue 16's acceptance for Patroni 4's member tags, on real etcd and PostgreSQL: <c>failover_priority</c> decides who
/// takes over among members as far ahead (0: never), and a <c>nostream</c> member replays from the WAL archive only —
/// no walsender, no slot, never a synchronous standby.
/// </summary>
[Collection(ClusterCollectionB.Name)]
public sealed class Patroni4TagTests(ITestOutputHelper output)
{
    [Fact]
    public async Task With_failover_priorities_1_2_0_the_priority_2_member_takes_over_and_the_priority_0_member_never_does()
    {
        var options = new ClusterOptions
        {
            StartAll = false,
            NodeTags = new Dictionary<string, IReadOnlyDictionary<string, string>>
            {
                ["node1"] = new Dictionary<string, string> { ["failover_priority"] = "1" },
                ["node2"] = new Dictionary<string, string> { ["failover_priority"] = "2" },
                ["node3"] = new Dictionary<string, string> { ["failover_priority"] = "0" },
            },
        };
        await using var cluster = await TestCluster.StartAsync(3, output, options);
        var (node1, node2, node3) = (cluster["node1"], cluster["node2"], cluster["node3"]);
        node1.Start();
        Assert.Equal(node1, await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(120)));
        node2.Start();
        node3.Start();
        await cluster.WaitForStreamingAsync(node2, TimeSpan.FromSeconds(120));
        await cluster.WaitForStreamingAsync(node3, TimeSpan.FromSeconds(120));

        // No writes meanwhile: both replicas are as far ahead, so the priority decides.
        await node1.CrashAsync();
        var first = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: node1);
        Assert.Equal(node2, first);

        node1.Start();
        await cluster.WaitForStreamingAsync(node1, TimeSpan.FromSeconds(120));
        await cluster.WaitForStreamingAsync(node3, TimeSpan.FromSeconds(120));
        await node2.CrashAsync();
        var second = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: node2);
        Assert.Equal(node1, second);

        // With both others down, the priority-0 member stays a replica: the cluster has no leader rather than it.
        await node1.CrashAsync();
        await Poll.UntilAsync(async () => await cluster.LeaderKeyAsync() is null, TimeSpan.FromSeconds(30), "the leader key expires");
        var decision = "";
        await Poll.UntilAsync(async () =>
        {
            decision = (await node3.PatroniAsync())?.GetProperty("ha_decision").GetString() ?? "";
            return decision.Contains("failover_priority 0", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(30), "node3 says why it does not take over");
        Assert.Null(await cluster.LeaderKeyAsync());
        Assert.Equal("replica", (await node3.PatroniAsync())?.GetProperty("role").GetString());
        Measurements.Report(output, $"failover_priority 1/2/0: node1 crashed → node2 (priority 2) led; node2 crashed → node1 (priority 1) led; "
                                    + $"node1 crashed too → no leader, node3 (priority 0): \"{decision}\"");
    }

    [Fact]
    public async Task A_nostream_member_replays_from_the_archive_without_walsender_or_slot_and_is_never_a_sync_standby()
    {
        using var archive = new TempDir("archive");
        Chown.Postgres(archive.Path);
        var options = new ClusterOptions
        {
            StartAll = false,
            SynchronousMode = true,
            DcsParameters = new Dictionary<string, string>
            {
                ["archive_mode"] = "on",
                ["archive_command"] = $"test ! -f {archive.Path}/%f && cp %p {archive.Path}/%f",
            },
            NodeTags = new Dictionary<string, IReadOnlyDictionary<string, string>>
            {
                ["node3"] = new Dictionary<string, string> { ["nostream"] = "true" },
            },
            NodeParameters = new Dictionary<string, IReadOnlyDictionary<string, string>>
            {
                ["node3"] = new Dictionary<string, string> { ["restore_command"] = $"cp {archive.Path}/%f %p" },
            },
        };
        await using var cluster = await TestCluster.StartAsync(3, output, options);
        var (node1, node2, node3) = (cluster["node1"], cluster["node2"], cluster["node3"]);
        node1.Start();
        Assert.Equal(node1, await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(120)));
        node2.Start();
        node3.Start();
        await cluster.WaitForStreamingAsync(node2, TimeSpan.FromSeconds(120));
        await Poll.UntilAsync(async () => (await node3.PatroniAsync())?.TryGetProperty("replication_state", out var state) == true
                                          && state.GetString() == "in archive recovery",
            TimeSpan.FromSeconds(120), "node3 running in archive recovery", cluster.DescribeAsync);

        // A row written on the leader reaches node3 through the archive: the segment is switched so it is archived now.
        // (Two commands: in one, the switch would come before the commit record.)
        await node1.ExecuteAsync("CREATE TABLE archived(id int); INSERT INTO archived VALUES (42)");
        await node1.ExecuteAsync("SELECT pg_switch_wal()");
        await Poll.UntilAsync(async () =>
        {
            try
            {
                return await node3.QueryAsync<int>("SELECT id FROM archived") == 42;
            }
            catch (Npgsql.PostgresException)
            {
                return false; // the table has not been replayed yet
            }
        }, TimeSpan.FromSeconds(90), "the row replayed on node3 from the archive", async () =>
            $"archive: [{string.Join(", ", Directory.GetFiles(archive.Path).Select(Path.GetFileName))}]; node3 restore_command: "
            + $"{await node3.QueryAsync<string>("SHOW restore_command")}; leader at {await node1.QueryAsync<string>("SELECT pg_walfile_name(pg_current_wal_lsn())")}\n"
            + await cluster.DescribeAsync());

        Assert.Equal(0L, await node1.QueryAsync<long>("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'node3'"));
        Assert.Equal(0L, await node1.QueryAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'node3'"));
        Assert.Equal(1L, await node1.QueryAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'node2'"));
        Assert.Equal("", await node3.QueryAsync<string>("SHOW primary_conninfo"));

        // Synchronous mode picks node2, and with node2 stopped it does not fall back to node3.
        await Poll.UntilAsync(async () => (await cluster.SyncKeyAsync())?.Standbys is ["node2"], TimeSpan.FromSeconds(60), "node2 in the sync key");
        await node2.StopAsync();
        await Poll.UntilAsync(async () => (await cluster.SyncKeyAsync())?.Standbys is [], TimeSpan.FromSeconds(60), "node2 leaves the sync key");
        for (var i = 0; i < 3; i++)
        {
            Assert.DoesNotContain("node3", (await cluster.SyncKeyAsync())?.Standbys ?? []);
            Assert.DoesNotContain("node3", await node1.QueryAsync<string>("SHOW synchronous_standby_names"), StringComparison.Ordinal);
            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        Measurements.Report(output, "nostream: node3 replayed a row from the WAL archive (pg_switch_wal on the leader), with no walsender, no slot, no primary_conninfo, and was never a synchronous standby");
    }
}
