using Microsoft.Extensions.Logging;

namespace Steward.Agent;

/// <summary>Every log event of the agent, with its id in one place so operators can alert on them.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "{Decision}")]
    public static partial void Decision(ILogger logger, string decision);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Lock owner: {Leader}; I am {Member}")]
    public static partial void LockOwner(ILogger logger, string leader, string member);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "step {Step} did not complete: {Reason}")]
    public static partial void StepFailed(ILogger logger, string step, string reason);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Error, Message = "HA cycle failed: {Reason}")]
    public static partial void CycleFailed(ILogger logger, string reason, Exception exception);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Warning, Message = "DCS is not accessible: {Reason}")]
    public static partial void StoreUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Critical, Message = "{Reason}")]
    public static partial void Fatal(ILogger logger, string reason);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Warning, Message = "session lease {LeaseId} was lost; granted a new one ({NewLeaseId})")]
    public static partial void LeaseLost(ILogger logger, long leaseId, long newLeaseId);

    [LoggerMessage(EventId = 1007, Level = LogLevel.Critical, Message = "leader lease could not be renewed before its deadline: stopping PostgreSQL (immediate) so it takes no writes the cluster may lose")]
    public static partial void LeaseDeadlinePassed(ILogger logger);

    [LoggerMessage(EventId = 1008, Level = LogLevel.Information, Message = "shutting down: {What}")]
    public static partial void ShuttingDown(ILogger logger, string what);

    [LoggerMessage(EventId = 1009, Level = LogLevel.Warning, Message = "{Warning}")]
    public static partial void ConfigWarning(ILogger logger, string warning);

    [LoggerMessage(EventId = 1010, Level = LogLevel.Information, Message = "timeline switch recorded: timeline {Timeline} ended at {Lsn}; {Member} is the new leader")]
    public static partial void HistoryRecorded(ILogger logger, long timeline, string lsn, string member);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Warning, Message = "{Why}: moved the data directory aside to {Path}; cloning anew")]
    public static partial void RewindFailed(ILogger logger, string why, string path);

    [LoggerMessage(EventId = 1012, Level = LogLevel.Information, Message = "REST API listening on {Url}")]
    public static partial void RestListening(ILogger logger, string url);

    [LoggerMessage(EventId = 1013, Level = LogLevel.Information, Message = "dynamic configuration applied to postgresql.conf and reloaded")]
    public static partial void ConfigApplied(ILogger logger);

    [LoggerMessage(EventId = 1014, Level = LogLevel.Information, Message = "restarted PostgreSQL as {Role}")]
    public static partial void Restarted(ILogger logger, string role);

    [LoggerMessage(EventId = 1015, Level = LogLevel.Warning, Message = "reinitializing from leader {Leader}: the old data directory was moved to {Path}")]
    public static partial void Reinitializing(ILogger logger, string leader, string path);

    [LoggerMessage(EventId = 1016, Level = LogLevel.Information, Message = "ttl changed from {Old} s to {New} s: moved to a new session lease")]
    public static partial void LeaseRegranted(ILogger logger, int old, int @new);

    [LoggerMessage(EventId = 1020, Level = LogLevel.Information, Message = "fence armed: postmaster {Target} is killed if the leader lease deadline passes without renewal")]
    public static partial void FenceArmed(ILogger logger, string target);

    [LoggerMessage(EventId = 1021, Level = LogLevel.Information, Message = "fence disarmed: PostgreSQL is not a primary and the leader key is not held")]
    public static partial void FenceDisarmed(ILogger logger);

    [LoggerMessage(EventId = 1022, Level = LogLevel.Critical, Message = "fence: {Reason}: {What}, so it takes no writes the cluster may lose")]
    public static partial void FenceFired(ILogger logger, string reason, string what);

    [LoggerMessage(EventId = 1023, Level = LogLevel.Information, Message = "fence supervisor started (pid {Pid}): it kills the postmaster at the lease deadline even if this agent dies or freezes")]
    public static partial void FenceSupervisorStarted(ILogger logger, int pid);

    [LoggerMessage(EventId = 1024, Level = LogLevel.Error, Message = "fence supervisor lost ({Reason}); restarting it (the in-process fence still holds while the agent runs)")]
    public static partial void FenceSupervisorLost(ILogger logger, string reason);

    [LoggerMessage(EventId = 1025, Level = LogLevel.Warning, Message = "failsafe: DCS is not accessible, and all {Members} members confirmed this primary over REST (POST /failsafe): continuing to run as the leader")]
    public static partial void FailsafeConfirmed(ILogger logger, int members);

    [LoggerMessage(EventId = 1026, Level = LogLevel.Critical, Message = "failsafe: DCS is not accessible and not every member confirmed this primary: it is stopped at its lease deadline")]
    public static partial void FailsafeRefused(ILogger logger);

    [LoggerMessage(EventId = 1030, Level = LogLevel.Information, Message = "sync key written: {State}")]
    public static partial void SyncKeyWritten(ILogger logger, string state);

    [LoggerMessage(EventId = 1031, Level = LogLevel.Information, Message = "synchronous_standby_names set to {Value}")]
    public static partial void StandbyNamesSet(ILogger logger, string value);

    [LoggerMessage(EventId = 1032, Level = LogLevel.Warning, Message = "the config key holds settings Steward does not act on (kept as they are, not applied): {Keys}")]
    public static partial void ConfigNotActedOn(ILogger logger, string keys);

    [LoggerMessage(EventId = 1100, Level = LogLevel.Warning, Message = "the config key: {Warning}")]
    public static partial void ConfigTiming(ILogger logger, string warning);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Information, Message = "not proceeding with the scheduled restart: {Reason}")]
    public static partial void ScheduledRestartSkipped(ILogger logger, string reason);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "SECURITY: the REST API listens on {Listen}, beyond this machine, and anyone who reaches it may switch over, restart or reinitialize this member: set restapi.authentication (and restapi.certfile, verify_client, allowlist; docs/security.md)")]
    public static partial void RestUnprotected(ILogger logger, string listen);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Warning, Message = "{Method} {Path} from {Remote} refused ({Status}): {Reason}")]
    public static partial void RestRefused(ILogger logger, string method, string path, string remote, int status, string reason);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Information, Message = "removed the old data directory ({Path}) before cloning again: {Setting} is true")]
    public static partial void DataDirRemoved(ILogger logger, string path, string setting);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Information, Message = "bootstrapping a standby cluster: cloning from the remote primary {Remote}, then running as its standby (the standby leader)")]
    public static partial void StandbyClusterBootstrap(ILogger logger, string remote);

    [LoggerMessage(EventId = 1150, Level = LogLevel.Warning, Message = "replication slots: {Warning}")]
    public static partial void SlotWarning(ILogger logger, string warning);

    [LoggerMessage(EventId = 1151, Level = LogLevel.Warning, Message = "replication slot {Slot}: {Action} failed: {Reason}")]
    public static partial void SlotActionFailed(ILogger logger, string slot, string action, string reason);

    [LoggerMessage(EventId = 1152, Level = LogLevel.Warning, Message = "restarting this replica to load the logical slot(s) {Slots} copied from the primary {Leader}: a copy is how a logical slot survives a failover, and PostgreSQL reads slot files only at start")]
    public static partial void SlotCopyRestart(ILogger logger, string slots, string leader);

    [LoggerMessage(EventId = 1153, Level = LogLevel.Information, Message = "logical slot {Slot} not copied from the primary yet: {Reason}")]
    public static partial void SlotCopyDeferred(ILogger logger, string slot, string reason);

    [LoggerMessage(EventId = 1154, Level = LogLevel.Information, Message = "logical slot {Slot} is safe to be used after a failover")]
    public static partial void SlotReady(ILogger logger, string slot);

    [LoggerMessage(EventId = 1155, Level = LogLevel.Warning, Message = "logical replication slots that might be unsafe to use after promote: {Slots}")]
    public static partial void SlotsMaybeUnsafe(ILogger logger, string slots);

    [LoggerMessage(EventId = 1156, Level = LogLevel.Warning, Message = "dynamic configuration: {Problem}; the entry is left out")]
    public static partial void SlotConfigProblem(ILogger logger, string problem);
}
