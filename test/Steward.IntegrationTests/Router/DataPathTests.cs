using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Steward.IntegrationTests.Infrastructure;
using Steward.Router.DataPath;

namespace Steward.IntegrationTests.Router;

public sealed class EpollCopyDataPathTests : DataPathTests
{
    protected override IProxyEngine CreateEngine() => new EpollSpliceEngine();
}

public sealed class EpollSpliceDataPathTests : DataPathTests
{
    protected override IProxyEngine CreateEngine() => new EpollSpliceEngine(new EpollEngineOptions { Transfer = TransferMode.Splice, PipeSize = 256 * 1024 });
}

public sealed class EpollOneLoopDataPathTests : DataPathTests
{
    protected override IProxyEngine CreateEngine() => new EpollSpliceEngine(new EpollEngineOptions { Loops = 1, BufferSize = 16 * 1024 });
}

public sealed class SocketCopyDataPathTests : DataPathTests
{
    protected override IProxyEngine CreateEngine() => new SocketCopyEngine();
}

/// <summary>
/// The contract of <see cref="IProxyEngine"/>, run against every engine. A test owns both ends: the client socket
/// (what an application holds) and the server socket (what PostgreSQL holds); the engine sits between them on loopback.
/// </summary>
public abstract class DataPathTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly Socket listener;
    private readonly IPEndPoint endpoint;
    private readonly SemaphoreSlim pairing = new(1, 1);
    private readonly List<Link> links = [];

    protected DataPathTests()
    {
        endpoint = new IPEndPoint(IPAddress.Loopback, FreePorts.Next());
        listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(endpoint);
        listener.Listen(4096);
        Engine = CreateEngine();
    }

    private IProxyEngine Engine { get; }

    protected abstract IProxyEngine CreateEngine();

    [Fact]
    public async Task Several_megabytes_cross_the_engine_intact_in_both_directions_at_once()
    {
        var link = await LinkAsync();
        var up = RandomNumberGenerator.GetBytes(8 * 1024 * 1024 + 17);
        var down = RandomNumberGenerator.GetBytes(6 * 1024 * 1024 + 5);

        var sendUp = SendAllAsync(link.Client, up, close: true);
        var sendDown = SendAllAsync(link.Server, down, close: true);
        var receivedAtServer = ReceiveToEndAsync(link.Server);
        var receivedAtClient = ReceiveToEndAsync(link.Client);
        await Task.WhenAll(sendUp, sendDown, receivedAtServer, receivedAtClient).WaitAsync(Timeout);

        Assert.Equal(SHA256.HashData(up), SHA256.HashData((await receivedAtServer).Data));
        Assert.Equal(SHA256.HashData(down), SHA256.HashData((await receivedAtClient).Data));
        await link.Session.Completion.WaitAsync(Timeout);
        Assert.Equal(up.Length, link.Session.BytesIn);
        Assert.Equal(down.Length, link.Session.BytesOut);
    }

    [Fact]
    public async Task Two_hundred_concurrent_sessions_each_get_their_own_bytes_back()
    {
        var all = new List<Link>();
        for (var i = 0; i < 200; i++)
        {
            all.Add(await LinkAsync());
        }

        await Task.WhenAll(all.Select(async link =>
        {
            var echo = EchoAsync(link.Server);
            var payload = RandomNumberGenerator.GetBytes(Random.Shared.Next(1, 256 * 1024));
            var send = SendAllAsync(link.Client, payload, close: true);
            var back = await ReceiveToEndAsync(link.Client);
            await Task.WhenAll(send, echo);
            Assert.Equal(SHA256.HashData(payload), SHA256.HashData(back.Data));
            await link.Session.Completion;
        })).WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_client_half_close_reaches_the_server_which_can_still_answer()
    {
        var link = await LinkAsync();
        await SendAllAsync(link.Client, "query"u8.ToArray(), close: true);

        var atServer = await ReceiveToEndAsync(link.Server).WaitAsync(Timeout);
        Assert.Equal("query"u8.ToArray(), atServer.Data);
        Assert.False(atServer.Reset);
        Assert.False(link.Session.Completion.IsCompleted);

        await SendAllAsync(link.Server, "answer"u8.ToArray(), close: true);
        var atClient = await ReceiveToEndAsync(link.Client).WaitAsync(Timeout);
        Assert.Equal("answer"u8.ToArray(), atClient.Data);
        await link.Session.Completion.WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_server_half_close_reaches_the_client_which_can_still_send()
    {
        var link = await LinkAsync();
        await SendAllAsync(link.Server, "bye"u8.ToArray(), close: true);

        var atClient = await ReceiveToEndAsync(link.Client).WaitAsync(Timeout);
        Assert.Equal("bye"u8.ToArray(), atClient.Data);

        await SendAllAsync(link.Client, "late"u8.ToArray(), close: true);
        var atServer = await ReceiveToEndAsync(link.Server).WaitAsync(Timeout);
        Assert.Equal("late"u8.ToArray(), atServer.Data);
        await link.Session.Completion.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Close_from_another_thread_ends_the_session_and_both_peers_see_the_drop()
    {
        var link = await LinkAsync();
        await SendAllAsync(link.Client, "ping"u8.ToArray(), close: false);
        Assert.Equal("ping"u8.ToArray(), await ReceiveExactlyAsync(link.Server, 4).WaitAsync(Timeout));

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(link.Session.Close)));

        await link.Session.Completion.WaitAsync(Timeout);
        var atClient = await ReceiveToEndAsync(link.Client).WaitAsync(Timeout);
        var atServer = await ReceiveToEndAsync(link.Server).WaitAsync(Timeout);
        Assert.Empty(atClient.Data);
        Assert.Empty(atServer.Data);
        link.Session.Close();
    }

    /// <summary>
    /// The router closes a session right after starting it when its backend lost the leader key during the hand-over:
    /// that close must never be lost, whatever the engine's loop is doing between the two calls.
    /// </summary>
    [Fact]
    public async Task A_session_closed_as_soon_as_it_started_always_ends()
    {
        var ended = 0;
        for (var round = 0; round < 20; round++)
        {
            var pairs = new List<(Socket Client, Socket Accepted, Socket Server, Socket ToServer)>();
            for (var i = 0; i < 50; i++)
            {
                var (client, accepted) = await PairAsync();
                var (server, toServer) = await PairAsync();
                pairs.Add((client, accepted, server, toServer));
            }

            var sessions = await Task.WhenAll(pairs.Select(p => Task.Run(() =>
            {
                var session = Engine.Start(p.Accepted, p.ToServer);
                session.Close();
                return session;
            })));
            var all = Task.WhenAll(sessions.Select(s => s.Completion));
            await Task.WhenAny(all, Task.Delay(Timeout));
            ended += sessions.Count(s => s.Completion.IsCompleted);
            Assert.True(all.IsCompleted, $"round {round}: {sessions.Count(s => !s.Completion.IsCompleted)} of {sessions.Length} sessions closed right after their start never ended");
            foreach (var p in pairs)
            {
                p.Client.Dispose();
                p.Server.Dispose();
            }
        }

        Assert.Equal(1000, ended);
    }

    [Fact]
    public async Task A_client_that_resets_mid_stream_does_not_disturb_other_sessions()
    {
        var victim = await LinkAsync();
        var bystander = await LinkAsync();
        var bystanderEcho = EchoAsync(bystander.Server);
        var flood = FloodAsync(victim.Server);
        await SendAllAsync(victim.Client, RandomNumberGenerator.GetBytes(100_000), close: false);
        await ReceiveExactlyAsync(victim.Client, 1000).WaitAsync(Timeout);

        victim.Client.LingerState = new LingerOption(true, 0);
        victim.Client.Close();

        await victim.Session.Completion.WaitAsync(Timeout);
        await flood.WaitAsync(Timeout);
        var payload = RandomNumberGenerator.GetBytes(3 * 1024 * 1024);
        var send = SendAllAsync(bystander.Client, payload, close: true);
        var back = await ReceiveToEndAsync(bystander.Client).WaitAsync(Timeout);
        await Task.WhenAll(send, bystanderEcho).WaitAsync(Timeout);
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(back.Data));
    }

    [Fact]
    public async Task A_thousand_connections_dropped_at_once_leave_the_engine_serving()
    {
        var crowd = new List<Link>();
        for (var i = 0; i < 1000; i++)
        {
            crowd.Add(await LinkAsync());
        }
        await Task.WhenAll(crowd.Take(10).Select(l => SendAllAsync(l.Client, "x"u8.ToArray(), close: false)));

        Parallel.ForEach(crowd, (link, _, i) =>
        {
            if (i % 2 == 0)
            {
                link.Client.LingerState = new LingerOption(true, 0);
                link.Client.Close();
            }
            else
            {
                link.Server.Close();
            }
        });

        // a dropped client leaves the server socket open, and the other way round: the peers see the drop and close too
        await Task.WhenAll(crowd.Select(async (link, i) =>
        {
            await ReceiveToEndAsync(i % 2 == 0 ? link.Server : link.Client);
            (i % 2 == 0 ? link.Server : link.Client).Close();
            await link.Session.Completion;
        })).WaitAsync(Timeout);

        var fresh = await LinkAsync();
        var echo = EchoAsync(fresh.Server);
        var payload = RandomNumberGenerator.GetBytes(1024 * 1024);
        var send = SendAllAsync(fresh.Client, payload, close: true);
        var back = await ReceiveToEndAsync(fresh.Client).WaitAsync(Timeout);
        await Task.WhenAll(send, echo).WaitAsync(Timeout);
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(back.Data));
    }

    [Fact]
    public async Task A_slow_reader_holds_back_the_sender_instead_of_growing_memory()
    {
        var link = await LinkAsync();
        var payload = RandomNumberGenerator.GetBytes(96 * 1024 * 1024);
        var send = SendAllAsync(link.Server, payload, close: true);

        // the engine stops forwarding once the socket buffers between it and the client are full: BytesOut stays
        // the same (and above 0) for a whole second
        var still = 0;
        var last = -1L;
        var deadline = DateTime.UtcNow + Timeout;
        while (still < 4 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
            var now = link.Session.BytesOut;
            still = now == last && now > 0 ? still + 1 : 0;
            last = now;
        }
        Assert.Equal(4, still);
        Assert.False(send.IsCompleted);
        Assert.InRange(last, 1, 48 * 1024 * 1024);

        var received = await ReceiveToEndAsync(link.Client).WaitAsync(Timeout);
        await send.WaitAsync(Timeout);
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(received.Data));
    }

    [Fact]
    public async Task Dispose_ends_every_open_session()
    {
        var open = new List<Link>();
        for (var i = 0; i < 20; i++)
        {
            open.Add(await LinkAsync());
        }

        Engine.Dispose();

        await Task.WhenAll(open.Select(l => l.Session.Completion)).WaitAsync(Timeout);
        foreach (var link in open)
        {
            Assert.Empty((await ReceiveToEndAsync(link.Client).WaitAsync(Timeout)).Data);
        }
    }

    public void Dispose()
    {
        Engine.Dispose();
        listener.Dispose();
        foreach (var link in links)
        {
            link.Client.Dispose();
            link.Server.Dispose();
        }
        pairing.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A client connection through the engine to a server socket.</summary>
    private sealed record Link(Socket Client, Socket Server, ProxySession Session);

    private sealed record Received(byte[] Data, bool Reset);

    private async Task<Link> LinkAsync()
    {
        var (client, accepted) = await PairAsync();
        var (server, toServer) = await PairAsync();
        var link = new Link(client, server, Engine.Start(accepted, toServer));
        lock (links)
        {
            links.Add(link);
        }
        return link;
    }

    /// <summary>A connected socket and its accepted peer.</summary>
    private async Task<(Socket Connected, Socket Accepted)> PairAsync()
    {
        await pairing.WaitAsync();
        try
        {
            var connected = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var accept = listener.AcceptAsync();
            await connected.ConnectAsync(endpoint);
            return (connected, await accept);
        }
        finally
        {
            pairing.Release();
        }
    }

    private static async Task SendAllAsync(Socket socket, byte[] data, bool close)
    {
        await Task.Yield();
        for (var offset = 0; offset < data.Length;)
        {
            offset += await socket.SendAsync(data.AsMemory(offset, Math.Min(256 * 1024, data.Length - offset)));
        }
        if (close)
        {
            socket.Shutdown(SocketShutdown.Send);
        }
    }

    /// <summary>Reads until EOF or a reset.</summary>
    private static async Task<Received> ReceiveToEndAsync(Socket socket)
    {
        await Task.Yield();
        using var data = new MemoryStream();
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer);
                if (n == 0)
                {
                    return new Received(data.ToArray(), Reset: false);
                }
                data.Write(buffer, 0, n);
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return new Received(data.ToArray(), Reset: true);
        }
    }

    private static async Task<byte[]> ReceiveExactlyAsync(Socket socket, int count)
    {
        var buffer = new byte[count];
        for (var offset = 0; offset < count;)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(offset));
            Assert.NotEqual(0, n);
            offset += n;
        }
        return buffer;
    }

    /// <summary>Sends back everything until EOF, then closes for sending.</summary>
    private static async Task EchoAsync(Socket socket)
    {
        await Task.Yield();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer);
            if (n == 0)
            {
                socket.Shutdown(SocketShutdown.Send);
                return;
            }
            for (var sent = 0; sent < n;)
            {
                sent += await socket.SendAsync(buffer.AsMemory(sent, n - sent));
            }
        }
    }

    /// <summary>Sends until the connection breaks.</summary>
    private static async Task FloodAsync(Socket socket)
    {
        await Task.Yield();
        var buffer = RandomNumberGenerator.GetBytes(64 * 1024);
        try
        {
            while (true)
            {
                await socket.SendAsync(buffer);
            }
        }
        catch (SocketException)
        {
            // the engine closed the backend side after the client reset
        }
    }
}
