using System.Diagnostics;
using Steward.IntegrationTests.Infrastructure;
using Steward.IntegrationTests.Cli;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>Issue 14: what a Patroni user's scripts, load balancers and configs rely on, on a real cluster.</summary>
[Collection(ClusterCollection.Name)]
public sealed class PatroniCompatibilityTests(ITestOutputHelper output)
{
    private static readonly string[] ReplicaChecks = ["/replica", "/health", "/read-only", "/readiness", "/async", "/replica?lag=1MB"];

    /// <summary>
    /// Story (issue 14, item 4): right after <c>pg_ctl stop -m immediate</c> on a replica in pause mode, <c>/replica</c>
    /// still answered 200 <c>running/streaming</c> from the last cycle's snapshot, so a load balancer kept sending reads
    /// to a server that was gone. Health answers must reflect PostgreSQL now (DESIGN safety rule 8), as Patroni's do.
    /// </summary>
    [Fact]
    public async Task Health_endpoints_answer_503_at_once_when_a_paused_replicas_postgres_is_stopped()
    {
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 2);
        await using var _ = cluster;
        var replica = cluster.Nodes.Single(n => n != leader);
        foreach (var path in ReplicaChecks)
        {
            Assert.Equal(200, await replica.RestStatusAsync(path));
        }

        var (code, text) = await CliRun.RunAsync(cluster, output, "pause", "--wait");
        Assert.True(code == 0, text);
        await Poll.UntilAsync(async () => (await replica.PatroniAsync())?.TryGetProperty("pause", out var p) == true && p.GetBoolean(),
            TimeSpan.FromSeconds(30), "the replica sees pause");

        await PgCtlStopImmediateAsync(replica.DataDir);
        var clock = Stopwatch.StartNew();
        foreach (var path in ReplicaChecks)
        {
            Assert.Equal(503, await replica.RestStatusAsync(path));
        }

        var elapsed = clock.Elapsed;
        var status = (await replica.PatroniAsync())!.Value;
        Assert.NotEqual("running", status.GetProperty("state").GetString());
        Assert.False(status.TryGetProperty("replication_state", out var _), "no longer streaming");
        output.WriteLine($"{ReplicaChecks.Length} health checks answered 503 within {elapsed.TotalMilliseconds:0} ms of pg_ctl stop; /patroni state {status.GetProperty("state")}");
        Assert.Equal(200, await leader.RestStatusAsync("/leader"));

        // Paused: the agent does not start it again, and the answers stay 503 after its next cycles too.
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Null(replica.PostmasterPid());
        Assert.Equal(503, await replica.RestStatusAsync("/replica"));
    }

    /// <summary>pg_ctl stop -m immediate as the postgres OS user, as an operator would run it.</summary>
    private static async Task PgCtlStopImmediateAsync(string dataDir)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--reuid=postgres", "--regid=postgres", "--init-groups", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "stop", "-m", "immediate", "-D", dataDir })
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"pg_ctl stop -m immediate failed: {await err}");
    }
}
