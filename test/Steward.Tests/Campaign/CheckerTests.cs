using Steward.Campaign.Checking;

namespace Steward.Tests.Campaign;

/// <summary>The campaign's checker on hand-made histories: each violation is caught, and a clean history passes.</summary>
public sealed class CheckerTests
{
    private static readonly ServerIdentity A = new("10.231.0.1", "7300000000000000001", 1, "2026-12-01 10:00:00+00");
    private static readonly ServerIdentity B = new("10.231.0.2", "7300000000000000001", 2, "2026-12-01 10:00:05+00");
    private static readonly ServerIdentity ARestarted = A with { Timeline = 3, PostmasterStart = "2026-12-01 10:01:00+00" };

    private static Op Insert(long id, double invoke, double complete, Outcome outcome = Outcome.Ok, ServerIdentity? by = null) =>
        new() { Kind = OpKind.Insert, Value = id, Invoke = invoke, Complete = complete, Outcome = outcome, Server = outcome == Outcome.Ok ? by ?? A : null };

    private static Op Append(long key, long value, double invoke, double complete, Outcome outcome = Outcome.Ok, ServerIdentity? by = null) =>
        new() { Kind = OpKind.Append, Key = key, Value = value, Invoke = invoke, Complete = complete, Outcome = outcome, Server = outcome == Outcome.Ok ? by ?? A : null };

    private static Op Read(long key, long[] values, double invoke, double complete, ServerIdentity? by = null) =>
        new() { Kind = OpKind.Read, Key = key, ReadValues = values, Invoke = invoke, Complete = complete, Outcome = Outcome.Ok, Server = by ?? A };

    private static FinalState Final(long[] inserted, params (long Key, long[] Values)[] lists) =>
        new(inserted.ToHashSet(), lists.ToDictionary(l => l.Key, l => (IReadOnlyList<long>)l.Values));

    /// <summary>A failover from A to B (A crashed, B promoted, A came back as a replica under a new postmaster), no violation.</summary>
    private static List<Op> CleanFailover() =>
    [
        Insert(1, 0.0, 0.1),
        Append(7, 1, 0.1, 0.2),
        Insert(2, 0.2, 0.3),
        Append(7, 2, 0.3, 0.4),
        Read(7, [1, 2], 0.5, 0.6),
        Insert(3, 0.6, 5.0, Outcome.Indeterminate), // A crashed with it in flight: committed or not, either is fine
        Insert(4, 5.0, 5.1, Outcome.Fail), // refused: certainly not committed
        Insert(5, 5.0, 9.0, by: B), // held by the router until B was promoted
        Append(7, 3, 9.0, 9.1, by: B),
        Read(7, [1, 2, 3], 9.2, 9.3, by: B),
        Insert(6, 9.3, 9.4, by: B),
    ];

    private static History Indexed(IEnumerable<Op> ops) => new(ops);

    [Fact]
    public void A_clean_history_with_a_failover_passes()
    {
        var result = Checker.Check(Indexed(CleanFailover()).Snapshot(), Final([1, 2, 5, 6], (7, [1, 2, 3])),
            [new Window("crash", 0.6, 9.5, Failover: true)]);

        Assert.True(result.Valid, string.Join("\n", result.LostWrites.Concat<object>(result.SplitBrains).Concat(result.Anomalies)));
        Assert.Equal(1, result.IndeterminateWrites);
        Assert.Equal(0, result.IndeterminateCommitted);
        var window = Assert.Single(result.Availability.Windows);
        Assert.Equal(2, window.Errors); // #3 indeterminate, #4 failed
        Assert.Equal(9.0 - 0.6, window.FirstWriteAfter!.Value, 6);
        Assert.Equal(9.0 - 0.4, result.Availability.LongestWriteGap, 6); // append 2 (0.4) to insert 5 (9.0)
    }

    [Fact]
    public void An_indeterminate_write_that_committed_is_not_a_violation()
    {
        var result = Checker.Check(Indexed(CleanFailover()).Snapshot(), Final([1, 2, 3, 5, 6], (7, [1, 2, 3])));

        Assert.True(result.Valid);
        Assert.Equal(1, result.IndeterminateCommitted);
    }

