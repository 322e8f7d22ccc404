using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;

namespace Steward.Core.Ha;

/// <summary>
/// What one HA cycle decided: a sentence for the log (Patroni-style; operators grep these, keep them stable) and the
/// steps the agent carries out, in order. A step that fails ends the cycle; the next cycle decides again from what
/// is then true.
/// </summary>
public sealed record HaPlan(string Message, IReadOnlyList<HaStep> Steps)
{
    /// <summary>Decide again after this long at the latest (sooner than loop_wait), e.g. when a bounded wait ends; null: loop_wait.</summary>
    public TimeSpan? RecheckAfter { get; init; }

    public static HaPlan NoAction(string message) => new(message, []);

    public bool Has<T>() where T : HaStep => Steps.Any(s => s is T);

    public override string ToString() => Steps.Count == 0 ? Message : $"{Message} [{string.Join(", ", Steps)}]";
}

/// <summary>One action. Records so tests can compare plans structurally.</summary>
public abstract record HaStep;

/// <summary>Race for the <c>initialize</c> key, then initdb, start as primary, take <c>leader</c>, publish the system id and <c>config</c>. Undone (initialize deleted) if bootstrap fails.</summary>
public sealed record BootstrapCluster : HaStep;

/// <summary>Take <c>leader</c> (if not held), publish the system id in <c>initialize</c> and seed <c>config</c>: the tail of an interrupted bootstrap.</summary>
public sealed record CompleteBootstrap(string SystemId) : HaStep;

/// <summary>No <c>initialize</c> key but a data directory: race for <c>initialize</c> with this system id.</summary>
public sealed record ClaimInitialize(string SystemId) : HaStep;

/// <summary>pg_basebackup from the leader.</summary>
public sealed record CloneFrom(string Member, HostPort Address) : HaStep;

/// <summary>Create <c>leader</c> bound to my lease; the rest of the plan runs only if this succeeds.</summary>
public sealed record AcquireLeader : HaStep;

/// <summary>Delete <c>leader</c> if it holds my name.</summary>
public sealed record ReleaseLeader : HaStep;

public sealed record StartPostgres(StartRole Role, string? UpstreamMember, Upstream? Upstream) : HaStep;

/// <summary>Immediate mode is bounded: a postmaster that does not stop within seconds is killed with its backends.</summary>
public sealed record StopPostgres(StopMode Mode) : HaStep;

/// <summary>Point the running replica at another upstream (reload, no restart).</summary>
public sealed record Follow(string? UpstreamMember, Upstream? Upstream) : HaStep;

/// <summary>
/// pg_rewind from the leader; if that fails (or use_pg_rewind is off), move the data directory aside and clone anew. Planned
/// only while the leader answered as a running primary this cycle (<see cref="HaInput.Peers"/>).
/// </summary>
public sealed record RewindOrReclone(string Member, HostPort Address, bool UseRewind) : HaStep;

/// <summary>Write missing timeline history files (rule 4), promote, append the switch to <c>history</c>, clear a <c>failover</c> request.</summary>
public sealed record Promote(string Reason) : HaStep;

/// <summary>Leader housekeeping: replication slots for the members, <c>status</c> key.</summary>
public sealed record LeaderHousekeeping : HaStep;

/// <summary>Ask every other member's REST API for its state, then decide again.</summary>
public sealed record FetchPeers : HaStep;

/// <summary>CHECKPOINT before a clean demotion, so the shutdown is quick.</summary>
public sealed record Checkpoint : HaStep;

public sealed record DeleteFailoverKey : HaStep;

/// <summary>The agent cannot go on safely (e.g. system id mismatch): log and exit without touching anything.</summary>
public sealed record Fatal(string Reason) : HaStep;
