using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Cli;
using Steward.Etcd;

namespace Steward.Demo;

/// <summary>What <c>steward demo</c> records in its directory (<c>demo.json</c>) so that <c>--down</c> can stop it by PID.</summary>
internal sealed record DemoState
{
    [JsonPropertyName("scope")] public required string Scope { get; init; }
    [JsonPropertyName("ports")] public required DemoPorts Ports { get; init; }
    [JsonPropertyName("nodes")] public required IReadOnlyList<string> Nodes { get; init; }
    [JsonPropertyName("processes")] public List<DemoProcess> Processes { get; init; } = [];
}

/// <summary>The options of one <c>steward demo</c> run.</summary>
internal sealed record DemoOptions
{
    public int Nodes { get; init; } = 3;
    public string Dir { get; init; } = "/tmp/steward-demo";
    public int? BasePort { get; init; }
    public string? EtcdBin { get; init; }
    public string PgBin { get; init; } = "/usr/lib/postgresql/15/bin";
    /// <summary><c>--pgbouncer</c>: PgBouncer (transaction pooling) in front of the write port, driven by the router.</summary>
    public bool PgBouncer { get; init; }
    public string PgBouncerBin { get; init; } = "/usr/sbin/pgbouncer";
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(180);
}

/// <summary>
/// <c>steward demo</c>: etcd, N agents with PostgreSQL and the router (and with <c>--pgbouncer</c> PgBouncer) on
/// loopback, as child processes of this program, all data and logs under one directory. Stopped in order: agents,
/// router, PgBouncer, etcd — each by its recorded PID.
/// </summary>
internal sealed class DemoStack
{
    public const string Scope = "demo";
    public const string Superuser = "postgres";
    public const string SuperPassword = "postgres";
    public const string DashboardUser = "admin";
    public const string PgBouncerAdmin = "pgbouncer";
    private const string StateFile = "demo.json";

    private readonly DemoOptions _options;
    private readonly TextWriter _out;
    private readonly TextWriter _err;
    private string _progress = "";

    public DemoStack(DemoOptions options, TextWriter stdout, TextWriter stderr)
    {
        _options = options;
        _out = stdout;
        _err = stderr;
    }

    private string Dir => _options.Dir;
    private string NodeDir(int n) => Path.Combine(Dir, $"node{n}");
    private string PgBouncerDir => Path.Combine(Dir, "pgbouncer");

    /// <summary>What is missing to run the demo, with how to install it; null when everything is there.</summary>
    public string? CheckPrerequisites(out string etcd)
    {
        etcd = "";
        if (_options.EtcdBin is { } given)
        {
            if (!IsExecutable(given))
            {
                return $"etcd not found at {given} (--etcd-bin / STEWARD_ETCD_BIN): install it with `apt-get install etcd-server` (or run scripts/install-deps.sh)";
            }

            etcd = given;
        }
        else if (FindOnPath("etcd") is { } found)
        {
            etcd = found;
        }
        else
        {
            return "etcd not found on PATH: install it with `apt-get install etcd-server` (or run scripts/install-deps.sh), or point --etcd-bin / STEWARD_ETCD_BIN at it";
        }

        var postgres = Path.Combine(_options.PgBin, "postgres");
        if (!IsExecutable(postgres))
        {
            return $"PostgreSQL 15 not found ({postgres} is missing): install it with `apt-get install postgresql-15` (or run scripts/install-deps.sh)";
        }

        if (_options.PgBouncer && !IsExecutable(_options.PgBouncerBin))
        {
            return $"PgBouncer not found ({_options.PgBouncerBin} is missing): install it with `apt-get install pgbouncer` (or run scripts/install-deps.sh), or leave out --pgbouncer";
        }

        if (Environment.UserName == "root" && !PostgresUserExists())
        {
            return "running as root, but the OS user `postgres` (who runs PostgreSQL) does not exist: `apt-get install postgresql-15` creates it";
        }

        return null;
    }

    private static bool IsExecutable(string path) =>
        File.Exists(path) && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(d => Path.Combine(d, program)).FirstOrDefault(IsExecutable);

    private static bool PostgresUserExists() =>
        File.ReadLines("/etc/passwd").Any(l => l.StartsWith("postgres:", StringComparison.Ordinal));

    /// <summary>The running demo recorded in the directory, if any of its processes is still alive.</summary>
    public DemoState? Running()
    {
        var state = Load();
        return state is not null && state.Processes.Any(p => p.IsOurs) ? state : null;
    }

