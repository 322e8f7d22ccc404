using Microsoft.Extensions.Logging;
using Steward.Agent.Fence;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;
using Steward.Core.Postgres;
using Steward.Postgres;

namespace Steward.Agent;

/// <summary>A restart scheduled through the REST API.</summary>

/// <summary>
/// The agent's HA loop: observes etcd and the local PostgreSQL, asks <see cref="HaDecision"/> (pure) what to do, and hands
/// the plan to the <see cref="Converger"/>. One cycle at a time; a cycle starts every <c>loop_wait</c> seconds or at once
/// when the etcd watch reports a change. A separate <see cref="LeaseKeeper"/> keeps the session lease alive; when it
/// cannot, the <see cref="IPrimaryFence"/> kills a primary at the lease deadline — in this process, and from a supervisor
/// process when this one is dead or frozen.
/// </summary>
internal sealed class NodeAgent : IAsyncDisposable
{
    private readonly StewardConfig _config;
    private readonly IClusterStore _store;
    private readonly IPostgresControl _pg;
    private readonly IPeerClient _peers;
    private readonly IPrimaryFence _fence;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly LeaseKeeper _lease;
    private readonly AgentStatus _status;
    private readonly Converger _converger;
    private readonly SemaphoreSlim _cycleGate = new(1, 1);
    private readonly SessionLedger _sessions;

    private DateTimeOffset? _pgDownSince;
    private DateTimeOffset? _pgUnresponsiveSince;
    private DateTimeOffset? _leaderMissingSince;
    private DateTimeOffset? _notStreamingSince;
    private readonly SwitchoverTimer _switchover;
    private TimeSpan? _switchoverWaited;
    private TimeSpan? _recheckAfter;
    private string? _lastDecision;
    private string? _lastMemberJson;
    private long _lastMemberLease;
    private ScheduledRestart? _scheduledRestart;
    private (string Leader, long At)? _failsafeLeader;
    private long _configCheckedRevision;
    private volatile bool _failsafeConfirmed;
    private bool _leaderGoneSeen;

    public NodeAgent(StewardConfig config, IClusterStore store, IPostgresControl pg, IPeerClient peers, IPrimaryFence fence, TimeProvider time, ILoggerFactory loggers,
        SessionLedger? sessions = null)
    {
        ArgumentNullException.ThrowIfNull(loggers);
        _config = config;
        _sessions = sessions ?? new SessionLedger(null);
        _store = store;
        _pg = pg;
        _peers = peers;
        _fence = fence;
        _time = time;
        _log = loggers.CreateLogger("steward.ha");
        _status = new AgentStatus(time);
        _switchover = new SwitchoverTimer(time);
        _lease = new LeaseKeeper(store, time, loggers.CreateLogger("steward.lease"), () => Settings.Ttl, () => Settings.LoopWait, OnLeaseDeadlineAsync, fence)
        {
            LeaderName = config.Name,
            FailsafeConfirm = ConfirmFailsafeLeaderAsync,
        };
        _converger = new Converger(config, store, pg, fence, _status, time, _log, () => _lease.Current?.LeaseId ?? 0,
            id => _lease.IsValid && _lease.Current?.LeaseId == id);
    }

    /// <summary>Patroni's callbacks and pre_promote (<see cref="PostgresCallbacks"/>), when configured.</summary>
    public PostgresCallbacks? Callbacks
    {
        init
        {
            if (value is null)
            {
                return;
            }

            _status.Observer = value.Observe;
            _converger.Reloaded = value.Reloaded;
            _converger.PrePromote = value.PrePromoteAsync;
        }
    }

    /// <summary>Set when a step decided the agent cannot go on (e.g. system id mismatch).</summary>
    public string? FatalReason => _converger.FatalReason;

    /// <summary>
    /// What the agent knows, for the REST API. It holds the leader only while the key was taken on the current lease and
    /// that lease is provably alive on the monotonic clock: a frozen-then-resumed agent never vouches for an expired lease.
    /// </summary>
    public AgentSnapshot Snapshot
    {
        get
        {
            var s = _status.Snapshot;
            return s.HoldsLeader && !(_lease.IsValid && _lease.Current?.LeaseId == s.LeaseId) ? s with { HoldsLeader = false } : s;
        }
    }

