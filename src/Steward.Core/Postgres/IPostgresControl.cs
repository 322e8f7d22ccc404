using Steward.Core.Cluster;
using Steward.Core.Configuration;

namespace Steward.Core.Postgres;

/// <summary>
/// Converges the local PostgreSQL to what the HA cycle decided. Every PostgreSQL program (initdb, pg_ctl, postgres,
/// pg_basebackup, pg_rewind, pg_controldata) runs as the unprivileged OS user; files the agent writes into the data
/// directory belong to that user. Methods throw <see cref="PostgresException"/> with a message naming what failed
/// (program, exit code, last lines of its output).
/// </summary>
public interface IPostgresControl
{
    /// <summary>Reads the data directory, pg_controldata and (when running) the server. Never throws for a stopped server.</summary>
    Task<PgState> InspectAsync(CancellationToken ct);

    /// <summary>
    /// Refuses to go on (throws <see cref="PostgresException"/>) when the data directory cannot be used: owned by another
    /// user than the OS user, not a directory, not empty and not a PostgreSQL data directory. Changes nothing.
    /// </summary>
    Task ValidateDataDirAsync(CancellationToken ct);

    /// <summary>initdb with the given options, writes postgresql.conf / pg_hba.conf, starts as primary, creates the
    /// replication and rewind roles. Leaves PostgreSQL running as a primary.</summary>
    Task BootstrapAsync(IReadOnlyList<string> initdbOptions, DynamicConfig dynamic, CancellationToken ct);

    /// <summary>pg_basebackup from <paramref name="source"/> into the (empty) data directory, as the replication user.
    /// Does not start PostgreSQL.</summary>
    Task CloneAsync(HostPort source, CancellationToken ct);

    /// <summary>
    /// Writes postgresql.conf (dynamic + local parameters) and, for a replica, standby.signal and primary_conninfo /
    /// primary_slot_name pointing at <paramref name="upstream"/> (none: a standby with no upstream), then pg_ctl start -w.
    /// </summary>
    Task StartAsync(StartRole role, Upstream? upstream, DynamicConfig dynamic, CancellationToken ct);

    /// <summary>
    /// pg_ctl stop -m fast|immediate, waiting for the postmaster to exit. No-op when not running. Immediate is bounded: after
    /// about 10 s the postmaster's process group is killed (SIGKILL), so a hung or stopped server cannot hold a stop up.
    /// </summary>
    Task StopAsync(StopMode mode, CancellationToken ct);

    /// <summary>Points a running replica at a new upstream: rewrites primary_conninfo / primary_slot_name and reloads.</summary>
    Task FollowAsync(Upstream? upstream, CancellationToken ct);

    /// <summary>
    /// Rewrites postgresql.conf with the given dynamic parameters (keeping the replica settings as they are) and, when the
    /// server runs, reloads it. Parameters that need a restart then show as pending restart.
    /// </summary>
    Task ReloadAsync(DynamicConfig dynamic, CancellationToken ct);

    /// <summary>
    /// Promotes a running replica (pg_promote, waiting until it accepts writes). With <paramref name="checkpoint"/>, then
    /// checkpoints so pg_control carries the new timeline (pg_rewind from this node reads it there); the agent passes
    /// false and checkpoints right after it has published the new leader, so clients are not kept waiting for it.
    /// </summary>
    Task PromoteAsync(bool checkpoint, CancellationToken ct);

    /// <summary>
    /// pg_rewind of the stopped local data directory from <paramref name="source"/>. Returns false when pg_rewind failed;
    /// throws (having changed nothing) when the source does not answer, so the caller does not move the data aside for it.
    /// </summary>
    Task<bool> RewindAsync(HostPort source, CancellationToken ct);

    /// <summary>Renames the data directory aside (<c>&lt;data_dir&gt;.diverged-&lt;utc time&gt;</c>) so it can be cloned anew without losing it. Returns the new path.</summary>
    Task<string> MoveDataDirAsideAsync(CancellationToken ct);

    /// <summary>On the primary: creates a physical slot for each name (missing only) and drops inactive slots not in the list.</summary>
    /// <remarks>An inactive slot not in the list is dropped only when <paramref name="mayDrop"/> (if given) says so.</remarks>
    Task SyncReplicationSlotsAsync(IReadOnlyCollection<string> slotNames, CancellationToken ct, Func<string, bool>? mayDrop = null);

    /// <summary>
    /// The local server's replication slots (not temporary ones) and its wal_level; null when this control cannot list
    /// them (test doubles), in which case the agent keeps only its member slots with <see cref="SyncReplicationSlotsAsync"/>.
    /// </summary>
    Task<LocalSlots?> ListReplicationSlotsAsync(CancellationToken ct) => Task.FromResult<LocalSlots?>(null);

    /// <summary>Runs one <see cref="SlotAction"/> on the local server; null when done, else why not (with the SQLSTATE).</summary>
    Task<SlotActionFailure?> ApplySlotActionAsync(SlotAction action, CancellationToken ct) => Task.FromResult<SlotActionFailure?>(null);

