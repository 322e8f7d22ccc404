using System.Diagnostics;
using Steward.Core.Configuration;
using Steward.Router.PgBouncer;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// A real PgBouncer (Debian's <c>pgbouncer</c>, /usr/sbin/pgbouncer) on a free loopback port, with its own ini, user
/// list and log in a directory of its own, run as the unprivileged <c>postgres</c> user (through setpriv, which execs:
/// the PID is PgBouncer's) and stopped by that PID. Every database is forwarded to <see cref="TargetPort"/> on
/// 127.0.0.1; clients log in as the cluster's superuser, the admin console as <see cref="AdminUser"/>.
/// </summary>
internal sealed class TestPgBouncer : IAsyncDisposable
{
    public const string Program = "/usr/sbin/pgbouncer";
    public const string AdminUser = "steward_admin";
    public const string AdminPassword = "admin-secret";

    private readonly ITestOutputHelper _output;
    private Process? _process;

    private TestPgBouncer(string dir, int port, int targetPort, ITestOutputHelper output)
    {
        Dir = dir;
        Port = port;
        TargetPort = targetPort;
        _output = output;
    }

    public string Dir { get; }
    public int Port { get; }
    public int TargetPort { get; }
    public string LogPath => Path.Combine(Dir, "pgbouncer.log");
    public int? Pid => _process is { HasExited: false } p ? p.Id : null;

    /// <summary>The <c>pgbouncer:</c> entry a router.yml needs to drive this PgBouncer.</summary>
    public PgBouncerConfig AdminConfig(double pauseTimeout = 5) =>
        new() { Host = "127.0.0.1", Port = Port, User = AdminUser, Password = AdminPassword, PauseTimeout = pauseTimeout };

    /// <summary>A router.yml <c>pgbouncer:</c> list item for this PgBouncer.</summary>
    public string RouterYamlEntry(double pauseTimeout = 5) =>
        FormattableString.Invariant($"  - host: 127.0.0.1\n    port: {Port}\n    user: {AdminUser}\n    password: {AdminPassword}\n    pause_timeout: {pauseTimeout}\n");

    /// <summary>
    /// Starts PgBouncer in front of 127.0.0.1:<paramref name="targetPort"/> and waits until its admin console answers.
    /// <paramref name="authType"/> is the ini's auth_type (clients and admin alike).
    /// </summary>
    public static async Task<TestPgBouncer> StartAsync(TempDir parent, string name, int targetPort, ITestOutputHelper output,
        string authType = "scram-sha-256", string poolMode = "transaction", int? port = null)
    {
        var dir = parent.Sub(name);
        Directory.CreateDirectory(dir);
        var bouncer = new TestPgBouncer(dir, port ?? FreePorts.Next(), targetPort, output);
        await File.WriteAllTextAsync(Path.Combine(dir, "userlist.txt"),
            $"\"{TestCluster.Superuser}\" \"{TestCluster.SuperPassword}\"\n\"{AdminUser}\" \"{AdminPassword}\"\n");
        await File.WriteAllTextAsync(Path.Combine(dir, "pgbouncer.ini"), $"""
            [databases]
            * = host=127.0.0.1 port={targetPort}

            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = {bouncer.Port}
            unix_socket_dir =
            auth_type = {authType}
            auth_file = {dir}/userlist.txt
            admin_users = {AdminUser}
            pool_mode = {poolMode}
            max_client_conn = 200
            default_pool_size = 20
            ignore_startup_parameters = extra_float_digits
            logfile = {dir}/pgbouncer.log

            """);
        await Chown.PostgresAsync(dir);
        try
        {
            bouncer.Start();
            await bouncer.WaitUntilAnsweringAsync(TimeSpan.FromSeconds(20));
            return bouncer;
        }
        catch
        {
            await bouncer.DisposeAsync(); // the caller never gets it to dispose
            throw;
        }
    }

    /// <summary>(Re)starts the PgBouncer process with the same ini and port.</summary>
    public void Start()
    {
        var psi = new ProcessStartInfo(Environment.UserName == "root" ? "setpriv" : Program)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (Environment.UserName == "root")
        {
            foreach (var a in new[] { "--reuid=postgres", "--regid=postgres", "--init-groups", "--", Program })
            {
                psi.ArgumentList.Add(a);
            }
        }

        psi.ArgumentList.Add(Path.Combine(Dir, "pgbouncer.ini"));
        _process = Process.Start(psi) ?? throw new InvalidOperationException("could not start pgbouncer");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public async Task WaitUntilAnsweringAsync(TimeSpan timeout) =>
        await Poll.UntilAsync(async () =>
        {
            if (_process is { HasExited: true })
            {
                throw new InvalidOperationException($"pgbouncer exited: {await ReadLogAsync()}");
            }

            try
            {
                await AdminAsync("SHOW VERSION");
                return true;
            }
            catch (AdminConsoleException)
            {
                return false;
            }
        }, timeout, $"pgbouncer on {Port} answering its admin console");

    /// <summary>One admin-console command as <see cref="AdminUser"/>.</summary>
    public async Task<AdminResult> AdminAsync(string command)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var console = await AdminConsole.ConnectAsync(AdminConfig(), cts.Token);
        return await console.ExecuteAsync(command, cts.Token);
    }

    /// <summary>A client connection string through this PgBouncer, as the cluster's superuser (no client-side pool).</summary>
    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port};Username={TestCluster.Superuser};Password={TestCluster.SuperPassword};Database={database};Timeout=30;Command Timeout=60;Pooling=false";

    /// <summary>SIGKILL by PID (PgBouncer down), waiting until it is gone.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } p)
        {
            Signals.Send(p.Id, Signals.SIGKILL);
            await p.WaitForExitAsync();
        }
    }

    private async Task<string> ReadLogAsync()
    {
        try
        {
            using var fs = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(fs);
            return await reader.ReadToEndAsync();
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { } p)
        {
            if (!p.HasExited)
            {
                Signals.Send(p.Id, Signals.SIGCONT);
                Signals.Send(p.Id, Signals.SIGTERM); // immediate shutdown
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await p.WaitForExitAsync(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    Signals.Send(p.Id, Signals.SIGKILL);
                    await p.WaitForExitAsync();
                }
            }

            p.Dispose();
        }

        var log = await ReadLogAsync();
        _output.WriteLine($"--- pgbouncer {Port} log (last lines)\n{string.Join('\n', log.Split('\n').TakeLast(40))}");
    }
}
