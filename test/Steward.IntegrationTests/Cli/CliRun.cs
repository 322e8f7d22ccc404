using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cli;

/// <summary>Runs <c>steward VERB -c node1.yml ARGS</c> against a test cluster and logs what it printed.</summary>
internal static class CliRun
{
    public static async Task<(int ExitCode, string Output)> RunAsync(TestCluster cluster, ITestOutputHelper output, string verb, params string[] args) =>
        await RunWithInputAsync(cluster, output, null, verb, args);

    public static async Task<(int ExitCode, string Output)> RunWithInputAsync(TestCluster cluster, ITestOutputHelper output, string? stdin, string verb, params string[] args)
    {
        var (code, text) = await StewardProcess.RunAsync([verb, "-c", cluster.Nodes[0].ConfigPath, .. args], TimeSpan.FromSeconds(180), stdin);
        output.WriteLine($"$ steward {verb} {string.Join(' ', args)}  → exit {code}\n{text}");
        return (code, text);
    }

    /// <summary>A cluster with a leader and every other member streaming.</summary>
    public static Task<(TestCluster Cluster, TestNode Leader)> StartHealthyAsync(ITestOutputHelper output, int nodes = 3, ClusterOptions? options = null) =>
        TestCluster.StartHealthyAsync(output, nodes, options);
}
