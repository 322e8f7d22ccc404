using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Npgsql;
using Steward.IntegrationTests.Cluster;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Demo;

/// <summary>`steward demo`, the README's first command, run as a user runs it, so the README cannot rot.</summary>
[Collection(ClusterCollectionB.Name)]
public sealed class DemoCommandTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Demo_starts_the_stack_writes_go_through_the_write_port_reads_come_from_a_replica_and_down_stops_every_process()
    {
        using var dir = new TempDir("demo");
        var demoDir = dir.Sub("demo");
        // Ports of our own (never a demo someone left running on the seed's), one of them taken to see the demo move off it.
        var basePort = FreeBlock();
        using var squatter = new TcpListener(IPAddress.Loopback, basePort + 2);
        squatter.Start();

        var (exit, text) = await StewardProcess.RunAsync(["demo", "--detach", "--pgbouncer", "--dir", demoDir, "--base-port", basePort.ToString()], TimeSpan.FromMinutes(4));
        output.WriteLine(text);
        var pids = new List<int>();
        try
        {
            Assert.Equal(0, exit);
            var state = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(demoDir, "demo.json")))!;
            pids.AddRange(state["processes"]!.AsArray().Select(p => p!["pid"]!.GetValue<int>()));
            Assert.Equal(6, pids.Count); // etcd, three agents, PgBouncer, the router
            if (StewardProcess.Binary is { } binary
                && Path.GetFullPath(Path.Combine(Path.GetDirectoryName(binary)!, Steward.RouterExec.RelativePath)) is var routerOnly
                && File.Exists(routerOnly))
            {
                // The native package: `steward router` handed over to the router-only executable, in the same process.
                var router = state["processes"]!.AsArray().Single(p => p!["name"]!.GetValue<string>() == "router")!["pid"]!.GetValue<int>();
                Assert.Equal(routerOnly, new FileInfo($"/proc/{router}/exe").LinkTarget);
            }
            var write = state["ports"]!["write"]!.GetValue<int>();
            var read = state["ports"]!["read"]!.GetValue<int>();
            var bouncer = state["ports"]!["pgbouncer"]!.GetValue<int>();
            Assert.Contains($"psql -h 127.0.0.1 -p {bouncer} -U postgres", text, StringComparison.Ordinal);
            Assert.Contains($"port {basePort + 2} is taken; using {write} instead", text, StringComparison.Ordinal);
            Assert.Contains($"psql -h 127.0.0.1 -p {write} -U postgres", text, StringComparison.Ordinal);
            Assert.Contains($"psql -h 127.0.0.1 -p {read} -U postgres", text, StringComparison.Ordinal);
            Assert.Contains($"http://127.0.0.1:{state["ports"]!["stats"]}/dashboard", text, StringComparison.Ordinal);
            Assert.Matches(@"\| node1 +\|", text);
            Assert.Contains("password ", text, StringComparison.Ordinal);

            await ExecuteAsync(write, "CREATE TABLE demo_check (id int PRIMARY KEY, note text); INSERT INTO demo_check VALUES (1, 'through 5500')");
            await Poll.UntilAsync(async () =>
            {
                await using var c = await OpenAsync(read);
                await using var cmd = new NpgsqlCommand("SELECT pg_is_in_recovery(), (SELECT note FROM demo_check WHERE id = 1)", c);
                await using var r = await cmd.ExecuteReaderAsync();
                await r.ReadAsync();
                return r.GetBoolean(0) && !r.IsDBNull(1) && r.GetString(1) == "through 5500";
            }, TimeSpan.FromSeconds(30), "the row written through the write port, read from a replica through the read port");

            // --pgbouncer: PgBouncer in front of the write port, and the router drives it.
            await ExecuteAsync(bouncer, "INSERT INTO demo_check VALUES (2, 'through pgbouncer')");
            using var http = new HttpClient();
            await Poll.UntilAsync(async () => (await http.GetStringAsync($"http://127.0.0.1:{state["ports"]!["stats"]}/stats.json"))
                .Contains($"\"address\":\"127.0.0.1:{bouncer}\",\"state\":\"resumed\"", StringComparison.Ordinal),
                TimeSpan.FromSeconds(30), "the router reaching the demo's PgBouncer");

            foreach (var n in new[] { 1, 2, 3 })
            {
                if (PostmasterPid(Path.Combine(demoDir, $"node{n}", "data")) is { } pm)
                {
                    pids.Add(pm);
                }
            }
        }
        finally
        {
            var (downExit, downText) = await StewardProcess.RunAsync(["demo", "--down", "--dir", demoDir], TimeSpan.FromMinutes(2));
            output.WriteLine(downText);
            Assert.Equal(0, downExit);
        }

        Assert.All(pids, pid => Assert.False(Alive(pid), $"pid {pid} still runs after steward demo --down"));
    }

    [Fact]
    public async Task Demo_without_etcd_says_how_to_install_it_and_exits_non_zero()
    {
        using var dir = new TempDir("demo-noetcd");
        var (exit, text) = await StewardProcess.RunAsync(["demo", "--dir", dir.Sub("demo"), "--etcd-bin", dir.Sub("no-such-etcd")], TimeSpan.FromMinutes(1));
        Assert.NotEqual(0, exit);
        Assert.Contains("etcd not found", text, StringComparison.Ordinal);
        Assert.Contains("apt-get install etcd-server", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_without_PostgreSQL_says_how_to_install_it_and_exits_non_zero()
    {
        using var dir = new TempDir("demo-nopg");
        var (exit, text) = await StewardProcess.RunAsync(["demo", "--dir", dir.Sub("demo"), "--pg-bin", dir.Sub("no-such-bin")], TimeSpan.FromMinutes(1));
        Assert.NotEqual(0, exit);
        Assert.Contains("PostgreSQL 15 not found", text, StringComparison.Ordinal);
        Assert.Contains("apt-get install postgresql-15", text, StringComparison.Ordinal);
    }

    /// <summary>A base port whose block (+0 … +49) is free now.</summary>
    private static int FreeBlock()
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var start = Random.Shared.Next(20000, 30000);
            if (Enumerable.Range(start, 50).All(IsFree))
            {
                return start;
            }
        }

        throw new InvalidOperationException("no free block of 50 ports between 20000 and 30000");
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var probe = new TcpListener(IPAddress.Loopback, port);
            probe.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static async Task<NpgsqlConnection> OpenAsync(int port)
    {
        var c = new NpgsqlConnection($"Host=127.0.0.1;Port={port};Username=postgres;Password=postgres;Database=postgres;Timeout=10;Pooling=false");
        await c.OpenAsync();
        return c;
    }

    private static async Task ExecuteAsync(int port, string sql)
    {
        await using var c = await OpenAsync(port);
        await using var cmd = new NpgsqlCommand(sql, c);
        await cmd.ExecuteNonQueryAsync();
    }

    private static int? PostmasterPid(string dataDir)
    {
        var file = Path.Combine(dataDir, "postmaster.pid");
        return File.Exists(file) && int.TryParse(File.ReadLines(file).First(), out var pid) ? pid : null;
    }

    /// <summary>Running (a zombie waiting for its reaper has ended).</summary>
    private static bool Alive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }
}
