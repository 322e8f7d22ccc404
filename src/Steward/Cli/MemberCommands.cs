using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Steward.Agent;
using Steward.Core.Cluster;

namespace Steward.Cli;

/// <summary><c>restart</c>, <c>reload</c> and <c>reinit</c>: actions on some members, through each member's REST API.</summary>
internal static class MemberCommands
{
    private static readonly TimeSpan RestartTimeout = TimeSpan.FromSeconds(120);

    public static Command CreateRestart()
    {
        var members = MembersArgument("members to restart (default: every member)");
        var scheduledOption = new Option<string?>("--scheduled") { Description = "when: ISO 8601 time (local unless an offset is given) or 'now' (default)" };
        var pending = new Option<bool>("--pending") { Description = "only members whose PostgreSQL has a pending restart (a changed parameter that needs one)" };
        var role = new Option<string>("--role", "-r") { Description = "only members with this role: primary (also leader, master), replica (also standby) or any", DefaultValueFactory = _ => "any" };
        role.AcceptOnlyFromAmong("primary", "replica", "any", "leader", "master", "standby", "standby-leader");
        var version = new Option<string?>("--pg-version") { Description = "only members whose PostgreSQL is older than this version (e.g. 15.2), checked by each member when it restarts" };
        var force = CliVerb.Force();
        return CliVerb.Create("restart", "Restart PostgreSQL on members (same role, no failover), now or at a scheduled time.",
            async (cli, pr, ct) =>
            {
                var scheduled = CliTime.ParseFuture(pr.GetValue(scheduledOption), "--scheduled", cli.Time.GetUtcNow());
                if (pr.GetValue(version) is { } v && RestartConditions.VersionNumber(v, out var versionError) is null)
                {
                    throw new CliException(versionError!);
                }

                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                if (scheduled is not null && view.Config?.Value.Pause == true)
                {
                    throw new CliException("Can't schedule restart in the paused state");
                }

                var roleFilter = pr.GetValue(role) switch
                {
                    "leader" or "master" => "primary",
                    "standby" => "replica",
                    var r => r!,
                };
                var chosen = Select(view, cli.Scope, pr.GetValue(members))
                    .Where(m => roleFilter == "any" || RoleOf(view, m) == roleFilter)
                    .Where(m => !pr.GetValue(pending) || m.Data.PendingRestart == true)
                    .ToList();
                if (chosen.Count == 0)
                {
                    await cli.Out.WriteLineAsync($"No member of cluster {cli.Scope} matches (--role {roleFilter}{(pr.GetValue(pending) ? ", --pending" : "")}): nothing to restart").ConfigureAwait(false);
                    return ExitCodes.Ok;
                }

                var names = string.Join(", ", chosen.Select(m => m.Name));
                cli.Prompter.Confirm(scheduled is { } at
                    ? $"Are you sure you want to schedule a restart of {names} in cluster {cli.Scope} at {CliTime.Format(at)}?"
                    : $"Are you sure you want to restart {names} in cluster {cli.Scope}?", pr.GetValue(force));

                var body = new JsonObject();
                if (scheduled is { } time)
                {
                    body["schedule"] = time.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture);
                }

                if (pr.GetValue(pending))
                {
                    body["restart_pending"] = true;
                }

                if (roleFilter is not ("any" or "standby-leader"))
                {
                    body["role"] = roleFilter;
                }

                if (pr.GetValue(version) is { } pgVersion)
                {
                    body["postgres_version"] = pgVersion;
                }

                var failed = 0;
                var restarted = new List<string>();
                foreach (var m in chosen)
                {
                    // patronictl's lines, which scripts match on.
                    string line;
                    try
                    {
                        var response = await cli.Rest.SendAsync(m, HttpMethod.Post, "/restart", body.DeepClone(), RestClient.ActionTimeout, ct).ConfigureAwait(false);
                        line = response.Status switch
                        {
                            200 => $"Success: restart on member {m.Name}",
                            202 => $"Success: restart scheduled on member {m.Name}",
                            409 => $"Failed: another restart is already scheduled on member {m.Name}",
                            _ => $"Failed: restart for member {m.Name}, status code={response.Status}, ({response.Body.Trim()})",
                        };
                        if (response.Status == 200)
                        {
                            restarted.Add(m.Name);
                        }
                    }
                    catch (RestUnreachableException e)
                    {
                        line = $"Failed: restart for member {m.Name}: {e.Message}";
                    }

                    var ok = line.StartsWith("Success", StringComparison.Ordinal);
                    failed += ok ? 0 : 1;
                    await (ok ? cli.Out : cli.Err).WriteLineAsync(line).ConfigureAwait(false);
                }

                if (restarted.Count > 0)
                {
                    await cli.Progress($"{string.Join(", ", restarted)} to run again").UntilAsync(
                        (v, _) => Task.FromResult(restarted.All(n => IsHealthy(v, n))),
                        v => string.Join("; ", restarted.Select(n => Progress.Describe(v, n))), RestartTimeout, ct).ConfigureAwait(false);
                    await cli.PrintListAsync(ct).ConfigureAwait(false);
                }

                return failed == 0 ? ExitCodes.Ok : ExitCodes.Failed;
            }, rest: true, members, scheduledOption, pending, role, version, force);
    }

    public static Command CreateReload()
    {
        var members = MembersArgument("members to reload (default: every member)");
        var force = CliVerb.Force();
        return CliVerb.Create("reload", "Ask members to re-read the dynamic configuration and reload PostgreSQL (no restart).",
            async (cli, pr, ct) =>
            {
                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                var chosen = Select(view, cli.Scope, pr.GetValue(members)).ToList();
                if (chosen.Count == 0)
                {
                    throw new CliException($"cluster {cli.Scope} has no members in etcd (is it running? is the scope right?)");
                }

                cli.Prompter.Confirm($"Are you sure you want to reload {string.Join(", ", chosen.Select(m => m.Name))} in cluster {cli.Scope}?", pr.GetValue(force));
                var failed = 0;
                foreach (var m in chosen)
                {
                    var (ok, text) = await ActAsync(cli, m, HttpMethod.Post, "/reload", new JsonObject(), ct).ConfigureAwait(false);
                    failed += ok ? 0 : 1;
                    await (ok ? cli.Out : cli.Err).WriteLineAsync(ok ? $"Reload request received for member {m.Name} and will be processed within a cycle"
                        : $"Failed: reload of member {m.Name}: {text}").ConfigureAwait(false);
                }

                return failed == 0 ? ExitCodes.Ok : ExitCodes.Failed;
            }, rest: true, members, force);
    }

    public static Command CreateReinit()
    {
        var member = new Argument<string>("member") { Description = "the replica to re-clone from the leader" };
        var force = CliVerb.Force();
        var timeout = new Option<int>("--timeout") { Description = "seconds to wait for the member to stream again (default 600)", DefaultValueFactory = _ => 600 };
        return CliVerb.Create("reinit", "Re-clone a replica from the leader (its data directory is moved aside), and show progress until it streams again.",
            async (cli, pr, ct) =>
            {
                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                var m = CliContext.RequireMember(view, cli.Scope, pr.GetValue(member)!);
                if (view.Leader?.Name == m.Name)
                {
                    throw new CliException($"{m.Name} is the leader of cluster {cli.Scope}; only a replica can be reinitialized (switch over first). Nothing was changed");
                }

                if (view.Leader is null)
                {
                    throw new CliException($"cluster {cli.Scope} has no leader to clone {m.Name} from; nothing was changed");
                }

                var seconds = pr.GetValue(timeout);
                if (seconds < 1)
                {
                    throw new CliException($"--timeout: {seconds} is not a positive number of seconds");
                }

                cli.Prompter.Confirm($"Are you sure you want to reinitialize member {m.Name} of cluster {cli.Scope}? Its data directory is replaced by a fresh copy of the leader's", pr.GetValue(force));
                var startedBefore = await PostmasterStartAsync(cli, m, ct).ConfigureAwait(false);
                var (ok, text) = await ActAsync(cli, m, HttpMethod.Post, "/reinitialize", new JsonObject { ["force"] = pr.GetValue(force) }, ct).ConfigureAwait(false);
                if (!ok)
                {
                    throw new CliException($"reinitialize of {m.Name} failed: {text}");
                }

                await cli.Out.WriteLineAsync($"Success: reinitialize for member {m.Name}").ConfigureAwait(false);

                // Done when etcd shows it streaming again after a visible interruption, or (a fast clone may be missed between
                // two reads) when its postmaster is not the one from before the request.
                var interrupted = false;
                await cli.Progress($"{m.Name} to be cloned and stream again").UntilAsync(async (v, token) =>
                {
                    interrupted |= !IsHealthy(v, m.Name);
                    return IsHealthy(v, m.Name)
                           && (interrupted || await PostmasterStartAsync(cli, v.GetMember(m.Name)!, token).ConfigureAwait(false) is { } now && now != startedBefore);
                }, v => Progress.Describe(v, m.Name), TimeSpan.FromSeconds(seconds), ct).ConfigureAwait(false);
                await cli.PrintListAsync(ct).ConfigureAwait(false);
                return ExitCodes.Ok;
            }, rest: true, member, force, timeout);
    }

    private static Argument<string[]> MembersArgument(string description) => new("members") { Description = description, Arity = ArgumentArity.ZeroOrMore };

    /// <summary>The named members (each must exist), or every member.</summary>
    private static IEnumerable<Member> Select(ClusterView view, string scope, string[]? names) =>
        names is { Length: > 0 } ? names.Distinct(StringComparer.Ordinal).Select(n => CliContext.RequireMember(view, scope, n)).ToList() : view.Members;

    private static string RoleOf(ClusterView view, Member m) => view.Leader?.Name == m.Name || m.Data.Role == "primary" ? "primary" : "replica";

    /// <summary>Running, and streaming when it is a replica.</summary>
    private static bool IsHealthy(ClusterView view, string name) => view.GetMember(name) is { } m && m.Data.State == "running"
        && (view.Leader?.Name == name || m.Data.ReplicationState == "streaming");

    /// <summary>One action on one member: success (2xx), or the failure in words (status, body, URL).</summary>
    private static async Task<(bool Ok, string Text)> ActAsync(CliContext cli, Member m, HttpMethod method, string path, JsonNode body, CancellationToken ct)
    {
        try
        {
            var response = await cli.Rest.SendAsync(m, method, path, body, RestClient.ActionTimeout, ct).ConfigureAwait(false);
            return (response.IsSuccess, response.IsSuccess ? response.Body.Trim() : response.Describe(method.Method));
        }
        catch (RestUnreachableException e)
        {
            return (false, e.Message);
        }
    }

    /// <summary><c>postmaster_start_time</c> from the member's <c>/patroni</c>, or null when it does not answer or has none.</summary>
    private static async Task<string?> PostmasterStartAsync(CliContext cli, Member m, CancellationToken ct)
    {
        try
        {
            var response = await cli.Rest.GetAsync(m, "/patroni", ct).ConfigureAwait(false);
            return response.IsSuccess || response.Status == 503 ? JsonNode.Parse(response.Body)?["postmaster_start_time"]?.GetValue<string>() : null;
        }
        catch (Exception e) when (e is RestUnreachableException or JsonException or InvalidOperationException)
        {
            return null;
        }
    }
}
