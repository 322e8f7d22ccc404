using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Steward.Agent;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;
using Steward.Core.Postgres;

namespace Steward.Rest;

/// <summary>
/// The agent's REST API, compatible with Patroni's (an HAProxy config written for Patroni works unchanged). Health
/// endpoints answer 200 or 503 with the <c>/patroni</c> status as body; HEAD and OPTIONS answer the same status with
/// no body (HAProxy's bare <c>option httpchk</c> sends <c>OPTIONS /</c>).
///
/// Where Steward differs from Patroni on purpose: <c>/leader</c> and <c>/primary</c> answer 200 only once PostgreSQL
/// accepts writes and not while a demotion is under way (Patroni answers 200 as soon as it holds the lock, so a load
/// balancer may send writes to a server still in recovery: Patroni issues #2756, #2972).
/// </summary>
internal static class RestApi
{
    private static readonly string[] Methods = ["GET", "HEAD", "OPTIONS"];

    /// <summary>The largest request body accepted: every body the API takes is a small JSON object (413 above it).</summary>
    internal const long MaxRequestBodyBytes = 64 * 1024;

    /// <summary>
    /// Limits for a server that faces hostile clients (docs/security.md, "Hostile input to the REST API"): the bodies are small
    /// JSON objects, a client that sends its headers or body slowly is dropped within seconds (slowloris), and the number
    /// of open connections is bounded, so neither memory nor the thread pool the HA cycle shares can be exhausted.
    /// </summary>
    internal static void LimitServer(KestrelServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.AddServerHeader = false;
        var limits = options.Limits;
        limits.MaxRequestBodySize = MaxRequestBodyBytes;
        limits.MaxRequestHeaderCount = 64;
        limits.MaxRequestHeadersTotalSize = 16 * 1024;
        limits.MaxRequestLineSize = 8 * 1024;
        limits.RequestHeadersTimeout = TimeSpan.FromSeconds(5);
        limits.KeepAliveTimeout = TimeSpan.FromSeconds(30);
        limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(3));
        limits.MinResponseDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(3));
        limits.MaxConcurrentConnections = 1000;
        limits.MaxConcurrentUpgradedConnections = 0;
        limits.Http2.MaxStreamsPerConnection = 32;
    }

    public static void Map(IEndpointRouteBuilder app, NodeAgent agent, AgentMetrics metrics)
    {
        MapHealth(app, agent, ["/", "/primary", "/master", "/read-write"], (s, _) => s.HoldsLeader && s.IsPrimaryAcceptingWrites);
        MapHealth(app, agent, ["/leader"], (s, _) => s.HoldsLeader && (s.IsPrimaryAcceptingWrites || s.IsStandbyLeader));
        MapHealth(app, agent, ["/standby-leader", "/standby_leader"], (s, _) => s.IsStandbyLeader);
        MapHealth(app, agent, ["/replica"], (s, q) => !s.HoldsLeader && s.IsReplicaRunning && !s.Demoting && !agent.Config.Tags.NoLoadBalance && ReplicaQueryOk(agent, s, q));
        MapHealth(app, agent, ["/read-only"], (s, q) => (s.HoldsLeader && s.IsPrimaryAcceptingWrites) || (s.IsReplicaRunning && !agent.Config.Tags.NoLoadBalance && ReplicaQueryOk(agent, s, q)));
        MapHealth(app, agent, ["/sync", "/synchronous"], (s, q) => IsSyncStandby(agent, s) && ReplicaQueryOk(agent, s, q));
        MapHealth(app, agent, ["/quorum"], (s, q) => IsQuorumStandby(agent, s) && ReplicaQueryOk(agent, s, q));
        MapHealth(app, agent, ["/read-only-quorum"], (s, q) => (s.HoldsLeader && s.IsPrimaryAcceptingWrites) || (IsQuorumStandby(agent, s) && ReplicaQueryOk(agent, s, q)));
        MapHealth(app, agent, ["/read-only-sync"], (s, q) => (s.HoldsLeader && s.IsPrimaryAcceptingWrites) || (IsSyncStandby(agent, s) && ReplicaQueryOk(agent, s, q)));
        MapHealth(app, agent, ["/async", "/asynchronous"], (s, q) => !s.HoldsLeader && s.IsReplicaRunning && !IsSyncStandby(agent, s) && !IsQuorumStandby(agent, s) && ReplicaQueryOk(agent, s, q));
        MapHealth(app, agent, ["/health"], (s, _) => s.Pg.Running && s.Pg.Accepting);
        MapHealth(app, agent, ["/liveness"], (s, _) => Live(agent, s));
        MapHealth(app, agent, ["/readiness"], (s, _) => (s.HoldsLeader && s.IsPrimaryAcceptingWrites) || (s.IsReplicaRunning && (s.Pg.Streaming || agent.Config.Tags.NoStream)));

        app.MapMethods("/patroni", Methods, (HttpContext ctx) => Write(ctx, 200, Status(agent, agent.HealthSnapshot())));
        app.MapMethods("/cluster", Methods, (HttpContext ctx) => Write(ctx, 200, ClusterJson(agent)));
        app.MapMethods("/history", Methods, (HttpContext ctx) => Write(ctx, 200, HistoryJson(agent.Snapshot.Cluster?.History ?? [])));
        app.MapMethods("/config", Methods, (HttpContext ctx) =>
            agent.Snapshot.Cluster?.Config is { } cfg
                ? Write(ctx, 200, JsonNode.Parse(DynamicConfigJson.Serialize(cfg.Value)))
                : Write(ctx, 502, new JsonObject { ["error"] = "the cluster has no config key" }));
        app.MapMethods("/metrics", Methods, async (HttpContext ctx) =>
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            if (HttpMethods.IsGet(ctx.Request.Method))
            {
                await metrics.WriteAsync(agent.Snapshot, ctx.Response.Body, ctx.RequestAborted).ConfigureAwait(false);
            }
        });
    }

    private static void MapHealth(IEndpointRouteBuilder app, NodeAgent agent, string[] paths, Func<AgentSnapshot, IQueryCollection, bool> healthy)
    {
        foreach (var path in paths)
        {
            app.MapMethods(path, Methods, (HttpContext ctx) =>
            {
                var snap = agent.HealthSnapshot();
                return Write(ctx, healthy(snap, ctx.Request.Query) ? 200 : 503, Status(agent, snap));
            });
        }
    }

    private static Task Write(HttpContext ctx, int status, JsonNode? body)
    {
        ctx.Response.StatusCode = status;
        if (!HttpMethods.IsGet(ctx.Request.Method))
        {
            return Task.CompletedTask;
        }

        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(body?.ToJsonString() ?? "null", ctx.RequestAborted);
    }

    private static bool Live(NodeAgent agent, AgentSnapshot s)
    {
        var ttl = TimeSpan.FromSeconds(agent.Settings.Ttl);
        var limit = s.HoldsLeader ? ttl : ttl * 2;
        return agent.SinceLastCycle <= limit;
    }

    /// <summary>A running replica on record in the <c>sync</c> key while (priority) synchronous mode is on.</summary>
    internal static bool IsSyncStandby(NodeAgent agent, AgentSnapshot s) =>
        !s.HoldsLeader && s.IsReplicaRunning && IsOnRecord(s.Cluster, agent.Config.Name, quorum: false);

    /// <summary>A running replica that is a voter in the <c>sync</c> key while quorum commit is on.</summary>
    internal static bool IsQuorumStandby(NodeAgent agent, AgentSnapshot s) =>
        !s.HoldsLeader && s.IsReplicaRunning && IsOnRecord(s.Cluster, agent.Config.Name, quorum: true);

    private static bool IsOnRecord(ClusterView? cluster, string member, bool quorum) =>
        cluster is { Config.Value.SynchronousMode: true, Sync: { } sync } && cluster.Config.Value.SynchronousModeQuorum == quorum
        && sync.Leader == cluster.Leader?.Name && sync.IsStandby(member);

    /// <summary>Patroni's query parameters for replica checks: <c>lag=&lt;max lag&gt;</c> and <c>&lt;tag&gt;=&lt;value&gt;</c>.</summary>
    private static bool ReplicaQueryOk(NodeAgent agent, AgentSnapshot s, IQueryCollection query)
    {
        foreach (var (key, values) in query)
        {
            var value = values.ToString();
            if (key == "lag")
            {
                if (!ByteSize.TryParse(value, out var maxLag))
                {
                    return false;
                }

                // Patroni counts an unknown leader position as 0 (so an unknown lag passes).
                var leaderLsn = s.Cluster?.Status?.Optime ?? 0;
                if (leaderLsn - (s.Pg.Lsn ?? 0) > maxLag)
                {
                    return false;
                }
            }
            else if (!agent.Config.Tags.All.TryGetValue(key, out var tag)
                     || !string.Equals(TagText(tag), value, StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        return true;
    }

    private static string? TagText(object? tag) => tag switch
    {
        null => null,
        bool b => b ? "true" : "false",
        _ => Convert.ToString(tag, CultureInfo.InvariantCulture),
    };

    /// <summary>The body of <c>GET /patroni</c>, in Patroni's shape.</summary>
    internal static JsonObject Status(NodeAgent agent, AgentSnapshot s)
    {
        var pg = s.Pg;
        var o = new JsonObject
        {
            ["state"] = s.State,
            ["role"] = s.Role,
        };
        if (pg.PostmasterStartTime is { } started)
        {
            o["postmaster_start_time"] = started.ToString("yyyy-MM-dd HH:mm:ss.ffffffzzz", CultureInfo.InvariantCulture);
        }

        if (pg.ServerVersion is { } v)
        {
            o["server_version"] = v;
        }

        if (pg.InRecovery == false && pg.Running)
        {
            o["xlog"] = new JsonObject { ["location"] = pg.WriteLsn };
            o["replication"] = new JsonArray(pg.Replication.Select(r => (JsonNode)new JsonObject
            {
                ["usename"] = r.UserName,
                ["application_name"] = r.ApplicationName,
                ["client_addr"] = r.ClientAddr,
                ["state"] = r.State,
                ["sync_state"] = r.SyncState,
            }).ToArray());
        }
        else if (pg.Running)
        {
            o["xlog"] = new JsonObject
            {
                ["received_location"] = pg.ReceiveLsn,
                ["replayed_location"] = pg.ReplayLsn,
                ["replayed_timestamp"] = pg.ReplayTimestamp?.ToString("O", CultureInfo.InvariantCulture),
                ["paused"] = false,
            };
            if (pg.Streaming)
            {
                o["replication_state"] = "streaming";
            }
            else if (agent.Config.Tags.NoStream && pg.Running && pg.InRecovery == true)
            {
                o["replication_state"] = "in archive recovery"; // Patroni 4's word for a nostream replica
            }
        }

        if ((pg.Timeline ?? pg.ControlTimeline) is { } tl)
        {
            o["timeline"] = tl;
        }

        o["cluster_unlocked"] = s.Cluster is not null && s.Cluster.Leader is null;
        if (s.DcsLastSeen is { } seen)
        {
            o["dcs_last_seen"] = seen.ToUnixTimeSeconds();
        }

        if (pg.SystemId is { } id)
        {
            o["database_system_identifier"] = id;
        }

        if (pg.PendingRestart)
        {
            o["pending_restart"] = true;
        }

        if (agent.Settings.Pause)
        {
            o["pause"] = true;
        }

        if (IsSyncStandby(agent, s))
        {
            o["sync_standby"] = true;
        }

        if (IsQuorumStandby(agent, s))
        {
            o["quorum_standby"] = true;
        }

        if (s.WalAfterLeaderGone)
        {
            o["wal_after_leader_gone"] = true; // Steward's addition: the WAL position was read with no leader left (a quorum vote)
        }

        if (s.LastDecision is { } decision)
        {
            o["ha_decision"] = decision; // Steward's addition: the last HA cycle's sentence, e.g. why it does not promote
        }

        if (agent.PendingScheduledRestart is { } restart)
        {
            o["scheduled_restart"] = new JsonObject
            {
                ["schedule"] = restart.At.ToString("O", CultureInfo.InvariantCulture),
                ["restart_pending"] = restart.PendingOnly,
            };
        }

        if (agent.Config.Tags.All.Count > 0)
        {
            o["tags"] = JsonSerializer.SerializeToNode(agent.Config.Tags.All, StewardJson.Default.IReadOnlyDictionaryStringObject);
        }

        o["patroni"] = new JsonObject
        {
            ["version"] = VersionInfo.Version,
            ["scope"] = agent.Config.Scope,
            ["name"] = agent.Config.Name,
        };
        return o;
    }

    private static JsonObject ClusterJson(NodeAgent agent)
    {
        var cluster = agent.Snapshot.Cluster;
        var members = new JsonArray();
        var leaderLsn = cluster?.Status?.Optime;
        foreach (var m in cluster?.Members ?? [])
        {
            var isLeader = cluster?.Leader?.Name == m.Name;
            var address = m.Data.ConnUrl is { } url ? ConnUrl.Parse(url) : null;
            var o = new JsonObject
            {
                ["name"] = m.Name,
                ["role"] = isLeader ? cluster?.Config?.Value.StandbyCluster is not null ? "standby_leader" : "leader" : m.Data.Role == "primary" ? "primary" : IsOnRecord(cluster, m.Name, quorum: false) ? "sync_standby"
                    : IsOnRecord(cluster, m.Name, quorum: true) ? "quorum_standby" : "replica",
                ["state"] = m.Data.ReplicationState ?? m.Data.State,
                ["api_url"] = m.Data.ApiUrl,
                ["host"] = address?.Host,
                ["port"] = address?.Port,
                ["timeline"] = m.Data.Timeline,
            };
            if (!isLeader)
            {
                o["lag"] = leaderLsn is { } l && m.Data.XlogLocation is { } x ? Math.Max(0, l - x) : "unknown";
            }

            if (m.Data.Tags is { Count: > 0 } tags)
            {
                o["tags"] = JsonSerializer.SerializeToNode(tags, StewardJson.Default.IReadOnlyDictionaryStringObject);
            }

            members.Add((JsonNode)o);
        }

        var result = new JsonObject { ["members"] = members, ["scope"] = agent.Config.Scope };
        if (agent.Settings.Pause)
        {
            result["pause"] = true;
        }

        return result;
    }

    internal static JsonArray HistoryJson(IReadOnlyList<HistoryEntry> history) =>
        new(history.Select(h => (JsonNode)new JsonArray(h.Timeline, h.Lsn, h.Reason, h.Time.ToString("O", CultureInfo.InvariantCulture), h.NewLeader)).ToArray());
}
