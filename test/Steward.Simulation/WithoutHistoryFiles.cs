using Steward.Core.Cluster;
using Steward.Core.Postgres;

namespace Steward.Simulation;

/// <summary>
/// Planted bug for the simulation: the converger's safety rule 4 removed — the timeline history files implied by the
/// cluster's <c>history</c> key are never written before a promotion, so a member that missed a promotion can pick a
/// timeline id that another member already used.
/// </summary>
internal sealed class WithoutHistoryFiles(IPostgresControl inner) : DelegatingPostgresControl(inner)
{
    public override Task WriteMissingHistoryFilesAsync(IReadOnlyList<HistoryEntry> history, CancellationToken ct) => Task.CompletedTask;
}
