using System.Diagnostics;
using Steward.IntegrationTests.Cluster;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cli;

/// <summary>
/// Verbs that act through the agents' REST actions (docs/rest-actions.md): switchover, failover, restart, reinit,
/// pause / resume. Each asserts the state the cluster ends in, read from the agents themselves.
/// </summary>
[Collection(ClusterCollectionB.Name)]
public sealed class CliActionTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Switchover_to_a_named_candidate_and_back_again()
    {
        var (cluster, first) = await CliRun.StartHealthyAsync(output);
        await using var _ = cluster;
        var second = cluster.Nodes.First(n => n != first);

        var clock = Stopwatch.StartNew();
        var (code, text) = await CliRun.RunAsync(cluster, output, "switchover", "--leader", first.Name, "--candidate", second.Name, "--force");
        Measurements.Report(output, $"steward switchover: returned after {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(0, code);
        Assert.Matches($@"\| {second.Name} +\| [^|]+\| Leader ", text);
        Assert.Equal(second.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).Name);
        await cluster.WaitForStreamingAsync(first, TimeSpan.FromSeconds(60));

        // The seed's rollback: back to the original leader.
        var (back, backText) = await CliRun.RunAsync(cluster, output, "switchover", "--candidate", first.Name, "--force");
        Assert.Equal(0, back);
        Assert.Matches($@"\| {first.Name} +\| [^|]+\| Leader ", backText);
        Assert.Equal(first.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).Name);
        await cluster.WaitForStreamingAsync(second, TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Scheduled_switchover_is_listed_and_fires_at_its_time()
    {
        var (cluster, leader) = await CliRun.StartHealthyAsync(output);
        await using var _ = cluster;
        var candidate = cluster.Nodes.First(n => n != leader);
        var now = DateTimeOffset.UtcNow.AddSeconds(15);
        var at = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, now.Minute, now.Second, TimeSpan.Zero); // the CLI is given whole seconds

        var (code, text) = await CliRun.RunAsync(cluster, output, "switchover", "--candidate", candidate.Name,
            "--scheduled", at.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture), "--force");
        Assert.Equal(0, code);
        Assert.Contains("Switchover scheduled at", text, StringComparison.Ordinal);
        var (_, list) = await CliRun.RunAsync(cluster, output, "list");
        Assert.Contains("Switchover scheduled at:", list, StringComparison.Ordinal);

        // Nothing moves before its time: every answer that came back before it says the old leader still leads (under load
        // the CLI calls above may take most of the 15 s; an answer that arrives after the time proves nothing either way).
        var early = 0;
        while (DateTimeOffset.UtcNow < at)
        {
            var status = await leader.RestStatusAsync("/leader");
            if (DateTimeOffset.UtcNow < at)
            {
                Assert.Equal(200, status);
                early++;
            }

            await Task.Delay(250);
        }

        output.WriteLine($"{early} answers of {leader.Name} before the scheduled time, all 200");

        await Poll.UntilAsync(async () => await candidate.RestStatusAsync("/leader") == 200, TimeSpan.FromSeconds(60), $"{candidate.Name} leading after the scheduled time", cluster.DescribeAsync);
        Assert.True(DateTimeOffset.UtcNow >= at, "the switchover happened before its time");
    }

    [Fact]
    public async Task Failover_makes_the_candidate_leader_when_the_cluster_has_no_leader()
    {
        var (cluster, leader) = await CliRun.StartHealthyAsync(output);
        await using var _ = cluster;
        var candidate = cluster.Nodes.First(n => n != leader);

        // Paused, nobody takes over on their own once the leader is gone.
        var (paused, _) = await CliRun.RunAsync(cluster, output, "edit-config", "--set", "pause=true", "--force");
        Assert.Equal(0, paused);
        await Poll.UntilAsync(async () => (await candidate.PatroniAsync())?.TryGetProperty("pause", out var p) == true && p.GetBoolean(), TimeSpan.FromSeconds(30), "pause seen");
        await leader.KillAgentAsync();
        await leader.KillPostmasterAsync();
        await Poll.UntilAsync(async () => (await CliRun.RunAsync(cluster, output, "list")).Output.Contains("| Leader ", StringComparison.Ordinal) is false,
            TimeSpan.FromSeconds(30), "the leader key expired");

        var (code, text) = await CliRun.RunAsync(cluster, output, "failover", "--candidate", candidate.Name, "--force");
        Assert.Equal(0, code);
        Assert.Matches($@"\| {candidate.Name} +\| [^|]+\| Leader ", text);
        await Poll.UntilAsync(async () => await candidate.RestStatusAsync("/leader") == 200, TimeSpan.FromSeconds(30), $"{candidate.Name} accepting writes");
    }

    [Fact]
    public async Task Pause_stops_failover_and_resume_brings_it_back()
    {
        var (cluster, leader) = await CliRun.StartHealthyAsync(output);
        await using var _ = cluster;

        var (code, text) = await CliRun.RunAsync(cluster, output, "pause", "--wait");
        Assert.Equal(0, code);
        Assert.Contains("Success: cluster management is paused", text, StringComparison.Ordinal);
        var (_, list) = await CliRun.RunAsync(cluster, output, "list");
        Assert.Contains("Maintenance mode: on", list, StringComparison.Ordinal);
        var (again, againText) = await CliRun.RunAsync(cluster, output, "pause");
        Assert.Equal(1, again);
        Assert.Contains("is already paused", againText, StringComparison.Ordinal);

        await leader.KillPostmasterAsync();
        await Task.Delay(TimeSpan.FromSeconds(10));
        foreach (var n in cluster.Nodes.Where(n => n != leader))
        {
            Assert.NotEqual(200, await n.RestStatusAsync("/leader"));
            Assert.True(await n.QueryAsync<bool>("SELECT pg_is_in_recovery()"), $"{n.Name} was promoted while paused");
        }

        var (resumed, resumedText) = await CliRun.RunAsync(cluster, output, "resume", "--wait");
        Assert.Equal(0, resumed);
        Assert.Contains("resumed", resumedText, StringComparison.Ordinal);
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Restart_of_a_replica_restarts_its_PostgreSQL_and_keeps_the_leader()
    {
        var (cluster, leader) = await CliRun.StartHealthyAsync(output);
        await using var _ = cluster;
        var replica = cluster.Nodes.First(n => n != leader);
        var pidBefore = replica.PostmasterPid();

        var (code, text) = await CliRun.RunAsync(cluster, output, "restart", replica.Name, "--force");
        Assert.Equal(0, code);
        Assert.Contains($"Success: restart on member {replica.Name}", text, StringComparison.Ordinal);
        Assert.NotEqual(pidBefore, replica.PostmasterPid());
        await cluster.WaitForStreamingAsync(replica, TimeSpan.FromSeconds(60));
        Assert.Equal(leader.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(10))).Name);

        var (reload, reloadText) = await CliRun.RunAsync(cluster, output, "reload", "--force");
        Assert.Equal(0, reload);
        Assert.Equal(3, reloadText.Split('\n').Count(l => l.StartsWith("Reload request received", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Reinit_re_clones_a_replica_which_streams_again()
    {
        var (cluster, leader) = await CliRun.StartHealthyAsync(output);
        await using var _ = cluster;
        var replica = cluster.Nodes.First(n => n != leader);
        var marker = Path.Combine(replica.DataDir, "steward-reinit-marker");
        await File.WriteAllTextAsync(marker, "from before the reinit");
        await Chown.PostgresAsync(marker);

        var (code, text) = await CliRun.RunAsync(cluster, output, "reinit", replica.Name, "--force");
        Assert.Equal(0, code);
        Assert.Contains($"Success: reinitialize for member {replica.Name}", text, StringComparison.Ordinal);
        Assert.False(File.Exists(marker), "the data directory was not replaced");
        await cluster.WaitForStreamingAsync(replica, TimeSpan.FromSeconds(60));
    }
}
