using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using dotnet_etcd;
using Npgsql;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// A real Steward cluster on loopback: one etcd, N agents (<c>steward node</c> processes, each driving a real
/// PostgreSQL 15), every port free and chosen for this test. Everything it starts it stops by PID.
/// </summary>
internal sealed class TestCluster : IAsyncDisposable
{
    public const string Superuser = "postgres";
    public const string SuperPassword = "super-secret";

    private readonly ITestOutputHelper? _output;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(3) };
    private readonly string _restScheme = "http";
    private EtcdClient? _etcd;
    private long _marker;

    private TestCluster(EtcdServer etcd, TempDir dir, string scope, ITestOutputHelper? output, TestCerts? tls = null)
    {
        if (tls is not null)
        {
            _http.Dispose();
            _http = tls.HttpClient();
            _restScheme = "https";
        }

        Etcd = etcd;
        Dir = dir;
        Scope = scope;
        _output = output;
    }

    public EtcdServer Etcd { get; }
    public TempDir Dir { get; }
    public string Scope { get; }
    public List<TestNode> Nodes { get; } = [];

    public static async Task<TestCluster> StartAsync(int nodes, ITestOutputHelper? output, ClusterOptions? options = null)
    {
        options ??= new ClusterOptions();
        var etcd = await EtcdServer.StartAsync(tls: options.Tls).ConfigureAwait(false);
        if (options.EtcdRootPassword is { } rootPassword)
        {
            await etcd.EnableAuthAsync(rootPassword).ConfigureAwait(false);
        }

        var dir = new TempDir("cluster");
        var cluster = new TestCluster(etcd, dir, "t" + Guid.NewGuid().ToString("N")[..8], output, options.Tls);
        for (var i = 1; i <= nodes; i++)
        {
            cluster.Nodes.Add(cluster.CreateNode($"node{i}", options));
        }

        if (options.StartAll)
        {
            foreach (var n in cluster.Nodes)
            {
                n.Start();
            }
        }

        return cluster;
    }

    /// <summary>Starts a cluster and waits for a leader and every replica streaming.</summary>
    public static async Task<(TestCluster Cluster, TestNode Leader)> StartHealthyAsync(ITestOutputHelper? output, int nodes = 3, ClusterOptions? options = null)
    {
        var cluster = await StartAsync(nodes, output, options).ConfigureAwait(false);
        try
        {
            var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(120)).ConfigureAwait(false);
            foreach (var r in cluster.Nodes.Where(n => n != leader))
            {
                await cluster.WaitForStreamingAsync(r, TimeSpan.FromSeconds(120)).ConfigureAwait(false);
            }

            return (cluster, leader);
        }
        catch
        {
            // The caller never gets the cluster to dispose: stop what we started before reporting the failure.
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private TestNode CreateNode(string name, ClusterOptions options)
    {
        var nodeDir = Dir.Sub(name);
        Directory.CreateDirectory(nodeDir);
        File.SetUnixFileMode(nodeDir, (UnixFileMode)0b111_101_101);
        Chown.Postgres(nodeDir); // PostgreSQL (as postgres) puts its socket here
        var pgPort = FreePorts.Next();
        var restPort = FreePorts.Next();
        var yaml = options.NodeConfig is { } custom ? custom(new NodeSlot(Scope, name, nodeDir, pgPort, restPort, Etcd.HostPort)) : $$"""
            scope: {{Scope}}
            namespace: /service/
            name: {{name}}
            restapi:
              listen: 127.0.0.1:{{restPort}}
              connect_address: 127.0.0.1:{{restPort}}
            {{SecureRestYaml(options)}}
            {{Etcd3Yaml()}}
            bootstrap:
              dcs:
                ttl: {{options.Ttl}}
                loop_wait: {{options.LoopWait}}
                retry_timeout: {{options.RetryTimeout}}
                maximum_lag_on_failover: 1048576
                synchronous_mode: {{(options.SynchronousModeQuorum ? "quorum" : options.SynchronousMode ? "true" : "false")}}
                synchronous_node_count: {{options.SynchronousNodeCount}}
                synchronous_mode_strict: {{(options.SynchronousModeStrict ? "true" : "false")}}
                failsafe_mode: {{(options.FailsafeMode ? "true" : "false")}}{{(options.PrimaryStartTimeout is { } pst ? $"\n    primary_start_timeout: {pst}" : "")}}{{string.Concat(options.DcsYaml.Select(l => $"\n    {l}"))}}
                postgresql:
                  use_pg_rewind: true
                  use_slots: true
                  parameters:
                    max_connections: 50
                    wal_keep_size: {{options.WalKeepSize}}{{string.Concat(options.DcsParameters.Select(p => $"\n        {p.Key}: '{p.Value}'"))}}
              initdb:
                - encoding: UTF8
                - locale: C
            postgresql:
              listen: 127.0.0.1:{{pgPort}}
              connect_address: 127.0.0.1:{{pgPort}}
              data_dir: {{nodeDir}}/data
              bin_dir: {{options.BinDir}}
              pgpass: {{nodeDir}}/pgpass
              authentication:
                superuser: {username: {{Superuser}}, password: {{SuperPassword}}{{options.Ssl?.Superuser}}}
                replication: {username: replicator, password: rep-pass{{options.Ssl?.Replication}}}
                rewind: {username: rewind_user, password: rewind-pass{{options.Ssl?.Rewind}}}
              pg_hba:
            {{string.Concat((options.Ssl?.PgHba ?? ["local all all trust", "host replication replicator 127.0.0.1/32 scram-sha-256", "host all all 127.0.0.1/32 scram-sha-256"]).Select(l => $"    - {l}\n"))}}
              parameters:
                shared_buffers: 32MB
                unix_socket_directories: {{nodeDir}}{{options.Ssl?.Parameters}}{{string.Concat(options.NodeParameters.GetValueOrDefault(name, new Dictionary<string, string>()).Select(p => $"\n    {p.Key}: '{p.Value}'"))}}
            tags:
              nofailover: {{(options.NoFailover.Contains(name) ? "true" : "false")}}
              noloadbalance: false{{string.Concat(options.NodeTags.GetValueOrDefault(name, new Dictionary<string, string>()).Select(t => $"\n  {t.Key}: {t.Value}"))}}
            """;
        var configPath = Path.Combine(nodeDir, "node.yml");
        File.WriteAllText(configPath, yaml);
        return new TestNode(name, nodeDir, configPath, pgPort, restPort, _http, _output) { RestScheme = _restScheme, Binary = options.Binary };
    }

    public TestNode this[string name] => Nodes.Single(n => n.Name == name);

    /// <summary>The REST user and password of a cluster started with <see cref="ClusterOptions.Tls"/>.</summary>
    public const string RestUser = "admin";
    public const string RestPassword = "rest-secret";

    /// <summary>
    /// With <see cref="ClusterOptions.Tls"/>: the REST API over HTTPS only, client certificates required, Basic auth for
    /// the unsafe methods, and Patroni's <c>ctl</c> section for this node's clients (continues <c>restapi:</c>).
    /// </summary>
    private static string SecureRestYaml(ClusterOptions options) => options.Tls is not { } tls ? "" : string.Join('\n',
        $"  certfile: {tls.ServerCert}",
        $"  keyfile: {tls.ServerKey}",
        $"  cafile: {tls.CaFile}",
        "  verify_client: required",
        $"  authentication: {{username: {RestUser}, password: {RestPassword}}}",
        "ctl:",
        $"  cacert: {tls.CaFile}",
        $"  certfile: {tls.ClientCert}",
        $"  keyfile: {tls.ClientKey}");

    /// <summary>The <c>etcd3:</c> section for this cluster's etcd (with TLS and auth when it has them).</summary>
    public string Etcd3Yaml(string? caFile = null)
    {
        var lines = new List<string> { "etcd3:", $"  hosts: {Etcd.HostPort}" };
        if (Etcd.Tls is { } tls)
        {
            lines.AddRange(["  protocol: https", $"  cacert: {caFile ?? tls.CaFile}", $"  cert: {tls.ClientCert}", $"  key: {tls.ClientKey}"]);
        }

        if (Etcd.RootPassword is { } password)
        {
            lines.AddRange(["  username: root", $"  password: {password}"]);
        }

        return string.Join('\n', lines);
    }

    /// <summary>Who the <c>leader</c> key in etcd names right now (null: there is no leader key), read straight from etcd.</summary>
    public async Task<string?> LeaderKeyAsync(CancellationToken ct = default)
    {
        if (Etcd.Tls is not null || Etcd.RootPassword is not null)
        {
            return await Etcd.GetValueAsync($"/service/{Scope}/leader", ct).ConfigureAwait(false);
        }

        _etcd ??= new EtcdClient(Etcd.Endpoint);
        var range = await _etcd.GetAsync($"/service/{Scope}/leader", deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: ct).ConfigureAwait(false);
        return range.Kvs.Count == 0 ? null : range.Kvs[0].Value.ToStringUtf8();
    }

    /// <summary>Puts <paramref name="value"/> under the cluster's <paramref name="key"/> straight into etcd, as Patroni or etcdctl would.</summary>
    public async Task PutRawAsync(string key, string value)
    {
        _etcd ??= new EtcdClient(Etcd.Endpoint);
        await _etcd.PutAsync($"/service/{Scope}/{key}", value, deadline: DateTime.UtcNow.AddSeconds(2)).ConfigureAwait(false);
    }

    /// <summary>The cluster's <paramref name="key"/> straight from etcd (null: no such key).</summary>
    public async Task<string?> GetRawAsync(string key)
    {
        _etcd ??= new EtcdClient(Etcd.Endpoint);
        var range = await _etcd.GetAsync($"/service/{Scope}/{key}", deadline: DateTime.UtcNow.AddSeconds(2)).ConfigureAwait(false);
        return range.Kvs.Count == 0 ? null : range.Kvs[0].Value.ToStringUtf8();
    }

    /// <summary>The <c>sync</c> key straight from etcd: its leader and synchronous standbys (null: no key).</summary>
    public async Task<(string? Leader, IReadOnlyList<string> Standbys, int? Quorum)?> SyncKeyAsync(CancellationToken ct = default)
    {
        _etcd ??= new EtcdClient(Etcd.Endpoint);
        var range = await _etcd.GetAsync($"/service/{Scope}/sync", deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: ct).ConfigureAwait(false);
        if (range.Kvs.Count == 0)
        {
            return null;
        }

        var state = System.Text.Json.JsonSerializer.Deserialize<Steward.Core.Cluster.SyncState>(range.Kvs[0].Value.ToStringUtf8())!;
        return (state.Leader, state.Standbys, state.Quorum);
    }

    /// <summary>Whether etcd still holds <paramref name="member"/>'s member key (it expires with the member's lease).</summary>
    public async Task<bool> HasMemberKeyAsync(string member)
    {
        _etcd ??= new EtcdClient(Etcd.Endpoint);
        var range = await _etcd.GetAsync($"/service/{Scope}/members/{member}", deadline: DateTime.UtcNow.AddSeconds(2)).ConfigureAwait(false);
        return range.Kvs.Count > 0;
    }

    /// <summary>Polls every node's REST API until exactly one answers 200 on /leader; returns it.</summary>
    public async Task<TestNode> WaitForLeaderAsync(TimeSpan timeout, TestNode? not = null)
    {
        TestNode? found = null;
        await Poll.UntilAsync(async () =>
        {
            var leaders = new List<TestNode>();
            foreach (var n in Nodes.Where(n => n.IsRunning && n != not))
            {
                if (await n.RestStatusAsync("/leader").ConfigureAwait(false) == 200)
                {
                    leaders.Add(n);
                }
            }

            found = leaders.Count == 1 ? leaders[0] : null;
            return found is not null;
        }, timeout, "exactly one node answering 200 on /leader", DescribeAsync).ConfigureAwait(false);
        return found!;
    }

    /// <summary>
    /// Polls until <paramref name="node"/> is a replica that streams: REST /replica = 200, replication_state streaming, and its
    /// member key in etcd says so too (what a switchover's candidate check reads; the REST API answers from PostgreSQL now,
    /// the member key only after the agent's next cycle).
    /// </summary>
    public Task WaitForStreamingAsync(TestNode node, TimeSpan timeout) =>
        Poll.UntilAsync(async () =>
        {
            var status = await node.PatroniAsync().ConfigureAwait(false);
            return status is { } s && s.TryGetProperty("replication_state", out var rs) && rs.GetString() == "streaming"
                   && await node.RestStatusAsync("/replica").ConfigureAwait(false) == 200
                   && await MemberKeySaysStreamingAsync(node.Name).ConfigureAwait(false);
        }, timeout, $"{node.Name} streaming as a replica", DescribeAsync);

    private async Task<bool> MemberKeySaysStreamingAsync(string member)
    {
        string? value;
        if (Etcd.Tls is not null || Etcd.RootPassword is not null)
        {
            value = await Etcd.GetValueAsync($"/service/{Scope}/members/{member}").ConfigureAwait(false);
        }
        else
        {
            _etcd ??= new EtcdClient(Etcd.Endpoint);
            var range = await _etcd.GetAsync($"/service/{Scope}/members/{member}", deadline: DateTime.UtcNow.AddSeconds(2)).ConfigureAwait(false);
            value = range.Kvs.Count == 0 ? null : range.Kvs[0].Value.ToStringUtf8();
        }

        if (value is null)
        {
            return false;
        }

        using var doc = System.Text.Json.JsonDocument.Parse(value);
        return doc.RootElement.TryGetProperty("role", out var role) && role.GetString() == "replica"
               && doc.RootElement.TryGetProperty("replication_state", out var state) && state.GetString() == "streaming";
    }

    /// <summary>
    /// Proof that every other running member replays what <paramref name="leader"/> writes now: a row inserted there shows
    /// up on each within <paramref name="timeout"/>. (pg_stat_wal_receiver says "streaming" as soon as a WAL receiver
    /// runs, even one that fails at every START_REPLICATION, so replication_state alone proves nothing.)
    /// </summary>
    public async Task WaitForReplicationAsync(TestNode leader, TimeSpan timeout)
    {
        var marker = Interlocked.Increment(ref _marker);
        await leader.ExecuteAsync($"CREATE TABLE IF NOT EXISTS steward_test_marker(id bigint); INSERT INTO steward_test_marker VALUES ({marker})").ConfigureAwait(false);
        foreach (var n in Nodes.Where(n => n != leader && n.IsRunning))
        {
            await Poll.UntilAsync(async () => await n.QueryAsync<long>($"SELECT count(*) FROM steward_test_marker WHERE id = {marker}").ConfigureAwait(false) == 1,
                timeout, $"{n.Name} replaying a row written on {leader.Name}", DescribeAsync).ConfigureAwait(false);
        }
    }

    public async Task<string> DescribeAsync()
    {
        var sb = new StringBuilder();
        foreach (var n in Nodes)
        {
            sb.Append(CultureInfo.InvariantCulture, $"--- {n.Name} (agent {(n.IsRunning ? "running" : "stopped")}) /patroni: ");
            var s = await n.PatroniAsync().ConfigureAwait(false);
            sb.AppendLine(s?.ToString() ?? "(no answer)");
            sb.AppendLine(n.LogTail(25));
        }

        return sb.ToString();
    }

    /// <summary>With <c>$STEWARD_KEEP_LOGS</c> set to a directory: every agent's whole log is copied there before the cluster's directory goes.</summary>
    private void KeepLogs()
    {
        if (Environment.GetEnvironmentVariable("STEWARD_KEEP_LOGS") is not { Length: > 0 } keep)
        {
            return;
        }

        var target = Path.Combine(keep, Scope);
        Directory.CreateDirectory(target);
        foreach (var n in Nodes.Where(n => File.Exists(n.LogPath)))
        {
            File.Copy(n.LogPath, Path.Combine(target, n.Name + ".log"), overwrite: true);
            var pgLog = Path.Combine(n.DataDir, "log", "postgresql.log");
            if (File.Exists(pgLog))
            {
                File.Copy(pgLog, Path.Combine(target, n.Name + ".postgresql.log"), overwrite: true);
            }
        }

        _output?.WriteLine($"agent logs kept in {target}");
    }

    public async ValueTask DisposeAsync()
    {
        if (_output is not null)
        {
            try
            {
                _output.WriteLine(await DescribeAsync().ConfigureAwait(false));
            }
            catch (InvalidOperationException)
            {
            }
        }

        await Task.WhenAll(Nodes.Select(n => n.StopAsync())).ConfigureAwait(false);
        foreach (var n in Nodes)
        {
            n.StopLeftoverPostmaster();
        }

        KeepLogs();
        _etcd?.Dispose();
        await Etcd.DisposeAsync().ConfigureAwait(false);
        _http.Dispose();
        Dir.Dispose();
    }
}

