using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Agent;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;
using Steward.Router.Routing;
using Steward.Testing;

namespace Steward.Simulation;

/// <summary>What one simulation run does and which bugs are planted in it.</summary>
public sealed record SimOptions
{
    public int Nodes { get; init; } = 3;

    /// <summary>Scheduled events per run (agent cycles, lease renewals, client writes, replication, faults).</summary>
    public int Steps { get; init; } = 600;

    /// <summary>Probability that a step is a fault rather than the next scheduled event.</summary>
    public double FaultRate { get; init; } = 0.08;

    /// <summary>Record a trace (events, agent log lines, state after each step); slower.</summary>
    public bool Trace { get; init; }

    /// <summary>How many of the last steps a trace keeps.</summary>
    public int TraceSteps { get; init; } = 50;

    /// <summary>
    /// Synchronous mode: null (default) runs every odd seed in synchronous mode (every fourth strict), the rest
    /// asynchronous; true/false forces it.
    /// </summary>
    public bool? SynchronousMode { get; init; }

    /// <summary>
    /// Quorum commit (<c>synchronous_mode: quorum</c>) in synchronous runs: null (default) uses it for seeds 1 and 7 mod 8
    /// (7: strict too), with synchronous_node_count 2 for half of them; true/false forces it.
    /// </summary>
    public bool? Quorum { get; init; }

    /// <summary>Planted bug: standbys look caught up, so they join the sync key as soon as PostgreSQL waits for them.</summary>
    public bool StandbysLookCaughtUp { get; init; }


    /// <summary>Planted bug: the fence never kills (neither in process nor from the supervisor).</summary>
    public bool FenceDisabled { get; init; }

    /// <summary>Planted bug: the timeline history files are never written before a promotion (safety rule 4 removed).</summary>
    public bool SkipHistoryFiles { get; init; }

    /// <summary>Planted bug: taking the leader key does not compare (a member takes it even when another holds it).</summary>
    public bool LeaderKeyNotAtomic { get; init; }

    public override string ToString()
    {
        var bugs = new[] { FenceDisabled ? "fence disabled" : null, SkipHistoryFiles ? "history files skipped" : null, LeaderKeyNotAtomic ? "leader key not atomic" : null,
                StandbysLookCaughtUp ? "standbys join the sync key before they caught up" : null }
            .OfType<string>().ToList();
        return bugs.Count == 0 ? "no planted bug" : "planted bug: " + string.Join(", ", bugs);
    }
}

public enum Invariant
{
    /// <summary>At most one PostgreSQL server runs as a primary at any instant.</summary>
    OnePrimary = 1,

    /// <summary>The router sends writes to the holder of the leader key (on a fresh view), and no write is acknowledged by any other member.</summary>
    RouterWritesToLeader = 2,

    /// <summary>No standby streams from a server whose history it has diverged from.</summary>
    NoDivergedStreaming = 3,

    /// <summary>
    /// Safety rule 4: a promotion never picks a timeline id that another server's WAL already has (PostgreSQL and pg_rewind
    /// tell histories apart by timeline id and switch LSN only; with a reused id a diverged server can stream undetected).
    /// Checked when it happens, so the cause is reported rather than the corruption it leads to.
    /// </summary>
    TimelineIdNotReused = 4,

    /// <summary>
    /// A server becomes a writable primary (start, promotion, bootstrap) only while no other member holds the leader key.
    /// Checked when it happens: it names the cause (a decision carried out after its lease ran out) of what would
    /// otherwise show as two primaries, or as a write acknowledged by a member that does not lead.
    /// </summary>
    NoPrimaryUnderAnotherLeader = 5,

    /// <summary>
    /// Synchronous mode: every standby the <c>sync</c> key names holds every commit acknowledged synchronously, so any of
    /// them may take over. Checked when a commit is acknowledged (the key names the primary as leader, and only standbys
    /// the commit waited for) and when the key names a standby it did not name before (it holds every synchronously
    /// acknowledged commit the key's leader holds).
    /// </summary>
    SyncKeyStandbysHoldAcknowledgedCommits = 6,

    /// <summary>
    /// Synchronous mode: a server that becomes a writable primary holds every commit acknowledged synchronously before,
    /// unless every standby that acknowledged it has been down or cut off since (two faults at once: no promise covers that),
    /// or (not strict) the sync key named no standby, so the former leader ran asynchronously.
    /// </summary>
    NoSynchronousCommitLost = 7,

    /// <summary>
    /// A data directory carries the durable "ran as a primary" mark before it accepts a write (a start as primary, a
    /// promotion, a bootstrap). The mark is what gets it rewound before it follows anyone after a crash: a start as a
    /// standby afterwards rewrites the control file and standby.signal, and the branch it wrote would go unnoticed.
    /// </summary>
    MarkedBeforeWritable = 8,
}

public sealed record Violation(Invariant Invariant, string Message, int Step, TimeSpan At)
{
    public override string ToString() =>
        $"invariant {(int)Invariant} ({Invariant}) violated at step {Step}, t={At.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture)} s: {Message}";
}

/// <summary>Counters of one run (or of many, added up).</summary>
public sealed class SimStats
{
    public long Runs { get; set; }
    public long Steps { get; set; }
    public TimeSpan SimTime { get; set; }
    public long Writes { get; set; }
    public long Acks { get; set; }
    public long NoWriter { get; set; }
    public long Refused { get; set; }
    public long LostAcks { get; set; }
    public long SyncAcks { get; set; }
    public long SyncRuns { get; set; }
    public long QuorumRuns { get; set; }
    public long SyncLostToTwoFaults { get; set; }
    public long SyncLostWhileAsynchronous { get; set; }
    public long Promotions { get; set; }
    public long FenceKills { get; set; }
    public long SupervisorKills { get; set; }
    public long Faults { get; set; }
    public long AgentKills { get; set; }
    public long Freezes { get; set; }
    public long FatalExits { get; set; }

