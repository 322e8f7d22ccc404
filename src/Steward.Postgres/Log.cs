using Microsoft.Extensions.Logging;

namespace Steward.Postgres;

/// <summary>Every log event of PostgreSQL control, with its event id (3000-3099) in one place.</summary>
internal static partial class Log
{
    [LoggerMessage(3000, LogLevel.Debug, "running {Program} {Arguments}")]
    public static partial void Running(ILogger logger, string program, string arguments);

    [LoggerMessage(3001, LogLevel.Debug, "{Program} exited with {ExitCode} after {ElapsedMs} ms")]
    public static partial void Exited(ILogger logger, string program, int exitCode, long elapsedMs);

    [LoggerMessage(3002, LogLevel.Warning, "{Program} did not finish in {TimeoutSeconds} s; killed pid {Pid}")]
    public static partial void TimedOut(ILogger logger, string program, double timeoutSeconds, int pid);

    [LoggerMessage(3003, LogLevel.Information, "{Program} cancelled; killed pid {Pid}")]
    public static partial void Cancelled(ILogger logger, string program, int pid);

    [LoggerMessage(3010, LogLevel.Information, "initdb of {DataDir} as {OsUser}")]
    public static partial void Initdb(ILogger logger, string dataDir, string osUser);

    [LoggerMessage(3011, LogLevel.Information, "starting PostgreSQL in {DataDir} as {Role}")]
    public static partial void Starting(ILogger logger, string dataDir, string role);

    [LoggerMessage(3012, LogLevel.Information, "PostgreSQL in {DataDir} started")]
    public static partial void Started(ILogger logger, string dataDir);

    [LoggerMessage(3013, LogLevel.Information, "stopping PostgreSQL in {DataDir} (mode {Mode})")]
    public static partial void Stopping(ILogger logger, string dataDir, string mode);

    [LoggerMessage(3014, LogLevel.Information, "PostgreSQL in {DataDir} stopped")]
    public static partial void Stopped(ILogger logger, string dataDir);

    [LoggerMessage(3015, LogLevel.Information, "created role {Role}")]
    public static partial void RoleCreated(ILogger logger, string role);

    [LoggerMessage(3016, LogLevel.Information, "now following {Upstream} (slot {Slot})")]
    public static partial void Following(ILogger logger, string upstream, string? slot);

    [LoggerMessage(3017, LogLevel.Information, "promoting PostgreSQL in {DataDir}")]
    public static partial void Promoting(ILogger logger, string dataDir);

    [LoggerMessage(3018, LogLevel.Information, "promoted: PostgreSQL in {DataDir} accepts writes")]
    public static partial void Promoted(ILogger logger, string dataDir);

    [LoggerMessage(3020, LogLevel.Information, "cloning {DataDir} from {Source}")]
    public static partial void Cloning(ILogger logger, string dataDir, string source);

    [LoggerMessage(3021, LogLevel.Information, "cloned {DataDir} from {Source}")]
    public static partial void Cloned(ILogger logger, string dataDir, string source);

    [LoggerMessage(3022, LogLevel.Warning, "removed the partial clone in {DataDir}")]
    public static partial void PartialCloneRemoved(ILogger logger, string dataDir);

    [LoggerMessage(3023, LogLevel.Information, "pg_rewind of {DataDir} from {Source}")]
    public static partial void Rewinding(ILogger logger, string dataDir, string source);

    [LoggerMessage(3024, LogLevel.Information, "pg_rewind of {DataDir} from {Source} succeeded")]
    public static partial void Rewound(ILogger logger, string dataDir, string source);

    [LoggerMessage(3025, LogLevel.Error, "pg_rewind of {DataDir} from {Source} failed with exit code {ExitCode}: {Output}")]
    public static partial void RewindFailed(ILogger logger, string dataDir, string source, int exitCode, string output);

    [LoggerMessage(3026, LogLevel.Warning, "moved data directory {DataDir} aside to {NewPath}")]
    public static partial void MovedAside(ILogger logger, string dataDir, string newPath);

    [LoggerMessage(3030, LogLevel.Information, "created replication slot {Slot}")]
    public static partial void SlotCreated(ILogger logger, string slot);

    [LoggerMessage(3031, LogLevel.Information, "dropped replication slot {Slot}")]
    public static partial void SlotDropped(ILogger logger, string slot);

    [LoggerMessage(3095, LogLevel.Information, "created logical replication slot {Slot} (database {Database}, plugin {Plugin})")]
    public static partial void LogicalSlotCreated(ILogger logger, string slot, string database, string plugin);

    [LoggerMessage(3096, LogLevel.Information, "dropped replication slot {Slot}: {Reason}")]
    public static partial void SlotDroppedBecause(ILogger logger, string slot, string reason);

    [LoggerMessage(3032, LogLevel.Information, "wrote timeline history file {File}")]
    public static partial void HistoryFileWritten(ILogger logger, string file);

    [LoggerMessage(3040, LogLevel.Debug, "PostgreSQL in {DataDir} does not answer: {Reason}")]
    public static partial void NotAnswering(ILogger logger, string dataDir, string reason);

