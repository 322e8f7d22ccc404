using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Agent;

/// <summary>
/// Issue 16: a second `steward node` started with a running member's name must refuse to start (as Patroni does) instead
/// of taking that member's leader key for its own previous session's.
/// </summary>
public sealed class DuplicateNameTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_second_agent_with_a_running_members_name_refuses_to_start_and_changes_nothing()
    {
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 2);
        await using var stopCluster = cluster;
        var replica = cluster.Nodes.Single(n => n != leader);

        // The replica's configuration, moved to its own directory and ports, under the leader's name.
        var dir = cluster.Dir.Sub("duplicate");
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        Chown.Postgres(dir);
        var yaml = (await File.ReadAllTextAsync(Path.Combine(replica.Dir, "node.yml")))
            .Replace($"name: {replica.Name}", $"name: {leader.Name}", StringComparison.Ordinal)
            .Replace($"127.0.0.1:{replica.RestPort}", $"127.0.0.1:{FreePorts.Next()}", StringComparison.Ordinal)
            .Replace($"127.0.0.1:{replica.PgPort}", $"127.0.0.1:{FreePorts.Next()}", StringComparison.Ordinal)
            .Replace(replica.Dir, dir, StringComparison.Ordinal);
        var config = Path.Combine(dir, "node.yml");
        await File.WriteAllTextAsync(config, yaml);

        var (exit, text) = await StewardProcess.RunAsync(["node", "-c", config], TimeSpan.FromSeconds(60));
        output.WriteLine(text);
        Assert.Equal(3, exit);
        Assert.Contains($"a member named '{leader.Name}' is already running", text, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", text, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir, "data")), "the duplicate created a data directory");

        // The real leader kept its key and its primary.
        Assert.Equal(leader.Name, await cluster.LeaderKeyAsync());
        Assert.Equal(200, await leader.RestStatusAsync("/primary"));
    }
}
