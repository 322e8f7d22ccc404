using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Core.Configuration;
using Steward.Router.DataPath;
using Steward.Router.Routing;

namespace Steward.Tests.Router;

/// <summary>
/// The listener's hand-over of a client against a table that changes at exactly one point of it (through the
/// <see cref="ServeStep"/> seam, on the serving thread): deterministic, no sleeps. Backends are loopback sockets; the
/// data path is a fake that records sessions.
/// </summary>
public sealed class ListenerTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private readonly FakeBackend _x = new("node1");
    private readonly FakeBackend _y = new("node2");
    private readonly FakeEngine _engine = new();
    private readonly FakeSource _source = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        _x.Dispose();
        _y.Dispose();
        _engine.Dispose();
        await Task.CompletedTask;
    }

    /// <summary>
    /// The leader key moves from node1 to node2 at one point of the hand-over of a write client to node1. Changed before
    /// the session is registered, the check after the registration sees it and the client goes to node2; changed after
    /// the check (the old code's window: checked, not yet registered), the cut reaches the registered session and it is
    /// closed. Never does a session to node1 stay open.
    /// </summary>
    [Theory]
    [InlineData(nameof(ServeStep.Connected))]
    [InlineData(nameof(ServeStep.Registered))]
    [InlineData(nameof(ServeStep.Checked))]
    public async Task A_write_session_never_stays_on_a_member_that_lost_the_key_during_the_hand_over(string at)
    {
        var step = Enum.Parse<ServeStep>(at);
        await using var listener = Start(ListenerKind.Write);
        _source.Set(Table(writer: _x, leader: _x));
        var flipped = 0;
        listener.OnStep = (point, backend) =>
        {
            if (point == step && backend.Name == _x.Name && Interlocked.Exchange(ref flipped, 1) == 0)
            {
                _source.Set(Table(writer: _y, leader: _y));   // the watcher's swap, then its cut (RouterHost's Changed)
            }
        };

        using var client = await ConnectAsync(listener);

        if (step == ServeStep.Checked)
        {
            // Forwarding to node1 had been decided: the session is closed, and the client sees the connection drop.
            await ClosedAsync(client).WaitAsync(Timeout);
            var toX = Assert.Single(_engine.Sessions);
            Assert.Equal(_x.Name, toX.Backend);
            await toX.Closed.WaitAsync(Timeout);
            await Eventually(() => listener.Stats.Current == 0 && listener.Backends.All(b => b.Current == 0));
        }
        else
        {
            var toY = await _engine.NextStartTo(_y.Name).WaitAsync(Timeout);
            Assert.False(toY.IsClosed);
            Assert.DoesNotContain(_engine.Sessions, s => s.Backend == _x.Name);
        }

        Assert.Equal(1, flipped);
    }

    [Fact]
    public async Task Established_sessions_to_a_member_that_loses_the_key_are_cut_on_both_ports()
    {
        await using var write = Start(ListenerKind.Write);
        await using var read = Start(ListenerKind.Read, fallbackToLeader: true);
        _source.Set(Table(writer: _x, leader: _x));   // no replica qualifies: reads fall back to the leader

        using var w = await ConnectAsync(write);
        var ws = await _engine.NextStartTo(_x.Name).WaitAsync(Timeout);
        using var r = await ConnectAsync(read);
        var rs = await _engine.NextStartTo(_x.Name).WaitAsync(Timeout);
        Assert.NotSame(ws, rs);

        _source.Set(Table(writer: null, leader: null));

        await ws.Closed.WaitAsync(Timeout);
        await rs.Closed.WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_pending_switchover_holds_new_writes_but_does_not_cut_sessions_until_the_key_moves()
    {
        await using var write = Start(ListenerKind.Write);
        _source.Set(Table(writer: _x, leader: _x));
        using var w = await ConnectAsync(write);
        var ws = await _engine.NextStartTo(_x.Name).WaitAsync(Timeout);

        _source.Set(Table(writer: null, leader: _x));
        Assert.False(ws.IsClosed);
        using var held = await ConnectAsync(write);
        var next = _engine.NextStartTo(_y.Name);
        await Eventually(() => write.Stats.Holding == 1);
        Assert.False(next.IsCompleted);
        Assert.False(ws.IsClosed);

        _source.Set(Table(writer: _y, leader: _y));
        await ws.Closed.WaitAsync(Timeout);
        await next.WaitAsync(Timeout);
    }

    /// <summary>
    /// A leader that crashed keeps its key until its lease expires, and its port refuses: a new write client is held
    /// (as while there is no leader) and goes to the new leader once the table names it, instead of being closed at the
    /// first refusal — PgBouncer in front would otherwise fail its waiting clients for server_login_retry.
    /// </summary>
    [Fact]
    public async Task A_writer_that_refuses_connections_holds_the_client_until_the_table_names_another()
    {
        await using var write = Start(ListenerKind.Write);
        var crashed = new FakeBackend("node3");
        var dead = crashed.Backend;
        crashed.Dispose(); // its port now refuses
        _source.Set(new RoutingTable { Writer = dead, Leader = dead });

        using var held = await ConnectAsync(write);
        await Eventually(() => write.Backends.Any(b => b.Name == "node3" && b.ConnectErrors >= 2)); // tried again, not closed
        Assert.Equal(0, write.Stats.Errors);
        var next = _engine.NextStartTo(_y.Name);
        Assert.False(next.IsCompleted);

        _source.Set(Table(writer: _y, leader: _y));
        await next.WaitAsync(Timeout);
    }

    [Theory]
    [InlineData(nameof(ServeStep.Registered))]
    [InlineData(nameof(ServeStep.Checked))]
    public async Task A_read_session_that_fell_back_to_the_leader_never_stays_on_it_once_it_lost_the_key(string at)
    {
        var step = Enum.Parse<ServeStep>(at);
        await using var read = Start(ListenerKind.Read, fallbackToLeader: true);
        _source.Set(Table(writer: _x, leader: _x));
        read.OnStep = (point, backend) =>
        {
            if (point == step && backend.Name == _x.Name)
            {
                _source.Set(Table(writer: null, leader: null, readers: [_y]));
            }
        };

        using var client = await ConnectAsync(read);
        await Task.WhenAny(_engine.NextStartTo(_y.Name), ClosedAsync(client)).WaitAsync(Timeout);
        foreach (var s in _engine.Sessions.Where(s => s.Backend == _x.Name))
        {
            await s.Closed.WaitAsync(Timeout);
        }
    }

    public ListenerTests()
    {
        _engine.Name(_x);
        _engine.Name(_y);
    }

    /// <summary>Polls a condition the listener reaches on its own threads (generous timeout).</summary>
    private static async Task Eventually(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in time");
            await Task.Delay(5);
        }
    }

    private Listener Start(ListenerKind kind, bool fallbackToLeader = false)
    {
        var listener = new Listener(kind, new HostPort("127.0.0.1", 0), _source, _engine, hold: TimeSpan.FromSeconds(30),
            connectTimeout: TimeSpan.FromSeconds(10), fallbackToLeader, closeOnLeaderChange: true, TimeProvider.System, NullLogger.Instance);
        _source.Changed += listener.OnTableChanged;
        listener.Start();
        return listener;
    }

    private static RoutingTable Table(FakeBackend? writer, FakeBackend? leader, FakeBackend[]? readers = null) => new()
    {
        Writer = writer?.Backend,
        Leader = leader?.Backend,
        Readers = [.. (readers ?? []).Select(r => r.Backend)],
    };

    private static async Task<Socket> ConnectAsync(Listener listener)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, listener.BoundPort);
        return socket;
    }

    /// <summary>Completes when the router closes the client connection (a read returns end of stream or fails).</summary>
    private static async Task ClosedAsync(Socket client)
    {
        var buffer = new byte[16];
        try
        {
            while (await client.ReceiveAsync(buffer, SocketFlags.None) > 0)
            {
            }
        }
        catch (SocketException)
        {
        }
    }

    private sealed class FakeSource : IRoutingSource
    {
        private readonly Lock _gate = new();
        private RoutingTable _table = RoutingTable.Empty;
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public event Func<RoutingTable, RoutingTable, int>? Changed;

        public RoutingTable Table => Volatile.Read(ref _table);

        public Task WaitForChangeAsync(CancellationToken ct)
        {
            lock (_gate)
            {
                return _changed.Task.WaitAsync(ct);
            }
        }

        /// <summary>What <see cref="ClusterWatcher"/> does: swap the table, raise Changed synchronously, wake the waiters.</summary>
        public void Set(RoutingTable table)
        {
            var old = Interlocked.Exchange(ref _table, table);
            foreach (var handler in Changed?.GetInvocationList().Cast<Func<RoutingTable, RoutingTable, int>>() ?? [])
            {
                handler(old, table);
            }

            TaskCompletionSource done;
            lock (_gate)
            {
                done = _changed;
                _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            done.TrySetResult();
        }
    }

    /// <summary>A backend: a loopback listening socket that accepts and holds connections.</summary>
    private sealed class FakeBackend : IDisposable
    {
        private readonly Socket _listen = new(SocketType.Stream, ProtocolType.Tcp);

        public FakeBackend(string name)
        {
            _listen.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listen.Listen(64);
            Name = name;
            Backend = new Backend(name, new HostPort("127.0.0.1", ((IPEndPoint)_listen.LocalEndPoint!).Port), null);
        }

        public string Name { get; }
        public Backend Backend { get; }
        public int Port => Backend.Address.Port;

        public void Dispose() => _listen.Dispose();
    }

    private sealed class FakeEngine : IProxyEngine
    {
        private readonly ConcurrentQueue<FakeSession> _sessions = new();
        private readonly ConcurrentDictionary<string, ConcurrentQueue<TaskCompletionSource<FakeSession>>> _waiters = new(StringComparer.Ordinal);
        private readonly Dictionary<int, string> _names = [];

        public IReadOnlyCollection<FakeSession> Sessions => _sessions;

        public void Name(FakeBackend b) => _names[b.Port] = b.Name;

        /// <summary>Completes with the next session started to <paramref name="backend"/> (or one already started and not yet claimed).</summary>
        public Task<FakeSession> NextStartTo(string backend)
        {
            var queue = _waiters.GetOrAdd(backend, _ => new ConcurrentQueue<TaskCompletionSource<FakeSession>>());
            var tcs = new TaskCompletionSource<FakeSession>(TaskCreationOptions.RunContinuationsAsynchronously);
            queue.Enqueue(tcs);
            lock (_sessions)
            {
                var unclaimed = _sessions.FirstOrDefault(s => s.Backend == backend && !s.Claimed);
                if (unclaimed is not null && queue.TryDequeue(out var first))
                {
                    unclaimed.Claimed = true;
                    first.TrySetResult(unclaimed);
                }
            }

            return tcs.Task;
        }

        public ProxySession Start(Socket client, Socket backend)
        {
            var port = ((IPEndPoint)backend.RemoteEndPoint!).Port;
            var session = new FakeSession(client, backend, _names.TryGetValue(port, out var n) ? n : port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            lock (_sessions)
            {
                _sessions.Enqueue(session);
                if (_waiters.TryGetValue(session.Backend, out var queue) && queue.TryDequeue(out var waiter))
                {
                    session.Claimed = true;
                    waiter.TrySetResult(session);
                }
            }

            return session;
        }

        public void Dispose()
        {
            foreach (var s in _sessions)
            {
                s.Close();
            }
        }
    }

    private sealed class FakeSession(Socket client, Socket backend, string name) : ProxySession
    {
        private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Backend { get; } = name;
        public bool Claimed { get; set; }
        public bool IsClosed => _closed.Task.IsCompleted;
        public Task Closed => _closed.Task;
        public override long BytesIn => 0;
        public override long BytesOut => 0;
        public override Task Completion => _closed.Task;

        public override void Close()
        {
            client.Dispose();
            backend.Dispose();
            _closed.TrySetResult();
        }
    }
}
