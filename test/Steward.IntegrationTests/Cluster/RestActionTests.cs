using System.Diagnostics;
using System.Net;
using System.Text;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>The agents' unsafe REST endpoints (docs/rest-actions.md) on a real cluster.</summary>
[Collection(ClusterCollectionB.Name)]
public sealed class RestActionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bootstrap = TimeSpan.FromSeconds(120);
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(60) };

    [Fact]
    public async Task Planned_switchover_through_the_api_moves_the_leader_with_a_short_write_gap_and_back_again()
    {
        await using var cluster = await Started(2);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var candidate = cluster.Nodes.Single(n => n != leader);
        await leader.ExecuteAsync("CREATE TABLE gap(id serial primary key, at timestamptz default now())");

        // A writer hammering whichever member answers /leader 200, recording the longest gap between successful writes.
        using var stop = new CancellationTokenSource();
        var longest = TimeSpan.Zero;
        var writer = Task.Run(async () =>
        {
            var last = Stopwatch.StartNew();
            while (!stop.IsCancellationRequested)
            {
                foreach (var n in cluster.Nodes)
                {
                    try
                    {
                        await n.ExecuteAsync("INSERT INTO gap DEFAULT VALUES");
                        longest = longest > last.Elapsed ? longest : last.Elapsed;
                        last.Restart();
                        break;
                    }
                    catch (Exception e) when (e is Npgsql.NpgsqlException or InvalidOperationException)
                    {
                    }
                }

                await Task.Delay(10);
            }
        });

        var (status, text) = await Post(leader, "/switchover", $$"""{"leader": "{{leader.Name}}", "candidate": "{{candidate.Name}}"}""");
        output.WriteLine(text);
        Assert.Equal(200, status);
        Assert.Equal(candidate.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).Name);
        await Task.Delay(1000);
        await stop.CancelAsync();
        await writer;
        Measurements.Report(output, $"planned switchover through the API: longest gap between acknowledged writes {longest.TotalSeconds:0.00} s");

        // And back again (the seed's rollback scenario), once the old leader streams from the new one.
        await cluster.WaitForStreamingAsync(leader, TimeSpan.FromSeconds(60));
        (status, text) = await Post(candidate, "/switchover", $$"""{"leader": "{{candidate.Name}}", "candidate": "{{leader.Name}}"}""");
        output.WriteLine(text);
        Assert.Equal(200, status);
        Assert.Equal(leader.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).Name);
    }

    [Fact]
    public async Task Bad_requests_are_refused_with_Patronis_codes_and_change_nothing()
    {
        await using var cluster = await Started(2);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var replica = cluster.Nodes.Single(n => n != leader);
        // Patroni's status codes and texts (api.py), which scripts match on; Steward may add its reason after them.
        var inAnHour = DateTimeOffset.UtcNow.AddHours(1).ToString("O");
        var cases = new (string Path, string Body, int Code, string Text)[]
        {
            ("/switchover", "this is not json", 400, "the body is not valid JSON"),
            ("/switchover", "[1, 2]", 400, "the body must be a JSON object"),
            ("/switchover", $$"""{"leader": "{{leader.Name}}", "candidate": "nosuchnode"}""", 412, "candidate does not exists"),
            ("/switchover", $$"""{"leader": "{{leader.Name}}", "candidate": "{{leader.Name}}"}""", 400, "Switchover target and source are the same"),
            ("/switchover", $$"""{"leader": "{{replica.Name}}", "candidate": "{{leader.Name}}"}""", 412, "leader name does not match"),
            ("/switchover", $$"""{"leader": "{{leader.Name}}", "candidate": "{{replica.Name}}", "scheduled_at": "tomorrow-ish"}""", 422,
                "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"),
            ("/switchover", $$"""{"leader": "{{leader.Name}}", "scheduled_at": "2001-01-01T00:00:00+00:00"}""", 422, "Cannot schedule switchover in the past"),
            ("/switchover", $$"""{"leader": "{{leader.Name}}", "scheduled_at": "2099-01-01T00:00:00"}""", 400, "Timezone information is mandatory for the scheduled switchover"),
            ("/switchover", """{"candidate": "x"}""", 400, "Switchover could be performed only from a specific leader"),
            ("/failover", "{}", 400, "Failover could be performed only to a specific candidate"),
            ("/failover", $$"""{"candidate": "{{replica.Name}}", "scheduled_at": "{{inAnHour}}"}""", 400, "Failover can't be scheduled"),
            ("/restart", """{"role": "primary"}""", 503, "restart conditions are not satisfied: host role mismatch"),
            ("/restart", """{"postgres_version": "15.0"}""", 503, "restart conditions are not satisfied: postgres version mismatch"),
            ("/restart", """{"restart_pending": true}""", 503, "restart conditions are not satisfied: pending restart flag is not set"),
            ("/restart", """{"role": "leader"}""", 400, "PostgreSQL role should be either primary, standby_leader, or replica"),
            ("/restart", """{"postgres_version": "9.6"}""", 400, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"),
            ("/restart", """{"frequency": "weekly"}""", 400, "Unknown filter for the scheduled restart: frequency"),
            ("/restart", """{"schedule": "2001-01-01T00:00:00Z"}""", 422, "Cannot schedule restart in the past"),
            ("/failsafe", "", 400, ""),
            ("/failsafe", "{}", 400, ""),
            ("/failsafe", """{"name": 7}""", 400, ""),
            ("/failsafe", $$"""{"name": "{{leader.Name}}"}""", 409, ""), // failsafe_mode is off in this cluster
        };
        foreach (var (path, body, code, message) in cases)
        {
            var target = path == "/restart" ? replica : leader;
            var (status, text) = await Post(target, path, body);
            output.WriteLine($"{path} {body} -> {status} {text}");
            Assert.True(status == code, $"{path} {body}: got {status} ({text}), expected {code}");
            Assert.StartsWith(message, text, StringComparison.Ordinal);
        }

        // Story (issue 14, item 5): a scheduled restart's conditions were checked when it was scheduled (412). As in Patroni
        // it is accepted (202) and its conditions are checked when it is due: a role mismatch is skipped then, with the
        // reason logged; one whose conditions hold (a replica older than 99.0) restarts the server.
        var pid = replica.PostmasterPid();
        var (scheduled, why) = await Post(replica, "/restart", $$"""{"schedule": "{{DateTimeOffset.UtcNow.AddSeconds(2):O}}", "role": "master"}""");
        Assert.Equal((202, "Restart scheduled"), (scheduled, why));
        Assert.Equal((409, "Another restart is already scheduled"), await Post(replica, "/restart", $$"""{"schedule": "{{inAnHour}}"}"""));
        await Poll.UntilAsync(() => Task.FromResult(replica.Log().Contains("not proceeding with the scheduled restart: host role mismatch", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(30), "the scheduled restart is skipped when due");
        Assert.Equal(pid, replica.PostmasterPid());
        Assert.False((await replica.PatroniAsync())!.Value.TryGetProperty("scheduled_restart", out _));
        Assert.Equal(202, (await Post(replica, "/restart", $$"""{"schedule": "{{DateTimeOffset.UtcNow.AddSeconds(2):O}}", "role": "replica", "postgres_version": "99.0"}""")).Status);
        await Poll.UntilAsync(() => Task.FromResult(replica.PostmasterPid() is { } now && now != pid), TimeSpan.FromSeconds(30), "the replica restarted when due");
        await cluster.WaitForStreamingAsync(replica, TimeSpan.FromSeconds(60));

        Assert.Equal(leader.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(5))).Name);
        Assert.Equal(1, (await leader.PatroniAsync())!.Value.GetProperty("timeline").GetInt64());
        Assert.Equal(503, (await Post(leader, "/reinitialize", "{}")).Status);
    }

    [Fact]
    public async Task A_scheduled_switchover_fires_at_its_time_and_a_cancelled_one_does_not()
    {
        await using var cluster = await Started(2);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var candidate = cluster.Nodes.Single(n => n != leader);

        var at = DateTimeOffset.UtcNow.AddSeconds(30).ToString("O");
        Assert.Equal(202, (await Post(leader, "/switchover", $$"""{"leader": "{{leader.Name}}", "candidate": "{{candidate.Name}}", "scheduled_at": "{{at}}"}""")).Status);
        Assert.Equal(409, (await Post(leader, "/switchover", $$"""{"leader": "{{leader.Name}}", "candidate": "{{candidate.Name}}"}""")).Status);
        Assert.Equal(200, (await Send(leader, HttpMethod.Delete, "/switchover", null)).Status);
        Assert.Equal(404, (await Send(leader, HttpMethod.Delete, "/switchover", null)).Status);

        var soon = DateTimeOffset.UtcNow.AddSeconds(4);
        Assert.Equal(202, (await Post(leader, "/switchover", $$"""{"leader": "{{leader.Name}}", "candidate": "{{candidate.Name}}", "scheduled_at": "{{soon:O}}"}""")).Status);
        Assert.Equal(leader.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(5))).Name);
        var moved = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: leader);
        Assert.Equal(candidate.Name, moved.Name);
        Assert.True(DateTimeOffset.UtcNow >= soon);
    }

    [Fact]
    public async Task A_parameter_patched_into_the_config_reaches_every_node_without_a_restart()
    {
        await using var cluster = await Started(3);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        var pids = cluster.Nodes.ToDictionary(n => n.Name, n => n.PostmasterPid());
        var (status, text) = await Send(leader, HttpMethod.Patch, "/config", """{"postgresql": {"parameters": {"work_mem": "7MB"}}}""");
        output.WriteLine(text);
        Assert.Equal(200, status);
        foreach (var n in cluster.Nodes)
        {
            await Poll.UntilAsync(async () => await n.QueryAsync<string>("SHOW work_mem") == "7MB", TimeSpan.FromSeconds(30), $"work_mem on {n.Name}");
            Assert.Equal(pids[n.Name], n.PostmasterPid());
        }

        foreach (var bad in new[]
                 {
                     """{"ttl": 0}""", """{"loop_wait": -1}""",
                     """{"member_slots_ttl": "soon"}""", """{"member_slots_ttl": -5}""", """{"synchronous_mode": "quorom"}""",
                     """{"synchronous_node_count": 0}""", """{"maximum_lag_on_syncnode": -7}""", """{"failsafe_mode": "maybe"}""",
                     """{"slots": {"S": {"type": "physical"}}}""", """{"ignore_slots": {"name": "x"}}""", """{"no_such_setting": 1}""", """{"postgresql": {"pg_hba": "host all all 0.0.0.0/0 md5"}}""", """{"postgresql": {"pg_ident": []}}""",
                 })
        {
            var (code, why) = await Send(leader, HttpMethod.Patch, "/config", bad);
            output.WriteLine($"PATCH /config {bad} -> {code} {why}");
            Assert.True(code == 400, $"PATCH /config {bad}: got {code} ({why})");
        }

        // A key Patroni wrote and Steward does not act on survives a PATCH of something else, and GET /config shows it.
        var written = System.Text.Json.Nodes.JsonNode.Parse((await leader.GetJsonAsync("/config"))!.Value.GetRawText())!.AsObject();
        written["check_timeline"] = System.Text.Json.Nodes.JsonNode.Parse("""{"keep_me": true}""");
        await cluster.PutRawAsync("config", written.ToJsonString());
        Assert.Equal(200, (await Send(leader, HttpMethod.Patch, "/config", """{"failsafe_mode": true, "member_slots_ttl": "10min"}""")).Status);
        await Poll.UntilAsync(async () => (await leader.GetJsonAsync("/config"))?.GetRawText().Contains("keep_me", StringComparison.Ordinal) == true
                                          && (await leader.GetJsonAsync("/config"))!.Value.GetProperty("member_slots_ttl").GetInt64() == 600,
            TimeSpan.FromSeconds(30), "check_timeline kept and member_slots_ttl applied in GET /config");
        Assert.Contains("settings Steward does not act on", leader.Log(), StringComparison.Ordinal);

        // Patroni's rule loop_wait + 2*retry_timeout <= ttl broken (issue 14): accepted as Patroni accepts it, with a warning.
        using var patch = new HttpRequestMessage(HttpMethod.Patch, $"http://127.0.0.1:{leader.RestPort}/config")
        {
            Content = new StringContent("""{"retry_timeout": 3}""", Encoding.UTF8, "application/json"),
        };
        using var warned = await Http.SendAsync(patch);
        Assert.Equal(200, (int)warned.StatusCode);
        Assert.Contains("2*retry_timeout (3) = 7 is more than ttl (6)", string.Join(" ", warned.Headers.GetValues("Warning")), StringComparison.Ordinal);
        await Poll.UntilAsync(() => Task.FromResult(leader.Log().Contains("is more than ttl", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), "the agent logs the timing warning");
    }

    private async Task<TestCluster> Started(int nodes) => (await TestCluster.StartHealthyAsync(output, nodes)).Cluster;

    private static Task<(int Status, string Text)> Post(TestNode node, string path, string body) => Send(node, HttpMethod.Post, path, body);

    private static async Task<(int Status, string Text)> Send(TestNode node, HttpMethod method, string path, string? body)
    {
        using var request = new HttpRequestMessage(method, $"http://127.0.0.1:{node.RestPort}{path}");
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        using var response = await Http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