internal sealed record ClusterOptions
{
    public int Ttl { get; init; } = 6;
    public int LoopWait { get; init; } = 1;
    public int RetryTimeout { get; init; } = 2;
    public bool StartAll { get; init; } = true;
    public IReadOnlyList<string> NoFailover { get; init; } = [];

    /// <summary>More tags for some members (name → tag → YAML value).</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> NodeTags { get; init; } = new Dictionary<string, IReadOnlyDictionary<string, string>>();

    /// <summary>More local postgresql.parameters for some members (name → parameter → value).</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> NodeParameters { get; init; } = new Dictionary<string, IReadOnlyDictionary<string, string>>();

    /// <summary>More bootstrap.dcs lines (each indented under dcs:), e.g. <c>slots:</c> and its entries.</summary>
    public IReadOnlyList<string> DcsYaml { get; init; } = [];

    /// <summary>More bootstrap.dcs postgresql.parameters (parameter → value).</summary>
    public IReadOnlyDictionary<string, string> DcsParameters { get; init; } = new Dictionary<string, string>();
    public bool FailsafeMode { get; init; }
    public bool SynchronousMode { get; init; }
    public bool SynchronousModeStrict { get; init; }

    /// <summary>synchronous_mode: quorum (quorum commit).</summary>
    public bool SynchronousModeQuorum { get; init; }

