using Microsoft.Extensions.Logging;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;
using Steward.Core.Postgres;

namespace Steward.Agent;

/// <summary>
/// The agent: reads etcd and the local PostgreSQL, asks <see cref="HaDecision"/> what to do, and does it. One cycle at a
/// time; a cycle starts every <c>loop_wait</c> seconds or at once when the etcd watch reports a change. A separate
/// <see cref="LeaseKeeper"/> keeps the session lease alive and stops a primary whose lease it cannot renew in time.
/// </summary>
/// <summary>A restart scheduled through the REST API.</summary>
internal sealed record ScheduledRestart(DateTimeOffset At, bool PendingOnly, string? Role);

internal sealed class NodeAgent : IAsyncDisposable
{
    private readonly StewardConfig _config;
    private readonly IClusterStore _store;
    private readonly IPostgresControl _pg;
    private readonly PeerClient _peers;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly LeaseKeeper _lease;
    private readonly SemaphoreSlim _cycleGate = new(1, 1);

    private AgentSnapshot _snapshot;
    private DateTimeOffset? _pgDownSince;
    private DateTimeOffset? _notStreamingSince;
    private string? _currentUpstream;
    private string? _lastDecision;
    private string? _lastMemberJson;
    private long _lastMemberLease;
    private long _lastStatusOptime = -1;
    private string? _appliedParameters;
    private Upstream? _currentUpstreamTarget;
    private ScheduledRestart? _scheduledRestart;
    private volatile bool _reloadRequested;

    public NodeAgent(StewardConfig config, IClusterStore store, IPostgresControl pg, PeerClient peers, TimeProvider time, ILoggerFactory loggers)
    {
        _config = config;
        _store = store;
        _pg = pg;
        _peers = peers;
        _time = time;
        _log = loggers.CreateLogger("steward.ha");
        _lease = new LeaseKeeper(store, time, loggers.CreateLogger("steward.lease"), () => Settings.Ttl, () => Settings.LoopWait, OnLeaseDeadlineAsync)
        {
            LeaderName = config.Name,
        };
        _snapshot = new AgentSnapshot { Pg = new PgState(), State = "starting", LastCycle = time.GetUtcNow() };
    }

    /// <summary>Set when a step decided the agent cannot go on (e.g. system id mismatch).</summary>
    public string? FatalReason { get; private set; }

    public AgentSnapshot Snapshot => Volatile.Read(ref _snapshot);

    public StewardConfig Config => _config;

    /// <summary>Effective dynamic settings: the <c>config</c> key when present, else bootstrap.dcs.</summary>
    public DynamicConfig Settings => Snapshot.Cluster?.Config?.Value ?? _config.Bootstrap.Dcs;

    public LeaseKeeper Lease => _lease;

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
        var tick = Task.Delay(TimeSpan.FromSeconds(Math.Max(1, Settings.LoopWait)), _time, linked.Token);
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

