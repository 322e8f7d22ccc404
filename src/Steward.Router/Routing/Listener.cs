using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Steward.Core.Configuration;
using Steward.Router.DataPath;

namespace Steward.Router.Routing;

public enum ListenerKind { Write, Read }

/// <summary>What a listener routes by: the current table, and a way to wait for the next one.</summary>
public interface IRoutingSource
{
    RoutingTable Table { get; }

    /// <summary>Completes at the next table change.</summary>
    Task WaitForChangeAsync(CancellationToken ct);
}

/// <summary>Points of <see cref="Listener"/>'s hand-over of a client, for tests that change the table exactly there.</summary>
internal enum ServeStep
{
    /// <summary>The backend connection is made; the session is not registered yet.</summary>
    Connected,

    /// <summary>The session is registered (a cut reaches it); the table is not checked again yet.</summary>
    Registered,

    /// <summary>The table was checked again after the registration; forwarding is about to start.</summary>
    Checked,
}

/// <summary>
/// One client-facing port. Accepts, picks a backend from the current <see cref="RoutingTable"/> (write: the writer
/// only; read: the replica with the fewest sessions, else the writer if allowed), connects, registers the session,
/// checks the table again, and hands both sockets to the data path. A write client that arrives while there is no
/// writer waits up to <c>hold_timeout</c> for one instead of being refused.
/// </summary>
public sealed partial class Listener : IAsyncDisposable
{
    private readonly ListenerKind _kind;
    private readonly HostPort _address;
    private readonly IRoutingSource _source;
    private readonly IProxyEngine _engine;
    /// <summary>How soon a client whose backend refused is given another pick when the table has not changed.</summary>
    private static readonly TimeSpan RetryConnect = TimeSpan.FromMilliseconds(250);

    private readonly TimeSpan _hold;
    private readonly TimeSpan _connectTimeout;
    private readonly bool _fallbackToLeader;
    private readonly bool _closeOnLeaderChange;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, BackendStats> _backends = new(StringComparer.Ordinal);
    private Socket? _socket;
    private Task? _acceptLoop;

    public Listener(ListenerKind kind, HostPort address, IRoutingSource source, IProxyEngine engine, TimeSpan hold, TimeSpan connectTimeout,
        bool fallbackToLeader, bool closeOnLeaderChange, TimeProvider time, ILogger log)
    {
        _kind = kind;
        _address = address;
        _source = source;
        _engine = engine;
        _hold = hold;
        _connectTimeout = connectTimeout;
        _fallbackToLeader = fallbackToLeader;
        _closeOnLeaderChange = closeOnLeaderChange;
        _time = time;
        _log = log;
        Stats = new ListenerStats(kind == ListenerKind.Write ? "write" : "read", address.ToString());
    }

    public ListenerStats Stats { get; }

    public IEnumerable<BackendStats> Backends => _backends.Values;

    public int BoundPort => (_socket?.LocalEndPoint as IPEndPoint)?.Port ?? _address.Port;

    /// <summary>Test seam: called at each <see cref="ServeStep"/> of a hand-over, on the serving thread.</summary>
    internal Action<ServeStep, Backend>? OnStep { get; set; }

