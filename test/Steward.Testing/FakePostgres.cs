using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;

namespace Steward.Testing;

/// <summary>What a WAL record is: the bootstrap's first record, a client's write, a checkpoint, a promotion's end of recovery.</summary>
public enum WalKind { Init, Write, Checkpoint, Promote }

/// <summary>
/// One WAL record. <see cref="Id"/> is its identity (unique in the whole simulation, kept when the record is copied by
/// streaming, cloning or rewinding); PostgreSQL itself only knows (timeline, LSN), which is how two histories can look
/// alike to it and still differ. LSNs are dense: the record at index i of a server's WAL has LSN i + 1.
/// </summary>
public sealed record WalRecord(long Id, long Timeline, long Lsn, WalKind Kind, long WriteId);

/// <summary>The simulated network of PostgreSQL servers: finds a server by address; hands out ids.</summary>
public sealed class FakePgNetwork
{
    private readonly Dictionary<HostPort, FakePostgres> _servers = [];
    private long _recordId;
    private int _pid = 1000;
    private long _systemId = 7_000_000_000_000_000_000;

    public IReadOnlyCollection<FakePostgres> Servers => _servers.Values;

    /// <summary>Called after any server changed state (the simulation checks its invariants there).</summary>
    public Action? Changed { get; set; }

    /// <summary>
    /// Called when a promotion picks a timeline id that another server's WAL already has (safety rule 4 broken: from then
    /// on PostgreSQL cannot tell the two histories apart). Arguments: the promoted server, the timeline, the other server.
    /// </summary>
    public Action<FakePostgres, long, FakePostgres>? TimelineReused { get; set; }

    public FakePostgres Add(string name, HostPort address)
    {
        var server = new FakePostgres(this, name, address);
        _servers.Add(address, server);
        return server;
    }

    public FakePostgres? Find(HostPort? address) => address is not null && _servers.TryGetValue(address, out var s) ? s : null;

    internal long NextRecordId() => ++_recordId;

    internal int NextPid() => ++_pid;

    internal string NextSystemId() => (++_systemId).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Called when a server starts accepting writes (a start as primary, a promotion, a bootstrap), before <see cref="Changed"/>.</summary>
    public Action<FakePostgres>? BecameWritable { get; set; }

    internal void OnChanged()
    {
        foreach (var server in _servers.Values)
        {
            var writable = server.AcceptsWrites;
            if (writable && !server.WasWritable)
            {
                server.WasWritable = true;
                BecameWritable?.Invoke(server);
            }

            server.WasWritable = writable;
        }

        Changed?.Invoke();
    }
}

/// <summary>
/// A fault for the next PostgreSQL operation named <paramref name="Op"/> (null: any): slow (the effect at the call or at
/// the end of the wait) or failing after the wait. Operation names: inspect, initdb, clone, start, stop, follow, reload,
/// promote, rewind, aside, slots, history, checkpoint.
/// </summary>
public sealed record PgFault(TimeSpan Delay, bool EffectFirst, bool Fail = false, string? Op = null);

/// <summary>
/// One simulated PostgreSQL server behind <see cref="IPostgresControl"/>: a data directory (empty or initialized, with a
/// system id, <c>pg_control</c>'s state and checkpoint timeline, <c>standby.signal</c>, timeline history files), a
/// postmaster that runs or not as a primary or a standby, and a WAL of identified records so divergence is real.
/// <list type="bullet">
/// <item>A standby streams from its upstream only when PostgreSQL would let it: same system id, its timeline in the
/// upstream's history and its position not past the point where the upstream left that timeline (nor past the
/// upstream's end). That check knows timelines and LSNs only — as PostgreSQL does — while the invariant
/// <see cref="IsIdentityPrefixOf"/> compares the records themselves.</item>
/// <item>A promotion picks the timeline after the newest history file it can see (so the history files the agent writes
/// from the cluster's <c>history</c> key keep two promotions from reusing a timeline id), and writes its own.</item>
/// <item>pg_rewind finds the fork point from the timeline histories (ids and LSNs), keeps the target's WAL before it and
/// copies the source's after it; a clone copies the source's WAL.</item>
/// <item>Faults: <see cref="InjectFault"/> makes the next operations slow (the effect happens at the call or at the end
/// of the wait) or fail. The wait runs on <see cref="Clock"/>, the agent process's clock, so a frozen agent does not see
/// it end until thawed and a killed one never does.</item>
/// </list>
/// </summary>
public sealed class FakePostgres : IPostgresControl
{
    private readonly FakePgNetwork _net;
    private readonly List<PgFault> _faults = [];
    private List<WalRecord> _wal = [];
    private Dictionary<long, TimelineSwitch> _historyFiles = [];
    private List<WalRecord>? _checkedMine;
    private List<WalRecord>? _checkedTheirs;
    private int _checkedCount;