    public int SynchronousNodeCount { get; init; } = 1;

    /// <summary>bootstrap.dcs primary_start_timeout in seconds (left out, so the default of 30 s holds, when null).</summary>
    public int? PrimaryStartTimeout { get; init; }

    /// <summary>bootstrap.dcs postgresql.parameters.wal_keep_size: "0" makes a replica that lost its slot lose its WAL too.</summary>
    public string WalKeepSize { get; init; } = "64MB";

    /// <summary>TLS between the members' PostgreSQL servers and clients (null: none).</summary>
    public ClusterSsl? Ssl { get; init; }

    /// <summary>postgresql.bin_dir of every node: a directory of wrappers injects faults into PostgreSQL's programs.</summary>
    public string BinDir { get; init; } = "/usr/lib/postgresql/15/bin";
    /// <summary>TLS everywhere: etcd (client certificates required), the REST API (verify_client: required) and its clients.</summary>
    public TestCerts? Tls { get; init; }
    /// <summary>Turn etcd's authentication on with this root password before the agents start.</summary>
    public string? EtcdRootPassword { get; init; }

    /// <summary>The steward executable the agents run (e.g. an installed package's /usr/bin/steward); default: the one the tests run.</summary>
    public string? Binary { get; init; }

    /// <summary>Writes each node's YAML instead of the built-in template (e.g. the package's example adjusted); the
    /// superuser must be <see cref="TestCluster.Superuser"/> with <see cref="TestCluster.SuperPassword"/>.</summary>
    public Func<NodeSlot, string>? NodeConfig { get; init; }
}

