using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// Issues 14 and 16: permanent slots (<c>slots</c> in the dynamic configuration) with Patroni's semantics, on real etcd
/// and PostgreSQL. The leader creates them and publishes their positions in the <c>status</c> key; replicas keep copies
/// of the logical slot, advanced to what the consumer confirmed, so that after kill -9 of the leader the new one decodes
/// from where the consumer stopped: nothing consumed comes again, nothing after it is lost.
/// </summary>
[Collection(ClusterCollectionB.Name)]
public sealed class PermanentSlotTests(ITestOutputHelper output)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    [Fact]
    public async Task A_permanent_logical_slot_survives_kill_9_of_the_leader_at_the_position_its_consumer_confirmed()
    {
        var options = new ClusterOptions
        {
            DcsParameters = new Dictionary<string, string> { ["wal_level"] = "logical" },
            DcsYaml = ["slots:", "  cdc: {type: logical, database: postgres, plugin: test_decoding}", "  keep: {type: physical}"],
        };
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, 3, options);
        await using var _ = cluster;
        var replicas = cluster.Nodes.Where(n => n != leader).ToList();

        // A bad slots value is refused with the key named, and changes nothing.
        var before = (await leader.GetJsonAsync("/config"))!.Value.GetRawText();
        using (var patch = new HttpRequestMessage(HttpMethod.Patch, $"http://127.0.0.1:{leader.RestPort}/config")
        {
            Content = new StringContent("""{"slots": {"Bad-Name": {"type": "physical"}}}""", Encoding.UTF8, "application/json"),
        })
        {
            using var response = await Http.SendAsync(patch);
            var text = await response.Content.ReadAsStringAsync();
            Assert.Equal(400, (int)response.StatusCode);
            Assert.StartsWith("slots.Bad-Name: invalid slot name", text, StringComparison.Ordinal);
        }

        Assert.Equal(before, (await leader.GetJsonAsync("/config"))!.Value.GetRawText());
        Assert.Contains("\"cdc\"", before, StringComparison.Ordinal);

        await Poll.UntilAsync(async () => await leader.QueryAsync<long>(
                "SELECT count(*) FROM pg_replication_slots WHERE (slot_name, slot_type) IN (('cdc', 'logical'), ('keep', 'physical'))") == 2,
            TimeSpan.FromSeconds(30), "the leader creates the permanent slots", cluster.DescribeAsync);

        // Changes the consumer takes on the leader (ids 1-5), then changes it has not taken yet (ids 6-10).
        await leader.ExecuteAsync("CREATE TABLE cdc_rows(id int PRIMARY KEY)");
        await leader.ExecuteAsync("INSERT INTO cdc_rows SELECT generate_series(1, 5)");
        var consumed = await leader.QueryAsync<string>("SELECT string_agg(data, E'\\n') FROM pg_logical_slot_get_changes('cdc', NULL, NULL)") ?? "";
        Assert.Contains("id[integer]:5", consumed, StringComparison.Ordinal);
        var confirmed = await leader.QueryAsync<long>("SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = 'cdc'");
        await leader.ExecuteAsync("INSERT INTO cdc_rows SELECT generate_series(6, 10)");
        await cluster.WaitForReplicationAsync(leader, TimeSpan.FromSeconds(30));

        // The leader publishes the slot's position; each replica copies the slot and advances it there.
        await Poll.UntilAsync(async () => (await cluster.GetRawAsync("status")) is { } status
                                          && JsonDocument.Parse(status).RootElement.TryGetProperty("slots", out var slots)
                                          && slots.TryGetProperty("cdc", out var cdc) && cdc.GetInt64() >= confirmed,
            TimeSpan.FromSeconds(30), "the status key publishes cdc's confirmed position", async () => $"status: {await cluster.GetRawAsync("status")}");
        foreach (var replica in replicas)
        {
            await Poll.UntilAsync(async () =>
                {
                    try
                    {
                        return await replica.QueryAsync<long?>("SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = 'cdc'") >= confirmed;
                    }
                    catch (Npgsql.NpgsqlException)
                    {
                        return false; // restarting to load the copy
                    }
                },
                TimeSpan.FromSeconds(45), $"{replica.Name}'s copy of cdc at the consumer's position",
                async () => $"{replica.Name} log:\n{replica.LogTail(30)}\n{await cluster.DescribeAsync()}");
            Assert.Equal(1L, await replica.QueryAsync<long>("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'keep' AND slot_type = 'physical'"));
            Assert.Equal("on", await replica.QueryAsync<string>("SHOW hot_standby_feedback"));
            Assert.Contains("restarting this replica to load the logical slot(s) cdc copied from the primary", replica.Log(), StringComparison.Ordinal);
        }

        await leader.CrashAsync();
        var next = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: leader);
        await Poll.UntilAsync(async () => await next.QueryAsync<bool>("SELECT NOT pg_is_in_recovery()"), TimeSpan.FromSeconds(30), $"{next.Name} promoted");

        var onNext = await next.QueryAsync<long?>("SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = 'cdc'");
        Assert.True(onNext >= confirmed, $"cdc on the new leader {next.Name} at {onNext}, the consumer confirmed {confirmed}");
        var changes = await next.QueryAsync<string>("SELECT string_agg(data, E'\\n') FROM pg_logical_slot_get_changes('cdc', NULL, NULL)") ?? "";
        output.WriteLine($"changes decoded on {next.Name}:\n{changes}");
        var rows = changes.Split('\n').Where(l => l.StartsWith("table public.cdc_rows: INSERT: ", StringComparison.Ordinal)).ToList();
        Assert.Equal([.. Enumerable.Range(6, 5).Select(id => $"table public.cdc_rows: INSERT: id[integer]:{id}")], rows);

        Measurements.Report(output, $"permanent logical slot: consumer confirmed {confirmed} on {leader.Name}; after kill -9, {next.Name} had cdc at {onNext} and decoded ids 6-10 only");
    }
}