    internal FakePostgres(FakePgNetwork net, string name, HostPort address)
    {
        _net = net;
        Name = name;
        Address = address;
    }

    public string Name { get; }

    public HostPort Address { get; }

    /// <summary>The clock slow operations wait on: the calling agent process's (set when an agent process starts).</summary>
    public TimeProvider Clock { get; set; } = TimeProvider.System;

    public DataDirStatus DataDir { get; private set; }

    public string? SystemId { get; private set; }

    public string? ControlState { get; private set; }

    public bool StandbySignal { get; private set; }

    /// <summary>The durable "ran as a primary" mark beside the data directory (survives anything but the agent clearing it).</summary>
    public bool PrimaryMark { get; private set; }

    public bool Running { get; private set; }

    public int? Pid { get; private set; }

    /// <summary>Running as a primary (out of recovery).</summary>
    public bool IsPrimary { get; private set; }

    /// <summary><c>primary_conninfo</c>: where a standby streams from.</summary>
    public HostPort? Upstream { get; private set; }

    public IReadOnlyList<WalRecord> Wal => _wal;

    public long EndLsn => _wal.Count == 0 ? 0 : _wal[^1].Lsn;

    public long? LastTimeline => _wal.Count == 0 ? null : _wal[^1].Timeline;

    /// <summary>pg_control's checkpoint timeline: that of the last checkpoint (or bootstrap) record.</summary>
    public long? CheckpointTimeline
    {
        get
        {
            for (var i = _wal.Count - 1; i >= 0; i--)
            {
                if (_wal[i].Kind is WalKind.Checkpoint or WalKind.Init)
                {
                    return _wal[i].Timeline;
                }
            }

            return null;
        }
    }

    /// <summary>The postmaster accepts connections (false while it starts up: crash recovery, a slow start).</summary>
    public bool Ready { get; private set; }

    public bool AcceptsWrites => Running && Ready && IsPrimary;

    internal bool WasWritable { get; set; }

    /// <summary>How many times the postmaster was killed (crash, fence).</summary>
    public int Kills { get; private set; }

    /// <summary>Timelines this server promoted to.</summary>
    public int Promotions { get; private set; }

    public void InjectFault(PgFault fault) => _faults.Add(fault);

    public int PendingFaults => _faults.Count;

    /// <summary>The upstream this standby streams from right now, if PostgreSQL would let it (see the class comment).</summary>
    public FakePostgres? StreamingFrom =>
        Running && Ready && !IsPrimary && _net.Find(Upstream) is { } up && up != this && up.Running && up.Ready && up.SystemId == SystemId && Follows(up) ? up : null;

    private bool Follows(FakePostgres up)
    {
        if (_wal.Count == 0)
        {
            return false;
        }

        var last = _wal[^1];
        return up.EndOfTimeline(last.Timeline) is { } end && last.Lsn <= end;
    }

    /// <summary>The last LSN this server has on <paramref name="timeline"/> (its end for its current timeline); null if not in its history.</summary>
    private long? EndOfTimeline(long timeline)
    {
        for (var i = _wal.Count - 1; i >= 0; i--)
        {
            if (_wal[i].Timeline == timeline)
            {
                return i == _wal.Count - 1 ? EndLsn : _wal[i].Lsn;
            }
        }

        return null;
    }

