using System.Globalization;
using System.Text;
using System.Text.Json;
using Steward.Campaign.Checking;

namespace Steward.Campaign;

/// <summary>The campaign's table: per fault kind, then totals, the workload, the violations and the findings.</summary>
internal sealed class Report
{
    private readonly CampaignOptions _o;
    private readonly string _runId;
    private readonly string _dir;
    private readonly IReadOnlyList<FaultRecord> _faults;
    private readonly CheckResult _result;
    private readonly IReadOnlyList<(double Start, double End)> _leaderless;
    private readonly IReadOnlyList<(double Start, double End)> _etcdUnavailable;
    private readonly IReadOnlyList<string> _findings;
    private readonly IReadOnlyList<Op> _history;

    public Report(CampaignOptions o, string runId, string dir, IReadOnlyList<FaultRecord> faults, CheckResult result,
        IReadOnlyList<(double At, string? Leader, bool Known)> samples, IReadOnlyList<string> findings, IReadOnlyList<Op> history)
    {
        _o = o;
        _runId = runId;
        _dir = dir;
        _faults = faults;
        _result = result;
        _leaderless = Runs(samples, s => s.Known && s.Leader is null);
        _etcdUnavailable = Runs(samples, s => !s.Known);
        _findings = findings;
        _history = history;
    }

    public int NotRejoined => _faults.Sum(f => f.NotRejoined.Count);
    public int Violations => _result.LostWrites.Count + _result.SplitBrains.Count + _result.Anomalies.Count + NotRejoined;
    private double LongestLeaderless => _leaderless.Select(w => w.End - w.Start).DefaultIfEmpty(0).Max();

    /// <summary>Maximal runs of consecutive samples matching <paramref name="predicate"/>, each until the next sample that does not.</summary>
    private static List<(double Start, double End)> Runs(IReadOnlyList<(double At, string? Leader, bool Known)> samples, Func<(double At, string? Leader, bool Known), bool> predicate)
    {
        var runs = new List<(double, double)>();
        double? start = null;
        foreach (var s in samples)
        {
            if (predicate(s))
            {
                start ??= s.At;
            }
            else if (start is { } st)
            {
                runs.Add((st, s.At));
                start = null;
            }
        }

        if (start is { } open && samples.Count > 0)
        {
            runs.Add((open, samples[^1].At));
        }

        return runs;
    }

    /// <summary>The fault a moment belongs to: the first whose recovery ended at or after it (in progress, or the next one).</summary>
    private FaultRecord? FaultAt(double t) => _faults.FirstOrDefault(f => f.Healthy >= t);

    private static string P(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0)
        {
            return "-";
        }