    /// <summary>
    /// Reads from the primary at <paramref name="leader"/> (as the rewind user, or the superuser) the named logical slots
    /// with their <c>pg_replslot/&lt;name&gt;/state</c> files (Patroni's copy_logical_slots query).
    /// </summary>
    Task<IReadOnlyList<SlotCopy>> ReadLogicalSlotsAsync(HostPort leader, IReadOnlyCollection<string> names, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<SlotCopy>>([]);

    /// <summary>
    /// Writes each copy into the stopped server's <c>pg_replslot/&lt;name&gt;/state</c> (temp directory, fsync, rename),
    /// replacing a slot of that name; PostgreSQL loads them at its next start.
    /// </summary>
    Task InstallSlotCopiesAsync(IReadOnlyList<SlotCopy> copies, CancellationToken ct) => Task.CompletedTask;

    /// <summary>
    /// The catalog_xmin of the named slots on the primary at <paramref name="leader"/> (absent: no such slot; null value:
    /// the slot has none), for the readiness check of copied logical slots.
    /// </summary>
    Task<IReadOnlyDictionary<string, long?>> ReadCatalogXminsAsync(HostPort leader, IReadOnlyCollection<string> names, CancellationToken ct) =>
        Task.FromResult<IReadOnlyDictionary<string, long?>>(new Dictionary<string, long?>());

    /// <summary>Writes into pg_wal every <c>&lt;timeline&gt;.history</c> file implied by <paramref name="history"/> that is missing (safety rule 4).</summary>
    Task WriteMissingHistoryFilesAsync(IReadOnlyList<HistoryEntry> history, CancellationToken ct);

    /// <summary>Reads pg_wal/&lt;timeline&gt;.history and returns its last entry (parent timeline, switch LSN, reason), null if absent.</summary>
    Task<TimelineSwitch?> ReadLastTimelineSwitchAsync(long timeline, CancellationToken ct);

    /// <summary>
    /// Sets or clears the durable "ran as a primary" mark (<see cref="PgState.PrimaryMark"/>), a file beside the data
    /// directory (<c>&lt;data_dir&gt;.steward-primary</c>, fsynced), so neither pg_basebackup nor pg_rewind copies it.
    /// </summary>
    Task SetPrimaryMarkAsync(bool present, CancellationToken ct);

    /// <summary>CHECKPOINT on the running server (before a clean demotion), bounded by pg_ctl_timeout.</summary>
    Task CheckpointAsync(CancellationToken ct);

    /// <summary>
    /// Sets <c>synchronous_standby_names</c> through Steward's include file (<c>steward.sync.conf</c>, read after every
    /// other setting) and reloads a running server; null removes the file (the operator's value, if any, applies again).
    /// Returns once the server reports the new value.
    /// </summary>
    Task SetSynchronousStandbyNamesAsync(string? value, CancellationToken ct);

    /// <summary>
    /// What the postmaster <paramref name="pid"/> is doing right now, from postmaster.pid and /proc alone (microseconds,
    /// no connection): what the health endpoints check on every request, so they answer from PostgreSQL's state now
    /// rather than the last cycle's (DESIGN safety rule 8). Default <see cref="PostmasterNow.Unknown"/>: no information.
    /// </summary>
    PostmasterNow CheckPostmaster(int pid) => PostmasterNow.Unknown;
}

public enum StartRole { Primary, Replica }

/// <summary>See <see cref="IPostgresControl.CheckPostmaster"/>.</summary>
public enum PostmasterNow
{
    /// <summary>Cannot tell: trust the last inspection.</summary>
    Unknown,
    /// <summary>Not running: postmaster.pid is gone or names another process, or the process is dead, a zombie or stopped (SIGSTOP).</summary>
    Gone,
    /// <summary>
    /// Running but not accepting connections (postmaster.pid's status line): <c>starting</c> (also crash recovery after
    /// a backend died), <c>standby</c> (in recovery, not yet or never open for queries) or <c>stopping</c>.
    /// </summary>
    NotReady,
    /// <summary>Accepting connections, as a primary or a hot standby (status <c>ready</c>).</summary>
    Ready,
}

public enum StopMode { Fast, Immediate }

/// <summary>Where a replica streams from.</summary>
/// <param name="Stream">False for a <c>nostream</c> member: it follows the leader's timeline from the archive only, so no
/// primary_conninfo or slot is written.</param>
public sealed record Upstream(HostPort Address, string? SlotName, bool Stream = true);

public sealed record TimelineSwitch(long ParentTimeline, long SwitchLsn, string Reason);

public enum DataDirStatus
{
    /// <summary>Does not exist or is empty.</summary>
    Empty,
    /// <summary>A PostgreSQL data directory (PG_VERSION and global/pg_control present).</summary>
    Initialized,
    /// <summary>Not empty but not a PostgreSQL data directory.</summary>
    Invalid,
}

/// <summary>What the agent sees of its PostgreSQL in one inspection.</summary>
public sealed record PgState
{
    public DataDirStatus DataDir { get; init; }
    /// <summary>From pg_controldata: "Database system identifier".</summary>
    public string? SystemId { get; init; }
    /// <summary>From pg_controldata: "Database cluster state" (in production, shut down, shut down in recovery, in crash recovery, in archive recovery).</summary>
    public string? ControlState { get; init; }
    /// <summary>From pg_controldata: "Latest checkpoint's TimeLineID".</summary>
    public long? ControlTimeline { get; init; }
    /// <summary>standby.signal is present.</summary>
    public bool StandbySignal { get; init; }
    /// <summary>
    /// The durable mark that this data directory ran as a primary and has not been checked against a leader's history
    /// since (by pg_rewind or a fresh clone): it must not stream from anyone before that check, whatever pg_control says.
    /// </summary>
    public bool PrimaryMark { get; init; }

