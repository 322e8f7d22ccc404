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
    /// <summary>
    /// This agent holds the leader key on its own lease. Read through <see cref="NodeAgent.Snapshot"/>, which also requires
    /// the lease to be provably alive on the monotonic clock: a snapshot never vouches for an expired lease.
    /// </summary>
    public bool HoldsLeader { get; init; }
    /// <summary>The lease the leader key was held on when <see cref="HoldsLeader"/> was set (0: none).</summary>
    public long LeaseId { get; init; }
    /// <summary>A demotion or switchover is in progress: health checks must not route writes here.</summary>
    public bool Demoting { get; init; }
    /// <summary>Member state: running, starting, stopped, creating replica, initializing new cluster, rewinding, promoting…</summary>
    public required string State { get; init; }
    public DateTimeOffset? DcsLastSeen { get; init; }
    public DateTimeOffset LastCycle { get; init; }
    /// <summary>When the last cycle ended, on the monotonic clock (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long LastCycleTimestamp { get; init; }
    public string? LastDecision { get; init; }

    /// <summary>
    /// <see cref="Pg"/> was inspected after an earlier read of etcd found no leader key, and this cycle's read still finds
    /// none: the former primary had stopped before the position was read (see <see cref="Steward.Core.Ha.PeerStatus.WalAfterLeaderGone"/>).
    /// </summary>
    public bool WalAfterLeaderGone { get; init; }

    public bool IsPrimaryAcceptingWrites => Pg.Running && Pg.Accepting && Pg.InRecovery == false && !Demoting;
    public bool IsReplicaRunning => Pg.Running && Pg.Accepting && Pg.InRecovery == true;
    /// <summary>The leader of a standby cluster: holds the key, runs as a standby of the remote primary.</summary>
    public bool IsStandbyLeader => HoldsLeader && IsReplicaRunning && Cluster?.Config?.Value.StandbyCluster is not null;
    public string Role => IsStandbyLeader ? "standby_leader" : RoleOf(Pg);

    /// <summary>primary, replica or uninitialized, as Patroni's REST API names a member's PostgreSQL role.</summary>
    public static string RoleOf(PgState pg) => pg.InRecovery == false && pg.Running ? "primary" : pg.DataDir == DataDirStatus.Initialized ? "replica" : "uninitialized";
}
