using System.Diagnostics;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// `steward node` refuses bad input with a message that names the problem, and changes nothing on disk or in etcd.
/// </summary>
[Collection(ClusterCollectionB.Name)]
public sealed class BadInputTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Exit = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Malformed_config_is_refused_with_the_key_and_line_and_nothing_is_created()
    {
        using var dir = new TempDir("badcfg");
        var config = dir.Sub("node.yml");
        await File.WriteAllTextAsync(config, $$"""
            scope: demo
            name: node1
            restapi:
              listen: 127.0.0.1:notaport
            etcd3:
              hosts: 127.0.0.1:2379
            postgresql:
              listen: 127.0.0.1:5432
              data_dir: {{dir.Sub("data")}}
              authentication:
                superuser: {username: postgres, password: x}
                replication: {username: replicator, password: y}
            """);
        var (code, text) = await StewardProcess.RunAsync(["node", "-c", config], Exit);
        output.WriteLine(text);
        Assert.NotEqual(0, code);
        Assert.Contains("restapi.listen", text, StringComparison.Ordinal);
        Assert.Contains(":4", text, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.Sub("data")));
    }

    [Fact]
    public async Task Etcd_unreachable_at_start_up_is_a_clear_error_and_nothing_is_created()
    {
        using var dir = new TempDir("noetcd");
        var config = NodeConfig(dir, etcdEndpoint: $"127.0.0.1:{FreePorts.Next()}");
        var clock = Stopwatch.StartNew();
        var (code, text) = await StewardProcess.RunAsync(["node", "-c", config], Exit);
        output.WriteLine(text);
        Assert.NotEqual(0, code);
        Assert.Contains("cannot reach etcd", text, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", text, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.Sub("data")));
        output.WriteLine($"gave up after {clock.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task Data_dir_owned_by_another_user_is_refused_and_left_alone()
    {
        await using var etcd = await EtcdServer.StartAsync();
        using var dir = new TempDir("owner");
        var data = dir.Sub("data");
        Directory.CreateDirectory(data); // owned by root (the test runs as root); PostgreSQL would run as postgres
        await File.WriteAllTextAsync(Path.Combine(data, "keep-me"), "precious");
        var config = NodeConfig(dir, etcd.Endpoint.Replace("http://", "", StringComparison.Ordinal));
        var (code, text) = await StewardProcess.RunAsync(["node", "-c", config], Exit);
        output.WriteLine(text);
        Assert.NotEqual(0, code);
        Assert.Contains("owned by", text, StringComparison.Ordinal);
        Assert.Equal(["keep-me"], Directory.GetFiles(data).Select(Path.GetFileName));
        Assert.Equal("precious", await File.ReadAllTextAsync(Path.Combine(data, "keep-me")));
    }

    [Fact]
    public async Task Data_dir_of_a_different_cluster_is_refused_with_system_id_mismatch_and_left_alone()
    {
        await using var cluster = await TestCluster.StartAsync(1, output);
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(120));

        // A second PostgreSQL, initialized on its own: another system identifier.
        using var dir = new TempDir("foreign");
        var data = dir.Sub("data");
        Directory.CreateDirectory(data);
        await Chown.PostgresAsync(data);
        await RunAsPostgresAsync("/usr/lib/postgresql/15/bin/initdb", "-D", data, "-U", "postgres", "--no-sync");
        var before = Snapshot(data);

        var config = NodeConfig(dir, cluster.Etcd.Endpoint.Replace("http://", "", StringComparison.Ordinal), scope: cluster.Scope, name: "intruder");
        var (code, text) = await StewardProcess.RunAsync(["node", "-c", config], Exit);
        output.WriteLine(text);
        Assert.NotEqual(0, code);
        Assert.Contains("system ID mismatch", text, StringComparison.Ordinal);
        Assert.Equal(before, Snapshot(data));
        Assert.False(File.Exists(Path.Combine(data, "postmaster.pid")));
    }

    private static string NodeConfig(TempDir dir, string etcdEndpoint, string scope = "badinput", string name = "node1")
    {
        var path = dir.Sub("node.yml");
        File.WriteAllText(path, $$"""
            scope: {{scope}}
            name: {{name}}
            restapi:
              listen: 127.0.0.1:{{FreePorts.Next()}}
            etcd3:
              hosts: {{etcdEndpoint}}
            bootstrap:
              dcs: {ttl: 6, loop_wait: 1, retry_timeout: 2}
            postgresql:
              listen: 127.0.0.1:{{FreePorts.Next()}}
              data_dir: {{dir.Sub("data")}}
              pgpass: {{dir.Sub("pgpass")}}
              authentication:
                superuser: {username: postgres, password: x}
                replication: {username: replicator, password: y}
            """);
        return path;
    }

    /// <summary>Names, sizes and contents' hashes of every file under a directory.</summary>
    private static string Snapshot(string dir) => string.Join('\n', Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
        .Order(StringComparer.Ordinal)
        .Select(f => $"{Path.GetRelativePath(dir, f)} {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))}"));

    private static async Task RunAsPostgresAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--reuid=postgres", "--regid=postgres", "--init-groups", "--" }.Concat(args))
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"{string.Join(' ', args)} failed: {await err}");
    }
}
