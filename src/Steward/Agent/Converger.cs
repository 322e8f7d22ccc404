using Microsoft.Extensions.Logging;
using Steward.Agent.Fence;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;
using Steward.Core.Postgres;

namespace Steward.Agent;

/// <summary>
/// Carries out what <see cref="HaDecision"/> planned, on the local PostgreSQL and on etcd, one step at a time; a step that
/// does not complete ends the plan and the next cycle decides again. It arms the <see cref="IPrimaryFence"/> before any
/// step that can make or keep this node a writable primary. It decides nothing itself: the choices are the decider's.
/// </summary>
internal sealed class Converger
{
    private readonly StewardConfig _config;
    private readonly IClusterStore _store;
    private readonly IPostgresControl _pg;
    private readonly IPrimaryFence _fence;
    private readonly AgentStatus _status;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Func<long> _leaseId;
    private readonly Func<long, bool> _leaseHeld;
    private long _lastStatusOptime = -1;
    private string? _lastStatusJson;
    private HashSet<string> _slotWarnings = new(StringComparer.Ordinal);
    private readonly HashSet<string> _slotDeferrals = new(StringComparer.Ordinal);
    private (DynamicConfig Config, SlotSettings Slots)? _slotSettings;

    /// <summary>Replica: logical slots whose advance failed because their WAL is gone or they are invalid (Patroni copies them again).</summary>
    private readonly HashSet<string> _recopy = new(StringComparer.Ordinal);

    /// <summary>
    /// Replica: copied logical slots not yet known to be safe after a failover (Patroni's readiness queue), with the
    /// slot's catalog_xmin on the primary when first seen while this replica's physical slot there had one.
    /// </summary>
    private readonly Dictionary<string, long?> _slotsNotReady = new(StringComparer.Ordinal);
    private bool _slotsReadinessQueued;
    /// <summary>
    /// Per standby PostgreSQL waits for (and the key does not name yet): the leader's WAL position when this agent first saw
    /// it counted as synchronous. Once the standby flushed past it, it holds every acknowledged commit and may join the key.
    /// </summary>
    private readonly Dictionary<string, long> _waitedForSince = new(StringComparer.Ordinal);
    private string? _standbyNamesSeen;
    private long _standbyNamesInForceAt;
    private readonly Dictionary<string, long> _slotUnwantedSince = new(StringComparer.Ordinal);
    private string? _appliedParameters;
    private volatile bool _reloadRequested;

    /// <summary>Called after the agent reloaded PostgreSQL's configuration (the on_reload callback).</summary>
    public Action? Reloaded { get; set; }

    /// <summary>Patroni's pre_promote: true lets the promotion go on. Null: none configured.</summary>
    public Func<TimeSpan, CancellationToken, Task<bool>>? PrePromote { get; set; }

    public Converger(StewardConfig config, IClusterStore store, IPostgresControl pg, IPrimaryFence fence, AgentStatus status, TimeProvider time, ILogger log,
        Func<long> leaseId, Func<long, bool>? leaseHeld = null)
    {
        _leaseHeld = leaseHeld ?? (_ => true);
        _config = config;
        _store = store;
        _pg = pg;
        _fence = fence;
        _status = status;
        _time = time;
        _log = log;
        _leaseId = leaseId;
    }

    /// <summary>Where the running replica was last pointed (host:port), null when unknown or not a replica.</summary>
    public string? CurrentUpstream { get; private set; }

    /// <summary>The upstream the replica was last started or pointed at (kept for a restart in the same role).</summary>
    public Upstream? CurrentUpstreamTarget { get; private set; }

    /// <summary>
    /// This member leads a standby cluster (it holds, or is taking, the leader key and follows the remote primary): its
    /// member key says <c>standby_leader</c>, and the fence is not armed — a standby takes no writes.
    /// </summary>
    public bool StandbyLeader { get; private set; }

    /// <summary>Set when a step decided the agent cannot go on (e.g. system id mismatch).</summary>
    public string? FatalReason { get; private set; }

    /// <summary>Re-reads the dynamic configuration into postgresql.conf and reloads PostgreSQL, at the next cycle.</summary>
    public void RequestReload() => _reloadRequested = true;

    /// <summary>Runs the plan's steps in order; returns the step that did not complete (null when all did).</summary>
    public async Task<HaStep?> ExecuteAsync(HaPlan plan, HaInput input, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(input);
        StandbyLeader = input.Settings.StandbyCluster is not null && input.Cluster?.Leader is { } key && key.Name == _config.Name
                        && key.LeaseId == input.MyLeaseId || plan.Steps.Any(s => s is AcquireLeader) && input.Settings.StandbyCluster is not null;
        if (plan.Steps.Any(MayMakePrimary) && input.Settings.StandbyCluster is null)
        {
            // Armed before the key is taken or PostgreSQL promoted: from the first instant this node may take writes, a
            // lapse of the lease kills it, whether or not this agent is still alive to notice.
            _fence.Arm(input.Pg.PostmasterPid);
        }

        foreach (var step in plan.Steps)
        {
            if (step is Promote or CompleteBootstrap or StartPostgres { Role: StartRole.Primary } && !LeaseStillHeld(input))
            {
                // The plan was made under a lease that is no longer provably alive (the cycle was slow or frozen): another
                // member may lead by now. Making a primary on that plan is what the fence exists to prevent.
                Log.StepFailed(_log, step.ToString(), "the leader lease this plan was made under is no longer provably held");
                return step;
            }

            var done = await ExecuteStepAsync(step, input, ct).ConfigureAwait(false);
            if (!done)
            {
                return step is FetchPeers or ClaimInitialize ? null : step;
            }
        }

        return null;
    }

    private bool LeaseStillHeld(HaInput input) => input.MyLeaseId != 0 && _leaseHeld(input.MyLeaseId);

