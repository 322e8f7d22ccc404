using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using dotnet_etcd;
using Npgsql;
using Steward.Core.Cluster;
using Steward.IntegrationTests.Cluster;
using Steward.IntegrationTests.Infrastructure;
using Steward.IntegrationTests.Postgres;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Router;

/// <summary>
/// The router's safety rules on the real stack (etcd, PostgreSQL 15, the `steward router` process). The leader-change
/// tests drive the keys themselves, the way agents write them, in front of two independent running primaries: the
/// member that loses the key keeps running and accepting writes, so a session left on it is visible (with real
/// agents a demoted primary restarts or is fenced, which would hide a missed cut).
/// </summary>
[Collection(ClusterCollectionB.Name)]
public sealed class RouterSafetyTests(ITestOutputHelper output)
{
    private const string Scope = "routersafety";
    private const string Prefix = $"/service/{Scope}/";
    private static readonly TimeSpan Bootstrap = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task A_connection_opened_in_the_window_of_a_leader_change_never_stays_on_the_old_leader()
    {
        await using var stack = await Stack.StartAsync(output);
        await stack.SetMemberAsync(stack.X, "primary");
        await stack.SetMemberAsync(stack.Y, "primary");
        await stack.SetLeaderAsync(stack.X.Name);
        // Each hand-over pauses 20 ms between the router's last check of the table and the start of forwarding (fault
        // injection), so that leader changes land inside that window.
        await using var router = await stack.StartRouterAsync(holdSeconds: 20, handoverDelayMs: 20);
        await stack.WaitForWriterAsync(router, stack.X.Name);

        const int Clients = 6;
        const int Flips = 30;
        var gate = new ClientGate();
        using var stop = new CancellationTokenSource();
        var pools = Enumerable.Range(0, Clients).Select(_ => new ConcurrentQueue<Opened>()).ToArray();
        long opened = 0, failedOpens = 0;
        var clients = pools.Select(pool => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await gate.EnterAsync(stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                try
                {
                    var c = new NpgsqlConnection(stack.ConnectionString(router.WritePort));
                    try
                    {
                        await c.OpenAsync(stop.Token);
                        await using var cmd = new NpgsqlCommand("SELECT inet_server_port()", c);
                        var port = (int)(await cmd.ExecuteScalarAsync(stop.Token))!;
                        pool.Enqueue(new Opened(c, port));
                        Interlocked.Increment(ref opened);
                        while (pool.Count > 8 && pool.TryDequeue(out var oldest))
                        {
                            await oldest.Connection.DisposeAsync();
                        }
                    }
                    catch (Exception e) when (e is NpgsqlException or SocketException or IOException or TimeoutException)
                    {
                        Interlocked.Increment(ref failedOpens);   // cut while starting: the client reconnects
                        await c.DisposeAsync();
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                }
                finally
                {
                    gate.Exit();
                }
            }
        })).ToArray();

        var leader = stack.X;
        var flips = 0;
        var violations = new List<string>();
        long cutChecked = 0;
        var settle = new List<double>();
        for (var flip = 0; flip < Flips; flip++)
        {
            var next = leader == stack.X ? stack.Y : stack.X;

            // Let the clients work, then move the key while they connect: directly (one revision), or with a gap
            // without a leader (clients are held meanwhile).
            await Task.Delay(TimeSpan.FromMilliseconds(50 + (flip * 37 % 150)));
            var clock = Stopwatch.StartNew();
            if (flip % 2 == 0)
            {
                await stack.SetLeaderAsync(next.Name);
            }
            else
            {
                await stack.DeleteLeaderAsync();
                await stack.SetLeaderAsync(next.Name);
            }

            await stack.WaitForWriterAsync(router, next.Name);
            settle.Add(clock.Elapsed.TotalMilliseconds);

            // Every session still on the old leader must be cut (checked with the clients paused, so none is
            // half-open); each is given 5 s for the close to reach the client.
            await gate.PauseAsync();
            var onOld = pools.SelectMany(p => p).Where(o => o.Port == leader.Port && !o.Dead).ToList();
            cutChecked += onOld.Count;
            var closed = await Task.WhenAll(onOld.Select(o => ClosedWithinAsync(o, TimeSpan.FromSeconds(5))));
            if (closed.Count(c => !c) is var left and > 0)
            {
                violations.Add($"flip {flip}: {left} of {onOld.Count} sessions on {leader.Name} (the old leader) still answer 5 s after the key moved to {next.Name}");
                gate.Resume();
                break;
            }

            gate.Resume();
            leader = next;
            flips++;
        }

