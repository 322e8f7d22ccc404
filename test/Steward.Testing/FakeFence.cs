using Steward.Agent.Fence;

namespace Steward.Testing;

/// <summary>
/// The agent's half of the fence (<see cref="SupervisedFence"/>'s bookkeeping): armed / target / deadline, told to the
/// <see cref="FenceSupervisorModel"/> at every change as the real one writes a line to its supervisor's pipe. FireNow
/// kills the simulated postmaster (the armed target, then whatever <c>postmaster.pid</c> names: whichever runs).
/// </summary>
internal sealed class FakeFence(FakePostgres pg, FenceSupervisorModel supervisor) : IPrimaryFence
{
    private bool _armed;
    private int? _target;
    private long? _deadline;

    /// <summary>Planted bug: the fence never kills (in process or from the supervisor).</summary>
    public bool Disabled { get; init; }

    public FenceSupervisorModel Supervisor => supervisor;

    public bool Armed => _armed;

    public long? Deadline => _deadline;

    /// <summary>How many times FireNow killed a postmaster.</summary>
    public int Kills { get; private set; }

    public void Arm(int? postmasterPid)
    {
        _armed = true;
        _target = postmasterPid;
        Send();
    }

    public void Disarm()
    {
        _armed = false;
        _target = null;
        Send();
    }

    public void Extend(long deadlineTimestamp)
    {
        _deadline = deadlineTimestamp;
        Send();
    }

    public bool FireNow(string reason)
    {
        if (!_armed || Disabled)
        {
            return false;
        }

        var killed = pg.Kill();
        if (killed)
        {
            Kills++;
        }

        return killed;
    }

    private void Send() => supervisor.Update(_armed, _deadline ?? 0, _target);
}

/// <summary>
/// <see cref="FenceSupervisor"/> as the simulation models it: a process of its own on the shared clock (never frozen with
/// the agent), armed with a deadline; when the deadline passes while it is armed it kills whichever postmaster runs in the
/// data directory, after <c>latency</c> (its scheduler delay), and disarms. An armed supervisor with no deadline yet
/// waits. When its agent dies (end of input) an armed one keeps the deadline — with none it fires at once — and exits
/// after firing; a disarmed one exits at once.
/// </summary>
public sealed class FenceSupervisorModel
{
    private readonly SimClock _clock;
    private readonly FakePostgres _pg;
    private readonly Func<TimeSpan> _latency;
    private ITimer? _timer;
    private bool _armed;
    private long _deadline;
    private bool _endOfInput;

    public FenceSupervisorModel(SimClock clock, FakePostgres pg, Func<TimeSpan> latency)
    {
        _clock = clock;
        _pg = pg;
        _latency = latency;
    }

    /// <summary>Planted bug: it never kills.</summary>
    public bool Disabled { get; init; }

    /// <summary>Where it reports what it did (the simulation's trace).</summary>
    public Action<string>? Log { get; init; }

    public bool Exited { get; private set; }

    public bool Armed => _armed;

    public long Deadline => _deadline;

    /// <summary>How many times it killed a postmaster.</summary>
    public int Kills { get; private set; }

    internal void Update(bool armed, long deadline, int? target)
    {
        if (Exited || _endOfInput)
        {
            return;
        }

        _armed = armed;
        _deadline = deadline;
        Reschedule();
    }

    /// <summary>The agent process died: the pipe reached end of input.</summary>
    public void AgentDied()
    {
        if (Exited)
        {
            return;
        }

        _endOfInput = true;
        if (!_armed)
        {
            Exit();
            return;
        }

        Reschedule();
    }

    private void Reschedule()
    {
        _timer?.Dispose();
        _timer = null;
        if (Exited || !_armed)
        {
            return;
        }

        long due;
        if (_deadline == 0)
        {
            if (!_endOfInput)
            {
                return; // armed without a deadline yet: nothing to wait for
            }

            due = _clock.Now;
        }
        else
        {
            due = _deadline;
        }

        due += _latency().Ticks;
        _timer = _clock.CreateTimer(_ => Fire(), null, TimeSpan.FromTicks(Math.Max(0, due - _clock.Now)), Timeout.InfiniteTimeSpan);
    }

    private void Fire()
    {
        _timer?.Dispose();
        _timer = null;
        if (!_armed || Exited)
        {
            return;
        }

        var killed = !Disabled && _pg.Kill();
        if (killed)
        {
            Kills++;
        }

        Log?.Invoke(_endOfInput
            ? $"fence supervisor: the agent is gone and the deadline passed: {(killed ? "killed the postmaster" : "no postmaster running")}"
            : $"fence supervisor: the deadline passed without renewal: {(killed ? "killed the postmaster" : "no postmaster running")}");

        _armed = false;
        if (_endOfInput)
        {
            Exit();
        }
    }

    private void Exit()
    {
        Exited = true;
        _armed = false;
        _timer?.Dispose();
        _timer = null;
    }
}
