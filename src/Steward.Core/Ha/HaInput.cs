using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;

namespace Steward.Core.Ha;

/// <summary>Everything one HA cycle decides from. Built by the agent; the decision itself does no I/O.</summary>
public sealed record HaInput
{
    /// <summary>This member's name.</summary>
    public required string Me { get; init; }

    /// <summary>The cluster as read from etcd this cycle; null when etcd could not be reached.</summary>
    public required ClusterView? Cluster { get; init; }

    /// <summary>The local PostgreSQL as inspected this cycle.</summary>
    public required PgState Pg { get; init; }

    /// <summary>Effective dynamic settings (the <c>config</c> key, else bootstrap.dcs).</summary>
    public required DynamicConfig Settings { get; init; }

    public required TagsConfig Tags { get; init; }

    public required DateTimeOffset Now { get; init; }

    /// <summary>This agent's current session lease (0 when it has none).</summary>
    public long MyLeaseId { get; init; }

    /// <summary>
    /// Session leases this member's agents held before (recorded beside the data directory, so they survive a restart).
    /// A leader key with this member's name on any other lease belongs to someone else — another agent started with the
    /// same name — and is never released or acted on.
    /// </summary>
    public IReadOnlyCollection<long> PastLeaseIds { get; init; } = [];

    /// <summary>
    /// When this agent's lease may expire on the etcd side, minus a safety margin: the last renewal's send time + ttl −
    /// margin. A leader that cannot renew must stop accepting writes before this instant.
    /// </summary>
    public DateTimeOffset? LeaseDeadline { get; init; }

    /// <summary>Since when PostgreSQL has been down while this agent wanted it up (null: it is up, or was never started).</summary>
    public DateTimeOffset? PgDownSince { get; init; }

    /// <summary>
    /// Since when the postmaster has been alive but PostgreSQL has not answered this agent's inspection (no connection,
    /// a query timed out, still starting or in crash recovery); null while it answers and while no postmaster runs. A lock
    /// holder whose PostgreSQL stays unanswered past <c>primary_start_timeout</c> stops it and releases the key.
    /// </summary>
    public DateTimeOffset? PgUnresponsiveSince { get; init; }

    /// <summary>
    /// Since when a running replica has not been streaming (null: streaming, or not a replica). Only reported in the
    /// decision's sentence: not streaming is no proof of divergence.
    /// </summary>
    public DateTimeOffset? NotStreamingSince { get; init; }

    /// <summary>
    /// Since when this agent has seen no <c>leader</c> key (null while one exists). A <c>failover</c> request that nobody
    /// carried out within ttl of the key disappearing is ignored, so a failed switchover cannot leave the cluster leaderless.
    /// </summary>
    public DateTimeOffset? LeaderMissingSince { get; init; }

    /// <summary>
    /// How long ago (monotonic clock) this agent first saw the current <c>failover</c> request due (null: none is due). The
    /// leader waits for the routers' PgBouncer pause at most a bound counted from then (<see cref="SwitchoverPause"/>).
    /// </summary>
    public TimeSpan? SwitchoverWaited { get; init; }

    /// <summary>
    /// failsafe_mode: the leader that confirmed itself to this member through <c>POST /failsafe</c> within the last ttl
    /// (it could not reach etcd, and every member vouched for it). No election while it is set.
    /// </summary>
    public string? FailsafeLeader { get; init; }

    /// <summary>The upstream the local replica was last pointed at (host:port), null if none.</summary>
    public string? CurrentUpstream { get; init; }

    /// <summary>What the other members' REST APIs said this cycle; null when not asked yet (the plan may ask for it).</summary>
    public IReadOnlyDictionary<string, PeerStatus>? Peers { get; init; }
}

/// <summary>What a member's <c>GET /patroni</c> answered (or that it did not answer).</summary>
public sealed record PeerStatus
{
    public required string Name { get; init; }
    public bool Reachable { get; init; }
    /// <summary>primary or replica.</summary>
    public string? Role { get; init; }
    public string? State { get; init; }
    /// <summary>The timeline its <see cref="Lsn"/> is on (a replica's received or replayed timeline); compared before the LSN.</summary>
    public long? Timeline { get; init; }
    /// <summary>Write LSN on a primary, max(received, replayed) on a replica.</summary>
    public long? Lsn { get; init; }
    public bool NoFailover { get; init; }
    /// <summary>Its <c>failover_priority</c> tag as its REST API reports it (null: not reported; the member key's tags are used).</summary>
    public long? FailoverPriority { get; init; }
    /// <summary>When that member last reached etcd; a member that has not seen etcd within ttl cannot take over.</summary>
    public DateTimeOffset? DcsLastSeen { get; init; }

    /// <summary>
    /// Its <see cref="Lsn"/> was read after it had seen the leader key gone (Steward's <c>wal_after_leader_gone</c>): the
    /// former primary had stopped (it is fenced before its lease runs out), so the position includes every commit the
    /// member ever received from it. Only such a position counts as a quorum-commit vote.
    /// </summary>
    public bool WalAfterLeaderGone { get; init; }
}
