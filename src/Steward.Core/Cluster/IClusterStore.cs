namespace Steward.Core.Cluster;

/// <summary>
/// The agent's view of etcd: Patroni's key layout under <c>&lt;namespace&gt;/&lt;scope&gt;/</c>.
///
/// Contract, for every implementation (the in-memory one used by unit tests and the etcd one):
/// <list type="bullet">
/// <item>Every method throws <see cref="StoreUnavailableException"/> when the store cannot be reached or does not
/// answer within the call's deadline. No method ever swallows that: callers must be able to tell "no" from "don't know".</item>
/// <item>"Create" methods create atomically (compare create_revision == 0); if the key exists they return false.</item>
/// <item>"Compare" methods change a key only if its current value/revision is the one given; otherwise they return false.</item>
/// <item>The session lease is this agent's own. <see cref="KeepAliveAsync"/> grants one when there is none (or the old
/// one expired) and re-puts nothing; keys bound to an expired lease are gone and must be written again by the caller.</item>
/// </list>
/// </summary>
public interface IClusterStore : IAsyncDisposable
{
    /// <summary>The key prefix, e.g. <c>/service/demo/</c>.</summary>
    string Prefix { get; }

    /// <summary>
    /// How long one call may take (<c>retry_timeout</c>), changed at run time when the <c>config</c> key's value changes.
    /// A store without network calls has nothing to bound: the default does nothing.
    /// </summary>
    void SetRequestTimeout(TimeSpan timeout)
    {
    }

    /// <summary>Reads every key under the prefix in one linearizable range read.</summary>
    Task<ClusterView> LoadAsync(CancellationToken ct);

    /// <summary>
    /// Refreshes this agent's session lease, granting a new one (with <paramref name="ttlSeconds"/>) if there is none or the
    /// old one has expired. Returns the lease state after the call. <see cref="LeaseState.RenewedAt"/> is the monotonic
    /// timestamp (<see cref="TimeProvider.GetTimestamp"/>) taken <b>before</b> the request was sent, so a deadline computed
    /// from it is never later than the etcd-side expiry.
    /// </summary>
    Task<LeaseState> KeepAliveAsync(int ttlSeconds, CancellationToken ct);

    /// <summary>
    /// Grants a new session lease with <paramref name="ttlSeconds"/> (the <c>ttl</c> setting changed) and moves
    /// <c>leader</c> onto it if it holds <paramref name="leaderName"/> on the old lease (a compare on value and lease).
    /// The old lease is left to expire; the caller re-puts its member key, which rebinds it.
    /// </summary>
    Task<LeaseState> RegrantAsync(int ttlSeconds, string leaderName, CancellationToken ct);

    /// <summary>Revokes the session lease (deleting every key bound to it). No-op without a lease.</summary>
    Task RevokeLeaseAsync(CancellationToken ct);

    /// <summary>Creates <c>leader</c> = <paramref name="name"/> bound to the session lease, if absent. False if someone holds it.</summary>
    Task<bool> TryAcquireLeaderAsync(string name, CancellationToken ct);

    /// <summary>
    /// Confirms that <c>leader</c> still holds <paramref name="name"/> on this agent's current lease. False if it does not
    /// (the key expired, was deleted, or belongs to another lease).
    /// </summary>
    Task<bool> HoldsLeaderAsync(string name, CancellationToken ct);

    /// <summary>
    /// Deletes <c>leader</c> if its value is <paramref name="name"/> and it is bound to <paramref name="leaseId"/> (the
    /// session the caller knows as its own, current or previous). False if it held another value, another lease (e.g.
    /// another agent running with the same name), or was absent.
    /// </summary>
    Task<bool> ReleaseLeaderAsync(string name, long leaseId, CancellationToken ct);

    /// <summary>Puts <c>members/&lt;name&gt;</c> bound to the session lease (the lease must exist: call KeepAliveAsync first).</summary>
    Task PutMemberAsync(string name, MemberData data, CancellationToken ct);

    /// <summary>Deletes <c>members/&lt;name&gt;</c>.</summary>
    Task DeleteMemberAsync(string name, CancellationToken ct);

    /// <summary>Creates <c>initialize</c> with <paramref name="value"/> if absent (the bootstrap race). False if it exists.</summary>
    Task<bool> TryCreateInitializeAsync(string value, CancellationToken ct);

    /// <summary>Sets <c>initialize</c> to the system identifier once bootstrap has finished.</summary>
    Task SetInitializeAsync(string systemId, CancellationToken ct);