    /// <summary>Invariant check: every record of this server is, by identity, the upstream's record at the same LSN.</summary>
    public bool IsIdentityPrefixOf(FakePostgres other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (_wal.Count > other._wal.Count)
        {
            return false;
        }

        // WALs only grow in place (a clone, rewind or new data directory makes a new list): what was checked against the
        // same two lists stays checked.
        var from = ReferenceEquals(_checkedMine, _wal) && ReferenceEquals(_checkedTheirs, other._wal) ? Math.Min(_checkedCount, _wal.Count) : 0;
        for (var i = from; i < _wal.Count; i++)
        {
            if (_wal[i].Id != other._wal[i].Id)
            {
                return false;
            }
        }

        (_checkedMine, _checkedTheirs, _checkedCount) = (_wal, other._wal, _wal.Count);
        return true;
    }

    /// <summary>The first LSN at which this server's WAL and <paramref name="other"/>'s differ by identity (null: one is a prefix of the other).</summary>
    public long? FirstDifference(FakePostgres other)
    {
        ArgumentNullException.ThrowIfNull(other);
        var n = Math.Min(_wal.Count, other._wal.Count);
        for (var i = 0; i < n; i++)
        {
            if (_wal[i].Id != other._wal[i].Id)
            {
                return i + 1;
            }
        }

        return null;
    }

    // ------------------------------------------------------------------ what the simulation does to it

    /// <summary>The postmaster dies (a crash, the OOM killer, the fence's SIGKILL). The data directory stays as it was.</summary>
    public bool Kill()
    {
        if (!Running)
        {
            return false;
        }

        Running = false;
        Ready = false;
        IsPrimary = false;
        Pid = null;
        Kills++;
        _net.OnChanged();
        return true;
    }

    /// <summary>A client's write: the record when this server accepts it, null otherwise.</summary>
    public WalRecord? Write(long writeId)
    {
        if (!AcceptsWrites)
        {
            return null;
        }

        var record = Append(WalKind.Write, LastTimeline!.Value, writeId);
        _net.OnChanged();
        return record;
    }

    /// <summary>Streams up to <paramref name="max"/> records from the upstream, when streaming. Returns how many.</summary>
    public int Replicate(int max)
    {
        if (StreamingFrom is not { } up || max <= 0)
        {
            return 0;
        }

        var copied = 0;
        while (copied < max && _wal.Count < up._wal.Count)
        {
            var record = up._wal[_wal.Count];
            _wal.Add(record);
            if (up._historyFiles.TryGetValue(record.Timeline, out var file))
            {
                _historyFiles.TryAdd(record.Timeline, file);
            }

            copied++;
        }

        if (copied > 0)
        {
            _net.OnChanged();
        }

        return copied;
    }

    public override string ToString()
    {
        if (DataDir != DataDirStatus.Initialized)
        {
            return "empty";
        }

        var role = !Running ? "down" : !Ready ? (IsPrimary ? "starting (primary)" : "starting") : IsPrimary ? "PRIMARY" : StreamingFrom is { } up ? $"standby<-{up.Name}" : "standby";
        return $"{role} tl{LastTimeline} lsn{EndLsn}";
    }

    // ------------------------------------------------------------------ IPostgresControl

    public Task<PgState> InspectAsync(CancellationToken ct) => Run("inspect", Inspect);