    public void Add(SimStats other)
    {
        ArgumentNullException.ThrowIfNull(other);
        Runs += other.Runs;
        Steps += other.Steps;
        SimTime += other.SimTime;
        Writes += other.Writes;
        Acks += other.Acks;
        NoWriter += other.NoWriter;
        Refused += other.Refused;
        LostAcks += other.LostAcks;
        SyncAcks += other.SyncAcks;
        SyncRuns += other.SyncRuns;
        QuorumRuns += other.QuorumRuns;
        SyncLostToTwoFaults += other.SyncLostToTwoFaults;
        SyncLostWhileAsynchronous += other.SyncLostWhileAsynchronous;
        Promotions += other.Promotions;
        FenceKills += other.FenceKills;
        SupervisorKills += other.SupervisorKills;
        Faults += other.Faults;
        AgentKills += other.AgentKills;
        Freezes += other.Freezes;
        FatalExits += other.FatalExits;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Runs} runs, {Steps} steps, {SimTime.TotalMinutes:0.0} min simulated; {Faults} faults ({AgentKills} agent kills, {Freezes} freezes); " +
        $"{Promotions} promotions; fence kills: {FenceKills} in process, {SupervisorKills} by the supervisor; " +
        $"client writes: {Writes} sent, {Acks} acknowledged, {NoWriter} with no writer, {Refused} refused by the target; " +
        $"{LostAcks} acknowledged writes not on the final primary (asynchronous replication); {SyncRuns} runs in synchronous mode ({QuorumRuns} quorum commit), " +
        $"{SyncAcks} commits acknowledged synchronously, {SyncLostToTwoFaults} of them lost to a promotion while every standby holding them was down or cut off, {SyncLostWhileAsynchronous} to one after the leader went asynchronous (not strict); {FatalExits} fatal exits");
}

public sealed record SimResult(int Seed, SimOptions Options, Violation? Violation, IReadOnlyList<string> Trace, SimStats Stats);

/// <summary>
/// A deterministic simulation of a Steward cluster: N real <see cref="NodeAgent"/>s (the real <c>HaDecision</c>,
/// <see cref="Converger"/> and <see cref="LeaseKeeper"/>) on one <see cref="InMemoryEtcd"/>, each over a
/// <see cref="FakePostgres"/> with a <see cref="FakeFence"/> and its supervisor, a router model built on the real
/// <see cref="RoutingTable"/>, and a client writing through it — all on one <see cref="SimClock"/> and one seeded random
/// schedule, single-threaded, so a seed replays the same run. See README.md in this project.
/// </summary>
public static class Simulation
{
    public static SimResult Run(int seed, SimOptions? options = null)
    {
        // Everything runs inline on this thread: no captured context may send a continuation elsewhere.
        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            return new World(seed, options ?? new SimOptions()).Run();
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }
    }
}

internal sealed class World
{
    private const string Prefix = "/service/sim/";
    private static readonly DateTimeOffset Epoch = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly int _seed;
    private readonly SimOptions _o;
    private readonly Random _rng;
    private readonly SimClock _clock = new(Epoch);
    private readonly InMemoryEtcd _etcd;
    private readonly FakePgNetwork _net = new();
    private readonly List<Node> _nodes = [];
    private readonly InMemoryClusterStore _routerClient;
    private readonly InMemoryClusterStore _adminClient;
    private readonly SimStats _stats = new() { Runs = 1 };
    private readonly int _thread = Environment.CurrentManagedThreadId;
    private readonly Queue<List<string>> _trace = new();
    private readonly Dictionary<long, (string Node, long Id)> _acks = [];
    private readonly List<PendingCommit> _pending = [];
    private readonly List<SyncAck> _syncAcks = [];
    private string? _lastSyncKey;
    private readonly bool _sync;
    private readonly bool _strict;
    private readonly bool _quorum;
    private List<string>? _block;
    private RoutingTable _table = RoutingTable.Empty;
    private Violation? _violation;
    private int _step;
    private long _writeId;
    private long _clientDue;
    private long _replicationDue;
    private long _outageUntil = -1;
    private bool _quorumLost;
    private long _routerPartitionUntil = -1;

