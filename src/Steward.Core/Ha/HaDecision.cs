using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;

namespace Steward.Core.Ha;

/// <summary>
/// The HA cycle's decision: a pure function of (cluster view, local PostgreSQL, settings, now). It keeps Patroni's order
/// of checks — etcd reachable? → paused? → initialized? → data directory? → system id? → PostgreSQL running? → do I hold
/// the lock? → is there a leader? — because that order encodes years of incidents; it does no I/O.
/// </summary>
public static class HaDecision
{
    /// <summary>How long a running replica may go without streaming from a leader on a newer timeline before it is rewound.</summary>
    public static readonly TimeSpan DivergenceGrace = TimeSpan.FromSeconds(10);

    public static HaPlan Decide(HaInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Cluster is null)
        {
            return DecideWithoutStore(input);
        }

        var cluster = input.Cluster;
        var pg = input.Pg;
        var me = input.Me;

        if (input.Settings.Pause)
        {
            return DecidePaused(input, cluster);
        }

        if (pg.DataDir == DataDirStatus.Invalid)
        {
            return Fail("data directory is not empty and is not a PostgreSQL data directory; refusing to touch it");
        }

        if (cluster.Initialize is null)
        {
            return DecideUninitialized(input, cluster);
        }

        if (pg.DataDir == DataDirStatus.Empty)
        {
            return DecideEmptyDataDir(input, cluster);
        }

        if (cluster.Initialize.Length > 0 && pg.SystemId is not null && pg.SystemId != cluster.Initialize)
        {
            return Fail($"system ID mismatch, node {me} belongs to a different cluster: {pg.SystemId} != {cluster.Initialize}; refusing to join it");
        }

        var holdsKey = cluster.Leader is { } held && held.Name == me && held.LeaseId == input.MyLeaseId;
        if (cluster.Initialize.Length == 0 && (cluster.Leader is null || holdsKey)
            && pg.Running && pg.InRecovery == false && pg.SystemId is { } bootstrapped)
        {
            // Only the member that won the initialize race has a running primary here: its bootstrap was cut short after
            // initdb (e.g. etcd did not answer in time). Finish it instead of waiting for ever.
            return new HaPlan($"finishing the bootstrap of the cluster (system {bootstrapped})", [new CompleteBootstrap(bootstrapped)]);
        }

        if (cluster.Initialize.Length == 0 && cluster.Leader is null)
        {
            return HaPlan.NoAction("waiting for leader to bootstrap");
        }

        var iHoldLock = cluster.Leader is { } l && l.Name == me && l.LeaseId == input.MyLeaseId;
        if (cluster.Leader is { } stale && stale.Name == me && !iHoldLock)
        {
            // My previous session (this agent restarted) still holds the key. If PostgreSQL runs as a primary, releasing
            // the key would open an election while it takes writes: let the old lease expire instead (the others keep
            // following me meanwhile, and then see a running primary that takes the key back).
            if (pg.Running && pg.InRecovery == false)
            {
                return HaPlan.NoAction($"no action. I am ({me}), a primary; waiting for the leader key of my previous session to expire");
            }

            return new HaPlan("removing the leader key of my previous session", [new ReleaseLeader()]);
        }

        if (!pg.Running)
        {
            return DecideStopped(input, cluster, iHoldLock);
        }

        if (!pg.Accepting || pg.InRecovery is null)
        {
            return HaPlan.NoAction($"PostgreSQL is starting up; waiting. I am ({me})");
        }

        if (iHoldLock)
        {
            return DecideLeader(input, cluster);
        }

