using System.Net.Http.Json;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// Issue 14: Patroni's standby cluster, on real clusters. A second cluster whose <c>bootstrap.dcs</c> names the first
/// one's primary in <c>standby_cluster</c> is cloned from it and replicates it: its leader is a standby leader
/// (<c>/standby-leader</c> 200, <c>/primary</c> 503, still in recovery), its replica streams from that standby leader.
/// When the standby leader dies another member takes over as standby leader — it does not promote. Removing the section
/// (Patroni's way to detach) promotes the standby leader, and the cluster takes writes of its own.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class StandbyClusterTests(ITestOutputHelper output)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [Fact]
    public async Task A_standby_cluster_replicates_the_primary_cluster_fails_over_as_a_standby_and_promotes_when_detached()
    {
        await using var primary = await TestCluster.StartAsync(1, output);
        var remote = await primary.WaitForLeaderAsync(TimeSpan.FromSeconds(120));
        await remote.ExecuteAsync("CREATE TABLE dr_rows (id int); INSERT INTO dr_rows VALUES (1)");

        await using var standby = await TestCluster.StartAsync(2, output, new ClusterOptions { StartAll = false });
        foreach (var node in standby.Nodes)
        {
            var text = await File.ReadAllTextAsync(node.ConfigPath);
            Assert.Contains("\nbootstrap:\n  dcs:\n", text, StringComparison.Ordinal);
            await File.WriteAllTextAsync(node.ConfigPath, text.Replace("\nbootstrap:\n  dcs:\n",
                $"\nbootstrap:\n  dcs:\n    standby_cluster:\n      host: 127.0.0.1\n      port: {remote.PgPort}\n", StringComparison.Ordinal));
        }

        var (first, second) = (standby.Nodes[0], standby.Nodes[1]);
        first.Start();
        Assert.Same(first, await standby.WaitForLeaderAsync(TimeSpan.FromSeconds(120)));
        second.Start();
        await standby.WaitForStreamingAsync(second, TimeSpan.FromSeconds(120));

        // The standby leader: holds the key, runs in recovery from the remote primary, is no primary for health checks.
        Assert.Equal(200, await first.RestStatusAsync("/standby-leader"));
        Assert.Equal(503, await first.RestStatusAsync("/primary"));
        Assert.Equal(503, await second.RestStatusAsync("/standby-leader"));
        Assert.Equal("standby_leader", (await first.PatroniAsync())!.Value.GetProperty("role").GetString());
        Assert.True(await first.QueryAsync<bool>("SELECT pg_is_in_recovery()"));
        Assert.Equal(await remote.QueryAsync<string>("SELECT system_identifier::text FROM pg_control_system()"),
            await first.QueryAsync<string>("SELECT system_identifier::text FROM pg_control_system()"));
        await RowsReachAsync(remote, 2, first, second);

        // The standby leader dies: the replica takes the key as the new standby leader, and keeps replicating the remote.
        await first.CrashAsync();
        Assert.Same(second, await standby.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: first));
        await Poll.UntilAsync(async () => await second.RestStatusAsync("/standby-leader") == 200, TimeSpan.FromSeconds(30), "node2 as standby leader");
        Assert.True(await second.QueryAsync<bool>("SELECT pg_is_in_recovery()"), "the new standby leader promoted");
        Assert.Contains("as the standby leader, following the remote primary", second.Log(), StringComparison.Ordinal);
        await RowsReachAsync(remote, 3, second);

        // Detached: standby_cluster removed from the config key, the standby leader promotes and takes its own writes.
        using (var request = new HttpRequestMessage(HttpMethod.Patch, new Uri($"http://127.0.0.1:{second.RestPort}/config"))
               {
                   Content = JsonContent.Create(new Dictionary<string, object?> { ["standby_cluster"] = null }),
               })
        {
            using var response = await Http.SendAsync(request);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }

        await Poll.UntilAsync(async () => await second.RestStatusAsync("/primary") == 200, TimeSpan.FromSeconds(60), "node2 promoted once detached");
        await second.ExecuteAsync("INSERT INTO dr_rows VALUES (100)");
        Assert.Equal(4L, await second.QueryAsync<long>("SELECT count(*) FROM dr_rows"));
        Assert.Equal(3L, await remote.QueryAsync<long>("SELECT count(*) FROM dr_rows"));
        output.WriteLine(second.LogTail(30));
    }

    /// <summary>Inserts row <paramref name="id"/> on the remote primary and waits until every node shows it.</summary>
    private static async Task RowsReachAsync(TestNode remote, int id, params TestNode[] nodes)
    {
        await remote.ExecuteAsync($"INSERT INTO dr_rows VALUES ({id})");
        foreach (var node in nodes)
        {
            await Poll.UntilAsync(async () => await node.QueryAsync<long>($"SELECT count(*) FROM dr_rows WHERE id = {id}") == 1,
                TimeSpan.FromSeconds(60), $"row {id} on {node.Name}");
        }
    }
}
