using Steward.Core.Cluster;
using Steward.Core.Postgres;

namespace Steward.Agent;

/// <summary>
/// What the agent knew at the end of its last cycle (or step), published for the REST API. Immutable; the HA loop
/// swaps the whole object.
/// </summary>
internal sealed record AgentSnapshot
{
    public required PgState Pg { get; init; }
    public ClusterView? Cluster { get; init; }
    /// <summary>This agent holds the leader key on its own lease.</summary>
    public bool HoldsLeader { get; init; }
    /// <summary>A demotion or switchover is in progress: health checks must not route writes here.</summary>
    public bool Demoting { get; init; }
    /// <summary>Member state: running, starting, stopped, creating replica, initializing new cluster, rewinding, promoting…</summary>
    public required string State { get; init; }
    public DateTimeOffset? DcsLastSeen { get; init; }
    public DateTimeOffset LastCycle { get; init; }
    public string? LastDecision { get; init; }

    public bool IsPrimaryAcceptingWrites => Pg.Running && Pg.Accepting && Pg.InRecovery == false && !Demoting;
    public bool IsReplicaRunning => Pg.Running && Pg.Accepting && Pg.InRecovery == true;
    public string Role => Pg.InRecovery == false && Pg.Running ? "primary" : Pg.DataDir == DataDirStatus.Initialized ? "replica" : "uninitialized";
}
