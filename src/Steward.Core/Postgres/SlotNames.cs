using Steward.Core.Cluster;

namespace Steward.Core.Postgres;

/// <summary>Replication slot names derived from member names, as Patroni derives them.</summary>
public static class SlotNames
{
    /// <summary>PostgreSQL's NAMEDATALEN - 1.</summary>
    public const int MaxLength = 63;

    /// <summary>The member name lowercased, every character outside <c>[a-z0-9_]</c> replaced by '_', cut to 63 characters.</summary>
    public static string For(string memberName)
    {
        ArgumentException.ThrowIfNullOrEmpty(memberName);
        var length = Math.Min(memberName.Length, MaxLength);
        return string.Create(length, memberName, static (span, name) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                var c = char.ToLowerInvariant(name[i]);
                span[i] = c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' ? c : '_';
            }
        });
    }

    /// <summary>Whether PostgreSQL accepts <paramref name="name"/> as a replication slot name (a-z, 0-9, _; 1 to 63).</summary>
    public static bool IsValid(string name) =>
        name is { Length: > 0 and <= MaxLength } && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_');

    /// <summary>
    /// The member slots <paramref name="me"/> keeps (Patroni's rule): as the leader (or standby leader), one per member
    /// that streams from it — every other member except <c>nostream</c> ones and those whose <c>replicatefrom</c> names
    /// another member that exists; as a replica, one per member whose <c>replicatefrom</c> names it (cascading
    /// replication), the leader excepted.
    /// </summary>
    public static IReadOnlyList<string> MemberSlots(ClusterView cluster, string me, bool leader)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return [.. cluster.Members
            .Where(m => m.Name != me && !Ha.HaDecision.TagIsTrue(m.Data.Tags, "nostream"))
            .Where(m => Ha.HaDecision.TagText(m.Data.Tags, "replicatefrom") is var from && (leader
                ? from is null || from == me || cluster.GetMember(from) is null
                : from == me && m.Name != cluster.Leader?.Name))
            .Select(m => For(m.Name))];
    }
}
