using System.Diagnostics;
using Npgsql;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>A `steward router` process in front of a <see cref="TestCluster"/>, on free ports; stopped by PID.</summary>
internal sealed class TestRouter : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ITestOutputHelper _output;
    private readonly string _log;

    private TestRouter(Process process, string log, int write, int read, int stats, ITestOutputHelper output)
    {
        _process = process;
        _log = log;
        WritePort = write;
        ReadPort = read;
        StatsPort = stats;
        _output = output;
    }

    public int WritePort { get; }
    public int ReadPort { get; }
    public int StatsPort { get; }
    public bool IsRunning => !_process.HasExited;

    /// <summary>kill -9 of the router, waiting until it is gone (it gets no chance to clean up).</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            Signals.Send(_process.Id, Signals.SIGKILL);
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>The router's log so far.</summary>
    public string Log()
    {
        using var fs = new FileStream(_log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(fs);
        return reader.ReadToEnd();
    }

    /// <summary>GET /stats.json, parsed.</summary>
    public async Task<System.Text.Json.JsonElement> StatsAsync()
    {
        using var http = new HttpClient();
        return System.Text.Json.JsonDocument.Parse(await http.GetStringAsync($"http://127.0.0.1:{StatsPort}/stats.json")).RootElement.Clone();
    }

    /// <summary>Starts the router; with <paramref name="dashboard"/>, its dashboard accepts those credentials for actions.</summary>
    public static Task<TestRouter> StartAsync(TestCluster cluster, ITestOutputHelper output, int holdSeconds = 5,
        (string Username, string Password)? dashboard = null, string? syncStandbys = null) =>
        StartAsync(cluster.Etcd.Endpoint, cluster.Scope, cluster.Dir, output, holdSeconds, dashboard, syncStandbys: syncStandbys);

    /// <summary>Starts a router on <paramref name="scope"/> of the etcd at <paramref name="etcdEndpoint"/>; its config and log go to <paramref name="dir"/>.</summary>
    public static async Task<TestRouter> StartAsync(string etcdEndpoint, string scope, TempDir dir, ITestOutputHelper output, int holdSeconds = 5,
        (string Username, string Password)? dashboard = null, bool closeSessionsOnLeaderChange = true, IReadOnlyDictionary<string, string>? environment = null,
        string? syncStandbys = null, string extraYaml = "", string file = "router", string? etcd3Yaml = null)
    {
        int write = FreePorts.Next(), read = FreePorts.Next(), stats = FreePorts.Next();
        if (syncStandbys is not null && file == "router")
        {
            file = $"router-{syncStandbys}";
        }

        var path = dir.Sub(file + ".yml");
        var dashboardYaml = dashboard is { } d ? $"dashboard:\n  username: {d.Username}\n  password: {d.Password}\n" : "";
        await File.WriteAllTextAsync(path, $$"""
            scope: {{scope}}
            namespace: /service/
            {{etcd3Yaml ?? "etcd3:\n  hosts: " + etcdEndpoint.Replace("http://", "", StringComparison.Ordinal)}}
            write:
              listen: 127.0.0.1:{{write}}
              hold_timeout: {{holdSeconds}}
              close_sessions_on_leader_change: {{(closeSessionsOnLeaderChange ? "true" : "false")}}
            read:
              listen: 127.0.0.1:{{read}}
              max_lag: 16MB
            {{(syncStandbys is null ? "" : "  sync_standbys: " + syncStandbys)}}
            stats:
              listen: 127.0.0.1:{{stats}}

            """ + dashboardYaml + extraYaml);
        var log = dir.Sub(file + ".log");
        var process = StewardProcess.Start(["router", "-c", path], log, environment);
        var router = new TestRouter(process, log, write, read, stats, output);
        using var http = new HttpClient();
        await Poll.UntilAsync(async () =>
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the router exited: {await File.ReadAllTextAsync(log)}");
            }

            try
            {
                return (await http.GetAsync($"http://127.0.0.1:{stats}/stats.json")).IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(60), "the router's stats port");
        return router;
    }

    public string ConnectionString(int port) =>
        $"Host=127.0.0.1;Port={port};Username={TestCluster.Superuser};Password={TestCluster.SuperPassword};Database=postgres;Timeout=30;Command Timeout=10;Pooling=false";

    public async Task<NpgsqlConnection> OpenAsync(int port)
    {
        var c = new NpgsqlConnection(ConnectionString(port));
        await c.OpenAsync();
        return c;
    }

    public async Task<T> QueryAsync<T>(int port, string sql)
    {
        await using var c = await OpenAsync(port);
        await using var cmd = new NpgsqlCommand(sql, c);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Signals.Send(_process.Id, Signals.SIGTERM);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill();
            }
        }

        try
        {
            _output.WriteLine("--- router log\n" + await File.ReadAllTextAsync(_log));
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
    }
}
