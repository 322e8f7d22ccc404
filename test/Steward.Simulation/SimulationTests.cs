using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Xunit.Abstractions;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Steward.Simulation;

/// <summary>
/// The deterministic simulation (README.md in this project): many seeds of random faults against the real decision,
/// converger and lease keeper, checking after every step that (1) at most one PostgreSQL runs as a primary, (2) the
/// router sends writes only to the leader key's holder and no other member acknowledges one, (3) no standby streams
/// from a server whose history it has diverged from, (4) no promotion reuses a timeline id, (5) no server becomes a
/// primary while another member holds the leader key. A failure names the seed; <c>STEWARD_SIM_SEED=n</c> replays it in
/// <see cref="Replay"/>.
/// </summary>
public sealed class SimulationTests(ITestOutputHelper output)
{
    /// <summary>Seeds per run of <see cref="Every_seed_keeps_the_invariants"/>; <c>STEWARD_SIM_SEEDS</c> overrides.</summary>
    private static int SeedCount => int.TryParse(Environment.GetEnvironmentVariable("STEWARD_SIM_SEEDS"), out var n) && n > 0 ? n : 10_000;

    /// <summary>
    /// Invariants the current code is known to break, found by this simulation and reported, not yet fixed. Their
    /// violations are listed in the output and the measurements file but do not fail the test; any other invariant does.
    /// Remove an entry once its defect is fixed (then the test holds the fix). <c>STEWARD_SIM_STRICT=1</c> ignores the list.
    /// None today. (The last, a strict-mode promotion of a sync standby that lacked a commit acknowledged before it joined
    /// the key — seeds 915, 1643, 8687, 8725, 9321, 9915 — is fixed: a standby joins the key only once caught up.)
    /// </summary>
    private static readonly Invariant[] KnownDefects = [];

    [Fact]
    public void Every_seed_keeps_the_invariants()
    {
        var options = new SimOptions();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var (failures, stats, elapsed) = RunSeeds(0, SeedCount, options);
        cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        var summary = string.Create(CultureInfo.InvariantCulture,
            $"simulation: {SeedCount} seeds x {options.Steps} steps in {elapsed.TotalSeconds:0.0} s on {Environment.ProcessorCount} cores, {cpu.TotalSeconds:0.0} s CPU ({stats})");
        output.WriteLine(summary);
        RecordMeasurement(summary);

        var strict = Environment.GetEnvironmentVariable("STEWARD_SIM_STRICT") == "1";
        var known = failures.Where(f => !strict && KnownDefects.Contains(f.Violation!.Invariant)).ToList();
        if (known.Count > 0)
        {
            foreach (var defect in known.GroupBy(f => f.Violation!.Invariant))
            {
                var line = string.Create(CultureInfo.InvariantCulture,
                    $"simulation: KNOWN DEFECT, invariant {(int)defect.Key} ({defect.Key}) violated in {defect.Count()} of {SeedCount} seeds " +
                    $"(seeds {string.Join(", ", defect.Take(8).Select(f => f.Seed))}{(defect.Count() > 8 ? ", ..." : "")}); STEWARD_SIM_STRICT=1 fails on it");
                output.WriteLine(line);
                RecordMeasurement(line);
            }

            output.WriteLine(Report(known.GroupBy(f => f.Violation!.Invariant).Select(g => g.First()).ToList()));
        }

        var unexpected = failures.Except(known).ToList();
        Assert.True(unexpected.Count == 0, Report(unexpected));
    }