    public World(int seed, SimOptions options)
    {
        _seed = seed;
        _o = options;
        _rng = new Random(seed);
        _etcd = new InMemoryEtcd(_clock);
        _routerClient = _etcd.Connect(Prefix);
        _adminClient = _etcd.Connect(Prefix);
        _net.Changed = Check;
        _sync = options.SynchronousMode ?? seed % 2 == 1;
        _strict = _sync && options.SynchronousMode is null && seed % 4 == 3;
        _quorum = _sync && (options.Quorum ?? seed % 8 is 1 or 7);
        _net.BecameWritable = server =>
        {
            if (LeaderKeyHolder() is { } holder && holder != server.Name)
            {
                Violate(Invariant.NoPrimaryUnderAnotherLeader,
                    $"{server.Name} became a writable primary ({server}) while {holder} holds the leader key; {server.Name}'s agent: {Describe(_nodes.First(n => n.Pg == server))}");
            }

            if (!server.PrimaryMark)
            {
                Violate(Invariant.MarkedBeforeWritable, $"{server.Name} became a writable primary ({server}) without the mark that it ran as one");
            }

            CheckNoSynchronousCommitLost(server);
        };
        _net.TimelineReused = (promoted, timeline, owner) => Violate(Invariant.TimelineIdNotReused,
            $"{promoted.Name} promoted to timeline {timeline}, which {owner.Name} ({owner}) already has: a different history under the same id");
        var dcs = new DynamicConfig { Ttl = 6, LoopWait = 1, RetryTimeout = 2, MaximumLagOnFailover = 20, SynchronousMode = _sync, SynchronousModeStrict = _strict,
            SynchronousModeQuorum = _quorum, SynchronousNodeCount = _quorum && seed % 16 >= 8 ? 2 : 1 };
        _stats.SyncRuns = _sync ? 1 : 0;
        _stats.QuorumRuns = _quorum ? 1 : 0;
        for (var i = 1; i <= options.Nodes; i++)
        {
            var name = $"node{i}";
            var host = $"10.0.0.{i}";
            var node = new Node(name, new HostPort(host, 5432), new HostPort(host, 8008))
            {
                BootDue = Seconds(_rng.NextDouble()),
            };
            node.Config = new StewardConfig
            {
                Scope = "sim",
                Name = name,
                RestApi = new RestApiConfig { Listen = node.ApiAddress, ConnectAddress = node.ApiAddress },
                Etcd3 = new Etcd3Config { Endpoints = ["http://10.0.0.100:2379"] },
                Bootstrap = new BootstrapConfig { Dcs = dcs },
                Postgresql = new PostgresqlConfig
                {
                    Listen = node.PgAddress,
                    ConnectAddress = node.PgAddress,
                    DataDir = $"/nonexistent/steward-sim/{name}",
                    Pgpass = $"/nonexistent/steward-sim/pgpass.{name}",
                    Authentication = new PostgresAuthentication
                    {
                        Superuser = new Credentials("postgres", null),
                        Replication = new Credentials("replicator", null),
                    },
                },
            };
            node.Pg = _net.Add(name, node.PgAddress);
            _nodes.Add(node);
        }

        _clientDue = Seconds(1);
        _replicationDue = Seconds(0.1);
    }

    public SimResult Run()
    {
        for (_step = 0; _step < _o.Steps && _violation is null; _step++)
        {
            BeginStep();
            if (_rng.NextDouble() < _o.FaultRate)
            {
                _stats.Faults++;
                Fault();
            }
            else
            {
                Progress();
            }

            WakeOnChange();
            Check();
            EndStep();
        }

        _stats.Steps = _step;
        _stats.SimTime = _clock.Elapsed;
        _stats.Promotions = _nodes.Sum(n => n.Pg.Promotions);
        _stats.FenceKills = _nodes.Sum(n => n.FenceKills + (n.Proc?.Fence.Kills ?? 0));
        _stats.SupervisorKills = _nodes.Sum(n => n.Supervisors.Sum(s => s.Kills));
        _stats.LostAcks = CountLostAcks();
        if (_violation is not null)
        {
            Note($"VIOLATION: {_violation}");
            EndStep();
        }

        return new SimResult(_seed, _o, _violation, [.. _trace.SelectMany(b => b)], _stats);
    }

    // ------------------------------------------------------------------ scheduled events

    private void Progress()
    {
        var due = long.MaxValue;
        Action? next = null;

        void Consider(long when, Action action)
        {
            if (when >= 0 && when < due)
            {
                due = when;
                next = action;
            }
        }

        foreach (var node in _nodes)
        {
            if (node.Proc is not { } p)
            {
                Consider(node.BootDue, () => Boot(node));
            }
            else if (p.Gate.State == ProcessState.Frozen)
            {
                Consider(p.ThawDue, () => Thaw(node, p));
            }
            else if (p.Exiting)
            {
                // ShutdownAsync waits for the cycle gate; started only once the cycle is over, so that no continuation
                // is handed to the thread pool (SemaphoreSlim runs its waiters' continuations asynchronously).
                if (p.Cycle is null && !p.ShuttingDown)
                {
                    Consider(_clock.Now, () => Shutdown(node, p));
                }
            }
            else if (p.Booted)
            {
                if (p.Keeper is null)
                {
                    Consider(p.KeeperDue, () => StartKeeper(node, p));
                }

                if (p.Cycle is null)
                {
                    Consider(p.CycleDue, () => StartCycle(node, p));
                }
            }

            Consider(node.PartitionUntil, () => HealPartition(node));
        }

        Consider(_clientDue, ClientWrite);
        Consider(_replicationDue, Replicate);
        Consider(_outageUntil, EndOutage);
        Consider(_routerPartitionUntil, HealRouter);
        _clock.AdvanceTo(Math.Max(_clock.Now, due));
        next!();
    }

    private void Boot(Node node)
    {
        node.BootDue = -1;
        var gate = new ProcessGate();
        var clock = new ProcessClock(_clock, gate, () => node.WallOffset);
        var client = _etcd.Connect(Prefix);
        client.Partitioned = node.PartitionUntil >= 0;
        var store = new FaultyStore(client, clock);
        var number = ++node.Incarnations;
        var supervisor = new FenceSupervisorModel(_clock, node.Pg, () => TimeSpan.FromMilliseconds(_rng.Next(0, 100)))
        {
            Disabled = _o.FenceDisabled,
            Log = _o.Trace ? m => Note($"[{node.Name}] {m}") : null,
        };
        node.Supervisors.Add(supervisor);
        var fence = new FakeFence(node.Pg, supervisor) { Disabled = _o.FenceDisabled };
        node.Pg.Clock = clock;
        ILoggerFactory loggers = _o.Trace
            ? new CapturingLoggerFactory((level, category, message) => Note($"[{node.Name}#{number}] {message}"))
            : NullLoggerFactory.Instance;
        IPostgresControl pg = _o.SkipHistoryFiles ? new WithoutHistoryFiles(node.Pg)
            : _o.StandbysLookCaughtUp ? new StandbysLookCaughtUp(node.Pg)
            : node.Pg;
        IClusterStore agentStore = _o.LeaderKeyNotAtomic ? new LeaderKeyNotAtomic(store) : store;
        var agent = new NodeAgent(node.Config, agentStore, pg, new FakePeers(ReachableAgentAt), fence, clock, loggers, node.Sessions);
        var p = new Proc(number, gate, client, store, fence, agent);
        node.Proc = p;
        Note($"{node.Name}: agent process #{number} starts");
        Track(BootAsync(node, p), () => { });
    }

