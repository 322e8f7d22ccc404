using Steward.IntegrationTests.Cluster;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cli;

/// <summary>The CLI's read verbs, edit-config and its refusals, against a real 3-node cluster (these need no REST actions).</summary>
[Collection(ClusterCollectionB.Name)]
public sealed class CliReadAndConfigTests(ITestOutputHelper output)
{
    [Fact]
    public async Task List_topology_history_and_show_config_describe_the_running_cluster()
    {
        var (cluster, leader) = await CliRun.StartHealthyAsync(output);
        await using var _ = cluster;
        var systemId = (await leader.PatroniAsync())!.Value.GetProperty("database_system_identifier").GetString();

        // Every member has published itself as streaming / running before we look.
        string list = "";
        await Poll.UntilAsync(async () =>
        {
            var (code, text) = await CliRun.RunAsync(cluster, output, "list");
            list = text;
            return code == 0 && text.Split('\n').Count(l => l.Contains("| streaming ", StringComparison.Ordinal)) == 2;
        }, TimeSpan.FromSeconds(30), "list showing two streaming replicas");
        Assert.Contains($"+ Cluster: {cluster.Scope} ({systemId}) ", list, StringComparison.Ordinal);
        Assert.Matches(@"\| Member +\| Host +\| Role +\| State +\| TL \| Lag in MB \|", list);
        Assert.Matches($@"\| {leader.Name} +\| 127\.0\.0\.1:{leader.PgPort} \| Leader +\| running +\| +1 \| +\|", list);
        Assert.All(list.Split('\n'), l => Assert.True(l.Length <= 80, l));

        var (jsonCode, json) = await CliRun.RunAsync(cluster, output, "list", "--format", "json");
        Assert.Equal(0, jsonCode);
        var members = System.Text.Json.JsonDocument.Parse(json).RootElement.EnumerateArray().ToList();
        Assert.Equal(3, members.Count);
        Assert.Single(members, m => m.GetProperty("Role").GetString() == "Leader" && m.GetProperty("Member").GetString() == leader.Name);

        var (extendedCode, extended) = await CliRun.RunAsync(cluster, output, "list", "-e");
        Assert.Equal(0, extendedCode);
        Assert.Contains("nofailover: false", extended, StringComparison.Ordinal);
        Assert.All(extended.Split('\n'), l => Assert.True(l.Length <= 80, l));

        var (topologyCode, topology) = await CliRun.RunAsync(cluster, output, "topology");
        Assert.Equal(0, topologyCode);
        var rows = topology.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal)).Skip(1).ToList();
        Assert.StartsWith($"| {leader.Name} ", rows[0], StringComparison.Ordinal);
        Assert.All(rows.Skip(1), r => Assert.StartsWith("| + node", r, StringComparison.Ordinal));

        var (historyCode, history) = await CliRun.RunAsync(cluster, output, "history");
        Assert.Equal(0, historyCode);
        Assert.Matches(@"\| TL \| LSN \| Reason +\| Timestamp +\| New Leader \|", history);

        var (configCode, config) = await CliRun.RunAsync(cluster, output, "show-config");
        Assert.Equal(0, configCode);
        Assert.Contains("ttl: 6\n", config, StringComparison.Ordinal);
        Assert.Contains("loop_wait: 1\n", config, StringComparison.Ordinal);
        Assert.Contains("max_connections: 50", config, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Edit_config_of_a_PostgreSQL_parameter_reaches_every_node()
    {
        var (cluster, _) = await CliRun.StartHealthyAsync(output);
        await using var _ = cluster;

        var (code, text) = await CliRun.RunAsync(cluster, output, "edit-config", "--pg", "work_mem=8MB", "--set", "maximum_lag_on_failover=2097152", "--force");
        Assert.Equal(0, code);
        Assert.Contains("+    work_mem: 8MB", text, StringComparison.Ordinal);
        Assert.Contains("-maximum_lag_on_failover: 1048576\n+maximum_lag_on_failover: 2097152", text, StringComparison.Ordinal);
        Assert.Contains("Configuration changed", text, StringComparison.Ordinal);

        foreach (var node in cluster.Nodes)
        {
            await Poll.UntilAsync(async () => await node.QueryAsync<string>("SHOW work_mem") == "8MB", TimeSpan.FromSeconds(30), $"work_mem 8MB on {node.Name}", cluster.DescribeAsync);
        }

        var (showCode, show) = await CliRun.RunAsync(cluster, output, "show-config");
        Assert.Equal(0, showCode);
        Assert.Contains("work_mem: 8MB", show, StringComparison.Ordinal);

        var (again, unchanged) = await CliRun.RunAsync(cluster, output, "edit-config", "--pg", "work_mem=8MB", "--force");
        Assert.Equal(0, again);
        Assert.Contains("Not changed", unchanged, StringComparison.Ordinal);

        // Patroni's rule loop_wait + 2*retry_timeout <= ttl broken (issue 14): written, with a warning that says what it risks.
        var (timing, warned) = await CliRun.RunAsync(cluster, output, "edit-config", "--set", "retry_timeout=3", "--force");
        Assert.Equal(0, timing);
        Assert.Contains("Warning: loop_wait (1) + 2*retry_timeout (3) = 7 is more than ttl (6)", warned, StringComparison.Ordinal);
        Assert.Contains("Configuration changed", warned, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_input_is_refused_with_a_clear_message_and_the_cluster_is_untouched()
    {
        var (cluster, leader) = await CliRun.StartHealthyAsync(output);
        await using var _ = cluster;
        var replica = cluster.Nodes.First(n => n != leader);
        var (_, before) = await CliRun.RunAsync(cluster, output, "show-config");

        var cases = new (string Verb, string[] Args, string Message)[]
        {
            ("switchover", ["--candidate", "node9", "--force"], $"Member node9 does not exist in cluster {cluster.Scope} or is tagged as nofailover"),
            ("switchover", ["--candidate", leader.Name, "--force"], $"Member {leader.Name} is already the leader of cluster {cluster.Scope}"),
            ("switchover", ["--leader", replica.Name, "--force"], $"Member {replica.Name} is not the leader of cluster {cluster.Scope} (the leader is {leader.Name})"),
            ("switchover", ["--candidate", replica.Name, "--scheduled", "next tuesday", "--force"], "Unable to parse scheduled timestamp (next tuesday). It should be in an unambiguous format (e.g. ISO 8601)"),
            ("switchover", ["--candidate", replica.Name, "--scheduled", "2001-01-01T00:00:00+00:00", "--force"], "is in the past"),
            ("switchover", ["--candidate", replica.Name], "standard input is closed"),
            ("failover", ["--candidate", "node9", "--force"], $"Member node9 does not exist in cluster {cluster.Scope} or is tagged as nofailover"),
            ("failover", ["--force"], "Failover could be performed only to a specific candidate"),
            ("restart", ["node9", "--force"], $"node9 is not a member of cluster {cluster.Scope}"),
            ("restart", ["--pg-version", "9.6", "--force"], "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"),
            ("restart", ["--scheduled", "25:00", "--force"], "Unable to parse scheduled timestamp (25:00)"),
            ("reinit", [leader.Name, "--force"], $"{leader.Name} is the leader of cluster {cluster.Scope}; only a replica can be reinitialized"),
            ("edit-config", ["--set", "loop_wait=0", "--force"], "loop_wait must be a positive number of seconds, got 0"),
            ("edit-config", ["--set", "ttl=zero", "--force"], "ttl: expected an integer"),
            ("edit-config", ["--set", "no_such_key=1", "--force"], "unknown setting no_such_key"),
            ("edit-config", ["--pg", "work_mem=8MB"], "standard input is closed"),
            ("remove", [cluster.Scope], "still running"),
            ("remove", ["another-cluster"], $"the cluster given is {cluster.Scope}, not another-cluster"),
        };
        foreach (var (verb, args, message) in cases)
        {
            var (code, text) = await CliRun.RunAsync(cluster, output, verb, args);
            Assert.True(code == 1, $"steward {verb} {string.Join(' ', args)} exited {code}:\n{text}");
            Assert.Contains(message, text, StringComparison.Ordinal);
            Assert.Contains($"steward {verb}: ", text, StringComparison.Ordinal);
        }

        Assert.Equal(200, await leader.RestStatusAsync("/leader"));
        var (_, after) = await CliRun.RunAsync(cluster, output, "show-config");
        Assert.Equal(before, after);
        var (_, list) = await CliRun.RunAsync(cluster, output, "list");
        Assert.Matches($@"\| {leader.Name} +\| [^|]+\| Leader ", list);
    }

    [Fact]
    public async Task Remove_wipes_the_keys_of_a_stopped_cluster_after_the_name_is_typed()
    {
        var (cluster, _) = await CliRun.StartHealthyAsync(output, nodes: 1);
        await using var _ = cluster;
        await cluster.Nodes[0].StopAsync();

        var (wrong, refused) = await CliRun.RunWithInputAsync(cluster, output, "not-the-name\n", "remove", cluster.Scope);
        Assert.Equal(1, wrong);
        Assert.Contains("the name does not match; nothing was removed", refused, StringComparison.Ordinal);

        var (code, text) = await CliRun.RunWithInputAsync(cluster, output, $"{cluster.Scope}\nYes I am aware\n", "remove", cluster.Scope);
        Assert.Equal(0, code);
        Assert.Contains($"keys of cluster {cluster.Scope}", text, StringComparison.Ordinal);

        var (_, list) = await CliRun.RunAsync(cluster, output, "list");
        Assert.Contains($"Cluster: {cluster.Scope} (uninitialized)", list, StringComparison.Ordinal);
        var (showCode, show) = await CliRun.RunAsync(cluster, output, "show-config");
        Assert.Equal(1, showCode);
        Assert.Contains("has no config key", show, StringComparison.Ordinal);
    }
}
