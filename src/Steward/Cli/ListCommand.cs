using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Steward.Core.Cluster;

namespace Steward.Cli;

/// <summary><c>steward list</c> and <c>steward topology</c>: the cluster's members as a table, read from etcd (patronictl list / topology).</summary>
internal static class ListCommand
{
    private static readonly string[] Columns = ["Member", "Host", "Role", "State", "TL", "Lag in MB"];
    private static readonly string[] ExtendedColumns = ["Pending restart", "Scheduled restart", "Tags"];

    public static Command Create()
    {
        var extended = new Option<bool>("--extended", "-e") { Description = "also show pending restart, scheduled restart and tags" };
        var watch = new Option<bool>("--watch", "-W") { Description = "refresh the output until interrupted (Ctrl-C)" };
        var interval = new Option<double>("--interval") { Description = "seconds between refreshes with --watch (default 2)", DefaultValueFactory = _ => 2 };
        var format = CliOutput.FormatOption();
        return CliVerb.Create("list", "Show the cluster's members: role, state, timeline and lag behind the leader (from etcd).",
            async (cli, pr, ct) =>
            {
                var seconds = pr.GetValue(interval);
                if (seconds is <= 0 or > 3600)
                {
                    throw new CliException($"--interval: {seconds.ToString(CultureInfo.InvariantCulture)} is not between 0 and 3600 seconds");
                }

                do
                {
                    var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                    var isExtended = pr.GetValue(extended);
                    var scheduled = isExtended ? await ScheduledRestartsAsync(cli, view, ct).ConfigureAwait(false) : null;
                    var text = pr.GetValue(format) switch
                    {
                        OutputFormat.Json => CliOutput.Json(Data(cli.Scope, view, isExtended, scheduled)),
                        OutputFormat.Yaml => CliOutput.Yaml(Data(cli.Scope, view, isExtended, scheduled)),
                        _ => Render(cli.Scope, view, isExtended, TextTable.DefaultWidth, scheduled),
                    };
                    if (pr.GetValue(watch))
                    {
                        await cli.Out.WriteAsync("\u001b[H\u001b[2J" + DateTimeOffset.Now.ToString("yyyy-MM-dd HH:mm:ss zzz", CultureInfo.InvariantCulture) + "\n").ConfigureAwait(false);
                    }

                    await cli.Out.WriteAsync(text).ConfigureAwait(false);
                    if (pr.GetValue(watch))
                    {
                        await Task.Delay(TimeSpan.FromSeconds(seconds), cli.Time, ct).ConfigureAwait(false);
                    }
                }
                while (pr.GetValue(watch) && !ct.IsCancellationRequested);

                return ExitCodes.Ok;
            }, rest: false, extended, watch, interval, format);
    }

    public static Command CreateTopology()
    {
        var format = CliOutput.FormatOption();
        return CliVerb.Create("topology", "Show the replication tree: the leader, then the replicas that stream from it, indented.",
            async (cli, pr, ct) =>
            {
                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                var ordered = TopologyOrder(view);
                var text = pr.GetValue(format) switch
                {
                    OutputFormat.Json => CliOutput.Json(Data(cli.Scope, view with { Members = ordered }, false, null)),
                    OutputFormat.Yaml => CliOutput.Yaml(Data(cli.Scope, view with { Members = ordered }, false, null)),
                    _ => Render(cli.Scope, view with { Members = ordered }, false, TextTable.DefaultWidth, null, topology: true),
                };
                await cli.Out.WriteAsync(text).ConfigureAwait(false);
                return ExitCodes.Ok;
            }, rest: false, format);
    }

    /// <summary>The leader first, then the other members by name (every replica streams from the leader: no cascading).</summary>
    internal static IReadOnlyList<Member> TopologyOrder(ClusterView view) =>
        [.. view.Members.OrderBy(m => m.Name == view.Leader?.Name ? 0 : 1).ThenBy(m => m.Name, StringComparer.Ordinal)];

    /// <summary>
    /// Patroni's table: Member | Host | Role | State | TL | Lag in MB (and with <paramref name="extended"/>: Pending restart |
    /// Scheduled restart | Tags), then a line for maintenance mode and for a scheduled switchover.
    /// </summary>
    internal static string Render(string scope, ClusterView view, bool extended, int width,
        IReadOnlyDictionary<string, string>? scheduledRestarts = null, bool topology = false)
    {
        ArgumentNullException.ThrowIfNull(view);
        var rows = new List<IReadOnlyList<string>>();
        var extra = new List<IReadOnlyList<string>>();
        foreach (var m in view.Members)
        {
            var row = Row(view, m);
            var name = topology && view.Leader is not null && m.Name != view.Leader.Name ? "+ " + m.Name : m.Name;
            rows.Add([name, row.Host, row.Role, row.State, row.Timeline, row.Lag]);
            extra.Add([m.Data.PendingRestart == true ? "*" : "", scheduledRestarts?.GetValueOrDefault(m.Name) ?? "", TagsText(m.Data.Tags)]);
        }

        var title = $"Cluster: {scope} ({(string.IsNullOrEmpty(view.Initialize) ? "uninitialized" : view.Initialize)})";
        var numbers = new HashSet<int> { 4, 5 };
        var table = TextTable.Render(title, Columns, rows, width, numbers);
        if (extended)
        {
            // One table when it fits; else the extended columns in a second table keyed by member, so both read well.
            var wide = TextTable.Render(title, [.. Columns, .. ExtendedColumns], [.. rows.Zip(extra, (r, e) => (IReadOnlyList<string>)[.. r, .. e])],
                width, numbers, new HashSet<int> { 7, 8 });
            table = TextTable.Width(wide) <= width
                ? wide
                : table + TextTable.Render(null, ["Member", .. ExtendedColumns], [.. view.Members.Zip(extra, (m, e) => (IReadOnlyList<string>)[m.Name, .. e])],
                    width, null, new HashSet<int> { 3 });
        }

        var sb = new StringBuilder(table);
        if (view.Config?.Value.Pause == true)
        {
            sb.Append(" Maintenance mode: on\n");
        }

        if (view.Failover is { ScheduledAt: { } at } f)
        {
            sb.Append(CultureInfo.InvariantCulture, $" Switchover scheduled at: {CliTime.Format(at)}\n");
            sb.Append(CultureInfo.InvariantCulture, $"                    from: {f.Leader ?? "(leader)"}\n");
            if (f.Candidate is { } to)
            {
                sb.Append(CultureInfo.InvariantCulture, $"                      to: {to}\n");
            }
        }

        return sb.ToString();
    }