    private DemoState? Load()
    {
        var path = Path.Combine(Dir, StateFile);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllText(path), StewardJson.Default.DemoState) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private void Save(DemoState state) => File.WriteAllText(Path.Combine(Dir, StateFile), JsonSerializer.Serialize(state, StewardJsonIndented.Default.DemoState));

    /// <summary>Starts everything and waits for a leader, streaming replicas and the router; prints how to connect. 0 on success.</summary>
    public async Task<(int Exit, DemoState? State)> UpAsync(string etcdBin, CancellationToken ct)
    {
        Directory.CreateDirectory(Dir);
        File.SetUnixFileMode(Dir, (UnixFileMode)0b111_101_101);
        _err.WriteLine($"steward demo: everything (data, logs, configuration) lives in {Dir}");
        if (File.Exists(Path.Combine(Dir, StateFile)))
        {
            _err.WriteLine($"steward demo: starting from the data kept in {Dir} (remove it to start from scratch)");
        }

        var ports = DemoPorts.Choose(_options.Nodes, _options.BasePort, m => _err.WriteLine($"steward demo: {m}"), _options.PgBouncer);
        var names = Enumerable.Range(1, _options.Nodes).Select(n => $"node{n}").ToArray();
        var state = new DemoState { Scope = Scope, Ports = ports, Nodes = names };
        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(12)).Replace('/', 'x').Replace('+', 'y');
        var adminPassword = Convert.ToBase64String(RandomNumberGenerator.GetBytes(12)).Replace('/', 'x').Replace('+', 'y');
        try
        {
            var etcdDir = Path.Combine(Dir, "etcd");
            _err.WriteLine($"steward demo: starting etcd on 127.0.0.1:{ports.Etcd}");
            state.Processes.Add(DemoProcess.Start("etcd",
            [
                etcdBin, "--name", "demo", "--data-dir", etcdDir,
                "--listen-client-urls", $"http://127.0.0.1:{ports.Etcd}", "--advertise-client-urls", $"http://127.0.0.1:{ports.Etcd}",
                "--listen-peer-urls", $"http://127.0.0.1:{ports.EtcdPeer}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{ports.EtcdPeer}",
                "--initial-cluster", $"demo=http://127.0.0.1:{ports.EtcdPeer}", "--initial-cluster-state", "new", "--logger=zap",
            ], Path.Combine(Dir, "etcd.log"), etcdDir));
            Save(state);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            if (!await WaitAsync(async () => (await http.GetAsync(new Uri($"http://127.0.0.1:{ports.Etcd}/health"), ct).ConfigureAwait(false)).IsSuccessStatusCode,
                    state, TimeSpan.FromSeconds(30), () => "waiting for etcd", ct).ConfigureAwait(false))
            {
                return (Fail($"etcd did not come up in 30 s; see {Path.Combine(Dir, "etcd.log")}"), state);
            }

            for (var i = 0; i < names.Length; i++)
            {
                var dir = NodeDir(i + 1);
                Directory.CreateDirectory(dir);
                File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
                if (Environment.UserName == "root")
                {
                    await ChownAsync(dir, ct).ConfigureAwait(false); // PostgreSQL (as postgres) puts its socket here
                }

                var config = Path.Combine(dir, "node.yml");
                await File.WriteAllTextAsync(config, NodeYaml(names[i], dir, ports.Postgres[i], ports.Rest[i], ports.Etcd, _options.PgBin), ct).ConfigureAwait(false);
                state.Processes.Add(DemoProcess.Start(names[i], [.. Self(), "node", "-c", config], Path.Combine(dir, "agent.log"), config));
                Save(state);
            }

            _err.WriteLine($"steward demo: started {names.Length} agents (logs: {Dir}/node*/agent.log)");
            var replicas = names.Length - 1;
            if (!await WaitAsync(async () =>
                    {
                        var (leaders, streaming) = await CountAsync(http, ports, ct).ConfigureAwait(false);
                        _progress = leaders == 0 ? "waiting for a leader…" : $"leader elected; replicas streaming {streaming}/{replicas}…";
                        return leaders == 1 && streaming == replicas;
                    }, state, _options.StartTimeout, () => _progress, ct).ConfigureAwait(false))
            {
                return (Fail($"the cluster did not come up in {_options.StartTimeout.TotalSeconds:0} s; see {Dir}/node*/agent.log"), state);
            }

            if (ports.PgBouncer is { } bouncerPort)
            {
                if (!await StartPgBouncerAsync(state, bouncerPort, adminPassword, ct).ConfigureAwait(false))
                {
                    return (Fail($"PgBouncer did not come up in 30 s; see {Path.Combine(Dir, "pgbouncer.log")}"), state);
                }
            }

            var routerConfig = Path.Combine(Dir, "router.yml");
            await File.WriteAllTextAsync(routerConfig, RouterYaml(ports, password, adminPassword), ct).ConfigureAwait(false);
            File.SetUnixFileMode(routerConfig, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            state.Processes.Add(DemoProcess.Start("router", [.. Self(), "router", "-c", routerConfig], Path.Combine(Dir, "router.log"), routerConfig));
            Save(state);
            if (!await WaitAsync(async () => (await http.GetAsync(new Uri($"http://127.0.0.1:{ports.Stats}/stats.json"), ct).ConfigureAwait(false)).IsSuccessStatusCode,
                    state, TimeSpan.FromSeconds(60), () => "waiting for the router", ct).ConfigureAwait(false))
            {
                return (Fail($"the router did not come up in 60 s; see {Path.Combine(Dir, "router.log")}"), state);
            }

            await PrintAsync(state, password, ct).ConfigureAwait(false);
            return (0, state);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            _err.WriteLine();
            _err.WriteLine("steward demo: interrupted while starting");
            return (130, state);
        }
    }