    /// <summary>NodeHost's start-up: wait for etcd (nothing touched), renew the lease once, then run the loops.</summary>
    private async Task BootAsync(Node node, Proc p)
    {
        try
        {
            await p.Store.LoadAsync(p.Cts.Token).ConfigureAwait(false);
        }
        catch (StoreUnavailableException)
        {
            Exit(node, p, "etcd is not reachable at start-up", TimeSpan.FromSeconds(1));
            return;
        }

        try
        {
            await p.Agent.Lease.RenewAsync(p.Cts.Token).ConfigureAwait(false);
        }
        catch (StoreUnavailableException)
        {
            // NodeHost: "etcd became unreachable during start-up", then the graceful shutdown, then exit.
            try
            {
                await p.Agent.ShutdownAsync(p.Cts.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is PostgresException or StoreUnavailableException)
            {
                Note($"{node.Name}: shutdown failed: {e.Message}");
            }

            Exit(node, p, "etcd became unreachable during start-up", TimeSpan.FromSeconds(5));
            return;
        }

        if (node.Proc == p)
        {
            p.Booted = true;
            p.CycleDue = _clock.Now;
            p.KeeperDue = _clock.Now;
        }
    }

    private void StartCycle(Node node, Proc p)
    {
        Note($"{node.Name}: HA cycle");
        p.SeenRevision = _etcd.Revision;
        var cycle = p.Agent.RunCycleAsync(p.Cts.Token);
        p.Cycle = cycle;
        Track(cycle, () =>
        {
            p.Cycle = null;
            if (node.Proc != p)
            {
                return;
            }

            p.CycleDue = _clock.Now + TimeSpan.FromSeconds(Math.Max(1, p.Agent.Settings.LoopWait)).Ticks;
            if (p.Agent.FatalReason is { } reason)
            {
                _stats.FatalExits++;
                Exit(node, p, $"fatal: {reason}", TimeSpan.FromSeconds(5));
            }
        });
    }

    private void StartKeeper(Node node, Proc p)
    {
        Note($"{node.Name}: lease renewal");
        var turn = p.Agent.Lease.StepAsync(p.Cts.Token);
        p.Keeper = turn;
        Track(turn, () =>
        {
            p.Keeper = null;
            if (node.Proc == p)
            {
                p.KeeperDue = _clock.Now + p.Agent.Lease.NextPeriod().Ticks;
            }
        });
    }

    /// <summary>The agent's loop also starts a cycle when its etcd watch reports a change.</summary>
    private void WakeOnChange()
    {
        var revision = _etcd.Revision;
        foreach (var node in _nodes)
        {
            if (node.Proc is { Booted: true, Exiting: false, Cycle: null } p && p.Gate.State == ProcessState.Running
                && revision != p.SeenRevision && node.PartitionUntil < 0 && _etcd.Available)
            {
                p.CycleDue = Math.Min(p.CycleDue, _clock.Now + TimeSpan.FromMilliseconds(_rng.Next(1, 30)).Ticks);
            }
        }
    }

    private void ClientWrite()
    {
        _clientDue = _clock.Now + TimeSpan.FromMilliseconds(_rng.Next(50, 400)).Ticks;
        var writeId = ++_writeId;
        _stats.Writes++;

        // The router's view: its watch delivers every change at once while it can reach etcd (a fresh view); cut off
        // from etcd it keeps the table it has, as the real router does today (no staleness guard).
        var fresh = false;
        if (_routerPartitionUntil < 0)
        {
            try
            {
                _table = RoutingTable.From(_routerClient.LoadAsync(CancellationToken.None).GetAwaiter().GetResult(), 20, _clock.GetUtcNow());
                fresh = true;
            }
            catch (StoreUnavailableException)
            {
            }
        }

        if (_table.Writer is not { } writer)
        {
            _stats.NoWriter++;
            Note($"client: write {writeId}: no writer ({_table.Reason})");
            return;
        }

        var holder = LeaderKeyHolder();
        if (fresh && writer.Name != holder)
        {
            Violate(Invariant.RouterWritesToLeader, $"the router sent write {writeId} to {writer.Name} on a fresh view, but the leader key is {holder ?? "free"}");
            return;
        }

        var target = _net.Find(writer.Address);
        if (target?.Write(writeId) is not { } record)
        {
            _stats.Refused++;
            Note($"client: write {writeId} to {writer.Name}{(fresh ? "" : " (stale view)")}: refused ({target})");
            return;
        }

        if (target.CommitsWait)
        {
            // Committed locally; the client hears back once the synchronous standbys have it (ResolvePendingCommits).
            _pending.Add(new PendingCommit(writeId, target, record, target.Pid, fresh));
            Note($"client: write {writeId} to {target.Name} at tl{record.Timeline} lsn{record.Lsn} waits for [{string.Join(", ", target.SyncStandbyList)}]");
            ResolvePendingCommits();
            return;
        }

        Acknowledge(writeId, target, record, fresh, []);
    }

    private void Acknowledge(long writeId, FakePostgres target, WalRecord record, bool fresh, IReadOnlyList<string> acknowledgers)
    {
        _stats.Acks++;
        _acks[writeId] = (target.Name, record.Id);
        Note($"client: write {writeId} acknowledged by {target.Name} at tl{record.Timeline} lsn{record.Lsn}{(fresh ? "" : " (stale view)")}"
             + (acknowledgers.Count > 0 ? $", synchronously by [{string.Join(", ", acknowledgers)}]" : ""));
        var holder = LeaderKeyHolder();
        if (holder != target.Name)
        {
            Violate(Invariant.RouterWritesToLeader,
                $"write {writeId} was acknowledged by {target.Name} (tl{record.Timeline} lsn{record.Lsn}) while the leader key is {holder ?? "free"}");
        }

        if (acknowledgers.Count == 0)
        {
            return;
        }

        _stats.SyncAcks++;
        _syncAcks.Add(new SyncAck(writeId, record, acknowledgers));
        var raw = _etcd.GetRaw(Prefix + ClusterKeys.Sync);
        var key = raw is null ? null : System.Text.Json.JsonSerializer.Deserialize<SyncState>(raw);
        if (key?.Leader != target.Name || key.Standbys.Count(s => !acknowledgers.Contains(s)) > (key.Quorum ?? 0))
        {
            Violate(Invariant.SyncKeyStandbysHoldAcknowledgedCommits,
                $"write {writeId} was acknowledged by {target.Name} after [{string.Join(", ", acknowledgers)}] had it, but the sync key is "
                + (key is null ? "absent" : $"leader {key.Leader}, {(key.Quorum is { } q ? $"quorum {q} of voters" : "standbys")} [{string.Join(", ", key.Standbys)}]"));
        }
    }

    /// <summary>
    /// PostgreSQL's synchronous commit: a waiting commit returns once every standby synchronous_standby_names names (as it
    /// is now) has flushed it, or at once when it names none (no longer waiting). A primary that died or was demoted never
    /// answers: the outcome stays unknown to the client (neither acknowledged nor lost).
    /// </summary>
    private void ResolvePendingCommits()
    {
        for (var i = _pending.Count - 1; i >= 0; i--)
        {
            var p = _pending[i];
            if (!p.Server.AcceptsWrites || p.Server.Pid != p.Pid)
            {
                _pending.RemoveAt(i);
                continue;
            }

            var names = p.Server.SyncStandbyList;
            if (!p.Server.CommitsWait)
            {
                _pending.RemoveAt(i);
                Acknowledge(p.WriteId, p.Server, p.Record, p.Fresh, []);
                continue;
            }

            // FIRST n over n names: all of them; ANY k: any k of them (the acknowledgers are the ones that have it).
            var have = names.Where(n => _nodes.FirstOrDefault(x => x.Name == n)?.Pg is { } sb && sb.StreamingFrom == p.Server && FakePostgres.Holds(sb, p.Record)).ToList();
            if (names.Count > 0 && have.Count >= (p.Server.SyncStandbyQuorum ? p.Server.SyncStandbyCount : names.Count))
            {
                _pending.RemoveAt(i);
                Acknowledge(p.WriteId, p.Server, p.Record, p.Fresh, have);
            }
        }
    }

    /// <summary>A standby the sync key names that it did not name before holds every synchronously acknowledged commit its leader holds.</summary>
    private void CheckSyncKeyJoiners()
    {
        var raw = _etcd.GetRaw(Prefix + ClusterKeys.Sync);
        if (raw == _lastSyncKey)
        {
            return;
        }

        var before = _lastSyncKey is null ? null : System.Text.Json.JsonSerializer.Deserialize<SyncState>(_lastSyncKey);
        _lastSyncKey = raw;
        var key = raw is null ? null : System.Text.Json.JsonSerializer.Deserialize<SyncState>(raw);
        if (key is null || _nodes.FirstOrDefault(n => n.Name == key.Leader) is not { } leader)
        {
            return;
        }

        if (key.Quorum is { } quorum)
        {
            // Quorum commit: every acknowledged commit (that the leader holds) is missing from at most `quorum` voters.
            foreach (var ack in _syncAcks.Where(a => FakePostgres.Holds(leader.Pg, a.Record)))
            {
                var lacking = key.Standbys.Where(s => _nodes.FirstOrDefault(n => n.Name == s) is not { } v || !FakePostgres.Holds(v.Pg, ack.Record)).ToList();
                if (lacking.Count > quorum)
                {
                    Violate(Invariant.SyncKeyStandbysHoldAcknowledgedCommits,
                        $"the sync key now says quorum {quorum} of voters [{string.Join(", ", key.Standbys)}] for leader {key.Leader} ({leader.Pg}), but "
                        + $"[{string.Join(", ", lacking)}] lack write {ack.WriteId} (tl{ack.Record.Timeline} lsn{ack.Record.Lsn}), acknowledged synchronously by [{string.Join(", ", ack.Acknowledgers)}]");
                    return;
                }
            }

            return;
        }

        foreach (var name in key.Standbys.Where(s => before is null || before.Leader != key.Leader || !before.IsStandby(s)))
        {
            if (_nodes.FirstOrDefault(n => n.Name == name) is not { } standby)
            {
                continue;
            }

            foreach (var ack in _syncAcks)
            {
                if (FakePostgres.Holds(leader.Pg, ack.Record) && !FakePostgres.Holds(standby.Pg, ack.Record))
                {
                    Violate(Invariant.SyncKeyStandbysHoldAcknowledgedCommits,
                        $"the sync key now names {name} ({standby.Pg}) as a synchronous standby of {key.Leader} ({leader.Pg}), but {name} lacks write {ack.WriteId} "
                        + $"(tl{ack.Record.Timeline} lsn{ack.Record.Lsn}), acknowledged synchronously by [{string.Join(", ", ack.Acknowledgers)}]");
                    return;
                }
            }
        }
    }

    private void CheckNoSynchronousCommitLost(FakePostgres server)
    {
        // Not strict, and the key names no standby: the former leader was acknowledging commits alone, and the documented
        // trade-off (docs/synchronous.md) lets the healthiest replica take over rather than wait for it.
        var raw = _etcd.GetRaw(Prefix + ClusterKeys.Sync);
        var key = raw is null ? null : System.Text.Json.JsonSerializer.Deserialize<SyncState>(raw);
        if (!_strict && (key is null || key.Standbys.Count == 0))
        {
            // Lost to the trade-off, once: not charged again when this server later restarts as primary under a key that
            // names standbys.
            foreach (var ack in _syncAcks.Where(a => !FakePostgres.Holds(server, a.Record)).ToList())
            {
                _syncAcks.Remove(ack);
                _stats.SyncLostWhileAsynchronous++;
                Note($"write {ack.WriteId} (acknowledged synchronously by [{string.Join(", ", ack.Acknowledgers)}]) is lost: {server.Name} took over while the sync key named no standby (not strict)");
            }

            return;
        }

        foreach (var ack in _syncAcks.ToList())
        {
            if (FakePostgres.Holds(server, ack.Record))
            {
                continue;
            }

            // Every standby that acknowledged it is down, or its agent is, or it is cut off from etcd: it cannot take over,
            // and the commit is lost only to a second fault. Otherwise the election should have waited for it.
            var holders = ack.Acknowledgers.Select(a => _nodes.First(n => n.Name == a))
                .Where(n => n.Pg.Running && FakePostgres.Holds(n.Pg, ack.Record) && n.Proc is { Booted: true, Exiting: false } p
                            && p.Gate.State == ProcessState.Running && n.PartitionUntil < 0)
                .ToList();
            if (holders.Count == 0)
            {
                // Lost to two faults at once (this promotion while every holder was away): counted, and not charged again
                // to a later promotion.
                _syncAcks.Remove(ack);
                _stats.SyncLostToTwoFaults++;
                Note($"write {ack.WriteId} (acknowledged synchronously by [{string.Join(", ", ack.Acknowledgers)}]) is lost: {server.Name} took over while every standby holding it was down or cut off");
                continue;
            }

            {
                Violate(Invariant.NoSynchronousCommitLost,
                    $"{server.Name} became a writable primary ({server}) without write {ack.WriteId} (tl{ack.Record.Timeline} lsn{ack.Record.Lsn}), "
                    + $"acknowledged synchronously by [{string.Join(", ", ack.Acknowledgers)}]; {string.Join(", ", holders.Select(h => h.Name))} still hold it and run");
                return;
            }
        }
    }

    private sealed record PendingCommit(long WriteId, FakePostgres Server, WalRecord Record, int? Pid, bool Fresh);

    private sealed record SyncAck(long WriteId, WalRecord Record, IReadOnlyList<string> Acknowledgers);

    private void Replicate()
    {
        _replicationDue = _clock.Now + TimeSpan.FromMilliseconds(_rng.Next(50, 300)).Ticks;
        foreach (var node in _nodes)
        {
            node.Pg.Replicate(_rng.Next(1, 30));
        }
    }

    private string? LeaderKeyHolder() => _etcd.GetRaw(Prefix + ClusterKeys.Leader);

    private NodeAgent? ReachableAgentAt(HostPort api) =>
        _nodes.FirstOrDefault(n => n.ApiAddress == api)?.Proc is { } p && p.Gate.State == ProcessState.Running ? p.Agent : null;

    // ------------------------------------------------------------------ faults

    private void Fault()
    {
        var node = _nodes[_rng.Next(_nodes.Count)];
        var p = node.Proc;
        switch (_rng.Next(24))
        {
            case 0 or 1 or 2:
                Note($"FAULT {node.Name}: PostgreSQL crashes ({node.Pg})");
                node.Pg.Kill();
                break;

            case 3 or 4:
                if (p is null)
                {
                    goto default;
                }

                _stats.AgentKills++;
                Exit(node, p, "kill -9 of the agent (PostgreSQL and the fence supervisor stay)", Between(1, 20));
                break;

            case 5:
                if (p is not { Booted: true, Exiting: false } || p.Gate.State != ProcessState.Running)
                {
                    goto default;
                }

                Note($"FAULT {node.Name}: SIGTERM to the agent (graceful shutdown once the cycle under way ends)");
                p.Exiting = true; // the loops stop; the shutdown waits for the cycle (see Progress)
                break;

            case 6 or 7:
                if (p is null || p.Gate.State != ProcessState.Running)
                {
                    goto default;
                }

                _stats.Freezes++;
                var frozenFor = Between(0.2, 20);
                Note($"FAULT {node.Name}: SIGSTOP of the agent for {Secs(frozenFor)}");
                p.Gate.Freeze();
                p.ThawDue = _clock.Now + frozenFor.Ticks;
                break;

            case 8 or 9 or 10:
            {
                string?[] ops = [null, "inspect", "start", "stop", "promote", "checkpoint", "rewind", "clone", "follow", "history"];
                var op = ops[_rng.Next(ops.Length)];
                var fault = new PgFault(SlowDelay(), _rng.Next(2) == 0, Op: op);
                Note($"FAULT {node.Name}: the next PostgreSQL step{(op is null ? "" : $" '{op}'")} is slow ({Secs(fault.Delay)}, {(fault.EffectFirst ? "slow answer" : "slow request")})");
                node.Pg.InjectFault(fault);
                break;
            }

            case 11:
            {
                string?[] ops = [null, "start", "stop", "promote", "rewind", "clone", "follow", "checkpoint"];
                var op = ops[_rng.Next(ops.Length)];
                Note($"FAULT {node.Name}: the next PostgreSQL step{(op is null ? "" : $" '{op}'")} fails");
                node.Pg.InjectFault(new PgFault(TimeSpan.FromMilliseconds(_rng.Next(0, 500)), false, Fail: true, Op: op));
                break;
            }

            case 12 or 13:
                if (p is null)
                {
                    goto default;
                }

                for (var n = _rng.Next(1, 4); n > 0; n--)
                {
                    var fault = new StoreFault(SlowDelay(), _rng.Next(2) == 0);
                    Note($"FAULT {node.Name}: a call to etcd is slow ({Secs(fault.Delay)}, {(fault.EffectFirst ? "slow answer" : "slow request")})");
                    p.Store.InjectFault(fault);
                }

                break;

            case 14 or 15:
                if (_outageUntil >= 0)
                {
                    goto default;
                }

                var outage = Between(0.5, 20);
                _outageUntil = _clock.Now + outage.Ticks;
                _quorumLost = _rng.Next(2) == 0;
                Note($"FAULT etcd {(_quorumLost ? "loses quorum (leases do not expire)" : "is cut off from every client (leases run out)")} for {Secs(outage)}");
                if (_quorumLost)
                {
                    _etcd.LoseQuorum();
                }
                else
                {
                    _etcd.Available = false;
                }

                break;

            case 16 or 17:
                if (node.PartitionUntil >= 0)
                {
                    goto default;
                }

                var partition = Between(0.5, 20);
                node.PartitionUntil = _clock.Now + partition.Ticks;
                Note($"FAULT {node.Name}: partitioned from etcd for {Secs(partition)}");
                if (p is not null)
                {
                    p.Client.Partitioned = true;
                }

                break;

            case 18:
                if (_routerPartitionUntil >= 0)
                {
                    goto default;
                }

                var cut = Between(0.5, 20);
                _routerPartitionUntil = _clock.Now + cut.Ticks;
                Note($"FAULT router: cut off from etcd for {Secs(cut)} (its view goes stale)");
                break;

            case 19:
            {
                var step = TimeSpan.FromSeconds(Math.Exp(_rng.NextDouble() * Math.Log(7200))) * (_rng.Next(2) == 0 ? -1 : 1);
                node.WallOffset += step;
                Note($"FAULT {node.Name}: the wall clock steps by {Secs(step)} (monotonic clock unchanged)");
                break;
            }

            case 20 or 21:
            {
                var stall = Between(2, 12);
                Note($"FAULT every agent stalls for {Secs(stall)} (etcd, PostgreSQL and the fence supervisors keep running)");
                var stalled = _nodes.Select(n => n.Proc?.Gate).OfType<ProcessGate>().Where(g => g.State == ProcessState.Running).ToList();
                stalled.ForEach(g => g.Freeze());
                _clock.AdvanceTo(_clock.Now + stall.Ticks);
                stalled.ForEach(g => g.Thaw());
                break;
            }

            case 22:
            {
                if (LeaderKeyHolder() is not { } holder)
                {
                    goto default;
                }

                var others = _nodes.Where(n => n.Name != holder).Select(n => n.Name).ToList();
                var candidate = _rng.Next(3) == 0 ? null : others[_rng.Next(others.Count)];
                Note($"FAULT operator: switchover from {holder} to {candidate ?? "any"}");
                try
                {
                    _adminClient.TryCreateFailoverAsync(new FailoverRequest { Leader = holder, Candidate = candidate }, CancellationToken.None).GetAwaiter().GetResult();
                }
                catch (StoreUnavailableException e)
                {
                    Note($"operator: {e.Message}");
                }

                break;
            }

            default:
                Note("FAULT none applicable: time passes");
                _clock.Advance(TimeSpan.FromMilliseconds(_rng.Next(10, 500)));
                break;
        }
    }

    private void Shutdown(Node node, Proc p)
    {
        Note($"{node.Name}: graceful shutdown");
        p.ShuttingDown = true;
        Track(p.Agent.ShutdownAsync(p.Cts.Token), () => Exit(node, p, "graceful shutdown finished", Between(1, 10)));
    }

    private void Exit(Node node, Proc p, string why, TimeSpan restartAfter)
    {
        if (node.Proc != p)
        {
            return;
        }

        Note($"{node.Name}: agent process #{p.Number} exits: {why}; restarts in {Secs(restartAfter)}");
        p.Gate.Kill();
        p.Fence.Supervisor.AgentDied();
        node.FenceKills += p.Fence.Kills;
        _ = p.Client.DisposeAsync();
        node.Proc = null;
        node.BootDue = _clock.Now + restartAfter.Ticks;
    }

    private void Thaw(Node node, Proc p)
    {
        Note($"{node.Name}: SIGCONT of the agent");
        p.ThawDue = -1;
        p.Gate.Thaw();
    }

    private void HealPartition(Node node)
    {
        Note($"{node.Name}: partition from etcd healed");
        node.PartitionUntil = -1;
        if (node.Proc is { } p)
        {
            p.Client.Partitioned = false;
        }
    }

    private void EndOutage()
    {
        Note(_quorumLost ? "etcd regains quorum (every lease renewed for a full ttl)" : "etcd reachable again");
        _outageUntil = -1;
        if (_quorumLost)
        {
            _etcd.RegainQuorum();
        }
        else
        {
            _etcd.Available = true;
        }
    }

    private void HealRouter()
    {
        Note("router: reaches etcd again");
        _routerPartitionUntil = -1;
    }

    // ------------------------------------------------------------------ invariants

    private void Check()
    {
        if (Environment.CurrentManagedThreadId != _thread)
        {
            // A continuation ran on another thread: the run is no longer deterministic (nor safe). Fail loudly.
            throw new InvalidOperationException($"seed {_seed}: simulation code ran off the simulation thread at step {_step}");
        }

        if (_violation is not null)
        {
            return;
        }

        if (_pending.Count > 0)
        {
            ResolvePendingCommits();
        }

        CheckSyncKeyJoiners();
        if (_violation is not null)
        {
            return;
        }

        FakePostgres? primary = null;
        foreach (var node in _nodes)
        {
            if (!node.Pg.AcceptsWrites)
            {
                continue;
            }

            if (primary is not null)
            {
                Violate(Invariant.OnePrimary, $"{primary.Name} ({primary}) and {node.Name} ({node.Pg}) both run as primaries; leader key: {LeaderKeyHolder() ?? "free"}");
                return;
            }

            primary = node.Pg;
        }

        foreach (var node in _nodes)
        {
            if (node.Pg.StreamingFrom is { } up && !node.Pg.IsIdentityPrefixOf(up))
            {
                Violate(Invariant.NoDivergedStreaming,
                    $"{node.Name} ({node.Pg}) streams from {up.Name} ({up}) but their WALs differ from LSN {node.Pg.FirstDifference(up)}");
                return;
            }
        }
    }

    private void Violate(Invariant invariant, string message)
    {
        _violation ??= new Violation(invariant, message, _step, _clock.Elapsed);
    }

    private long CountLostAcks()
    {
        var final = _nodes.Select(n => n.Pg).Where(p => p.AcceptsWrites).FirstOrDefault()
                    ?? _nodes.Select(n => n.Pg).OrderByDescending(p => p.LastTimeline).ThenByDescending(p => p.EndLsn).First();
        var ids = final.Wal.Select(r => r.Id).ToHashSet();
        return _acks.Values.Count(a => !ids.Contains(a.Id));
    }

    // ------------------------------------------------------------------ trace

    private void BeginStep()
    {
        if (_o.Trace)
        {
            _block = [$"#{_step} t={Secs(_clock.Elapsed)}"];
        }
    }

    private void EndStep()
    {
        if (_block is null)
        {
            return;
        }

        var holder = LeaderKeyHolder();
        _block.Add($"    state: leader key={holder ?? "free"}{(_etcd.Available ? "" : " (etcd down)")}; router writer={_table.Writer?.Name ?? "none"}{(_routerPartitionUntil >= 0 ? " (stale)" : "")}");
        foreach (var node in _nodes)
        {
            _block.Add($"    {node.Name}: pg {node.Pg}; agent {Describe(node)}{(node.PartitionUntil >= 0 ? "; cut off from etcd" : "")}{(node.WallOffset != TimeSpan.Zero ? $"; wall clock {Secs(node.WallOffset)}" : "")}");
        }

        _trace.Enqueue(_block);
        while (_trace.Count > _o.TraceSteps)
        {
            _trace.Dequeue();
        }

        _block = null;
    }

    private string Describe(Node node)
    {
        if (node.Proc is not { } p)
        {
            return $"down (restart at {Secs(TimeSpan.FromTicks(node.BootDue))})";
        }

        var fence = p.Fence.Armed
            ? $"armed, deadline {(p.Fence.Deadline is { } d ? Secs(TimeSpan.FromTicks(d - _clock.Now)) : "none")}"
            : "disarmed";
        var busy = (p.Cycle is null ? "" : " in a cycle") + (p.Keeper is null ? "" : " renewing");
        return $"#{p.Number} {p.Gate.State.ToString().ToLowerInvariant()}{busy}; lease {p.Client.LeaseId:x}; fence {fence}";
    }

    private void Note(string line) => _block?.Add($"  {Secs(_clock.Elapsed)} {line}");

    private static string Secs(TimeSpan t) => t.TotalSeconds.ToString("0.000", CultureInfo.InvariantCulture) + "s";

    // ------------------------------------------------------------------ helpers

    private static long Seconds(double s) => TimeSpan.FromSeconds(s).Ticks;

    private TimeSpan Between(double min, double max) => TimeSpan.FromSeconds(min + _rng.NextDouble() * (max - min));

    private TimeSpan SlowDelay() => _rng.NextDouble() switch
    {
        < 0.6 => Between(0.1, 2),
        < 0.9 => Between(2, 10),
        _ => Between(10, 60),
    };

    private static void Track(Task task, Action done)
    {
        if (task.IsCompleted)
        {
            done();
            return;
        }

        task.ContinueWith(_ => done(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private sealed class Node(string name, HostPort pgAddress, HostPort apiAddress)
    {
        public string Name { get; } = name;
        public HostPort PgAddress { get; } = pgAddress;
        public HostPort ApiAddress { get; } = apiAddress;
        public StewardConfig Config { get; set; } = null!;
        public FakePostgres Pg { get; set; } = null!;
        /// <summary>The leases this member's agents were granted: survives agent restarts, as the file beside the data directory does.</summary>
        public Steward.Agent.SessionLedger Sessions { get; } = new(null);
        public TimeSpan WallOffset { get; set; }
        public Proc? Proc { get; set; }
        public long BootDue { get; set; } = -1;
        public long PartitionUntil { get; set; } = -1;
        public int Incarnations { get; set; }
        public int FenceKills { get; set; }
        public List<FenceSupervisorModel> Supervisors { get; } = [];
    }

    private sealed class Proc(int number, ProcessGate gate, InMemoryClusterStore client, FaultyStore store, FakeFence fence, NodeAgent agent)
    {
        public int Number { get; } = number;
        public ProcessGate Gate { get; } = gate;
        public InMemoryClusterStore Client { get; } = client;
        public FaultyStore Store { get; } = store;
        public FakeFence Fence { get; } = fence;
        public NodeAgent Agent { get; } = agent;
        public CancellationTokenSource Cts { get; } = new();
        public bool Booted { get; set; }
        public bool Exiting { get; set; }
        public bool ShuttingDown { get; set; }
        public Task? Cycle { get; set; }
        public Task? Keeper { get; set; }
        public long CycleDue { get; set; } = -1;
        public long KeeperDue { get; set; } = -1;
        public long ThawDue { get; set; } = -1;
        public long SeenRevision { get; set; } = -1;
    }
}
