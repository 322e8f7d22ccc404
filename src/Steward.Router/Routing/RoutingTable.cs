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

    /// <summary>The member holding <c>leader</c>, when writes may go to it; null while there is none or a switchover is pending.</summary>
    public Backend? Writer { get; init; }

    /// <summary>The leader key's holder, whether or not writes may go to it now (read fallback).</summary>
    public Backend? Leader { get; init; }

    /// <summary>Running, streaming replicas within the lag bound, not noloadbalance.</summary>
    public IReadOnlyList<Backend> Readers { get; init; } = [];

    /// <summary>Why <see cref="Writer"/> is null (for logs and the stats page).</summary>
    public string? Reason { get; init; }

    /// <summary>The etcd revision the table was computed from.</summary>
    public long Revision { get; init; }

    /// <summary>Builds the table from a view, Patroni's rules: leader key holder for writes; healthy replicas for reads.</summary>
    public static RoutingTable From(ClusterView view, long maxLag)
    {
        ArgumentNullException.ThrowIfNull(view);
        var leader = view.Leader is { } key && view.GetMember(key.Name) is { } m ? ToBackend(m) : null;
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
        else if (view.Failover is { } request && (request.ScheduledAt is null || request.ScheduledAt <= DateTimeOffset.UtcNow))
        {
            writer = null;
            reason = $"switchover from '{request.Leader ?? view.Leader.Name}' pending";
        }

        var optime = view.Status?.Optime ?? view.LeaderMember?.Data.XlogLocation;
        var readers = view.Members
            .Where(r => r.Name != view.Leader?.Name)
            .Where(r => r.Data.Role == "replica" && r.Data.State == "running" && r.Data.ReplicationState == "streaming")
            .Where(r => !HaDecision.TagIsTrue(r.Data.Tags, "noloadbalance"))
            .Where(r => optime is null || (r.Data.XlogLocation is { } x && optime.Value - x <= maxLag))
            .Select(ToBackend)
            .OfType<Backend>()
            .ToList();
        return new RoutingTable { Writer = writer, Leader = leader, Readers = readers, Reason = reason, Revision = view.Revision };
    }

    private static Backend? ToBackend(Member m) =>
        m.Data.ConnUrl is { } url && ConnUrl.Parse(url) is { } address
            ? new Backend(m.Name, address, m.Data.ApiUrl is { } api ? ConnUrl.ApiBase(api) : null)
            : null;
}