    public static TheoryData<int> ReplaySeeds()
    {
        var data = new TheoryData<int>();
        var fromEnvironment = Environment.GetEnvironmentVariable("STEWARD_SIM_SEED");
        var seeds = string.IsNullOrWhiteSpace(fromEnvironment)
            ? [0, 1, 2]
            : fromEnvironment.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture));
        foreach (var seed in seeds)
        {
            data.Add(seed);
        }

        return data;
    }

    /// <summary>
    /// Replays one seed with its trace (the last steps, with the agents' log lines). <c>STEWARD_SIM_SEED=n[,m...]</c> picks
    /// the seeds; <c>STEWARD_SIM_BUG=fence|history|leader-key|sync-catch-up</c> plants a bug as the planted-bug tests do.
    /// </summary>
    [Theory]
    [MemberData(nameof(ReplaySeeds))]
    public void Replay(int seed)
    {
        var bug = Environment.GetEnvironmentVariable("STEWARD_SIM_BUG");
        var options = new SimOptions
        {
            Trace = true,
            TraceSteps = int.TryParse(Environment.GetEnvironmentVariable("STEWARD_SIM_TRACE_STEPS"), out var n) ? n : 50,
            FenceDisabled = bug == "fence",
            StandbysLookCaughtUp = bug == "sync-catch-up",
            SkipHistoryFiles = bug == "history",
            LeaderKeyNotAtomic = bug == "leader-key",
        };
        var result = Simulation.Run(seed, options);
        foreach (var line in result.Trace)
        {
            output.WriteLine(line);
        }

        output.WriteLine(result.Stats.ToString());
        Assert.True(result.Violation is null, $"seed {seed}: {result.Violation}");
    }

    [Fact]
    public void The_same_seed_gives_the_same_run()
    {
        for (var seed = 0; seed < 20; seed++)
        {
            var options = new SimOptions { Trace = true, TraceSteps = int.MaxValue, Steps = 300 };
            var first = Simulation.Run(seed, options);
            var second = Simulation.Run(seed, options);
            Assert.Equal(first.Trace.Count, second.Trace.Count);
            for (var i = 0; i < first.Trace.Count; i++)
            {
                Assert.True(first.Trace[i] == second.Trace[i], $"seed {seed} diverged at trace line {i}:\n{first.Trace[i]}\n{second.Trace[i]}");
            }

            // Tracing must not change the run: the untraced run ends the same way.
            var quiet = Simulation.Run(seed, options with { Trace = false });
            Assert.Equal(first.Violation, quiet.Violation);
            Assert.Equal(Fingerprint(first), Fingerprint(quiet));
        }

        // Nor may running seeds side by side on several threads.
        var seeds = Enumerable.Range(0, 100).ToList();
        var alone = seeds.Select(s => Fingerprint(Simulation.Run(s))).ToList();
        var together = new string[seeds.Count];
        Parallel.For(0, seeds.Count, i => together[i] = Fingerprint(Simulation.Run(seeds[i])));
        Assert.Equal(alone, together);
    }

    private static string Fingerprint(SimResult r) =>
        $"{r.Seed} {r.Violation} {r.Stats.Steps} {r.Stats.SimTime.Ticks} {r.Stats.Writes} {r.Stats.Acks} {r.Stats.Promotions} {r.Stats.FenceKills} {r.Stats.SupervisorKills} {r.Stats.LostAcks} {r.Stats.SyncAcks}";

    [Fact]
    public void Finds_the_planted_bug_fence_disabled() =>
        FindsPlantedBug(new SimOptions { FenceDisabled = true }, Invariant.OnePrimary);

    [Fact]
    public void Finds_the_planted_bug_leader_key_not_atomic() =>
        FindsPlantedBug(new SimOptions { LeaderKeyNotAtomic = true }, Invariant.OnePrimary);

    [Fact]
    public void Finds_the_planted_bug_history_files_not_written() =>
        FindsPlantedBug(new SimOptions { SkipHistoryFiles = true }, Invariant.TimelineIdNotReused);

    [Fact]
    public void Finds_standbys_joining_the_sync_key_before_they_caught_up() =>
        FindsPlantedBug(new SimOptions { StandbysLookCaughtUp = true, SynchronousMode = true }, Invariant.SyncKeyStandbysHoldAcknowledgedCommits);

    /// <summary>
    /// Quorum commit: a leader that believes its standbys caught up lowers the quorum (or takes in voters) too early, so a
    /// commit is missing from more voters than the key's quorum.
    /// </summary>
    [Fact]
    public void Finds_the_quorum_lowered_before_the_voters_caught_up() =>
        FindsPlantedBug(new SimOptions { StandbysLookCaughtUp = true, SynchronousMode = true, Quorum = true }, Invariant.SyncKeyStandbysHoldAcknowledgedCommits, batch: 100);

    private void FindsPlantedBug(SimOptions options, Invariant expected, int firstSeed = 0, int batch = 500)
    {
        const int maxSeeds = 20_000;
        var searched = 0;
        var sw = Stopwatch.StartNew();
        for (var start = firstSeed; start < firstSeed + maxSeeds; start += batch)
        {
            var (failures, _, _) = RunSeeds(start, batch, options);
            searched += batch;
            var found = failures.Where(f => f.Violation!.Invariant == expected).OrderBy(f => f.Seed).FirstOrDefault();
            if (found is not null)
            {
                var kinds = failures.GroupBy(f => f.Violation!.Invariant).Select(g => $"{g.Key}: {g.Count()}");
                var summary = $"{options}: found by seed {found.Seed} within {searched} seeds ({sw.Elapsed.TotalSeconds:0.0} s); " +
                              $"{failures.Count} of the last {batch} seeds failed ({string.Join(", ", kinds)})";
                output.WriteLine(summary);
                output.WriteLine(Report([found]));
                RecordMeasurement("simulation planted bug, " + summary);
                return;
            }
        }

        Assert.Fail($"{options}: no seed of {searched} violated invariant {(int)expected} ({expected}): the simulation cannot see this bug");
    }

    private static (List<SimResult> Failures, SimStats Stats, TimeSpan Elapsed) RunSeeds(int first, int count, SimOptions options)
    {
        var failures = new ConcurrentBag<SimResult>();
        var total = new SimStats();
        var sw = Stopwatch.StartNew();
        Parallel.For(first, first + count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, seed =>
        {
            var result = Simulation.Run(seed, options);
            if (result.Violation is not null)
            {
                failures.Add(result);
            }

            lock (total)
            {
                total.Add(result.Stats);
            }
        });
        return ([.. failures.OrderBy(f => f.Seed)], total, sw.Elapsed);
    }

    /// <summary>The first failures with the trace of a replay (which must end the same way: the run is deterministic).</summary>
    private static string Report(IReadOnlyList<SimResult> failures)
    {
        var text = new StringBuilder();
        if (failures.Count == 0)
        {
            return "";
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"{failures.Count} seed(s) violated an invariant:");
        foreach (var failure in failures.Take(50))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  seed {failure.Seed}: {failure.Violation}");
        }
        foreach (var failure in failures.Take(3))
        {
            var replay = Simulation.Run(failure.Seed, failure.Options with { Trace = true });
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"seed {failure.Seed} ({failure.Options}): {failure.Violation}");
            if (replay.Violation != failure.Violation)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"NOT DETERMINISTIC: the traced replay ended with {replay.Violation?.ToString() ?? "no violation"}");
            }

            text.AppendLine(CultureInfo.InvariantCulture, $"replay: STEWARD_SIM_SEED={failure.Seed} dotnet test test/Steward.Simulation --filter 'FullyQualifiedName~Replay'");
            foreach (var line in replay.Trace)
            {
                text.AppendLine(line);
            }
        }

        return text.ToString();
    }

    private static void RecordMeasurement(string line)
    {
        if (Environment.GetEnvironmentVariable("STEWARD_MEASUREMENTS") is { Length: > 0 } path)
        {
            lock (typeof(SimulationTests))
            {
                File.AppendAllText(path, line + Environment.NewLine);
            }
        }
    }
}