/// <summary>
/// YAML fragments for PostgreSQL over TLS: appended inside each user's authentication map (", sslmode: …"), appended to
/// postgresql.parameters (each line starting with a newline and four spaces), and the pg_hba lines.
/// </summary>
internal sealed record ClusterSsl(string Superuser, string Replication, string Rewind, string Parameters, IReadOnlyList<string> PgHba);

/// <summary>One member: its agent process (started by us, stopped by PID) and its PostgreSQL.</summary>
internal sealed class TestNode
{
    private readonly HttpClient _http;
    private readonly ITestOutputHelper? _output;
    private Process? _agent;

    public TestNode(string name, string dir, string configPath, int pgPort, int restPort, HttpClient http, ITestOutputHelper? output)
    {
        Name = name;
        Dir = dir;
        ConfigPath = configPath;
        PgPort = pgPort;
        RestPort = restPort;
        _http = http;
        _output = output;
    }

    public string Name { get; }
    public string Dir { get; }
    public string ConfigPath { get; }
    public int PgPort { get; }
    public int RestPort { get; }
    /// <summary><c>https</c> when the cluster's REST API speaks TLS.</summary>
    public string RestScheme { get; init; } = "http";
    /// <summary>The steward executable this agent runs (null: <see cref="StewardProcess"/>'s default).</summary>
    public string? Binary { get; init; }
    public string DataDir => Path.Combine(Dir, "data");
    public string LogPath => Path.Combine(Dir, "agent.log");
    public bool IsRunning => _agent is { HasExited: false };
    public int? AgentPid => IsRunning ? _agent!.Id : null;

