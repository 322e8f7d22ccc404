using System.Diagnostics;
using System.Text.Json;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// Runbook-style scenarios on a real cluster: etcd + three `steward node` agents + PostgreSQL 15, all on loopback.
/// Timings are printed (the closing note quotes them), asserted only against the issue's generous bounds.
/// </summary>
[Collection(ClusterCollectionB.Name)]
public sealed class ClusterLifecycleTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bootstrap = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Three_nodes_started_together_end_with_one_leader_two_streaming_replicas_and_one_system_id()
    {
        var clock = Stopwatch.StartNew();
        await using var cluster = await TestCluster.StartAsync(3, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var replicas = cluster.Nodes.Where(n => n != leader).ToList();
        foreach (var r in replicas)
        {
            await cluster.WaitForStreamingAsync(r, Bootstrap);
        }

        Measurements.Report(output, $"bootstrap: 3 nodes from nothing to leader + 2 streaming replicas in {clock.Elapsed.TotalSeconds:0.0} s");

        var ids = new HashSet<string>();
        foreach (var n in cluster.Nodes)
        {
            var status = await n.PatroniAsync();
            ids.Add(status!.Value.GetProperty("database_system_identifier").GetString()!);
        }

        Assert.Single(ids);
        await Poll.UntilAsync(async () => await leader.QueryAsync<int>("SELECT count(*)::int FROM pg_replication_slots WHERE active") == 2, TimeSpan.FromSeconds(30), "two active replication slots on the leader");
        foreach (var r in replicas)
        {
            Assert.True(await r.QueryAsync<bool>("SELECT pg_is_in_recovery()"));
        }

        // Exactly one member ever held the lock: the others say they cloned from it.
        Assert.Single(cluster.Nodes, n => n.Log().Contains("trying to bootstrap a new cluster", StringComparison.Ordinal)
                                         && !n.Log().Contains("another member won the initialize race", StringComparison.Ordinal));
        foreach (var r in replicas)
        {
            Assert.Contains($"trying to bootstrap from leader '{leader.Name}'", r.Log(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_row_written_on_the_leader_is_read_on_both_replicas()
    {
        await using var cluster = await TestCluster.StartAsync(3, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        await leader.ExecuteAsync("CREATE TABLE t(id int primary key, note text); INSERT INTO t VALUES (1, 'written on the leader')");
        foreach (var r in cluster.Nodes.Where(n => n != leader))
        {
            await cluster.WaitForStreamingAsync(r, Bootstrap);
            await Poll.UntilAsync(async () => await r.QueryAsync<string>("SELECT note FROM t WHERE id = 1") == "written on the leader",
                TimeSpan.FromSeconds(30), $"the row on {r.Name}");
        }
    }

    [Fact]
    public async Task Graceful_stop_of_the_leader_hands_over_and_the_new_leader_takes_a_write_within_2_s()
    {
        await using var cluster = await TestCluster.StartAsync(3, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        foreach (var r in cluster.Nodes.Where(n => n != leader))
        {
            await cluster.WaitForStreamingAsync(r, Bootstrap);
        }

        await leader.ExecuteAsync("CREATE TABLE t(id int primary key)");
        var sigterm = Stopwatch.StartNew();
        await leader.StopAsync();
        var exited = sigterm.Elapsed;

        TestNode? writer = null;
        await Poll.UntilAsync(async () =>
        {
            foreach (var n in cluster.Nodes.Where(n => n != leader))
            {
                try
                {
                    await n.ExecuteAsync("INSERT INTO t VALUES (1)");
                    writer = n;
                    return true;
                }
                catch (Npgsql.PostgresException)
                {
                }
                catch (Npgsql.NpgsqlException)
                {
                }
            }

            return false;
        }, TimeSpan.FromSeconds(30), "a write accepted by another member", cluster.DescribeAsync);
        var writable = sigterm.Elapsed;
        Measurements.Report(output, $"graceful failover: agent exited {exited.TotalSeconds:0.00} s after SIGTERM; " +
                         $"{writer!.Name} accepted a write {writable.TotalSeconds:0.00} s after SIGTERM ({(writable - exited).TotalSeconds:0.00} s after the old agent exited)");

        Assert.True(writable - exited < TimeSpan.FromSeconds(2), $"new leader took {(writable - exited).TotalSeconds:0.00} s after the old one exited");
        var newLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(10), not: leader);
        Assert.Equal(writer.Name, newLeader.Name);
    }

    [Fact]
    public async Task Crash_of_the_leader_host_fails_over_within_ttl_plus_2_s_and_the_old_leader_rejoins_rewound()
    {
        var options = new ClusterOptions();
        await using var cluster = await TestCluster.StartAsync(3, output, options);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        foreach (var r in cluster.Nodes.Where(n => n != leader))
        {
            await cluster.WaitForStreamingAsync(r, Bootstrap);
        }

        await leader.ExecuteAsync("CREATE TABLE t(id int primary key, note text); INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g");
        foreach (var r in cluster.Nodes.Where(n => n != leader))
        {
            await Poll.UntilAsync(async () => await r.QueryAsync<long>("SELECT count(*) FROM t") == 100, TimeSpan.FromSeconds(30), $"rows on {r.Name}");
        }

        var crash = Stopwatch.StartNew();
        await leader.KillAgentAsync();
        await leader.KillPostmasterAsync();
        var newLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(options.Ttl + 30), not: leader);
        var failover = crash.Elapsed;
        Measurements.Report(output, $"crash failover (ttl {options.Ttl}, loop_wait {options.LoopWait}, retry_timeout {options.RetryTimeout}): " +
                         $"{newLeader.Name} answered /leader 200 {failover.TotalSeconds:0.00} s after kill -9 of agent and postmaster");
        Assert.True(failover < TimeSpan.FromSeconds(options.Ttl + 2), $"failover took {failover.TotalSeconds:0.00} s");

        var newTimeline = (await newLeader.PatroniAsync())!.Value.GetProperty("timeline").GetInt64();
        Assert.True(newTimeline >= 2);
        await newLeader.ExecuteAsync("INSERT INTO t VALUES (101, 'after failover')");

        // The switch is recorded in `history` right after the promotion (the new leader answers /leader 200 first).
        await Poll.UntilAsync(async () => (await newLeader.GetJsonAsync("/history"))?.EnumerateArray()
                .Any(h => h[0].GetInt64() == newTimeline - 1 && h[4].GetString() == newLeader.Name) == true,
            TimeSpan.FromSeconds(10), "the timeline switch in /history");

        var rejoin = Stopwatch.StartNew();
        leader.Start();
        await cluster.WaitForStreamingAsync(leader, TimeSpan.FromSeconds(120));
        Measurements.Report(output, $"rejoin: the crashed former leader streamed again {rejoin.Elapsed.TotalSeconds:0.0} s after its agent restarted");

        Assert.Contains("rewinding from leader", leader.Log(), StringComparison.Ordinal);
        await Poll.UntilAsync(async () => (await leader.PatroniAsync())?.GetProperty("timeline").GetInt64() == newTimeline,
            TimeSpan.FromSeconds(30), "the old leader on the new timeline");
        await Poll.UntilAsync(async () => await leader.QueryAsync<long>("SELECT count(*) FROM t") == 101, TimeSpan.FromSeconds(30), "rows on the rejoined node");
        Assert.Equal(
            await newLeader.QueryAsync<string>("SELECT string_agg(id || ':' || note, ',' ORDER BY id) FROM t"),
            await leader.QueryAsync<string>("SELECT string_agg(id || ':' || note, ',' ORDER BY id) FROM t"));
    }

    [Fact]
    public async Task Rest_endpoints_answer_with_Patronis_status_codes_on_the_leader_and_on_a_replica()
    {
        await using var cluster = await TestCluster.StartAsync(2, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var replica = cluster.Nodes.Single(n => n != leader);
        await cluster.WaitForStreamingAsync(replica, Bootstrap);
        await Poll.UntilAsync(async () => await replica.RestStatusAsync("/readiness") == 200, TimeSpan.FromSeconds(30), "replica ready");

        var expected = new (string Path, int Leader, int Replica)[]
        {
            ("/", 200, 503), ("/primary", 200, 503), ("/master", 200, 503), ("/read-write", 200, 503),
            ("/leader", 200, 503), ("/standby-leader", 503, 503),
            ("/replica", 503, 200), ("/replica?lag=16MB", 503, 200), ("/replica?lag=0&nosuchtag=x", 503, 503),
            ("/read-only", 200, 200), ("/sync", 503, 503), ("/async", 503, 200),
            ("/health", 200, 200), ("/liveness", 200, 200), ("/readiness", 200, 200),
            ("/patroni", 200, 200), ("/cluster", 200, 200), ("/history", 200, 200), ("/config", 200, 200), ("/metrics", 200, 200),
        };
        var failures = new List<string>();
        foreach (var (path, onLeader, onReplica) in expected)
        {
            foreach (var (node, want) in new[] { (leader, onLeader), (replica, onReplica) })
            {
                foreach (var method in new[] { HttpMethod.Get, HttpMethod.Head, HttpMethod.Options })
                {
                    var got = await node.RestStatusAsync(path, method);
                    if (got != want)
                    {
                        failures.Add($"{method} {path} on {(node == leader ? "leader" : "replica")}: {got}, expected {want}");
                    }
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join('\n', failures));

        var status = (await leader.PatroniAsync())!.Value;
        Assert.Equal("running", status.GetProperty("state").GetString());
        Assert.Equal("primary", status.GetProperty("role").GetString());
        Assert.True(status.GetProperty("server_version").GetInt32() >= 150000);
        Assert.Equal(1, status.GetProperty("timeline").GetInt64());
        Assert.True(status.GetProperty("xlog").GetProperty("location").GetInt64() > 0);
        Assert.False(status.GetProperty("cluster_unlocked").GetBoolean());
        Assert.Equal(leader.Name, status.GetProperty("patroni").GetProperty("name").GetString());
        Assert.Equal(cluster.Scope, status.GetProperty("patroni").GetProperty("scope").GetString());

        var rstatus = (await replica.PatroniAsync())!.Value;
        Assert.Equal("replica", rstatus.GetProperty("role").GetString());
        Assert.Equal("streaming", rstatus.GetProperty("replication_state").GetString());
        Assert.True(rstatus.GetProperty("xlog").GetProperty("replayed_location").GetInt64() > 0);

        var members = (await leader.GetJsonAsync("/cluster"))!.Value.GetProperty("members").EnumerateArray().ToList();
        Assert.Equal(2, members.Count);
        Assert.Contains(members, m => m.GetProperty("role").GetString() == "leader" && m.GetProperty("name").GetString() == leader.Name);

        var metrics = await new HttpClient().GetStringAsync($"http://127.0.0.1:{leader.RestPort}/metrics");
        Assert.Contains("patroni_primary{", metrics, StringComparison.Ordinal);
        Assert.Matches(@"patroni_primary\{[^}]*\} 1", metrics);
        Assert.Equal(404, await leader.RestStatusAsync("/no-such-endpoint"));
        Assert.Equal(6, (await leader.GetJsonAsync("/config"))!.Value.GetProperty("ttl").GetInt32());
        Assert.Equal(JsonValueKind.Array, (await leader.GetJsonAsync("/history"))!.Value.ValueKind);
    }
}

/// <summary>
/// Tests that run real clusters come in two collections, each running its tests one at a time; the two run side by side
/// (2 cores: two clusters at once keep CI within its time, and tests are written to poll with generous timeouts, not to
/// race a quiet machine). Fault and liveness tests are in this one, the rest in <see cref="ClusterCollectionB"/>.
/// </summary>
[CollectionDefinition(Name)]
public sealed class ClusterCollection
{
    public const string Name = "real clusters A (faults, liveness, campaign)";
}

/// <summary>The other half of the tests that run real clusters (CLI, REST, router, sync, compatibility).</summary>
[CollectionDefinition(Name)]
public sealed class ClusterCollectionB
{
    public const string Name = "real clusters B (CLI, REST, router, sync, compatibility)";
}
