using System.Globalization;

namespace Steward.Campaign.Checking;

/// <summary>What the database held at the end, read from the primary once every fault was healed.</summary>
public sealed record FinalState(IReadOnlySet<long> Inserted, IReadOnlyDictionary<long, IReadOnlyList<long>> Lists);

/// <summary>A period of disturbance (a fault from its injection until the cluster was healthy again).</summary>
public sealed record Window(string Name, double Start, double End, bool Failover = false);

/// <summary>Writes acknowledged by two different primaries at a moment when both were certainly primaries.</summary>
public sealed record SplitBrain(ServerIdentity First, ServerIdentity Second, double Start, double End, string Evidence);

public enum AnomalyKind
{
    /// <summary>A read misses an acknowledged append that completed before the read began.</summary>
    MissingAppend,

    /// <summary>A read lists b before a although a's append completed before b's began.</summary>
    OrderContradictsCommitOrder,

    /// <summary>Two reads of one key that are not prefixes of one another (no single order explains both).</summary>
    IncompatibleOrder,

    /// <summary>An element twice in one list.</summary>
    Duplicate,

    /// <summary>An element nobody appended to this key.</summary>
    Phantom,

    /// <summary>An element whose append certainly failed.</summary>
    AbortedRead,
}

public sealed record Anomaly(AnomalyKind Kind, long Key, Op? Read, string Detail)
{
    public override string ToString() => $"{Kind} on key {Key}: {Detail}{(Read is null ? "" : "; read " + Read)}";
}

/// <summary>How one disturbance went for the clients.</summary>
public sealed record WindowStats(Window Window, int Ok, int Failed, int Indeterminate, double? FirstWriteAfter)
{
    public int Errors => Failed + Indeterminate;
    public int Total => Ok + Errors;
}

public sealed record Availability(
    int Ok,
    int Failed,
    int Indeterminate,
    int MaxErrorsPerSecond,
    double? MaxErrorsSecond,
    double LongestWriteGap,
    double LongestWriteGapStart,
    IReadOnlyList<WindowStats> Windows,
    IReadOnlyDictionary<long, (int Ok, int Errors)> PerSecond)
{
    public int Total => Ok + Failed + Indeterminate;

    /// <summary>Errors (failed + indeterminate) among the operations that completed inside <paramref name="windows"/>.</summary>
    public static double ErrorRate(IEnumerable<WindowStats> windows)
    {
        var list = windows.ToList();
        var total = list.Sum(w => w.Total);
        return total == 0 ? 0 : (double)list.Sum(w => w.Errors) / total;
    }
}

/// <param name="Anomalies">Every list-append anomaly.</param>
/// <param name="UnexplainedAnomalies">
/// The anomalies left once the lost appends are taken out of the history (their operations, and their elements from
/// every list read): a read that saw a lost append before it was lost, or that misses it after, is explained by the
/// loss; what remains is not.
/// </param>
public sealed record CheckResult(
    IReadOnlyList<Op> LostWrites,
    IReadOnlyList<SplitBrain> SplitBrains,
    IReadOnlyList<Anomaly> Anomalies,
    IReadOnlyList<Anomaly> UnexplainedAnomalies,
    int IndeterminateWrites,
    int IndeterminateCommitted,
    Availability Availability)
{
    public bool Valid => LostWrites.Count == 0 && SplitBrains.Count == 0 && Anomalies.Count == 0;
}

/// <summary>
/// Checks a client history against the final state, Jepsen-style. Every verdict rests only on what the clients
/// observed and on the times they observed it (one monotonic clock):
/// <list type="bullet">
/// <item>lost writes: an acknowledged insert or append missing from the final state;</item>
/// <item>split brain: a primary (address, postmaster start) was certainly primary between the completion of its first
/// acknowledged write and the invocation of its last one (it commits each write somewhere inside the write's
/// interval, and PostgreSQL cannot leave and re-enter the primary role without a restart); two primaries whose
/// certain windows overlap, or a write of one acknowledged wholly inside the other's certain window, were primaries
/// at the same moment;</item>
/// <item>list-append anomalies (as in Jepsen's list-append), on every read and on the final lists;</item>
/// <item>availability: errors per second, the longest gap between successful writes, and each window of disturbance.</item>
/// </list>
/// </summary>
public static class Checker
{
    public static CheckResult Check(IReadOnlyList<Op> history, FinalState final, IReadOnlyList<Window>? windows = null)
    {
        var writes = history.Where(o => o.IsWrite).ToList();
        var lost = writes.Where(o => o.Outcome == Outcome.Ok && !Contains(final, o)).ToList();
        var indeterminate = writes.Where(o => o.Outcome == Outcome.Indeterminate).ToList();
        var anomalies = ListAppendAnomalies(history, final);
        var lostAppends = lost.Where(o => o.Kind == OpKind.Append).Select(o => (o.Key, o.Value)).ToHashSet();
        var withoutLost = lostAppends.Count == 0
            ? anomalies
            : ListAppendAnomalies(
                [.. history.Where(o => !(o.Kind == OpKind.Append && lostAppends.Contains((o.Key, o.Value))))
                    .Select(o => o.ReadValues is { } seen ? o with { ReadValues = [.. seen.Where(v => !lostAppends.Contains((o.Key, v)))] } : o)],
                final);
        return new CheckResult(
            lost,
            SplitBrains(history),
            anomalies,
            withoutLost,
            indeterminate.Count,
            indeterminate.Count(o => Contains(final, o)),
            Availability(history, windows ?? []));
    }

