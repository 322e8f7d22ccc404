using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;

namespace Steward.Router.Routing;

/// <summary>A member the router may send connections to.</summary>
public sealed record Backend(string Name, HostPort Address, Uri? Api);

/// <summary>
/// Where connections go right now, computed from one etcd view. Immutable; the watcher swaps it whole.
/// </summary>
public sealed record RoutingTable
{
    public static readonly RoutingTable Empty = new() { Reason = "no view of the cluster yet" };

    /// <summary>
    /// The member writes go to: it holds <c>leader</c> and its member key reports a running primary, and no switchover
    /// is due. Null otherwise (new write clients are held).
    /// </summary>
    public Backend? Writer { get; init; }

    /// <summary>
    /// The leader key's holder, whether or not writes may go to it now. When it changes, every session to the member
    /// that held it is cut.
    /// </summary>
    public Backend? Leader { get; init; }

    /// <summary>
    /// Running, streaming replicas within the lag bound, not noloadbalance; with <c>read.sync_standbys</c> <c>prefer</c>
    /// only the synchronous standbys while one qualifies, with <c>exclude</c> none of them.
    /// </summary>
    public IReadOnlyList<Backend> Readers { get; init; } = [];

    /// <summary>Why <see cref="Writer"/> is null (for logs and the stats page).</summary>
    public string? Reason { get; init; }

    /// <summary>The etcd revision the table was computed from.</summary>
    public long Revision { get; init; }

    /// <summary>
    /// Builds the table from a view: writes to the holder of <c>leader</c> only once it reports itself a running
    /// primary (a replica that has just taken the key and is still promoting gets none), and not while a switchover is
    /// due; reads to healthy replicas. Pure: <paramref name="now"/> (wall clock, from the caller's
    /// <see cref="TimeProvider"/>) is only compared with a switchover's <c>scheduled_at</c>, itself a wall time.
    /// </summary>
    public static RoutingTable From(ClusterView view, long maxLag, DateTimeOffset now, SyncStandbyReads syncStandbys = SyncStandbyReads.Include)
    {
        ArgumentNullException.ThrowIfNull(view);
        var holder = view.Leader is { } key ? view.GetMember(key.Name) : null;
        var leader = holder is null ? null : ToBackend(holder);
        string? reason = null;
        var writer = leader;
        if (view.Leader is null)
        {
            reason = "no leader (failover in progress)";
        }
        else if (leader is null)
        {
            reason = $"leader '{view.Leader.Name}' has not published its address";
        }
        else if (!IsRunningPrimary(holder!.Data))
        {
            writer = null;
            reason = $"leader '{holder.Name}' is not a running primary yet (role {holder.Data.Role ?? "?"}, state {holder.Data.State ?? "?"})";
        }
        else if (view.Failover is { } request && (request.ScheduledAt is null || request.ScheduledAt <= now))
        {
            writer = null;
            reason = $"switchover from '{request.Leader ?? view.Leader.Name}' pending";
        }

        var optime = view.Status?.Optime ?? view.LeaderMember?.Data.XlogLocation;
        var healthy = view.Members
            .Where(r => r.Name != view.Leader?.Name)
            .Where(r => r.Data.Role == "replica" && r.Data.State == "running" && r.Data.ReplicationState == "streaming")
            .Where(r => !HaDecision.TagIsTrue(r.Data.Tags, "noloadbalance"))
            .Where(r => optime is null || (r.Data.XlogLocation is { } x && optime.Value - x <= maxLag))
            .ToList();
        if (syncStandbys != SyncStandbyReads.Include)
        {
            // Synchronous standbys of the current leader: the sync key names them, and names the leader.
            var sync = view.Sync is { } syncKey && syncKey.Leader == view.Leader?.Name ? syncKey : null;
            var onRecord = healthy.Where(r => sync?.IsStandby(r.Name) == true).ToList();
            healthy = syncStandbys == SyncStandbyReads.Exclude ? [.. healthy.Except(onRecord)]
                : onRecord.Count > 0 ? onRecord : healthy;
        }

        var readers = healthy.Select(ToBackend).OfType<Backend>().ToList();
        return new RoutingTable { Writer = writer, Leader = leader, Readers = readers, Reason = reason, Revision = view.Revision };
    }

    /// <summary>Patroni's member key says <c>primary</c> (older Patroni: <c>master</c>) and <c>running</c>.</summary>
    public static bool IsRunningPrimary(MemberData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return data.Role is "primary" or "master" && data.State == "running";
    }

    /// <summary>Whether the read port may hand a new session to <paramref name="backend"/> under this table.</summary>
    public bool ReadableBy(Backend backend, bool fallbackToLeader) =>
        Readers.Contains(backend) || (fallbackToLeader && Readers.Count == 0 && backend == Writer);

    private static Backend? ToBackend(Member m) =>
        m.Data.ConnUrl is { } url && ConnUrl.Parse(url) is { } address
            ? new Backend(m.Name, address, m.Data.ApiUrl is { } api ? ConnUrl.ApiBase(api) : null)
            : null;
}