    public string ConnectionString => $"Host=127.0.0.1;Port={PgPort};Username={TestCluster.Superuser};Password={TestCluster.SuperPassword};Database=postgres;Timeout=3;Command Timeout=10;Pooling=false";

    public void Start()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException($"{Name} is already running");
        }

        _agent = StewardProcess.Start(["node", "-c", ConfigPath], LogPath, binary: Binary);
    }

    /// <summary>SIGTERM and wait for the agent to exit (graceful shutdown); SIGKILL if it takes longer than <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan? grace = null)
    {
        if (_agent is null)
        {
            return;
        }

        if (!_agent.HasExited)
        {
            Signals.Send(_agent.Id, Signals.SIGTERM);
            Signals.Send(_agent.Id, Signals.SIGCONT); // a frozen agent (PauseAgent) would never see the SIGTERM
            using var cts = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(60));
            try
            {
                await _agent.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                _agent.Kill();
                await _agent.WaitForExitAsync().ConfigureAwait(false);
            }
        }

        _agent.Dispose();
        _agent = null;
    }

    /// <summary>kill -9 of the agent process only.</summary>
    public async Task KillAgentAsync()
    {
        if (_agent is { HasExited: false })
        {
            Signals.Send(_agent.Id, Signals.SIGKILL);
            await _agent.WaitForExitAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Freezes the agent process alone (SIGSTOP to its PID, not its group): whatever it started keeps running. Returns
    /// once every thread is stopped. <see cref="ResumeAgent"/> thaws it; <see cref="StopAsync"/> copes with a frozen agent.
    /// </summary>
    public void PauseAgent()
    {
        var pid = AgentPid ?? throw new InvalidOperationException($"{Name}'s agent is not running");
        Signals.Send(pid, Signals.SIGSTOP);
        Signals.WaitUntilStopped(pid, TimeSpan.FromSeconds(5));
    }

    /// <summary>Thaws an agent frozen by <see cref="PauseAgent"/> (SIGCONT).</summary>
    public void ResumeAgent()
    {
        if (AgentPid is { } pid)
        {
            Signals.Send(pid, Signals.SIGCONT);
        }
    }

    /// <summary>The postmaster's PID from postmaster.pid, if it is alive.</summary>
    public int? PostmasterPid()
    {
        var pidFile = Path.Combine(DataDir, "postmaster.pid");
        try
        {
            var first = File.ReadLines(pidFile).FirstOrDefault();
            return int.TryParse(first, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid) && Signals.IsAlive(pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>kill -9 of the postmaster (its children exit on their own when it dies).</summary>
    public async Task KillPostmasterAsync()
    {
        if (PostmasterPid() is { } pid)
        {
            Signals.Send(pid, Signals.SIGKILL);
            await Poll.UntilAsync(() => Task.FromResult(!Signals.IsAlive(pid)), TimeSpan.FromSeconds(10), $"postmaster {pid} gone").ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A host crash, as far as this member goes: kill -9 of its agent and of its postmaster at the same moment; returns
    /// once both are gone. (Not <see cref="KillAgentAsync"/> then <see cref="KillPostmasterAsync"/>: waiting for the
    /// agent's exit waits for its output pipe, which its fence supervisor holds until it fires at the lease deadline, so
    /// the postmaster would live — and take writes — until then.)
    /// </summary>
    public async Task CrashAsync()
    {
        var agent = AgentPid;
        var postmaster = PostmasterPid();
        if (agent is { } a)
        {
            Signals.Send(a, Signals.SIGKILL);
        }

        if (postmaster is { } p)
        {
            Signals.Send(p, Signals.SIGKILL);
        }

        await Poll.UntilAsync(() => Task.FromResult(_agent is null or { HasExited: true } && (postmaster is not { } pm || !Signals.IsAlive(pm))),
            TimeSpan.FromSeconds(10), $"{Name}'s agent and postmaster gone").ConfigureAwait(false);
        await StopAsync().ConfigureAwait(false); // the agent has exited: this only lets go of its Process
    }

    /// <summary>The pg_hba.conf line <see cref="RejectReplicationAsync"/> puts first: every replication connection refused.</summary>
    public const string RejectReplicationLine = "host replication all 0.0.0.0/0 reject # steward test: replication refused";

    /// <summary>
    /// Refuses every replication connection (a line first in pg_hba.conf, pg_reload_conf) and ends the walsenders already
    /// connected; returns how many it ended. The agent writes pg_hba.conf only when it starts PostgreSQL.
    /// </summary>
    public async Task<int> RejectReplicationAsync()
    {
        var hba = Path.Combine(DataDir, "pg_hba.conf");
        var text = await File.ReadAllTextAsync(hba).ConfigureAwait(false);
        await File.WriteAllTextAsync(hba, RejectReplicationLine + "\n" + text).ConfigureAwait(false);
        await ExecuteAsync("SELECT pg_reload_conf()").ConfigureAwait(false);
        return await TerminateWalsendersAsync().ConfigureAwait(false);
    }

    /// <summary>Undoes <see cref="RejectReplicationAsync"/>.</summary>
    public async Task AllowReplicationAsync()
    {
        var hba = Path.Combine(DataDir, "pg_hba.conf");
        var lines = await File.ReadAllLinesAsync(hba).ConfigureAwait(false);
        await File.WriteAllLinesAsync(hba, lines.Where(l => l != RejectReplicationLine)).ConfigureAwait(false);
        await ExecuteAsync("SELECT pg_reload_conf()").ConfigureAwait(false);
    }

    /// <summary>pg_terminate_backend of every walsender; how many there were.</summary>
    public async Task<int> TerminateWalsendersAsync() =>
        (int)await QueryAsync<long>("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'walsender'").ConfigureAwait(false);

    /// <summary>The WAL receiver's (status, sender port, received timeline), or null when none runs.</summary>
    public async Task<(string Status, int SenderPort, long Timeline)?> WalReceiverAsync()
    {
        await using var conn = new NpgsqlConnection(ConnectionString);
        await conn.OpenAsync().ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand("SELECT status, sender_port, received_tli FROM pg_stat_wal_receiver", conn);
        await using var reader = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
        return await reader.ReadAsync().ConfigureAwait(false)
            ? (reader.GetString(0), reader.IsDBNull(1) ? 0 : reader.GetInt32(1), reader.IsDBNull(2) ? 0 : reader.GetInt32(2))
            : null;
    }

    /// <summary>Directories beside the data directory that a re-clone moved it to (<c>data.diverged-*</c>).</summary>
    public IReadOnlyList<string> MovedAsideDataDirs() => Directory.GetDirectories(Dir, "data.diverged-*");

    /// <summary>Where the agent's log ends now: <see cref="LogSince"/> reads what it writes from here on.</summary>
    public long LogLength() => File.Exists(LogPath) ? new FileInfo(LogPath).Length : 0;

    /// <summary>The agent's log from <paramref name="offset"/> (a <see cref="LogLength"/>) on.</summary>
    public string LogSince(long offset)
    {
        try
        {
            using var fs = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            fs.Seek(Math.Min(offset, fs.Length), SeekOrigin.Begin);
            using var reader = new StreamReader(fs);
            return reader.ReadToEnd();
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>
    /// After the test: a postmaster our agent left behind (e.g. after kill -9 of the agent) gets SIGQUIT (immediate
    /// shutdown) by PID, and SIGCONT in case a test froze it; SIGKILL if it is still there after 10 s.
    /// </summary>
    public void StopLeftoverPostmaster()
    {
        if (PostmasterPid() is { } pid)
        {
            Signals.Send(pid, Signals.SIGQUIT);
            Signals.Send(pid, Signals.SIGCONT);
            for (var i = 0; i < 100 && Signals.IsAlive(pid); i++)
            {
                Thread.Sleep(100);
            }

            if (Signals.IsAlive(pid))
            {
                Signals.Send(pid, Signals.SIGKILL);
            }
        }
    }

    public async Task<int?> RestStatusAsync(string path, HttpMethod? method = null)
    {
        try
        {
            using var req = new HttpRequestMessage(method ?? HttpMethod.Get, $"{RestScheme}://127.0.0.1:{RestPort}{path}");
            using var resp = await _http.SendAsync(req).ConfigureAwait(false);
            return (int)resp.StatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    public async Task<JsonElement?> GetJsonAsync(string path)
    {
        try
        {
            return await _http.GetFromJsonAsync<JsonElement>($"{RestScheme}://127.0.0.1:{RestPort}{path}").ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
        {
            return null;
        }
    }

    public Task<JsonElement?> PatroniAsync() => GetJsonAsync("/patroni");

    public async Task<T?> QueryAsync<T>(string sql)
    {
        await using var conn = new NpgsqlConnection(ConnectionString);
        await conn.OpenAsync().ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(sql, conn);
        var value = await cmd.ExecuteScalarAsync().ConfigureAwait(false);
        return value is DBNull or null ? default : (T)value;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var conn = new NpgsqlConnection(ConnectionString);
        await conn.OpenAsync().ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    public string LogTail(int lines)
    {
        try
        {
            using var fs = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(fs);
            var all = reader.ReadToEnd().Split('\n');
            return string.Join('\n', all.TakeLast(lines));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    public string Log()
    {
        try
        {
            using var fs = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(fs);
            return reader.ReadToEnd();
        }
        catch (IOException)
        {
            return "";
        }
    }

    public override string ToString() => Name;
}

/// <summary>What a node of a <see cref="TestCluster"/> gets: its name, directory (data_dir is <c>Dir/data</c>, the socket
/// directory is <c>Dir</c>), free ports, and the cluster's scope and etcd (host:port).</summary>
internal sealed record NodeSlot(string Scope, string Name, string Dir, int PgPort, int RestPort, string Etcd);