    [Fact]
    public void One_lost_write_is_caught()
    {
        // Insert 2 was acknowledged by A, then A crashed before its replica had it: the final state lacks it.
        var result = Checker.Check(Indexed(CleanFailover()).Snapshot(), Final([1, 5, 6], (7, [1, 2, 3])));

        var lost = Assert.Single(result.LostWrites);
        Assert.Equal((OpKind.Insert, 2L), (lost.Kind, lost.Value));
        Assert.Empty(result.SplitBrains);
        Assert.Empty(result.Anomalies);
    }

    [Fact]
    public void A_lost_append_is_caught()
    {
        var result = Checker.Check(Indexed(CleanFailover()).Snapshot(), Final([1, 2, 5, 6], (7, [1, 3])));

        var lost = Assert.Single(result.LostWrites);
        Assert.Equal((OpKind.Append, 7L, 2L), (lost.Kind, lost.Key, lost.Value));
        Assert.Contains(result.Anomalies, a => a.Kind == AnomalyKind.IncompatibleOrder); // [1,2] was read, the end is [1,3]
        Assert.Empty(result.UnexplainedAnomalies); // ... which the loss of 2 explains
    }

    [Fact]
    public void An_anomaly_the_lost_writes_do_not_explain_is_kept()
    {
        // 2 is lost; a read also misses 1, which survived: that one is not explained by the loss.
        var ops = CleanFailover();
        ops[4] = Read(7, [], 0.5, 0.6);
        var result = Checker.Check(Indexed(ops).Snapshot(), Final([1, 2, 5, 6], (7, [1, 3])));

        Assert.Equal(2, result.Anomalies.Count(a => a.Kind == AnomalyKind.MissingAppend));
        var left = Assert.Single(result.UnexplainedAnomalies);
        Assert.Contains("Append key 7 1 ", left.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Two_overlapping_primaries_are_caught()
    {
        // A keeps acknowledging after B started to: A was primary over [1.1, 3.0], B over [2.1, 4.0].
        List<Op> ops =
        [
            Insert(1, 1.0, 1.1),
            Insert(2, 2.0, 2.1, by: B),
            Insert(3, 3.0, 3.1),
            Insert(4, 4.0, 4.1, by: B),
        ];
        var result = Checker.Check(Indexed(ops).Snapshot(), Final([1, 2, 3, 4]));

        var split = Assert.Single(result.SplitBrains);
        Assert.Equal(new HashSet<ServerIdentity> { A, B }, new HashSet<ServerIdentity> { split.First, split.Second });
        Assert.Equal(2.1, split.Start, 6);
        Assert.Equal(3.0, split.End, 6);
        Assert.Empty(result.LostWrites);
    }

    [Fact]
    public void One_write_of_another_primary_inside_a_primary_s_certain_window_is_caught()
    {
        // B acknowledged a single write (no window of its own) while A was certainly primary.
        List<Op> ops = [Insert(1, 1.0, 1.1), Insert(2, 2.0, 2.1, by: B), Insert(3, 3.0, 3.1)];

        var split = Assert.Single(Checker.Check(Indexed(ops).Snapshot(), Final([1, 2, 3])).SplitBrains);
        Assert.Equal((2.0, 2.1), (split.Start, split.End));
    }

    [Fact]
    public void Writes_of_one_address_under_two_postmasters_in_turn_are_not_a_split_brain()
    {
        // A, then B, then A again after a restart (a new postmaster, a new primary): successive, not overlapping.
        List<Op> ops =
        [
            Insert(1, 1.0, 1.1), Insert(2, 2.0, 2.1),
            Insert(3, 3.0, 3.1, by: B), Insert(4, 4.0, 4.1, by: B),
            Insert(5, 5.0, 5.1, by: ARestarted), Insert(6, 6.0, 6.1, by: ARestarted),
        ];

        Assert.Empty(Checker.Check(Indexed(ops).Snapshot(), Final([1, 2, 3, 4, 5, 6])).SplitBrains);
    }

    [Fact]
    public void Overlapping_intervals_alone_are_not_a_split_brain()
    {
        // A slow write to A overlaps B's first writes, but A may have committed it before B was promoted.
        List<Op> ops = [Insert(1, 1.0, 1.1), Insert(2, 1.5, 4.0), Insert(3, 3.0, 3.1, by: B), Insert(4, 5.0, 5.1, by: B)];

        Assert.Empty(Checker.Check(Indexed(ops).Snapshot(), Final([1, 2, 3, 4])).SplitBrains);
    }

    [Fact]
    public void A_read_missing_an_acknowledged_append_is_caught()
    {
        // 2 was acknowledged at 0.4; a read that began at 0.5 sees only [1] (a stale primary, or a lost append).
        var ops = CleanFailover();
        ops[4] = Read(7, [1], 0.5, 0.6);
        var result = Checker.Check(Indexed(ops).Snapshot(), Final([1, 2, 5, 6], (7, [1, 2, 3])));

        var anomaly = Assert.Single(result.Anomalies);
        Assert.Equal(AnomalyKind.MissingAppend, anomaly.Kind);
        Assert.Contains("Append key 7 2", anomaly.Detail, StringComparison.Ordinal);
        Assert.Empty(result.LostWrites);
    }

    [Fact]
    public void A_read_whose_order_contradicts_commit_order_is_caught()
    {
        // 1 was acknowledged (0.2) before 2 was appended (0.3), yet the read lists 2 first.
        List<Op> ops = [Append(7, 1, 0.1, 0.2), Append(7, 2, 0.3, 0.4), Read(7, [2, 1], 0.5, 0.6)];
        var result = Checker.Check(Indexed(ops).Snapshot(), Final([], (7, [2, 1])));

        Assert.Contains(result.Anomalies, a => a.Kind == AnomalyKind.OrderContradictsCommitOrder && a.Read!.Index == 2);
    }

    [Fact]
    public void Concurrent_appends_may_be_read_in_either_order()
    {
        List<Op> ops = [Append(7, 1, 0.1, 0.4), Append(7, 2, 0.2, 0.3), Read(7, [2, 1], 0.5, 0.6)];

        Assert.True(Checker.Check(Indexed(ops).Snapshot(), Final([], (7, [2, 1]))).Valid);
    }

    [Fact]
    public void Reads_in_incompatible_orders_duplicates_phantoms_and_aborted_appends_are_caught()
    {
        List<Op> ops =
        [
            Append(7, 1, 0.1, 0.2), Append(7, 2, 0.1, 0.2), Append(7, 3, 0.1, 0.2, Outcome.Fail),
            Read(7, [1, 2], 0.5, 0.6), Read(7, [2, 1], 0.7, 0.8), Read(7, [1, 2, 2], 0.9, 1.0), Read(7, [1, 2, 9], 0.9, 1.0),
            Read(7, [1, 2, 3], 1.1, 1.2),
        ];
        var kinds = Checker.Check(Indexed(ops).Snapshot(), Final([], (7, [1, 2]))).Anomalies.Select(a => a.Kind).ToHashSet();

        Assert.Equal(new HashSet<AnomalyKind> { AnomalyKind.IncompatibleOrder, AnomalyKind.Duplicate, AnomalyKind.Phantom, AnomalyKind.AbortedRead }, kinds);
    }

    [Fact]
    public void Availability_counts_errors_per_second_and_the_longest_gap_between_successful_writes()
    {
        List<Op> ops =
        [
            Insert(1, 0.0, 0.5),
            Insert(2, 1.0, 1.2, Outcome.Fail), Insert(3, 1.3, 1.4, Outcome.Indeterminate), Insert(4, 1.5, 1.6, Outcome.Fail),
            Insert(5, 2.0, 4.5),
            Insert(6, 4.6, 4.7),
        ];
        var a = Checker.Check(Indexed(ops).Snapshot(), Final([1, 5, 6])).Availability;

        Assert.Equal((3, 2, 1), (a.Ok, a.Failed, a.Indeterminate));
        Assert.Equal(3, a.MaxErrorsPerSecond);
        Assert.Equal(1.0, a.MaxErrorsSecond);
        Assert.Equal(4.0, a.LongestWriteGap, 6);
        Assert.Equal(0.5, a.LongestWriteGapStart, 6);
    }

    [Fact]
    public void A_history_survives_a_round_trip_through_its_file()
    {
        var path = Path.GetTempFileName();
        try
        {
            Indexed(CleanFailover()).Save(path);
            var loaded = History.Load(path).Snapshot();

            Assert.Equal(CleanFailover().Count, loaded.Count);
            Assert.Equal(B, loaded[7].Server);
            Assert.Equal([1L, 2L, 3L], loaded[9].ReadValues);
            Assert.Equal(Outcome.Indeterminate, loaded[5].Outcome);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
