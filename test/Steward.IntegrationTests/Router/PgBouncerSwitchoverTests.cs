using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Steward.IntegrationTests.Cluster;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Router;

/// <summary>
/// Real PgBouncer 1.18 (transaction pooling) in front of the router, through planned switchovers (docs/pgbouncer.md).
/// Two chains side by side on one cluster, under the same switchover:
/// <list type="bullet">
/// <item>A: clients → PgBouncer A → router A, whose router.yml lists PgBouncer A (paused around the switchover);</item>
/// <item>B: clients → PgBouncer B → router B without <c>pgbouncer:</c> (the baseline: as before this feature).</item>
/// </list>
/// Router A runs with <c>STEWARD_TEST_PAUSE_DELAY_MS=1000</c>: it pauses a second after it sees the request, as a router
/// that sees etcd late would, so the test shows the leader waiting for it (without the handshake the leader demotes
/// before the pause and chain A fails like chain B).
/// </summary>
[Collection(ClusterCollectionB.Name)]
public sealed class PgBouncerSwitchoverTests(ITestOutputHelper output)
{
    private const int Clients = 16;
    private static readonly TimeSpan Bootstrap = TimeSpan.FromSeconds(120);
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(60) };

    [Fact]
    public async Task A_planned_switchover_behind_paused_pgbouncers_fails_no_transaction_and_a_pgbouncer_down_delays_it_by_its_timeout_at_most()
    {
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 2);
        await using var _ = cluster;
        var candidate = cluster.Nodes.Single(n => n != leader);
        await TransactionClients.CreateTableAsync(leader.ConnectionString);

        // Chain A: the router drives PgBouncer A (its port chosen first: each names the other).
        var bouncerAPort = FreePorts.Next();
        var pgbouncerA = $"name: router-a\npgbouncer:\n  - host: 127.0.0.1\n    port: {bouncerAPort}\n    user: {TestPgBouncer.AdminUser}\n    password: {TestPgBouncer.AdminPassword}\n    pause_timeout: 5\n";
        await using var routerA = await TestRouter.StartAsync(cluster.Etcd.Endpoint, cluster.Scope, cluster.Dir, output, holdSeconds: 20,
            environment: new Dictionary<string, string> { ["STEWARD_TEST_PAUSE_DELAY_MS"] = "1000" }, extraYaml: pgbouncerA, file: "router-a");
        await using var bouncerA = await TestPgBouncer.StartAsync(cluster.Dir, "pgbouncer-a", routerA.WritePort, output, port: bouncerAPort);
        // Chain B: the baseline, a router without pgbouncer:.
        await using var routerB = await TestRouter.StartAsync(cluster.Etcd.Endpoint, cluster.Scope, cluster.Dir, output, holdSeconds: 20, file: "router-b");
        await using var bouncerB = await TestPgBouncer.StartAsync(cluster.Dir, "pgbouncer-b", routerB.WritePort, output);
        await Poll.UntilAsync(async () => await PgBouncerStateAsync(routerA, $"127.0.0.1:{bouncerAPort}") == "resumed",
            TimeSpan.FromSeconds(20), "router A seeing PgBouncer A");

        await using var chainA = await TransactionClients.StartAsync(bouncerA.ConnectionString(), "A", Clients, idBase: 0);
        await using var chainB = await TransactionClients.StartAsync(bouncerB.ConnectionString(), "B", Clients, idBase: 1_000_000_000);
        await Task.Delay(TimeSpan.FromSeconds(2));

        // 1. A switchover in the middle of the load.
        var first = await SwitchoverAsync(leader, candidate);
        await Task.Delay(TimeSpan.FromSeconds(2));
        var (aFailures1, bFailures1) = (chainA.Failures, chainB.Failures);
        Measurements.Report(output, $"pgbouncer switchover: {first.TotalSeconds:0.00} s; chain A (paused PgBouncer) {chainA.Count} transactions, " +
                                    $"{aFailures1} failed, longest {chainA.Longest.TotalMilliseconds:0} ms; chain B (baseline, no pgbouncer: in router.yml) " +
                                    $"{chainB.Count} transactions, {bFailures1} failed, longest {chainB.Longest.TotalMilliseconds:0} ms");
        double lastPause = 0;
        await Poll.UntilAsync(async () =>
        {
            var stats = await routerA.StatsAsync();
            lastPause = stats.GetProperty("pgbouncer_last_pause_ms") is { ValueKind: JsonValueKind.Number } ms ? ms.GetDouble() : 0;
            return lastPause > 0;
        }, TimeSpan.FromSeconds(30), "router A resuming PgBouncer A and reporting the pause");
        Measurements.Report(output, $"pgbouncer switchover: router A paused PgBouncer A for {lastPause:0} ms (PAUSE sent to RESUME answered, 1000 ms of it the injected delay)");

        // 2. PgBouncer down during a switchover: router C drives one that does not answer (accepts, never replies) and one
        // that is not there. The switchover waits for router C at most its pause_timeout (2 s) + 2 s, not for ever.
        using var hung = new TcpListener(IPAddress.Loopback, FreePorts.Next());
        hung.Start();
        var deadPort = FreePorts.Next();
        var hungPort = ((IPEndPoint)hung.LocalEndpoint).Port;
        var pgbouncersC = $"name: router-c\npgbouncer:\n  - host: 127.0.0.1\n    port: {hungPort}\n    password: x\n    pause_timeout: 2\n" +
                          $"  - host: 127.0.0.1\n    port: {deadPort}\n    password: x\n    pause_timeout: 2\n";
        await using var routerC = await TestRouter.StartAsync(cluster.Etcd.Endpoint, cluster.Scope, cluster.Dir, output, extraYaml: pgbouncersC, file: "router-c");
        await Poll.UntilAsync(async () => await PgBouncerStateAsync(routerC, $"127.0.0.1:{deadPort}") == "unreachable",
            TimeSpan.FromSeconds(20), "router C finding its PgBouncers down");
        var leaderLog = candidate.LogLength();
        var second = await SwitchoverAsync(candidate, leader);
        await Task.Delay(TimeSpan.FromSeconds(2));
        Measurements.Report(output, $"pgbouncer switchover with a PgBouncer down (pause_timeout 2 s): {second.TotalSeconds:0.00} s, " +
                                    $"{(second - first).TotalSeconds:+0.00;-0.00} s against the first; chain A {chainA.Failures - aFailures1} failed, " +
                                    $"chain B {chainB.Failures - bFailures1} failed");

        await chainA.StopAsync();
        await chainB.StopAsync();
        Measurements.Report(output, $"pgbouncer: 2 switchovers, chain A {chainA.Count} transactions, {chainA.Failures} failed, longest " +
                                    $"{chainA.Longest.TotalMilliseconds:0} ms; chain B {chainB.Count} transactions, {chainB.Failures} failed, " +
                                    $"{chainB.Reconnects} connections opened again");
        foreach (var e in chainA.Errors.Concat(chainB.Errors))
        {
            output.WriteLine(e);
        }

        // Every acknowledged write is on the leader, through both chains.
        Assert.Empty(await chainA.MissingOnAsync(leader.ConnectionString));
        Assert.Empty(await chainB.MissingOnAsync(leader.ConnectionString));

        // The paused chain failed nothing; each pause ended with RESUME.
        Assert.True(chainA.Failures == 0, $"chain A (paused PgBouncer) had {chainA.Failures} failed transactions:\n{string.Join('\n', chainA.Errors)}");
        Assert.Equal("resumed", await PgBouncerStateAsync(routerA, $"127.0.0.1:{bouncerAPort}"));
        var statsBase = $"http://127.0.0.1:{routerA.StatsPort}";
        Assert.Contains($"steward_router_pgbouncer_state{{pgbouncer=\"127.0.0.1:{bouncerAPort}\",state=\"resumed\"}} 1", await Http.GetStringAsync($"{statsBase}/metrics"), StringComparison.Ordinal);
        Assert.Contains("steward_router_pgbouncer_last_pause_seconds", await Http.GetStringAsync($"{statsBase}/metrics"), StringComparison.Ordinal);
        Assert.Contains($"\"address\":\"127.0.0.1:{bouncerAPort}\",\"state\":\"resumed\"", await Http.GetStringAsync($"{statsBase}/dashboard/state.json"), StringComparison.Ordinal);
        Assert.Contains("<h2>PgBouncers", await Http.GetStringAsync($"{statsBase}/stats"), StringComparison.Ordinal);

        // The PgBouncer down cost at most its pause_timeout + the margin, and the leader said why it went on.
        Assert.True(second <= first + TimeSpan.FromSeconds(2 + 2 + 3), $"the switchover with a PgBouncer down took {second.TotalSeconds:0.00} s, the first {first.TotalSeconds:0.00} s");
        var decision = candidate.LogSince(leaderLog);
        Assert.Contains($"router router-c: PgBouncer 127.0.0.1:{deadPort} unreachable", decision, StringComparison.Ordinal);
        Assert.Contains($"router router-c: PgBouncer 127.0.0.1:{hungPort} unreachable", decision, StringComparison.Ordinal);
        Assert.Equal("unreachable", await PgBouncerStateAsync(routerC, $"127.0.0.1:{hungPort}"));
    }

    /// <summary>POST /switchover to <paramref name="from"/>'s REST API; its duration (the API answers once <paramref name="to"/> holds the leader key).</summary>
    private async Task<TimeSpan> SwitchoverAsync(TestNode from, TestNode to)
    {
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{from.RestPort}/switchover")
        {
            Content = new StringContent($$"""{"leader": "{{from.Name}}", "candidate": "{{to.Name}}"}""", Encoding.UTF8, "application/json"),
        };
        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"switchover {from.Name} -> {to.Name}: {(int)response.StatusCode} {text} after {clock.Elapsed.TotalSeconds:0.00} s");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return clock.Elapsed;
    }

    private static async Task<string?> PgBouncerStateAsync(TestRouter router, string address)
    {
        var stats = await router.StatsAsync();
        return stats.GetProperty("pgbouncers").EnumerateArray().FirstOrDefault(b => b.GetProperty("address").GetString() == address) is { ValueKind: JsonValueKind.Object } b
            ? b.GetProperty("state").GetString()
            : null;
    }
}