    private static bool Contains(FinalState final, Op write) => write.Kind == OpKind.Insert
        ? final.Inserted.Contains(write.Value)
        : final.Lists.TryGetValue(write.Key, out var list) && list.Contains(write.Value);

    public static IReadOnlyList<SplitBrain> SplitBrains(IReadOnlyList<Op> history)
    {
        var byPrimary = history.Where(o => o.IsWrite && o.Outcome == Outcome.Ok && o.Server is not null)
            .GroupBy(o => o.Server!.Key)
            .Select(g => new Primary(g.First().Server!, [.. g.OrderBy(o => o.Complete)]))
            .ToList();
        var found = new List<SplitBrain>();
        for (var i = 0; i < byPrimary.Count; i++)
        {
            for (var j = 0; j < byPrimary.Count; j++)
            {
                if (i == j)
                {
                    continue;
                }

                var (p, q) = (byPrimary[i], byPrimary[j]);
                if (i < j && p.Certain is { } pc && q.Certain is { } qc && Math.Max(pc.From, qc.From) < Math.Min(pc.To, qc.To))
                {
                    var (from, to) = (Math.Max(pc.From, qc.From), Math.Min(pc.To, qc.To));
                    found.Add(new SplitBrain(p.Server, q.Server, from, to,
                        string.Create(CultureInfo.InvariantCulture, $"both certainly primaries during [{from:F3}, {to:F3}] s")));
                    continue;
                }

                // One write of q acknowledged while p was certainly primary (q may have too few writes for a window).
                if (p.Certain is { } window
                    && q.Writes.FirstOrDefault(w => w.Invoke > window.From && w.Complete < window.To) is { } inside
                    && !found.Any(s => s.First == q.Server && s.Second == p.Server || s.First == p.Server && s.Second == q.Server))
                {
                    found.Add(new SplitBrain(p.Server, q.Server, inside.Invoke, inside.Complete,
                        string.Create(CultureInfo.InvariantCulture,
                            $"{inside} acknowledged while {p.Server.Address} was certainly primary during [{window.From:F3}, {window.To:F3}] s")));
                }
            }
        }

        return found;
    }

    public static IReadOnlyList<Anomaly> ListAppendAnomalies(IReadOnlyList<Op> history, FinalState? final = null)
    {
        var anomalies = new List<Anomaly>();
        var appends = history.Where(o => o.Kind == OpKind.Append).ToList();
        var appendOf = new Dictionary<(long Key, long Value), Op>();
        foreach (var a in appends)
        {
            appendOf.TryAdd((a.Key, a.Value), a);
        }

        var okAppendsByKey = appends.Where(a => a.Outcome == Outcome.Ok).GroupBy(a => a.Key)
            .ToDictionary(g => g.Key, g => g.OrderBy(a => a.Complete).ToList());
        var reads = history.Where(o => o.Kind == OpKind.Read && o.Outcome == Outcome.Ok && o.ReadValues is not null).ToList();

        // The final lists are reads that began after every operation ended.
        var end = history.Count == 0 ? 0 : history.Max(o => o.Complete) + 1;
        var finalReads = (final?.Lists ?? new Dictionary<long, IReadOnlyList<long>>())
            .Select(kv => new Op { Index = -1, Kind = OpKind.Read, Key = kv.Key, ReadValues = kv.Value, Invoke = end, Complete = end, Outcome = Outcome.Ok });
        foreach (var group in reads.Concat(finalReads).GroupBy(r => r.Key))
        {
            var key = group.Key;
            var keyReads = group.ToList();
            okAppendsByKey.TryGetValue(key, out var okAppends);
            foreach (var read in keyReads)
            {
                CheckRead(read, okAppends ?? [], appendOf, anomalies);
            }

            // Every read must be a prefix of the longest one: one order of appends explains them all.
            var longest = keyReads.MaxBy(r => r.ReadValues!.Count)!;
            foreach (var read in keyReads.Where(r => !IsPrefix(r.ReadValues!, longest.ReadValues!)))
            {
                anomalies.Add(new Anomaly(AnomalyKind.IncompatibleOrder, key, read,
                    $"[{string.Join(',', read.ReadValues!)}] is not a prefix of [{string.Join(',', longest.ReadValues!)}] (read #{longest.Index})"));
            }
        }

        return anomalies;
    }