    /// <summary>
    /// <see cref="Snapshot"/> checked against PostgreSQL now, for the health endpoints (DESIGN safety rule 8; Patroni
    /// queries PostgreSQL on each health request): if the postmaster the last cycle saw has gone, or is not accepting
    /// connections, since (<c>pg_ctl stop -m immediate</c>, kill -9, a crash restart, SIGSTOP), the answer says so at
    /// once — state <c>unknown</c>, as Patroni reports a server it cannot query — instead of after the next cycle,
    /// which in pause mode or during a long action may be a while. Costs a file read and a /proc read, no connection.
    /// </summary>
    public AgentSnapshot HealthSnapshot()
    {
        var s = Snapshot;
        if (!s.Pg.Running || s.Pg.PostmasterPid is not { } pid)
        {
            return s;
        }

        return _pg.CheckPostmaster(pid) switch
        {
            PostmasterNow.Gone => s with { Pg = s.Pg with { Running = false, Accepting = false, Streaming = false, PostmasterPid = null }, State = "unknown" },
            PostmasterNow.NotReady => s with { Pg = s.Pg with { Accepting = false, Streaming = false }, State = "unknown" },
            _ => s,
        };
    }

    public StewardConfig Config => _config;

    /// <summary>Effective dynamic settings: the <c>config</c> key when present, else bootstrap.dcs.</summary>
    public DynamicConfig Settings => _status.Snapshot.Cluster?.Config?.Value ?? _config.Bootstrap.Dcs;

    public LeaseKeeper Lease => _lease;

    public IClusterStore Store => _store;

    /// <summary>Monotonic timestamp of the end of the last cycle (for liveness).</summary>
    public TimeSpan SinceLastCycle => _time.GetElapsedTime(_status.Snapshot.LastCycleTimestamp);

    /// <summary>Runs cycles until cancelled or a fatal decision. Returns the process exit code.</summary>
    public async Task<int> RunAsync(CancellationToken ct)
    {
        _lease.Start(ct);
        while (!ct.IsCancellationRequested && FatalReason is null)
        {
            await RunCycleAsync(ct).ConfigureAwait(false);
            if (FatalReason is not null)
            {
                break;
            }

            await WaitForNextCycleAsync(ct).ConfigureAwait(false);
        }

        return FatalReason is null ? 0 : 1;
    }