    private static bool MayMakePrimary(HaStep step) => step is AcquireLeader or Promote or BootstrapCluster or CompleteBootstrap
        or StartPostgres { Role: StartRole.Primary };

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
                _status.SetState("creating replica");
                await _pg.CloneAsync(clone.Address, ct).ConfigureAwait(false);
                await _pg.SetPrimaryMarkAsync(false, ct).ConfigureAwait(false);
                return true;

            case AcquireLeader:
                if (await _store.TryAcquireLeaderAsync(_config.Name, ct).ConfigureAwait(false))
                {
                    return true;
                }

                Log.StepFailed(_log, "acquire leader lock", "another member holds it");
                return false;

            case ReleaseLeader:
                // The session the decision saw on the key (mine, or my previous one): never another agent's.
                await _store.ReleaseLeaderAsync(_config.Name, input.Cluster?.Leader?.LeaseId ?? _leaseId(), ct).ConfigureAwait(false);
                _status.SetHolds(0);
                return true;

            case StartPostgres start:
                _status.SetState("starting");
                if (start.Role == StartRole.Primary)
                {
                    // synchronous_standby_names left from an earlier term may name standbys the sync key no longer does.
                    await ResetSynchronousStandbyNamesAsync(input.Pg, settings, ct).ConfigureAwait(false);

                    // Before it can take a write (see PromoteAsync).
                    await _pg.SetPrimaryMarkAsync(true, ct).ConfigureAwait(false);
                }

                if (start.Role == StartRole.Replica && start.Upstream?.SlotName is not null)
                {
                    // The upstream keeps a slot only for a member it sees, and a standby that must replay WAL to be consistent
                    // (after pg_rewind, a crash) accepts no connection before it streams: pg_ctl waits it out (pg_ctl_timeout)
                    // with this cycle blocked. A member key lost with a lapsed lease (a partition) would come back only after
                    // that: on the lease granted meanwhile, it is written now.
                    await BestEffortAsync(() => _store.PutMemberAsync(_config.Name, MemberDataFor(input.Pg, "starting"), ct)).ConfigureAwait(false);
                }

                await _pg.StartAsync(start.Role, start.Upstream, settings, ct).ConfigureAwait(false);
                CurrentUpstream = start.Upstream?.Address.ToString();
                CurrentUpstreamTarget = start.Upstream;
                if (start.Role == StartRole.Primary)
                {
                    await ArmWithRunningPostmasterAsync(ct).ConfigureAwait(false);
                }

                return true;

            case StopPostgres stop:
                _status.SetDemoting();
                _status.SetState("stopping");
                await _pg.StopAsync(stop.Mode, ct).ConfigureAwait(false);
                CurrentUpstream = null;
                return true;

            case Follow follow:
                await _pg.FollowAsync(follow.Upstream, ct).ConfigureAwait(false);
                CurrentUpstream = follow.Upstream?.Address.ToString();
                CurrentUpstreamTarget = follow.Upstream;
                return true;

            case RewindOrReclone rewind:
                return await RewindOrRecloneAsync(rewind, ct).ConfigureAwait(false);

            case Promote promote:
                return await PromoteAsync(promote, input, ct).ConfigureAwait(false);

            case LeaderHousekeeping:
                await HousekeepingAsync(input, input.Pg, ct).ConfigureAwait(false); // no step before it in a plan changes PostgreSQL
                return true;

            case Checkpoint:
                _status.SetDemoting();
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

