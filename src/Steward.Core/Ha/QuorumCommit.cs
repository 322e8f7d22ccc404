using System.Globalization;
using System.Text;
using Steward.Core.Cluster;

namespace Steward.Core.Ha;

/// <summary>
/// Quorum commit (<c>synchronous_mode: quorum</c>) on the leader, as pure decisions. PostgreSQL runs with
/// <c>synchronous_standby_names = ANY k (S)</c>: a commit returns once any k of the standbys S flushed it. The <c>sync</c> key
/// names the voters V and a quorum Q. The rule every step keeps:
/// <para><b>any commit acknowledged so far is missing from at most Q of the voters.</b></para>
/// So a member that sees Q + 1 voters (itself included), none of them ahead of it, holds every acknowledged commit, and
/// may promote (<see cref="SyncReplication.QuorumVotesNeeded"/>). The target is Patroni's: S = V = the healthy standbys,
/// k = min(synchronous_node_count, |V|), Q = |V| − k.
/// <para>
/// What the leader knows, and how each step is shown safe: commits acknowledged under what PostgreSQL runs with now are on
/// at least k of S, so at most |V'| − k + |S \ V'| voters of any V' lack one; commits acknowledged before that came into
/// force are missing from at most Q of V (the key holds), so from at most Q + |V' \ V| of V', and from none of the standbys
/// that have since flushed past the leader's WAL position recorded when it came into force (<c>caughtUp</c>). A key
/// (V', Q') is written only with Q' at least the larger of the two bounds (<see cref="SafeQuorum"/>), and
/// <c>synchronous_standby_names</c> is changed only to a value the current key already covers (k ≥ |V| − Q). Raising Q
/// is always safe, so it is raised before k is lowered; Q is lowered only once the bounds allow it.
/// </para>
/// </summary>
public static class QuorumCommit
{
    /// <summary>
    /// The next change towards the target, or null when everything is in step.
    /// </summary>
    /// <param name="nodeCount">synchronous_node_count: how many standbys a commit should wait for.</param>
    /// <param name="ssn">What PostgreSQL runs with now (<see cref="SyncReplication.Parse"/>).</param>
    /// <param name="wanted">The standbys that should vote: streaming, eligible (<see cref="SyncReplication.Choose"/>).</param>
    /// <param name="caughtUp">Standbys that have flushed past the leader's WAL position recorded when <paramref name="ssn"/>
    /// was first seen in force: each holds every commit acknowledged before it.</param>
    public static SyncChange? Next(
        string me, bool strict, int nodeCount, StandbyNames ssn, SyncState? key, IReadOnlyList<string> wanted, IReadOnlyCollection<string> caughtUp)
    {
        ArgumentNullException.ThrowIfNull(ssn);
        ArgumentNullException.ThrowIfNull(wanted);
        ArgumentNullException.ThrowIfNull(caughtUp);

        // A new leader (or quorum commit just turned on elsewhere) starts with no voters: it holds every commit itself.
        if (key is null || key.Leader != me)
        {
            return Write(me, []);
        }

        var voters = key.Standbys;
        var quorum = voters.Count == 0 ? 0 : Math.Clamp(key.Quorum ?? 0, 0, voters.Count);
        var want = Math.Max(1, nodeCount);

        // The key must hold for what PostgreSQL runs with now (it does, unless something outside changed either).
        if (voters.Count > 0 && SafeQuorum(voters, voters, quorum, ssn, caughtUp) > quorum)
        {
            return Write(me, voters, SafeQuorum(voters, voters, quorum, ssn, caughtUp));
        }

        // Voters that are no longer wanted (stopped streaming, tagged, too far behind) leave.
        var staying = voters.Where(wanted.Contains).ToList();
        if (staying.Count < voters.Count)
        {
            return Write(me, staying, SafeQuorum(staying, voters, quorum, ssn, caughtUp));
        }

        // Wanted standbys join the voters, with the quorum raised so that the rule holds although they may lack commits.
        // From no voters, only once that still leaves a promotion possible (else PostgreSQL's list comes first).
        var joining = wanted.Where(n => !voters.Contains(n)).ToList();
        if (joining.Count > 0)
        {
            List<string> grown = [.. voters, .. joining];
            var grownQuorum = SafeQuorum(grown, voters, quorum, ssn, caughtUp);
            if (voters.Count > 0 || grownQuorum < grown.Count)
            {
                return Write(me, grown, grownQuorum);
            }
        }

        // Before PostgreSQL waits for fewer standbys, the quorum grows (raising it is always safe).
        if (voters.Count > 0 && quorum < voters.Count - Math.Min(want, voters.Count))
        {
            return Write(me, voters, voters.Count - Math.Min(want, voters.Count));
        }

        // PostgreSQL waits for any k of the voters, k covered by the key (k ≥ |V| − Q); with no voters yet, for the wanted.
        var names = voters.Count > 0 ? voters : wanted;
        var k = names.Count == 0 ? 0
            : voters.Count > 0 ? Math.Clamp(Math.Max(Math.Min(want, voters.Count), voters.Count - quorum), 1, voters.Count)
            : Math.Min(want, wanted.Count);
        if (!InForce(ssn, names, k, strict))
        {
            return new SetStandbyNames(Render(k, names, strict), names);
        }

        // Once the bounds allow it, the quorum comes down to what PostgreSQL's k gives.
        if (voters.Count > 0 && SafeQuorum(voters, voters, quorum, ssn, caughtUp) < quorum)
        {
            return Write(me, voters, SafeQuorum(voters, voters, quorum, ssn, caughtUp));
        }

        return null;
    }

