using Microsoft.Extensions.Logging;
using Steward.Agent.Fence;
using Steward.Core.Cluster;

namespace Steward.Agent;

/// <summary>
/// Keeps this agent's session lease alive, independently of the HA cycle (which may be busy cloning or promoting).
/// It renews every <c>min(loop_wait, ttl/3)</c> seconds. The lease's local deadline is the send time of the last
/// successful renewal + ttl − margin: etcd counts the TTL from when it received that renewal, which is later, so
/// a primary stopped at the local deadline has stopped before etcd lets anybody else take the key.
/// </summary>
internal sealed class LeaseKeeper
{
    private readonly IClusterStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly Func<int> _ttl;
    private readonly Func<int> _loopWait;
    private readonly Func<CancellationToken, Task> _onDeadline;
    private readonly IPrimaryFence? _fence;
    private readonly Lock _gate = new();
    private TaskCompletionSource _event = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private CancellationTokenSource? _stop;
    private Task? _loop;
    private LeaseState? _current;
    private long? _deadlineTimestamp;
    private long? _failsafeTimestamp;
    private volatile bool _renewalFailed;
    private readonly string? _leaderName;

    public LeaseKeeper(IClusterStore store, TimeProvider time, ILogger log, Func<int> ttl, Func<int> loopWait, Func<CancellationToken, Task> onDeadline, IPrimaryFence? fence = null)
    {
        _fence = fence;
        _store = store;
        _time = time;
        _log = log;
        _ttl = ttl;
        _loopWait = loopWait;
        _onDeadline = onDeadline;
    }

    public LeaseState? Current => Volatile.Read(ref _current);

    /// <summary>The instant before which the lease is certainly still alive on the etcd side; null before the first renewal.</summary>
    public DateTimeOffset? Deadline
    {
        get
        {
            lock (_gate)
            {
                if (EffectiveDeadlineLocked is not { } ts)
                {
                    return null;
                }

                var now = _time.GetTimestamp();
                var remaining = TimeSpan.FromSeconds((ts - now) / (double)_time.TimestampFrequency);
                return _time.GetUtcNow() + remaining;
            }
        }
    }

    /// <summary>True while the lease is provably alive on the etcd side (monotonic clock); false before the first renewal.</summary>
    public bool IsValid => Remaining is { } left && left > TimeSpan.Zero;

    /// <summary>Time left before the local deadline (negative once passed), on the monotonic clock; null before the first renewal.</summary>
    public TimeSpan? Remaining
    {
        get
        {
            lock (_gate)
            {
                return EffectiveDeadlineLocked is { } ts ? TimeSpan.FromSeconds((ts - _time.GetTimestamp()) / (double)_time.TimestampFrequency) : null;
            }
        }
    }

    /// <summary>The safety margin kept between the local deadline and the earliest etcd-side expiry.</summary>
    public static TimeSpan Margin(int ttl) => TimeSpan.FromSeconds(Math.Max(1.0, ttl / 4.0));

