using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// Issue 14: Patroni's <c>clonefrom</c> and <c>replicatefrom</c> tags on a real cluster. node2 is tagged
/// <c>clonefrom: true</c>, node3 <c>replicatefrom: node2</c>: node3 takes its base backup from node2 and streams
/// from node2 (its WAL receiver's sender is node2's port) through a slot node2 keeps for it, and the leader keeps none for
/// it; rows written on the leader reach it through node2. With node2 stopped it streams from the leader instead.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class CascadingReplicationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_replica_tagged_replicatefrom_clones_from_a_clonefrom_replica_streams_from_it_and_from_the_leader_when_it_is_gone()
    {
        await using var cluster = await TestCluster.StartAsync(3, output, new ClusterOptions
        {
            StartAll = false,
            NodeTags = new Dictionary<string, IReadOnlyDictionary<string, string>>
            {
                ["node2"] = new Dictionary<string, string> { ["clonefrom"] = "true" },
                ["node3"] = new Dictionary<string, string> { ["replicatefrom"] = "node2" },
            },
        });
        var (leader, middle, cascaded) = (cluster.Nodes[0], cluster.Nodes[1], cluster.Nodes[2]);
        leader.Start();
        Assert.Same(leader, await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(120)));
        middle.Start();
        await cluster.WaitForStreamingAsync(middle, TimeSpan.FromSeconds(120));
        cascaded.Start();

        await Poll.UntilAsync(async () => (await cascaded.WalReceiverAsync()) is { Status: "streaming" } receiver && receiver.SenderPort == middle.PgPort,
            TimeSpan.FromSeconds(90), "node3 streaming from node2", cluster.DescribeAsync);
        await cluster.WaitForReplicationAsync(leader, TimeSpan.FromSeconds(60));
        Assert.Contains("trying to bootstrap from replica 'node2' (tagged clonefrom)", cascaded.Log(), StringComparison.Ordinal);
        await Poll.UntilAsync(async () => await middle.QueryAsync<bool>("SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = 'node3'"),
            TimeSpan.FromSeconds(30), "node2 keeps an active slot for node3");
        await Poll.UntilAsync(async () => await leader.QueryAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'node3'") == 0,
            TimeSpan.FromSeconds(30), "the leader keeps no slot for node3");
        Assert.Equal(1L, await leader.QueryAsync<long>("SELECT count(*) FROM pg_stat_replication"));

        // node2 gone: node3 follows the leader.
        await middle.StopAsync();
        await Poll.UntilAsync(async () => (await cascaded.WalReceiverAsync()) is { Status: "streaming" } receiver && receiver.SenderPort == leader.PgPort,
            TimeSpan.FromSeconds(90), "node3 streaming from the leader once node2 is gone", cluster.DescribeAsync);
        await cluster.WaitForReplicationAsync(leader, TimeSpan.FromSeconds(60));
        Assert.Contains("following replica 'node2' (replicatefrom) of leader 'node1'", cascaded.Log(), StringComparison.Ordinal);
    }
}
