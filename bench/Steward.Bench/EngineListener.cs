using System.Net;
using System.Net.Sockets;
using Steward.Router.DataPath;

namespace Steward.Bench;

/// <summary>
/// Accepts on a free loopback port and hands each connection, with a fresh connection to the backend, to an engine.
/// Accept and connect are synchronous on a dedicated thread, so .NET's own epoll never sees the sockets, unless
/// <c>asyncConnect</c> asks for ConnectAsync (to measure what that registration costs the epoll engine).
/// </summary>
internal sealed class EngineListener : IDisposable
{
    private readonly Socket listener;
    private readonly Thread thread;
    private readonly IPEndPoint backend;
    private readonly bool asyncConnect;
    private int accepted;

    public EngineListener(string name, IProxyEngine engine, IPEndPoint backend, bool asyncConnect = false)
    {
        this.asyncConnect = asyncConnect;
        Name = name;
        Engine = engine;
        this.backend = backend;
        listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4096);
        Port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        thread = new Thread(AcceptLoop) { IsBackground = true, Name = $"accept-{name}" };
        thread.Start();
    }

    public string Name { get; }

    public IProxyEngine Engine { get; }

    public int Port { get; }

    public int Accepted => Volatile.Read(ref accepted);

    public void Dispose()
    {
        listener.Dispose();
        thread.Join();
        Engine.Dispose();
    }

    private void AcceptLoop()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (asyncConnect)
                {
                    server.ConnectAsync(backend).GetAwaiter().GetResult();
                }
                else
                {
                    server.Connect(backend);
                }
                Engine.Start(client, server);
                Interlocked.Increment(ref accepted);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                client.Dispose();
                server.Dispose();
            }
        }
    }
}