    /// <summary>The members as data, one object per member with Patroni's column names as keys (as <c>patronictl list -f json</c>).</summary>
    internal static JsonArray Data(string scope, ClusterView view, bool extended, IReadOnlyDictionary<string, string>? scheduledRestarts)
    {
        var array = new JsonArray();
        foreach (var m in view.Members)
        {
            var row = Row(view, m);
            var o = new JsonObject
            {
                ["Cluster"] = scope,
                ["Member"] = m.Name,
                ["Host"] = row.Host,
                ["Role"] = row.Role,
                ["State"] = row.State,
                ["TL"] = m.Data.Timeline,
                ["Lag in MB"] = row.LagMb is { } lag ? JsonValue.Create(lag) : row.Lag.Length == 0 ? null : JsonValue.Create(row.Lag),
            };
            if (extended)
            {
                o["Pending restart"] = m.Data.PendingRestart == true ? "*" : null;
                o["Scheduled restart"] = scheduledRestarts?.GetValueOrDefault(m.Name);
                o["Tags"] = m.Data.Tags is { Count: > 0 } tags ? JsonSerializer.SerializeToNode(tags, StewardJson.Default.IReadOnlyDictionaryStringObject) : null;
            }

            array.Add((JsonNode)o);
        }

        return array;
    }

    private sealed record MemberRow(string Host, string Role, string State, string Timeline, string Lag, double? LagMb);

    private static MemberRow Row(ClusterView view, Member m)
    {
        var isLeader = view.Leader?.Name == m.Name;
        var leaderLsn = view.Status?.Optime ?? view.LeaderMember?.Data.XlogLocation;
        var host = m.Data.ConnUrl is { } url && ConnUrl.Parse(url) is { } hp ? hp.ToString() : "";
        var role = isLeader ? m.Data.Role == "standby_leader" ? "Standby Leader" : "Leader" : m.Data.Role == "primary" ? "Primary"
            : view is { Config.Value.SynchronousMode: true, Sync: { } sync } && sync.Leader == view.Leader?.Name && sync.IsStandby(m.Name)
                ? view.Config.Value.SynchronousModeQuorum ? "Quorum Standby" : "Sync Standby"
            : "Replica";
        var state = m.Data.ReplicationState ?? m.Data.State ?? "";
        double? lagMb = !isLeader && leaderLsn is { } l && m.Data.XlogLocation is { } x ? Math.Round(Math.Max(0, l - x) / 1048576.0, 1) : null;
        var lag = isLeader ? "" : lagMb?.ToString(CultureInfo.InvariantCulture) ?? "unknown";
        return new MemberRow(host, role, state, m.Data.Timeline?.ToString(CultureInfo.InvariantCulture) ?? "", lag, lagMb);
    }

    private static string TagsText(IReadOnlyDictionary<string, object?>? tags) => tags is null
        ? ""
        : string.Join("\n", tags.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}: {TagValue(t.Value)}"));

    private static string TagValue(object? value) => value switch
    {
        null => "null",
        JsonElement { ValueKind: JsonValueKind.String } s => s.GetString() ?? "",
        JsonElement e => e.GetRawText(),
        bool b => b ? "true" : "false",
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>Each member's scheduled restart, as its REST API reports it (<c>/patroni</c> <c>scheduled_restart.schedule</c>); members that do not answer within a second are left blank.</summary>
    private static async Task<IReadOnlyDictionary<string, string>> ScheduledRestartsAsync(CliContext cli, ClusterView view, CancellationToken ct)
    {
        var answers = await Task.WhenAll(view.Members.Select(async m =>
        {
            try
            {
                var response = await cli.Rest.SendAsync(m, HttpMethod.Get, "/patroni", null, TimeSpan.FromSeconds(1), ct).ConfigureAwait(false);
                return (m.Name, Schedule: response.IsSuccess ? ScheduleOf(response.Body) : null);
            }
            catch (Exception e) when (e is RestUnreachableException or CliException)
            {
                return (m.Name, Schedule: null);
            }
        })).ConfigureAwait(false);
        return answers.Where(a => a.Schedule is not null).ToDictionary(a => a.Name, a => a.Schedule!);
    }

    private static string? ScheduleOf(string patroniJson)
    {
        try
        {
            return JsonNode.Parse(patroniJson)?["scheduled_restart"]?["schedule"]?.GetValue<string>() is { } s
                   && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.None, out var at)
                ? CliTime.Format(at)
                : null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }
}
