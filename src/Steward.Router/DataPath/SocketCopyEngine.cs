using System.Buffers;
using System.Net.Sockets;

namespace Steward.Router.DataPath;

/// <summary>
/// The portable data path: per session, two async receive/send loops over pooled buffers. Slower than
/// <see cref="EpollSpliceEngine"/>; DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 in the environment helps it.
/// </summary>
public sealed class SocketCopyEngine : IProxyEngine
{
    private readonly Lock gate = new();
    private readonly HashSet<CopySession> sessions = [];
    private readonly int bufferSize;
    private bool disposed;

    public SocketCopyEngine(int bufferSize = 16 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bufferSize, 512);
        this.bufferSize = bufferSize;
    }

    public ProxySession Start(Socket client, Socket backend)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(backend);
        var session = new CopySession(client, backend, bufferSize);
        lock (gate)
        {
            if (disposed)
            {
                session.Close();
                throw new ObjectDisposedException(nameof(SocketCopyEngine));
            }
            sessions.Add(session);
        }
        session.Run(this);
        return session;
    }

    public void Dispose()
    {
        CopySession[] open;
        lock (gate)
        {
            disposed = true;
            open = [.. sessions];
        }
        foreach (var session in open)
        {
            session.Close();
        }
    }

    private void Forget(CopySession session)
    {
        lock (gate)
        {
            sessions.Remove(session);
        }
    }

    private sealed class CopySession : ProxySession
    {
        private readonly Socket client;
        private readonly Socket backend;
        private readonly int bufferSize;
        private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private long bytesIn;
        private long bytesOut;
        private int closed;

        public CopySession(Socket client, Socket backend, int bufferSize)
        {
            this.client = client;
            this.backend = backend;
            this.bufferSize = bufferSize;
        }

        public override long BytesIn => Volatile.Read(ref bytesIn);

        public override long BytesOut => Volatile.Read(ref bytesOut);

        public override Task Completion => completion.Task;

        public void Run(SocketCopyEngine engine)
        {
            try
            {
                client.NoDelay = true;
                backend.NoDelay = true;
            }
            catch (SocketException)
            {
                // already reset: the first receive fails and ends the session
            }
            var up = Task.Run(() => PumpAsync(client, backend, up: true));
            var down = Task.Run(() => PumpAsync(backend, client, up: false));
            _ = FinishAsync(engine, up, down);
        }

        public override void Close()
        {
            if (Interlocked.Exchange(ref closed, 1) != 0)
            {
                return;
            }
            ShutdownQuietly(client, SocketShutdown.Both);
            ShutdownQuietly(backend, SocketShutdown.Both);
            client.Dispose();
            backend.Dispose();
        }

        private async Task FinishAsync(SocketCopyEngine engine, Task up, Task down)
        {
            // the pumps catch socket errors; anything else must not keep Completion from completing either
            await Task.WhenAll(up, down).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            Close();
            engine.Forget(this);
            completion.TrySetResult();
        }

        /// <summary>Copies until EOF (then half-closes the destination) or an error (then closes the session).</summary>
        private async Task PumpAsync(Socket source, Socket destination, bool up)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(bufferSize);
            try
            {
                while (true)
                {
                    var n = await source.ReceiveAsync(buffer.AsMemory(), SocketFlags.None).ConfigureAwait(false);
                    if (n == 0)
                    {
                        ShutdownQuietly(destination, SocketShutdown.Send);
                        return;
                    }
                    var sent = 0;
                    while (sent < n)
                    {
                        sent += await destination.SendAsync(buffer.AsMemory(sent, n - sent), SocketFlags.None).ConfigureAwait(false);
                    }
                    if (up)
                    {
                        Volatile.Write(ref bytesIn, bytesIn + n);
                    }
                    else
                    {
                        Volatile.Write(ref bytesOut, bytesOut + n);
                    }
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                Close();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private static void ShutdownQuietly(Socket socket, SocketShutdown how)
        {
            try
            {
                socket.Shutdown(how);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // the peer is gone already
            }
        }
    }
}
