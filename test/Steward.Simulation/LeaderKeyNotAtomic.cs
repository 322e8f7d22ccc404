using Steward.Core.Cluster;

namespace Steward.Simulation;

/// <summary>
/// Planted bug for the simulation: taking the leader key does not compare — a member that decided to take it takes it
/// even when another member got it first (a read-then-write instead of etcd's create-if-absent transaction).
/// </summary>
internal sealed class LeaderKeyNotAtomic(IClusterStore inner) : IClusterStore
{
    public string Prefix => inner.Prefix;

    public async Task<bool> TryAcquireLeaderAsync(string name, CancellationToken ct)
    {
        if (await inner.TryAcquireLeaderAsync(name, ct).ConfigureAwait(false))
        {
            return true;
        }

        var view = await inner.LoadAsync(ct).ConfigureAwait(false);
        if (view.Leader is { } holder && holder.Name != name)
        {
            await inner.ReleaseLeaderAsync(holder.Name, holder.LeaseId, ct).ConfigureAwait(false);
        }

        return await inner.TryAcquireLeaderAsync(name, ct).ConfigureAwait(false);
    }

    public Task<ClusterView> LoadAsync(CancellationToken ct) => inner.LoadAsync(ct);

    public Task<LeaseState> KeepAliveAsync(int ttlSeconds, CancellationToken ct) => inner.KeepAliveAsync(ttlSeconds, ct);

    public Task<LeaseState> RegrantAsync(int ttlSeconds, string leaderName, CancellationToken ct) => inner.RegrantAsync(ttlSeconds, leaderName, ct);

    public Task RevokeLeaseAsync(CancellationToken ct) => inner.RevokeLeaseAsync(ct);

    public Task<bool> HoldsLeaderAsync(string name, CancellationToken ct) => inner.HoldsLeaderAsync(name, ct);

    public Task<bool> ReleaseLeaderAsync(string name, long leaseId, CancellationToken ct) => inner.ReleaseLeaderAsync(name, leaseId, ct);

    public Task PutMemberAsync(string name, MemberData data, CancellationToken ct) => inner.PutMemberAsync(name, data, ct);

    public Task DeleteMemberAsync(string name, CancellationToken ct) => inner.DeleteMemberAsync(name, ct);

    public Task<bool> TryCreateInitializeAsync(string value, CancellationToken ct) => inner.TryCreateInitializeAsync(value, ct);

    public Task SetInitializeAsync(string systemId, CancellationToken ct) => inner.SetInitializeAsync(systemId, ct);

    public Task DeleteInitializeAsync(CancellationToken ct) => inner.DeleteInitializeAsync(ct);

    public Task<bool> SetConfigAsync(DynamicConfig config, long expectedModRevision, CancellationToken ct) => inner.SetConfigAsync(config, expectedModRevision, ct);

    public Task SetStatusAsync(ClusterStatus status, CancellationToken ct) => inner.SetStatusAsync(status, ct);

    public Task<bool> SetHistoryAsync(IReadOnlyList<HistoryEntry> history, long expectedModRevision, string leaderName, CancellationToken ct) =>
        inner.SetHistoryAsync(history, expectedModRevision, leaderName, ct);

    public Task<bool> SetSyncStateAsync(SyncState? state, long expectedModRevision, string leaderName, CancellationToken ct) =>
        inner.SetSyncStateAsync(state, expectedModRevision, leaderName, ct);

    public Task<bool> TryCreateFailoverAsync(FailoverRequest request, CancellationToken ct) => inner.TryCreateFailoverAsync(request, ct);

    public Task<bool> DeleteFailoverAsync(long expectedModRevision, CancellationToken ct) => inner.DeleteFailoverAsync(expectedModRevision, ct);

    public Task<long> RemoveClusterAsync(CancellationToken ct) => inner.RemoveClusterAsync(ct);

    public Task WaitForChangeAsync(CancellationToken ct) => inner.WaitForChangeAsync(ct);

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
