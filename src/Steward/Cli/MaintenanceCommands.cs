using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Steward.Core.Cluster;

namespace Steward.Cli;

/// <summary><c>pause</c> / <c>resume</c> (maintenance mode) and <c>remove</c> (wipe the cluster's keys).</summary>
internal static class MaintenanceCommands
{
    private static readonly TimeSpan PauseWaitTimeout = TimeSpan.FromSeconds(60);

    public static Command CreatePause() => CreatePauseVerb(pause: true);

    public static Command CreateResume() => CreatePauseVerb(pause: false);

    private static Command CreatePauseVerb(bool pause)
    {
        var wait = new Option<bool>("--wait") { Description = "wait until every member reports the change (/patroni \"pause\")" };
        var verb = pause ? "pause" : "resume";
        return CliVerb.Create(verb, pause
                ? "Enter maintenance mode: agents keep reporting but take no action (no failover, no restarts); PostgreSQL keeps running."
                : "Leave maintenance mode: agents manage PostgreSQL and fail over again.",
            async (cli, pr, ct) =>
            {
                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                if (view.Config?.Value.Pause == pause)
                {
                    throw new CliException(pause ? $"Cluster is already paused (cluster {cli.Scope})" : $"Cluster is not paused (cluster {cli.Scope})");
                }

                await SetPauseAsync(cli, view, pause, ct).ConfigureAwait(false);
                await cli.Out.WriteLineAsync(pause ? "Success: cluster management is paused" : "Success: cluster management is resumed").ConfigureAwait(false);
                if (pr.GetValue(wait))
                {
                    var reported = new HashSet<string>(StringComparer.Ordinal);
                    await cli.Progress($"every member to report {(pause ? "paused" : "resumed")}").UntilAsync(async (v, token) =>
                    {
                        foreach (var m in v.Members.Where(m => !reported.Contains(m.Name)))
                        {
                            if (await ReportsPauseAsync(cli, m, token).ConfigureAwait(false) == pause)
                            {
                                reported.Add(m.Name);
                            }
                        }

                        return v.Members.All(m => reported.Contains(m.Name));
                    }, v => $"{reported.Count} of {v.Members.Count} members report it" + (v.Members.Any(m => !reported.Contains(m.Name))
                        ? $" (waiting for {string.Join(", ", v.Members.Where(m => !reported.Contains(m.Name)).Select(m => m.Name))})" : ""),
                        PauseWaitTimeout, ct).ConfigureAwait(false);
                }

                return ExitCodes.Ok;
            }, rest: true, wait);
    }

    /// <summary>PATCH /config through the first member that answers (the leader first); with no member answering, compare-and-set on the key.</summary>
    private static async Task SetPauseAsync(CliContext cli, ClusterView view, bool pause, CancellationToken ct)
    {
        var unreachable = new List<string>();
        foreach (var m in view.Members.OrderBy(m => m.Name == view.Leader?.Name ? 0 : 1))
        {
            try
            {
                var response = await cli.Rest.SendAsync(m, HttpMethod.Patch, "/config", new JsonObject { ["pause"] = pause }, RestClient.ActionTimeout, ct).ConfigureAwait(false);
                if (response.Status != 200)
                {
                    throw new CliException($"{(pause ? "pause" : "resume")} failed: {response.Describe("PATCH")}");
                }

                return;
            }
            catch (RestUnreachableException e)
            {
                unreachable.Add(e.Message);
            }
        }

        if (unreachable.Count > 0)
        {
            await cli.Err.WriteLineAsync($"No member's REST API answered ({string.Join("; ", unreachable)}); writing the config key directly").ConfigureAwait(false);
        }

        var config = (view.Config?.Value ?? new DynamicConfig()) with { Pause = pause };
        if (!await cli.Store.SetConfigAsync(config, view.Config?.ModRevision ?? 0, ct).ConfigureAwait(false))
        {
            throw new CliException($"the config key of cluster {cli.Scope} was changed by someone else meanwhile; nothing was written, try again");
        }
    }

    /// <summary>What the member's <c>/patroni</c> says about maintenance mode; null when it does not answer.</summary>
    private static async Task<bool?> ReportsPauseAsync(CliContext cli, Member m, CancellationToken ct)
    {
        try
        {
            var response = await cli.Rest.GetAsync(m, "/patroni", ct).ConfigureAwait(false);
            return JsonNode.Parse(response.Body)?["pause"]?.GetValue<bool>() ?? false;
        }
        catch (Exception e) when (e is RestUnreachableException or CliException or JsonException or InvalidOperationException)
        {
            return null;
        }
    }

    public static Command CreateRemove()
    {
        var scope = new Argument<string>("scope") { Description = "the cluster's name, repeated as a safeguard" };
        var force = new Option<bool>("--force") { Description = "remove even though members are still running (the questions are still asked)" };
        return CliVerb.Create("remove", "Delete every key of the cluster from etcd, after you type its name. PostgreSQL's data is not touched.",
            async (cli, pr, ct) =>
            {
                if (pr.GetValue(scope) != cli.Scope)
                {
                    throw new CliException($"the cluster given is {cli.Scope}, not {pr.GetValue(scope)}; nothing was removed");
                }

                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                var running = view.Members.Where(m => m.Data.State == "running").Select(m => m.Name).ToList();
                if (running.Count > 0 && !pr.GetValue(force))
                {
                    throw new CliException($"members {string.Join(", ", running)} of cluster {cli.Scope} are still running: stop their agents first, or pass --force; nothing was removed");
                }

                await cli.Out.WriteAsync(ListCommand.Render(cli.Scope, view, extended: false, TextTable.DefaultWidth)).ConfigureAwait(false);
                await cli.Out.FlushAsync(ct).ConfigureAwait(false);
                const string hint = "remove needs the answers typed (or piped)";
                if (cli.Prompter.Ask("Please confirm the cluster name to remove: ", hint).Trim() != cli.Scope)
                {
                    throw new CliException("the name does not match; nothing was removed");
                }

                if (cli.Prompter.Ask($"You are about to remove all information in etcd for {cli.Scope}, please type: \"Yes I am aware\": ", hint).Trim() != "Yes I am aware")
                {
                    throw new CliException("you did not type \"Yes I am aware\"; nothing was removed");
                }

                var deleted = await cli.Store.RemoveClusterAsync(ct).ConfigureAwait(false);
                await cli.Out.WriteLineAsync($"Removed {deleted} keys of cluster {cli.Scope} (under {cli.Target.Prefix})").ConfigureAwait(false);
                return ExitCodes.Ok;
            }, rest: false, scope, force);
    }
}