    /// <summary>Deletes <c>initialize</c> (after a failed bootstrap, so another member can try).</summary>
    Task DeleteInitializeAsync(CancellationToken ct);

    /// <summary>
    /// Writes <c>config</c>. With <paramref name="expectedModRevision"/> = 0 it creates the key only if absent; otherwise
    /// it writes only if the key's mod_revision still equals it. False when the comparison fails.
    /// </summary>
    Task<bool> SetConfigAsync(DynamicConfig config, long expectedModRevision, CancellationToken ct);

    /// <summary>Puts <c>status</c> (leader only).</summary>
    Task SetStatusAsync(ClusterStatus status, CancellationToken ct);

    /// <summary>
    /// Writes <c>history</c> with a compare-and-swap: only if its mod_revision still equals <paramref name="expectedModRevision"/>
    /// (0: only if absent) <b>and</b> <c>leader</c> holds <paramref name="leaderName"/> on this agent's current lease, in one
    /// transaction. False when either comparison fails (another promotion recorded meanwhile, or the key is no longer ours).
    /// </summary>
    Task<bool> SetHistoryAsync(IReadOnlyList<HistoryEntry> history, long expectedModRevision, string leaderName, CancellationToken ct);

    /// <summary>
    /// Writes the <c>sync</c> key (the synchronous standbys on record), with the same compare-and-swap and leader guard as
    /// <see cref="SetHistoryAsync"/>; <paramref name="state"/> null deletes it. False when a comparison fails.
    /// </summary>
    Task<bool> SetSyncStateAsync(SyncState? state, long expectedModRevision, string leaderName, CancellationToken ct);

    /// <summary>Creates <c>failover</c> if absent. False if a request is already pending.</summary>
    Task<bool> TryCreateFailoverAsync(FailoverRequest request, CancellationToken ct);

    /// <summary>Deletes <c>failover</c>; with <paramref name="expectedModRevision"/> &gt; 0 only if it is unchanged.</summary>
    Task<bool> DeleteFailoverAsync(long expectedModRevision, CancellationToken ct);

    /// <summary>Deletes every key under the prefix (<c>steward remove</c>). Returns how many keys were deleted.</summary>
    Task<long> RemoveClusterAsync(CancellationToken ct);

    /// <summary>
    /// Completes the first time anything under the prefix changes after this call (fed by a watch), or when the watch
    /// had to be re-established (so the caller re-reads). Never throws for store errors; cancelled by <paramref name="ct"/>.
    /// </summary>
    Task WaitForChangeAsync(CancellationToken ct);
}

/// <summary>The session lease after a keepalive.</summary>
/// <param name="LeaseId">The lease bound to this agent's keys.</param>
/// <param name="IsNew">True when the lease was granted by this call (every key bound to an older lease is gone).</param>
/// <param name="RenewedAt">Monotonic timestamp taken before the request that renewed the lease was sent.</param>
/// <param name="TtlSeconds">TTL of the lease.</param>
public sealed record LeaseState(long LeaseId, bool IsNew, long RenewedAt, int TtlSeconds);

/// <summary>The store could not be reached or did not answer in time. The outcome of a write is unknown.</summary>
public sealed class StoreUnavailableException : Exception
{
    public StoreUnavailableException(string message, Exception? inner = null) : base(message, inner) { }
    public StoreUnavailableException() { }
    public StoreUnavailableException(string message) : base(message) { }
}

/// <summary>
/// The keys a router that drives PgBouncers writes (docs/pgbouncer.md), bound to its own session lease
/// (<see cref="IClusterStore.KeepAliveAsync"/> grants it), so they go when the router does. Same contract as
/// <see cref="IClusterStore"/>: <see cref="StoreUnavailableException"/> when the store cannot be reached or the lease
/// has expired (the caller keeps the lease alive and puts again).
/// </summary>
public interface IRouterKeys
{
    /// <summary>Puts <c>routers/&lt;name&gt;</c> bound to the session lease.</summary>
    Task PutRouterAsync(string name, RouterRegistration registration, CancellationToken ct);

    /// <summary>Puts <c>pause/&lt;name&gt;</c> (the router's answer to a switchover request) bound to the session lease.</summary>
    Task PutPauseAsync(string name, PauseConfirmation confirmation, CancellationToken ct);

    /// <summary>Deletes <c>pause/&lt;name&gt;</c>.</summary>
    Task DeletePauseAsync(string name, CancellationToken ct);
}