    private PgState Inspect()
    {
        if (DataDir != DataDirStatus.Initialized)
        {
            return new PgState { DataDir = DataDir };
        }

        var state = new PgState
        {
            DataDir = DataDir,
            SystemId = SystemId,
            ControlState = ControlState,
            ControlTimeline = CheckpointTimeline,
            StandbySignal = StandbySignal,
            PrimaryMark = PrimaryMark,
            Running = Running,
            PostmasterPid = Pid,
        };
        if (!Running || !Ready)
        {
            return state; // a postmaster that is starting up answers no query yet
        }

        state = state with { SynchronousStandbyNames = SyncStandbyNames ?? "", SynchronousStandbyNamesManaged = SyncStandbyNames is not null };
        if (IsPrimary)
        {
            var names = SyncStandbyList;
            var replication = _net.Servers
                .Where(s => s.StreamingFrom == this)
                .OrderBy(s => s.Name, StringComparer.Ordinal)
                .Select(s => new ReplicationConnection("replicator", s.Name, null, "streaming", names.Contains(s.Name) ? SyncStandbyQuorum ? "quorum" : "sync" : "async", s.EndLsn) { FlushLsn = s.EndLsn })
                .ToList();
            return state with { Accepting = true, InRecovery = false, Timeline = LastTimeline, WriteLsn = EndLsn, ServerVersion = 150000, Replication = replication };
        }

        var up = StreamingFrom;
        return state with
        {
            Accepting = true,
            InRecovery = true,
            Timeline = up is not null ? LastTimeline : CheckpointTimeline,
            ReceiveLsn = EndLsn,
            ReplayLsn = EndLsn,
            Streaming = up is not null,
            UpstreamHost = up?.Address.ToString(),
            ServerVersion = 150000,
        };
    }

    public Task ValidateDataDirAsync(CancellationToken ct) => Task.CompletedTask;

    public Task BootstrapAsync(IReadOnlyList<string> initdbOptions, DynamicConfig dynamic, CancellationToken ct) => Run("initdb", () =>
    {
        if (DataDir != DataDirStatus.Empty)
        {
            throw new PostgresException("initdb: the data directory is not empty");
        }

        DataDir = DataDirStatus.Initialized;
        SystemId = _net.NextSystemId();
        _wal = [];
        _historyFiles = [];
        Append(WalKind.Init, 1, 0);
        StandbySignal = false;
        StartPostmaster(primary: true);
        _net.OnChanged();
    });

    public Task CloneAsync(HostPort source, CancellationToken ct) => Run("clone", () =>
    {
        if (DataDir != DataDirStatus.Empty)
        {
            throw new PostgresException($"cannot clone into {Name}'s data directory: it is not empty");
        }

        if (_net.Find(source) is not { Running: true } src || src == this)
        {
            throw new PostgresException($"pg_basebackup from {source}: could not connect to the server");
        }

        DataDir = DataDirStatus.Initialized;
        SystemId = src.SystemId;
        _wal = [.. src._wal];
        _historyFiles = new Dictionary<long, TimelineSwitch>(src._historyFiles);
        ControlState = src.IsPrimary ? "in production" : "in archive recovery"; // pg_basebackup copies pg_control as it is
        StandbySignal = false;
        Upstream = null;
        _net.OnChanged();
    });

    public Task StartAsync(StartRole role, Upstream? upstream, DynamicConfig dynamic, CancellationToken ct)
    {
        // A slow start is a postmaster that is up at once (postmaster.pid, killable) but takes long to accept connections
        // (crash recovery): it is not the request that is late.
        var slow = _faults.FindIndex(f => f.Op is null or "start");
        if (slow < 0 || _faults[slow].Fail || _faults[slow].EffectFirst)
        {
            return Run("start", () => Start(role, upstream, ready: true));
        }

        var fault = _faults[slow];
        _faults.RemoveAt(slow);
        try
        {
            Start(role, upstream, ready: false);
        }
        catch (PostgresException e)
        {
            return Task.FromException(e);
        }

        var pid = Pid;
        return SimClock.Later(Clock, fault.Delay, () =>
        {
            if (!Running || Pid != pid)
            {
                throw new PostgresException($"pg_ctl start: the server on {Name} exited during start-up");
            }

            Ready = true;
            _net.OnChanged();
            return true;
        });
    }

