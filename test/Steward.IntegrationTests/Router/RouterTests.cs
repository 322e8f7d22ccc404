using System.Diagnostics;
using System.Net.Sockets;
using Npgsql;
using Steward.Core.Cluster;
using Steward.Etcd;
using Steward.IntegrationTests.Cluster;
using Steward.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Router;

/// <summary>`steward router` in front of a real cluster: where connections land, and what clients see across a failover.</summary>
[Collection(ClusterCollectionB.Name)]
public sealed class RouterTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bootstrap = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Writes_land_on_the_leader_and_reads_on_replicas()
    {
        await using var cluster = await TestCluster.StartAsync(3, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        foreach (var r in cluster.Nodes.Where(n => n != leader))
        {
            await cluster.WaitForStreamingAsync(r, Bootstrap);
        }

        await using var router = await TestRouter.StartAsync(cluster, output);
        await Poll.UntilAsync(async () => await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == leader.PgPort,
            TimeSpan.FromSeconds(20), "the write port reaching the leader");
        Assert.False(await router.QueryAsync<bool>(router.WritePort, "SELECT pg_is_in_recovery()"));

        var replicaPorts = cluster.Nodes.Where(n => n != leader).Select(n => n.PgPort).ToHashSet();
        var seen = new HashSet<int>();
        await Poll.UntilAsync(async () =>
        {
            // Two connections held at once: least-connections must spread them over both replicas.
            await using var a = await router.OpenAsync(router.ReadPort);
            await using var b = await router.OpenAsync(router.ReadPort);
            foreach (var c in new[] { a, b })
            {
                await using var cmd = new NpgsqlCommand("SELECT inet_server_port(), pg_is_in_recovery()", c);
                await using var rd = await cmd.ExecuteReaderAsync();
                await rd.ReadAsync();
                Assert.True(rd.GetBoolean(1));
                seen.Add(rd.GetInt32(0));
            }

            return seen.SetEquals(replicaPorts);
        }, TimeSpan.FromSeconds(20), "reads spread over both replicas");

        var stats = await new HttpClient().GetStringAsync($"http://127.0.0.1:{router.StatsPort}/stats.json");
        Assert.Contains($"\"writer\":\"{leader.Name}\"", stats, StringComparison.Ordinal);
        Assert.Contains("<table>", await new HttpClient().GetStringAsync($"http://127.0.0.1:{router.StatsPort}/stats"), StringComparison.Ordinal);
        Assert.Contains("steward_router_sessions_total", await new HttpClient().GetStringAsync($"http://127.0.0.1:{router.StatsPort}/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_a_graceful_failover_old_sessions_are_closed_and_a_reconnecting_client_reaches_the_new_leader_within_1_s()
    {
        await using var cluster = await TestCluster.StartAsync(3, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        foreach (var r in cluster.Nodes.Where(n => n != leader))
        {
            await cluster.WaitForStreamingAsync(r, Bootstrap);
        }

        await using var router = await TestRouter.StartAsync(cluster, output);
        await using var old = await router.OpenAsync(router.WritePort);
        Assert.Equal(leader.PgPort, await ScalarAsync<int>(old, "SELECT inet_server_port()"));

        await using var store = new EtcdClusterStore([cluster.Etcd.Endpoint], $"/service/{cluster.Scope}/", TimeSpan.FromSeconds(3), TimeProvider.System,
            NullLogger<EtcdClusterStore>.Instance);
        var stop = leader.StopAsync();

        // The instant the leader key names another member, a new connection must reach it within 1 s.
        var clock = Stopwatch.StartNew();
        string? newLeader = null;
        await Poll.UntilAsync(async () =>
        {
            var view = await store.LoadAsync(CancellationToken.None);
            newLeader = view.Leader?.Name is { } n && n != leader.Name ? n : null;
            return newLeader is not null;
        }, TimeSpan.FromSeconds(30), "the leader key naming another member");
        var keyChanged = clock.Elapsed;
        var target = cluster[newLeader!];
        await Poll.UntilAsync(async () => await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == target.PgPort,
            TimeSpan.FromSeconds(10), "a write connection reaching the new leader");
        var reached = clock.Elapsed - keyChanged;
        Measurements.Report(output, $"router: a new write connection reached the new leader {reached.TotalMilliseconds:0} ms after the leader key changed");
        Assert.True(reached < TimeSpan.FromSeconds(1), $"took {reached.TotalMilliseconds:0} ms");
        await stop;

        // The session to the old leader was cut.
        await Assert.ThrowsAnyAsync<Exception>(() => ScalarAsync<int>(old, "SELECT 1"));
    }

    [Fact]
    public async Task A_client_that_connects_during_a_switchover_waits_and_then_reaches_the_new_leader()
    {
        await using var cluster = await TestCluster.StartAsync(2, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var candidate = cluster.Nodes.Single(n => n != leader);
        await cluster.WaitForStreamingAsync(candidate, Bootstrap);
        await using var router = await TestRouter.StartAsync(cluster, output, holdSeconds: 20);
        await Poll.UntilAsync(async () => await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == leader.PgPort,
            TimeSpan.FromSeconds(20), "the write port reaching the leader");

        await using var store = new EtcdClusterStore([cluster.Etcd.Endpoint], $"/service/{cluster.Scope}/", TimeSpan.FromSeconds(3), TimeProvider.System,
            NullLogger<EtcdClusterStore>.Instance);
        Assert.True(await store.TryCreateFailoverAsync(new FailoverRequest { Leader = leader.Name, Candidate = candidate.Name }, CancellationToken.None));

        // Connect while the switchover is pending (once the router has seen the request): the router holds the client,
        // then hands it to the new leader.
        using var http = new HttpClient();
        await Poll.UntilAsync(async () => (await http.GetStringAsync($"http://127.0.0.1:{router.StatsPort}/stats.json")).Contains("\"writer\":null", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), "the router seeing the switchover request");
        var clock = Stopwatch.StartNew();
        var port = await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()");
        Measurements.Report(output, $"router: a client that connected during a switchover was served by the new leader after {clock.Elapsed.TotalSeconds:0.00} s");
        Assert.Equal(candidate.PgPort, port);
        Assert.False(await router.QueryAsync<bool>(router.WritePort, "SELECT pg_is_in_recovery()"));
    }

    [Fact]
    public async Task With_etcd_frozen_the_router_keeps_routing_writes_to_the_leader_it_confirms_over_rest()
    {
        await using var cluster = await TestCluster.StartAsync(2, output, new ClusterOptions { Ttl = 30, LoopWait = 5, RetryTimeout = 10 });
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        await using var router = await TestRouter.StartAsync(cluster, output);
        await Poll.UntilAsync(async () => await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == leader.PgPort,
            TimeSpan.FromSeconds(20), "the write port reaching the leader");

        cluster.Etcd.Pause();
        try
        {
            // Once the router has noticed that etcd no longer confirms its view, writes go only to a leader that
            // confirms over REST; the leader's lease (ttl 30) is still valid, so it still answers /leader 200.
            using var http = new HttpClient();
            await Poll.UntilAsync(async () => (await http.GetStringAsync($"http://127.0.0.1:{router.StatsPort}/stats.json")).Contains("\"etcd_stale\":true", StringComparison.Ordinal),
                TimeSpan.FromSeconds(10), "the router noticing that etcd no longer confirms its view");
            Assert.Equal(leader.PgPort, await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()"));
        }
        finally
        {
            cluster.Etcd.Resume();
        }

        Assert.Equal(leader.PgPort, await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()"));
    }

    [Fact]
    public async Task Garbage_and_a_thousand_dropped_connections_do_not_disturb_a_working_session()
    {
        await using var cluster = await TestCluster.StartAsync(1, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        await using var router = await TestRouter.StartAsync(cluster, output);
        await using var steady = await router.OpenAsync(router.WritePort);
        Assert.Equal(leader.PgPort, await ScalarAsync<int>(steady, "SELECT inet_server_port()"));

        using (var garbage = new TcpClient())
        {
            await garbage.ConnectAsync("127.0.0.1", router.WritePort);
            await garbage.GetStream().WriteAsync(new byte[] { 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 1, 2, 3 });
        }

        var sockets = new List<Socket>();
        for (var i = 0; i < 1000; i++)
        {
            var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await s.ConnectAsync("127.0.0.1", router.WritePort);
                sockets.Add(s);
            }
            catch (SocketException)
            {
                s.Dispose();
            }
        }

        foreach (var s in sockets)
        {
            s.LingerState = new LingerOption(true, 0); // RST, as a crashing client would
            s.Dispose();
        }

        Assert.Equal(leader.PgPort, await ScalarAsync<int>(steady, "SELECT inet_server_port()"));
        Assert.Equal(leader.PgPort, await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()"));
        Assert.True(router.IsRunning);
    }

    [Fact]
    public async Task A_router_config_with_unknown_keys_or_impossible_values_is_refused()
    {
        using var dir = new TempDir("badrouter");
        var path = dir.Sub("router.yml");
        await File.WriteAllTextAsync(path, """
            scope: demo
            etcd3:
              hosts: 127.0.0.1:2379
            write:
              listen: 127.0.0.1:99999
              hold_timout: 5
            """);
        var (code, text) = await StewardProcess.RunAsync(["router", "-c", path], TimeSpan.FromSeconds(60));
        output.WriteLine(text);
        Assert.NotEqual(0, code);
        Assert.Contains("write.listen", text, StringComparison.Ordinal);
        Assert.Contains("hold_timout", text, StringComparison.Ordinal);
        Assert.Contains("did you mean", text, StringComparison.Ordinal);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection c, string sql)
    {
        await using var cmd = new NpgsqlCommand(sql, c);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }
}
