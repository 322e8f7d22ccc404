using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Steward.Agent.Fence;

/// <summary>
/// The real <see cref="IPrimaryFence"/>: kills in-process when the lease keeper reports the deadline, and keeps a
/// <see cref="FenceSupervisor"/> child process told of every change so the kill also happens when this process cannot
/// act. The supervisor is restarted if it dies; while it is down, the in-process half still works and the agent says so.
/// </summary>
internal sealed class SupervisedFence : IPrimaryFence, IDisposable
{
    private readonly string _dataDir;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly bool _supervised;
    private readonly Lock _gate = new();
    private Process? _child;
    private bool _armed;
    private Postmaster.Identity? _target;
    private long? _deadline;
    private string? _lastSent;
    private bool _disposed;

    public SupervisedFence(string dataDir, TimeProvider time, ILogger log, bool supervised = true)
    {
        _dataDir = dataDir;
        _time = time;
        _log = log;
        _supervised = supervised;
    }

    public bool Armed
    {
        get
        {
            lock (_gate)
            {
                return _armed;
            }
        }
    }

    public void Arm(int? postmasterPid)
    {
        lock (_gate)
        {
            var target = postmasterPid is { } pid ? Postmaster.Identify(pid) : null;
            if (!_armed || target != _target)
            {
                Log.FenceArmed(_log, target?.Pid.ToString(CultureInfo.InvariantCulture) ?? "the one postmaster.pid names");
            }

            _armed = true;
            _target = target;
            SendLocked();
        }
    }

    public void Disarm()
    {
        lock (_gate)
        {
            if (_armed)
            {
                Log.FenceDisarmed(_log);
            }

            _armed = false;
            _target = null;
            SendLocked();
        }
    }

    public void Extend(long deadlineTimestamp)
    {
        lock (_gate)
        {
            _deadline = deadlineTimestamp;
            SendLocked();
        }
    }

    public bool FireNow(string reason)
    {
        Postmaster.Identity? target;
        lock (_gate)
        {
            if (!_armed)
            {
                return false;
            }

            target = _target;
        }

        // The kill first; logging and bookkeeping after.
        var killed = target is { } t && Postmaster.Kill(t, Postmaster.WalDrain);
        if (Postmaster.PidFromFile(_dataDir) is { } pid && pid != target?.Pid && Postmaster.Identify(pid) is { } current)
        {
            killed |= Postmaster.Kill(current);
        }

        Log.FenceFired(_log, reason, killed ? "killed the postmaster and its processes" : "no postmaster was running");
        return killed;
    }

    /// <summary>Starts the supervisor; false (logged) when it cannot be started: the in-process fence still works.</summary>
    public bool Start()
    {
        lock (_gate)
        {
            return _supervised && EnsureChildLocked();
        }
    }

    private void SendLocked()
    {
        if (!_supervised || _disposed)
        {
            return;
        }

        var deadlineNs = _deadline is { } d ? FenceSupervisor.ToNs(d, _time.TimestampFrequency) : 0;
        var line = _armed
            ? $"arm {deadlineNs.ToString(CultureInfo.InvariantCulture)} {(_target?.Pid ?? 0).ToString(CultureInfo.InvariantCulture)} {(_target?.StartTicks ?? 0).ToString(CultureInfo.InvariantCulture)}"
            : "disarm";
        if (line == _lastSent && _child is { HasExited: false })
        {
            return;
        }

        for (var attempt = 0; attempt < 2; attempt++)
        {
            if (!EnsureChildLocked())
            {
                return;
            }

            try
            {
                _child!.StandardInput.WriteLine(line);
                _child.StandardInput.Flush();
                _lastSent = line;
                return;
            }
            catch (IOException e)
            {
                Log.FenceSupervisorLost(_log, e.Message);
                _child?.Dispose();
                _child = null;
            }
        }
    }

    private bool EnsureChildLocked()
    {
        if (_child is { HasExited: false })
        {
            return true;
        }

        if (_child is not null)
        {
            Log.FenceSupervisorLost(_log, $"it exited with code {_child.ExitCode}");
            _child.Dispose();
            _child = null;
        }

        try
        {
            var exe = Environment.ProcessPath ?? throw new InvalidOperationException("the path of this program is unknown");
            var info = new ProcessStartInfo(exe) { RedirectStandardInput = true, UseShellExecute = false };
            if (Path.GetFileNameWithoutExtension(exe) == "dotnet")
            {
                info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "steward.dll"));
            }

            info.ArgumentList.Add(FenceSupervisor.Verb);
            info.ArgumentList.Add("--data-dir");
            info.ArgumentList.Add(_dataDir);
            info.Environment["STEWARD_FENCE_AGENT"] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
            // A small, quiet process: no tiered-compilation background thread churn, a small heap.
            info.Environment["DOTNET_TieredPGO"] = "0";
            info.Environment["DOTNET_GCHeapHardLimit"] = "0x4000000";
            _child = Process.Start(info) ?? throw new InvalidOperationException("Process.Start returned nothing");
            _lastSent = null;
            Log.FenceSupervisorStarted(_log, _child.Id);
            return true;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or IOException)
        {
            Log.FenceSupervisorLost(_log, $"cannot start it: {e.Message}");
            _child = null;
            return false;
        }
    }

    /// <summary>Tells the supervisor to exit (disarmed). Call only once PostgreSQL is stopped or a replica.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (_child is { HasExited: false } child)
            {
                try
                {
                    // Armed (PostgreSQL may still be a primary): the supervisor keeps the deadline and fires at it after we
                    // are gone. Disarmed: it exits at once.
                    if (!_armed)
                    {
                        child.StandardInput.WriteLine("bye");
                    }

                    child.StandardInput.Close();
                    if (!_armed)
                    {
                        child.WaitForExit(TimeSpan.FromSeconds(2));
                    }
                }
                catch (IOException)
                {
                }
            }

            _child?.Dispose();
            _child = null;
        }
    }
}