        var sorted = values.Order().ToList();
        return sorted[(int)Math.Min(sorted.Count - 1, Math.Ceiling(q * sorted.Count) - 1)].ToString("F1", CultureInfo.InvariantCulture);
    }

    private static string Pct(double rate) => (rate * 100).ToString("F1", CultureInfo.InvariantCulture) + "%";

    public string Render()
    {
        var ic = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        var stats = _result.Availability.Windows;
        sb.AppendLine(ic, $"== Steward fault campaign {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: seed {_o.Seed}, mode {(_o.Synchronous ? "sync" : "async")}, " +
            $"{_faults.Count} faults, {_o.Clients} clients through the router, ttl {_o.Ttl} / loop_wait 1, hold {_o.HoldMin}-{_o.HoldMax} s, run {_runId}");
        sb.AppendLine(ic, $"   3 hosts (netns, 10.231.x.1-3: etcd member + PostgreSQL 15 + agent each), router in a 4th; replication delay = tc tbf {_o.Rate} on the links into both replicas");
        sb.AppendLine(ic, $"   clients: a new connection every {Workload.ReconnectEvery} operations, 10 ms between operations, after an error a new connection after {Workload.FirstBackoff.TotalMilliseconds} ms doubling to {Workload.MaxBackoff.TotalSeconds} s");
        sb.AppendLine(ic, $"{"fault",-32} {"n",3} {"failovers",9} {"lost",5} {"split",5} {"err% in window",14} {"1st write p50/p99 s",19} {"not rejoined",12} {"max leaderless s",16}");
        void Row(string name, IReadOnlyList<FaultRecord> faults)
        {
            var numbers = faults.Select(f => f.Number).ToHashSet();
            var windows = stats.Where(w => numbers.Contains(int.Parse(w.Window.Name[1..w.Window.Name.IndexOf(' ', StringComparison.Ordinal)], ic))).ToList();
            var firsts = windows.Where(w => w.FirstWriteAfter is not null).Select(w => w.FirstWriteAfter!.Value).ToList();
            var lost = _result.LostWrites.Count(o => FaultAt(o.Complete) is { } f && numbers.Contains(f.Number));
            var split = _result.SplitBrains.Count(s => FaultAt(s.Start) is { } f && numbers.Contains(f.Number));
            var leaderless = faults.Select(f => _leaderless.Where(w => w.End >= f.Injected && w.Start <= f.Healthy).Select(w => w.End - w.Start).DefaultIfEmpty(0).Max())
                .DefaultIfEmpty(0).Max();
            sb.AppendLine(ic, $"{name,-32} {faults.Count,3} {faults.Count(f => f.Failover),9} {lost,5} {split,5} {Pct(Availability.ErrorRate(windows)),14} " +
                $"{P(firsts, 0.5) + " / " + P(firsts, 0.99),19} {faults.Sum(f => f.NotRejoined.Count),12} {leaderless,16:F1}");
        }

        foreach (var group in _faults.GroupBy(f => f.Kind).OrderBy(g => g.Key))
        {
            Row(group.Key.Name(), [.. group]);
        }

        Row("all faults", _faults);
        var a = _result.Availability;
        var writes = _history.Where(o => o.IsWrite).ToList();
        var failoverWindows = stats.Where(w => w.Window.Failover).ToList();
        sb.AppendLine(ic, $"acknowledged writes lost: {_result.LostWrites.Count} of {writes.Count(o => o.Outcome == Outcome.Ok)}; split-brain windows: {_result.SplitBrains.Count}; " +
            $"list-append anomalies: {_result.Anomalies.Count} ({_result.UnexplainedAnomalies.Count} not explained by the lost writes); nodes that failed to rejoin: {NotRejoined}");
        sb.AppendLine(ic, $"operations: {a.Total} ({_history.Count(o => o.Kind == OpKind.Insert)} inserts, {_history.Count(o => o.Kind == OpKind.Append)} appends, " +
            $"{_history.Count(o => o.Kind == OpKind.Read)} reads): {a.Ok} ok, {a.Failed} failed, {a.Indeterminate} indeterminate " +
            $"({_result.IndeterminateCommitted} of {_result.IndeterminateWrites} indeterminate writes committed)");
        sb.AppendLine(ic, $"errors while failing over (the {failoverWindows.Count} windows with a new leader, injection to healthy): {Pct(Availability.ErrorRate(failoverWindows))} " +
            $"({failoverWindows.Sum(w => w.Errors)} of {failoverWindows.Sum(w => w.Total)} ops); in every fault window: {Pct(Availability.ErrorRate(stats))}; " +
            $"whole run: {Pct(a.Total == 0 ? 0 : (double)(a.Failed + a.Indeterminate) / a.Total)}");
        sb.AppendLine(ic, $"longest gap without a successful write: {a.LongestWriteGap:F1} s (from {a.LongestWriteGapStart:F1} s, during {FaultAt(a.LongestWriteGapStart)?.Kind.Name() ?? "-"}); " +
            $"most errors in one second: {a.MaxErrorsPerSecond}; longest leaderless window (no leader key): {LongestLeaderless:F1} s; " +
            $"longest etcd unavailability: {_etcdUnavailable.Select(w => w.End - w.Start).DefaultIfEmpty(0).Max():F1} s");
        foreach (var group in _result.LostWrites.GroupBy(o => FaultAt(o.Complete)?.Number))
        {
            var ops = group.ToList();
            sb.AppendLine(ic, $"LOST {ops.Count} acknowledged writes by {string.Join(", ", ops.Select(o => o.Server?.ToString()).Distinct())}, acknowledged " +
                $"{ops.Min(o => o.Complete):F3}-{ops.Max(o => o.Complete):F3} s (fault #{group.Key?.ToString(ic) ?? "-"} {FaultAt(ops[0].Complete)?.Kind.Name()}, injected at {FaultAt(ops[0].Complete)?.Injected:F3} s)");
        }

        foreach (var lost in _result.LostWrites.Take(5))
        {
            sb.AppendLine(ic, $"LOST {lost} (fault #{FaultAt(lost.Complete)?.Number.ToString(ic) ?? "-"} {FaultAt(lost.Complete)?.Kind.Name()})");
        }

        foreach (var s in _result.SplitBrains.Take(20))
        {
            sb.AppendLine(ic, $"SPLIT BRAIN {s.First} / {s.Second}: {s.Evidence} (fault #{FaultAt(s.Start)?.Number.ToString(ic) ?? "-"})");
        }

        foreach (var an in _result.UnexplainedAnomalies.Take(20))
        {
            sb.AppendLine(ic, $"ANOMALY {an}");
        }

        foreach (var finding in _findings)
        {
            sb.AppendLine(ic, $"FINDING {finding}");
        }

        sb.AppendLine(ic, $"logs and history: {_dir} (history.jsonl; n*/agent.log, etcd.log, postgresql-*.log; router.log)");
        return sb.ToString();
    }

    public string SummaryJson() => JsonSerializer.Serialize(new
    {
        seed = _o.Seed,
        mode = _o.Synchronous ? "sync" : "async",
        faults = _faults.Count,
        failovers = _faults.Count(f => f.Failover),
        lostWrites = _result.LostWrites.Count,
        splitBrainWindows = _result.SplitBrains.Count,
        anomalies = _result.Anomalies.Count,
        unexplainedAnomalies = _result.UnexplainedAnomalies.Count,
        notRejoined = NotRejoined,
        operations = _result.Availability.Total,
        ok = _result.Availability.Ok,
        longestLeaderless = LongestLeaderless,
        findings = _findings,
        dir = _dir,
    });
}
