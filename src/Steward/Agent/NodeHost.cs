using System.Net;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Steward.Agent.Fence;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;
using Steward.Etcd;
using Steward.Postgres;
using Steward.Rest;

namespace Steward.Agent;

/// <summary>
/// <c>steward node -c node.yml</c>: loads and checks everything before touching anything (config, PostgreSQL's programs,
/// the data directory, etcd, the REST port), then runs the agent until SIGTERM / SIGINT, and shuts down gracefully.
/// </summary>
internal static class NodeHost
{
    public const int ExitConfig = 2;
    public const int ExitEnvironment = 3;

    /// <summary>
    /// The REST address of a live agent that already runs under <paramref name="name"/>: its member key is in etcd and its
    /// API answers (any HTTP status). Null when there is none, or when the member key is a previous run's (its API is silent).
    /// </summary>
    internal static async Task<string?> AlreadyRunningAsync(ClusterView view, string name, HttpClient http, CancellationToken ct)
    {
        if (view.GetMember(name)?.Data.ApiUrl is not { } api || !Uri.TryCreate(api, UriKind.Absolute, out var uri))
        {
            return null;
        }

        for (var attempt = 0; attempt < 2; attempt++)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            try
            {
                using var response = await http.GetAsync(new Uri(uri, "/liveness"), timeout.Token).ConfigureAwait(false);
                return api;
            }
            catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !ct.IsCancellationRequested))
            {
            }
        }

        return null;
    }

    /// <summary>How long start-up keeps trying to reach etcd before it gives up with an error.</summary>
    private static readonly TimeSpan StartupEtcdWait = TimeSpan.FromSeconds(10);

    public static async Task<int> RunAsync(string configPath, CancellationToken outer)
    {
        StewardConfig config;
        try
        {
            config = ConfigLoader.Load(configPath);
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync($"steward: invalid configuration: {e.Message}").ConfigureAwait(false);
            return ExitConfig;
        }

        using var loggers = CreateLoggers(config.Log.Level);
        var log = loggers.CreateLogger("steward");
        foreach (var warning in config.Warnings)
        {
            Log.ConfigWarning(log, warning);
        }

        // Every certificate and key is read now: a bad one stops the start-up before anything is touched.
        ServerTls? tls;
        HttpClient http;
        try
        {
            tls = ServerTls.Load(config.RestApi);
            http = RestHttp.Create(config.Ctl);
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync($"steward: invalid configuration: {e.Message}. Nothing was changed.").ConfigureAwait(false);
            return ExitConfig;
        }

        using var httpOwner = http;
        if (!RestAccess.IsLoopbackOnly(config.RestApi.Listen.Host) && config.RestApi.Authentication is null
            && !(config.RestApi.Https && config.RestApi.VerifyClient != VerifyClient.None))
        {
            Log.RestUnprotected(log, config.RestApi.Listen.ToString());
        }

        var time = TimeProvider.System;
        var pg = new PostgresControl(config, loggers, time);
        if (await CheckEnvironmentAsync(config, pg, outer).ConfigureAwait(false) is { } problem)
        {
            await Console.Error.WriteLineAsync($"steward: {problem}").ConfigureAwait(false);
            return ExitEnvironment;
        }

        var dcs = config.Bootstrap.Dcs;
        EtcdClusterStore created;
        try
        {
            created = EtcdClusterStore.Create(config.Etcd3, config.KeyPrefix, TimeSpan.FromSeconds(dcs.RetryTimeout), time, loggers.CreateLogger<EtcdClusterStore>());
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync($"steward: invalid configuration: {e.Message}. Nothing was changed.").ConfigureAwait(false);
            return ExitConfig;
        }

        await using var store = created;
        // A busy etcd may be slow to answer the first call: try for a while before giving up (nothing is touched meanwhile).
        var giveUpAt = time.GetUtcNow() + StartupEtcdWait;
        var said = false;
        ClusterView view;
        while (true)
        {
            try
            {
                view = await store.LoadAsync(outer).ConfigureAwait(false);
                break;
            }
            catch (StoreUnavailableException e) when (time.GetUtcNow() < giveUpAt)
            {
                if (!said)
                {
                    await Console.Error.WriteLineAsync(
                        $"steward: waiting up to {StartupEtcdWait.TotalSeconds:0} s for etcd at {string.Join(", ", config.Etcd3.Endpoints)}: {e.Message}").ConfigureAwait(false);
                    said = true;
                }

                await Task.Delay(TimeSpan.FromSeconds(1), time, outer).ConfigureAwait(false);
            }
            catch (StoreUnavailableException e)
            {
                await Console.Error.WriteLineAsync(
                    $"steward: cannot reach etcd at {string.Join(", ", config.Etcd3.Endpoints)} (etcd3.hosts): {e.Message}. Nothing was changed.").ConfigureAwait(false);
                return ExitEnvironment;
            }
        }

        if (await AlreadyRunningAsync(view, config.Name, http, outer).ConfigureAwait(false) is { } api)
        {
            // Patroni's "Can't start; there is already a node named '...' running": two agents with one name would each take
            // the other's leader key for their own.
            await Console.Error.WriteLineAsync(
                $"steward: a member named '{config.Name}' is already running: its member key is in etcd and its REST API at {api} answers. " +
                "Refusing to start a second agent with the same name (set a unique `name:` in the configuration). Nothing was changed.").ConfigureAwait(false);
            return ExitEnvironment;
        }

        // The fence's supervisor runs from here on: it outlives this process if it is killed, and kills a primary whose
        // lease lapsed. Disposed last (after the graceful shutdown stopped PostgreSQL), which lets it exit.
        using var fence = new SupervisedFence(config.Postgresql.DataDir, time, loggers.CreateLogger("steward.fence"));
        fence.Start();
        var callbacks = new PostgresCallbacks(config, loggers, time);
        await using var agent = new NodeAgent(config, store, pg, new PeerClient(http, config.Ctl.Authentication), fence, time, loggers,
            SessionLedger.Beside(config.Postgresql.DataDir))
        {
            Callbacks = callbacks.Any ? callbacks : null,
        };
        await using var web = BuildWebApp(config, agent, loggers, tls);
        try
        {
            await web.StartAsync(outer).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await Console.Error.WriteLineAsync($"steward: restapi.listen {config.RestApi.Listen}: {e.Message}. Nothing was changed.").ConfigureAwait(false);
            return ExitEnvironment;
        }

        Log.RestListening(log, $"{(tls is null ? "http" : "https")}://{config.RestApi.Listen}"
            + (tls is null ? "" : $" (client certificates: {config.RestApi.VerifyClient.ToString().ToLowerInvariant()})"));

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(outer);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });

        int code;
        try
        {
            await agent.Lease.RenewAsync(stop.Token).ConfigureAwait(false);
            code = await agent.RunAsync(stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            code = 0;
        }
        catch (StoreUnavailableException e)
        {
            await Console.Error.WriteLineAsync($"steward: etcd became unreachable during start-up: {e.Message}").ConfigureAwait(false);
            code = ExitEnvironment;
        }

        if (agent.FatalReason is null)
        {
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(config.Postgresql.PgCtlTimeout + 10));
            await agent.ShutdownAsync(grace.Token).ConfigureAwait(false);
        }

        await web.StopAsync(CancellationToken.None).ConfigureAwait(false);
        return code;
    }

    private static async Task<string?> CheckEnvironmentAsync(StewardConfig config, PostgresControl pg, CancellationToken ct)
    {
        foreach (var program in new[] { "initdb", "pg_ctl", "postgres", "pg_basebackup", "pg_rewind", "pg_controldata" })
        {
            var path = Path.Combine(config.Postgresql.BinDir, program);
            if (!File.Exists(path))
            {
                return $"postgresql.bin_dir: {path} not found. Install PostgreSQL 15 (apt-get install postgresql-15) or fix bin_dir. Nothing was changed.";
            }
        }

        try
        {
            await pg.ValidateDataDirAsync(ct).ConfigureAwait(false);
        }
        catch (PostgresException e)
        {
            return $"postgresql.data_dir: {e.Message}. Nothing was changed.";
        }

        return null;
    }

    private static WebApplication BuildWebApp(StewardConfig config, NodeAgent agent, ILoggerFactory loggers, ServerTls? tls)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(RestApi.LimitServer);
        builder.WebHost.ConfigureKestrel(k =>
        {
            var host = config.RestApi.Listen.Host;
            var port = config.RestApi.Listen.Port;
            Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions> secure = listen => tls?.Apply(listen);
            if (host is "*" or "0.0.0.0" or "::" or "")
            {
                k.ListenAnyIP(port, secure);
            }
            else if (IPAddress.TryParse(host, out var ip))
            {
                k.Listen(ip, port, secure);
            }
            else
            {
                k.ListenLocalhost(port, secure);
            }
        });
        builder.Services.AddSingleton(loggers);
        var app = builder.Build();
        RestApi.Map(app, agent, new AgentMetrics(agent));
        RestActions.Map(app, agent, loggers.CreateLogger("steward.rest"));
        return app;
    }

    internal static ILoggerFactory CreateLoggers(string level) => LoggerFactory.Create(b =>
    {
        b.SetMinimumLevel(level.ToUpperInvariant() switch
        {
            "DEBUG" => LogLevel.Debug,
            "WARNING" or "WARN" => LogLevel.Warning,
            "ERROR" => LogLevel.Error,
            "CRITICAL" => LogLevel.Critical,
            _ => LogLevel.Information,
        });
        b.AddFilter("Microsoft", LogLevel.Warning);
        b.AddFilter("Grpc", LogLevel.Warning);
        b.AddFilter("System.Net.Http", LogLevel.Warning);
        b.AddConsole(o => o.FormatterName = PatroniLogFormatter.FormatterName);
        // Registered by hand: AddConsoleFormatter<,> binds options by reflection, which the native AOT build lacks.
        b.Services.TryAddEnumerable(ServiceDescriptor.Singleton<ConsoleFormatter, PatroniLogFormatter>());
    });
}
