namespace Steward.Agent.Fence;

/// <summary>
/// The fence that keeps a primary from outliving its leader lease. While armed, the postmaster is killed (SIGKILL to its
/// whole process group) when the lease deadline passes without an extension — by the agent's own lease keeper and, out
/// of process, by a supervisor that holds the same deadline, so the kill happens even when the agent is dead (kill -9,
/// OOM killer) or frozen (SIGSTOP, a stalled runtime).
/// <para>
/// The agent arms it before it can become or remains a writable primary (before taking the leader key, before a
/// promotion, while it holds the key or runs a primary) and disarms it once PostgreSQL is a replica or stopped and the
/// key is not held. Every method returns at once and never throws.
/// </para>
/// </summary>
internal interface IPrimaryFence
{
    /// <summary>True while a kill at the deadline is set up.</summary>
    bool Armed { get; }

    /// <summary>Arms (or re-arms with a new postmaster PID; null: the one <c>postmaster.pid</c> names at the deadline).</summary>
    void Arm(int? postmasterPid);

    /// <summary>Disarms: PostgreSQL is not (and is not becoming) a primary, and the leader key is not held.</summary>
    void Disarm();

    /// <summary>The lease now certainly lives on the etcd side until <paramref name="deadlineTimestamp"/> (a <see cref="TimeProvider.GetTimestamp"/> value).</summary>
    void Extend(long deadlineTimestamp);

    /// <summary>The deadline passed in-process: kill now when armed. True when a postmaster was killed.</summary>
    bool FireNow(string reason);
}