    private void Start(StartRole role, Upstream? upstream, bool ready)
    {
        if (DataDir != DataDirStatus.Initialized)
        {
            throw new PostgresException($"pg_ctl start: {Name} has no data directory");
        }

        if (Running)
        {
            throw new PostgresException($"pg_ctl start: another server might be running in {Name}'s data directory");
        }

        if (role == StartRole.Replica)
        {
            StandbySignal = true;
            Upstream = upstream?.Address;
        }
        else
        {
            StandbySignal = false;
        }

        // Without standby.signal PostgreSQL ends recovery at the end of its WAL and runs as a primary on the same timeline.
        StartPostmaster(primary: !StandbySignal);
        Ready = ready;
        _net.OnChanged();
    }

    public Task StopAsync(StopMode mode, CancellationToken ct) => Run("stop", () =>
    {
        if (!Running)
        {
            return;
        }

        if (mode == StopMode.Fast)
        {
            if (IsPrimary)
            {
                Append(WalKind.Checkpoint, LastTimeline!.Value, 0); // the shutdown checkpoint
                ControlState = "shut down";

                // The walsenders stay until the standbys streaming from this server have all of it, shutdown checkpoint included.
                foreach (var standby in _net.Servers.Where(s => s.StreamingFrom == this))
                {
                    standby.Replicate(int.MaxValue);
                }
            }
            else
            {
                ControlState = "shut down in recovery";
            }
        }

        Running = false;
        Ready = false;
        IsPrimary = false;
        Pid = null;
        _net.OnChanged();
    });

    public Task FollowAsync(Upstream? upstream, CancellationToken ct) => Run("follow", () =>
    {
        RequireRunning("follow");
        StandbySignal = true;
        Upstream = upstream?.Address;
        _net.OnChanged();
    });

    public Task ReloadAsync(DynamicConfig dynamic, CancellationToken ct) => Run("reload", () => { });

    public Task PromoteAsync(bool checkpoint, CancellationToken ct) => Run("promote", () =>
    {
        RequireRunning("pg_promote()");
        if (IsPrimary)
        {
            throw new PostgresException("pg_promote(): recovery is not in progress");
        }

        // findNewestTimeLine: the newest of the consecutive history files after my timeline, plus one.
        var timeline = LastTimeline!.Value + 1;
        while (_historyFiles.ContainsKey(timeline))
        {
            timeline++;
        }

        var parent = LastTimeline.Value;
        if (_net.Servers.FirstOrDefault(other => other != this && other._wal.Any(r => r.Timeline == timeline)) is { } owner)
        {
            _net.TimelineReused?.Invoke(this, timeline, owner);
        }

        var record = Append(WalKind.Promote, timeline, 0);
        _historyFiles[timeline] = new TimelineSwitch(parent, record.Lsn, "promote");
        IsPrimary = true;
        StandbySignal = false;
        ControlState = "in production";
        Promotions++;
        if (checkpoint)
        {
            Append(WalKind.Checkpoint, timeline, 0);
        }

        _net.OnChanged();
    });

    public Task<bool> RewindAsync(HostPort source, CancellationToken ct) => Run("rewind", () =>
    {
        if (Running)
        {
            throw new PostgresException($"cannot pg_rewind {Name}: PostgreSQL is running");
        }

        if (_net.Find(source) is not { Running: true } src || src == this || src.SystemId != SystemId || _wal.Count == 0)
        {
            return false;
        }

        var fork = ForkPoint(src);
        if (fork > EndLsn)
        {
            return true; // "no rewind required"
        }

        // The target's blocks changed since the fork are replaced by the source's, and it replays the source's WAL.
        _wal = [.. _wal.Take((int)(fork - 1)), .. src._wal.Skip((int)(fork - 1))];
        foreach (var (timeline, file) in src._historyFiles)
        {
            _historyFiles.TryAdd(timeline, file);
        }

        ControlState = "in archive recovery";
        _net.OnChanged();
        return true;
    });