    private int Fail(string message)
    {
        _err.WriteLine();
        _err.WriteLine($"steward demo: {message}");
        return 1;
    }

    /// <summary>Polls <paramref name="done"/> twice a second, showing <paramref name="what"/> and the seconds spent; false on timeout or when a process died.</summary>
    private async Task<bool> WaitAsync(Func<Task<bool>> done, DemoState state, TimeSpan timeout, Func<string> what, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var terminal = !Console.IsErrorRedirected;
        var last = "";
        while (clock.Elapsed < timeout)
        {
            bool ok;
            try
            {
                ok = await done().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                ok = false;
            }

            var text = what();
            if (terminal)
            {
                _err.Write($"\r  {text} {(int)clock.Elapsed.TotalSeconds} s   ");
            }
            else if (text != last)
            {
                _err.WriteLine($"  {text} ({(int)clock.Elapsed.TotalSeconds} s)");
            }

            last = text;
            if (ok)
            {
                if (terminal)
                {
                    _err.WriteLine();
                }

                return true;
            }

            // Looked at twice, 300 ms apart: /proc/<pid>/cmdline can read empty for an instant while the program execs
            // (setsid → sh → the program), which once made a starting router look dead.
            if (state.Processes.FirstOrDefault(p => !p.IsOurs) is { } suspect
                && await GoneAsync(suspect, ct).ConfigureAwait(false) is { } dead)
            {
                _err.WriteLine();
                _err.WriteLine($"steward demo: {dead.Name} (pid {dead.Pid}) exited; its log: {LogOf(dead)}");
                return false;
            }

            await Task.Delay(500, ct).ConfigureAwait(false);
        }

        return false;
    }

    /// <summary>
    /// PgBouncer in front of the write port, transaction pooling, its ini and user list in <c>pgbouncer/</c>; run as the
    /// <c>postgres</c> user when the demo runs as root (PgBouncer refuses root), through setpriv, which execs: the
    /// recorded PID is PgBouncer's. Up when its port accepts connections.
    /// </summary>
    private async Task<bool> StartPgBouncerAsync(DemoState state, int port, string adminPassword, CancellationToken ct)
    {
        var dir = PgBouncerDir;
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var ini = Path.Combine(dir, "pgbouncer.ini");
        await File.WriteAllTextAsync(Path.Combine(dir, "userlist.txt"),
            $"\"{Superuser}\" \"{SuperPassword}\"\n\"{PgBouncerAdmin}\" \"{adminPassword}\"\n", ct).ConfigureAwait(false);
        await File.WriteAllTextAsync(ini, $"""
            ; steward demo --pgbouncer: clients -> this PgBouncer -> the router's write port -> the leader
            [databases]
            * = host=127.0.0.1 port={state.Ports.Write}

            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = {port}
            unix_socket_dir =
            auth_type = scram-sha-256
            auth_file = {dir}/userlist.txt
            admin_users = {PgBouncerAdmin}
            pool_mode = transaction
            ignore_startup_parameters = extra_float_digits
            server_login_retry = 2

            """, ct).ConfigureAwait(false);
        string[] program = [_options.PgBouncerBin, ini];
        if (Environment.UserName == "root")
        {
            await ChownAsync(dir, ct, recursive: true).ConfigureAwait(false);
            program = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", .. program];
        }

        _err.WriteLine($"steward demo: starting PgBouncer on 127.0.0.1:{port} in front of the write port");
        state.Processes.Add(DemoProcess.Start("pgbouncer", program, Path.Combine(Dir, "pgbouncer.log"), ini));
        Save(state);
        return await WaitAsync(() => Task.FromResult(Accepts(port)), state, TimeSpan.FromSeconds(30), () => "waiting for PgBouncer", ct).ConfigureAwait(false);
    }

