using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;

namespace Steward.Simulation;

/// <summary>
/// Planted bug for the simulation: synchronous_standby_names names more standbys than the leader put on record in the
/// sync key (as if PostgreSQL were told before the key grew): commits wait for, and are acknowledged by, standbys the key
/// does not name.
/// </summary>
internal sealed class WiderSyncNames(IPostgresControl inner, IReadOnlyList<string> everyone) : IPostgresControl
{
    public Task<PgState> InspectAsync(CancellationToken ct) => inner.InspectAsync(ct);

    public Task ValidateDataDirAsync(CancellationToken ct) => inner.ValidateDataDirAsync(ct);

    public Task BootstrapAsync(IReadOnlyList<string> initdbOptions, DynamicConfig dynamic, CancellationToken ct) => inner.BootstrapAsync(initdbOptions, dynamic, ct);

    public Task CloneAsync(HostPort source, CancellationToken ct) => inner.CloneAsync(source, ct);

    public Task StartAsync(StartRole role, Upstream? upstream, DynamicConfig dynamic, CancellationToken ct) => inner.StartAsync(role, upstream, dynamic, ct);

    public Task StopAsync(StopMode mode, CancellationToken ct) => inner.StopAsync(mode, ct);

    public Task FollowAsync(Upstream? upstream, CancellationToken ct) => inner.FollowAsync(upstream, ct);

    public Task ReloadAsync(DynamicConfig dynamic, CancellationToken ct) => inner.ReloadAsync(dynamic, ct);

    public Task PromoteAsync(bool checkpoint, CancellationToken ct) => inner.PromoteAsync(checkpoint, ct);

    public Task<bool> RewindAsync(HostPort source, CancellationToken ct) => inner.RewindAsync(source, ct);

    public Task<string> MoveDataDirAsideAsync(CancellationToken ct) => inner.MoveDataDirAsideAsync(ct);

    public Task SyncReplicationSlotsAsync(IReadOnlyCollection<string> slotNames, CancellationToken ct, Func<string, bool>? mayDrop = null) => inner.SyncReplicationSlotsAsync(slotNames, ct, mayDrop);
    public Task SetPrimaryMarkAsync(bool present, CancellationToken ct) => inner.SetPrimaryMarkAsync(present, ct);

    public Task WriteMissingHistoryFilesAsync(IReadOnlyList<HistoryEntry> history, CancellationToken ct) => inner.WriteMissingHistoryFilesAsync(history, ct);

    public Task<TimelineSwitch?> ReadLastTimelineSwitchAsync(long timeline, CancellationToken ct) => inner.ReadLastTimelineSwitchAsync(timeline, ct);

    public Task CheckpointAsync(CancellationToken ct) => inner.CheckpointAsync(ct);

    public Task SetSynchronousStandbyNamesAsync(string? value, CancellationToken ct) =>
        inner.SetSynchronousStandbyNamesAsync(
            value is not null && value.StartsWith("FIRST", StringComparison.Ordinal) ? Steward.Core.Ha.SyncReplication.Render(everyone, strict: false) : value, ct);
}