    /// <summary>The postmaster (postmaster.pid) is alive.</summary>
    public bool Running { get; init; }
    public int? PostmasterPid { get; init; }
    /// <summary>The server answers queries (false while starting / in crash recovery).</summary>
    public bool Accepting { get; init; }
    /// <summary>pg_is_in_recovery(), when accepting.</summary>
    public bool? InRecovery { get; init; }
    /// <summary>
    /// The timeline of <see cref="Lsn"/>: a primary's WAL insert timeline; a replica's receive timeline while it streams,
    /// else its <see cref="ReplayTimeline"/>, else (unknown) the last checkpoint's, which lags behind a timeline switch.
    /// </summary>
    public long? Timeline { get; init; }
    /// <summary>
    /// Replica: the timeline of the WAL replayed so far (IDENTIFY_SYSTEM on the standby itself), null when it could not be
    /// read. With <see cref="ReplayLsn"/> this is what proves or disproves divergence from the leader's history.
    /// </summary>
    public long? ReplayTimeline { get; init; }
    /// <summary>Replica: received_tli of the running WAL receiver; null when none runs.</summary>
    public long? ReceiveTimeline { get; init; }
    /// <summary>Primary: pg_current_wal_lsn().</summary>
    public long? WriteLsn { get; init; }
    public long? ReceiveLsn { get; init; }
    public long? ReplayLsn { get; init; }
    public DateTimeOffset? ReplayTimestamp { get; init; }
    /// <summary>The WAL receiver is streaming.</summary>
    public bool Streaming { get; init; }
    /// <summary>host:port the WAL receiver is connected to, when streaming.</summary>
    public string? UpstreamHost { get; init; }
    public int? ServerVersion { get; init; }
    public DateTimeOffset? PostmasterStartTime { get; init; }
    public bool PendingRestart { get; init; }
    /// <summary>current_setting('synchronous_standby_names') of the running server.</summary>
    public string? SynchronousStandbyNames { get; init; }

    /// <summary>Steward sets synchronous_standby_names (its include file exists in the data directory).</summary>
    public bool SynchronousStandbyNamesManaged { get; init; }

    /// <summary>pg_stat_replication rows on a primary.</summary>
    public IReadOnlyList<ReplicationConnection> Replication { get; init; } = [];

    /// <summary>The position that counts for failover: write LSN on a primary, max(receive, replay) on a replica.</summary>
    public long? Lsn => InRecovery == false ? WriteLsn : (ReceiveLsn, ReplayLsn) switch
    {
        (null, null) => null,
        (var r, var p) => Math.Max(r ?? 0, p ?? 0),
    };
}

public sealed record ReplicationConnection(string? UserName, string ApplicationName, string? ClientAddr, string State, string SyncState, long? ReplayLsn)
{
    /// <summary>flush_lsn: what the standby has made durable (what a synchronous commit waits for).</summary>
    public long? FlushLsn { get; init; }
}

/// <summary>A PostgreSQL program or query failed; the message names what and why.</summary>
public sealed class PostgresException : Exception
{
    public PostgresException(string message, Exception? inner = null) : base(message, inner) { }
    public PostgresException() { }
    public PostgresException(string message) : base(message) { }
}

/// <summary>The local server's slots and wal_level.</summary>
public sealed record LocalSlots(IReadOnlyList<ReplicationSlot> Slots, string WalLevel);

/// <summary>Why a slot action failed: PostgreSQL's SQLSTATE (null when it never answered) and message.</summary>
public sealed record SlotActionFailure(string? SqlState, string Message)
{
    /// <summary>Patroni: an advance failing because the WAL is gone (58P01) or the slot is invalid (55000) is fixed by copying the slot again.</summary>
    public bool NeedsCopy => SqlState is "58P01" or "55000";
}

/// <summary>A logical slot read from the primary, with its state file.</summary>
public sealed record SlotCopy(ReplicationSlot Slot, byte[] State);