    private static void CheckRead(Op read, List<Op> okAppends, Dictionary<(long Key, long Value), Op> appendOf, List<Anomaly> anomalies)
    {
        var values = read.ReadValues!;
        var seen = new HashSet<long>();
        foreach (var v in values)
        {
            if (!seen.Add(v))
            {
                anomalies.Add(new Anomaly(AnomalyKind.Duplicate, read.Key, read, $"{v} appears twice"));
            }
            else if (!appendOf.TryGetValue((read.Key, v), out var append))
            {
                anomalies.Add(new Anomaly(AnomalyKind.Phantom, read.Key, read, $"{v} was never appended to key {read.Key}"));
            }
            else if (append.Outcome == Outcome.Fail)
            {
                anomalies.Add(new Anomaly(AnomalyKind.AbortedRead, read.Key, read, $"{v} was appended by {append}, which failed"));
            }
        }

        // Acknowledged before the read began, so the read must see it (for the final lists these are the lost writes,
        // reported as such).
        foreach (var a in read.Index < 0 ? [] : okAppends)
        {
            if (a.Complete >= read.Invoke)
            {
                break;
            }

            if (!seen.Contains(a.Value))
            {
                anomalies.Add(new Anomaly(AnomalyKind.MissingAppend, read.Key, read, $"misses {a}"));
            }
        }

        // Order: an element listed before another must not have been appended after the other was acknowledged.
        // (Only the latest-completing acknowledged predecessor matters: track it while walking the list backwards.)
        Op? earliestLater = null;
        for (var i = values.Count - 1; i >= 0; i--)
        {
            if (!appendOf.TryGetValue((read.Key, values[i]), out var current))
            {
                continue;
            }

            if (earliestLater is not null && earliestLater.Complete < current.Invoke)
            {
                anomalies.Add(new Anomaly(AnomalyKind.OrderContradictsCommitOrder, read.Key, read,
                    $"{current.Value} is listed before {earliestLater.Value}, but {earliestLater} was acknowledged before {current} began"));
            }

            if (current.Outcome == Outcome.Ok && (earliestLater is null || current.Complete < earliestLater.Complete))
            {
                earliestLater = current;
            }
        }
    }

    private static bool IsPrefix(IReadOnlyList<long> prefix, IReadOnlyList<long> of)
    {
        if (prefix.Count > of.Count)
        {
            return false;
        }

        for (var i = 0; i < prefix.Count; i++)
        {
            if (prefix[i] != of[i])
            {
                return false;
            }
        }

        return true;
    }

    public static Availability Availability(IReadOnlyList<Op> history, IReadOnlyList<Window> windows)
    {
        var perSecond = new SortedDictionary<long, (int Ok, int Errors)>();
        foreach (var op in history)
        {
            var second = (long)Math.Floor(op.Complete);
            perSecond.TryGetValue(second, out var c);
            perSecond[second] = op.Outcome == Outcome.Ok ? (c.Ok + 1, c.Errors) : (c.Ok, c.Errors + 1);
        }

        var worst = perSecond.Count == 0 ? default : perSecond.MaxBy(kv => kv.Value.Errors);
        var okWrites = history.Where(o => o.IsWrite && o.Outcome == Outcome.Ok).Select(o => o.Complete).Order().ToList();
        double gap = 0, gapStart = 0;
        for (var i = 1; i < okWrites.Count; i++)
        {
            if (okWrites[i] - okWrites[i - 1] > gap)
            {
                (gap, gapStart) = (okWrites[i] - okWrites[i - 1], okWrites[i - 1]);
            }
        }

        var stats = windows.Select(w =>
        {
            var inside = history.Where(o => o.Complete >= w.Start && o.Complete <= w.End).ToList();
            var first = history.Where(o => o.IsWrite && o.Outcome == Outcome.Ok && o.Invoke >= w.Start).Select(o => o.Complete).DefaultIfEmpty(double.NaN).Min();
            return new WindowStats(w, inside.Count(o => o.Outcome == Outcome.Ok), inside.Count(o => o.Outcome == Outcome.Fail),
                inside.Count(o => o.Outcome == Outcome.Indeterminate), double.IsNaN(first) ? null : first - w.Start);
        }).ToList();
        return new Availability(
            history.Count(o => o.Outcome == Outcome.Ok),
            history.Count(o => o.Outcome == Outcome.Fail),
            history.Count(o => o.Outcome == Outcome.Indeterminate),
            worst.Value.Errors,
            perSecond.Count == 0 ? null : worst.Key,
            gap,
            gapStart,
            stats,
            perSecond);
    }

    private sealed record Primary(ServerIdentity Server, IReadOnlyList<Op> Writes)
    {
        /// <summary>[earliest completion, latest invocation] of its acknowledged writes: it was primary all along (null when empty).</summary>
        public (double From, double To)? Certain
        {
            get
            {
                var from = Writes.Min(w => w.Complete);
                var to = Writes.Max(w => w.Invoke);
                return from < to ? (from, to) : null;
            }
        }
    }
}