    public void Start(CancellationToken ct)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _loop = Task.Run(() => LoopAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>Renews once now (used at start-up, before the first cycle). Throws <see cref="StoreUnavailableException"/>.</summary>
    public async Task RenewAsync(CancellationToken ct)
    {
        var ttl = _ttl();
        var previous = Current;
        if (previous is { LeaseId: not 0 } live && live.TtlSeconds != ttl && _leaderName is { } name)
        {
            // ttl changed in the config key: move to a lease of the new length (the leader key moves with a compare).
            var moved = await _store.RegrantAsync(ttl, name, ct).ConfigureAwait(false);
            Volatile.Write(ref _current, moved);
            SetDeadline(moved);
            Log.LeaseRegranted(_log, live.TtlSeconds, moved.TtlSeconds);
            Signal();
            return;
        }

        var state = await _store.KeepAliveAsync(ttl, ct).ConfigureAwait(false);
        if (state.IsNew && previous is not null)
        {
            // The old lease expired: if we were a primary, somebody else may already lead — unless failsafe confirmations
            // still hold every member back. Fence first, and only then let the new lease's deadline reach the fence (it
            // must not extend the life of the old primary).
            Log.LeaseLost(_log, previous.LeaseId, state.LeaseId);
            if (!FailsafeActive)
            {
                await _onDeadline(ct).ConfigureAwait(false);
            }
        }

        Volatile.Write(ref _current, state);
        SetDeadline(state);
        if (state.IsNew)
        {
            Signal();
        }
    }

    /// <summary>
    /// failsafe_mode: every member confirmed this primary over REST (<c>POST /failsafe</c>) with requests sent at
    /// <paramref name="sentAt"/>; each of them promised not to take over for ttl after it received one. The primary may
    /// live until sentAt + ttl − margin, as after a lease renewal sent then, whether or not etcd answers.
    /// </summary>
    public void ExtendByFailsafe(long sentAt)
    {
        lock (_gate)
        {
            var ttl = _ttl();
            var life = TimeSpan.FromSeconds(ttl) - Margin(ttl);
            _failsafeTimestamp = sentAt + (long)(life.TotalSeconds * _time.TimestampFrequency);
            if (EffectiveDeadlineLocked is { } deadline)
            {
                _fence?.Extend(deadline);
            }
        }
    }

    /// <summary>True while a failsafe confirmation (not the lease) keeps the primary alive.</summary>
    public bool FailsafeActive
    {
        get
        {
            lock (_gate)
            {
                return _failsafeTimestamp is { } fs && fs > _time.GetTimestamp() && !(_deadlineTimestamp > _time.GetTimestamp());
            }
        }
    }

    private long? EffectiveDeadline
    {
        get
        {
            lock (_gate)
            {
                return EffectiveDeadlineLocked;
            }
        }
    }

    private long? EffectiveDeadlineLocked => (_deadlineTimestamp, _failsafeTimestamp) switch
    {
        (null, var f) => f,
        (var d, null) => d,
        (long d, long f) => Math.Max(d, f),
    };

    /// <summary>
    /// failsafe_mode: asks every member to confirm this primary (<c>POST /failsafe</c>); true only when all did. Returns
    /// false at once when it does not apply (failsafe_mode off, not the leader, not a primary). Called by the loop when a
    /// renewal is late; a true answer extends the deadline as <see cref="ExtendByFailsafe"/> says.
    /// </summary>
    public Func<CancellationToken, Task<bool>>? FailsafeConfirm { get; init; }

    /// <summary>The member name whose leader key moves with the lease when ttl changes.</summary>
    public string? LeaderName
    {
        get => _leaderName;
        init => _leaderName = value;
    }

    private void SetDeadline(LeaseState state)
    {
        lock (_gate)
        {
            // Monotonic: a wall-clock step (NTP) must not stretch a primary's life past its lease.
            var life = TimeSpan.FromSeconds(state.TtlSeconds) - Margin(state.TtlSeconds);
            _deadlineTimestamp = state.RenewedAt + (long)(life.TotalSeconds * _time.TimestampFrequency);
            _fence?.Extend(EffectiveDeadlineLocked!.Value);
        }
    }

    /// <summary>Completes on the next lease event (a new lease was granted, or renewal failed).</summary>
    public Task WaitForLeaseEventAsync(CancellationToken ct)
    {
        Task t;
        lock (_gate)
        {
            t = _event.Task;
        }

        return t.WaitAsync(ct);
    }

    private void Signal()
    {
        TaskCompletionSource old;
        lock (_gate)
        {
            old = _event;
            _event = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        old.TrySetResult();
    }

    private async Task LoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            if (!await TurnAsync(ct).ConfigureAwait(false))
            {
                return;
            }

            try
            {
                await Task.Delay(NextPeriod(), _time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// One turn of the loop without the sleep after it: a renewal attempt, and the fence at the deadline if the renewal
    /// does not complete before it. For the deterministic simulation, which steps the keeper by hand on a fake clock and
    /// waits <see cref="NextPeriod"/> itself.
    /// </summary>
    internal Task StepAsync(CancellationToken ct) => TurnAsync(ct);

    /// <summary>False when cancelled.</summary>
    private async Task<bool> TurnAsync(CancellationToken ct)
    {
        var renew = RenewAsync(ct);
        var failsafe = FailsafeConfirm is null ? Task.CompletedTask : ConfirmWhileRenewalLagsAsync(renew, ct);
        try
        {
            // Do not let a hanging renewal carry a primary past its deadline: act at the deadline itself. A failsafe
            // confirmation that came in during the wait has moved the deadline: then wait for the new one.
            while (!renew.IsCompletedSuccessfully && Remaining is { } left)
            {
                var deadline = EffectiveDeadline;
                if (left <= TimeSpan.Zero)
                {
                    if (!ct.IsCancellationRequested)
                    {
                        await _onDeadline(ct).ConfigureAwait(false);
                    }

                    break;
                }

                if (renew.IsCompleted)
                {
                    break; // failed: the next turn comes no later than the deadline (NextPeriod) and acts on it
                }

                await Task.WhenAny(renew, Task.Delay(left, _time, ct)).ConfigureAwait(false);
                if (ct.IsCancellationRequested)
                {
                    break; // a delay cancelled by StopAsync (graceful shutdown) is no deadline: the shutdown stops PostgreSQL itself
                }

                if (!renew.IsCompleted && EffectiveDeadline == deadline)
                {
                    // The deadline came and nothing moved it (the timer's own rounding never makes this loop spin).
                    await _onDeadline(ct).ConfigureAwait(false);
                    break;
                }
            }

            await renew.ConfigureAwait(false);
            _renewalFailed = false;
        }
        catch (StoreUnavailableException e)
        {
            _renewalFailed = true;
            Log.StoreUnavailable(_log, e.Message);
            Signal();
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return false;
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            // Whatever went wrong, this loop must go on: it is what stops a primary whose lease is running out.
            _renewalFailed = true;
            Log.CycleFailed(_log, e.Message, e);
            Signal();
        }
        finally
        {
            await failsafe.ConfigureAwait(false); // never throws; bounded by the confirmation's own timeout
        }

        return !ct.IsCancellationRequested;
    }

    /// <summary>
    /// failsafe_mode: asks the members to confirm this primary (<see cref="FailsafeConfirm"/>) once the renewal is late —
    /// at once when the last turn could not renew, else after half a period — and again every period while it hangs;
    /// each confirmation extends the deadline. Started alongside the renewal, not after etcd's timeout, so that the
    /// confirmations land while the lease lives even when a renewal hangs for retry_timeout, or longer than the lease.
    /// </summary>
    private async Task ConfirmWhileRenewalLagsAsync(Task renew, CancellationToken ct)
    {
        try
        {
            if (!_renewalFailed)
            {
                await Task.WhenAny(renew, Task.Delay(Period() / 2, _time, ct)).ConfigureAwait(false);
            }

            if (renew.IsCompletedSuccessfully || ct.IsCancellationRequested)
            {
                return;
            }

            do
            {
                var sent = _time.GetTimestamp();
                if (await FailsafeConfirm!(ct).ConfigureAwait(false))
                {
                    ExtendByFailsafe(sent);
                }

                await Task.WhenAny(renew, Task.Delay(Period(), _time, ct)).ConfigureAwait(false);
            }
            while (!renew.IsCompleted && !ct.IsCancellationRequested); // once it failed, the next turn asks again
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            Log.CycleFailed(_log, e.Message, e);
        }
    }

    /// <summary>How long the loop sleeps after a turn: <c>min(loop_wait, ttl/3)</c>, never past the deadline.</summary>
    internal TimeSpan NextPeriod()
    {
        var period = Period();
        if (Remaining is { } untilDeadline)
        {
            // Never sleep past the deadline: the next turn must be there to act on it.
            period = untilDeadline < period ? (untilDeadline > TimeSpan.Zero ? untilDeadline : TimeSpan.FromMilliseconds(50)) : period;
        }

        return period;
    }

    private TimeSpan Period() => TimeSpan.FromSeconds(Math.Clamp(Math.Min(_loopWait(), _ttl() / 3.0), 0.5, 10));

    public async Task StopAsync()
    {
        if (_stop is null)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        _stop.Dispose();
        _stop = null;
    }
}