    /// <summary>One HA cycle. Public for tests that step the agent by hand.</summary>
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
        var pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
        var now = _time.GetUtcNow();
        ClusterView? cluster = null;
        var dcsSeen = Snapshot.DcsLastSeen;
        try
        {
            cluster = await _store.LoadAsync(ct).ConfigureAwait(false);
            dcsSeen = now;
            if (_lease.Current is { LeaseId: not 0 } lease)
            {
                // Written when it changed (or on a new lease), not every cycle: an idle cluster writes nothing to etcd.
                var data = MemberDataFor(pg, Snapshot.State);
                var json = System.Text.Json.JsonSerializer.Serialize(data);
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

        TrackTimers(pg, now);
        // Without etcd we cannot see the key: we still hold it for as long as our lease certainly lives.
        var holds = cluster is null
            ? Snapshot.HoldsLeader && _lease.Deadline is { } deadline && now < deadline
            : cluster.Leader is { } l && l.Name == _config.Name && l.LeaseId == _lease.Current?.LeaseId;
        Publish(pg, cluster, holds, dcsSeen, StateFor(pg));

        var input = new HaInput
        {
            Me = _config.Name,
            Cluster = cluster,
            Pg = pg,
            Settings = cluster?.Config?.Value ?? _config.Bootstrap.Dcs,
            Tags = _config.Tags,
            Now = now,
            MyLeaseId = _lease.Current?.LeaseId ?? 0,
            LeaseDeadline = _lease.Deadline,
            PgDownSince = _pgDownSince,
            NotStreamingSince = _notStreamingSince,
            CurrentUpstream = _currentUpstream,
        };
        var plan = HaDecision.Decide(input);
        if (plan.Has<FetchPeers>() && cluster is not null)
        {
            var peers = await _peers.FetchAsync(cluster, _config.Name, TimeSpan.FromSeconds(Math.Max(1, input.Settings.RetryTimeout) / 2.0), ct).ConfigureAwait(false);
            plan = HaDecision.Decide(input with { Peers = peers });
        }

        var failed = await ExecuteAsync(plan, input, ct).ConfigureAwait(false);
        LogDecision(failed is AcquireLeader ? HaPlan.NoAction("following new leader after trying and failing to obtain lock") : plan, cluster);

        if (plan.Steps.Count == 0 || plan.Has<LeaderHousekeeping>())
        {
            await ApplyDynamicConfigAsync(pg, input.Settings, ct).ConfigureAwait(false);
            await RunScheduledRestartAsync(pg, now, ct).ConfigureAwait(false);
        }

        var after = await _pg.InspectAsync(ct).ConfigureAwait(false);
        var holdsAfter = failed is AcquireLeader || plan.Has<ReleaseLeader>() ? false : holds || plan.Has<AcquireLeader>();
        Publish(after, cluster, holdsAfter, dcsSeen, StateFor(after), plan.Message);
    }

    private void TrackTimers(PgState pg, DateTimeOffset now)
    {
        _pgDownSince = pg.Running ? null : _pgDownSince ?? now;
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

    /// <summary>Runs the plan's steps in order; returns the step that did not complete (null when all did).</summary>
    private async Task<HaStep?> ExecuteAsync(HaPlan plan, HaInput input, CancellationToken ct)
    {
        foreach (var step in plan.Steps)
        {
            var done = await ExecuteStepAsync(step, input, ct).ConfigureAwait(false);
            if (!done)
            {
                return step is FetchPeers or ClaimInitialize ? null : step;
            }
        }

        return null;
    }

    private async Task<bool> ExecuteStepAsync(HaStep step, HaInput input, CancellationToken ct)
    {
        var settings = input.Settings;
        switch (step)
        {
            case BootstrapCluster:
                return await BootstrapAsync(ct).ConfigureAwait(false);

            case CompleteBootstrap complete:
                if (input.Cluster?.Leader is null && !await _store.TryAcquireLeaderAsync(_config.Name, ct).ConfigureAwait(false))
                {
                    Log.StepFailed(_log, "complete bootstrap", "could not take the leader key");
                    return false;
                }

                await _store.SetInitializeAsync(complete.SystemId, ct).ConfigureAwait(false);
                await _store.SetConfigAsync(_config.Bootstrap.Dcs, 0, ct).ConfigureAwait(false);
                return true;

            case ClaimInitialize claim:
                if (!await _store.TryCreateInitializeAsync(claim.SystemId, ct).ConfigureAwait(false))
                {
                    Log.StepFailed(_log, "claim initialize", "another member initialized the cluster first");
                }

                return false; // decide again from the new state

            case CloneFrom clone:
                SetState("creating replica");
                await _pg.CloneAsync(clone.Address, ct).ConfigureAwait(false);
                return true;

            case AcquireLeader:
                if (await _store.TryAcquireLeaderAsync(_config.Name, ct).ConfigureAwait(false))
                {
                    return true;
                }

                Log.StepFailed(_log, "acquire leader lock", "another member holds it");
                return false;

            case ReleaseLeader:
                await _store.ReleaseLeaderAsync(_config.Name, ct).ConfigureAwait(false);
                SetHolds(false);
                return true;

            case StartPostgres start:
                SetState("starting");
                await _pg.StartAsync(start.Role, start.Upstream, settings, ct).ConfigureAwait(false);
                _currentUpstream = start.Upstream?.Address.ToString();
                _currentUpstreamTarget = start.Upstream;
                _notStreamingSince = null;
                return true;

            case StopPostgres stop:
                SetDemoting();
                SetState("stopping");
                await _pg.StopAsync(stop.Mode, ct).ConfigureAwait(false);
                _currentUpstream = null;
                return true;

            case Follow follow:
                await _pg.FollowAsync(follow.Upstream, ct).ConfigureAwait(false);
                _currentUpstream = follow.Upstream?.Address.ToString();
                _currentUpstreamTarget = follow.Upstream;
                _notStreamingSince = null; // give the new upstream its own grace period
                return true;

            case RewindOrReclone rewind:
                return await RewindOrRecloneAsync(rewind, ct).ConfigureAwait(false);

            case Promote promote:
                return await PromoteAsync(promote, input, ct).ConfigureAwait(false);

            case LeaderHousekeeping:
                await HousekeepingAsync(input, input.Pg, ct).ConfigureAwait(false); // no step before it in a plan changes PostgreSQL
                return true;

            case Checkpoint:
                SetDemoting();
                await _pg.CheckpointAsync(ct).ConfigureAwait(false);
                return true;

            case DeleteFailoverKey:
                await _store.DeleteFailoverAsync(input.Cluster?.Failover?.ModRevision ?? 0, ct).ConfigureAwait(false);
                return true;

            case FetchPeers:
                return false; // the peers were fetched and the decision made again; nothing more to do this cycle

            case Fatal fatal:
                Log.Fatal(_log, fatal.Reason);
                FatalReason = fatal.Reason;
                return false;

            default:
                throw new InvalidOperationException($"unknown step {step}");
        }
    }

    private async Task<bool> BootstrapAsync(CancellationToken ct)
    {
        if (!await _store.TryCreateInitializeAsync("", ct).ConfigureAwait(false))
        {
            Log.StepFailed(_log, "bootstrap", "another member won the initialize race; waiting for it");
            return false;
        }

        SetState("initializing new cluster");
        try
        {
            await _pg.BootstrapAsync(_config.Bootstrap.Initdb, _config.Bootstrap.Dcs, ct).ConfigureAwait(false);
            var pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
            if (!await _store.TryAcquireLeaderAsync(_config.Name, ct).ConfigureAwait(false))
            {
                throw new InvalidOperationException("the leader key was taken while this member bootstrapped");
            }

            await _store.SetInitializeAsync(pg.SystemId ?? throw new PostgresException("no system identifier after initdb"), ct).ConfigureAwait(false);
            await _store.SetConfigAsync(_config.Bootstrap.Dcs, 0, ct).ConfigureAwait(false);
            await _store.PutMemberAsync(_config.Name, MemberDataFor(pg, "running"), ct).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is PostgresException or InvalidOperationException or IOException or StoreUnavailableException)
        {
            Log.StepFailed(_log, "bootstrap", e.Message);
            await _pg.StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
            await BestEffortAsync(() => _store.ReleaseLeaderAsync(_config.Name, ct)).ConfigureAwait(false);

            // The data directory was empty before this initdb: what is there now holds no data of anyone's. Remove it,
            // as Patroni does, so the next attempt (ours or another member's) starts clean instead of claiming it.
            if (Directory.Exists(_config.Postgresql.DataDir))
            {
                Directory.Delete(_config.Postgresql.DataDir, recursive: true);
            }

            await BestEffortAsync(() => _store.DeleteInitializeAsync(ct)).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A clean-up write to etcd; if etcd does not answer, the key's lease (or the next cycle) tidies up.</summary>
    private async Task BestEffortAsync(Func<Task> write)
    {
        try
        {
            await write().ConfigureAwait(false);
        }
        catch (StoreUnavailableException e)
        {
            Log.StoreUnavailable(_log, e.Message);
        }
    }

    private async Task<bool> RewindOrRecloneAsync(RewindOrReclone step, CancellationToken ct)
    {
        await _pg.StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
        if (step.UseRewind)
        {
            SetState("rewinding");
            if (await _pg.RewindAsync(step.Address, ct).ConfigureAwait(false))
            {
                return true;
            }
        }

        SetState("creating replica");
        var aside = await _pg.MoveDataDirAsideAsync(ct).ConfigureAwait(false);
        Log.RewindFailed(_log, aside);
        await _pg.CloneAsync(step.Address, ct).ConfigureAwait(false);
        return true;
    }

    private async Task<bool> PromoteAsync(Promote step, HaInput input, CancellationToken ct)
    {
        SetHolds(true);
        SetState("promoting");
        var history = input.Cluster?.History ?? [];
        await _pg.WriteMissingHistoryFilesAsync(history, ct).ConfigureAwait(false);
        await _pg.PromoteAsync(checkpoint: false, ct).ConfigureAwait(false);

        // Tell health checks and the router at once; the bookkeeping below can follow.
        var pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
        Publish(pg, input.Cluster, holds: true, Snapshot.DcsLastSeen, "running", "promoted self to leader");

        // pg_rewind of a former primary reads this node's timeline from pg_control: checkpoint before anyone rewinds.
        await _pg.CheckpointAsync(ct).ConfigureAwait(false);
        if (pg.Timeline is { } timeline && await _pg.ReadLastTimelineSwitchAsync(timeline, ct).ConfigureAwait(false) is { } sw
            && history.All(h => h.Timeline != sw.ParentTimeline))
        {
            var entry = new HistoryEntry(sw.ParentTimeline, sw.SwitchLsn, step.Reason, _time.GetUtcNow(), _config.Name);
            await _store.SetHistoryAsync([.. history, entry], ct).ConfigureAwait(false);
            Log.HistoryRecorded(_log, sw.ParentTimeline, Lsn.Format(sw.SwitchLsn), _config.Name);
        }

        if (input.Cluster?.Failover is { } request)
        {
            await _store.DeleteFailoverAsync(request.ModRevision, ct).ConfigureAwait(false);
        }

        SetState("running");
        await HousekeepingAsync(input, pg, ct).ConfigureAwait(false);
        return true;
    }

    private async Task HousekeepingAsync(HaInput input, PgState pg, CancellationToken ct)
    {
        if (pg.InRecovery != false)
        {
            return;
        }

        if (input.Settings.Postgresql.UseSlots && input.Cluster is { } cluster)
        {
            var slots = cluster.Members.Where(m => m.Name != _config.Name).Select(m => SlotNames.For(m.Name)).ToList();
            await _pg.SyncReplicationSlotsAsync(slots, ct).ConfigureAwait(false);
        }

        if (pg.WriteLsn is { } lsn && lsn != _lastStatusOptime)
        {
            await _store.SetStatusAsync(new ClusterStatus { Optime = lsn, Timeline = pg.Timeline }, ct).ConfigureAwait(false);
            _lastStatusOptime = lsn;
        }

        // The switch to my timeline must be in `history` (rule 4); if recording it after the promotion failed, retry here.
        var history = input.Cluster?.History ?? [];
        if (pg.Timeline is { } timeline && timeline > 1 && history.All(h => h.Timeline != timeline - 1)
            && await _pg.ReadLastTimelineSwitchAsync(timeline, ct).ConfigureAwait(false) is { } sw && history.All(h => h.Timeline != sw.ParentTimeline))
        {
            await _store.SetHistoryAsync([.. history, new HistoryEntry(sw.ParentTimeline, sw.SwitchLsn, "promoted", _time.GetUtcNow(), _config.Name)], ct).ConfigureAwait(false);
            Log.HistoryRecorded(_log, sw.ParentTimeline, Lsn.Format(sw.SwitchLsn), _config.Name);
        }
    }

    /// <summary>
    /// Dynamic parameters (the <c>config</c> key) reach postgresql.conf within a cycle of a change, and are reloaded;
    /// ones that need a restart show as pending restart.
    /// </summary>
    private async Task ApplyDynamicConfigAsync(PgState pg, DynamicConfig settings, CancellationToken ct)
    {
        var wanted = System.Text.Json.JsonSerializer.Serialize(settings.Postgresql.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal));
        if (_reloadRequested || (pg.Running && pg.Accepting && wanted != _appliedParameters))
        {
            _reloadRequested = false;
            await _pg.ReloadAsync(settings, ct).ConfigureAwait(false);
            _appliedParameters = wanted;
            Log.ConfigApplied(_log);
        }
    }

    private async Task RunScheduledRestartAsync(PgState pg, DateTimeOffset now, CancellationToken ct)
    {
        if (_scheduledRestart is not { } scheduled || scheduled.At > now)
        {
            return;
        }

        _scheduledRestart = null;
        if (scheduled.PendingOnly && !pg.PendingRestart)
        {
            Log.StepFailed(_log, "scheduled restart", "no parameter needs a restart");
            return;
        }

        await RestartPostgresAsync(ct).ConfigureAwait(false);
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
    public void RequestReload() => _reloadRequested = true;

    /// <summary>Restarts PostgreSQL in the role it has now (REST <c>POST /restart</c>). Runs between cycles.</summary>
    public async Task<bool> RestartAsync(CancellationToken ct)
    {
        await _cycleGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await RestartPostgresAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _cycleGate.Release();
        }
    }

    private async Task<bool> RestartPostgresAsync(CancellationToken ct)
    {
        var pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
        var role = pg.Running && pg.InRecovery == false ? StartRole.Primary : StartRole.Replica;
        if (role == StartRole.Primary && !Snapshot.HoldsLeader)
        {
            Log.StepFailed(_log, "restart", "this member runs as a primary without the leader key; the HA cycle decides what it becomes");
            return false;
        }

        try
        {
            SetState("restarting");
            await _pg.StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
            await _pg.StartAsync(role, role == StartRole.Replica ? _currentUpstreamTarget : null, Settings, ct).ConfigureAwait(false);
            Log.Restarted(_log, role == StartRole.Primary ? "primary" : "replica");
            return true;
        }
        catch (PostgresException e)
        {
            Log.StepFailed(_log, "restart", e.Message);
            return false;
        }
    }

    /// <summary>
    /// Re-clones this replica from the leader (REST <c>POST /reinitialize</c>): stop, move the data directory aside
    /// (never deleted), pg_basebackup, start as a replica. Runs between cycles.
    /// </summary>
    public async Task<bool> ReinitializeAsync(CancellationToken ct)
    {
        await _cycleGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var cluster = await _store.LoadAsync(ct).ConfigureAwait(false);
            if (cluster.LeaderMember is not { } leader || leader.Name == _config.Name
                || leader.Data.ConnUrl is not { } url || ConnUrl.Parse(url) is not { } address)
            {
                return false;
            }

            SetState("creating replica");
            await _pg.StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
            var aside = await _pg.MoveDataDirAsideAsync(ct).ConfigureAwait(false);
            Log.Reinitializing(_log, leader.Name, aside);
            await _pg.CloneAsync(address, ct).ConfigureAwait(false);
            var upstream = new Upstream(address, Settings.Postgresql.UseSlots ? SlotNames.For(_config.Name) : null);
            await _pg.StartAsync(StartRole.Replica, upstream, Settings, ct).ConfigureAwait(false);
            _currentUpstream = address.ToString();
            _currentUpstreamTarget = upstream;
            return true;
        }
        catch (Exception e) when (e is PostgresException or StoreUnavailableException or IOException)
        {
            Log.StepFailed(_log, "reinitialize", e.Message);
            return false;
        }
        finally
        {
            _cycleGate.Release();
        }
    }

    public IClusterStore Store => _store;

    /// <summary>Called by the lease keeper when a primary's lease could not be renewed before its deadline.</summary>
    private async Task OnLeaseDeadlineAsync(CancellationToken ct)
    {
        // Decided from PostgreSQL itself, not from the published snapshot (which may lag or say "unknown" while etcd is away).
        var pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
        if (!pg.Running || pg.InRecovery == true)
        {
            return;
        }

        Log.LeaseDeadlinePassed(_log);
        SetDemoting();
        await _pg.StopAsync(StopMode.Immediate, ct).ConfigureAwait(false);
        SetHolds(false);
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
            Log.ShuttingDown(_log, holds ? "stopping PostgreSQL, then releasing the leader key" : "stopping PostgreSQL");
            SetDemoting();
            try
            {
                await _pg.StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is PostgresException or OperationCanceledException or IOException)
            {
                // A fast shutdown that hangs must not keep a primary up after we let go of the key.
                Log.StepFailed(_log, "fast shutdown", e.Message);
                await _pg.StopAsync(StopMode.Immediate, CancellationToken.None).ConfigureAwait(false);
            }

            // The lease is kept alive until PostgreSQL is down, so no failover starts while it is still shutting down.
            await _lease.StopAsync().ConfigureAwait(false);
            var stopped = await _pg.InspectAsync(ct).ConfigureAwait(false);
            Publish(stopped, Snapshot.Cluster, holds, Snapshot.DcsLastSeen, "stopped");
            SetDemoting();
            try
            {
                if (holds)
                {
                    await _store.ReleaseLeaderAsync(_config.Name, ct).ConfigureAwait(false);
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

    private MemberData MemberDataFor(PgState pg, string state) => new()
    {
        ConnUrl = ConnUrl.ForPostgres(_config.Postgresql.ConnectAddress),
        ApiUrl = ConnUrl.ForApi(_config.RestApi.ConnectAddress),
        State = state,
        Role = pg.DataDir != DataDirStatus.Initialized ? "uninitialized" : pg.Running && pg.InRecovery == false ? "primary" : "replica",
        Version = VersionInfo.Version,
        Timeline = pg.Timeline ?? pg.ControlTimeline,
        XlogLocation = pg.Lsn,
        ReceiveLsn = pg.ReceiveLsn,
        ReplayLsn = pg.ReplayLsn,
        ReplicationState = pg.Streaming ? "streaming" : null,
        PendingRestart = pg.PendingRestart ? true : null,
        Tags = _config.Tags.All.Count == 0 ? null : _config.Tags.All,
    };

    private static string StateFor(PgState pg) => pg switch
    {
        { Running: true, Accepting: true } => "running",
        { Running: true } => "starting",
        { DataDir: DataDirStatus.Initialized } => "stopped",
        _ => "uninitialized",
    };

    private void Publish(PgState pg, ClusterView? cluster, bool holds, DateTimeOffset? dcsSeen, string state, string? decision = null)
    {
        Volatile.Write(ref _snapshot, new AgentSnapshot
        {
            Pg = pg,
            Cluster = cluster ?? Snapshot.Cluster,
            HoldsLeader = holds,
            State = state,
            DcsLastSeen = dcsSeen,
            LastCycle = _time.GetUtcNow(),
            LastDecision = decision ?? Snapshot.LastDecision,
        });
    }

    private void SetState(string state) => Volatile.Write(ref _snapshot, Snapshot with { State = state });

    private void SetHolds(bool holds) => Volatile.Write(ref _snapshot, Snapshot with { HoldsLeader = holds });

    private void SetDemoting() => Volatile.Write(ref _snapshot, Snapshot with { Demoting = true });

    public async ValueTask DisposeAsync()
    {
        await _lease.StopAsync().ConfigureAwait(false);
        _cycleGate.Dispose();
    }
}
