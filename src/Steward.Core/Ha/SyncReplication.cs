using System.Globalization;
using System.Text;
using Steward.Core.Cluster;
using Steward.Core.Postgres;

namespace Steward.Core.Ha;

/// <summary>
/// Synchronous mode on the leader, as pure decisions: which standbys should be synchronous, and the one next change that
/// moves <c>synchronous_standby_names</c> and the <c>sync</c> key towards that without ever breaking the invariant
/// <b>every standby the sync key names holds every acknowledged commit</b>:
/// <list type="number">
/// <item>PostgreSQL waits for every standby it names (<c>FIRST n</c> over n names), and it names every standby the key
/// names;</item>
/// <item>a standby joins <c>synchronous_standby_names</c> first, and the key only once PostgreSQL has waited for it since a
/// recorded WAL position it has flushed past (it then holds every commit acknowledged before, and acknowledges the rest);</item>
/// <item>a standby leaves the key first (when it stops streaming, or when a standby that replaces it is on record), and
/// <c>synchronous_standby_names</c> after.</item>
/// </list>
/// On failover any member on record in the key may promote without losing an acknowledged commit; among several, the
/// furthest ahead wins.
/// </summary>
public static class SyncReplication
{
    /// <summary>
    /// <c>synchronous_standby_names</c> in strict mode when no standby is synchronous: a name no standby has, so commits wait
    /// (rather than Patroni's <c>*</c>, which lets any standby — also one not on record in the key — acknowledge them).
    /// </summary>
    public const string NobodyPlaceholder = "steward_no_sync_standby";

    /// <summary>
    /// Null when <paramref name="member"/> may promote as far as synchronous mode is concerned; else why it may not. In
    /// synchronous mode only a standby on record in the <c>sync</c> key (or the leader the key names) may, because only those
    /// may have acknowledged the last commits. With no standby on record the leader ran asynchronously: anyone may (the
    /// healthiest wins), unless synchronous_mode_strict promised that no commit is acknowledged by the primary alone.
    /// </summary>
    public static string? PromotionBlocked(DynamicConfig settings, SyncState? sync, string member)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (!settings.SynchronousMode || sync?.Leader == member)
        {
            return null;
        }

        if (sync is null || sync.Standbys.Count == 0)
        {
            return settings.SynchronousModeStrict
                ? "synchronous_mode_strict is on and no synchronous standby is on record in the sync key, so only the former " +
                  $"leader{(sync?.Leader is { } l ? $" '{l}'" : "")} is known to hold every acknowledged commit; staying without a leader rather than losing them"
                : null;
        }

        if (settings.SynchronousModeQuorum)
        {
            return sync.IsStandby(member) ? null : $"'{member}' is not a quorum voter (sync key voters: {sync.SyncStandby}, quorum {sync.Quorum ?? 0})";
        }

