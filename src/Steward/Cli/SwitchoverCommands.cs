using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Steward.Core.Cluster;

namespace Steward.Cli;

/// <summary><c>switchover</c> (planned, through the leader's REST API) and <c>failover</c> (to a named member, with or without a leader).</summary>
internal static class SwitchoverCommands
{
    private static readonly TimeSpan NewLeaderTimeout = TimeSpan.FromSeconds(60);

    public static Command CreateSwitchover()
    {
        var leaderOption = new Option<string?>("--leader", "--primary", "--master") { Description = "the current leader (checked: refused if it is not)" };
        var candidateOption = new Option<string?>("--candidate") { Description = "the member to promote (default: the healthiest replica, chosen by the agents)" };
        var scheduledOption = new Option<string?>("--scheduled") { Description = "when: ISO 8601 time (local unless an offset is given) or 'now' (default)" };
        var force = CliVerb.Force();
        return CliVerb.Create("switchover",
            "Hand the leader role over to a healthy replica (planned: the leader stops cleanly first), now or at a scheduled time.",
            async (cli, pr, ct) =>
            {
                var scheduled = CliTime.ParseFuture(pr.GetValue(scheduledOption), "--scheduled", cli.Time.GetUtcNow());
                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                var leader = view.LeaderMember
                             ?? throw new CliException($"This cluster has no leader (cluster {cli.Scope}): a switchover needs one; use steward failover --candidate NAME");
                if (pr.GetValue(leaderOption) is { } named && named != leader.Name)
                {
                    throw new CliException($"Member {named} is not the leader of cluster {cli.Scope} (the leader is {leader.Name}); nothing was changed");
                }

                var candidate = pr.GetValue(candidateOption);
                if (candidate is not null)
                {
                    CheckCandidate(view, cli.Scope, candidate, leader, requireStreaming: true);
                }
                else if (!view.Members.Any(m => m.Name != leader.Name && !IsTrue(m.Data.Tags, "nofailover")))
                {
                    throw new CliException($"No candidates found to switchover to (cluster {cli.Scope}: no member other than {leader.Name} without the nofailover tag)");
                }
                else if (!view.Members.Any(m => m.Name != leader.Name && Refusal(view, m, leader, requireStreaming: true) is null))
                {
                    throw new CliException($"No candidates found to switchover to: no member of cluster {cli.Scope} can take over from {leader.Name}: "
                                           + string.Join("; ", view.Members.Where(m => m.Name != leader.Name).Select(m => Refusal(view, m, leader, true))));
                }

                if (scheduled is not null && view.Config?.Value.Pause == true)
                {
                    throw new CliException("Can't schedule switchover in the paused state");
                }

                cli.Prompter.Confirm(scheduled is { } at
                    ? $"Are you sure you want to schedule a switchover of cluster {cli.Scope} at {CliTime.Format(at)}, demoting current leader {leader.Name}?"
                    : $"Are you sure you want to switchover cluster {cli.Scope}, demoting current leader {leader.Name}?", pr.GetValue(force));

                var body = new JsonObject { ["leader"] = leader.Name };
                if (candidate is not null)
                {
                    body["candidate"] = candidate;
                }

                if (scheduled is { } time)
                {
                    body["scheduled_at"] = time.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture);
                }

                var response = await cli.Rest.SendAsync(leader, HttpMethod.Post, "/switchover", body, RestClient.ActionTimeout, ct).ConfigureAwait(false);
                if (scheduled is not null)
                {
                    if (response.Status != 202)
                    {
                        throw new CliException(Failed("Switchover", response));
                    }

                    await cli.Out.WriteLineAsync($"Switchover scheduled at {CliTime.Format(scheduled.Value)}").ConfigureAwait(false);
                    return ExitCodes.Ok;
                }

                if (response.Status != 200)
                {
                    throw new CliException(Failed("Switchover", response));
                }

                await cli.Out.WriteLineAsync(response.Body.Trim()).ConfigureAwait(false);
                await WaitForNewLeaderAsync(cli, candidate, leader.Name, ct).ConfigureAwait(false);
                await cli.PrintListAsync(ct).ConfigureAwait(false);
                return ExitCodes.Ok;
            }, rest: true, leaderOption, candidateOption, scheduledOption, force);
    }

    /// <summary><c>steward flush switchover</c>: cancel a scheduled switchover (patronictl flush … switchover).</summary>
    public static Command CreateFlush()
    {
        var what = new Argument<string>("what") { Description = "switchover: cancel the scheduled switchover" };
        what.AcceptOnlyFromAmong("switchover");
        var force = CliVerb.Force();
        return CliVerb.Create("flush", "Cancel a scheduled switchover.", async (cli, pr, ct) =>
        {
            var view = await cli.LoadAsync(ct).ConfigureAwait(false);
            if (view.Failover is not { ScheduledAt: { } at })
            {
                throw new CliException($"cluster {cli.Scope} has no scheduled switchover; nothing was changed");
            }

            var target = view.LeaderMember ?? view.Members.FirstOrDefault()
                         ?? throw new CliException($"cluster {cli.Scope} has no member to ask");
            cli.Prompter.Confirm($"Are you sure you want to cancel the switchover of cluster {cli.Scope} scheduled at {CliTime.Format(at)}?", pr.GetValue(force));
            var response = await cli.Rest.SendAsync(target, HttpMethod.Delete, "/switchover", null, RestClient.ActionTimeout, ct).ConfigureAwait(false);
            if (response.Status != 200)
            {
                throw new CliException($"the scheduled switchover was not cancelled: {response.Describe("DELETE")}");
            }

            await cli.Out.WriteLineAsync(response.Body.Trim()).ConfigureAwait(false);
            return ExitCodes.Ok;
        }, rest: true, what, force);
    }

    public static Command CreateFailover()
    {
        var candidateOption = new Option<string?>("--candidate") { Description = "the member to promote (required)" };
        var force = CliVerb.Force();
        return CliVerb.Create("failover",
            "Make a named member the leader, also when the cluster has no leader (unplanned: use switchover when the leader is healthy).",
            async (cli, pr, ct) =>
            {
                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                var leader = view.LeaderMember;
                if (!view.Members.Any(m => m.Name != leader?.Name && !IsTrue(m.Data.Tags, "nofailover")))
                {
                    throw new CliException($"No candidates found to failover to (cluster {cli.Scope}: no member{(leader is null ? "" : $" other than {leader.Name}")} without the nofailover tag)");
                }

                var candidate = CheckCandidate(view, cli.Scope, pr.GetValue(candidateOption)
                    ?? throw new CliException("Failover could be performed only to a specific candidate: give --candidate NAME"), leader, requireStreaming: false);
                cli.Prompter.Confirm(leader is null
                    ? $"Are you sure you want to failover cluster {cli.Scope} to {candidate.Name}? It has no leader."
                    : $"Are you sure you want to failover cluster {cli.Scope} to {candidate.Name}, demoting current leader {leader.Name}?", pr.GetValue(force));

                var body = new JsonObject { ["candidate"] = candidate.Name };
                if (leader is not null)
                {
                    body["leader"] = leader.Name;
                }

                // Any member can take the request (it writes the failover key); the candidate's own API is tried first.
                var order = view.Members.OrderBy(m => m.Name == candidate.Name ? 0 : m.Name == leader?.Name ? 1 : 2).ToList();
                var unreachable = new List<string>();
                RestResponse? response = null;
                foreach (var m in order)
                {
                    try
                    {
                        response = await cli.Rest.SendAsync(m, HttpMethod.Post, "/failover", body, RestClient.ActionTimeout, ct).ConfigureAwait(false);
                        break;
                    }
                    catch (RestUnreachableException e)
                    {
                        unreachable.Add(e.Message);
                    }
                }

                if (response is null)
                {
                    throw new CliException($"no member's REST API answered; nothing was changed: {string.Join("; ", unreachable)}");
                }

                if (response.Status != 200)
                {
                    throw new CliException(Failed("Failover", response));
                }

                await cli.Out.WriteLineAsync(response.Body.Trim()).ConfigureAwait(false);
                await WaitForNewLeaderAsync(cli, candidate.Name, leader?.Name, ct).ConfigureAwait(false);
                await cli.PrintListAsync(ct).ConfigureAwait(false);
                return ExitCodes.Ok;
            }, rest: true, candidateOption, force);
    }

    private static Task WaitForNewLeaderAsync(CliContext cli, string? candidate, string? oldLeader, CancellationToken ct) =>
        cli.Progress(candidate is null ? "a new leader" : $"{candidate} to become the leader").UntilAsync(
            (v, _) => Task.FromResult(v.Leader is { } l && (candidate is null ? l.Name != oldLeader : l.Name == candidate)),
            Progress.DescribeLeader, NewLeaderTimeout, ct);

    /// <summary>patronictl's "Switchover failed, details: 503, …" (scripts match on it), with the member and URL.</summary>
    private static string Failed(string action, RestResponse response) =>
        $"{action} failed, details: {response.Status}, {response.Body.Trim()} ({response.Describe("POST")})";

    /// <summary>The candidate, or patronictl's refusal (its words first, then Steward's reason).</summary>
    private static Member CheckCandidate(ClusterView view, string scope, string name, Member? leader, bool requireStreaming)
    {
        if (name == leader?.Name)
        {
            throw new CliException($"Member {name} is already the leader of cluster {scope}; nothing was changed");
        }

        if (view.GetMember(name) is not { } candidate || IsTrue(candidate.Data.Tags, "nofailover"))
        {
            throw new CliException($"Member {name} does not exist in cluster {scope} or is tagged as nofailover "
                                   + (view.GetMember(name) is null ? $"(members: {string.Join(", ", view.Members.Select(m => m.Name))})" : "(it has the nofailover tag)"));
        }

        if (Refusal(view, candidate, leader, requireStreaming) is { } why)
        {
            throw new CliException($"{why}; cluster {scope} was not changed");
        }

        return candidate;
    }

    /// <summary>Why <paramref name="m"/> cannot become the leader, or null when it can.</summary>
    internal static string? Refusal(ClusterView view, Member m, Member? leader, bool requireStreaming)
    {
        if (m.Name == leader?.Name)
        {
            return $"{m.Name} is already the leader";
        }

        if (IsTrue(m.Data.Tags, "nofailover"))
        {
            return $"{m.Name} has the tag nofailover and may not become the leader";
        }

        if (m.Data.State != "running")
        {
            return $"{m.Name} is not running (state: {m.Data.State ?? "unknown"})";
        }

        if (view.Config?.Value is { } settings && Steward.Core.Ha.SyncReplication.PromotionBlocked(settings, view.Sync, m.Name) is { } notSync)
        {
            return $"{m.Name} may not take over in synchronous mode: {notSync}";
        }

        if (!requireStreaming)
        {
            return null;
        }

        if (m.Data.ReplicationState != "streaming")
        {
            return $"{m.Name} is not a streaming replica (replication state: {m.Data.ReplicationState ?? "none"})";
        }

        var maxLag = view.Config?.Value.MaximumLagOnFailover ?? new DynamicConfig().MaximumLagOnFailover;
        var leaderLsn = view.Status?.Optime ?? leader?.Data.XlogLocation;
        if (leaderLsn is { } l && m.Data.XlogLocation is { } x && l - x > maxLag)
        {
            return $"{m.Name} is {l - x} bytes behind the leader (maximum_lag_on_failover is {maxLag})";
        }

        return null;
    }

    internal static bool IsTrue(IReadOnlyDictionary<string, object?>? tags, string tag) => tags?.GetValueOrDefault(tag) switch
    {
        bool b => b,
        JsonElement { ValueKind: JsonValueKind.True } => true,
        JsonElement { ValueKind: JsonValueKind.String } s => s.GetString()?.ToUpperInvariant() is "TRUE" or "ON" or "YES",
        string s => s.ToUpperInvariant() is "TRUE" or "ON" or "YES",
        _ => false,
    };
}
