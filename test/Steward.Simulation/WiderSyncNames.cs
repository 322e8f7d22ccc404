using Steward.Core.Ha;
using Steward.Core.Postgres;

namespace Steward.Simulation;

/// <summary>
/// Planted bug for the simulation: synchronous_standby_names names more standbys than the leader put on record in the
/// sync key (as if PostgreSQL were told before the key grew): commits wait for, and are acknowledged by, standbys the key
/// does not name.
/// </summary>
internal sealed class WiderSyncNames(IPostgresControl inner, IReadOnlyList<string> everyone) : DelegatingPostgresControl(inner)
{
    public override Task SetSynchronousStandbyNamesAsync(string? value, CancellationToken ct) =>
        base.SetSynchronousStandbyNamesAsync(
            value is not null && value.StartsWith("FIRST", StringComparison.Ordinal) ? SyncReplication.Render(everyone, strict: false) : value, ct);
}
