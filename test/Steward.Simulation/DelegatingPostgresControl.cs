using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;

namespace Steward.Simulation;

/// <summary>Forwards every call to <paramref name="inner"/>; a planted bug overrides the one call it breaks.</summary>
internal abstract class DelegatingPostgresControl(IPostgresControl inner) : IPostgresControl
{
    public virtual Task<PgState> InspectAsync(CancellationToken ct) => inner.InspectAsync(ct);

    public virtual Task ValidateDataDirAsync(CancellationToken ct) => inner.ValidateDataDirAsync(ct);

    public virtual Task BootstrapAsync(IReadOnlyList<string> initdbOptions, DynamicConfig dynamic, CancellationToken ct) => inner.BootstrapAsync(initdbOptions, dynamic, ct);

    public virtual Task CloneAsync(HostPort source, CancellationToken ct) => inner.CloneAsync(source, ct);

    public virtual Task StartAsync(StartRole role, Upstream? upstream, DynamicConfig dynamic, CancellationToken ct) => inner.StartAsync(role, upstream, dynamic, ct);

    public virtual Task StopAsync(StopMode mode, CancellationToken ct) => inner.StopAsync(mode, ct);

    public virtual Task FollowAsync(Upstream? upstream, CancellationToken ct) => inner.FollowAsync(upstream, ct);

    public virtual Task ReloadAsync(DynamicConfig dynamic, CancellationToken ct) => inner.ReloadAsync(dynamic, ct);

    public virtual Task PromoteAsync(bool checkpoint, CancellationToken ct) => inner.PromoteAsync(checkpoint, ct);

    public virtual Task<bool> RewindAsync(HostPort source, CancellationToken ct) => inner.RewindAsync(source, ct);

    public virtual Task<string> MoveDataDirAsideAsync(CancellationToken ct) => inner.MoveDataDirAsideAsync(ct);

    public virtual Task SyncReplicationSlotsAsync(IReadOnlyCollection<string> slotNames, CancellationToken ct, Func<string, bool>? mayDrop = null) => inner.SyncReplicationSlotsAsync(slotNames, ct, mayDrop);
    public virtual Task SetPrimaryMarkAsync(bool present, CancellationToken ct) => inner.SetPrimaryMarkAsync(present, ct);

    public virtual Task WriteMissingHistoryFilesAsync(IReadOnlyList<HistoryEntry> history, CancellationToken ct) => inner.WriteMissingHistoryFilesAsync(history, ct);

    public virtual Task<TimelineSwitch?> ReadLastTimelineSwitchAsync(long timeline, CancellationToken ct) => inner.ReadLastTimelineSwitchAsync(timeline, ct);

    public virtual Task CheckpointAsync(CancellationToken ct) => inner.CheckpointAsync(ct);

    public virtual Task SetSynchronousStandbyNamesAsync(string? value, CancellationToken ct) => inner.SetSynchronousStandbyNamesAsync(value, ct);
}
