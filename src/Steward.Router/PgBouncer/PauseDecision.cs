using Steward.Core.Cluster;
using Steward.Router.Routing;

namespace Steward.Router.PgBouncer;

/// <summary>The router's PgBouncers are paused for the switchover request whose <c>failover</c> key has <see cref="Revision"/>, away from <see cref="Leader"/>.</summary>
/// <param name="Revision">The request's <c>failover</c> mod_revision (what the confirmation names).</param>
/// <param name="Leader">The leader when the pause began: a writer other than it means the switchover happened.</param>
/// <param name="Since">Monotonic timestamp of the pause's start.</param>
internal sealed record PausedFor(long Revision, string Leader, long Since);

/// <summary>What the router does next with its PgBouncers.</summary>
internal abstract record PauseStep
{
    public static readonly PauseStep None = new NoStep();

    private sealed record NoStep : PauseStep;
}

/// <summary>PAUSE every PgBouncer for this request, then confirm in <c>pause/&lt;router&gt;</c>.</summary>
internal sealed record PauseFor(long Revision, string Leader) : PauseStep;

/// <summary>RESUME every PgBouncer (after RECONNECT when the writer changed), then delete the confirmation.</summary>
/// <param name="Reconnect">The writer is a new member: drop every server connection as it is released.</param>
/// <param name="Why">For the log: the new writer, a cancelled switchover, or the bound.</param>
internal sealed record ResumeAll(bool Reconnect, string Why) : PauseStep;

/// <summary>
/// The router's half of the PgBouncer handshake, as a pure function of what it sees (docs/pgbouncer.md):
/// <list type="bullet">
/// <item>not paused, and a planned switchover is due (a <c>failover</c> key from the current leader, its
/// <c>scheduled_at</c> reached, not handled yet): pause;</item>
/// <item>paused, and the write port has a writer again (the request is gone and the leader key's holder is a running
/// primary): resume — with RECONNECT when it is another member than the one the pause began with;</item>
/// <item>paused for longer than the bound with still no writer: resume anyway (PgBouncer must never stay paused; its
/// clients then meet the router's hold, and errors past it, as without a pause).</item>
/// </list>
/// An unplanned failover (no <c>failover</c> key, or one naming a candidate while there is no leader) is never paused for.
/// </summary>
internal static class PauseDecision
{
    public static PauseStep Next(ClusterView? view, RoutingTable table, PausedFor? paused, long handledRevision,
        DateTimeOffset now, TimeSpan pausedFor, TimeSpan maxPause)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (paused is not null)
        {
            if (table.Writer is { } writer)
            {
                return writer.Name == paused.Leader
                    ? new ResumeAll(false, $"the switchover was cancelled; writes stay on {writer.Name}")
                    : new ResumeAll(true, $"the new leader {writer.Name} accepts writes");
            }

            return pausedFor >= maxPause
                ? new ResumeAll(true, $"no leader accepts writes {maxPause.TotalSeconds:0} s after the pause began")
                : PauseStep.None;
        }

        if (view?.Failover is not { } request || view.Leader is not { } leader || request.ModRevision == handledRevision)
        {
            return PauseStep.None;
        }

        var fromLeader = request.Leader is null ? request.Candidate is not null && request.Candidate != leader.Name : request.Leader == leader.Name;
        var due = request.ScheduledAt is null || request.ScheduledAt <= now;
        return fromLeader && due ? new PauseFor(request.ModRevision, leader.Name) : PauseStep.None;
    }
}
