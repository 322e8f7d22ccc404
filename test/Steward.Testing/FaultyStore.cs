using Steward.Core.Cluster;

namespace Steward.Testing;

/// <summary>A fault for the next store calls: slow, with the request applied at the call (a slow answer) or at the end of the wait (a slow request).</summary>
public sealed record StoreFault(TimeSpan Delay, bool EffectFirst);

/// <summary>
/// An <see cref="IClusterStore"/> in front of another (one agent's <see cref="InMemoryClusterStore"/>) that makes the
/// next calls slow. The wait runs on the agent process's clock. A renewal whose request is slow keeps the send time
/// as <see cref="LeaseState.RenewedAt"/>, as the etcd client takes it before sending.
/// </summary>
public sealed class FaultyStore(IClusterStore inner, TimeProvider clock) : IClusterStore
{
    private readonly Queue<StoreFault> _faults = new();

    public IClusterStore Inner => inner;

    public void InjectFault(StoreFault fault) => _faults.Enqueue(fault);

    public string Prefix => inner.Prefix;

    public Task<ClusterView> LoadAsync(CancellationToken ct) => Call(() => inner.LoadAsync(ct));

    public Task<LeaseState> KeepAliveAsync(int ttlSeconds, CancellationToken ct)
    {
        if (_faults.Count == 0)
        {
            return inner.KeepAliveAsync(ttlSeconds, ct);
        }

        var sent = clock.GetTimestamp();
        return Call(async () => await inner.KeepAliveAsync(ttlSeconds, ct).ConfigureAwait(false) with { RenewedAt = sent });
    }

    public Task<LeaseState> RegrantAsync(int ttlSeconds, string leaderName, CancellationToken ct)
    {
        var sent = clock.GetTimestamp();
        return Call(async () => await inner.RegrantAsync(ttlSeconds, leaderName, ct).ConfigureAwait(false) with { RenewedAt = sent });
    }

    public Task RevokeLeaseAsync(CancellationToken ct) => Call(() => inner.RevokeLeaseAsync(ct));

    public Task<bool> TryAcquireLeaderAsync(string name, CancellationToken ct) => Call(() => inner.TryAcquireLeaderAsync(name, ct));

    public Task<bool> HoldsLeaderAsync(string name, CancellationToken ct) => Call(() => inner.HoldsLeaderAsync(name, ct));

    public Task<bool> ReleaseLeaderAsync(string name, long leaseId, CancellationToken ct) => Call(() => inner.ReleaseLeaderAsync(name, leaseId, ct));

    public Task PutMemberAsync(string name, MemberData data, CancellationToken ct) => Call(() => inner.PutMemberAsync(name, data, ct));

    public Task DeleteMemberAsync(string name, CancellationToken ct) => Call(() => inner.DeleteMemberAsync(name, ct));

    public Task<bool> TryCreateInitializeAsync(string value, CancellationToken ct) => Call(() => inner.TryCreateInitializeAsync(value, ct));

    public Task SetInitializeAsync(string systemId, CancellationToken ct) => Call(() => inner.SetInitializeAsync(systemId, ct));

    public Task DeleteInitializeAsync(CancellationToken ct) => Call(() => inner.DeleteInitializeAsync(ct));

    public Task<bool> SetConfigAsync(DynamicConfig config, long expectedModRevision, CancellationToken ct) =>
        Call(() => inner.SetConfigAsync(config, expectedModRevision, ct));

    public Task SetStatusAsync(ClusterStatus status, CancellationToken ct) => Call(() => inner.SetStatusAsync(status, ct));

    public Task<bool> SetHistoryAsync(IReadOnlyList<HistoryEntry> history, long expectedModRevision, string leaderName, CancellationToken ct) =>
        Call(() => inner.SetHistoryAsync(history, expectedModRevision, leaderName, ct));

    public Task<bool> SetSyncStateAsync(SyncState? state, long expectedModRevision, string leaderName, CancellationToken ct) =>
        Call(() => inner.SetSyncStateAsync(state, expectedModRevision, leaderName, ct));

    public Task<bool> TryCreateFailoverAsync(FailoverRequest request, CancellationToken ct) => Call(() => inner.TryCreateFailoverAsync(request, ct));

    public Task<bool> DeleteFailoverAsync(long expectedModRevision, CancellationToken ct) => Call(() => inner.DeleteFailoverAsync(expectedModRevision, ct));

    public Task<long> RemoveClusterAsync(CancellationToken ct) => Call(() => inner.RemoveClusterAsync(ct));

    public Task WaitForChangeAsync(CancellationToken ct) => inner.WaitForChangeAsync(ct);

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private Task Call(Func<Task> call) => Call(async () =>
    {
        await call().ConfigureAwait(false);
        return true;
    });

    private Task<T> Call<T>(Func<Task<T>> call) => _faults.TryDequeue(out var fault) ? Slow(fault, call) : call();

    /// <summary>
    /// A slow call. A slow request reaches etcd late and is applied then, whatever state the agent is in; the answer
    /// reaches the agent through its process clock (a frozen agent hears it when thawed, a dead one never).
    /// </summary>
    private Task<T> Slow<T>(StoreFault fault, Func<Task<T>> call)
    {
        // The in-memory store answers synchronously: its task is complete when the call returns.
        if (!fault.EffectFirst)
        {
            return SimClock.Later(clock, fault.Delay, () => call().GetAwaiter().GetResult());
        }

        var result = call();
        return result.IsCompleted && !result.IsCompletedSuccessfully ? result : SimClock.Later(clock, fault.Delay, () => result.GetAwaiter().GetResult());
    }
}