        return sync.IsStandby(member) ? null : $"'{member}' is not a synchronous standby (sync key: {sync.SyncStandby}; candidate name does not match with sync_standby)";
    }

    /// <summary>
    /// Quorum commit: how many voters (the candidate itself included, when it is one) a candidate must see, none of them
    /// ahead of it, before it promotes — the key's <c>quorum</c> + 1, since any commit acknowledged so far is missing
    /// from at most <c>quorum</c> voters. Null when no count applies (not quorum mode, no voters, or the former leader).
    /// </summary>
    public static int? QuorumVotesNeeded(DynamicConfig settings, SyncState? sync, string member)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.SynchronousMode && settings.SynchronousModeQuorum && sync is { Standbys.Count: > 0 } && sync.Leader != member
            ? (sync.Quorum ?? 0) + 1
            : null;
    }

    /// <summary>
    /// The standbys that should be synchronous, best first: streaming replicas of this leader with a member key, not tagged
    /// nosync, nostream, <c>sync_priority: 0</c> or nofailover (one that cannot take over protects nothing on failover),
    /// within maximum_lag_on_syncnode; the highest <c>sync_priority</c> first (Patroni 4, default 1), then among equals the
    /// current synchronous ones keep their place while healthy (no churn), then the least lagging.
    /// </summary>
    public static IReadOnlyList<string> Choose(string me, ClusterView cluster, PgState pg, DynamicConfig settings, IReadOnlyCollection<string> current)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(pg);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(current);
        var leaderLsn = pg.WriteLsn ?? 0;
        var candidates = new List<(string Name, long Priority, bool Current, long Lag)>();
        foreach (var connection in pg.Replication)
        {
            if (connection.State != "streaming" || connection.ApplicationName == me
                || cluster.GetMember(connection.ApplicationName) is not { } member
                || HaDecision.TagIsTrue(member.Data.Tags, "nosync") || HaDecision.TagIsTrue(member.Data.Tags, "nostream")
                || HaDecision.NeverPromotes(member.Data.Tags) || (HaDecision.TagInt(member.Data.Tags, "sync_priority") ?? 1) <= 0)
            {
                continue;
            }

            var lag = Math.Max(0, leaderLsn - (connection.FlushLsn ?? connection.ReplayLsn ?? 0));
            if (settings.MaximumLagOnSyncnode >= 0 && lag > settings.MaximumLagOnSyncnode)
            {
                continue;
            }

            candidates.Add((connection.ApplicationName, HaDecision.TagInt(member.Data.Tags, "sync_priority") ?? 1, current.Contains(connection.ApplicationName), lag));
        }

        return [.. candidates
            .DistinctBy(c => c.Name)
            .OrderByDescending(c => c.Priority)
            .ThenByDescending(c => c.Current)
            .ThenBy(c => c.Lag)
            .ThenBy(c => c.Name, StringComparer.Ordinal)
            .Take(settings.SynchronousModeQuorum ? int.MaxValue : Math.Max(1, settings.SynchronousNodeCount))
            .Select(c => c.Name)];
    }

    /// <summary>
    /// The next change towards <paramref name="wanted"/>, or null when everything is in step. <paramref name="ssn"/> is
    /// what PostgreSQL runs with now (<see cref="Parse"/>).
    /// <para>
    /// The rule it keeps: <b>every standby the key names has flushed every commit acknowledged so far</b>, so any of them
    /// may take over without losing one. PostgreSQL always waits for all the key's standbys (synchronous_standby_names is
    /// <c>FIRST n</c> over all the names it holds, the key's among them); a standby joins PostgreSQL's list first, and the
    /// key only once it has caught up (<paramref name="caughtUp"/>); a standby leaves the key first, and PostgreSQL's list
    /// after. (Naming a standby in the key before it caught up, as "the key grows first" would, lets a standby that never
    /// saw the last acknowledged commits take over — the simulation found it.)
    /// </para>
    /// </summary>
    /// <param name="streaming">The standbys streaming from this leader now. A key standby that is not (or one no longer
    /// wanted, once a wanted one is on record) leaves the key.</param>
    /// <param name="caughtUp">
    /// Standbys PostgreSQL has been waiting for since a point the leader recorded, and which have flushed past it: they hold
    /// every commit acknowledged before (all at or below that point) and every one after (they acknowledged it).
    /// </param>
    public static SyncChange? Next(
        string me, bool synchronousMode, bool strict, StandbyNames ssn, SyncState? key, IReadOnlyList<string> wanted,
        IReadOnlyCollection<string> streaming, IReadOnlyCollection<string> caughtUp)
    {
        ArgumentNullException.ThrowIfNull(ssn);
        ArgumentNullException.ThrowIfNull(wanted);
        ArgumentNullException.ThrowIfNull(streaming);
        ArgumentNullException.ThrowIfNull(caughtUp);

        if (!synchronousMode)
        {
            // Off: the key stops naming standbys, PostgreSQL stops waiting, then the key goes.
            if (key is not null && key.Leader == me && key.Standbys.Count > 0)
            {
                return new WriteSyncKey(SyncState.For(me, []));
            }

            if (ssn.Managed)
            {
                return new SetStandbyNames(null, []);
            }

            return key is not null ? new WriteSyncKey(null) : null;
        }

        // A new leader (or synchronous mode just turned on) starts with a key naming only itself: it holds every commit. So
        // does a leader leaving quorum commit: a quorum key's voters need not each hold every commit.
        if (key is null || key.Leader != me || key.Quorum is > 0)
        {
            return new WriteSyncKey(SyncState.For(me, []));
        }

        var onRecord = key.Standbys;

        // Leaving the key: a standby no longer streaming (so commits need not wait for it), or one no longer wanted once
        // PostgreSQL no longer needs it to keep a standby on record (a wanted one is on record, or none is wanted).
        var staying = onRecord.Where(wanted.Contains).ToList();
        var gone = onRecord.Where(n => !streaming.Contains(n)).ToList();
        if (staying.Count < onRecord.Count && (gone.Count > 0 || staying.Count > 0 || wanted.Count == 0))
        {
            return new WriteSyncKey(SyncState.For(me, [.. onRecord.Where(n => !gone.Contains(n) && (staying.Count == 0 && wanted.Count > 0 || wanted.Contains(n)))]));
        }

        // PostgreSQL waits for every standby on record and every wanted one ('*' or a list of the operator's included:
        // whatever it held, it is replaced by exactly that).
        var target = onRecord.Union(wanted, StringComparer.Ordinal).ToList();
        if (ssn.Any || ssn.Quorum || !ssn.Managed || !SameNames(ssn.Names, target) || (target.Count == 0 && ssn.Placeholder != strict))
        {
            return new SetStandbyNames(Render(target, strict), target);
        }

        // Joining the key: wanted standbys PostgreSQL waits for that have caught up.
        var joining = wanted.Where(n => !onRecord.Contains(n) && caughtUp.Contains(n)).ToList();
        return joining.Count > 0 ? new WriteSyncKey(SyncState.For(me, [.. onRecord, .. joining])) : null;
    }

    private static bool SameNames(IReadOnlyList<string> a, IReadOnlyList<string> b) =>
        a.Count == b.Count && a.All(b.Contains);

    /// <summary><c>synchronous_standby_names</c> for exactly <paramref name="standbys"/> (all of them must acknowledge).</summary>
    public static string Render(IReadOnlyList<string> standbys, bool strict)
    {
        ArgumentNullException.ThrowIfNull(standbys);
        if (standbys.Count == 0)
        {
            return strict ? NobodyPlaceholder : "";
        }

        var text = new StringBuilder("FIRST ").Append(standbys.Count.ToString(CultureInfo.InvariantCulture)).Append(" (");
        text.AppendJoin(',', standbys.Select(s => "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\""));
        return text.Append(')').ToString();
    }

    /// <summary>
    /// Reads a <c>synchronous_standby_names</c> value: <c>a, b</c>, <c>N (a, b)</c>, <c>FIRST N (…)</c>, <c>ANY N (…)</c>,
    /// <c>*</c>, or the placeholder. <paramref name="managed"/>: Steward's include file sets it (else it is the operator's).
    /// </summary>
    public static StandbyNames Parse(string? value, bool managed)
    {
        var text = (value ?? "").Trim();
        if (text.Length == 0)
        {
            return new StandbyNames([], Any: false, Placeholder: false, managed);
        }

        var open = text.IndexOf('(', StringComparison.Ordinal);
        var list = open >= 0 && text.EndsWith(')') ? text[(open + 1)..^1] : text;
        var head = open >= 0 ? text[..open].Trim() : "";
        var quorum = head.StartsWith("ANY", StringComparison.OrdinalIgnoreCase);
        var countText = quorum || head.StartsWith("FIRST", StringComparison.OrdinalIgnoreCase) ? head[(quorum ? 3 : 5)..].Trim() : head;
        var num = int.TryParse(countText, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 1;
        var names = new List<string>();
        var any = false;
        foreach (var raw in SplitNames(list))
        {
            if (raw == "*")
            {
                any = true;
            }
            else if (raw == NobodyPlaceholder)
            {
                continue;
            }
            else
            {
                names.Add(raw);
            }
        }

        return new StandbyNames(names, any, text == NobodyPlaceholder, managed, names.Count == 0 ? 0 : Math.Min(num, names.Count), quorum);
    }

    private static IEnumerable<string> SplitNames(string list)
    {
        var current = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < list.Length; i++)
        {
            var c = list[i];
            if (c == '"')
            {
                if (quoted && i + 1 < list.Length && list[i + 1] == '"')
                {
                    current.Append('"');
                    i++;
                }
                else
                {
                    quoted = !quoted;
                }
            }
            else if (c == ',' && !quoted)
            {
                if (current.ToString().Trim() is { Length: > 0 } name)
                {
                    yield return name;
                }

                current.Clear();
            }
            else
            {
                current.Append(c);
            }
        }

        if (current.ToString().Trim() is { Length: > 0 } last)
        {
            yield return last;
        }
    }
}

