using System.Collections.Concurrent;
using Steward.Router.DataPath;

namespace Steward.Router.Routing;

/// <summary>What HAProxy's stats page shows for a frontend: state, sessions now / total, errors.</summary>
public sealed class ListenerStats(string name, string address)
{
    private long _total;
    private long _errors;
    private int _holding;
    private int _current;

    public string Name { get; } = name;
    public string Address { get; } = address;
    public string State { get; internal set; } = "STOPPED";
    public long Total => Interlocked.Read(ref _total);
    public long Errors => Interlocked.Read(ref _errors);
    public int Holding => Volatile.Read(ref _holding);
    public int Current => Volatile.Read(ref _current);

    internal void Accepted() => Interlocked.Increment(ref _total);
    internal void Error() => Interlocked.Increment(ref _errors);
    internal void Hold(int delta) => Interlocked.Add(ref _holding, delta);
    internal void Session(int delta) => Interlocked.Add(ref _current, delta);
}

/// <summary>
/// A session to a backend from the moment the listener decided on it, before the data path starts: registered first,
/// so that <see cref="BackendStats.CloseAll"/> reaches a session whose backend lost the leader key at any point after
/// the listener's last check — including between that check and the start of forwarding.
/// </summary>
internal sealed class SessionSlot
{
    private readonly Lock _gate = new();
    private ProxySession? _session;
    private bool _closed;

    public bool Closed
    {
        get
        {
            lock (_gate)
            {
                return _closed;
            }
        }
    }

    public ProxySession? Session
    {
        get
        {
            lock (_gate)
            {
                return _session;
            }
        }
    }

    /// <summary>Binds the started session; false (and the session is closed) when the slot was closed first.</summary>
    public bool Attach(ProxySession session)
    {
        lock (_gate)
        {
            if (!_closed)
            {
                _session = session;
                return true;
            }
        }

        session.Close();
        return false;
    }

    /// <summary>Closes the slot, and its session if it has one. Idempotent.</summary>
    public void Close()
    {
        ProxySession? session;
        lock (_gate)
        {
            _closed = true;
            session = _session;
        }

        session?.Close();
    }
}

/// <summary>What HAProxy's stats page shows for a server: sessions now / total, bytes in / out, errors, last change.</summary>
public sealed class BackendStats(string name, TimeProvider time)
{
    private readonly ConcurrentDictionary<SessionSlot, byte> _slots = new();
    private long _total;
    private long _connectErrors;
    private long _bytesInClosed;
    private long _bytesOutClosed;
    private int _current;

    public string Name { get; } = name;
    public int Current => Volatile.Read(ref _current);
    public long Total => Interlocked.Read(ref _total);
    public long ConnectErrors => Interlocked.Read(ref _connectErrors);
    public long BytesIn => Interlocked.Read(ref _bytesInClosed) + _slots.Keys.Sum(s => s.Session?.BytesIn ?? 0);
    public long BytesOut => Interlocked.Read(ref _bytesOutClosed) + _slots.Keys.Sum(s => s.Session?.BytesOut ?? 0);

    /// <summary>Wall time of the last change, for display only.</summary>
    public DateTimeOffset LastChange { get; private set; } = time.GetUtcNow();

    internal void ConnectFailed()
    {
        Interlocked.Increment(ref _connectErrors);
        LastChange = time.GetUtcNow();
    }

    /// <summary>Registers a session about to be handed to this backend; <see cref="CloseAll"/> reaches it from now on.</summary>
    internal SessionSlot Reserve()
    {
        var slot = new SessionSlot();
        _slots[slot] = 0;
        return slot;
    }

    /// <summary>Forgets a reserved slot that got no session.</summary>
    internal void Release(SessionSlot slot) => _slots.TryRemove(slot, out _);

    /// <summary>
    /// Binds a started session to its reserved slot. False when the slot was closed in the meantime: the session has
    /// then been closed at once and is not counted.
    /// </summary>
    internal bool Attach(SessionSlot slot, ProxySession session, ListenerStats listener)
    {
        if (!slot.Attach(session))
        {
            Release(slot);
            return false;
        }

        Interlocked.Increment(ref _total);
        Interlocked.Increment(ref _current);
        listener.Session(+1);
        LastChange = time.GetUtcNow();
        session.Completion.ContinueWith(_ =>
        {
            _slots.TryRemove(slot, out byte _);
            Interlocked.Add(ref _bytesInClosed, session.BytesIn);
            Interlocked.Add(ref _bytesOutClosed, session.BytesOut);
            Interlocked.Decrement(ref _current);
            listener.Session(-1);
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return true;
    }

    /// <summary>Closes every session to this backend, including those registered but not started yet; returns how many.</summary>
    internal int CloseAll()
    {
        var open = _slots.Keys.ToList();
        foreach (var s in open)
        {
            s.Close();
        }

        if (open.Count > 0)
        {
            LastChange = time.GetUtcNow();
        }

        return open.Count;
    }
}
