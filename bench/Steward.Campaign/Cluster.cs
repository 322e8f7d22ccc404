using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;

namespace Steward.Campaign;

internal sealed record CampaignSettings
{
    public int Ttl { get; init; } = 10;
    public int LoopWait { get; init; } = 1;
    public int RetryTimeout { get; init; } = 3;
    public bool Synchronous { get; init; }
    public bool RouterKeepsSessions { get; init; }
    public string BinDir { get; init; } = "/usr/lib/postgresql/15/bin";
}

/// <summary>One host: its etcd member, its agent (which runs PostgreSQL as postgres), their logs and data.</summary>
internal sealed class Host
{
    public Host(string name, string address, string dir)
    {
        Name = name;
        Address = address;
        Dir = dir;
    }

    public string Name { get; }
    public string Address { get; }
    public string Dir { get; }
    public Child? Etcd { get; set; }
    public Child? Agent { get; set; }
    public string DataDir => Path.Combine(Dir, "data");
    public string ConfigPath => Path.Combine(Dir, "node.yml");
    public string AgentLog => Path.Combine(Dir, "agent.log");
    public string EtcdLog => Path.Combine(Dir, "etcd.log");
    public string PostgresLog => Path.Combine(DataDir, "log", "postgresql.log");

    /// <summary>The postmaster's PID from postmaster.pid, if it is alive.</summary>
    public int? PostmasterPid()
    {
        try
        {
            var first = File.ReadLines(Path.Combine(DataDir, "postmaster.pid")).FirstOrDefault();
            return int.TryParse(first, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) && Os.IsAlive(pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    public override string ToString() => Name;
}

/// <summary>The three hosts, the router, and what the campaign asks of them (etcd, REST, PostgreSQL).</summary>
internal sealed class Cluster : IDisposable
{
    public const string Scope = "campaign";
    public const string Superuser = "postgres";
    public const string SuperPassword = "campaign-super";
    public const int PgPort = 5432;
    public const int RestPort = 8008;
    public const int EtcdPort = 2379;
    public const int WritePort = 5000;

    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(2) };
    private readonly string _pidFile;
    private readonly string _steward;
    private readonly CampaignSettings _settings;
    private Child? _router;
    private int _etcdPreferred;

    public Cluster(Topology net, CampaignSettings settings, string dir)
    {
        Net = net;
        _settings = settings;
        Dir = dir;
        _pidFile = Path.Combine(dir, "pids");
        _steward = Path.Combine(AppContext.BaseDirectory, "steward.dll");
        Hosts = [.. new[] { "n1", "n2", "n3" }.Select(n => new Host(n, net.AddressOf(n), Path.Combine(dir, n)))];
    }

    public Topology Net { get; }
    public string Dir { get; }
    public IReadOnlyList<Host> Hosts { get; }
    public string RouterLog => Path.Combine(Dir, "router.log");
    public Host this[string name] => Hosts.Single(h => h.Name == name);

    public string EtcdHosts => string.Join(',', Hosts.Select(h => $"{h.Address}:{EtcdPort}"));

    public string WriteConnectionString =>
        $"Host={Net.RouterAddress};Port={WritePort};Username={Superuser};Password={SuperPassword};Database=postgres;Timeout=5;Command Timeout=5;Pooling=false";

    public string ConnectionStringOf(Host h) =>
        $"Host={h.Address};Port={PgPort};Username={Superuser};Password={SuperPassword};Database=postgres;Timeout=3;Command Timeout=10;Pooling=false";

    public void WriteConfigs()
    {
        if (!File.Exists(_steward))
        {
            throw new InvalidOperationException($"{_steward} not found: build bench/Steward.Campaign");
        }

        foreach (var h in Hosts)
        {
            Directory.CreateDirectory(h.Dir);
            File.SetUnixFileMode(h.Dir, (UnixFileMode)0b111_101_101);
            Os.Run("chown", "postgres:postgres", h.Dir);
            var subnet = $"10.231.{Net.Subnet}.0/24";

            // What a user writes for three machines: real addresses, the three etcd members, nothing on loopback.
            File.WriteAllText(h.ConfigPath, $$"""
                scope: {{Scope}}
                namespace: /service/
                name: {{h.Name}}
                restapi:
                  listen: {{h.Address}}:{{RestPort}}
                  connect_address: {{h.Address}}:{{RestPort}}
                etcd3:
                  hosts: {{EtcdHosts}}
                bootstrap:
                  dcs:
                    ttl: {{_settings.Ttl}}
                    loop_wait: {{_settings.LoopWait}}
                    retry_timeout: {{_settings.RetryTimeout}}
                    maximum_lag_on_failover: 1048576
                    synchronous_mode: {{(_settings.Synchronous ? "true" : "false")}}
                    postgresql:
                      use_pg_rewind: true
                      use_slots: true
                      parameters:
                        max_connections: 60
                        wal_keep_size: 256MB
                        wal_log_hints: "on"
                  initdb:
                    - encoding: UTF8
                    - locale: C
                    - data-checksums
                postgresql:
                  listen: {{h.Address}}:{{PgPort}}
                  connect_address: {{h.Address}}:{{PgPort}}
                  data_dir: {{h.DataDir}}
                  bin_dir: {{_settings.BinDir}}
                  pgpass: {{h.Dir}}/pgpass
                  authentication:
                    superuser: {username: {{Superuser}}, password: {{SuperPassword}}}
                    replication: {username: replicator, password: rep-pass}
                    rewind: {username: rewind_user, password: rewind-pass}
                  pg_hba:
                    - local all all trust
                    - host replication replicator {{subnet}} scram-sha-256
                    - host all all {{subnet}} scram-sha-256
                  parameters:
                    shared_buffers: 32MB
                    unix_socket_directories: {{h.Dir}}
                  os_user: postgres
                tags:
                  nofailover: false
                  noloadbalance: false
                """);
        }

        File.WriteAllText(Path.Combine(Dir, "router.yml"), $$"""
            scope: {{Scope}}
            namespace: /service/
            etcd3:
              hosts: {{EtcdHosts}}
            write:
              listen: {{Net.RouterAddress}}:{{WritePort}}
              hold_timeout: 5
              close_sessions_on_leader_change: {{(_settings.RouterKeepsSessions ? "false" : "true")}}
            read:
              listen: {{Net.RouterAddress}}:5001
              max_lag: 16MB
            stats:
              listen: {{Net.RouterAddress}}:7000
            """);
    }

    public void StartEtcd(Host h)
    {
        var peers = string.Join(',', Hosts.Select(x => $"e{x.Name}=http://{x.Address}:2380"));
        h.Etcd = Child.Start($"etcd {h.Name}", Net.Netns(h.Name), h.EtcdLog, _pidFile,
        [
            "etcd", "--name", $"e{h.Name}", "--data-dir", Path.Combine(h.Dir, "etcd"),
            "--listen-client-urls", $"http://{h.Address}:{EtcdPort}", "--advertise-client-urls", $"http://{h.Address}:{EtcdPort}",
            "--listen-peer-urls", $"http://{h.Address}:2380", "--initial-advertise-peer-urls", $"http://{h.Address}:2380",
            "--initial-cluster", peers, "--initial-cluster-state", "new", "--initial-cluster-token", $"stc{Net.RunId}",
            "--heartbeat-interval", "200", "--election-timeout", "2000", "--logger=zap", "--log-outputs=stderr",
        ]);
    }

    public void StartAgent(Host h) =>
        h.Agent = Child.Start($"agent {h.Name}", Net.Netns(h.Name), h.AgentLog, _pidFile, [Os.Dotnet(), _steward, "node", "-c", h.ConfigPath]);

    public void StartRouter() =>
        _router = Child.Start("router", Net.Netns(Topology.RouterHost), RouterLog, _pidFile, [Os.Dotnet(), _steward, "router", "-c", Path.Combine(Dir, "router.yml")]);

    public bool RouterRunning => _router is { HasExited: false };

    /// <summary>Every process the campaign started, SIGKILLed by PID (the namespaces' leftovers go in <see cref="Topology.Destroy"/>).</summary>
    public void KillAll()
    {
        _router?.Kill();
        foreach (var h in Hosts)
        {
            h.Agent?.Kill();
            h.Etcd?.Kill();
        }
    }

    /// <summary>Who the leader key names (null: none), read linearizably from any etcd member; throws when no member answers.</summary>
    public async Task<string?> LeaderKeyAsync(CancellationToken ct = default)
    {
        Exception? last = null;
        for (var i = 0; i < Hosts.Count; i++)
        {
            var h = Hosts[(_etcdPreferred + i) % Hosts.Count];
            try
            {
                var key = Convert.ToBase64String(Encoding.UTF8.GetBytes($"/service/{Scope}/leader"));
                using var resp = await _http.PostAsJsonAsync($"http://{h.Address}:{EtcdPort}/v3/kv/range", new { key }, ct);
                resp.EnsureSuccessStatusCode();
                var json = await resp.Content.ReadFromJsonAsync<JsonElement>(ct);
                _etcdPreferred = (_etcdPreferred + i) % Hosts.Count;
                return json.TryGetProperty("kvs", out var kvs) && kvs.GetArrayLength() > 0
                    ? Encoding.UTF8.GetString(Convert.FromBase64String(kvs[0].GetProperty("value").GetString()!))
                    : null;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or InvalidOperationException)
            {
                last = e;
            }
        }

        throw new InvalidOperationException($"no etcd member answered: {last?.Message}");
    }

    public async Task<bool> EtcdHealthyAsync(Host h)
    {
        try
        {
            var json = await _http.GetFromJsonAsync<JsonElement>($"http://{h.Address}:{EtcdPort}/health");
            return json.TryGetProperty("health", out var v) && v.GetString() == "true";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
        {
            return false;
        }
    }

    public async Task<int?> RestStatusAsync(Host h, string path)
    {
        try
        {
            using var resp = await _http.GetAsync($"http://{h.Address}:{RestPort}{path}");
            return (int)resp.StatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    public async Task<JsonElement?> PatroniAsync(Host h)
    {
        try
        {
            return await _http.GetFromJsonAsync<JsonElement>($"http://{h.Address}:{RestPort}/patroni");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
        {
            return null;
        }
    }

    /// <summary>A planned switchover through the leader's REST API (waits up to 60 s for it to complete).</summary>
    public async Task<string> SwitchoverAsync(Host leader)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        try
        {
            using var resp = await http.PostAsJsonAsync($"http://{leader.Address}:{RestPort}/switchover", new { leader = leader.Name });
            return $"{(int)resp.StatusCode} {(await resp.Content.ReadAsStringAsync()).Trim()}";
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return $"no answer: {e.Message}";
        }
    }

    /// <summary>
    /// Healthy: every etcd member healthy, the leader key's holder answers /leader 200, and each other node answers
    /// /replica 200 and streams. Returns the nodes that are not (empty when healthy).
    /// </summary>
    public async Task<(string? Leader, List<string> Unhealthy)> HealthAsync()
    {
        var unhealthy = new List<string>();
        string? leader;
        try
        {
            leader = await LeaderKeyAsync();
        }
        catch (InvalidOperationException)
        {
            leader = null;
        }

        foreach (var h in Hosts)
        {
            if (!await EtcdHealthyAsync(h))
            {
                unhealthy.Add($"etcd {h.Name}");
            }

            if (h.Name == leader)
            {
                if (await RestStatusAsync(h, "/leader") != 200)
                {
                    unhealthy.Add($"{h.Name} (leader key, not /leader 200)");
                }

                continue;
            }

            var status = await PatroniAsync(h);
            var streaming = status is { } s && s.TryGetProperty("replication_state", out var rs) && rs.GetString() == "streaming";
            if (!streaming || await RestStatusAsync(h, "/replica") != 200)
            {
                unhealthy.Add(h.Name + (leader is null ? " (no leader)" : ""));
            }
        }

        return (leader, unhealthy);
    }

    public async Task<T?> QueryAsync<T>(Host h, string sql)
    {
        await using var conn = new NpgsqlConnection(ConnectionStringOf(h));
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        var value = await cmd.ExecuteScalarAsync();
        return value is DBNull or null ? default : (T)value;
    }

    public void Dispose() => _http.Dispose();
}