    /// <summary>A running primary marks its data directory durably (see <see cref="PgState.PrimaryMark"/>) the first cycle it is seen.</summary>
    public async Task MarkPrimaryAsync(PgState pg, CancellationToken ct)
    {
        if (pg.Running && pg.InRecovery == false && !pg.PrimaryMark)
        {
            await _pg.SetPrimaryMarkAsync(true, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Re-arms the fence with the PID of the postmaster that now runs (it changed with a start).</summary>
    private async Task ArmWithRunningPostmasterAsync(CancellationToken ct)
    {
        var pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
        _fence.Arm(pg.PostmasterPid);

        // Marked before anybody is told of the new leader: killed right after, it must still be rewound before it
        // follows anyone, even if it is restarted as a standby first.
        await _pg.SetPrimaryMarkAsync(true, ct).ConfigureAwait(false);
    }

    private async Task<bool> BootstrapAsync(CancellationToken ct)
    {
        if (!await _store.TryCreateInitializeAsync("", ct).ConfigureAwait(false))
        {
            Log.StepFailed(_log, "bootstrap", "another member won the initialize race; waiting for it");
            return false;
        }

        var standby = _config.Bootstrap.Dcs.StandbyCluster;
        _status.SetState(standby is not null ? "creating replica" : _config.Bootstrap.Method is null ? "initializing new cluster" : "running custom bootstrap script");
        try
        {
            PgState pg;
            if (standby is not null)
            {
                // Patroni's bootstrap of a standby cluster: the data comes from the remote primary, and the first member
                // runs as its standby (the standby leader) instead of as a new primary. No fence: a standby takes no writes.
                var remote = new Upstream(new HostPort(standby.Host, standby.Port), standby.PrimarySlotName);
                Log.StandbyClusterBootstrap(_log, remote.Address.ToString());
                await _pg.CloneAsync(remote.Address, ct).ConfigureAwait(false);
                await _pg.SetPrimaryMarkAsync(false, ct).ConfigureAwait(false);
                await _pg.StartAsync(StartRole.Replica, remote, _config.Bootstrap.Dcs, ct).ConfigureAwait(false);
                CurrentUpstream = remote.Address.ToString();
                CurrentUpstreamTarget = remote;
                StandbyLeader = true;
                pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
            }
            else
            {
                await _pg.SetPrimaryMarkAsync(true, ct).ConfigureAwait(false); // before it can take a write (see PromoteAsync)
                await _pg.BootstrapAsync(_config.Bootstrap.Initdb, _config.Bootstrap.Dcs, ct).ConfigureAwait(false);
                pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
                _fence.Arm(pg.PostmasterPid);
            }

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
            await BestEffortAsync(() => _store.ReleaseLeaderAsync(_config.Name, _leaseId(), ct)).ConfigureAwait(false);

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
            _status.SetState("rewinding");
            if (await _pg.RewindAsync(step.Address, ct).ConfigureAwait(false))
            {
                await _pg.SetPrimaryMarkAsync(false, ct).ConfigureAwait(false);
                return true;
            }
        }

        _status.SetState("creating replica");
        var aside = await _pg.MoveDataDirAsideAsync(ct).ConfigureAwait(false);
        Log.RewindFailed(_log, step.UseRewind ? "pg_rewind failed" : "use_pg_rewind is off", aside);
        // Patroni's remove_data_directory_on_rewind_failure (pg_rewind was tried) / …_on_diverged_timelines (it was not):
        // the old directory goes before the clone takes the space again. Moved aside first, so that a crash in between
        // leaves a directory named as the old one, never half a data directory.
        RemoveIfConfigured(aside, step.UseRewind ? "remove_data_directory_on_rewind_failure" : "remove_data_directory_on_diverged_timelines",
            step.UseRewind ? _config.Postgresql.RemoveDataDirectoryOnRewindFailure : _config.Postgresql.RemoveDataDirectoryOnDivergedTimelines);
        await _pg.CloneAsync(step.Address, ct).ConfigureAwait(false);
        await _pg.SetPrimaryMarkAsync(false, ct).ConfigureAwait(false);
        return true;
    }

    private void RemoveIfConfigured(string aside, string setting, bool remove)
    {
        if (remove && aside.Length > 0 && Directory.Exists(aside))
        {
            Directory.Delete(aside, recursive: true);
            Log.DataDirRemoved(_log, aside, setting);
        }
    }

    private async Task<bool> PromoteAsync(Promote step, HaInput input, CancellationToken ct)
    {
        _status.SetHolds(_leaseId());
        _status.SetState("promoting");
        // The history as etcd has it now, not as this cycle read it (a slow cycle's view may predate another promotion),
        // and the key still ours on that read.
        var now = await _store.LoadAsync(ct).ConfigureAwait(false);
        if (now.Leader is not { } key || key.Name != _config.Name || key.LeaseId != input.MyLeaseId)
        {
            Log.StepFailed(_log, "promote", "the leader key is no longer held on this agent's lease");
            return false;
        }

        // Patroni's pre_promote (a fencing script): after the key is ours, before anything is reserved or promoted; a
        // non-zero exit (or no exit within the bound) aborts this promotion and gives the key back.
        if (PrePromote is { } prePromote && !await prePromote(TimeSpan.FromSeconds(Math.Max(input.Settings.Ttl, input.Settings.PrimaryStartTimeout)), ct).ConfigureAwait(false))
        {
            Log.StepFailed(_log, "promote", "the pre_promote script failed; the leader key is released");
            await BestEffortAsync(() => _store.ReleaseLeaderAsync(_config.Name, key.LeaseId, ct)).ConfigureAwait(false);
            _status.SetHolds(0);
            _status.SetState("running");
            return false;
        }

        var history = now.History;

        // Rule 4, made crash-proof: the timeline id this promotion will create is reserved in `history` BEFORE pg_promote,
        // so a leader killed between its promotion and the exact record (the fence may fire there) still leaves the id
        // used; the next promotion writes history files past it and PostgreSQL picks a fresh one.
        var myTimeline = input.Pg.Timeline ?? input.Pg.ControlTimeline ?? 1;
        var reserved = Math.Max(HistoryEntry.MaxTimeline(history), myTimeline) + 1;
        var provisional = new HistoryEntry(myTimeline, input.Pg.Lsn ?? 0, $"{step.Reason} {HistoryEntry.ProvisionalSuffix}", _time.GetUtcNow(), _config.Name)
        {
            NewTimeline = reserved,
        };
        IReadOnlyList<HistoryEntry> reservedHistory = [.. history, provisional];
        // Compare-and-swap on the history just read, in one transaction with "the key is still mine": a reservation made
        // by a promotion since, or a lease that lapsed since the read, makes it fail and this promotion does not happen.
        if (!await _store.SetHistoryAsync(reservedHistory, now.HistoryModRevision, _config.Name, ct).ConfigureAwait(false))
        {
            Log.StepFailed(_log, "promote", "history changed or the leader key was lost while reserving the new timeline");
            return false;
        }

        if (input.Settings.SynchronousMode)
        {
            // Before this node takes its first write: PostgreSQL waits for no standby the sync key does not name (strict:
            // for none at all), and the key names this leader alone, so a crash before it picks a synchronous standby
            // leaves the others free to take over when it acknowledged commits alone (strict: when it acknowledged none).
            await ResetSynchronousStandbyNamesAsync(input.Pg, input.Settings, ct).ConfigureAwait(false);
            if (!await _store.SetSyncStateAsync(SyncState.For(_config.Name, []), now.Sync?.ModRevision ?? 0, _config.Name, ct).ConfigureAwait(false))
            {
                Log.StepFailed(_log, "promote", "the sync key changed or the leader key was lost while taking over the sync key");
                return false;
            }
        }

        await _pg.WriteMissingHistoryFilesAsync(history, ct).ConfigureAwait(false);
        if (_slotsNotReady.Count > 0)
        {
            Log.SlotsMaybeUnsafe(_log, string.Join(", ", _slotsNotReady.Keys.Order(StringComparer.Ordinal)));
        }

        _slotsNotReady.Clear();
        _recopy.Clear();
        // Durably marked before it can take a write: killed right after pg_promote (before the next cycle would see a primary
        // and mark it), the new timeline's branch must still be rewound before this directory follows anyone. The control
        // file is no such record: a start as a standby afterwards writes standby.signal and "in archive recovery" over it.
        await _pg.SetPrimaryMarkAsync(true, ct).ConfigureAwait(false);
        await _pg.PromoteAsync(checkpoint: false, ct).ConfigureAwait(false);

        var pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
        _fence.Arm(pg.PostmasterPid);

        // The exact switch is on record in `history` before anybody is told of the new leader (read from the new .history
        // file, which exists as soon as pg_promote returns; no checkpoint needed).
        await RecordTimelineSwitchAsync(reservedHistory, pg, step.Reason, ct).ConfigureAwait(false);

        // Tell health checks and the router (which follows the member key's role) at once.
        _status.Publish(pg, input.Cluster, _leaseId(), _status.Snapshot.DcsLastSeen, "running", "promoted self to leader");
        await _store.PutMemberAsync(_config.Name, MemberDataFor(pg, "running"), ct).ConfigureAwait(false);

        // pg_rewind of a former primary reads this node's timeline from pg_control: checkpoint before anyone rewinds.
        await _pg.CheckpointAsync(ct).ConfigureAwait(false);

        if (input.Cluster?.Failover is { } request)
        {
            await _store.DeleteFailoverAsync(request.ModRevision, ct).ConfigureAwait(false);
        }

        _status.SetState("running");
        await HousekeepingAsync(input, pg, ct).ConfigureAwait(false);
        return true;
    }

    private async Task HousekeepingAsync(HaInput input, PgState pg, CancellationToken ct)
    {
        if (pg.InRecovery != false)
        {
            if (pg.InRecovery == true && input.Settings.StandbyCluster is not null)
            {
                // A standby leader serves its cluster's replicas as a primary would: their slots live on it.
                await MemberSlotsAsync(input, ct).ConfigureAwait(false);
            }

            return;
        }

        await SyncReplicationAsync(input, pg, ct).ConfigureAwait(false);

        IReadOnlyDictionary<string, long>? published = null;
        IReadOnlyList<string>? retained = null;
        if (input.Settings.Postgresql.UseSlots && input.Cluster is { } cluster)
        {
            // A nostream member reads the archive, not a slot: it gets none (a slot would hold WAL back for nobody).
            // nor for one that streams from another member (replicatefrom): that member keeps its slot.
            var slots = SlotNames.MemberSlots(cluster, _config.Name, leader: true);
            if (await _pg.ListReplicationSlotsAsync(ct).ConfigureAwait(false) is not { } local)
            {
                foreach (var slot in slots)
                {
                    _slotUnwantedSince.Remove(slot);
                }

                await _pg.SyncReplicationSlotsAsync(slots, ct, MayDropSlot(input.Settings.MemberSlotsTtl)).ConfigureAwait(false);
            }
            else
            {
                var plan = SlotPlanner.ForPrimary(SlotInputsFor(input, cluster, local) with
                {
                    MemberSlots = slots,
                    WalLevel = local.WalLevel,
                    WriteLsn = pg.WriteLsn,
                    MemberSlotsTtl = input.Settings.MemberSlotsTtl,
                });
                await RunSlotPlanAsync(plan, local, ct).ConfigureAwait(false);
                published = plan.Publish.Count > 0 ? plan.Publish : null;

                // Patroni's retain_slots: the member slots this leader keeps (its own name included, for after a failover).
                var permanentPhysical = SlotSettingsFor(input.Settings).Permanent.Where(p => !p.IsLogical).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
                // (Only the slots of members present: those of gone members are kept from this leader's memory, see MayDropSlot.)
                var members = slots.Append(SlotNames.For(_config.Name))
                    .Where(n => !permanentPhysical.Contains(n)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
                retained = members.Count > 0 ? members : null;
            }
        }

        if (pg.WriteLsn is { } lsn)
        {
            var status = new ClusterStatus { Optime = lsn, Timeline = pg.Timeline, Slots = published, RetainSlots = retained };
            var json = System.Text.Encoding.UTF8.GetString(PatroniCodec.Serialize(status));
            if (lsn != _lastStatusOptime || json != _lastStatusJson)
            {
                await _store.SetStatusAsync(status, ct).ConfigureAwait(false);
                _lastStatusOptime = lsn;
                _lastStatusJson = json;
            }
        }

        // The switch to my timeline must be in `history` (rule 4); if recording it after the promotion failed, retry here.
        await RecordTimelineSwitchAsync(input.Cluster?.History ?? [], pg, "promoted", ct).ConfigureAwait(false);
    }

    private async Task MemberSlotsAsync(HaInput input, CancellationToken ct)
    {
        if (input.Settings.Postgresql.UseSlots && input.Cluster is { } cluster)
        {
            // A nostream member reads the archive, not a slot: it gets none (a slot would hold WAL back for nobody).
            var slots = SlotNames.MemberSlots(cluster, _config.Name, leader: true);
            foreach (var slot in slots)
            {
                _slotUnwantedSince.Remove(slot);
            }

            await _pg.SyncReplicationSlotsAsync(slots, ct, MayDropSlot(input.Settings.MemberSlotsTtl)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Puts the exact switch that created the primary's timeline into <c>history</c> (replacing a reservation for it, or a
    /// row that says otherwise); nothing when it is there already. Every branch is kept: rows are per created timeline.
    /// </summary>
    private async Task RecordTimelineSwitchAsync(IReadOnlyList<HistoryEntry> history, PgState pg, string reason, CancellationToken ct)
    {
        if (pg.InRecovery != false || pg.Timeline is not { } timeline || timeline <= 1
            || await _pg.ReadLastTimelineSwitchAsync(timeline, ct).ConfigureAwait(false) is not { } sw)
        {
            return;
        }

        if (history.Any(h => h.CreatedTimeline == timeline && h.Timeline == sw.ParentTimeline && h.Lsn == sw.SwitchLsn
                             && !h.IsProvisional))
        {
            return;
        }

        // Written from a fresh read and only while the key is still ours: a put from a stale view (a slow cycle whose lease
        // lapsed meanwhile) would erase the record of a promotion made since.
        var now = await _store.LoadAsync(ct).ConfigureAwait(false);
        if (now.Leader is not { } key || key.Name != _config.Name || key.LeaseId != _leaseId())
        {
            return;
        }

        var current = now.History;
        if (current.Any(h => h.CreatedTimeline == timeline && h.Timeline == sw.ParentTimeline && h.Lsn == sw.SwitchLsn
                             && !h.IsProvisional))
        {
            return;
        }

        var exact = new HistoryEntry(sw.ParentTimeline, sw.SwitchLsn, reason, _time.GetUtcNow(), _config.Name) { NewTimeline = timeline };
        if (await _store.SetHistoryAsync([.. current.Where(h => h.CreatedTimeline != timeline), exact], now.HistoryModRevision, _config.Name, ct).ConfigureAwait(false))
        {
            Log.HistoryRecorded(_log, sw.ParentTimeline, Lsn.Format(sw.SwitchLsn), _config.Name);
        }
    }

    /// <summary>
    /// Synchronous mode on the leader: moves synchronous_standby_names and the sync key towards the standbys
    /// <see cref="SyncReplication.Choose"/> picks, one <see cref="SyncReplication.Next"/> change at a time: a standby joins
    /// PostgreSQL's list first and the key once it has caught up; it leaves the key first and PostgreSQL's list after. Also
    /// turns it off (key emptied, names cleared, then the key deleted) when synchronous_mode is switched off.
    /// </summary>
    private async Task SyncReplicationAsync(HaInput input, PgState pg, CancellationToken ct)
    {
        if (input.Cluster is not { } cluster)
        {
            return;
        }

        var settings = input.Settings;
        if (!settings.SynchronousMode && cluster.Sync is null && !pg.SynchronousStandbyNamesManaged)
        {
            _waitedForSince.Clear();
            return;
        }

        // Read now, not from the cycle's view: this cycle's promotion (or a slow cycle) may have changed the key since,
        // and synchronous_standby_names may only name what the key names at the moment it is set.
        var key = (await _store.LoadAsync(ct).ConfigureAwait(false)).Sync;
        for (var changes = 0; changes < 4; changes++)
        {
            var ssn = SyncReplication.Parse(pg.SynchronousStandbyNames, pg.SynchronousStandbyNamesManaged);
            var onRecord = key?.Leader == _config.Name ? key.Standbys : [];
            IReadOnlyList<string> wanted = settings.SynchronousMode ? SyncReplication.Choose(_config.Name, cluster, pg, settings, onRecord) : [];
            var streaming = pg.Replication.Where(r => r.State == "streaming").Select(r => r.ApplicationName).ToList();
            var change = settings is { SynchronousMode: true, SynchronousModeQuorum: true }
                ? QuorumCommit.Next(_config.Name, settings.SynchronousModeStrict, settings.SynchronousNodeCount, ssn, key, wanted, CaughtUpSinceInForce(pg))
                : SyncReplication.Next(_config.Name, settings.SynchronousMode, settings.SynchronousModeStrict, ssn, key, wanted, streaming, CaughtUp(pg, ssn));
            switch (change)
            {
                case null:
                    return;

                case WriteSyncKey write:
                    if (!await _store.SetSyncStateAsync(write.State, key?.ModRevision ?? 0, _config.Name, ct).ConfigureAwait(false))
                    {
                        Log.StepFailed(_log, "write sync key", "the sync key changed meanwhile or the leader key is no longer held");
                        return;
                    }

                    Log.SyncKeyWritten(_log, write.State is null ? "deleted"
                        : write.State.Quorum is { } quorum ? $"leader {write.State.Leader}, quorum {quorum} of voters [{string.Join(", ", write.State.Standbys)}]"
                        : $"leader {write.State.Leader}, synchronous standbys [{string.Join(", ", write.State.Standbys)}]");
                    key = (await _store.LoadAsync(ct).ConfigureAwait(false)).Sync;
                    break;

                case SetStandbyNames set:
                    await _pg.SetSynchronousStandbyNamesAsync(set.Value, ct).ConfigureAwait(false);
                    Log.StandbyNamesSet(_log, set.Value is null ? "(no longer managed)" : $"'{set.Value}'");
                    pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>
    /// The standbys that may join the sync key: PostgreSQL has counted each as synchronous since a WAL position this agent
    /// recorded when it first saw that (not earlier: the reload that makes PostgreSQL wait for it takes effect
    /// asynchronously), and each has flushed past it. A standby that stops being counted starts again.
    /// </summary>
    private HashSet<string> CaughtUp(PgState pg, StandbyNames ssn)
    {
        var counted = pg.Replication
            .Where(r => r.State == "streaming" && r.SyncState is "sync" or "quorum" && ssn.Managed && ssn.Names.Contains(r.ApplicationName))
            .ToList();
        foreach (var name in _waitedForSince.Keys.Where(n => !counted.Any(r => r.ApplicationName == n)).ToList())
        {
            _waitedForSince.Remove(name);
        }

        var caughtUp = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in counted)
        {
            if (!_waitedForSince.TryGetValue(row.ApplicationName, out var since))
            {
                _waitedForSince[row.ApplicationName] = pg.WriteLsn ?? long.MaxValue;
            }
            else if ((row.FlushLsn ?? 0) >= since)
            {
                caughtUp.Add(row.ApplicationName);
            }
        }

        return caughtUp;
    }

    /// <summary>
    /// Quorum commit: the standbys that hold every commit acknowledged before what synchronous_standby_names says now came
    /// into force — they flushed past the leader's WAL position recorded when this agent first saw it in force (commits
    /// acknowledged earlier all lie below it). Empty on the first sight of a value.
    /// </summary>
    private HashSet<string> CaughtUpSinceInForce(PgState pg)
    {
        var value = (pg.SynchronousStandbyNamesManaged ? "managed:" : "operator:") + pg.SynchronousStandbyNames;
        if (value != _standbyNamesSeen)
        {
            _standbyNamesSeen = value;
            _standbyNamesInForceAt = pg.WriteLsn ?? long.MaxValue;
            return [];
        }

        return [.. pg.Replication.Where(r => r.State == "streaming" && (r.FlushLsn ?? 0) >= _standbyNamesInForceAt).Select(r => r.ApplicationName)];
    }

    /// <summary>Before a start or promotion as primary: synchronous_standby_names names nobody (strict: commits wait).</summary>
    private async Task ResetSynchronousStandbyNamesAsync(PgState pg, DynamicConfig settings, CancellationToken ct)
    {
        _waitedForSince.Clear();
        _standbyNamesSeen = null;
        if (settings.SynchronousMode)
        {
            await _pg.SetSynchronousStandbyNamesAsync(SyncReplication.Render([], settings.SynchronousModeStrict), ct).ConfigureAwait(false);
        }
        else if (pg.SynchronousStandbyNamesManaged)
        {
            await _pg.SetSynchronousStandbyNamesAsync(null, ct).ConfigureAwait(false);
        }
    }

    private SlotSettings SlotSettingsFor(DynamicConfig settings)
    {
        if (_slotSettings is { } cached && ReferenceEquals(cached.Config, settings))
        {
            return cached.Slots;
        }

        var read = SlotSettings.Read(settings);
        _slotSettings = (settings, read);
        return read;
    }

    private SlotInputs SlotInputsFor(HaInput input, ClusterView cluster, LocalSlots local) => new()
    {
        MySlot = SlotNames.For(_config.Name),
        AllMemberSlots = [.. cluster.Members.Select(m => SlotNames.For(m.Name)), SlotNames.For(_config.Name)],
        Settings = SlotSettingsFor(input.Settings),
        UseSlots = input.Settings.Postgresql.UseSlots,
        NoFailover = _config.Tags.NoFailover,
        NoStream = _config.Tags.NoStream,
        Paused = input.Settings.Pause,
        Existing = local.Slots,
        MayDrop = MayDropSlot(input.Settings.MemberSlotsTtl),
    };

    /// <summary>Runs a slot plan's actions (a failure is logged and the rest go on) and logs its new warnings.</summary>
    private async Task RunSlotPlanAsync(SlotPlan plan, LocalSlots local, CancellationToken ct)
    {
        foreach (var name in plan.Wanted)
        {
            _slotUnwantedSince.Remove(name);
        }

        foreach (var name in _slotUnwantedSince.Keys.Where(k => !local.Slots.Any(l => l.Name == k)).ToList())
        {
            _slotUnwantedSince.Remove(name);
        }

        foreach (var action in plan.Actions)
        {
            if (await _pg.ApplySlotActionAsync(action, ct).ConfigureAwait(false) is { } failure)
            {
                Log.SlotActionFailed(_log, action.Name, action.GetType().Name, $"{failure.Message}{(failure.SqlState is null ? "" : $" (SQLSTATE {failure.SqlState})")}");
                if (action is AdvanceSlot { Database: not null } && failure.NeedsCopy)
                {
                    _recopy.Add(action.Name);
                }
            }
            else if (action is DropSlot)
            {
                _slotUnwantedSince.Remove(action.Name);
            }
        }

        var warnings = plan.Warnings.ToHashSet(StringComparer.Ordinal);
        foreach (var warning in warnings.Where(w => !_slotWarnings.Contains(w)))
        {
            Log.SlotWarning(_log, warning);
        }

        _slotWarnings = warnings;
    }

    /// <summary>
    /// A running replica's slots, as Patroni keeps them: the permanent physical slots (advanced to the positions the leader
    /// publishes), copies of the permanent logical slots (read from the primary, loaded with a restart, then advanced to
    /// the leader's published confirmed_flush_lsn but never past what this replica replayed), and the readiness check that
    /// tells when a copy is safe to use after a failover (the primary keeps the catalog rows it needs).
    /// </summary>
    public async Task SyncReplicaSlotsAsync(HaInput input, PgState pg, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(pg);
        if (pg.InRecovery != true || !pg.Accepting || input.Cluster is not { } cluster || !input.Settings.Postgresql.UseSlots
            || cluster.LeaderMember is not { } leader || leader.Name == _config.Name
            || await _pg.ListReplicationSlotsAsync(ct).ConfigureAwait(false) is not { } local)
        {
            return;
        }

        var inputs = SlotInputsFor(input, cluster, local) with
        {
            MemberSlots = [.. cluster.Members.Where(m => m.Name != _config.Name).Select(m => SlotNames.For(m.Name))],
            CascadeSlots = SlotNames.MemberSlots(cluster, _config.Name, leader: false),
            ReplayLsn = pg.ReplayLsn,
            Published = cluster.Status?.Slots ?? new Dictionary<string, long>(),
            Recopy = _recopy,
        };
        var plan = SlotPlanner.ForReplica(inputs);
        await RunSlotPlanAsync(plan, local, ct).ConfigureAwait(false);
        var logical = inputs.Settings.Permanent.Where(p => p.IsLogical).ToDictionary(p => p.Name, StringComparer.Ordinal);
        if (!_slotsReadinessQueued)
        {
            // After an agent start, every logical slot already here is checked again (Patroni's force_readiness_check).
            foreach (var slot in local.Slots.Where(l => l.Type == SlotSettings.Logical && logical.ContainsKey(l.Name)))
            {
                _slotsNotReady.TryAdd(slot.Name, null);
            }

            _slotsReadinessQueued = true;
        }

        if (ConnUrl.Parse(leader.Data.ConnUrl ?? "") is not { } address)
        {
            return;
        }

        if (plan.Copy.Count > 0 && !input.Settings.Pause)
        {
            await CopyLogicalSlotsAsync(plan.Copy, logical, leader.Name, address, input.Settings, ct).ConfigureAwait(false);
            return;
        }

        await CheckSlotReadinessAsync(local, address, ct).ConfigureAwait(false);
    }

    private async Task CopyLogicalSlotsAsync(IReadOnlyList<string> names, Dictionary<string, PermanentSlot> configured, string leaderName, HostPort address, DynamicConfig settings, CancellationToken ct)
    {
        IReadOnlyList<SlotCopy> copies;
        try
        {
            copies = await _pg.ReadLogicalSlotsAsync(address, names, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException or InvalidOperationException && !ct.IsCancellationRequested)
        {
            Log.SlotActionFailed(_log, string.Join(", ", names), "copy from the primary", e.Message);
            return;
        }

        // Read after the slots: replay only moves forward, so a copy not ahead of this is not ahead of the stopped replica.
        var replay = (await _pg.InspectAsync(ct).ConfigureAwait(false)).ReplayLsn;
        var install = new List<SlotCopy>();
        foreach (var copy in copies)
        {
            if (!configured.TryGetValue(copy.Slot.Name, out var spec))
            {
                continue;
            }

            if (SlotPlanner.CopyProblem(spec, copy.Slot, copy.State.Length, replay) is { } problem)
            {
                if (_slotDeferrals.Add($"{copy.Slot.Name}: {problem[..Math.Min(problem.Length, 20)]}"))
                {
                    Log.SlotCopyDeferred(_log, copy.Slot.Name, problem);
                }

                continue;
            }

            install.Add(copy);
        }

        if (install.Count == 0)
        {
            return;
        }

        var upstream = _config.Tags.NoStream ? new Upstream(address, null, Stream: false)
            : new Upstream(address, settings.Postgresql.UseSlots ? SlotNames.For(_config.Name) : null);
        Log.SlotCopyRestart(_log, string.Join(", ", install.Select(c => c.Slot.Name)), leaderName);
        _status.SetState("restarting");
        try
        {
            await _pg.StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
            await _pg.InstallSlotCopiesAsync(install, ct).ConfigureAwait(false);
        }
        finally
        {
            // Started again whatever happened to the copy (a failed stop leaves it running: nothing to start).
            if (!(await _pg.InspectAsync(ct).ConfigureAwait(false)).Running)
            {
                await _pg.StartAsync(StartRole.Replica, CurrentUpstreamTarget ?? upstream, settings, ct).ConfigureAwait(false);
                CurrentUpstreamTarget ??= upstream;
                CurrentUpstream ??= address.ToString();
            }

            _status.SetState("running");
        }

        foreach (var copy in install)
        {
            _recopy.Remove(copy.Slot.Name);
            _slotsNotReady[copy.Slot.Name] = null;
            _slotDeferrals.RemoveWhere(d => d.StartsWith(copy.Slot.Name + ":", StringComparison.Ordinal));
        }
    }

    /// <summary>Patroni's check_logical_slots_readiness: logs when each copied slot became safe to use after a failover.</summary>
    private async Task CheckSlotReadinessAsync(LocalSlots local, HostPort address, CancellationToken ct)
    {
        foreach (var name in _slotsNotReady.Keys.Where(n => !local.Slots.Any(l => l.Name == n)).ToList())
        {
            _slotsNotReady.Remove(name);
        }

        if (_slotsNotReady.Count == 0)
        {
            return;
        }

        var mine = SlotNames.For(_config.Name);
        IReadOnlyDictionary<string, long?> onPrimary;
        try
        {
            onPrimary = await _pg.ReadCatalogXminsAsync(address, [.. _slotsNotReady.Keys, mine], ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException or InvalidOperationException && !ct.IsCancellationRequested)
        {
            Log.SlotActionFailed(_log, mine, "readiness check on the primary", e.Message);
            return;
        }

        if (!onPrimary.TryGetValue(mine, out var physical) || physical is null)
        {
            var warning = $"the logical slot copies ({string.Join(", ", _slotsNotReady.Keys)}) are not yet safe after a failover: this replica's physical slot {mine} on the primary has no catalog_xmin (hot_standby_feedback must be on, and the replica streaming through its slot)";
            if (_slotWarnings.Add(warning))
            {
                Log.SlotWarning(_log, warning);
            }

            return;
        }

        foreach (var name in _slotsNotReady.Keys.ToList())
        {
            if (_slotsNotReady[name] is null && onPrimary.TryGetValue(name, out var logicalXmin) && logicalXmin is not null)
            {
                _slotsNotReady[name] = logicalXmin;
            }

            if (_slotsNotReady[name] is { } remembered
                && SlotPlanner.SafeAfterFailover(remembered, physical, local.Slots.FirstOrDefault(l => l.Name == name)?.CatalogXmin))
            {
                _slotsNotReady.Remove(name);
                Log.SlotReady(_log, name);
            }
        }
    }

    /// <summary>
    /// The slot of a member that is gone is kept for <c>member_slots_ttl</c> from when this leader first found it unwanted
    /// (after an agent restart, from then: never earlier than a member could still come back), so a rebooted replica or a
    /// rewound former primary finds its WAL.
    /// </summary>
    private Func<string, bool> MayDropSlot(long memberSlotsTtl) => slot =>
    {
        var now = _time.GetTimestamp();
        if (!_slotUnwantedSince.TryGetValue(slot, out var since))
        {
            _slotUnwantedSince[slot] = now;
            return memberSlotsTtl == 0;
        }

        return _time.GetElapsedTime(since, now) >= TimeSpan.FromSeconds(memberSlotsTtl);
    };

    /// <summary>
    /// Dynamic parameters (the <c>config</c> key) reach postgresql.conf within a cycle of a change, and are reloaded;
    /// ones that need a restart show as pending restart.
    /// </summary>
    public async Task ApplyDynamicConfigAsync(PgState pg, DynamicConfig settings, CancellationToken ct)
    {
        var wanted = System.Text.Json.JsonSerializer.Serialize(settings.Postgresql.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal), StewardJson.Default.IEnumerableKeyValuePairStringString)
                     + (SlotSettings.EnforcesHotStandbyFeedback(settings, _config.Tags.NoFailover, _config.Tags.NoStream) ? " hot_standby_feedback" : "")
                     // pg_hba.conf and a standby cluster's recovery settings are written by the same reload
                     + "\n" + string.Join('\n', settings.Postgresql.PgHba ?? [])
                     + "\n" + string.Join('\n', settings.StandbyCluster?.RecoveryParameters().Select(p => $"{p.Key}={p.Value}") ?? []);
        if (_reloadRequested || (pg.Running && pg.Accepting && wanted != _appliedParameters))
        {
            _reloadRequested = false;
            await _pg.ReloadAsync(settings, ct).ConfigureAwait(false);
            _appliedParameters = wanted;
            Log.ConfigApplied(_log);
            Reloaded?.Invoke();
        }
    }

    /// <summary>Restarts PostgreSQL in the role it has now (REST <c>POST /restart</c>, a scheduled restart).</summary>
    public async Task<bool> RestartAsync(DynamicConfig settings, bool holdsLeader, CancellationToken ct)
    {
        var pg = await _pg.InspectAsync(ct).ConfigureAwait(false);
        var role = pg.Running && pg.InRecovery == false ? StartRole.Primary : StartRole.Replica;
        if (role == StartRole.Primary && !holdsLeader)
        {
            Log.StepFailed(_log, "restart", "this member runs as a primary without the leader key; the HA cycle decides what it becomes");
            return false;
        }

        try
        {
            _status.SetState("restarting");
            await _pg.StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
            if (role == StartRole.Primary)
            {
                _fence.Arm(null);
            }

            await _pg.StartAsync(role, role == StartRole.Replica ? CurrentUpstreamTarget : null, settings, ct).ConfigureAwait(false);
            if (role == StartRole.Primary)
            {
                await ArmWithRunningPostmasterAsync(ct).ConfigureAwait(false);
            }

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
    /// (never deleted), pg_basebackup, start as a replica.
    /// </summary>
    public async Task<bool> ReinitializeAsync(DynamicConfig settings, CancellationToken ct)
    {
        try
        {
            var cluster = await _store.LoadAsync(ct).ConfigureAwait(false);
            if (cluster.LeaderMember is not { } leader || leader.Name == _config.Name
                || leader.Data.ConnUrl is not { } url || ConnUrl.Parse(url) is not { } address)
            {
                return false;
            }

            _status.SetState("creating replica");
            await _pg.StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
            var aside = await _pg.MoveDataDirAsideAsync(ct).ConfigureAwait(false);
            Log.Reinitializing(_log, leader.Name, aside);
            await _pg.CloneAsync(address, ct).ConfigureAwait(false);
            await _pg.SetPrimaryMarkAsync(false, ct).ConfigureAwait(false);
            var upstream = _config.Tags.NoStream ? new Upstream(address, null, Stream: false)
                : new Upstream(address, settings.Postgresql.UseSlots ? SlotNames.For(_config.Name) : null);
            await _pg.StartAsync(StartRole.Replica, upstream, settings, ct).ConfigureAwait(false);
            CurrentUpstream = address.ToString();
            CurrentUpstreamTarget = upstream;
            return true;
        }
        catch (Exception e) when (e is PostgresException or StoreUnavailableException or IOException)
        {
            Log.StepFailed(_log, "reinitialize", e.Message);
            return false;
        }
    }

    public MemberData MemberDataFor(PgState pg, string state) => new()
    {
        ConnUrl = ConnUrl.ForPostgres(_config.Postgresql.ConnectAddress),
        ApiUrl = ConnUrl.ForApi(_config.RestApi.ConnectAddress, _config.RestApi.Https),
        State = state,
        Role = pg.DataDir != DataDirStatus.Initialized ? "uninitialized" : pg.Running && pg.InRecovery == false ? "primary"
            : StandbyLeader ? "standby_leader" : "replica",
        Version = VersionInfo.Version,
        Timeline = pg.Timeline ?? pg.ControlTimeline,
        XlogLocation = pg.Lsn,
        ReceiveLsn = pg.ReceiveLsn,
        ReplayLsn = pg.ReplayLsn,
        ReplicationState = pg.Streaming ? "streaming"
            : _config.Tags.NoStream && pg.Running && pg.InRecovery == true ? "in archive recovery" : null,
        PendingRestart = pg.PendingRestart ? true : null,
        Tags = _config.Tags.All.Count == 0 ? null : _config.Tags.All,
    };
}