    private async Task WaitForNextCycleAsync(CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var loopWait = TimeSpan.FromSeconds(Math.Max(1, Settings.LoopWait));
        var wait = _recheckAfter is { } recheck && recheck < loopWait ? TimeSpan.FromTicks(Math.Max(recheck.Ticks, TimeSpan.TicksPerMillisecond * 50)) : loopWait;
        var tick = Task.Delay(wait, _time, linked.Token);
        var change = _store.WaitForChangeAsync(linked.Token);
        var lease = _lease.WaitForLeaseEventAsync(linked.Token);
        try
        {
            await Task.WhenAny(tick, change, lease).ConfigureAwait(false);
        }
        finally
        {
            await linked.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One HA cycle. Public for tests and the simulation, which step the agent by hand.</summary>
    public async Task RunCycleAsync(CancellationToken ct)
    {
        await _cycleGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await CycleAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            // The loop must survive anything a cycle throws (a PostgreSQL, etcd, file or network error): the next cycle
            // decides again from what is then true.
            Log.CycleFailed(_log, e.Message, e);
        }
        finally
        {
            _cycleGate.Release();
        }
    }

    private async Task CycleAsync(CancellationToken ct)
    {
        var leaderGoneBeforeInspect = _leaderGoneSeen;
        var pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
        if (IsPrimaryOrMayBe(pg))
        {
            _fence.Arm(pg.PostmasterPid); // a primary (even one we did not start) lives only as long as our lease
        }

        await _converger.MarkPrimaryAsync(pg, ct).ConfigureAwait(false);

        var now = _time.GetUtcNow();
        ClusterView? cluster = null;
        var dcsSeen = _status.Snapshot.DcsLastSeen;
        try
        {
            cluster = await _store.LoadAsync(ct).ConfigureAwait(false);
            dcsSeen = now;
            _leaderGoneSeen = cluster.Leader is null;
            if (_lease.Current is { LeaseId: not 0 } lease)
            {
                // Written when it changed (or on a new lease), not every cycle: an idle cluster writes nothing to etcd.
                var data = _converger.MemberDataFor(pg, _status.Snapshot.State);
                var json = System.Text.Json.JsonSerializer.Serialize(data, StewardJson.Default.MemberData);
                if (json != _lastMemberJson || lease.LeaseId != _lastMemberLease || cluster.GetMember(_config.Name) is null)
                {
                    await _store.PutMemberAsync(_config.Name, data, ct).ConfigureAwait(false);
                    _lastMemberJson = json;
                    _lastMemberLease = lease.LeaseId;
                }
            }
        }
        catch (StoreUnavailableException e)
        {
            Log.StoreUnavailable(_log, e.Message);
        }

        if (cluster is not null)
        {
            _failsafeConfirmed = false; // failsafe confirmations are the lease keeper's (ConfirmFailsafeLeaderAsync)
        }

        if (cluster?.Config is { } config && config.ModRevision != _configCheckedRevision)
        {
            // Written by Patroni or by hand: kept as it is (the key round-trips), but said loudly, once per change.
            _configCheckedRevision = config.ModRevision;
            if (DynamicConfigJson.NotActedOn(config.Value) is { Count: > 0 } ignored)
            {
                Log.ConfigNotActedOn(_log, string.Join(", ", ignored));
            }

            if (DynamicConfigJson.TimingWarning(config.Value) is { } timing)
            {
                Log.ConfigTiming(_log, timing);
            }

            foreach (var problem in SlotSettings.Read(config.Value).Problems)
            {
                Log.SlotConfigProblem(_log, problem);
            }
        }

        TrackTimers(pg, cluster, now);
        var leaseId = _lease.Current?.LeaseId ?? 0;
        _sessions.Record(leaseId); // before any step can take the leader key on it
        // Without etcd we cannot see the key: we still hold it for as long as our lease certainly lives.
        var holds = cluster is null
            ? Snapshot.HoldsLeader
            : cluster.Leader is { } l && l.Name == _config.Name && l.LeaseId == leaseId && leaseId != 0;
        var walAfterLeaderGone = leaderGoneBeforeInspect && cluster is { Leader: null };
        _status.Publish(pg, cluster, holds ? leaseId : 0, dcsSeen, StateFor(pg), walAfterLeaderGone: walAfterLeaderGone);

        var input = new HaInput
        {
            Me = _config.Name,
            Cluster = cluster,
            Pg = pg,
            Settings = cluster?.Config?.Value ?? _config.Bootstrap.Dcs,
            Tags = _config.Tags,
            Now = now,
            MyLeaseId = leaseId,
            PastLeaseIds = _sessions.Leases,
            LeaseDeadline = _lease.Deadline,
            PgDownSince = _pgDownSince,
            PgUnresponsiveSince = _pgUnresponsiveSince,
            LeaderMissingSince = _leaderMissingSince,
            FailsafeLeader = FailsafeLeader,
            NotStreamingSince = _notStreamingSince,
            SwitchoverWaited = _switchoverWaited,
            CurrentUpstream = _converger.CurrentUpstream,
        };
        _store.SetRequestTimeout(TimeSpan.FromSeconds(input.Settings.RetryTimeout));
        var plan = HaDecision.Decide(input);
        if (plan.Has<FetchPeers>() && cluster is not null)
        {
            var peers = await _peers.FetchAsync(cluster, _config.Name, TimeSpan.FromSeconds(Math.Max(1, input.Settings.RetryTimeout) / 2.0), ct).ConfigureAwait(false);
            plan = HaDecision.Decide(input with { Peers = peers });
        }

        // The sentence is logged before the steps run (a step may take minutes or throw), except when it depends on
        // winning the leader race: that one is told once the race is decided.
        _recheckAfter = plan.RecheckAfter;
        var racing = plan.Has<AcquireLeader>();
        if (!racing)
        {
            LogDecision(plan, cluster);
        }

        HaStep? failed = null;
        try
        {
            failed = await _converger.ExecuteAsync(plan, input, ct).ConfigureAwait(false);
        }
        finally
        {
            if (plan.Has<Follow>() || plan.Has<StartPostgres>())
            {
                _notStreamingSince = null; // a new upstream gets its own grace period
            }

            if (racing)
            {
                LogDecision(failed is AcquireLeader ? HaPlan.NoAction("following new leader after trying and failing to obtain lock") : plan, cluster);
            }
        }

        if (plan.Steps.Count == 0 || plan.Has<LeaderHousekeeping>())
        {
            await _converger.ApplyDynamicConfigAsync(pg, input.Settings, ct).ConfigureAwait(false);
            await RunScheduledRestartAsync(pg, now, ct).ConfigureAwait(false);
        }

        if (plan.Steps.Count == 0 && failed is null)
        {
            // A replica with nothing else to do keeps its permanent slots and copies of the logical ones (Patroni's
            // sync_replication_slots / copy_logical_slots on a standby).
            await _converger.SyncReplicaSlotsAsync(input, pg, ct).ConfigureAwait(false);
        }

        var after = await _pg.InspectAsync(ct).ConfigureAwait(false);
        var holdsAfter = failed is AcquireLeader || plan.Has<ReleaseLeader>() ? false : holds || plan.Has<AcquireLeader>();
        UpdateFence(after, holdsAfter);
        _status.Publish(after, cluster, holdsAfter ? leaseId : 0, dcsSeen, StateFor(after), plan.Message, walAfterLeaderGone && cluster is { Leader: null });
    }

    /// <summary>
    /// failsafe_mode with etcd unreachable: the primary asks every member it last saw to confirm it (POST /failsafe). When
    /// all do, the lease keeper extends its life to the send time + ttl − margin, as after a renewal; when one does not,
    /// nothing extends it and the fence stops it at the lease deadline. The lease keeper calls this as soon as a renewal
    /// is late, alongside it: waiting for the HA cycle's read of etcd to time out first left too little of the lease.
    /// </summary>
    private async Task<bool> ConfirmFailsafeLeaderAsync(CancellationToken ct)
    {
        var snapshot = Snapshot;
        var last = snapshot.Cluster;
        var settings = last?.Config?.Value ?? _config.Bootstrap.Dcs;
        if (!settings.FailsafeMode || last is null || !snapshot.HoldsLeader || !IsPrimaryOrMayBe(snapshot.Pg))
        {
            return false;
        }

        var timeout = TimeSpan.FromSeconds(Math.Max(1, settings.RetryTimeout) / 2.0);
        if (await _peers.ConfirmFailsafeAsync(last, _config.Name, timeout, ct).ConfigureAwait(false))
        {
            if (!_failsafeConfirmed)
            {
                Log.FailsafeConfirmed(_log, last.Members.Count(m => m.Name != _config.Name));
            }

            _failsafeConfirmed = true;
            return true;
        }

        Log.FailsafeRefused(_log);
        _failsafeConfirmed = false;
        return false;
    }

    /// <summary>A leader asked this member to confirm it through <c>POST /failsafe</c> (etcd unreachable for it).</summary>
    public void RecordFailsafeLeader(string leader) => _failsafeLeader = (leader, _time.GetTimestamp());

    /// <summary>The leader that confirmed itself through POST /failsafe within the last ttl, if any: no election meanwhile.</summary>
    public string? FailsafeLeader =>
        _failsafeLeader is { } f && _time.GetElapsedTime(f.At) < TimeSpan.FromSeconds(Settings.Ttl) ? f.Leader : null;

    /// <summary>A running postmaster that is a primary, or may be one (not answering yet and not configured as a standby).</summary>
    private static bool IsPrimaryOrMayBe(PgState pg) =>
        pg.Running && (pg.InRecovery == false || (pg.InRecovery is null && !pg.StandbySignal));

    private void UpdateFence(PgState pg, bool holds)
    {
        if (holds || IsPrimaryOrMayBe(pg))
        {
            _fence.Arm(pg.Running ? pg.PostmasterPid : null);
        }
        else
        {
            _fence.Disarm();
        }
    }

    private void TrackTimers(PgState pg, ClusterView? cluster, DateTimeOffset now)
    {
        // A postmaster that is alive but does not answer: the time it was down before counts too (down, then stuck starting).
        _pgUnresponsiveSince = pg.Running && (!pg.Accepting || pg.InRecovery is null) ? _pgUnresponsiveSince ?? _pgDownSince ?? now : null;
        _pgDownSince = pg.Running ? null : _pgDownSince ?? now;
        if (cluster is not null)
        {
            _leaderMissingSince = cluster.Leader is null ? _leaderMissingSince ?? now : null;
        }

        // The leader's wait for the routers' PgBouncer pause is bounded from the moment it first saw the request due.
        _switchoverWaited = _switchover.Observe(cluster, now);

        _notStreamingSince = pg.Running && pg.InRecovery == true && !pg.Streaming ? _notStreamingSince ?? now : null;
    }

    private void LogDecision(HaPlan plan, ClusterView? cluster)
    {
        // One sentence per cycle, as Patroni does; the lock owner only when the decision changes.
        if (cluster?.Leader is { } leader && plan.Message != _lastDecision)
        {
            Log.LockOwner(_log, leader.Name, _config.Name);
        }

        _lastDecision = plan.Message;
        Log.Decision(_log, plan.Message);
    }

    /// <summary>
    /// Runs the scheduled restart once it is due, Patroni's way: not while paused (it waits), cancelled if the server was
    /// restarted since it was scheduled, and skipped — with the reason logged — when its conditions (role, version,
    /// pending restart) do not hold now.
    /// </summary>
    private async Task RunScheduledRestartAsync(PgState pg, DateTimeOffset now, CancellationToken ct)
    {
        if (_scheduledRestart is not { } scheduled || scheduled.At > now || Settings.Pause)
        {
            return;
        }

        _scheduledRestart = null;
        if (scheduled.PostmasterStartTime is { } then && pg.PostmasterStartTime is { } started && started != then)
        {
            Log.ScheduledRestartSkipped(_log, $"postgres restart has already happened at {started:O}");
            return;
        }

        if (scheduled.Conditions.Unmet(AgentSnapshot.RoleOf(pg), pg.ServerVersion, pg.PendingRestart) is { } why)
        {
            Log.ScheduledRestartSkipped(_log, why);
            return;
        }

        await _converger.RestartAsync(Settings, Snapshot.HoldsLeader, ct).ConfigureAwait(false);
    }

    /// <summary>The restart scheduled on this member (REST <c>POST /restart</c> with <c>schedule</c>), if any.</summary>
    public ScheduledRestart? PendingScheduledRestart => _scheduledRestart;

    /// <summary>Schedules a restart; false when one is already scheduled.</summary>
    public bool ScheduleRestart(ScheduledRestart restart)
    {
        if (_scheduledRestart is not null)
        {
            return false;
        }

        _scheduledRestart = restart;
        return true;
    }

    public bool CancelScheduledRestart()
    {
        var had = _scheduledRestart is not null;
        _scheduledRestart = null;
        return had;
    }

    /// <summary>Re-reads the dynamic configuration into postgresql.conf and reloads PostgreSQL, at the next cycle.</summary>
    public void RequestReload() => _converger.RequestReload();

    /// <summary>Restarts PostgreSQL in the role it has now (REST <c>POST /restart</c>). Runs between cycles.</summary>
    public async Task<bool> RestartAsync(CancellationToken ct)
    {
        await _cycleGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await _converger.RestartAsync(Settings, Snapshot.HoldsLeader, ct).ConfigureAwait(false);
        }
        finally
        {
            _cycleGate.Release();
        }
    }