    private static bool Accepts(int port)
    {
        try
        {
            using var client = new System.Net.Sockets.TcpClient();
            client.Connect(System.Net.IPAddress.Loopback, port);
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    private string LogOf(DemoProcess p) => p.Name switch
    {
        "etcd" => Path.Combine(Dir, "etcd.log"),
        "router" => Path.Combine(Dir, "router.log"),
        "pgbouncer" => Path.Combine(Dir, "pgbouncer.log"),
        _ => Path.Combine(Dir, p.Name, "agent.log"),
    };

    private static async Task<(int Leaders, int Streaming)> CountAsync(HttpClient http, DemoPorts ports, CancellationToken ct)
    {
        int leaders = 0, streaming = 0;
        foreach (var rest in ports.Rest)
        {
            try
            {
                using var leader = await http.GetAsync(new Uri($"http://127.0.0.1:{rest}/leader"), ct).ConfigureAwait(false);
                leaders += (int)leader.StatusCode == 200 ? 1 : 0;
                var patroni = JsonNode.Parse(await http.GetStringAsync(new Uri($"http://127.0.0.1:{rest}/patroni"), ct).ConfigureAwait(false));
                streaming += patroni?["replication_state"]?.GetValue<string>() == "streaming" ? 1 : 0;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException && !ct.IsCancellationRequested)
            {
            }
        }

        return (leaders, streaming);
    }

    private async Task PrintAsync(DemoState state, string password, CancellationToken ct)
    {
        var p = state.Ports;
        await using (var store = new EtcdClusterStore([$"http://127.0.0.1:{p.Etcd}"], $"/service/{Scope}/", TimeSpan.FromSeconds(3), TimeProvider.System,
                         NullLogger<EtcdClusterStore>.Instance))
        {
            _out.Write(ListCommand.Render(Scope, await store.LoadAsync(ct).ConfigureAwait(false), extended: false, width: 80));
        }

        _out.WriteLine($"""
            Connect (password: {SuperPassword}):
              psql -h 127.0.0.1 -p {p.Write} -U {Superuser}      # writes: always the leader
              psql -h 127.0.0.1 -p {p.Read} -U {Superuser}      # reads: the replicas{(p.PgBouncer is { } b ? $"\n  psql -h 127.0.0.1 -p {b} -U {Superuser}      # writes through PgBouncer (transaction pooling): a switchover is a pause, not an error" : "")}
            Dashboard: http://127.0.0.1:{p.Stats}/dashboard   (switchover: user {DashboardUser}, password {password})
            Router stats: http://127.0.0.1:{p.Stats}/stats
            REST: curl http://127.0.0.1:{p.Rest[0]}/patroni
            List: ./steward list --etcd 127.0.0.1:{p.Etcd} --scope {Scope}
            Data and logs: {Dir}
            """);
    }

    /// <summary>Stops the demo recorded in the directory: agents (SIGTERM), then the router, then etcd; waits for each to exit.</summary>
    public async Task<int> DownAsync(CancellationToken ct)
    {
        if (Load() is not { } state)
        {
            _err.WriteLine($"steward demo: nothing to stop: no demo recorded in {Dir}");
            return 0;
        }

        await StopAsync(state, ct).ConfigureAwait(false);
        return 0;
    }

    public async Task StopAsync(DemoState state, CancellationToken ct)
    {
        _err.WriteLine($"steward demo: stopping the demo in {Dir}");
        var agents = state.Processes.Where(p => p.Name is not ("etcd" or "router" or "pgbouncer")).ToList();
        foreach (var group in new[] { agents, Named(state, "router"), Named(state, "pgbouncer"), Named(state, "etcd") })
        {
            foreach (var p in group)
            {
                p.Terminate();
            }

            foreach (var p in group)
            {
                if (!await p.WaitForExitAsync(TimeSpan.FromSeconds(30), ct).ConfigureAwait(false))
                {
                    _err.WriteLine($"steward demo: {p.Name} (pid {p.Pid}) did not stop in 30 s; killed it");
                }
            }

            if (group == agents)
            {
                await StopLeftoverPostmastersAsync(state, ct).ConfigureAwait(false);
            }
        }

        state.Processes.Clear();
        Save(state);
        _err.WriteLine($"steward demo: stopped; data kept in {Dir} (remove it to start from scratch)");
    }

    private static List<DemoProcess> Named(DemoState state, string name) => [.. state.Processes.Where(p => p.Name == name)];

    /// <summary>A PostgreSQL left behind by an agent that was killed: its postmaster.pid names it; stopped only if its command line is in our directory.</summary>
    private async Task StopLeftoverPostmastersAsync(DemoState state, CancellationToken ct)
    {
        for (var n = 1; n <= state.Nodes.Count; n++)
        {
            var data = Path.Combine(NodeDir(n), "data");
            var pidFile = Path.Combine(data, "postmaster.pid");
            if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                var postmaster = new DemoProcess($"postgres of node{n}", pid, data);
                if (postmaster.IsOurs)
                {
                    _err.WriteLine($"steward demo: stopping {postmaster.Name} (pid {pid}) left behind");
                    postmaster.Terminate();
                    await postmaster.WaitForExitAsync(TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>This program: the apphost, or <c>dotnet steward.dll</c>.</summary>
    private static string[] Self()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which program is running");
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? [process, Path.Combine(AppContext.BaseDirectory, "steward.dll")] : [process];
    }

    private static async Task ChownAsync(string path, CancellationToken ct, bool recursive = false)
    {
        using var p = Process.Start("chown", recursive ? ["-R", "postgres:postgres", path] : ["postgres:postgres", path])
                      ?? throw new InvalidOperationException("could not run chown");
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
    }

    private static string NodeYaml(string name, string dir, int pg, int rest, int etcd, string pgBin) => $"""
        scope: {Scope}
        namespace: /service/
        name: {name}
        restapi:
          listen: 127.0.0.1:{rest}
          connect_address: 127.0.0.1:{rest}
        etcd3:
          hosts: 127.0.0.1:{etcd}
        bootstrap:
          dcs:
            ttl: 6
            loop_wait: 1
            retry_timeout: 2
            maximum_lag_on_failover: 1048576
            postgresql:
              use_pg_rewind: true
              use_slots: true
              parameters:
                max_connections: 100
                wal_keep_size: 128MB
          initdb:
            - encoding: UTF8
            - locale: C
        postgresql:
          listen: 127.0.0.1:{pg}
          connect_address: 127.0.0.1:{pg}
          data_dir: {dir}/data
          bin_dir: {pgBin}
          pgpass: {dir}/pgpass
          authentication:
            superuser: {"{"}username: {Superuser}, password: {SuperPassword}{"}"}
            replication: {"{"}username: replicator, password: rep-pass{"}"}
            rewind: {"{"}username: rewind_user, password: rewind-pass{"}"}
          pg_hba:
            - local all all trust
            - host replication replicator 127.0.0.1/32 scram-sha-256
            - host all all 127.0.0.1/32 scram-sha-256
          parameters:
            unix_socket_directories: {dir}
        tags:
          nofailover: false
          noloadbalance: false

        """;

    private static string RouterYaml(DemoPorts p, string password, string adminPassword) => $"""
        scope: {Scope}
        namespace: /service/
        etcd3:
          hosts: 127.0.0.1:{p.Etcd}
        write:
          listen: 127.0.0.1:{p.Write}
          hold_timeout: 5
        read:
          listen: 127.0.0.1:{p.Read}
          max_lag: 1MB
        stats:
          listen: 127.0.0.1:{p.Stats}
        dashboard:
          username: {DashboardUser}
          password: {password}
        {(p.PgBouncer is { } b ? $"pgbouncer:\n  - host: 127.0.0.1\n    port: {b}\n    user: {PgBouncerAdmin}\n    password: {adminPassword}\n" : "")}
        """;

    private static async Task<DemoProcess?> GoneAsync(DemoProcess process, CancellationToken ct)
    {
        await Task.Delay(300, ct).ConfigureAwait(false);
        return process.IsOurs ? null : process;
    }
}
