using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Steward.Agent;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Etcd;
using Steward.Router.Dashboard;
using Steward.Router.DataPath;
using Steward.Router.PgBouncer;
using Steward.Router.Routing;
using Steward.Rest;

namespace Steward.Router;

/// <summary>
/// <c>steward router -c router.yml</c>: the write and read ports in front of the cluster (HAProxy's job in the seed's
/// stack), following etcd by watch, and a stats port (the dashboard at <c>/dashboard</c>, HAProxy-like <c>/stats</c>,
/// <c>/stats.json</c>, Prometheus <c>/metrics</c>).
/// </summary>
internal static partial class RouterHost
{
    public static async Task<int> RunAsync(string configPath, CancellationToken outer)
    {
        RouterConfig config;
        try
        {
            config = RouterConfigLoader.Load(configPath);
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync($"steward router: invalid configuration: {e.Message}").ConfigureAwait(false);
            return NodeHost.ExitConfig;
        }

        using var loggers = NodeHost.CreateLoggers("INFO");
        var log = loggers.CreateLogger("steward.router");
        EtcdClusterStore createdStore;
        HttpClient createdHttp;
        try
        {
            // Every certificate and key is read now: a bad one stops the start-up with the key and file named.
            createdHttp = RestHttp.Create(config.Ctl);
            createdStore = EtcdClusterStore.Create(config.Etcd3, config.KeyPrefix, TimeSpan.FromSeconds(2), TimeProvider.System,
                loggers.CreateLogger<EtcdClusterStore>());
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync($"steward router: invalid configuration: {e.Message}").ConfigureAwait(false);
            return NodeHost.ExitConfig;
        }

        await using var store = createdStore;
        using var http = createdHttp;
        await using var watcher = new ClusterWatcher(store, http, config.Read?.MaxLag ?? 1048576, TimeSpan.FromSeconds(config.EtcdUnreachableGrace),
            TimeProvider.System, log, syncStandbys: config.Read?.SyncStandbys ?? SyncStandbyReads.Include);
        try
        {
            // A busy etcd may be slow to answer the first call: try for a while (as the agent does) before giving up.
            var giveUpAt = TimeProvider.System.GetTimestamp() + (long)(10 * (double)TimeProvider.System.TimestampFrequency);
            while (true)
            {
                try
                {
                    await store.LoadAsync(outer).ConfigureAwait(false);
                    break;
                }
                catch (StoreUnavailableException) when (TimeProvider.System.GetTimestamp() < giveUpAt)
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), outer).ConfigureAwait(false);
                }
            }

            await watcher.StartAsync(outer).ConfigureAwait(false);
        }
        catch (StoreUnavailableException e)
        {
            await Console.Error.WriteLineAsync($"steward router: cannot reach etcd at {string.Join(", ", config.Etcd3.Endpoints)} (etcd3.hosts): {e.Message}").ConfigureAwait(false);
            return NodeHost.ExitEnvironment;
        }

        using var engine = ProxyEngines.Create();
        var closeOnLeaderChange = config.Write.CloseSessionsOnLeaderChange;
        var listeners = new List<Listener>
        {
            new(ListenerKind.Write, config.Write.Listen, watcher, engine, TimeSpan.FromSeconds(config.Write.HoldTimeout),
                TimeSpan.FromSeconds(config.ConnectTimeout), fallbackToLeader: false, closeOnLeaderChange, TimeProvider.System, log),
        };
        if (config.Read is { } read)
        {
            listeners.Add(new Listener(ListenerKind.Read, read.Listen, watcher, engine, TimeSpan.FromSeconds(config.Write.HoldTimeout),
                TimeSpan.FromSeconds(config.ConnectTimeout), read.FallbackToLeader, closeOnLeaderChange, TimeProvider.System, log));
        }

        InjectHandoverDelay(listeners);
        watcher.Changed += (old, now) =>
        {
            // No client keeps writing to a member that lost the leader key, on either port.
            foreach (var l in listeners)
            {
                var closed = l.OnTableChanged(old, now);
                if (closeOnLeaderChange && old.Leader is { } before && now.Leader?.Name != before.Name)
                {
                    LogSessionsClosed(log, closed, l.Stats.Name, before.Name, now.Leader?.Name ?? "(none)");
                }
            }
        };

        try
        {
            foreach (var l in listeners)
            {
                l.Start();
                LogListening(log, l.Stats.Name, l.Stats.Address);
            }
        }
        catch (SocketException e)
        {
            await Console.Error.WriteLineAsync($"steward router: cannot listen: {e.Message} (is the port taken? see write.listen / read.listen)").ConfigureAwait(false);
            foreach (var l in listeners)
            {
                await l.DisposeAsync().ConfigureAwait(false);
            }

            return NodeHost.ExitEnvironment;
        }

        PgBouncerCoordinator? pgBouncers = null;
        if (config.PgBouncers.Count > 0)
        {
            pgBouncers = new PgBouncerCoordinator(config, store, store, watcher, TimeProvider.System, loggers.CreateLogger("steward.pgbouncer"))
            {
                PauseDelay = TestDelay("STEWARD_TEST_PAUSE_DELAY_MS"),
            };
            try
            {
                await pgBouncers.StartAsync(outer).ConfigureAwait(false);
            }
            catch (StoreUnavailableException e)
            {
                await Console.Error.WriteLineAsync($"steward router: cannot register in etcd for the PgBouncer pause: {e.Message}").ConfigureAwait(false);
                await pgBouncers.DisposeAsync().ConfigureAwait(false);
                return NodeHost.ExitEnvironment;
            }
        }

        WebApplication? web = null;
        await using var dashboard = new DashboardState(config, watcher, listeners, http, TimeProvider.System, pgBouncers);
        if (config.Stats is { } statsAddress)
        {
            web = BuildStats(statsAddress, config, watcher, listeners, pgBouncers);
            dashboard.Start();
            DashboardEndpoints.Map(web, dashboard, config, watcher, http, log);
            try
            {
                await web.StartAsync(outer).ConfigureAwait(false);
                LogListening(log, "stats", statsAddress.ToString());
            }
            catch (IOException e)
            {
                await Console.Error.WriteLineAsync($"steward router: stats.listen {statsAddress}: {e.Message}").ConfigureAwait(false);
                return NodeHost.ExitEnvironment;
            }
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(outer);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        if (pgBouncers is not null)
        {
            await pgBouncers.DisposeAsync().ConfigureAwait(false); // RESUMEs whatever is still paused
        }

        foreach (var l in listeners)
        {
            await l.DisposeAsync().ConfigureAwait(false);
        }

        if (web is not null)
        {
            await web.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await web.DisposeAsync().ConfigureAwait(false);
        }

        return 0;
    }

    /// <summary>
    /// Fault injection for tests only (<c>STEWARD_TEST_HANDOVER_DELAY_MS</c>): each hand-over of a client pauses this
    /// long after the table was checked again and before forwarding starts, widening the window in which a leader
    /// change must still reach the session.
    /// </summary>
    private static void InjectHandoverDelay(List<Listener> listeners)
    {
        var delay = TestDelay("STEWARD_TEST_HANDOVER_DELAY_MS");
        if (delay > TimeSpan.Zero)
        {
            var ms = (int)delay.TotalMilliseconds;
            foreach (var l in listeners)
            {
                l.OnStep = (step, _) =>
                {
                    if (step == ServeStep.Checked)
                    {
                        Thread.Sleep(ms);
                    }
                };
            }
        }
    }

    /// <summary>A fault-injection delay for tests, in milliseconds from the environment (zero when unset).</summary>
    private static TimeSpan TestDelay(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { } text && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var ms) && ms > 0
            ? TimeSpan.FromMilliseconds(ms)
            : TimeSpan.Zero;

    private static WebApplication BuildStats(HostPort address, RouterConfig config, ClusterWatcher watcher, List<Listener> listeners, PgBouncerCoordinator? pgBouncers)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            if (IPAddress.TryParse(address.Host, out var ip))
            {
                k.Listen(ip, address.Port);
            }
            else
            {
                k.ListenAnyIP(address.Port);
            }
        });
        var app = builder.Build();
        var registry = new PrometheusText();
        var sessions = registry.CreateGauge("steward_router_sessions", "Current sessions per listener and backend.", "listener", "backend");
        var total = registry.CreateGauge("steward_router_sessions_total", "Sessions since start per listener and backend.", "listener", "backend");
        var bytesIn = registry.CreateGauge("steward_router_bytes_in_total", "Bytes from clients to the backend.", "listener", "backend");
        var bytesOut = registry.CreateGauge("steward_router_bytes_out_total", "Bytes from the backend to clients.", "listener", "backend");
        var errors = registry.CreateGauge("steward_router_errors_total", "Connection errors (no backend within hold_timeout, connect failures).", "listener");
        var holding = registry.CreateGauge("steward_router_holding", "Clients waiting for a backend (e.g. during a failover).", "listener");
        var writer = registry.CreateGauge("steward_router_writer_available", "1 when the write port has a leader to send connections to.");
        var bouncerState = registry.CreateGauge("steward_router_pgbouncer_state",
            "1 for each PgBouncer's current state (resumed, pausing, paused, unreachable), 0 for the others.", "pgbouncer", "state");
        var bouncerPause = registry.CreateGauge("steward_router_pgbouncer_last_pause_seconds",
            "How long each PgBouncer's last switchover pause lasted (PAUSE sent to RESUME answered).", "pgbouncer");

        app.MapGet("/stats.json", () => Results.Text(StatsJson(config, watcher, listeners, pgBouncers).ToJsonString(), "application/json"));
        app.MapGet("/metrics", async (HttpContext ctx) =>
        {
            foreach (var l in listeners)
            {
                errors.Set(l.Stats.Errors, l.Stats.Name);
                holding.Set(l.Stats.Holding, l.Stats.Name);
                foreach (var b in l.Backends)
                {
                    sessions.Set(b.Current, l.Stats.Name, b.Name);
                    total.Set(b.Total, l.Stats.Name, b.Name);
                    bytesIn.Set(b.BytesIn, l.Stats.Name, b.Name);
                    bytesOut.Set(b.BytesOut, l.Stats.Name, b.Name);
                }
            }

            writer.Set(watcher.Table.Writer is null ? 0 : 1);
            foreach (var b in pgBouncers?.Status ?? [])
            {
                foreach (var state in PgBouncerStates)
                {
                    bouncerState.Set(b.State == state ? 1 : 0, b.Address, state);
                }

                if (b.LastPause is { } pause)
                {
                    bouncerPause.Set(pause.TotalSeconds, b.Address);
                }
            }

            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await registry.WriteAsync(ctx.Response.Body, ctx.RequestAborted).ConfigureAwait(false);
        });
        app.MapGet("/stats", () => Results.Content(StatsHtml(config, watcher, listeners, pgBouncers), "text/html; charset=utf-8"));
        return app;
    }

    private static readonly string[] PgBouncerStates = ["resumed", "pausing", "paused", "unreachable"];

    internal static JsonObject StatsJson(RouterConfig config, ClusterWatcher watcher, IEnumerable<Listener> listeners, PgBouncerCoordinator? pgBouncers)
    {
        var table = watcher.Table;
        var result = new JsonObject
        {
            ["scope"] = config.Scope,
            ["leader"] = table.Leader?.Name,
            ["writer"] = table.Writer?.Name,
            ["reason"] = table.Reason,
            ["etcd_stale"] = watcher.IsStale,
            ["etcd_confirmed_ms_ago"] = (long)watcher.ConfirmationAge.TotalMilliseconds,
            ["etcd_stale_after_ms"] = (long)watcher.StaleAfter.TotalMilliseconds,
            ["readers"] = new JsonArray(table.Readers.Select(r => (JsonNode)JsonValue.Create(r.Name)!).ToArray()),
        };
        var array = new JsonArray();
        foreach (var l in listeners)
        {
            var eligible = l.Stats.Name == "write"
                ? (table.Writer is null ? [] : new[] { table.Writer.Name })
                : table.Readers.Select(r => r.Name).ToArray();
            array.Add((JsonNode)new JsonObject
            {
                ["name"] = l.Stats.Name,
                ["address"] = l.Stats.Address,
                ["state"] = l.Stats.State,
                ["current_sessions"] = l.Stats.Current,
                ["total_sessions"] = l.Stats.Total,
                ["holding"] = l.Stats.Holding,
                ["errors"] = l.Stats.Errors,
                ["backends"] = new JsonArray(l.Backends.OrderBy(b => b.Name, StringComparer.Ordinal).Select(b => (JsonNode)new JsonObject
                {
                    ["name"] = b.Name,
                    ["state"] = eligible.Contains(b.Name) ? "UP" : "DOWN",
                    ["current_sessions"] = b.Current,
                    ["total_sessions"] = b.Total,
                    ["bytes_in"] = b.BytesIn,
                    ["bytes_out"] = b.BytesOut,
                    ["connect_errors"] = b.ConnectErrors,
                    ["last_change"] = b.LastChange.ToString("O", CultureInfo.InvariantCulture),
                }).ToArray()),
            });
        }

        result["listeners"] = array;
        result["pgbouncers"] = PgBouncersJson(pgBouncers);
        result["pgbouncer_last_pause_ms"] = pgBouncers?.LastPause is { } last ? Math.Round(last.TotalMilliseconds) : null;
        return result;
    }

    /// <summary>Each PgBouncer this router drives: address, state (resumed, pausing, paused, unreachable), detail, last pause.</summary>
    internal static JsonArray PgBouncersJson(PgBouncerCoordinator? pgBouncers) =>
        new((pgBouncers?.Status ?? []).Select(b => (JsonNode)new JsonObject
        {
            ["address"] = b.Address,
            ["state"] = b.State,
            ["detail"] = b.Detail,
            ["last_pause_ms"] = b.LastPause is { } p ? Math.Round(p.TotalMilliseconds) : null,
            ["last_pause_at"] = b.LastPauseAt?.ToString("O", CultureInfo.InvariantCulture),
            ["pauses"] = b.Pauses,
        }).ToArray());

    private static string StatsHtml(RouterConfig config, ClusterWatcher watcher, IEnumerable<Listener> listeners, PgBouncerCoordinator? pgBouncers)
    {
        var json = StatsJson(config, watcher, listeners, pgBouncers);
        var sb = new StringBuilder();
        sb.Append("<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\"><title>Steward router — ")
          .Append(WebUtility.HtmlEncode(config.Scope))
          .Append("</title><style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}"
                  + "td,th{border:1px solid #999;padding:.3em .6em;text-align:right}th{background:#ddd}td:first-child{text-align:left}"
                  + ".UP{background:#c0f0c0}.DOWN{background:#f0c0c0}.OPEN{background:#c0f0c0}.PAUSED{background:#f0e0a0}</style></head><body>");
        sb.Append("<h1>Steward router: ").Append(WebUtility.HtmlEncode(config.Scope)).Append("</h1><p><a href=\"/dashboard\">dashboard</a></p><p>writes → <b>")
          .Append(WebUtility.HtmlEncode(json["writer"]?.ToString() ?? "(none)")).Append("</b>");
        if (json["reason"] is { } reason)
        {
            sb.Append(" (").Append(WebUtility.HtmlEncode(reason.ToString())).Append(')');
        }

        sb.Append("</p>");
        foreach (var l in json["listeners"]!.AsArray())
        {
            sb.Append("<h2>").Append(WebUtility.HtmlEncode(l!["name"]!.ToString())).Append(" — ").Append(WebUtility.HtmlEncode(l["address"]!.ToString()))
              .Append("</h2><table><tr><th>backend</th><th>state</th><th>sessions now</th><th>sessions total</th><th>bytes in</th><th>bytes out</th><th>errors</th><th>last change</th></tr>");
            sb.Append(CultureInfo.InvariantCulture, $"<tr><td>FRONTEND</td><td class=\"{l["state"]}\">{l["state"]}</td><td>{l["current_sessions"]}</td><td>{l["total_sessions"]}</td><td></td><td></td><td>{l["errors"]}</td><td>holding {l["holding"]}</td></tr>");
            foreach (var b in l["backends"]!.AsArray())
            {
                sb.Append(CultureInfo.InvariantCulture, $"<tr><td>{WebUtility.HtmlEncode(b!["name"]!.ToString())}</td><td class=\"{b["state"]}\">{b["state"]}</td><td>{b["current_sessions"]}</td><td>{b["total_sessions"]}</td><td>{b["bytes_in"]}</td><td>{b["bytes_out"]}</td><td>{b["connect_errors"]}</td><td>{b["last_change"]}</td></tr>");
            }

            sb.Append("</table>");
        }

        if (json["pgbouncers"]!.AsArray().Count > 0)
        {
            sb.Append("<h2>PgBouncers (paused around a planned switchover)</h2><table><tr><th>admin console</th><th>state</th><th>detail</th><th>last pause ms</th><th>last pause at</th><th>pauses</th></tr>");
            foreach (var b in json["pgbouncers"]!.AsArray())
            {
                var state = b!["state"]!.ToString();
                var css = state switch { "resumed" => "UP", "unreachable" => "DOWN", _ => "PAUSED" };
                sb.Append(CultureInfo.InvariantCulture, $"<tr><td>{WebUtility.HtmlEncode(b["address"]!.ToString())}</td><td class=\"{css}\">{state}</td><td>{WebUtility.HtmlEncode(b["detail"]?.ToString() ?? "")}</td><td>{b["last_pause_ms"]}</td><td>{b["last_pause_at"]}</td><td>{b["pauses"]}</td></tr>");
            }

            sb.Append("</table>");
        }

        sb.Append("</body></html>");
        return sb.ToString();
    }

    [LoggerMessage(EventId = 4020, Level = LogLevel.Information, Message = "{Listener} listening on {Address}")]
    private static partial void LogListening(ILogger logger, string listener, string address);

    [LoggerMessage(EventId = 4021, Level = LogLevel.Warning, Message = "leader moved from {Old} to {New}: closed {Count} {Listener} sessions to {Old}")]
    private static partial void LogSessionsClosed(ILogger logger, int count, string listener, string old, string @new);
}
