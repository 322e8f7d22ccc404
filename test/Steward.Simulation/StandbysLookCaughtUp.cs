using Steward.Core.Postgres;

namespace Steward.Simulation;

/// <summary>
/// Planted bug for the simulation: pg_stat_replication shows every standby as having flushed everything the primary wrote,
/// so the leader names a standby in the sync key as soon as PostgreSQL waits for it, before it has caught up (what the
/// key-grows-first order of earlier versions amounted to): the key names a standby without every acknowledged commit.
/// </summary>
internal sealed class StandbysLookCaughtUp(IPostgresControl inner) : DelegatingPostgresControl(inner)
{
    public override async Task<PgState> InspectAsync(CancellationToken ct)
    {
        var pg = await base.InspectAsync(ct).ConfigureAwait(false);
        return pg with { Replication = [.. pg.Replication.Select(r => r with { FlushLsn = pg.WriteLsn })] };
    }
}