        await stop.CancelAsync();
        gate.Resume();
        await Task.WhenAll(clients);
        foreach (var o in pools.SelectMany(p => p))
        {
            await o.Connection.DisposeAsync();
        }

        Measurements.Report(output, $"router: {flips} leader changes under {Clients} connecting clients: {opened} sessions opened, {failedOpens} cut while opening, "
            + $"{cutChecked} sessions on the old leader checked, {violations.Count} changes left sessions on it; writer switched {settle.Average():0} ms (max {settle.Max():0} ms) after the key moved");
        Assert.Empty(violations);
        Assert.True(opened > Flips * 5, $"only {opened} sessions opened: the clients did not run through the changes");
        Assert.True(cutChecked > 0, "no session was on an old leader when its key moved: the test checked nothing");
    }

    [Fact]
    public async Task A_member_that_took_the_key_gets_writes_only_once_it_reports_a_running_primary()
    {
        await using var stack = await Stack.StartAsync(output);
        await stack.SetMemberAsync(stack.X, "primary");
        await stack.SetMemberAsync(stack.Y, "replica");
        await stack.SetLeaderAsync(stack.X.Name);
        await using var router = await stack.StartRouterAsync(holdSeconds: 30);
        await stack.WaitForWriterAsync(router, stack.X.Name);

        // node2 takes the key while its member key still says replica (promotion not finished): writes are held.
        await stack.DeleteLeaderAsync();
        await stack.SetLeaderAsync(stack.Y.Name);
        using var http = new HttpClient();
        await Poll.UntilAsync(async () => (await stack.StatsAsync(router)).GetProperty("reason").GetString()?.Contains("not a running primary", StringComparison.Ordinal) == true,
            TimeSpan.FromSeconds(10), "the router seeing node2 as a leader that is not a running primary yet");
        var held = Task.Run(async () =>
        {
            await using var c = new NpgsqlConnection(stack.ConnectionString(router.WritePort));
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT inet_server_port()", c);
            return (int)(await cmd.ExecuteScalarAsync())!;
        });
        await Poll.UntilAsync(async () => (await stack.StatsAsync(router)).GetProperty("listeners")[0].GetProperty("holding").GetInt32() == 1,
            TimeSpan.FromSeconds(10), "the write client held");
        Assert.False(held.IsCompleted);

        var clock = Stopwatch.StartNew();
        await stack.SetMemberAsync(stack.Y, "primary");
        Assert.Equal(stack.Y.Port, await held.WaitAsync(TimeSpan.FromSeconds(20)));
        Measurements.Report(output, $"router: a held write client reached the promoted member {clock.Elapsed.TotalMilliseconds:0} ms after it reported role primary");
    }

    [Fact]
    public async Task A_frozen_etcd_behind_the_routers_watch_is_detected_within_the_bound_and_writes_fail_closed()
    {
        // ttl 10: the leader's lease (and its REST /leader 200) outlives the router's 3 s bound by several seconds, so
        // both phases are seen: stale but REST-confirmed, then unconfirmed and held.
        await using var cluster = await TestCluster.StartAsync(1, output, new ClusterOptions { Ttl = 10, LoopWait = 1, RetryTimeout = 3 });
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        await using var router = await TestRouter.StartAsync(cluster, output, holdSeconds: 2);
        await Poll.UntilAsync(async () => await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == leader.PgPort,
            TimeSpan.FromSeconds(20), "the write port reaching the leader");
        using var http = new HttpClient();
        var statsUrl = $"http://127.0.0.1:{router.StatsPort}/stats.json";
        async Task<JsonElement> Stats() => JsonDocument.Parse(await http.GetStringAsync(statsUrl)).RootElement;
        var bound = TimeSpan.FromMilliseconds((await Stats()).GetProperty("etcd_stale_after_ms").GetInt64());

        cluster.Etcd.Pause();
        try
        {
            var clock = Stopwatch.StartNew();
            JsonElement stale = default;
            await Poll20Async(async () => (stale = await Stats()).GetProperty("etcd_stale").GetBoolean(), TimeSpan.FromSeconds(30), "the router detecting the frozen etcd");
            var detected = clock.Elapsed;
            Measurements.Report(output, $"router: frozen etcd detected {detected.TotalMilliseconds:0} ms after SIGSTOP (bound {bound.TotalMilliseconds:0} ms after the last confirmed read; "
                + $"last confirmation {stale.GetProperty("etcd_confirmed_ms_ago").GetInt64()} ms old when seen)");
            Assert.True(detected <= bound + TimeSpan.FromSeconds(1), $"detected after {detected.TotalMilliseconds:0} ms; bound {bound.TotalMilliseconds:0} ms");

            // Stale, writes go only to the leader its REST API confirms (its lease is still valid).
            Assert.Equal(leader.PgPort, await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()"));

            // Once the leader no longer answers /leader 200 (its lease ran out: it cannot renew against a frozen etcd),
            // the router holds writes: no writer, and a new write client is held, not forwarded.
            await Poll20Async(async () => await leader.RestStatusAsync("/leader") != 200, TimeSpan.FromSeconds(60), "the leader's /leader no longer answering 200");
            var unconfirmed = Stopwatch.StartNew();
            await Poll20Async(async () => (await Stats()).GetProperty("writer").ValueKind == JsonValueKind.Null, TimeSpan.FromSeconds(10), "the router holding writes");
            Measurements.Report(output, $"router: writes held {unconfirmed.Elapsed.TotalMilliseconds:0} ms after the stale leader stopped confirming over REST ({clock.Elapsed.TotalSeconds:0.0} s after SIGSTOP)");
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", router.WritePort);
            await Poll20Async(async () => (await Stats()).GetProperty("listeners")[0].GetProperty("holding").GetInt32() >= 1, TimeSpan.FromSeconds(5), "the write client held");
        }
        finally
        {
            cluster.Etcd.Resume();
        }

        await Poll.UntilAsync(async () => !(await Stats()).GetProperty("etcd_stale").GetBoolean(), TimeSpan.FromSeconds(30), "the router following etcd again");
        await Poll.UntilAsync(async () => await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == leader.PgPort,
            TimeSpan.FromSeconds(60), "the write port reaching the leader again");
    }

    private static async Task Poll20Async(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
            }

            await Task.Delay(20);
        }
    }

    private static async Task<bool> ClosedWithinAsync(Opened o, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            try
            {
                await using var cmd = new NpgsqlCommand("SELECT 1", o.Connection) { CommandTimeout = 5 };
                await cmd.ExecuteScalarAsync();
            }
            catch (Exception e) when (e is NpgsqlException or IOException or InvalidOperationException)
            {
                o.Dead = true;
                return true;
            }

            await Task.Delay(20);
        }

        return false;
    }

    private sealed class Opened(NpgsqlConnection connection, int port)
    {
        public NpgsqlConnection Connection { get; } = connection;
        public int Port { get; } = port;
        public bool Dead { get; set; }
    }

    /// <summary>Lets the client loops run, or pauses them and waits until none is in the middle of an open.</summary>
    private sealed class ClientGate
    {
        private int _active;
        private TaskCompletionSource? _paused;

        public async Task EnterAsync(CancellationToken ct)
        {
            while (true)
            {
                if (Volatile.Read(ref _paused) is { } paused)
                {
                    await paused.Task.WaitAsync(ct);
                    continue;
                }

                Interlocked.Increment(ref _active);
                if (Volatile.Read(ref _paused) is null)
                {
                    return;
                }

                Interlocked.Decrement(ref _active);
            }
        }

        public void Exit() => Interlocked.Decrement(ref _active);

        public async Task PauseAsync()
        {
            Volatile.Write(ref _paused, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            while (Volatile.Read(ref _active) > 0)
            {
                await Task.Delay(5);
            }
        }

        public void Resume() => Interlocked.Exchange(ref _paused, null)?.TrySetResult();
    }

    /// <summary>etcd, two running primaries (node1, node2) and the keys an agent would write for them.</summary>
    private sealed class Stack : IAsyncDisposable
    {
        private readonly ITestOutputHelper _output;
        private readonly EtcdClient _etcd;
        private readonly HttpClient _http = new();

        private Stack(EtcdServer server, PgTestCluster pg, PgTestNode x, PgTestNode y, TempDir dir, ITestOutputHelper output)
        {
            Server = server;
            Pg = pg;
            X = new Node(x);
            Y = new Node(y);
            Dir = dir;
            _output = output;
            _etcd = new EtcdClient(server.Endpoint);
        }

        public EtcdServer Server { get; }
        public PgTestCluster Pg { get; }
        public Node X { get; }
        public Node Y { get; }
        public TempDir Dir { get; }

        public static async Task<Stack> StartAsync(ITestOutputHelper output)
        {
            var server = await EtcdServer.StartAsync();
            var pg = new PgTestCluster("routersafety");
            var dir = new TempDir("routersafety-router");
            try
            {
                var x = pg.Node("node1");
                var y = pg.Node("node2");
                await x.BootstrapAsync();
                await y.BootstrapAsync();
                return new Stack(server, pg, x, y, dir, output);
            }
            catch
            {
                await pg.DisposeAsync();
                await server.DisposeAsync();
                dir.Dispose();
                throw;
            }
        }

        public string ConnectionString(int port) =>
            $"Host=127.0.0.1;Port={port};Username=postgres;Password=su-pass;Database=postgres;Timeout=30;Command Timeout=10;Pooling=false";

        public Task<TestRouter> StartRouterAsync(int holdSeconds, int handoverDelayMs = 0) =>
            TestRouter.StartAsync(Server.Endpoint, Scope, Dir, _output, holdSeconds,
                environment: new Dictionary<string, string> { ["STEWARD_TEST_HANDOVER_DELAY_MS"] = handoverDelayMs.ToString(System.Globalization.CultureInfo.InvariantCulture) });

        public Task SetMemberAsync(Node node, string role) =>
            _etcd.PutAsync(Prefix + "members/" + node.Name, Encoding.UTF8.GetString(PatroniCodec.Serialize(new MemberData
            {
                ConnUrl = ConnUrl.ForPostgres(node.Pg.Address),
                ApiUrl = "http://127.0.0.1:1/patroni",
                Role = role,
                State = "running",
                XlogLocation = 0,
                ReplicationState = role == "replica" ? "streaming" : null,
            })));

        public Task SetLeaderAsync(string name) => _etcd.PutAsync(Prefix + "leader", name);

        public Task DeleteLeaderAsync() => _etcd.DeleteAsync(Prefix + "leader");

        public async Task<JsonElement> StatsAsync(TestRouter router) =>
            JsonDocument.Parse(await _http.GetStringAsync($"http://127.0.0.1:{router.StatsPort}/stats.json")).RootElement;

        public async Task WaitForWriterAsync(TestRouter router, string name)
        {
            var clock = Stopwatch.StartNew();
            while ((await StatsAsync(router)).GetProperty("writer").GetString() != name)
            {
                if (clock.Elapsed > TimeSpan.FromSeconds(20))
                {
                    throw new TimeoutException($"the router did not route writes to {name} within 20 s");
                }

                await Task.Delay(10);
            }
        }

        public async ValueTask DisposeAsync()
        {
            _http.Dispose();
            _etcd.Dispose();
            await Pg.DisposeAsync();
            await Server.DisposeAsync();
            Dir.Dispose();
        }
    }

    private sealed class Node(PgTestNode pg)
    {
        public PgTestNode Pg { get; } = pg;
        public string Name => Pg.Name;
        public int Port => Pg.Address.Port;
    }
}
