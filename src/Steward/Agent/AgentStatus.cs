using Steward.Core.Cluster;
using Steward.Core.Postgres;

namespace Steward.Agent;

/// <summary>
/// The agent's published state (<see cref="AgentSnapshot"/>), shared by the HA loop, the converger and the lease keeper's
/// deadline handler. Every change swaps the whole snapshot.
/// </summary>
internal sealed class AgentStatus
{
    private readonly TimeProvider _time;
    private AgentSnapshot _snapshot;

    public AgentStatus(TimeProvider time)
    {
        _time = time;
        _snapshot = new AgentSnapshot { Pg = new PgState(), State = "starting", LastCycle = time.GetUtcNow(), LastCycleTimestamp = time.GetTimestamp() };
    }

    public AgentSnapshot Snapshot => Volatile.Read(ref _snapshot);

    /// <summary>Told of every published inspection (the callbacks follow PostgreSQL's state through it); must not block.</summary>
    public Action<PgState>? Observer { get; set; }

    public void Publish(PgState pg, ClusterView? cluster, long heldOnLease, DateTimeOffset? dcsSeen, string state, string? decision = null, bool walAfterLeaderGone = false)
    {
        var previous = Snapshot;
        Volatile.Write(ref _snapshot, new AgentSnapshot
        {
            Pg = pg,
            Cluster = cluster ?? previous.Cluster,
            HoldsLeader = heldOnLease != 0,
            LeaseId = heldOnLease,
            State = state,
            DcsLastSeen = dcsSeen,
            LastCycle = _time.GetUtcNow(),
            LastCycleTimestamp = _time.GetTimestamp(),
            LastDecision = decision ?? previous.LastDecision,
            WalAfterLeaderGone = walAfterLeaderGone,
        });
        Observer?.Invoke(pg);
    }

    public void SetState(string state) => Volatile.Write(ref _snapshot, Snapshot with { State = state });

    public void SetHolds(long leaseId) => Volatile.Write(ref _snapshot, Snapshot with { HoldsLeader = leaseId != 0, LeaseId = leaseId });

    public void SetDemoting() => Volatile.Write(ref _snapshot, Snapshot with { Demoting = true });
}
