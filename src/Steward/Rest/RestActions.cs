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

    public static void Map(IEndpointRouteBuilder app, NodeAgent agent)
    {
        void On(string method, string path, Func<HttpContext, Task<IResult>> action) =>
            app.MapMethods(path, [method], new RequestDelegate(ctx => Guarded(ctx, agent, action)));

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

    private static async Task Guarded(HttpContext ctx, NodeAgent agent, Func<HttpContext, Task<IResult>> action)
    {
        IResult result;
        if (!Authorized(ctx, agent))
        {
            ctx.Response.Headers.WWWAuthenticate = "Basic realm=\"steward\"";
            result = Text(401, "no or wrong credentials (restapi.authentication)");
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
        }

        await result.ExecuteAsync(ctx).ConfigureAwait(false);
    }

    private static bool Authorized(HttpContext ctx, NodeAgent agent)
    {
        if (agent.Config.RestApi.Authentication is not { } auth)
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

    private static async Task<IResult> SwitchoverAsync(HttpContext ctx, NodeAgent agent, bool failover)
    {
        var body = await ReadObjectAsync(ctx).ConfigureAwait(false);
        var leaderName = OptionalString(body, "leader");
        var candidateName = OptionalString(body, "candidate") ?? OptionalString(body, "member");
        var scheduledText = OptionalString(body, "scheduled_at");
        DateTimeOffset? scheduledAt = null;
        if (scheduledText is not null)
        {
            if (!DateTimeOffset.TryParse(scheduledText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            {
                return Text(400, $"scheduled_at: cannot parse '{scheduledText}' as a date and time (ISO 8601, e.g. 2026-11-26T12:00:00+00:00)");
            }

            if (at <= DateTimeOffset.UtcNow)
            {
                return Text(400, $"scheduled_at {at:O} is in the past");
            }

            scheduledAt = at;
        }

        if (failover && candidateName is null)
        {
            return Text(400, "failover needs a candidate");
        }

        if (!failover && leaderName is null)
        {
            return Text(400, "switchover needs the current leader's name (\"leader\")");
        }

        var ct = ctx.RequestAborted;
        var view = await agent.Store.LoadAsync(ct).ConfigureAwait(false);
        var settings = view.Config?.Value ?? agent.Config.Bootstrap.Dcs;
        if (settings.Pause && (candidateName is null || scheduledAt is not null))
        {
            return Text(409, "the cluster is paused (maintenance mode): only an immediate switchover or failover to a named candidate is possible; or resume it first");
        }

        if (view.Failover is not null)
        {
            return Text(409, "a switchover or failover is already pending");
        }

        if (!failover && view.Leader is null)
        {
            return Text(412, "there is no leader to switch over from; use failover");
        }

        if (leaderName is not null && view.Leader?.Name != leaderName)
        {
            return Text(412, $"leader name does not match: the leader is {view.Leader?.Name ?? "(none)"}, not {leaderName}");
        }

        if (candidateName is not null)
        {
            if (candidateName == view.Leader?.Name)
            {
                return Text(412, $"candidate {candidateName} is already the leader");
            }

            if (view.GetMember(candidateName) is not { } candidate)
            {
                return Text(412, $"candidate {candidateName} does not exist");
            }

            if (Ineligible(candidate, view, settings.MaximumLagOnFailover, requireStreaming: view.Leader is not null) is { } why)
            {
                return Text(412, $"candidate {candidateName} {why}");
            }

            if (SyncReplication.PromotionBlocked(settings, view.Sync, candidateName) is { } notSync)
            {
                return Text(412, $"candidate {candidateName} may not take over in synchronous mode: {notSync}");
            }
        }
        else if (!view.Members.Any(m => m.Name != view.Leader?.Name && Ineligible(m, view, settings.MaximumLagOnFailover, true) is null
                                        && SyncReplication.PromotionBlocked(settings, view.Sync, m.Name) is null))
        {
            return Text(412, "no eligible candidate: no healthy streaming replica without nofailover within maximum_lag_on_failover");
        }

        var request = new FailoverRequest { Leader = failover ? leaderName : leaderName ?? view.Leader?.Name, Candidate = candidateName, ScheduledAt = scheduledAt };
        if (!await agent.Store.TryCreateFailoverAsync(request, ct).ConfigureAwait(false))
        {
            return Text(409, "a switchover or failover is already pending");
        }

        if (scheduledAt is not null)
        {
            return Text(202, $"Switchover scheduled at {scheduledAt:O}");
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

        return Text(503, $"{(failover ? "Failover" : "Switchover")} failed: no new leader within {ActionTimeout.TotalSeconds:0} s");
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

    private static async Task<IResult> RestartAsync(HttpContext ctx, NodeAgent agent)
    {
        var body = await ReadObjectAsync(ctx, allowEmpty: true).ConfigureAwait(false);
        var snapshot = agent.Snapshot;
        var role = OptionalString(body, "role");
        if (role is not null and not ("primary" or "master" or "replica" or "any"))
        {
            return Text(400, $"role must be primary, replica or any, got '{role}'");
        }

        if (role is "primary" or "master" && snapshot.Role != "primary" || role == "replica" && snapshot.Role != "replica")
        {
            return Text(412, $"restart conditions are not satisfied: this member is {snapshot.Role}, not {role}");
        }

        var pendingOnly = body?["restart_pending"] is JsonValue p && p.TryGetValue<bool>(out var pending) && pending;
        if (OptionalString(body, "schedule") is { } scheduleText)
        {
            if (!DateTimeOffset.TryParse(scheduleText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
            {
                return Text(400, $"schedule: cannot parse '{scheduleText}' as a date and time (ISO 8601)");
            }

            return agent.ScheduleRestart(new ScheduledRestart(at, pendingOnly, role))
                ? Text(202, $"restart scheduled at {at:O}")
                : Text(409, "another restart is already scheduled");
        }

        if (pendingOnly && !snapshot.Pg.PendingRestart)
        {
            return Text(412, "restart conditions are not satisfied: no parameter needs a restart");
        }

        return await agent.RestartAsync(ctx.RequestAborted).ConfigureAwait(false)
            ? Text(200, "restarted successfully")
            : Text(503, "restart failed");
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

        if (DynamicConfigJson.Problem(config) is { } problem)
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

        try
        {
            return JsonNode.Parse(text) as JsonObject ?? throw new BadRequest("the body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new BadRequest($"the body is not valid JSON: {e.Message}");
        }
    }

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