    /// <summary>
    /// pg_rewind's divergence point, from timeline ids and switch LSNs only: the first LSN after the last timeline both
    /// histories share, where either of them left it.
    /// </summary>
    private long ForkPoint(FakePostgres src)
    {
        var mine = Segments();
        var theirs = src.Segments();
        var common = 0;
        while (common < mine.Count && common < theirs.Count && mine[common].Timeline == theirs[common].Timeline && (common == 0 || mine[common].First == theirs[common].First))
        {
            common++;
        }

        if (common == 0)
        {
            return 1;
        }

        var myEnd = common < mine.Count ? mine[common].First - 1 : long.MaxValue;
        var theirEnd = common < theirs.Count ? theirs[common].First - 1 : long.MaxValue;
        var end = Math.Min(myEnd, theirEnd);
        return end == long.MaxValue ? EndLsn + 1 : end + 1; // on the same timeline: "no rewind required", whoever is ahead
    }

    private List<(long Timeline, long First)> Segments()
    {
        var segments = new List<(long, long)>();
        foreach (var r in _wal)
        {
            if (segments.Count == 0 || segments[^1].Item1 != r.Timeline)
            {
                segments.Add((r.Timeline, r.Lsn));
            }
        }

        return segments;
    }

    public Task<string> MoveDataDirAsideAsync(CancellationToken ct) => Run("aside", () =>
    {
        if (Running)
        {
            throw new PostgresException($"cannot move {Name}'s data directory aside: PostgreSQL is running");
        }

        DataDir = DataDirStatus.Empty;
        SystemId = null;
        ControlState = null;
        StandbySignal = false;
        Upstream = null;
        _wal = [];
        _historyFiles = [];
        _net.OnChanged();
        return $"/sim/{Name}.diverged";
    });

    public Task SyncReplicationSlotsAsync(IReadOnlyCollection<string> slotNames, CancellationToken ct, Func<string, bool>? mayDrop = null) => Run("slots", () => RequireRunning("sync slots"));

    public Task SetPrimaryMarkAsync(bool present, CancellationToken ct) => Run("mark", () => PrimaryMark = present);

    /// <summary>synchronous_standby_names as Steward's include file sets it (null: no file), kept with the data directory.</summary>
    public string? SyncStandbyNames { get; private set; }

    /// <summary>The standbys a commit on this primary waits for now (empty: none; see <see cref="CommitsWait"/>).</summary>
    public IReadOnlyList<string> SyncStandbyList => Steward.Core.Ha.SyncReplication.Parse(SyncStandbyNames, SyncStandbyNames is not null).Names;

    /// <summary><c>ANY k (…)</c>: a commit waits for any <see cref="SyncStandbyCount"/> of <see cref="SyncStandbyList"/>.</summary>
    public bool SyncStandbyQuorum => Steward.Core.Ha.SyncReplication.Parse(SyncStandbyNames, SyncStandbyNames is not null).Quorum;

    /// <summary>How many of <see cref="SyncStandbyList"/> a commit waits for under <c>ANY k</c>.</summary>
    public int SyncStandbyCount => Steward.Core.Ha.SyncReplication.Parse(SyncStandbyNames, SyncStandbyNames is not null).Num;

    /// <summary>A commit waits (for <see cref="SyncStandbyList"/>, or for nobody that can ever answer: the strict placeholder).</summary>
    public bool CommitsWait => SyncStandbyList.Count > 0 || SyncStandbyNames == Steward.Core.Ha.SyncReplication.NobodyPlaceholder;

    public Task SetSynchronousStandbyNamesAsync(string? value, CancellationToken ct) => Run("syncnames", () =>
    {
        SyncStandbyNames = value;
        _net.OnChanged();
    });

    /// <summary>Whether <paramref name="standby"/> holds this server's record <paramref name="record"/> (same identity at the same LSN).</summary>
    public static bool Holds(FakePostgres standby, WalRecord record)
    {
        ArgumentNullException.ThrowIfNull(standby);
        ArgumentNullException.ThrowIfNull(record);
        return standby._wal.Count >= record.Lsn && standby._wal[(int)record.Lsn - 1].Id == record.Id;
    }

