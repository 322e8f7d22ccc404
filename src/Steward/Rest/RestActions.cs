using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Steward.Agent;
using Steward.Core.Cluster;
using Steward.Core.Ha;

namespace Steward.Rest;

/// <summary>
/// The agent's unsafe endpoints, with Patroni's bodies and status codes (docs/rest-actions.md): switchover, failover,
/// restart, reinitialize, reload, and PATCH / PUT of the dynamic configuration. Every request is checked before anything
/// is written; a rejected request changes nothing.
/// </summary>
internal static class RestActions
{
    private static readonly TimeSpan ActionTimeout = TimeSpan.FromSeconds(30);

    public static void Map(IEndpointRouteBuilder app, NodeAgent agent, Microsoft.Extensions.Logging.ILogger log)
    {
        var access = new RestAccess(agent.Config.RestApi, () => agent.Snapshot.Cluster?.Members ?? []);
        void On(string method, string path, Func<HttpContext, Task<IResult>> action) =>
            app.MapMethods(path, [method], new RequestDelegate(ctx => Guarded(ctx, access, log, action)));

        On("POST", "/switchover", ctx => SwitchoverAsync(ctx, agent, failover: false));
        On("POST", "/failover", ctx => SwitchoverAsync(ctx, agent, failover: true));
        On("DELETE", "/switchover", ctx => CancelSwitchoverAsync(agent, ctx.RequestAborted));
        On("POST", "/restart", ctx => RestartAsync(ctx, agent));
        On("DELETE", "/restart", _ => Task.FromResult(agent.CancelScheduledRestart()
            ? Text(200, "scheduled restart deleted")
            : Text(404, "no restart is scheduled")));
        On("POST", "/reinitialize", ctx => ReinitializeAsync(ctx, agent));
        On("POST", "/reload", _ =>
        {
            agent.RequestReload();
            return Task.FromResult(Text(202, "reload scheduled"));
        });
        On("POST", "/failsafe", ctx => FailsafeAsync(ctx, agent));
        On("PATCH", "/config", ctx => ConfigAsync(ctx, agent, patch: true));
        On("PUT", "/config", ctx => ConfigAsync(ctx, agent, patch: false));
    }

    private static async Task Guarded(HttpContext ctx, RestAccess access, Microsoft.Extensions.Logging.ILogger log, Func<HttpContext, Task<IResult>> action)
    {
        IResult result;
        if (access.Check(ctx) is { } refused)
        {
            if (refused.Status == 401)
            {
                ctx.Response.Headers.WWWAuthenticate = "Basic realm=\"steward\"";
            }

            Log.RestRefused(log, ctx.Request.Method, ctx.Request.Path, ctx.Connection.RemoteIpAddress?.ToString() ?? "?", refused.Status, refused.Reason);
            result = Text(refused.Status, refused.Reason);
        }
        else
        {
            try
            {
                result = await action(ctx).ConfigureAwait(false);
            }
            catch (StoreUnavailableException e)
            {
                result = Text(503, $"etcd is not accessible: {e.Message}");
            }
            catch (BadRequest e)
            {
                result = Text(400, e.Message);
            }
            catch (BadHttpRequestException e)
            {
                // A body over RestApi.MaxRequestBodyBytes (413), sent too slowly (408) or badly framed (400): the client's
                // fault, answered and not logged as an unhandled error with a stack trace per request (a flood of them
                // would fill the disk).
                result = Text(e.StatusCode, e.Message);
            }
        }

        if (ctx.RequestAborted.IsCancellationRequested)
        {
            return; // the server dropped the connection (a body sent too slowly): nobody to answer
        }

        await result.ExecuteAsync(ctx).ConfigureAwait(false);
    }

