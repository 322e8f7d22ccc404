using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;
using Steward.IntegrationTests.Infrastructure;
using Steward.Postgres;
using PostgresException = Steward.Core.Postgres.PostgresException;

namespace Steward.IntegrationTests.Postgres;

/// <summary>
/// Real PostgreSQL 15 nodes for one test, each on a free port in the test's own temp directory. Disposing stops every
/// postmaster started in it (pg_ctl stop -m immediate, then SIGKILL by the PID in postmaster.pid) and removes the directory.
/// </summary>
internal sealed class PgTestCluster : IAsyncDisposable
{
    public const string BinDir = "/usr/lib/postgresql/15/bin";
    public static readonly IReadOnlyList<string> InitdbOptions = ["--encoding=UTF8", "--locale=C", "--no-sync"];

    private readonly TempDir _dir;
    private readonly List<PgTestNode> _nodes = [];

    public PgTestCluster(string label)
    {
        if (!File.Exists(System.IO.Path.Combine(BinDir, "initdb")) || !File.Exists(System.IO.Path.Combine(BinDir, "pg_rewind")))
        {
            throw new InvalidOperationException($"PostgreSQL 15 not found in {BinDir}: apt-get install postgresql-15");
        }
        _dir = new TempDir(label);
    }

    public string Path => _dir.Path;

    /// <param name="parameters">postgresql.parameters beyond the test's own (fsync off, shared_buffers 16MB).</param>
    /// <param name="loggers">where PostgresControl logs (none by default).</param>
    public PgTestNode Node(string name, IReadOnlyDictionary<string, string>? parameters = null, Microsoft.Extensions.Logging.ILoggerFactory? loggers = null)
    {
        var port = FreePorts.Next();
        var home = _dir.Sub(name);
        var config = new StewardConfig
        {
            Scope = "test",
            Name = name,
            RestApi = new RestApiConfig { Listen = new("127.0.0.1", 1), ConnectAddress = new("127.0.0.1", 1) },
            Etcd3 = new Etcd3Config { Endpoints = ["http://127.0.0.1:1"] },
            Postgresql = new PostgresqlConfig
            {
                Listen = new("127.0.0.1", port),
                ConnectAddress = new("127.0.0.1", port),
                DataDir = System.IO.Path.Combine(home, "data"),
                BinDir = BinDir,
                Pgpass = System.IO.Path.Combine(home, "pgpass"),
                OsUser = TempDir.PgUser,
                Authentication = new PostgresAuthentication
                {
                    Superuser = new("postgres", "su-pass"),
                    Replication = new("replicator", "rep-pass"),
                    Rewind = new("rewind_user", "rewind-pass"),
                },
                Parameters = new Dictionary<string, string>(parameters ?? new Dictionary<string, string>()) { ["fsync"] = "off", ["shared_buffers"] = "16MB" },
            },
        };
        var node = new PgTestNode(config, loggers);
        _nodes.Add(node);
        return node;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }
        _dir.Dispose();
    }
}

internal sealed class PgTestNode : IAsyncDisposable
{
    private readonly NpgsqlDataSource _sql;

    public PgTestNode(StewardConfig config, Microsoft.Extensions.Logging.ILoggerFactory? loggers = null)
    {
        Config = config;
        Control = new PostgresControl(config, loggers ?? NullLoggerFactory.Instance, TimeProvider.System);
        _sql = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder
        {
            Host = Address.Host,
            Port = Address.Port,
            Username = "postgres",
            Password = "su-pass",
            Database = "postgres",
            Pooling = false,
            Timeout = 5,
        });
    }

    public StewardConfig Config { get; }
    public PostgresControl Control { get; }
    public string Name => Config.Name;
    public string DataDir => Config.Postgresql.DataDir;
    public HostPort Address => Config.Postgresql.Listen;
    public string Slot => SlotNames.For(Name);

    public Task<PgState> InspectAsync() => Control.InspectAsync(CancellationToken.None);

    public async Task ExecuteAsync(string sql)
    {
        await using var command = _sql.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    public async Task<List<string>> ColumnAsync(string sql)
    {
        await using var command = _sql.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        var values = new List<string>();
        while (await reader.ReadAsync())
        {
            values.Add(reader.IsDBNull(0) ? "" : Convert.ToString(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture)!);
        }
        return values;
    }

    /// <summary>Bootstraps this node as the primary with the test initdb options.</summary>
    public Task BootstrapAsync() => Control.BootstrapAsync(PgTestCluster.InitdbOptions, new DynamicConfig(), CancellationToken.None);

    /// <summary>Clones from <paramref name="primary"/> and starts streaming from it through its slot for this node.</summary>
    public async Task CloneAndFollowAsync(PgTestNode primary)
    {
        await primary.Control.SyncReplicationSlotsAsync([Slot], CancellationToken.None);
        await Control.CloneAsync(primary.Address, CancellationToken.None);
        await Control.StartAsync(StartRole.Replica, new Upstream(primary.Address, Slot), new DynamicConfig(), CancellationToken.None);
        await Eventually.TrueAsync(async () => (await InspectAsync()).Streaming, $"{Name} streams from {primary.Name}", ServerLogTail);
    }

    /// <summary>The last lines of the server log, for failure messages.</summary>
    public string ServerLogTail()
    {
        var log = Path.Combine(DataDir, "log", "postgresql.log");
        return File.Exists(log) ? $"last lines of {log}:\n" + string.Join('\n', File.ReadLines(log).TakeLast(30)) : $"no {log}";
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Control.StopAsync(StopMode.Immediate, CancellationToken.None);
        }
        catch (PostgresException)
        {
            KillPostmaster();
        }
        await Control.DisposeAsync();
        await _sql.DisposeAsync();
    }

    private void KillPostmaster()
    {
        var pidFile = Path.Combine(DataDir, "postmaster.pid");
        if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), out var pid))
        {
            try
            {
                using var process = System.Diagnostics.Process.GetProcessById(pid);
                process.Kill();
            }
            catch (ArgumentException)
            {
                // already gone
            }
        }
    }
}

internal static class Eventually
{
    public static async Task TrueAsync(Func<Task<bool>> condition, string what, Func<string>? diagnostics = null, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"not true after {seconds} s: {what}" + (diagnostics is null ? "" : "\n" + diagnostics()));
            }
            await Task.Delay(100);
        }
    }
}