    public Task WriteMissingHistoryFilesAsync(IReadOnlyList<HistoryEntry> history, CancellationToken ct) => Run("history", () =>
    {
        ArgumentNullException.ThrowIfNull(history);
        // As the real one (TimelineHistory.Files): a file for every timeline id the history has used, gaps included.
        foreach (var entry in history.Where(e => e.CreatedTimeline > e.Timeline))
        {
            _historyFiles.TryAdd(entry.CreatedTimeline, new TimelineSwitch(entry.Timeline, entry.Lsn, entry.Reason));
        }

        for (var timeline = 2L; timeline <= HistoryEntry.MaxTimeline(history); timeline++)
        {
            _historyFiles.TryAdd(timeline, new TimelineSwitch(timeline - 1, 0, "timeline id reserved by the cluster history"));
        }
    });

    public Task<TimelineSwitch?> ReadLastTimelineSwitchAsync(long timeline, CancellationToken ct) =>
        Run("history", () => _historyFiles.TryGetValue(timeline, out var file) ? file : null);

    public Task CheckpointAsync(CancellationToken ct) => Run("checkpoint", () =>
    {
        RequireRunning("CHECKPOINT");
        if (IsPrimary)
        {
            Append(WalKind.Checkpoint, LastTimeline!.Value, 0);
            _net.OnChanged();
        }
    });

    // ------------------------------------------------------------------ helpers

    private void RequireRunning(string what)
    {
        if (!Running || !Ready)
        {
            throw new PostgresException($"{what} on {Name}: {(Running ? "the database system is starting up" : "the server is not running")}");
        }
    }

    private void StartPostmaster(bool primary)
    {
        Running = true;
        Ready = true;
        Pid = _net.NextPid();
        IsPrimary = primary;
        ControlState = primary ? "in production" : "in archive recovery";
    }

    private WalRecord Append(WalKind kind, long timeline, long writeId)
    {
        var record = new WalRecord(_net.NextRecordId(), timeline, EndLsn + 1, kind, writeId);
        _wal.Add(record);
        return record;
    }

    /// <summary>Operations that run over a connection to the postmaster (SQL): a late request cannot reach another postmaster.</summary>
    private static readonly HashSet<string> OverConnection = ["promote", "checkpoint", "slots"];

    private Task Run(string op, Action effect) => Run(op, () =>
    {
        effect();
        return true;
    });

    private Task<T> Run<T>(string op, Func<T> effect)
    {
        var index = _faults.FindIndex(f => f.Op is null || f.Op == op);
        if (index < 0)
        {
            try
            {
                return Task.FromResult(effect());
            }
            catch (PostgresException e)
            {
                return Task.FromException<T>(e);
            }
        }

        var fault = _faults[index];
        _faults.RemoveAt(index);
        if (OverConnection.Contains(op) && !fault.EffectFirst && Running)
        {
            // The request travels on a connection to this postmaster: if it is gone when the request arrives, so is the request.
            var pid = Pid;
            var inner = effect;
            effect = () => Pid == pid ? inner() : throw new PostgresException($"{op} on {Name}: server closed the connection unexpectedly");
        }

        return Faulty(fault, effect);
    }

    /// <summary>
    /// A slow or failing step. The server's side happens on the shared clock (a slow request reaches PostgreSQL late and
    /// takes effect then, whether the agent is running, frozen or dead); the answer reaches the agent through its process
    /// clock (a frozen agent hears it when thawed).
    /// </summary>
    private Task<T> Faulty<T>(PgFault fault, Func<T> effect)
    {
        if (fault.Fail)
        {
            return SimClock.Later<T>(Clock, fault.Delay, () => throw new PostgresException($"{Name}: injected failure"));
        }

        if (!fault.EffectFirst)
        {
            return SimClock.Later(Clock, fault.Delay, effect); // the request is slow
        }

        T result;
        try
        {
            result = effect();
        }
        catch (PostgresException e)
        {
            return Task.FromException<T>(e);
        }

        return SimClock.Later(Clock, fault.Delay, () => result); // the answer is slow
    }
}