    /// <summary>
    /// The least quorum that keeps the rule for voters <paramref name="next"/>, given the key now (<paramref name="voters"/>,
    /// <paramref name="quorum"/>, which holds), what PostgreSQL runs with and who caught up since it came into force. At most
    /// |next| (no voter may promote).
    /// </summary>
    public static int SafeQuorum(
        IReadOnlyList<string> next, IReadOnlyList<string> voters, int quorum, StandbyNames ssn, IReadOnlyCollection<string> caughtUp)
    {
        ArgumentNullException.ThrowIfNull(next);
        ArgumentNullException.ThrowIfNull(voters);
        ArgumentNullException.ThrowIfNull(ssn);
        ArgumentNullException.ThrowIfNull(caughtUp);
        if (next.Count == 0)
        {
            return 0;
        }

        // Commits acknowledged under what PostgreSQL runs with now: on at least k of S.
        var named = ssn.Managed && !ssn.Any ? ssn.Names : [];
        var k = named.Count == 0 ? 0 : Math.Clamp(ssn.Num, 1, named.Count);
        var fromNow = ssn.Managed && ssn.Placeholder ? 0 // commits wait for a standby that never answers: none is acknowledged
            : k == 0 ? next.Count                         // asynchronous: the primary alone acknowledges
            : Math.Max(0, next.Count - k + named.Count(n => !next.Contains(n)));

        // Commits acknowledged before: missing from at most Q of the voters, and from none that caught up since.
        var before = Math.Min(quorum + next.Count(n => !voters.Contains(n)), next.Count(n => !caughtUp.Contains(n)));
        return Math.Min(next.Count, Math.Max(fromNow, before));
    }

    /// <summary><c>synchronous_standby_names</c> for any <paramref name="k"/> of <paramref name="standbys"/>.</summary>
    public static string Render(int k, IReadOnlyList<string> standbys, bool strict)
    {
        ArgumentNullException.ThrowIfNull(standbys);
        if (standbys.Count == 0 || k <= 0)
        {
            return strict ? SyncReplication.NobodyPlaceholder : "";
        }

        var text = new StringBuilder("ANY ").Append(k.ToString(CultureInfo.InvariantCulture)).Append(" (");
        text.AppendJoin(',', standbys.Order(StringComparer.Ordinal).Select(s => "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\""));
        return text.Append(')').ToString();
    }

    private static bool InForce(StandbyNames ssn, IReadOnlyList<string> names, int k, bool strict) =>
        ssn.Managed && !ssn.Any && (names.Count == 0
            ? ssn.Names.Count == 0 && ssn.Placeholder == strict
            : ssn.Quorum && ssn.Num == k && ssn.Names.Count == names.Count && names.All(ssn.Names.Contains));

    private static WriteSyncKey Write(string me, IReadOnlyList<string> voters, int quorum = 0) =>
        new(SyncState.For(me, voters, voters.Count == 0 ? 0 : quorum));
}