        return cluster.Leader is null ? DecideNoLeader(input, cluster) : DecideFollower(input, cluster, cluster.Leader);
    }

    private static HaPlan DecideWithoutStore(HaInput input)
    {
        var primary = input.Pg.Running && input.Pg.InRecovery == false;
        if (!primary)
        {
            return HaPlan.NoAction($"DCS is not accessible; no action. I am ({input.Me}), a secondary");
        }

        if (input.LeaseDeadline is { } deadline && input.Now < deadline)
        {
            var left = deadline - input.Now;
            return HaPlan.NoAction($"DCS is not accessible; keeping the primary running while the lease lasts ({left.TotalSeconds:0.0} s)");
        }

        // The etcd-side lease may expire any moment: stop taking writes now, and keep serving reads as a standby.
        // Stopped, not restarted as a standby: the data directory must keep saying "I was a primary" so that, once etcd
        // is back, it is rewound before it follows whoever leads then (the replicas keep serving reads meanwhile).
        return new HaPlan("demoting self because DCS is not accessible and I was a leader",
            [new StopPostgres(StopMode.Immediate)]);
    }

    private static HaPlan DecidePaused(HaInput input, ClusterView cluster)
    {
        var holds = cluster.Leader is { } l && l.Name == input.Me && l.LeaseId == input.MyLeaseId;

        // In maintenance mode the agents act only on an operator's explicit request naming a candidate (as Patroni).
        if (cluster.Failover is { Candidate: { } candidate, ScheduledAt: null } request)
        {
            if (holds && candidate != input.Me && IsSwitchoverFromMe(request, input.Me))
            {
                return DecideSwitchover(input, cluster, request);
            }

            if (cluster.Leader is null && candidate == input.Me && input.Pg.Running && input.Pg.InRecovery == true)
            {
                return new HaPlan("PAUSE: promoted self to leader by acquiring session lock (manual failover)",
                    [new AcquireLeader(), new Promote("manual failover")]);
            }
        }

        if (holds)
        {
            return new HaPlan($"PAUSE: no action. I am ({input.Me}), the leader with the lock", [new LeaderHousekeeping()]);
        }

        if (cluster.Leader is null && input.Pg.Running && input.Pg.InRecovery == false
            && (string.IsNullOrEmpty(cluster.Initialize) || input.Pg.SystemId == cluster.Initialize))
        {
            // Paused, and the primary lost its key (e.g. the agent restarted): take it back without touching PostgreSQL.
            return new HaPlan($"PAUSE: acquiring the leader key for the running primary ({input.Me})", [new AcquireLeader()]);
        }

        return HaPlan.NoAction($"PAUSE: no action. I am ({input.Me})");
    }

    private static HaPlan DecideUninitialized(HaInput input, ClusterView cluster)
    {
        // Only the leader (or, with no leader, anyone) may write initialize: a second initdb while a leader runs would
        // overwrite the system id and make the real leader refuse its own cluster (Patroni: "waiting for leader to bootstrap").
        if (cluster.Leader is { } leader && leader.Name != input.Me)
        {
            return HaPlan.NoAction("waiting for leader to bootstrap");
        }

        return input.Pg.DataDir switch
        {
            DataDirStatus.Empty when cluster.Leader is not null => new HaPlan("releasing the leader key: my data directory is empty", [new ReleaseLeader()]),
            DataDirStatus.Empty when input.Tags.NoFailover => HaPlan.NoAction("waiting for leader to bootstrap"),
            DataDirStatus.Empty => new HaPlan("trying to bootstrap a new cluster", [new BootstrapCluster()]),
            _ when input.Pg.SystemId is { } id => new HaPlan(
                $"initialize key is missing: claiming the cluster with the existing data directory (system {id})",
                [new ClaimInitialize(id)]),
            _ => Fail("initialize key is missing and the data directory has no readable system identifier"),
        };
    }

    private static HaPlan DecideEmptyDataDir(HaInput input, ClusterView cluster)
    {
        if (cluster.Leader is null || cluster.Initialize!.Length == 0)
        {
            return HaPlan.NoAction(cluster.Initialize!.Length == 0 ? "waiting for leader to bootstrap" : "waiting for a leader to clone from");
        }

        if (cluster.Leader.Name == input.Me)
        {
            // The key names me (held, or left by my previous session) but my data is gone: there is nothing to clone from
            // myself, and a key over an empty data directory only keeps the others from taking over.
            return new HaPlan("releasing the leader key: my data directory is empty", [new ReleaseLeader()]);
        }

        var leader = cluster.LeaderMember;
        if (leader?.Data.ConnUrl is not { } url || ConnUrl.Parse(url) is not { } address || leader.Data.State != "running")
        {
            return HaPlan.NoAction($"waiting for leader '{cluster.Leader.Name}' to be running before cloning from it");
        }

        return new HaPlan($"trying to bootstrap from leader '{leader.Name}'",
        [
            new CloneFrom(leader.Name, address),
            new StartPostgres(StartRole.Replica, leader.Name, UpstreamFor(input, address)),
        ]);
    }

    private static HaPlan DecideStopped(HaInput input, ClusterView cluster, bool iHoldLock)
    {
        var pg = input.Pg;
        if (iHoldLock)
        {
            if (input.PgDownSince is { } since && input.Now - since > TimeSpan.FromSeconds(input.Settings.PrimaryStartTimeout))
            {
                return new HaPlan(
                    $"releasing the leader key: PostgreSQL did not start within primary_start_timeout ({input.Settings.PrimaryStartTimeout} s)",
                    [new ReleaseLeader()]);
            }

            // A standby that got the lock must be promoted explicitly (so the timeline switch is recorded); start it first.
            var role = WasPrimary(pg) ? StartRole.Primary : StartRole.Replica;
            return new HaPlan($"starting PostgreSQL as {(role == StartRole.Primary ? "primary" : "a standby to promote")}: I hold the leader lock",
                [new StartPostgres(role, null, null)]);
        }

        if (cluster.Leader is null)
        {
            return new HaPlan("starting as a secondary: there is no leader", [new StartPostgres(StartRole.Replica, null, null)]);
        }

        var leader = cluster.LeaderMember;
        if (leader?.Data.ConnUrl is not { } url || ConnUrl.Parse(url) is not { } address)
        {
            if (WasPrimary(pg))
            {
                // Starting it as a standby would write standby.signal and erase the evidence that it must be rewound.
                return HaPlan.NoAction($"waiting for leader '{cluster.Leader.Name}' to publish its address: this data directory was a primary and must be rewound before following");
            }

            return new HaPlan($"starting as a secondary: leader '{cluster.Leader.Name}' has not published its address yet",
                [new StartPostgres(StartRole.Replica, null, null)]);
        }

        var upstream = UpstreamFor(input, address);
        if (NeedsRewind(pg, leader))
        {
            var useRewind = input.Settings.Postgresql.UsePgRewind;
            return new HaPlan(useRewind
                    ? $"rewinding from leader '{leader.Name}' before following it: this data directory was a primary"
                    : $"re-cloning from leader '{leader.Name}': this data directory was a primary and use_pg_rewind is off",
                [new RewindOrReclone(leader.Name, address, useRewind), new StartPostgres(StartRole.Replica, leader.Name, upstream)]);
        }

        return new HaPlan($"starting as a secondary following leader '{leader.Name}'",
            [new StartPostgres(StartRole.Replica, leader.Name, upstream)]);
    }

    private static HaPlan DecideLeader(HaInput input, ClusterView cluster)
    {
        var me = input.Me;
        if (cluster.Failover is { } request && IsSwitchoverFromMe(request, me))
        {
            if (request.ScheduledAt is { } at && at > input.Now)
            {
                return new HaPlan($"no action. I am ({me}), the leader with the lock; switchover scheduled at {at:O}", [new LeaderHousekeeping()]);
            }

            return DecideSwitchover(input, cluster, request);
        }

        if (cluster.Failover is { } stale)
        {
            // A request that does not name me as the leader to switch from (or names me as its candidate) can never be
            // carried out; left in place it would steer a later election. Patroni removes it too.
            return new HaPlan($"removing a stale failover request (leader {stale.Leader ?? "any"}, candidate {stale.Candidate ?? "any"}). I am ({me}), the leader with the lock",
                [new DeleteFailoverKey(), new LeaderHousekeeping()]);
        }

        if (input.Pg.InRecovery == true)
        {
            return new HaPlan("promoted self to leader because I had the session lock", [new Promote("promoted: held the session lock as a standby")]);
        }

        return new HaPlan($"no action. I am ({me}), the leader with the lock", [new LeaderHousekeeping()]);
    }

    private static HaPlan DecideSwitchover(HaInput input, ClusterView cluster, FailoverRequest request)
    {
        var candidates = cluster.Members
            .Where(m => m.Name != input.Me && (request.Candidate is null || m.Name == request.Candidate))
            .Where(m => m.Data.Role == "replica" && m.Data.State == "running" && !TagIsTrue(m.Data.Tags, "nofailover"))
            .ToList();
        if (candidates.Count == 0)
        {
            return new HaPlan($"switchover cancelled: no healthy candidate{(request.Candidate is null ? "" : $" '{request.Candidate}'")}",
                [new DeleteFailoverKey(), new LeaderHousekeeping()]);
        }

        if (input.Peers is null)
        {
            return new HaPlan("checking the switchover candidates", [new FetchPeers()]);
        }

        var healthy = candidates.Any(c => input.Peers.TryGetValue(c.Name, out var p) && p.Reachable && p.Role == "replica"
            && p.Lsn is { } lsn && input.Pg.WriteLsn is { } mine && mine - lsn <= input.Settings.MaximumLagOnFailover);
        if (!healthy)
        {
            return new HaPlan("switchover cancelled: the candidate is not reachable or lags more than maximum_lag_on_failover",
                [new DeleteFailoverKey(), new LeaderHousekeeping()]);
        }

        // Stop first (the shutdown checkpoint reaches the replicas), then hand over the key: the candidate promotes.
        return new HaPlan($"switchover: demoting self so that {(request.Candidate ?? "the healthiest replica")} can take over",
        [
            new Checkpoint(),
            new StopPostgres(StopMode.Fast),
            new ReleaseLeader(),
            new StartPostgres(StartRole.Replica, null, null),
        ]);
    }

    private static HaPlan DecideFollower(HaInput input, ClusterView cluster, LeaderKey leaderKey)
    {
        var me = input.Me;
        var pg = input.Pg;
        if (pg.InRecovery == false)
        {
            return new HaPlan("demoting self because I do not have the lock and I was a leader",
                [new StopPostgres(StopMode.Immediate)]);
        }

        var leader = cluster.LeaderMember;
        if (leader?.Data.ConnUrl is not { } url || ConnUrl.Parse(url) is not { } address)
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary; leader '{leaderKey.Name}' has not published its address yet");
        }

        var wanted = address.ToString();
        if (input.CurrentUpstream != wanted)
        {
            return new HaPlan($"following new leader '{leader.Name}'", [new Follow(leader.Name, UpstreamFor(input, address))]);
        }

        if (!pg.Streaming && input.NotStreamingSince is { } since && input.Now - since > DivergenceGrace
            && leader.Data.Timeline is { } leaderTimeline && pg.Timeline is { } mine && leaderTimeline > mine)
        {
            var useRewind = input.Settings.Postgresql.UsePgRewind;
            return new HaPlan($"not streaming from leader '{leader.Name}' on timeline {leaderTimeline} since {since:O}: my timeline {mine} may have diverged; rewinding",
            [
                new StopPostgres(StopMode.Fast),
                new RewindOrReclone(leader.Name, address, useRewind),
                new StartPostgres(StartRole.Replica, leader.Name, UpstreamFor(input, address)),
            ]);
        }

        return HaPlan.NoAction($"no action. I am ({me}), a secondary, and following a leader ({leader.Name})");
    }

    private static HaPlan DecideNoLeader(HaInput input, ClusterView cluster)
    {
        var me = input.Me;
        var pg = input.Pg;
        var newestTimeline = cluster.History.Count == 0 ? 1 : cluster.History.Max(h => h.Timeline) + 1;

        if (pg.InRecovery == false)
        {
            // A primary without the key (lease expired, or the agent restarted). Nobody else can have promoted without
            // taking the key, unless the history says so: then this primary is stale and must stop taking writes.
            if (pg.Timeline is { } tl && tl < newestTimeline)
            {
                return new HaPlan($"demoting self: the cluster moved to timeline {newestTimeline} while I was a primary on timeline {tl}",
                    [new StopPostgres(StopMode.Immediate)]);
            }

            return new HaPlan("acquired session lock as a leader: I am the running primary", [new AcquireLeader(), new LeaderHousekeeping()]);
        }

        if (input.Tags.NoFailover)
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary with nofailover set; waiting for a leader");
        }

        var request = cluster.Failover;
        if (request?.Leader == me)
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary; I stepped down for a switchover and do not take part in this election");
        }

        var namedForMe = request?.Candidate == me;
        if (request?.Candidate is { } candidate && candidate != me && cluster.GetMember(candidate) is { Data.State: "running" })
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary; waiting for '{candidate}' to take over as requested");
        }

        var myLsn = pg.Lsn ?? 0;
        if (!namedForMe && cluster.Status is { } status && status.Optime - myLsn > input.Settings.MaximumLagOnFailover)
        {
            return HaPlan.NoAction($"not eligible for failover: {status.Optime - myLsn} bytes behind the last known leader position " +
                                   $"(maximum_lag_on_failover {input.Settings.MaximumLagOnFailover})");
        }

        if (input.Peers is null)
        {
            return new HaPlan("no leader: asking the other members before taking over", [new FetchPeers()]);
        }

        if (!namedForMe)
        {
            var seenWithin = TimeSpan.FromSeconds(input.Settings.Ttl);
            foreach (var peer in input.Peers.Values.OrderBy(p => p.Name, StringComparer.Ordinal))
            {
                if (peer.Name == me || !peer.Reachable || peer.Name == request?.Leader)
                {
                    continue; // the member that stepped down for a switchover stays out of the election (Patroni does the same)
                }

                if (peer.DcsLastSeen is { } seen && input.Now - seen > seenWithin)
                {
                    continue; // it cannot reach etcd, so it cannot take over; do not wait for it
                }

                // Before the nofailover check: a running primary takes the key back whatever its tags (the primary branch above).
                if (peer.Role is "primary" or "master")
                {
                    return HaPlan.NoAction($"no action. I am ({me}), a secondary; the former primary '{peer.Name}' is still running and may take the key back");
                }

                if (peer.NoFailover)
                {
                    continue;
                }

                if (peer.Lsn is { } theirs && theirs > myLsn)
                {
                    return HaPlan.NoAction($"no action. I am ({me}), a secondary; '{peer.Name}' is ahead ({theirs} > {myLsn}) and should take over");
                }
            }
        }

        var steps = new List<HaStep> { new AcquireLeader(), new Promote(namedForMe ? "manual failover" : "no leader") };
        return new HaPlan("promoted self to leader by acquiring session lock", steps);
    }

    /// <summary>
    /// A data directory that last ran as a primary (or crashed while one) may hold WAL the new leader never saw; it must not
    /// stream before pg_rewind has compared the timelines (pg_rewind itself says "no rewind required" when nothing diverged).
    /// A standby whose timeline is ahead of the leader's has diverged too.
    /// </summary>
    internal static bool NeedsRewind(PgState pg, Member leader) =>
        WasPrimary(pg) || (pg.ControlTimeline is { } mine && leader.Data.Timeline is { } theirs && mine > theirs);

    internal static bool WasPrimary(PgState pg) =>
        !pg.StandbySignal && pg.ControlState is "in production" or "shut down" or "in crash recovery";

    private static bool IsSwitchoverFromMe(FailoverRequest request, string me) =>
        request.Leader == me || (request.Leader is null && request.Candidate is not null && request.Candidate != me);

    public static bool TagIsTrue(IReadOnlyDictionary<string, object?>? tags, string name) =>
        tags is not null && tags.TryGetValue(name, out var v) && v switch
        {
            bool b => b,
            string s => s.Equals("true", StringComparison.OrdinalIgnoreCase) || s.Equals("on", StringComparison.OrdinalIgnoreCase),
            System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.True } => true,
            _ => false,
        };

    private static Upstream UpstreamFor(HaInput input, HostPort address) =>
        new(address, input.Settings.Postgresql.UseSlots ? SlotNames.For(input.Me) : null);

    private static HaPlan Fail(string reason) => new(reason, [new Fatal(reason)]);
}