/// <summary>What <c>synchronous_standby_names</c> names.</summary>
/// <param name="Names">Standby names PostgreSQL may wait for.</param>
/// <param name="Any">It holds <c>*</c>: any standby may acknowledge.</param>
/// <param name="Placeholder">It is <see cref="SyncReplication.NobodyPlaceholder"/>: commits wait, no standby can acknowledge.</param>
/// <param name="Managed">Steward set it (its include file exists).</param>
/// <param name="Num">How many of <see cref="Names"/> a commit waits for (<c>FIRST n</c>, <c>ANY n</c>; 1 for a bare list).</param>
/// <param name="Quorum">The <c>ANY n (…)</c> form: any n of the names acknowledge (quorum commit).</param>
public sealed record StandbyNames(IReadOnlyList<string> Names, bool Any, bool Placeholder, bool Managed, int Num = 0, bool Quorum = false);

/// <summary>One change the leader makes to keep synchronous replication and the <c>sync</c> key in step.</summary>
public abstract record SyncChange;

/// <summary>Set <c>synchronous_standby_names</c> (null: Steward stops managing it) and reload.</summary>
public sealed record SetStandbyNames(string? Value, IReadOnlyList<string> Names) : SyncChange;

/// <summary>Write the <c>sync</c> key (null: delete it), compare-and-swap, while holding the leader key.</summary>
public sealed record WriteSyncKey(SyncState? State) : SyncChange;
