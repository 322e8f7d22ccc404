using System.Globalization;
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
    public static HaPlan Decide(HaInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Settings.StandbyCluster is null)
        {
            return DecideCluster(input);
        }

        // A standby cluster replicates from the remote primary: synchronous replication does not apply (Patroni ignores it
        // there too), and what would make this member a primary makes it the standby leader instead.
        var standbyInput = input.Settings.SynchronousMode
            ? input with { Settings = input.Settings with { SynchronousMode = false, SynchronousModeQuorum = false } }
            : input;
        return AsStandbyLeader(standbyInput, DecideCluster(standbyInput));
    }

    /// <summary>The member name a standby leader's upstream is known by in plans and logs.</summary>
    public const string RemotePrimary = "standby_cluster";

    /// <summary>
    /// A standby cluster's version of <paramref name="plan"/>: every step that would make this member a primary makes it the
    /// standby leader — a promotion becomes following the remote primary (nothing when it already does), a start as primary
    /// or as "a standby to promote" by the lock holder becomes a start as a standby of the remote primary. The rest (the
    /// election, switchover, the release of the lock, the followers' rules) is the normal cluster's.
    /// </summary>
    private static HaPlan AsStandbyLeader(HaInput input, HaPlan plan)
    {
        var standby = input.Settings.StandbyCluster!;
        var remote = new Upstream(new HostPort(standby.Host, standby.Port), standby.PrimarySlotName);
        var takesLock = plan.Steps.Any(s => s is AcquireLeader)
                        || input.Cluster?.Leader is { } key && key.Name == input.Me && key.LeaseId == input.MyLeaseId;
        var following = input.CurrentUpstream == remote.Address.ToString();
        var steps = new List<HaStep>();
        var changed = false;
        foreach (var step in plan.Steps)
        {
            switch (step)
            {
                case Promote:
                    changed = true;
                    if (!following)
                    {
                        steps.Add(new Follow(RemotePrimary, remote));
                    }

                    steps.Add(new LeaderHousekeeping());
                    break;
                case StartPostgres { Role: StartRole.Primary } or StartPostgres { Upstream: null } when takesLock:
                    changed = true;
                    steps.Add(new StartPostgres(StartRole.Replica, RemotePrimary, remote));
                    break;
                default:
                    steps.Add(step);
                    break;
            }
        }

        if (!changed)
        {
            return plan;
        }

        var message = plan.Steps.Any(s => s is Promote) && following && !plan.Steps.Any(s => s is AcquireLeader)
            ? $"no action. I am ({input.Me}), the standby leader with the lock, following the remote primary {remote.Address}"
            : $"{plan.Message} (standby cluster: as the standby leader, following the remote primary {remote.Address})";
        return new HaPlan(message, steps) { RecheckAfter = plan.RecheckAfter };
    }

    private static HaPlan DecideCluster(HaInput input)
    {
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
            if (!IsMySession(input, stale))
            {
                return HaPlan.NoAction(NotMySession(input, stale));
            }

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
            // Looked at before the lock is: a primary that does not answer must not keep the key for ever.
            return iHoldLock ? DecideUnansweringLeader(input) : HaPlan.NoAction($"PostgreSQL is starting up; waiting. I am ({me})");
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

        if (cluster.Leader is { } named && !IsMySession(input, named))
        {
            return HaPlan.NoAction(NotMySession(input, named));
        }

        return input.Pg.DataDir switch
        {
            DataDirStatus.Empty when cluster.Leader is not null => new HaPlan("releasing the leader key: my data directory is empty", [new ReleaseLeader()]),
            DataDirStatus.Empty when input.Tags.NoFailover || NeverPromotes(input.Tags.All) => HaPlan.NoAction("waiting for leader to bootstrap"),
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

        if (cluster.Leader.Name == input.Me && !IsMySession(input, cluster.Leader))
        {
            return HaPlan.NoAction(NotMySession(input, cluster.Leader));
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

        // Patroni's clonefrom tag: a running, streaming replica that offers itself as a clone source takes the base backup's
        // load off the leader (the first by name, so every member picks the same; the leader when there is none).
        var source = cluster.Members
            .Where(m => m.Name != input.Me && m.Name != leader.Name && TagIsTrue(m.Data.Tags, "clonefrom") && m.Data is { State: "running", Role: "replica", ReplicationState: "streaming" })
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .Select(m => m.Data.ConnUrl is { } u && ConnUrl.Parse(u) is { } a ? (m.Name, Address: a) : default)
            .FirstOrDefault(s => s.Name is not null);
        return source.Name is { } replica
            ? new HaPlan($"trying to bootstrap from replica '{replica}' (tagged clonefrom), then following leader '{leader.Name}'",
            [
                new CloneFrom(replica, source.Address),
                new StartPostgres(StartRole.Replica, leader.Name, UpstreamFor(input, address)),
            ])
            : new HaPlan($"trying to bootstrap from leader '{leader.Name}'",
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
            // Only what PostgreSQL itself recorded says it was a primary when it stopped: the mark is also set just before
            // a promotion that may never have happened, and a standby's directory started as a primary would take writes
            // on the timeline it shares with the others, with no switch to tell the histories apart.
            var role = StoppedAsPrimary(pg) ? StartRole.Primary : StartRole.Replica;
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
        var leaderTimeline = AnsweringLeader(input, leader.Name)?.Timeline ?? leader.Data.Timeline;
        if (RewindReason(pg, leaderTimeline, cluster.History) is { } why)
        {
            if (UnlessLeaderAnswers(input, leader.Name, why) is { } wait)
            {
                return wait;
            }

            var useRewind = input.Settings.Postgresql.UsePgRewind;
            return new HaPlan(useRewind
                    ? $"rewinding from leader '{leader.Name}' before following it: {why}"
                    : $"re-cloning from leader '{leader.Name}': {why} and use_pg_rewind is off",
                [new RewindOrReclone(leader.Name, address, useRewind), new StartPostgres(StartRole.Replica, leader.Name, upstream)]);
        }

        var (node, nodeAddress) = NodeToFollow(input, cluster, leader.Name, address);
        return node == leader.Name
            ? new HaPlan($"starting as a secondary following leader '{leader.Name}'", [new StartPostgres(StartRole.Replica, leader.Name, upstream)])
            : new HaPlan($"starting as a secondary following replica '{node}' (replicatefrom) of leader '{leader.Name}'",
                [new StartPostgres(StartRole.Replica, node, UpstreamFor(input, nodeAddress))]);
    }

    /// <summary>
    /// I hold the lock but PostgreSQL does not answer (hung, storage stalled, stuck in recovery): writes go nowhere and no
    /// replica may take over while I keep the key. After primary_start_timeout, stop it and hand the key over.
    /// </summary>
    private static HaPlan DecideUnansweringLeader(HaInput input)
    {
        var limit = input.Settings.PrimaryStartTimeout;
        var silent = input.PgUnresponsiveSince is { } since ? input.Now - since : TimeSpan.Zero;
        if (input.PgUnresponsiveSince is not null && silent > TimeSpan.FromSeconds(limit))
        {
            // Stop first: once the key is gone a replica promotes, and this server must not take a write after that.
            return new HaPlan(
                $"stopping PostgreSQL and releasing the leader key: it has not answered for {silent.TotalSeconds:0} s (primary_start_timeout {limit} s)",
                [new StopPostgres(StopMode.Immediate), new ReleaseLeader()]);
        }

        // Stable from cycle to cycle (operators grep it): when it started, not how long ago.
        var from = input.PgUnresponsiveSince is { } start ? $" of {start:O}" : "";
        return HaPlan.NoAction($"PostgreSQL is starting up or not answering; waiting. I am ({input.Me}), the leader with the lock; " +
                               $"releasing it if PostgreSQL does not answer within primary_start_timeout ({limit} s){from}");
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
            .Where(m => m.Data.Role == "replica" && m.Data.State == "running" && !NeverPromotes(m.Data.Tags))
            .Where(m => SyncBlocks(input, cluster, m.Name) is null)
            .ToList();
        if (candidates.Count == 0)
        {
            var sync = input.Settings.SynchronousMode ? " (synchronous mode: only a synchronous standby may take over)" : "";
            return new HaPlan($"switchover cancelled: no healthy candidate{(request.Candidate is null ? "" : $" '{request.Candidate}'")}{sync}",
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

        // PgBouncers in front of the routers are paused first (their transactions finish, new ones wait), so that no client
        // sees the demotion; the wait is bounded, and checked every cycle rather than slept through.
        var gate = SwitchoverPause.Check(cluster, request, input.SwitchoverWaited ?? TimeSpan.Zero);
        if (!gate.Proceed)
        {
            return new HaPlan(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"switchover: waiting up to {gate.Bound.TotalSeconds:0.#} s for router(s) {string.Join(", ", gate.Waiting)} to pause their PgBouncers"),
                [new LeaderHousekeeping()]) { RecheckAfter = gate.Remaining };
        }

        // Stop first (the shutdown checkpoint reaches the replicas), then hand over the key: the candidate promotes.
        var note = gate.Note is null ? "" : $" ({gate.Note})";
        return new HaPlan($"switchover: demoting self so that {(request.Candidate ?? "the healthiest replica")} can take over{note}",
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

        if (pg.PrimaryMark)
        {
            // A former primary running as a standby (started with no leader to follow): the mark says it has not been
            // checked against any leader's history since it took writes. pg_rewind checks (and says "no rewind required"
            // when nothing diverged) before it streams from anyone.
            return RewindRunningReplica(input, leader.Name, address,
                "this data directory ran as a primary and has not been checked against the leader's history");
        }

        var (node, nodeAddress) = NodeToFollow(input, cluster, leader.Name, address);
        var wanted = nodeAddress.ToString();
        if (input.CurrentUpstream != wanted)
        {
            return new HaPlan(node == leader.Name ? $"following new leader '{leader.Name}'" : $"following replica '{node}' (replicatefrom) of leader '{leader.Name}'",
                [new Follow(node, UpstreamFor(input, nodeAddress))]);
        }

        if (pg.Streaming)
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary, and following a leader ({leader.Name})");
        }

        // Not streaming proves nothing (the leader may be down, busy or refusing replication for a while): stopping a healthy
        // replica, rewinding it or moving its data aside needs proof that it left the leader's history.
        var leaderTimeline = AnsweringLeader(input, leader.Name)?.Timeline ?? leader.Data.Timeline;
        if (DivergedFrom(pg.ReplayTimeline, pg.ReplayLsn, leaderTimeline, cluster.History) is { } why)
        {
            return RewindRunningReplica(input, leader.Name, address, why);
        }

        if (TagIsTrue(input.Tags.All, "nostream"))
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary tagged nostream, following a leader ({leader.Name}) from the WAL archive");
        }

        var since = input.NotStreamingSince is { } s ? $" since {s:O}" : "";
        return HaPlan.NoAction($"no action. I am ({me}), a secondary, and following a leader ({leader.Name}); not streaming{since}, " +
                               "and nothing shows that my timeline left the leader's history");
    }

    /// <summary>Stop, pg_rewind (or re-clone) and start again as the leader's replica — once the leader answers.</summary>
    private static HaPlan RewindRunningReplica(HaInput input, string leader, HostPort address, string why)
    {
        if (UnlessLeaderAnswers(input, leader, why) is { } wait)
        {
            return wait;
        }

        var useRewind = input.Settings.Postgresql.UsePgRewind;
        return new HaPlan($"{(useRewind ? "rewinding" : "re-cloning")} from leader '{leader}': {why}",
        [
            new StopPostgres(StopMode.Fast),
            new RewindOrReclone(leader, address, useRewind),
            new StartPostgres(StartRole.Replica, leader, UpstreamFor(input, address)),
        ]);
    }

    private static HaPlan DecideNoLeader(HaInput input, ClusterView cluster)
    {
        var me = input.Me;
        var pg = input.Pg;
        var newestTimeline = HistoryEntry.MaxTimeline(cluster.History);

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

        if (input.Tags.NoFailover || NeverPromotes(input.Tags.All))
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary with nofailover set{(input.Tags.NoFailover ? "" : " (failover_priority 0)")}; waiting for a leader");
        }

        if (input.Settings.FailsafeMode && input.FailsafeLeader is { } failsafe && failsafe != me)
        {
            // I promised that leader, over POST /failsafe, not to take over for ttl: it keeps its primary on that promise.
            return HaPlan.NoAction($"no action. I am ({me}), a secondary; failsafe: leader '{failsafe}' confirmed itself within ttl " +
                                   $"while etcd was unreachable for it; not taking over");
        }

        var (request, ignored) = FailoverInForce(input, cluster);
        var note = ignored is null ? "" : $"; {ignored}";
        if (request?.Leader == me)
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary; I stepped down for a switchover and do not take part in this election " +
                                   $"unless nobody takes over within ttl ({input.Settings.Ttl} s)");
        }

        var namedForMe = request?.Candidate == me;
        if (request?.Candidate is { } candidate && candidate != me)
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary; waiting for '{candidate}' to take over as requested");
        }

        if (SyncBlocks(input, cluster, me) is { } notSync)
        {
            return HaPlan.NoAction($"no action. I am ({me}), a secondary; not promoting: {notSync}{note}");
        }

        // A synchronous standby on record holds every acknowledged commit: the lag limit does not apply to it.
        var onRecord = IsSyncOnRecord(input, cluster, me);

        // Positions compare as (timeline, LSN), the order of WAL in the cluster's history: a member left behind on an older
        // timeline (or that wrote past the point where the cluster left it) lacks what the newer timeline acknowledged, however
        // large its LSN.
        var myTimeline = pg.Timeline ?? pg.ControlTimeline ?? 0;
        var myLsn = pg.Lsn ?? 0;
        var maxLag = input.Settings.MaximumLagOnFailover;
        if (!namedForMe && !onRecord && cluster.Status is { } status && status.Optime - myLsn > maxLag)
        {
            return HaPlan.NoAction($"not eligible for failover: {status.Optime - myLsn} bytes behind the last known leader position " +
                                   $"(maximum_lag_on_failover {maxLag}){note}");
        }

        if (input.Peers is null)
        {
            return new HaPlan($"no leader: asking the other members before taking over{note}", [new FetchPeers()]);
        }

        if (!namedForMe)
        {
            var myPriority = FailoverPriority(input.Tags.All);
            var seenWithin = TimeSpan.FromSeconds(input.Settings.Ttl);
            foreach (var peer in input.Peers.Values.OrderBy(p => p.Name, StringComparer.Ordinal))
            {
                if (peer.Name == me || !peer.Reachable || peer.Name == request?.Leader)
                {
                    continue; // the member that stepped down for a switchover stays out of the election while the request holds
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

                if (peer.NoFailover || peer.FailoverPriority <= 0 || peer.Lsn is not { } theirs || SyncBlocks(input, cluster, peer.Name) is not null)
                {
                    continue; // it will not take over (in synchronous mode: it is not on record in the sync key)
                }

                if (!IsSyncOnRecord(input, cluster, peer.Name) && cluster.Status is { } last && last.Optime - theirs > maxLag)
                {
                    continue; // it lags too far to take over itself (it decides the same from the same numbers): do not wait for it
                }

                var theirTimeline = peer.Timeline ?? 0;
                if (theirTimeline > myTimeline || (theirTimeline == myTimeline && theirs > myLsn))
                {
                    return HaPlan.NoAction($"no action. I am ({me}), a secondary; '{peer.Name}' is ahead (timeline {theirTimeline} at {Lsn.Format(theirs)}, " +
                                           $"I am on timeline {myTimeline} at {Lsn.Format(myLsn)}) and should take over");
                }

                // Patroni 4's failover_priority: at the same position the higher priority takes over.
                var theirPriority = peer.FailoverPriority ?? FailoverPriority(cluster.GetMember(peer.Name)?.Data.Tags);
                if (theirTimeline == myTimeline && theirs == myLsn && theirPriority > myPriority)
                {
                    return HaPlan.NoAction($"no action. I am ({me}), a secondary; '{peer.Name}' is as far as I am (timeline {theirTimeline} at {Lsn.Format(theirs)}) " +
                                           $"and its failover_priority {theirPriority} is higher than mine ({myPriority}): it should take over");
                }
            }
        }

        // Quorum commit, also for a member named by a switchover or failover (the operator's choice cannot make up for a
        // commit it lacks): an acknowledged commit is missing from at most `quorum` voters, so among quorum + 1 voters none
        // of which is ahead of me one holds it — and so do I. The former leader holds every commit: seeing it running as a
        // replica, not ahead of me (after a switchover it stopped cleanly), is enough on its own.
        if (SyncReplication.QuorumVotesNeeded(input.Settings, cluster.Sync, me) is { } needed && cluster.Sync is { } voters)
        {
            var votes = new List<string>();
            if (voters.IsStandby(me))
            {
                votes.Add(me);
            }

            var formerLeaderNotAhead = false;
            foreach (var peer in input.Peers.Values)
            {
                var theirTimeline = peer.Timeline ?? 0;
                // A position read while a leader could still acknowledge commits may be behind what the member holds now.
                var notAhead = peer.Name != me && peer.Reachable && peer.WalAfterLeaderGone && peer.Lsn is { } theirs
                               && (theirTimeline < myTimeline || (theirTimeline == myTimeline && theirs <= myLsn));
                if (notAhead && voters.IsStandby(peer.Name))
                {
                    votes.Add(peer.Name);
                }

                // Only a former leader running as a replica reports a position that includes all it ever acknowledged.
                formerLeaderNotAhead |= notAhead && peer.Name == voters.Leader && peer is { Role: "replica", State: "running" };
            }

            if (votes.Count < needed && !formerLeaderNotAhead)
            {
                return HaPlan.NoAction($"no action. I am ({me}), a secondary; quorum commit: I see {votes.Count} of the {needed} voters needed " +
                                       $"(quorum {voters.Quorum ?? 0} of voters {voters.SyncStandby}; seen not ahead of me: [{string.Join(", ", votes.Order(StringComparer.Ordinal))}]), " +
                                       $"so I cannot be sure I hold every acknowledged commit{note}");
            }
        }

        var steps = new List<HaStep> { new AcquireLeader(), new Promote(namedForMe ? "manual failover" : "no leader") };
        return new HaPlan($"promoted self to leader by acquiring session lock{note}", steps);
    }

    /// <summary>
    /// The <c>failover</c> request, unless it can no longer be carried out: then the reason it is ignored, and the normal
    /// election runs (the member that stepped down included). A request that is never carried out (the candidate crashed
    /// after the leader released the key, or cannot take over) must not keep the cluster leaderless.
    /// </summary>
    private static (FailoverRequest? Request, string? Ignored) FailoverInForce(HaInput input, ClusterView cluster)
    {
        if (cluster.Failover is not { } request)
        {
            return (null, null);
        }

        var ttl = input.Settings.Ttl;
        var why = request switch
        {
            { ScheduledAt: { } at } when at > input.Now => $"it is scheduled for {at:O} and there is no leader to switch over from",
            _ when input.LeaderMissingSince is { } since && input.Now - since > TimeSpan.FromSeconds(ttl) =>
                $"nobody took over within ttl ({ttl} s) of the leader key disappearing",
            { Candidate: { } candidate } when candidate != input.Me && CandidateCannotTakeOver(input, cluster, candidate) is { } problem =>
                $"candidate '{candidate}' {problem}",
            _ => null,
        };
        return why is null
            ? (request, null)
            : (null, $"ignoring the failover request (leader {request.Leader ?? "any"}, candidate {request.Candidate ?? "any"}): {why}");
    }

    private static string? CandidateCannotTakeOver(HaInput input, ClusterView cluster, string candidate)
    {
        if (cluster.GetMember(candidate) is not { } member)
        {
            return "has no member key";
        }

        if (member.Data.State != "running")
        {
            return $"is {member.Data.State ?? "in an unknown state"}";
        }

        if (NeverPromotes(member.Data.Tags) || input.Peers?.GetValueOrDefault(candidate) is { NoFailover: true })
        {
            return "is tagged nofailover (or failover_priority 0)";
        }

        if (SyncBlocks(input, cluster, candidate) is { } notSync)
        {
            return notSync;
        }

        return input.Peers?.GetValueOrDefault(candidate) is { Reachable: false } ? "does not answer" : null;
    }

    /// <summary>
    /// Null when <paramref name="member"/> may promote as far as synchronous mode is concerned; else why it may not. In
    /// synchronous mode only a standby on record in the <c>sync</c> key (or the leader the key names) may, because only those
    /// may have acknowledged the last commits. With no standby on record the leader ran asynchronously: anyone may (the
    /// healthiest wins), unless synchronous_mode_strict promised that no commit is acknowledged by the primary alone.
    /// </summary>
    /// <summary>The key is on this agent's lease, or on one its earlier runs held.</summary>
    private static bool IsMySession(HaInput input, LeaderKey key) =>
        (key.LeaseId == input.MyLeaseId && input.MyLeaseId != 0) || input.PastLeaseIds.Contains(key.LeaseId);

    private static string NotMySession(HaInput input, LeaderKey key) =>
        string.Create(CultureInfo.InvariantCulture,
            $"no action. I am ({input.Me}); the leader key names me but is held by session {key.LeaseId:x}, which is not one of mine: " +
            $"another agent may be running with the name '{input.Me}'. Not touching it (it expires unless that agent renews it)");

    internal static string? SyncBlocks(HaInput input, ClusterView cluster, string member) =>
        SyncReplication.PromotionBlocked(input.Settings, cluster.Sync, member);

    private static bool IsSyncOnRecord(HaInput input, ClusterView cluster, string member) =>
        input.Settings.SynchronousMode && cluster.Sync is { } sync && sync.IsStandby(member);

    /// <summary>
    /// Why a replica that replayed up to <paramref name="lsn"/> on <paramref name="timeline"/> can never follow a leader on
    /// <paramref name="leaderTimeline"/> without pg_rewind; null when that is not proven. Proof is one of:
    /// <list type="bullet">
    /// <item>a replay timeline ahead of the leader's;</item>
    /// <item>a replay timeline that is not on the leader's line of descent (<see cref="LineOf"/>), the whole line being on
    /// record in <c>history</c>: a replica reaches a timeline only by replaying a record of it, at or past the point where
    /// that timeline forked, and WAL the leader's line never had begins there (the branch of a leader that crashed right
    /// after its promotion, 1 → 2, while the cluster went 1 → 3);</item>
    /// <item>a replay position past the point where the leader's line left the replica's timeline.</item>
    /// </list>
    /// A replica on the leader's line that has not passed that point has not diverged: PostgreSQL follows the timeline switch
    /// once it streams again. A line not fully on record (Patroni's history, a lost key) falls back to the switch points
    /// recorded off the replica's timeline, and no row for it is no proof. A reservation row counts with its position.
    /// </summary>
    internal static string? DivergedFrom(long? timeline, long? lsn, long? leaderTimeline, IReadOnlyList<HistoryEntry> history)
    {
        if (timeline is not { } mine || leaderTimeline is not { } theirs || mine == theirs)
        {
            return null;
        }

        if (mine > theirs)
        {
            return $"I replay timeline {mine}, ahead of the leader's timeline {theirs}";
        }

        HistoryEntry? left;
        if (LineOf(theirs, history) is { } line)
        {
            if (!line.TryGetValue(mine, out left))
            {
                return $"I replay timeline {mine}, which is not on the leader's line of timelines {string.Join(" → ", line.Keys.Order())}";
            }
        }
        else
        {
            // Should history hold two switches off one timeline, only a position past both is proof.
            left = history.Where(h => h.Timeline == mine).MaxBy(h => h.Lsn);
        }

        // A reservation's position (where the promoting replica stood when it reserved) may fall short of the real switch
        // point: a proof from it costs at worst a pg_rewind that says "no rewind required"; no proof at all would leave a
        // diverged replica waiting for an exact row that a leader killed after its promotion never writes.
        return lsn is { } position && left is { } switched && position > switched.Lsn
            ? $"I replayed timeline {mine} up to {Lsn.Format(position)}, past {Lsn.Format(switched.Lsn)} where the cluster left it for timeline {switched.CreatedTimeline}"
            : null;
    }

    /// <summary>
    /// The leader's line of descent: each timeline from <paramref name="leaderTimeline"/> back to 1, with the row of
    /// <c>history</c> by which the line left it (null for the leader's own timeline). Null when <c>history</c> does not give
    /// the whole line: a timeline on it that no row created, or that two rows say different things of.
    /// </summary>
    internal static IReadOnlyDictionary<long, HistoryEntry?>? LineOf(long leaderTimeline, IReadOnlyList<HistoryEntry> history)
    {
        var line = new Dictionary<long, HistoryEntry?> { [leaderTimeline] = null };
        for (var current = leaderTimeline; current > 1;)
        {
            var created = history.Where(h => h.CreatedTimeline == current).DistinctBy(h => (h.Timeline, h.Lsn)).ToList();
            if (created.Count != 1 || created[0].Timeline >= current || created[0].Timeline < 1)
            {
                return null;
            }

            current = created[0].Timeline;
            line[current] = created[0];
        }

        return line;
    }

    /// <summary>The leader's REST status if it answered this cycle as a running primary.</summary>
    private static PeerStatus? AnsweringLeader(HaInput input, string leader) =>
        input.Peers?.GetValueOrDefault(leader) is { Reachable: true, Role: "primary" or "master", State: "running" } status ? status : null;

    /// <summary>
    /// pg_rewind and a re-clone replace local data with the leader's, and a rewind that cannot reach its source ends in a
    /// data directory moved aside: only against a leader that answers as a running primary this cycle. Null when it does;
    /// otherwise the plan to follow instead (ask it, or wait).
    /// </summary>
    private static HaPlan? UnlessLeaderAnswers(HaInput input, string leader, string why)
    {
        if (input.Peers is null)
        {
            return new HaPlan($"{why}: asking leader '{leader}' before rewinding from it", [new FetchPeers()]);
        }

        return AnsweringLeader(input, leader) is null
            ? HaPlan.NoAction($"not rewinding: {why}, but leader '{leader}' does not answer as a running primary; waiting")
            : null;
    }

    /// <summary>
    /// A data directory that last ran as a primary (or crashed while one) may hold WAL the new leader never saw; it must not
    /// stream before pg_rewind has compared the timelines (pg_rewind itself says "no rewind required" when nothing diverged).
    /// A standby whose timeline is ahead of the leader's, or off its line of timelines, has diverged too. Null: nothing
    /// says it must be rewound before it follows the leader.
    /// </summary>
    internal static string? RewindReason(PgState pg, long? leaderTimeline, IReadOnlyList<HistoryEntry> history)
    {
        if (WasPrimary(pg))
        {
            return "this data directory was a primary";
        }

        if (pg.ControlTimeline is not { } mine || leaderTimeline is not { } theirs)
        {
            return null;
        }

        if (mine > theirs)
        {
            return $"my timeline {mine} is ahead of the leader's timeline {theirs}";
        }

        // The control file's timeline lags what was replayed, but only ever to an earlier timeline of the same line: a
        // checkpoint on a timeline off the leader's line proves this directory took that branch (see DivergedFrom).
        return mine != theirs && LineOf(theirs, history) is { } line && !line.ContainsKey(mine)
            ? $"my timeline {mine} is not on the leader's line of timelines {string.Join(" → ", line.Keys.Order())}"
            : null;
    }

    /// <summary>This data directory may hold writes no leader has: it is marked, or PostgreSQL last ran it as a primary.</summary>
    internal static bool WasPrimary(PgState pg) => pg.PrimaryMark || StoppedAsPrimary(pg);

    /// <summary>PostgreSQL's own record (no standby.signal, pg_control in production or after it) says it last ran as a primary.</summary>
    internal static bool StoppedAsPrimary(PgState pg) =>
        !pg.StandbySignal && pg.ControlState is "in production" or "shut down" or "in crash recovery";

    private static bool IsSwitchoverFromMe(FailoverRequest request, string me) =>
        request.Leader == me || (request.Leader is null && request.Candidate is not null && request.Candidate != me);

    /// <summary>
    /// A tag's integer value (<c>failover_priority</c>, <c>sync_priority</c>), or null when absent or not an integer.
    /// </summary>
    public static long? TagInt(IReadOnlyDictionary<string, object?>? tags, string name) =>
        tags is not null && tags.TryGetValue(name, out var v) ? v switch
        {
            long l => l,
            int i => i,
            string s when long.TryParse(s, System.Globalization.NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) => parsed,
            System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.Number } e when e.TryGetInt64(out var n) => n,
            _ => null,
        } : null;

    /// <summary>Patroni 4's <c>failover_priority</c> (default 1); <c>nofailover</c> means 0.</summary>
    public static long FailoverPriority(IReadOnlyDictionary<string, object?>? tags) =>
        TagIsTrue(tags, "nofailover") ? 0 : TagInt(tags, "failover_priority") ?? 1;

    /// <summary>A member that never takes over: <c>nofailover</c>, or <c>failover_priority: 0</c>.</summary>
    public static bool NeverPromotes(IReadOnlyDictionary<string, object?>? tags) => FailoverPriority(tags) <= 0;

    public static bool TagIsTrue(IReadOnlyDictionary<string, object?>? tags, string name) =>
        tags is not null && tags.TryGetValue(name, out var v) && v switch
        {
            bool b => b,
            string s => s.Equals("true", StringComparison.OrdinalIgnoreCase) || s.Equals("on", StringComparison.OrdinalIgnoreCase),
            System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.True } => true,
            _ => false,
        };

    /// <summary>A tag's text (a string tag, or any other scalar as JSON writes it); null when absent or empty.</summary>
    public static string? TagText(IReadOnlyDictionary<string, object?>? tags, string name) =>
        tags is not null && tags.TryGetValue(name, out var v) ? v switch
        {
            string s when s.Length > 0 => s,
            System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.String } e when e.GetString() is { Length: > 0 } text => text,
            _ => null,
        } : null;

    /// <summary>
    /// Patroni's <c>replicatefrom</c> tag (cascading replication): the member this one streams from — the named member when
    /// it is a running replica that streams itself (and does not name this one back, which would make a loop that no WAL
    /// reaches), else the leader. Null: the leader.
    /// </summary>
    public static string? CascadeSource(ClusterView cluster, string me, IReadOnlyDictionary<string, object?>? myTags)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return TagText(myTags, "replicatefrom") is { } from && from != me && from != cluster.Leader?.Name
               && cluster.GetMember(from) is { Data: { State: "running", Role: "replica", ReplicationState: "streaming", ConnUrl: { } url } } source
               && ConnUrl.Parse(url) is not null && TagText(source.Data.Tags, "replicatefrom") != me
            ? from
            : null;
    }

    /// <summary>The member to stream from and its address: <see cref="CascadeSource"/>, else the leader.</summary>
    private static (string Name, HostPort Address) NodeToFollow(HaInput input, ClusterView cluster, string leader, HostPort leaderAddress) =>
        CascadeSource(cluster, input.Me, input.Tags.All) is { } from && ConnUrl.Parse(cluster.GetMember(from)!.Data.ConnUrl!) is { } address
            ? (from, address)
            : (leader, leaderAddress);

    private static Upstream UpstreamFor(HaInput input, HostPort address) => TagIsTrue(input.Tags.All, "nostream")
        ? new(address, null, Stream: false)
        : new(address, input.Settings.Postgresql.UseSlots ? SlotNames.For(input.Me) : null);

    private static HaPlan Fail(string reason) => new(reason, [new Fatal(reason)]);
}
