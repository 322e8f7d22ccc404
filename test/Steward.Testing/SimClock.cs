namespace Steward.Testing;

/// <summary>
/// The deterministic clock of a simulation: one monotonic time line shared by every simulated machine, timers that fire
/// in (due time, creation order) order on the thread that advances the clock, and nothing else — no thread pool, no real
/// time. Itself it is the clock of the processes that are never frozen (etcd, the fence supervisors, PostgreSQL); an
/// agent process gets a <see cref="ProcessClock"/> on it.
/// <para>
/// Why not FakeTimeProvider: it ties the wall clock to the monotonic one (a clock step would move
/// <see cref="TimeProvider.GetTimestamp"/> too, and it refuses to go backwards), and the order in which it fires timers
/// due at the same instant is not specified. Here <see cref="GetTimestamp"/> only ever moves forward, and a wall-clock
/// step is modelled per machine as an offset on <see cref="GetUtcNow"/> (see <see cref="ProcessClock"/>).
/// </para>
/// </summary>
public sealed class SimClock : TimeProvider
{
    /// <summary>
    /// Runs <paramref name="work"/> after <paramref name="delay"/> on the shared clock (it is another process's work: it
    /// happens whatever state the caller is in), and hands its outcome to the caller through <paramref name="gate"/>: a
    /// frozen caller hears of it when thawed, a dead one never. Continuations run inline.
    /// </summary>
    public static Task<T> Later<T>(TimeProvider caller, TimeSpan delay, Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var (shared, gate) = caller is ProcessClock p ? ((TimeProvider)p.Shared, p.Gate) : (caller, (ProcessGate?)null);
        var answer = new TaskCompletionSource<T>();
        shared.CreateTimer(_ =>
        {
            Action reply;
            try
            {
                var result = work();
                reply = () => answer.TrySetResult(result);
            }
            catch (Exception e)
            {
                reply = () => answer.TrySetException(e);
            }

            if (gate is null)
            {
                reply();
            }
            else
            {
                gate.Dispatch(reply);
            }
        }, null, delay, Timeout.InfiniteTimeSpan);
        return answer.Task;
    }

    private readonly PriorityQueue<(SimTimer Timer, int Version), (long Due, long Seq)> _queue = new();
    private long _now;
    private long _seq;

    public SimClock(DateTimeOffset epoch)
    {
        Epoch = epoch;
    }

    /// <summary>The wall-clock time at monotonic 0 (before any per-machine clock step).</summary>
    public DateTimeOffset Epoch { get; }

    /// <summary>Monotonic now, in <see cref="TimeSpan"/> ticks since the start.</summary>
    public long Now => _now;

    public TimeSpan Elapsed => TimeSpan.FromTicks(_now);

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => _now;

    public override DateTimeOffset GetUtcNow() => Epoch + TimeSpan.FromTicks(_now);

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        CreateTimer(callback, state, dueTime, period, gate: null);

    internal ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period, ProcessGate? gate)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var timer = new SimTimer(this, callback, state, gate);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>The due time of the next live timer, if any.</summary>
    public long? NextDue
    {
        get
        {
            while (_queue.TryPeek(out var entry, out var key))
            {
                if (entry.Timer.Version == entry.Version)
                {
                    return key.Due;
                }

                _queue.Dequeue();
            }

            return null;
        }
    }

    /// <summary>Moves time to <paramref name="target"/> (never backwards), firing every timer due on the way, in order, each at its own due time.</summary>
    public void AdvanceTo(long target)
    {
        while (_queue.TryPeek(out var entry, out var key) && key.Due <= target)
        {
            _queue.Dequeue();
            if (entry.Timer.Version != entry.Version)
            {
                continue;
            }

            _now = Math.Max(_now, key.Due);
            entry.Timer.Fire();
        }

        _now = Math.Max(_now, target);
    }

    public void Advance(TimeSpan delta) => AdvanceTo(_now + delta.Ticks);

    private void Schedule(SimTimer timer, long due) => _queue.Enqueue((timer, timer.Version), (due, _seq++));

    private sealed class SimTimer(SimClock clock, TimerCallback callback, object? state, ProcessGate? gate) : ITimer
    {
        private long _period;

        public int Version { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            Version++;
            if (Version < 0)
            {
                return false; // disposed
            }

            _period = period == Timeout.InfiniteTimeSpan || period <= TimeSpan.Zero ? 0 : period.Ticks;
            if (dueTime != Timeout.InfiniteTimeSpan)
            {
                clock.Schedule(this, clock._now + Math.Max(0, dueTime.Ticks));
            }

            return true;
        }

        public void Fire()
        {
            if (_period > 0)
            {
                clock.Schedule(this, clock._now + _period);
            }

            if (gate is null)
            {
                callback(state);
            }
            else
            {
                gate.Dispatch(() => callback(state));
            }
        }

        public void Dispose() => Version = int.MinValue;

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>The life of one simulated process: its timer callbacks run while it runs, wait while it is frozen, vanish once it is dead.</summary>
public sealed class ProcessGate
{
    private readonly Queue<Action> _held = new();

    public ProcessState State { get; private set; } = ProcessState.Running;

    public void Dispatch(Action action)
    {
        switch (State)
        {
            case ProcessState.Running:
                action();
                break;
            case ProcessState.Frozen:
                _held.Enqueue(action);
                break;
            default:
                break; // dead: a killed process runs nothing any more
        }
    }

    /// <summary>SIGSTOP.</summary>
    public void Freeze()
    {
        if (State == ProcessState.Running)
        {
            State = ProcessState.Frozen;
        }
    }

    /// <summary>SIGCONT: what came due meanwhile runs now, in order.</summary>
    public void Thaw()
    {
        if (State != ProcessState.Frozen)
        {
            return;
        }

        State = ProcessState.Running;
        while (State == ProcessState.Running && _held.TryDequeue(out var action))
        {
            action();
        }
    }

    /// <summary>kill -9.</summary>
    public void Kill()
    {
        State = ProcessState.Dead;
        _held.Clear();
    }
}

public enum ProcessState { Running, Frozen, Dead }

/// <summary>
/// The clock as one agent process sees it: the shared monotonic clock (which no clock step touches), the machine's wall
/// clock (shared time + the machine's offset, which a simulated NTP step changes), and timers that honour the process's
/// <see cref="ProcessGate"/> (a frozen process does not run its timer callbacks until it is thawed).
/// </summary>
public sealed class ProcessClock(SimClock clock, ProcessGate gate, Func<TimeSpan> wallOffset) : TimeProvider
{
    public ProcessGate Gate => gate;

    /// <summary>The shared clock, on which what other processes do (PostgreSQL, etcd) happens whatever state this one is in.</summary>
    public SimClock Shared => clock;

    public override long TimestampFrequency => clock.TimestampFrequency;

    public override long GetTimestamp() => clock.GetTimestamp();

    public override DateTimeOffset GetUtcNow() => clock.GetUtcNow() + wallOffset();

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        clock.CreateTimer(callback, state, dueTime, period, gate);
}
