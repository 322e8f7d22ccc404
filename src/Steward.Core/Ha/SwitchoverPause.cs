using System.Globalization;
using Steward.Core.Cluster;

namespace Steward.Core.Ha;

/// <summary>What the leader does about the routers' PgBouncer pause before it demotes for a switchover.</summary>
/// <param name="Proceed">True: demote now. False: wait (check again after <see cref="Remaining"/>).</param>
/// <param name="Note">For the decision's sentence: what the routers answered, when it matters (null: nothing to say).</param>
/// <param name="Waiting">The routers whose answer is still missing.</param>
/// <param name="Bound">How long the leader waits at most, from the moment it saw the request due.</param>
/// <param name="Remaining">What is left of <see cref="Bound"/>.</param>
public sealed record PauseGate(bool Proceed, string? Note, IReadOnlyList<string> Waiting, TimeSpan Bound, TimeSpan Remaining)
{
    public static readonly PauseGate Nothing = new(true, null, [], TimeSpan.Zero, TimeSpan.Zero);
}

/// <summary>
/// The leader's half of the PgBouncer handshake (docs/pgbouncer.md). A router that drives PgBouncers registers itself in
/// <c>routers/&lt;name&gt;</c> (with its <c>pause_timeout</c>); when it sees a switchover request due, it pauses them and
/// answers in <c>pause/&lt;name&gt;</c> with the request's <c>failover</c> mod_revision. The leader demotes once every
/// registered router answered that revision, or once the largest <c>pause_timeout</c> plus <see cref="Margin"/> has
/// passed since it saw the request due — a router that is gone, hung or cut off from etcd delays a switchover by that
/// much, never more. Without registered routers nothing waits. Pure: the caller measures <c>waited</c> on the monotonic
/// clock.
/// </summary>
public static class SwitchoverPause
{
    /// <summary>Time past a router's pause_timeout for it to see the request and write its answer.</summary>
    public static readonly TimeSpan Margin = TimeSpan.FromSeconds(2);

    public static PauseGate Check(ClusterView cluster, FailoverRequest request, TimeSpan waited)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(request);
        var routers = cluster.Routers.Where(r => r.Data.PgBouncers.Count > 0).ToList();
        if (routers.Count == 0)
        {
            return PauseGate.Nothing;
        }

        var bound = TimeSpan.FromSeconds(routers.Max(r => Math.Max(0, r.Data.PauseTimeout))) + Margin;
        var answers = routers
            .Select(r => (Router: r.Name, Answer: cluster.Pauses.FirstOrDefault(p => p.Name == r.Name && p.Data.FailoverRevision == request.ModRevision)))
            .ToList();
        var waiting = answers.Where(a => a.Answer is null).Select(a => a.Router).ToList();
        var problems = answers.Where(a => a.Answer is not null)
            .SelectMany(a => a.Answer!.Data.PgBouncers.Where(p => p.State != "paused").Select(p => Describe(a.Router, p)))
            .ToList();
        if (waiting.Count > 0 && waited < bound)
        {
            return new PauseGate(false, null, waiting, bound, bound - waited);
        }

        var notes = new List<string>();
        if (waiting.Count > 0)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"router(s) {string.Join(", ", waiting)} did not confirm the PgBouncer pause within {bound.TotalSeconds:0.#} s"));
        }

        notes.AddRange(problems);
        var paused = answers.Count(a => a.Answer is not null);
        var note = notes.Count > 0
            ? string.Join("; ", notes)
            : $"PgBouncers paused by {paused} router(s)";
        return new PauseGate(true, note, waiting, bound, TimeSpan.Zero);
    }

    private static string Describe(string router, PgBouncerOutcome outcome) => outcome.State switch
    {
        "timeout" => $"router {router}: PAUSE of {outcome.Address} timed out, transactions still running there are cut",
        _ => $"router {router}: PgBouncer {outcome.Address} {outcome.State}{(outcome.Detail is { } d ? $" ({d})" : "")}, not paused",
    };
}

/// <summary>
/// Since when (monotonic clock) the current <c>failover</c> request has been due, as one agent saw it: the start of the
/// leader's bounded wait for the routers. A new request (another mod_revision) starts it again; no request due resets it;
/// an unreachable etcd (null view) keeps it.
/// </summary>
public sealed class SwitchoverTimer(TimeProvider time)
{
    private (long Revision, long At)? _due;

    /// <summary>Looks at this cycle's view; returns how long the request has been due (null: none is).</summary>
    public TimeSpan? Observe(ClusterView? cluster, DateTimeOffset now)
    {
        if (cluster is not null)
        {
            _due = cluster.Failover is { } request && (request.ScheduledAt is null || request.ScheduledAt <= now)
                ? _due is { } seen && seen.Revision == request.ModRevision ? seen : (request.ModRevision, time.GetTimestamp())
                : null;
        }

        return _due is { } due ? time.GetElapsedTime(due.At) : null;
    }
}