    /// <summary>Re-clones this replica from the leader (REST <c>POST /reinitialize</c>). Runs between cycles.</summary>
    public async Task<bool> ReinitializeAsync(CancellationToken ct)
    {
        await _cycleGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await _converger.ReinitializeAsync(Settings, ct).ConfigureAwait(false);
        }
        finally
        {
            _cycleGate.Release();
        }
    }

    /// <summary>
    /// Called by the lease keeper when the lease could not be renewed before its deadline (or was found expired). The stop
    /// comes first — a SIGKILL of the armed postmaster's processes, nothing before it that could be slow or throw — and
    /// only then the bookkeeping. A promotion under way is killed with it, not waited for.
    /// </summary>
    private async Task OnLeaseDeadlineAsync(CancellationToken ct)
    {
        var wasArmed = _fence.Armed;
        _fence.FireNow("the leader lease could not be renewed before its deadline");
        _status.SetHolds(0);
        _status.SetDemoting();
        if (wasArmed)
        {
            Log.LeaseDeadlinePassed(_log);
            return;
        }

        // Not armed: PostgreSQL should not be a primary. Check that, within a bound, and stop it if it is anyway.
        try
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bounded.CancelAfter(TimeSpan.FromSeconds(2));
            var pg = await _pg.InspectAsync(bounded.Token).ConfigureAwait(false);
            if (IsPrimaryOrMayBe(pg))
            {
                Log.LeaseDeadlinePassed(_log);
                _fence.Arm(pg.PostmasterPid);
                _fence.FireNow("the leader lease could not be renewed before its deadline (unarmed primary found)");
            }
        }
        catch (Exception e) when (e is PostgresException or OperationCanceledException or IOException && !ct.IsCancellationRequested)
        {
            Log.StepFailed(_log, "inspect PostgreSQL after the lease deadline", e.Message);
        }
    }

    /// <summary>
    /// Graceful shutdown (SIGTERM/SIGINT): stop PostgreSQL cleanly, then delete <c>leader</c> so a replica takes over at
    /// once, then revoke the lease (which removes the member key).
    /// </summary>
    public async Task ShutdownAsync(CancellationToken ct)
    {
        await _cycleGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var holds = Snapshot.HoldsLeader;
            var lease = Snapshot.LeaseId;
            Log.ShuttingDown(_log, holds ? "stopping PostgreSQL, then releasing the leader key" : "stopping PostgreSQL");
            _status.SetDemoting();
            try
            {
                await _pg.StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is PostgresException or OperationCanceledException or IOException)
            {
                // A fast shutdown that hangs must not keep a primary up after we let go of the key.
                Log.StepFailed(_log, "fast shutdown", e.Message);
                _fence.FireNow("fast shutdown did not complete");
            }

            // The lease is kept alive until PostgreSQL is down, so no failover starts while it is still shutting down.
            var stopped = await _pg.InspectAsync(ct).ConfigureAwait(false);
            if (!stopped.Running)
            {
                _fence.Disarm();
            }

            await _lease.StopAsync().ConfigureAwait(false);
            _status.Publish(stopped, _status.Snapshot.Cluster, 0, _status.Snapshot.DcsLastSeen, "stopped");
            _status.SetDemoting();
            try
            {
                if (holds)
                {
                    await _store.ReleaseLeaderAsync(_config.Name, lease, ct).ConfigureAwait(false);
                }

                await _store.RevokeLeaseAsync(ct).ConfigureAwait(false);
            }
            catch (StoreUnavailableException e)
            {
                Log.StoreUnavailable(_log, $"{e.Message}; the leader key will expire with its lease");
            }
        }
        finally
        {
            _cycleGate.Release();
        }
    }

    private static string StateFor(PgState pg) => pg switch
    {
        { Running: true, Accepting: true } => "running",
        { Running: true } => "starting",
        { DataDir: DataDirStatus.Initialized } => "stopped",
        _ => "uninitialized",
    };

    public async ValueTask DisposeAsync()
    {
        await _lease.StopAsync().ConfigureAwait(false);
        _cycleGate.Dispose();
    }
}
