namespace Steward.Campaign;

/// <summary>The faults of the campaign (one is drawn per step from the seeded schedule).</summary>
internal enum FaultKind
{
    /// <summary>kill -9 of the leader's agent and postmaster at once (a host crash); the agent is restarted after the hold.</summary>
    CrashLeader,

    /// <summary>kill -9 of the leader's agent alone (its PostgreSQL keeps running); restarted after the hold.</summary>
    KillLeaderAgent,

    /// <summary>kill -9 of the leader's postmaster alone; the agent deals with it.</summary>
    KillLeaderPostmaster,

    /// <summary>SIGSTOP of the leader's agent for the hold, then SIGCONT.</summary>
    StopLeaderAgent,

    /// <summary>SIGSTOP of the leader's postmaster (its backends keep running) for the hold, then SIGCONT.</summary>
    StopLeaderPostmaster,

    /// <summary>The leader's host off the network (its bridge port down) for the hold.</summary>
    PartitionLeader,

    /// <summary>Traffic between the router and the leader dropped (blackhole routes) for the hold; the rest still talk.</summary>
    PartitionRouterLeader,

    /// <summary>kill -9 of one etcd member (of three) for the hold, then restarted.</summary>
    KillOneEtcd,

    /// <summary>kill -9 of two etcd members (no quorum) for the hold, then restarted.</summary>
    KillTwoEtcd,

    /// <summary>A planned switchover through the leader's REST API.</summary>
    Switchover,

    /// <summary>The links into both replicas rate-limited (tc tbf) for the hold: replication falls behind.</summary>
    ReplicationDelay,

    /// <summary>
    /// Replication delayed as above for the hold, then the leader's host crashes: its link down and every process on it
    /// but etcd killed at once (what was not sent yet is gone); back after 3 s.
    /// </summary>
    ReplicationDelayThenCrash,
}

/// <summary>What happened to one fault: when, to whom, and how the cluster came back.</summary>
internal sealed record FaultRecord
{
    public int Number { get; init; }
    public FaultKind Kind { get; init; }
    public string Target { get; init; } = "";
    public string? LeaderBefore { get; set; }
    public string? LeaderAfter { get; set; }
    public double Injected { get; set; }
    public double Healed { get; set; }
    public double Healthy { get; set; }
    public double Hold { get; init; }
    public List<string> NotRejoined { get; } = [];
    public List<string> Notes { get; } = [];
    public bool Failover => LeaderBefore is not null && LeaderAfter is not null && LeaderBefore != LeaderAfter;
}

internal static class FaultNames
{
    public static string Name(this FaultKind kind) => kind switch
    {
        FaultKind.CrashLeader => "kill -9 leader agent+postmaster",
        FaultKind.KillLeaderAgent => "kill -9 leader agent",
        FaultKind.KillLeaderPostmaster => "kill -9 leader postmaster",
        FaultKind.StopLeaderAgent => "SIGSTOP leader agent",
        FaultKind.StopLeaderPostmaster => "SIGSTOP leader postmaster",
        FaultKind.PartitionLeader => "partition leader host",
        FaultKind.PartitionRouterLeader => "partition router-leader",
        FaultKind.KillOneEtcd => "kill -9 1 of 3 etcd",
        FaultKind.KillTwoEtcd => "kill -9 2 of 3 etcd",
        FaultKind.Switchover => "switchover",
        FaultKind.ReplicationDelay => "repl. delay (tbf)",
        FaultKind.ReplicationDelayThenCrash => "repl. delay + host crash",
        _ => kind.ToString(),
    };
}
