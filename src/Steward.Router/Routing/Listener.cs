using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Steward.Core.Configuration;
using Steward.Router.DataPath;

namespace Steward.Router.Routing;

public enum ListenerKind { Write, Read }

/// <summary>
/// One client-facing port. Accepts, picks a backend from the current <see cref="RoutingTable"/> (write: the leader only;
/// read: the replica with the fewest sessions, else the leader if allowed), connects, and hands both sockets to the data
/// path. A write client that arrives while there is no leader waits up to <c>hold_timeout</c> for one instead of being
/// refused.
/// </summary>
public sealed partial class Listener : IAsyncDisposable
{
    private readonly ListenerKind _kind;
    private readonly HostPort _address;
    private readonly ClusterWatcher _watcher;
    private readonly IProxyEngine _engine;
    private readonly TimeSpan _hold;
    private readonly TimeSpan _connectTimeout;
    private readonly bool _fallbackToLeader;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, BackendStats> _backends = new(StringComparer.Ordinal);
    private Socket? _socket;
    private Task? _acceptLoop;

    public Listener(ListenerKind kind, HostPort address, ClusterWatcher watcher, IProxyEngine engine, TimeSpan hold, TimeSpan connectTimeout,
        bool fallbackToLeader, ILogger log)
    {
        _kind = kind;
        _address = address;
        _watcher = watcher;
        _engine = engine;
        _hold = hold;
        _connectTimeout = connectTimeout;
        _fallbackToLeader = fallbackToLeader;
        _log = log;
        Stats = new ListenerStats(kind == ListenerKind.Write ? "write" : "read", address.ToString());
    }

    public ListenerStats Stats { get; }

    public IEnumerable<BackendStats> Backends => _backends.Values;

    public int BoundPort => (_socket?.LocalEndPoint as IPEndPoint)?.Port ?? _address.Port;

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

    /// <summary>Closes every session forwarded to <paramref name="member"/> (it lost the leader key).</summary>
    public int CloseSessionsTo(string member) => _backends.TryGetValue(member, out var b) ? b.CloseAll() : 0;

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
            var deadline = DateTimeOffset.UtcNow + _hold;
            while (true)
            {
                var backend = Pick(_watcher.Table);
                if (backend is not null)
                {
                    var stats = _backends.GetOrAdd(backend.Name, name => new BackendStats(name));
                    var server = await ConnectAsync(backend, ct).ConfigureAwait(false);
                    if (server is null)
                    {
                        stats.ConnectFailed();
                        Stats.Error();
                        LogConnectFailed(_log, Stats.Name, backend.Name, backend.Address.ToString());
                        client.Dispose();
                        return;
                    }

                    // Re-check after the connect: the leader may have moved while we connected (rule 5).
                    if (_kind == ListenerKind.Write && _watcher.Table.Writer?.Name != backend.Name)
                    {
                        server.Dispose();
                        continue;
                    }

                    var session = _engine.Start(client, server);
                    stats.Started(session, Stats);
                    return;
                }

                var left = deadline - DateTimeOffset.UtcNow;
                if (left <= TimeSpan.Zero)
                {
                    Stats.Error();
                    LogNoBackend(_log, Stats.Name, _hold.TotalSeconds, _watcher.Table.Reason ?? "no backend");
                    client.Shutdown(SocketShutdown.Both);
                    client.Dispose();
                    return;
                }

                Stats.Hold(+1);
                try
                {
                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    wait.CancelAfter(left);
                    await _watcher.WaitForChangeAsync(wait.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
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

    [LoggerMessage(EventId = 4010, Level = LogLevel.Warning, Message = "{Listener}: could not connect to {Member} at {Address}; closing the client connection")]
    private static partial void LogConnectFailed(ILogger logger, string listener, string member, string address);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Warning, Message = "{Listener}: no backend after holding the client {Seconds} s ({Reason}); closing it")]
    private static partial void LogNoBackend(ILogger logger, string listener, double seconds, string reason);
}
