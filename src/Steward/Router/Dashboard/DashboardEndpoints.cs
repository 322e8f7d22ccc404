using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Router.Routing;

namespace Steward.Router.Dashboard;

/// <summary>
/// The dashboard on the router's stats port: the page and its script (embedded in the program, no build step),
/// <c>/dashboard/events</c> (server-sent events: a snapshot on every etcd change and once a second),
/// <c>/dashboard/state.json</c> (the same snapshot, for polling) and <c>POST /dashboard/switchover</c>.
/// </summary>
internal static partial class DashboardEndpoints
{
    public const string DisabledMessage =
        "switchover from the dashboard is disabled: the router has no dashboard credentials (add dashboard: {username, password} to router.yml)";

    private static readonly TimeSpan SwitchoverTimeout = TimeSpan.FromSeconds(45);

    private static readonly Dictionary<string, string> Assets = new(StringComparer.Ordinal)
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["dashboard.js"] = "text/javascript; charset=utf-8",
        ["dashboard.css"] = "text/css; charset=utf-8",
    };

    public static void Map(WebApplication app, DashboardState state, RouterConfig config, ClusterWatcher watcher, HttpClient http, ILogger log)
    {
        app.MapGet("/", () => Results.Redirect("/dashboard"));
        app.MapGet("/dashboard", () => Asset("index.html"));
        app.MapGet("/dashboard/{file}", (string file) => Assets.ContainsKey(file) ? Asset(file) : Results.NotFound());
        app.MapGet("/dashboard/state.json", () => Results.Text(state.Snapshot().ToJsonString(), "application/json"));
        app.MapGet("/dashboard/events", (HttpContext ctx) => StreamAsync(ctx, state, app.Lifetime.ApplicationStopping));
        app.MapPost("/dashboard/switchover", (HttpRequest request) => SwitchoverAsync(request.HttpContext, config, watcher, http, log));
    }

    private static IResult Asset(string name)
    {
        var stream = typeof(DashboardEndpoints).Assembly.GetManifestResourceStream("dashboard/" + name)
                     ?? throw new InvalidOperationException($"dashboard asset {name} is not embedded in the program");
        return Results.Stream(stream, Assets[name]);
    }

    private static async Task StreamAsync(HttpContext ctx, DashboardState state, CancellationToken stopping)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, stopping);
        var ct = linked.Token;
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var next = state.WaitForUpdateAsync(ct);
                await ctx.Response.WriteAsync("data: " + state.Snapshot().ToJsonString() + "\n\n", ct).ConfigureAwait(false);
                await ctx.Response.Body.FlushAsync(ct).ConfigureAwait(false);
                await next.ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private static async Task<IResult> SwitchoverAsync(HttpContext ctx, RouterConfig config, ClusterWatcher watcher, HttpClient http, ILogger log)
    {
        if (config.Dashboard is not { } login)
        {
            return Results.Text(DisabledMessage, statusCode: StatusCodes.Status403Forbidden);
        }

        if (!Authorized(ctx.Request.Headers.Authorization.ToString(), login))
        {
            return Results.Text("wrong dashboard username or password", statusCode: StatusCodes.Status401Unauthorized);
        }

        string? candidate;
        try
        {
            var body = await JsonNode.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted).ConfigureAwait(false);
            candidate = body?["candidate"]?.GetValue<string>();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            return Results.Text($"expected a JSON body {{\"candidate\": \"<member>\"}}: {e.Message}", statusCode: StatusCodes.Status400BadRequest);
        }

        if (string.IsNullOrWhiteSpace(candidate))
        {
            return Results.Text("candidate is required: the replica that should become the leader", statusCode: StatusCodes.Status400BadRequest);
        }

        var view = watcher.View;
        if (view?.Leader is not { } leader || view.LeaderMember?.Data.ApiUrl is not { } api || ConnUrl.ApiBase(api) is not { } leaderApi)
        {
            return Results.Text("there is no leader right now (or it has not published its REST address); try again in a moment",
                statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        LogSwitchoverRequested(log, leader.Name, candidate);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(leaderApi, "/switchover"))
        {
            Content = JsonContent.Create(new JsonObject { ["leader"] = leader.Name, ["candidate"] = candidate }, StewardJson.Default.JsonObject),
        };
        // Basic auth (ctl.authentication, else restapi) and TLS come with the client (RestHttp).

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        cts.CancelAfter(SwitchoverTimeout);
        try
        {
            using var response = await http.SendAsync(request, cts.Token).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync(cts.Token).ConfigureAwait(false);
            LogSwitchoverAnswered(log, leader.Name, (int)response.StatusCode, text);
            return Results.Text(text, "text/plain; charset=utf-8", statusCode: (int)response.StatusCode);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !ctx.RequestAborted.IsCancellationRequested)
        {
            var reason = e is HttpRequestException h ? Steward.Rest.RestHttp.Describe(h, leaderApi) : e.Message;
            return Results.Text($"the leader {leader.Name} did not answer POST /switchover: {reason}", statusCode: StatusCodes.Status502BadGateway);
        }
    }

    /// <summary>HTTP Basic credentials, compared in constant time.</summary>
    internal static bool Authorized(string header, Credentials login)
    {
        const string scheme = "Basic ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        byte[] given;
        try
        {
            given = Convert.FromBase64String(header[scheme.Length..].Trim());
        }
        catch (FormatException)
        {
            return false;
        }

        var expected = Encoding.UTF8.GetBytes($"{login.Username}:{login.Password}");
        return CryptographicOperations.FixedTimeEquals(given, expected);
    }

    [LoggerMessage(EventId = 4030, Level = LogLevel.Information, Message = "dashboard: switchover requested from {Leader} to {Candidate}")]
    private static partial void LogSwitchoverRequested(ILogger logger, string leader, string candidate);

    [LoggerMessage(EventId = 4031, Level = LogLevel.Information, Message = "dashboard: {Leader} answered the switchover with {Status}: {Text}")]
    private static partial void LogSwitchoverAnswered(ILogger logger, string leader, int status, string text);
}