    [LoggerMessage(3041, LogLevel.Warning, "cannot read the replay timeline of {DataDir} (IDENTIFY_SYSTEM as {User}; pg_hba.conf must let it connect for replication locally): {Reason}; until it can, divergence from the leader's history cannot be proven and the replica is never rewound")]
    public static partial void ReplayTimelineUnknown(ILogger logger, string dataDir, string user, string reason);

    [LoggerMessage(3042, LogLevel.Warning, "PostgreSQL in {DataDir} did not stop immediately; killing postmaster pid {Pid} (its process group: {Group}): {Reason}")]
    public static partial void KillingPostmaster(ILogger logger, string dataDir, int pid, bool group, string reason);

    [LoggerMessage(3044, LogLevel.Warning, "PostgreSQL in {DataDir} (postmaster pid {Pid}) is still there {Seconds} s after SIGKILL (blocked in the kernel?); it can no longer run, so the stop counts as done")]
    public static partial void PostmasterNotGoneAfterKill(ILogger logger, string dataDir, int pid, double seconds);

    [LoggerMessage(3043, LogLevel.Information, "removed {LockFile}: the postmaster it names (pid {Pid}) is dead but not reaped yet")]
    public static partial void ZombieLockFileRemoved(ILogger logger, string lockFile, int pid);

    [LoggerMessage(3060, LogLevel.Information, "marked {Path}: this data directory runs as a primary; it is rewound or re-cloned before it follows any leader")]
    public static partial void PrimaryMarkSet(ILogger logger, string path);

    [LoggerMessage(3061, LogLevel.Information, "cleared {Path}: this data directory was checked against the leader's history")]
    public static partial void PrimaryMarkCleared(ILogger logger, string path);

    [LoggerMessage(3080, LogLevel.Warning, "postgresql parameters: {Warning}")]
    public static partial void ParameterAdapted(ILogger logger, string warning);

    [LoggerMessage(3081, LogLevel.Information, "running custom bootstrap '{Method}': {CommandLine}")]
    public static partial void CustomBootstrap(ILogger logger, string method, string commandLine);

    [LoggerMessage(3082, LogLevel.Information, "custom bootstrap '{Method}' of {DataDir} done: PostgreSQL runs as the new cluster's primary")]
    public static partial void CustomBootstrapDone(ILogger logger, string method, string dataDir);

    [LoggerMessage(3083, LogLevel.Information, "waiting for the end of recovery after bootstrap in {DataDir} ({Seconds} s)")]
    public static partial void WaitingForRecovery(ILogger logger, string dataDir, long seconds);

    [LoggerMessage(3084, LogLevel.Information, "creating the replica with create_replica_methods '{Method}': {CommandLine}")]
    public static partial void ReplicaMethod(ILogger logger, string method, string commandLine);

    [LoggerMessage(3085, LogLevel.Warning, "create_replica_methods '{Method}' failed, trying the next one if any: {Failure}")]
    public static partial void ReplicaMethodFailed(ILogger logger, string method, string failure);

    [LoggerMessage(3090, LogLevel.Information, "callback: {CommandLine}")]
    public static partial void Callback(ILogger logger, string commandLine);

    [LoggerMessage(3091, LogLevel.Warning, "callback {CommandLine}: {Problem}")]
    public static partial void CallbackFailed(ILogger logger, string commandLine, string problem);

    [LoggerMessage(3092, LogLevel.Information, "running pre_promote script {CommandLine}")]
    public static partial void PrePromote(ILogger logger, string commandLine);

    [LoggerMessage(3093, LogLevel.Information, "pre_promote script {CommandLine} exited with {ExitCode}: {Output}")]
    public static partial void PrePromoteExited(ILogger logger, string commandLine, int exitCode, string output);

    [LoggerMessage(3094, LogLevel.Warning, "data_dir {DataDir} had mode {Mode}, open to other users: set to {NewMode} (PostgreSQL refuses group-writable or world-accessible data directories)")]
    public static partial void DataDirModeTightened(ILogger logger, string dataDir, string mode, string newMode);
    [LoggerMessage(3101, LogLevel.Warning, "postgresql.pg_ident is not written: the parameter ident_file ({IdentFile}) points PostgreSQL elsewhere (as Patroni does)")]
    public static partial void PgIdentNotWritten(ILogger logger, string identFile);

    [LoggerMessage(3102, LogLevel.Information, "running before_stop script {CommandLine}")]
    public static partial void BeforeStop(ILogger logger, string commandLine);

    [LoggerMessage(3103, LogLevel.Information, "before_stop script {CommandLine} exited with {ExitCode} (the stop goes on whatever it returns): {Output}")]
    public static partial void BeforeStopExited(ILogger logger, string commandLine, int exitCode, string output);

    [LoggerMessage(3104, LogLevel.Information, "running post_bootstrap script {CommandLine}")]
    public static partial void PostBootstrap(ILogger logger, string commandLine);

    [LoggerMessage(3105, LogLevel.Information, "post_bootstrap script exited with 0: {Output}")]
    public static partial void PostBootstrapDone(ILogger logger, string output);

}