    /// <summary>Binds the port (throws <see cref="SocketException"/> when it is taken) and starts accepting.</summary>
    public void Start()
    {
        var ip = _address.Host is "*" or "0.0.0.0" or "" ? IPAddress.Any
            : _address.Host == "::" ? IPAddress.IPv6Any
            : IPAddress.TryParse(_address.Host, out var parsed) ? parsed
            : Dns.GetHostAddresses(_address.Host).First();
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(ip, _address.Port));
            socket.Listen(4096);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        _socket = socket;
        Stats.State = "OPEN";
        _acceptLoop = Task.Run(() => AcceptLoopAsync(_stop.Token), CancellationToken.None);
    }

    /// <summary>Closes every session forwarded to <paramref name="member"/>, started or only registered; returns how many.</summary>
    public int CloseSessionsTo(string member) => _backends.TryGetValue(member, out var b) ? b.CloseAll() : 0;

    /// <summary>
    /// Call on every table change (synchronously, before anything waits on the new table): when the leader key moved
    /// away from a member, every session to it on this port is cut — on the write port, and on the read port the ones
    /// that fell back to the leader (or reached it while it was a replica) — so nobody keeps writing to a demoted or
    /// zombie primary. Returns how many were cut.
    /// </summary>
    public int OnTableChanged(RoutingTable old, RoutingTable now)
    {
        ArgumentNullException.ThrowIfNull(old);
        ArgumentNullException.ThrowIfNull(now);
        return _closeOnLeaderChange && old.Leader is { } before && now.Leader?.Name != before.Name ? CloseSessionsTo(before.Name) : 0;
    }

    private async Task AcceptLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket!.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                continue;
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(client, ct), CancellationToken.None);
        }
    }

    private async Task ServeAsync(Socket client, CancellationToken ct)
    {
        Stats.Accepted();
        try
        {
            client.NoDelay = true;
            var started = _time.GetTimestamp();
            var refused = false;
            while (true)
            {
                // Subscribed before the table is read: a change between the read and the hold below is not missed.
                var change = _source.WaitForChangeAsync(CancellationToken.None); // the bare task: no continuation until we hold
                var backend = Pick(_source.Table);
                if (backend is not null)
                {
                    var stats = _backends.GetOrAdd(backend.Name, name => new BackendStats(name, _time));
                    var server = await ConnectAsync(backend, ct).ConfigureAwait(false);
                    if (server is not null)
                    {
                        if (Handover(client, server, backend, stats))
                        {
                            return;
                        }

                        // The backend lost its role while we connected or registered: pick again from the new table.
                        continue;
                    }

                    // It refused or did not answer: a leader that crashed still holds the key until its lease expires. The
                    // client is held, as while there is no leader, and the pick repeated at the next table change or
                    // after RetryConnect, within hold_timeout (PgBouncer in front then waits instead of failing its clients).
                    stats.ConnectFailed();
                    if (!refused)
                    {
                        LogConnectFailed(_log, Stats.Name, backend.Name, backend.Address.ToString());
                    }

                    refused = true;
                }

                var left = _hold - _time.GetElapsedTime(started);
                if (left <= TimeSpan.Zero)
                {
                    Stats.Error();
                    LogNoBackend(_log, Stats.Name, _hold.TotalSeconds, backend is null ? _source.Table.Reason ?? "no backend" : $"{backend.Name} does not accept connections");
                    client.Shutdown(SocketShutdown.Both);
                    client.Dispose();
                    return;
                }

                Stats.Hold(+1);
                try
                {
                    await change.WaitAsync(backend is null || left < RetryConnect ? left : RetryConnect, _time, ct).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                }
                finally
                {
                    Stats.Hold(-1);
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            client.Dispose();
        }
    }

    /// <summary>
    /// Registers the session to <paramref name="backend"/> first, then checks the table again, then starts forwarding.
    /// A table change (or a cut) before the check sends the client back to pick from the new table; a cut after it
    /// reaches the registered session, which is then closed as it starts (the client sees the connection drop). Returns
    /// false (the backend connection closed, the client untouched) when the backend may no longer take this session.
    /// </summary>
    private bool Handover(Socket client, Socket server, Backend backend, BackendStats stats)
    {
        OnStep?.Invoke(ServeStep.Connected, backend);
        var slot = stats.Reserve();

        // Registration (a store) before the check (a load), against the watcher's table swap (an interlocked store)
        // before its cut (a load): a full fence on each side, so at least one of the two sees the other.
        Interlocked.MemoryBarrier();
        try
        {
            OnStep?.Invoke(ServeStep.Registered, backend);
            if (!Eligible(_source.Table, backend) || slot.Closed)
            {
                stats.Release(slot);
                server.Dispose();
                return false;
            }

            OnStep?.Invoke(ServeStep.Checked, backend);
        }
        catch
        {
            stats.Release(slot);
            server.Dispose();
            throw;
        }

        ProxySession session;
        try
        {
            session = _engine.Start(client, server);
        }
        catch
        {
            stats.Release(slot);
            server.Dispose();
            throw;
        }

        if (!stats.Attach(slot, session, Stats))
        {
            LogCutAtStart(_log, Stats.Name, backend.Name);
        }

        return true;
    }

    private bool Eligible(RoutingTable table, Backend backend) =>
        _kind == ListenerKind.Write ? table.Writer == backend : table.ReadableBy(backend, _fallbackToLeader);

    private Backend? Pick(RoutingTable table)
    {
        if (_kind == ListenerKind.Write)
        {
            return table.Writer;
        }

        if (table.Readers.Count > 0)
        {
            return table.Readers.MinBy(r => _backends.TryGetValue(r.Name, out var s) ? s.Current : 0);
        }

        return _fallbackToLeader ? table.Writer : null;
    }

    /// <summary>
    /// Connects with a blocking connect on a pool thread, not ConnectAsync: a socket connected asynchronously stays
    /// registered with .NET's own epoll thread, which would then wake on every packet the data path already handles
    /// (measured: +0.2 of a core under pgbench).
    /// </summary>
    private async Task<Socket?> ConnectAsync(Backend backend, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var connect = Task.Run(() => socket.Connect(backend.Address.Host, backend.Address.Port), CancellationToken.None);
        try
        {
            var finished = await Task.WhenAny(connect, Task.Delay(_connectTimeout, ct)).ConfigureAwait(false);
            if (finished != connect)
            {
                socket.Dispose();
                _ = connect.ContinueWith(t => t.Exception, TaskScheduler.Default); // observed: the connect fails once the socket is closed
                return null;
            }

            await connect.ConfigureAwait(false);
            return socket;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            socket.Dispose();
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _socket?.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }

        foreach (var b in _backends.Values)
        {
            b.CloseAll();
        }

        _stop.Dispose();
    }

    [LoggerMessage(EventId = 4010, Level = LogLevel.Warning, Message = "{Listener}: could not connect to {Member} at {Address}; holding the client and trying again (at the next change, or every 250 ms) within hold_timeout")]
    private static partial void LogConnectFailed(ILogger logger, string listener, string member, string address);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Warning, Message = "{Listener}: no backend after holding the client {Seconds} s ({Reason}); closing it")]
    private static partial void LogNoBackend(ILogger logger, string listener, double seconds, string reason);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Warning, Message = "{Listener}: {Member} lost its role as the session to it started; the session was closed at once")]
    private static partial void LogCutAtStart(ILogger logger, string listener, string member);
}