    internal static bool Authorized(HttpContext ctx, Steward.Core.Configuration.Credentials? authentication)
    {
        if (authentication is not { } auth)
        {
            return true;
        }

        var header = ctx.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        try
        {
            var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim()));
            var colon = pair.IndexOf(':', StringComparison.Ordinal);
            return colon > 0
                   && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                       Encoding.UTF8.GetBytes(pair[..colon] + "\n" + pair[(colon + 1)..]),
                       Encoding.UTF8.GetBytes(auth.Username + "\n" + (auth.Password ?? "")));
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>
    /// <c>POST /switchover</c> and <c>/failover</c>, checked in Patroni's order and answered in its words (scripts match on
    /// them; docs/cli.md has the table), with Steward's reason appended where Patroni gives none. Steward is stricter in
    /// two places: a candidate is checked when a switchover is scheduled too, and in synchronous mode only a synchronous
    /// standby may take over by failover as well (safety rule 2).
    /// </summary>
    private static async Task<IResult> SwitchoverAsync(HttpContext ctx, NodeAgent agent, bool failover)
    {
        var body = await ReadObjectAsync(ctx).ConfigureAwait(false) ?? throw new BadRequest("the body must be a JSON object");
        var leaderName = OptionalString(body, "leader") ?? OptionalString(body, "master"); // Patroni before 3.0 sent master
        var candidateName = OptionalString(body, "candidate") ?? OptionalString(body, "member");
        var ct = ctx.RequestAborted;
        var view = await agent.Store.LoadAsync(ct).ConfigureAwait(false);
        var settings = view.Config?.Value ?? agent.Config.Bootstrap.Dcs;
        if (failover && candidateName is null)
        {
            return Text(400, "Failover could be performed only to a specific candidate");
        }

        if (!failover && leaderName is null)
        {
            return Text(400, "Switchover could be performed only from a specific leader");
        }

        DateTimeOffset? scheduledAt = null;
        if (body.ContainsKey("scheduled_at") && body["scheduled_at"] is not null)
        {
            if (failover)
            {
                return Text(400, "Failover can't be scheduled");
            }

            if (settings.Pause)
            {
                return Text(400, "Can't schedule switchover in the paused state");
            }

            var (code, error, at) = ParseSchedule(body["scheduled_at"], "switchover");
            if (error is not null)
            {
                return Text(code, error);
            }

            scheduledAt = at;
        }

        if (settings.Pause && candidateName is null)
        {
            return Text(400, "Switchover is possible only to a specific candidate in a paused state");
        }

        // Patroni: a failover that names the leader is a switchover.
        var action = failover && leaderName is null ? "failover" : "switchover";
        if (leaderName is not null && leaderName == candidateName)
        {
            return Text(400, "Switchover target and source are the same");
        }

        if (view.Failover is not null)
        {
            return Text(409, "a switchover or failover is already pending");
        }

        if (leaderName is not null && view.Leader?.Name != leaderName)
        {
            return Text(412, $"leader name does not match: the leader is {view.Leader?.Name ?? "(none; use failover)"}, not {leaderName}");
        }

        var noGood = $"{action} is not possible: no good candidates have been found";
        if (candidateName is not null)
        {
            if (view.GetMember(candidateName) is not { } candidate)
            {
                return Text(412, $"candidate does not exists: no member named {candidateName}");
            }

            if (SyncReplication.PromotionBlocked(settings, view.Sync, candidateName) is { } notSync)
            {
                return Text(412, $"candidate name does not match with sync_standby: {notSync}");
            }

            if (candidateName == view.Leader?.Name)
            {
                return Text(412, $"{noGood} ({candidateName} is already the leader)");
            }

            if (Ineligible(candidate, view, settings.MaximumLagOnFailover, requireStreaming: view.Leader is not null) is { } why)
            {
                return Text(412, $"{noGood} (candidate {candidateName} {why})");
            }
        }
        else if (!view.Members.Any(m => m.Name != view.Leader?.Name))
        {
            return Text(412, $"{action} is not possible: cluster does not have members except leader");
        }
        else if (!view.Members.Any(m => m.Name != view.Leader?.Name && Ineligible(m, view, settings.MaximumLagOnFailover, true) is null
                                        && SyncReplication.PromotionBlocked(settings, view.Sync, m.Name) is null))
        {
            return Text(412, settings.SynchronousMode && view.Sync?.Standbys is not { Count: > 0 }
                ? $"{action} is not possible: can not find sync_standby"
                : $"{noGood} (no healthy streaming replica without nofailover within maximum_lag_on_failover{(settings.SynchronousMode ? " in the sync key" : "")})");
        }

        var request = new FailoverRequest { Leader = failover ? leaderName : leaderName ?? view.Leader?.Name, Candidate = candidateName, ScheduledAt = scheduledAt };
        if (!await agent.Store.TryCreateFailoverAsync(request, ct).ConfigureAwait(false))
        {
            return Text(409, "a switchover or failover is already pending");
        }

        if (scheduledAt is not null)
        {
            return Text(202, $"Switchover scheduled (at {scheduledAt:O})");
        }

        var oldLeader = view.Leader?.Name;
        var started = TimeProvider.System.GetTimestamp();
        while (TimeProvider.System.GetElapsedTime(started) < ActionTimeout)
        {
            await Task.Delay(100, ct).ConfigureAwait(false);
            var now = await agent.Store.LoadAsync(ct).ConfigureAwait(false);
            if (now.Leader is { } l && l.Name != oldLeader && (candidateName is null || l.Name == candidateName))
            {
                return Text(200, $"Successfully {(failover ? "failed over" : "switched over")} to \"{l.Name}\"");
            }
        }

        var stale = await agent.Store.LoadAsync(CancellationToken.None).ConfigureAwait(false);
        if (stale.Failover is { } pending)
        {
            await agent.Store.DeleteFailoverAsync(pending.ModRevision, CancellationToken.None).ConfigureAwait(false);
        }

        return Text(503, $"{(failover ? "Failover" : "Switchover")} failed (no new leader within {ActionTimeout.TotalSeconds:0} s)");
    }

    /// <summary>Why a member cannot take over (null: it can).</summary>
    internal static string? Ineligible(Member m, ClusterView view, long maxLag, bool requireStreaming)
    {
        if (HaDecision.TagIsTrue(m.Data.Tags, "nofailover"))
        {
            return "has the nofailover tag";
        }

        if (m.Data.State != "running")
        {
            return $"is not running (state {m.Data.State ?? "unknown"})";
        }

        if (requireStreaming && (m.Data.Role != "replica" || m.Data.ReplicationState != "streaming"))
        {
            return "is not a streaming replica";
        }

        var optime = view.Status?.Optime ?? view.LeaderMember?.Data.XlogLocation;
        if (optime is { } o && m.Data.XlogLocation is { } x && o - x > maxLag)
        {
            return $"lags {o - x} bytes behind the leader (maximum_lag_on_failover {maxLag})";
        }

        return null;
    }

    private static async Task<IResult> CancelSwitchoverAsync(NodeAgent agent, CancellationToken ct)
    {
        var view = await agent.Store.LoadAsync(ct).ConfigureAwait(false);
        if (view.Failover is not { ScheduledAt: not null } pending)
        {
            return Text(404, "no switchover is scheduled");
        }

        return await agent.Store.DeleteFailoverAsync(pending.ModRevision, ct).ConfigureAwait(false)
            ? Text(200, "scheduled switchover deleted")
            : Text(409, "the scheduled switchover changed meanwhile; look again");
    }

    /// <summary>
    /// <c>POST /restart</c> with Patroni's body and answers: <c>schedule</c>, <c>role</c>, <c>postgres_version</c>,
    /// <c>restart_pending</c>. A scheduled restart answers 202 at once and checks its conditions when due; an immediate
    /// one checks them now (503 "restart conditions are not satisfied").
    /// </summary>
    private static async Task<IResult> RestartAsync(HttpContext ctx, NodeAgent agent)
    {
        var body = await ReadObjectAsync(ctx, allowEmpty: true).ConfigureAwait(false) ?? [];
        if (agent.Settings.Pause && body.ContainsKey("schedule"))
        {
            return Text(500, "Can't schedule restart in the paused state");
        }

        DateTimeOffset? at = null;
        string? role = null, version = null;
        var pendingOnly = false;
        foreach (var (key, value) in body)
        {
            switch (key)
            {
                case "schedule":
                    var (code, error, parsed) = ParseSchedule(value, "restart");
                    if (error is not null)
                    {
                        return Text(code, error);
                    }

                    at = parsed;
                    break;
                case "role":
                    role = OptionalString(body, key) switch
                    {
                        "master" or "primary" => "primary", // Patroni 3 sends master
                        "replica" => "replica",
                        "standby_leader" => "standby_leader",
                        null or "any" => null,
                        _ => throw new BadRequest("PostgreSQL role should be either primary, standby_leader, or replica"),
                    };
                    break;
                case "postgres_version":
                    version = OptionalString(body, key) ?? throw new BadRequest("Invalid PostgreSQL version: (empty)");
                    if (RestartConditions.VersionNumber(version, out var versionError) is null)
                    {
                        return Text(400, versionError!);
                    }

                    break;
                case "restart_pending":
                    // Patroni restarts only if pending whenever the key is present (patronictl sends true).
                    pendingOnly = value is not JsonValue flag || !flag.TryGetValue<bool>(out var pending) || pending;
                    break;
                case "timeout":
                    return Text(400, "Timeout is not supported by Steward: a restart waits postgresql.pg_ctl_timeout for PostgreSQL to start and does not fail over; leave timeout out");
                default:
                    return Text(400, $"Unknown filter for the scheduled restart: {key}");
            }
        }

        var conditions = new RestartConditions(role, version, pendingOnly);
        var snapshot = agent.Snapshot;
        if (at is { } when)
        {
            return agent.ScheduleRestart(new ScheduledRestart(when, conditions, snapshot.Pg.PostmasterStartTime))
                ? Text(202, "Restart scheduled")
                : Text(409, "Another restart is already scheduled");
        }

        if (conditions.Unmet(snapshot.Role, snapshot.Pg.ServerVersion, snapshot.Pg.PendingRestart) is { } why)
        {
            return Text(503, $"restart conditions are not satisfied: {why}");
        }

        return await agent.RestartAsync(ctx.RequestAborted).ConfigureAwait(false)
            ? Text(200, "restarted successfully")
            : Text(503, "restart failed");
    }

    /// <summary>
    /// Patroni's <c>parse_schedule</c>: the time, or (status, message) in its words — 400 without a time zone, 422 when it
    /// cannot be parsed or is in the past.
    /// </summary>
    internal static (int Status, string? Error, DateTimeOffset? At) ParseSchedule(JsonNode? value, string action)
    {
        var text = value is JsonValue v && v.TryGetValue<string>(out var s) ? s.Trim() : null;
        if (text is null || !DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var parsed))
        {
            return (422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601", null);
        }

        if (parsed.Kind == DateTimeKind.Unspecified)
        {
            return (400, $"Timezone information is mandatory for the scheduled {action}", null);
        }

        var at = DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
        return at < DateTimeOffset.UtcNow ? (422, $"Cannot schedule {action} in the past", null) : (0, null, at);
    }

    private static async Task<IResult> ReinitializeAsync(HttpContext ctx, NodeAgent agent)
    {
        await ReadObjectAsync(ctx, allowEmpty: true).ConfigureAwait(false);
        var view = await agent.Store.LoadAsync(ctx.RequestAborted).ConfigureAwait(false);
        if (view.Leader?.Name == agent.Config.Name)
        {
            return Text(503, "I am the leader, can not reinitialize");
        }

        if (view.LeaderMember is null)
        {
            return Text(503, "there is no leader to clone from");
        }

        _ = Task.Run(() => agent.ReinitializeAsync(CancellationToken.None), CancellationToken.None);
        return Text(200, "reinitialize started");
    }

    private static async Task<IResult> ConfigAsync(HttpContext ctx, NodeAgent agent, bool patch)
    {
        var body = await ReadObjectAsync(ctx).ConfigureAwait(false) ?? throw new BadRequest("the body must be a JSON object");
        var ct = ctx.RequestAborted;
        var view = await agent.Store.LoadAsync(ct).ConfigureAwait(false);
        JsonNode merged;
        if (patch)
        {
            var current = JsonNode.Parse(DynamicConfigJson.Serialize(view.Config?.Value ?? agent.Config.Bootstrap.Dcs))!;
            merged = MergePatch(current, body);
        }
        else
        {
            merged = body;
        }

        if (DynamicConfigJson.TryParse(merged.ToJsonString(), out var error) is not { } config)
        {
            return Text(400, $"invalid configuration: {error}");
        }

        if (DynamicConfigJson.NewlyNotActedOn(config, view.Config?.Value) is { Count: > 0 } refused)
        {
            return Text(400, DynamicConfigJson.NotActedOnMessage(refused));
        }

        if (DynamicConfigJson.Problem(config, view.Config?.Value) is { } problem)
        {
            return Text(400, problem);
        }

        if (!await agent.Store.SetConfigAsync(config, view.Config?.ModRevision ?? 0, ct).ConfigureAwait(false))
        {
            return Text(409, "the configuration was changed concurrently; read it again and retry");
        }

        if (DynamicConfigJson.TimingWarning(config) is { } timing)
        {
            // Accepted, as Patroni accepts it; the caller is told what it risks (RFC 7234's 299 "miscellaneous persistent warning").
            ctx.Response.Headers.Append("Warning", $"299 steward \"{timing}\"");
        }

        return Results.Text(DynamicConfigJson.Serialize(config), "application/json", statusCode: 200);
    }

    /// <summary>RFC 7386 JSON merge patch: objects merge, null removes, anything else replaces.</summary>
    internal static JsonNode MergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject patchObject)
        {
            return patch?.DeepClone()!;
        }

        var result = target is JsonObject t ? (JsonObject)t.DeepClone() : [];
        foreach (var (key, value) in patchObject)
        {
            if (value is null)
            {
                result.Remove(key);
            }
            else
            {
                result[key] = MergePatch(result[key], value);
            }
        }

        return result;
    }

    /// <summary>
    /// <c>POST /failsafe</c> (failsafe_mode, etcd unreachable): the leader asks every member to confirm it. A member that
    /// answers 200 promises not to take the leader key for ttl from now (the HA decision holds it back); a member running
    /// as a primary itself refuses (500, as Patroni).
    /// </summary>
    private static async Task<IResult> FailsafeAsync(HttpContext ctx, NodeAgent agent)
    {
        var body = await ReadObjectAsync(ctx).ConfigureAwait(false);
        var name = OptionalString(body, "name") ?? throw new BadRequest("name: the requesting leader's member name is required");
        if (!agent.Settings.FailsafeMode)
        {
            return Text(409, "failsafe_mode is off in the cluster's configuration");
        }

        if (name == agent.Config.Name)
        {
            return Text(400, "a member cannot confirm itself");
        }

        var snapshot = agent.Snapshot;
        if (snapshot.Pg.Running && snapshot.Pg.InRecovery == false)
        {
            return Text(500, "Running as a leader");
        }

        agent.RecordFailsafeLeader(name);
        return Text(200, "Accepted");
    }

    private static async Task<JsonObject?> ReadObjectAsync(HttpContext ctx, bool allowEmpty = false)
    {
        using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
        var text = await reader.ReadToEndAsync(ctx.RequestAborted).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(text))
        {
            return allowEmpty ? null : throw new BadRequest("the body must be a JSON object");
        }

        JsonObject body;
        try
        {
            // Duplicate keys are refused here (a JsonObject would throw on them later, at first use).
            body = JsonNode.Parse(text, documentOptions: BodyOptions) as JsonObject ?? throw new BadRequest("the body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new BadRequest($"the body is not valid JSON: {e.Message}");
        }

        try
        {
            // A string with a lone surrogate (\ud800) parses, but reading it later throws: read every one now.
            ReadEveryString(body);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException)
        {
            throw new BadRequest($"the body holds a string that is not valid Unicode: {e.Message}");
        }

        return body;
    }

    private static void ReadEveryString(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (_, child) in obj)
                {
                    ReadEveryString(child);
                }

                break;
            case JsonArray array:
                foreach (var child in array)
                {
                    ReadEveryString(child);
                }

                break;
            case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                _ = value.GetValue<string>();
                break;
        }
    }

    /// <summary>How request bodies are parsed: 64 levels at most (the default), no duplicate keys.</summary>
    private static readonly JsonDocumentOptions BodyOptions = new() { MaxDepth = 64, AllowDuplicateProperties = false };

    private static string? OptionalString(JsonObject? body, string key) =>
        body?[key] switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => string.IsNullOrWhiteSpace(s) ? null : s,
            var other => throw new BadRequest($"{key} must be a string, got {other.ToJsonString()}"),
        };

    private static IResult Text(int status, string message) => Results.Text(message, "text/plain; charset=utf-8", statusCode: status);

    private sealed class BadRequest(string message) : Exception(message);
}
