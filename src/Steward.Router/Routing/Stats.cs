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

/// <summary>What HAProxy's stats page shows for a server: sessions now / total, bytes in / out, errors, last change.</summary>
public sealed class BackendStats(string name)
{
    private readonly ConcurrentDictionary<ProxySession, byte> _sessions = new();
    private long _total;
    private long _connectErrors;
    private long _bytesInClosed;
    private long _bytesOutClosed;

    public string Name { get; } = name;
    public int Current => _sessions.Count;
    public long Total => Interlocked.Read(ref _total);
    public long ConnectErrors => Interlocked.Read(ref _connectErrors);
    public long BytesIn => Interlocked.Read(ref _bytesInClosed) + _sessions.Keys.Sum(s => s.BytesIn);
    public long BytesOut => Interlocked.Read(ref _bytesOutClosed) + _sessions.Keys.Sum(s => s.BytesOut);
    public DateTimeOffset LastChange { get; private set; } = DateTimeOffset.UtcNow;

    internal void ConnectFailed()
    {
        Interlocked.Increment(ref _connectErrors);
        LastChange = DateTimeOffset.UtcNow;
    }

    internal void Started(ProxySession session, ListenerStats listener)
    {
        _sessions[session] = 0;
        Interlocked.Increment(ref _total);
        listener.Session(+1);
        LastChange = DateTimeOffset.UtcNow;
        session.Completion.ContinueWith(_ =>
        {
            _sessions.TryRemove(session, out byte _);
            Interlocked.Add(ref _bytesInClosed, session.BytesIn);
            Interlocked.Add(ref _bytesOutClosed, session.BytesOut);
            listener.Session(-1);
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Closes every session to this backend; returns how many were open.</summary>
    internal int CloseAll()
    {
        var open = _sessions.Keys.ToList();
        foreach (var s in open)
        {
            s.Close();
        }

        if (open.Count > 0)
        {
            LastChange = DateTimeOffset.UtcNow;
        }

        return open.Count;
    }
}
