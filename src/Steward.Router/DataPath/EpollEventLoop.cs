using System.Collections.Concurrent;
using System.ComponentModel;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Steward.Router.DataPath.LinuxNative;

namespace Steward.Router.DataPath;

/// <summary>
/// One event-loop thread of <see cref="EpollSpliceEngine"/>. Sockets are registered edge-triggered for input and output
/// once, and never modified: readiness is tracked per direction, so backpressure costs no epoll_ctl. Other threads talk to
/// the loop through two queues and an eventfd.
/// </summary>
internal sealed unsafe class EpollEventLoop : IDisposable
{
    private const int EventBatch = 256;
    private const ulong WakeToken = ulong.MaxValue;
    private const int RetainedBuffers = 64;
    private const uint SocketEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

    private readonly int epollFd;
    private readonly int wakeFd;
    private readonly Thread thread;
    private readonly ConcurrentQueue<EpollSession> starting = new();
    private readonly ConcurrentQueue<EpollSession> closing = new();
    private readonly Lock gate = new();
    private readonly Stack<nint> bufferPool = new();
    private readonly Stack<int> freeSlots = new();
    private readonly List<EpollSession> retry = new(64);
    private readonly byte* scratch;
    private readonly int bufferSize;
    private readonly int pipeSize;
    private readonly int fairnessBudget;
    private EpollSession?[] slots = new EpollSession?[256];
    private int usedSlots;
    private int wakePending;
    private bool stopping;
    private bool disposed;
    private bool wakeClosed;

    public EpollEventLoop(EpollEngineOptions options, int index)
    {
        Options = options;
        bufferSize = options.BufferSize;
        pipeSize = options.PipeSize;
        fairnessBudget = options.FairnessBudget;
        epollFd = EpollCreate1(EPOLL_CLOEXEC);
        if (epollFd < 0)
        {
            throw new Win32Exception(Errno, "epoll_create1 failed");
        }
        wakeFd = EventFd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wakeFd < 0)
        {
            var errno = Errno;
            LinuxNative.Close(epollFd);
            throw new Win32Exception(errno, "eventfd failed");
        }
        if (EpollAdd(epollFd, wakeFd, EPOLLIN, WakeToken) != 0)
        {
            var errno = Errno;
            LinuxNative.Close(wakeFd);
            LinuxNative.Close(epollFd);
            throw new Win32Exception(errno, "epoll_ctl(eventfd) failed");
        }
        scratch = (byte*)NativeMemory.Alloc((nuint)bufferSize);
        thread = new Thread(Run) { IsBackground = true, Name = $"steward-epoll-{index}" };
        thread.Start();
    }

    public EpollEngineOptions Options { get; }

    public ProxySession Start(Socket client, Socket backend)
    {
        EpollSession session;
        try
        {
            client.Blocking = false;
            backend.Blocking = false;
            client.NoDelay = true;
            backend.NoDelay = true;
            session = new EpollSession(this, client, backend, Options.Transfer == TransferMode.Splice);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // a socket that is already reset or closed: the session ends at once, as if the peer had dropped
            client.Dispose();
            backend.Dispose();
            return new EndedSession();
        }
        lock (gate)
        {
            if (!stopping)
            {
                starting.Enqueue(session);
                Wake();
                return session;
            }
        }
        session.ReleaseSockets();
        throw new ObjectDisposedException(nameof(EpollSpliceEngine));
    }

    public void RequestClose(EpollSession session)
    {
        lock (gate)
        {
            // once stopping, the loop ends every session by itself
            if (!stopping)
            {
                closing.Enqueue(session);
                Wake();
            }
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            if (disposed)
            {
                return;
            }
            disposed = true;
            stopping = true;
            Wake();
        }
        if (Thread.CurrentThread != thread)
        {
            thread.Join();
        }
    }

    /// <summary>Under <see cref="gate"/>, so that the eventfd cannot be closed (and its number reused) meanwhile.</summary>
    private void Wake()
    {
        if (!wakeClosed && Interlocked.Exchange(ref wakePending, 1) == 0)
        {
            ulong one = 1;
            Write(wakeFd, (byte*)&one, sizeof(ulong));
        }
    }

    private void Run()
    {
        var events = (byte*)NativeMemory.Alloc((nuint)(EventBatch * EpollEventSize));
        try
        {
            while (true)
            {
                var n = EpollWait(epollFd, events, EventBatch, retry.Count > 0 ? 0 : -1);
                if (n < 0)
                {
                    if (Errno == EINTR)
                    {
                        continue;
                    }
                    break;
                }
                var woken = false;
                for (var i = 0; i < n; i++)
                {
                    var ev = events + (i * EpollEventSize);
                    var data = Unsafe.ReadUnaligned<ulong>(ev + EpollDataOffset);
                    if (data == WakeToken)
                    {
                        woken = true;
                    }
                    else
                    {
                        Dispatch(data, Unsafe.ReadUnaligned<uint>(ev));
                    }
                }
                if (retry.Count > 0)
                {
                    RunRetries();
                }
                if (woken && !ProcessCommands())
                {
                    break;
                }
            }
        }
        finally
        {
            NativeMemory.Free(events);
            StopAll();
        }
    }

    /// <summary>Takes the queued starts and closes; false once the engine is stopping.</summary>
    private bool ProcessCommands()
    {
        ulong counter;
        Read(wakeFd, (byte*)&counter, sizeof(ulong));
        Volatile.Write(ref wakePending, 0);
        while (starting.TryDequeue(out var session))
        {
            Register(session);
        }
        while (closing.TryDequeue(out var session))
        {
            // A session not registered yet (its start was queued after the drain above) is ended by Register, which
            // sees CloseRequested: a close requested right after the start is never lost.
            if (!session.Ended && session.Slot >= 0)
            {
                End(session, abort: true);
            }
        }
        return !Volatile.Read(ref stopping);
    }

    private void Register(EpollSession session)
    {
        int slot;
        if (freeSlots.Count > 0)
        {
            slot = freeSlots.Pop();
        }
        else
        {
            if (usedSlots == slots.Length)
            {
                Array.Resize(ref slots, slots.Length * 2);
            }
            slot = usedSlots++;
        }
        session.Slot = slot;
        session.Generation++;
        slots[slot] = session;
        // EPOLL_CTL_ADD reports an already readable socket at once, edge-triggered or not
        if (session.CloseRequested
            || EpollAdd(epollFd, session.ClientFd, SocketEvents, session.Token(EpollSession.ClientSide)) != 0
            || EpollAdd(epollFd, session.BackendFd, SocketEvents, session.Token(EpollSession.BackendSide)) != 0)
        {
            End(session, abort: true);
        }
    }

    private void Dispatch(ulong data, uint events)
    {
        var slot = (int)((uint)data >> 1);
        if ((uint)slot >= (uint)usedSlots)
        {
            return;
        }
        var session = slots[slot];
        if (session is null || session.Generation != (uint)(data >> 32))
        {
            return;
        }
        if ((events & EPOLLERR) != 0)
        {
            End(session, abort: true);
            return;
        }
        if ((data & 1) == EpollSession.ClientSide)
        {
            if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0)
            {
                session.Up.SrcReadable = true;
                session.Up.SrcHup |= (events & (EPOLLRDHUP | EPOLLHUP)) != 0;
            }
            if ((events & (EPOLLOUT | EPOLLHUP)) != 0)
            {
                session.Down.DstWritable = true;
            }
        }
        else
        {
            if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0)
            {
                session.Down.SrcReadable = true;
                session.Down.SrcHup |= (events & (EPOLLRDHUP | EPOLLHUP)) != 0;
            }
            if ((events & (EPOLLOUT | EPOLLHUP)) != 0)
            {
                session.Up.DstWritable = true;
            }
        }
        Serve(session);
    }

    private void Serve(EpollSession session)
    {
        var budgetLeft = true;
        if (!Pump(ref session.Up, ref budgetLeft) || !Pump(ref session.Down, ref budgetLeft))
        {
            End(session, abort: true);
            return;
        }
        if (session.Up.Done && session.Down.Done)
        {
            End(session, abort: false);
            return;
        }
        if (!budgetLeft && !session.Retrying)
        {
            session.Retrying = true;
            retry.Add(session);
        }
    }

    private void RunRetries()
    {
        // sessions queued while serving these run on the next round, after other sockets had their turn
        var count = retry.Count;
        for (var i = 0; i < count; i++)
        {
            var session = retry[i];
            session.Retrying = false;
            if (!session.Ended)
            {
                Serve(session);
            }
        }
        retry.RemoveRange(0, count);
    }

    /// <summary>Moves what it can in one direction; false on a socket error. Clears <paramref name="budgetLeft"/> when it stopped early.</summary>
    private bool Pump(ref Direction d, ref bool budgetLeft)
    {
        var moved = 0L;
        while (true)
        {
            if (d.HasBufferedData)
            {
                if (!d.DstWritable)
                {
                    return true;
                }
                var n = d.InPipe > 0
                    ? Splice(d.PipeRead, null, d.Dst, null, (nuint)d.InPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                    : LinuxNative.Send(d.Dst, d.Pending + d.PendingOffset, (nuint)d.PendingLength, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0)
                {
                    var errno = Errno;
                    if (errno == EAGAIN)
                    {
                        d.DstWritable = false;
                        return true;
                    }
                    if (errno == EINTR)
                    {
                        continue;
                    }
                    return false;
                }
                Volatile.Write(ref d.Bytes, d.Bytes + n);
                moved += n;
                if (d.InPipe > 0)
                {
                    d.InPipe -= (int)n;
                }
                else
                {
                    d.PendingOffset += (int)n;
                    d.PendingLength -= (int)n;
                    if (d.PendingLength == 0)
                    {
                        ReturnBuffer(d.Pending);
                        d.Pending = null;
                    }
                }
                if (d.HasBufferedData)
                {
                    // a short write means the socket buffer is full: wait for EPOLLOUT
                    d.DstWritable = false;
                    return true;
                }
            }
            if (d.SrcEof)
            {
                if (!d.Done)
                {
                    LinuxNative.Shutdown(d.Dst, SHUT_WR);
                    d.Done = true;
                }
                return true;
            }
            if (!d.SrcReadable)
            {
                return true;
            }
            if (moved >= fairnessBudget)
            {
                budgetLeft = false;
                return true;
            }
            var ok = d.UsePipe ? SpliceIn(ref d) : CopyOnce(ref d, ref moved);
            if (!ok)
            {
                return false;
            }
        }
    }

    /// <summary>Fills the (empty) pipe from the source; switches the direction to copy mode when splice is not possible.</summary>
    private bool SpliceIn(ref Direction d)
    {
        if (d.PipeRead < 0 && !OpenPipe(ref d))
        {
            d.UsePipe = false;
            return true;
        }
        var n = Splice(d.Src, null, d.PipeWrite, null, (nuint)(pipeSize > 0 ? pipeSize : 65536), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0)
        {
            d.InPipe = (int)n;
            return true;
        }
        if (n == 0)
        {
            d.SrcEof = true;
            return true;
        }
        var errno = Errno;
        switch (errno)
        {
            case EAGAIN:
                d.SrcReadable = false;
                return true;
            case EINTR:
                return true;
            case EINVAL:
                d.UsePipe = false;
                return true;
            default:
                return false;
        }
    }

    /// <summary>One recv into the loop's buffer and one send; a short send leaves the rest in a pooled buffer.</summary>
    private bool CopyOnce(ref Direction d, ref long moved)
    {
        var n = Recv(d.Src, scratch, (nuint)bufferSize, MSG_DONTWAIT);
        if (n == 0)
        {
            d.SrcEof = true;
            return true;
        }
        if (n < 0)
        {
            var errno = Errno;
            if (errno == EAGAIN)
            {
                d.SrcReadable = false;
                return true;
            }
            return errno == EINTR;
        }
        if (n < bufferSize && !d.SrcHup)
        {
            // a short read on a stream socket empties its queue and new data raises a new edge; but a FIN that came
            // with the data raised no edge of its own, so after RDHUP read on until recv returns 0
            d.SrcReadable = false;
        }
        var sent = 0L;
        if (d.DstWritable)
        {
            while (true)
            {
                sent = LinuxNative.Send(d.Dst, scratch, (nuint)n, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (sent >= 0)
                {
                    break;
                }
                var errno = Errno;
                if (errno == EAGAIN)
                {
                    sent = 0;
                    break;
                }
                if (errno != EINTR)
                {
                    return false;
                }
            }
            Volatile.Write(ref d.Bytes, d.Bytes + sent);
            moved += sent;
        }
        if (sent < n)
        {
            d.DstWritable = false;
            d.Pending = RentBuffer();
            d.PendingOffset = 0;
            d.PendingLength = (int)(n - sent);
            Buffer.MemoryCopy(scratch + sent, d.Pending, bufferSize, d.PendingLength);
        }
        return true;
    }

    private bool OpenPipe(ref Direction d)
    {
        var fds = stackalloc int[2];
        if (Pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        {
            return false;
        }
        d.PipeRead = fds[0];
        d.PipeWrite = fds[1];
        if (pipeSize > 0)
        {
            // best effort: an unprivileged process is capped by /proc/sys/fs/pipe-max-size
            Fcntl(d.PipeWrite, F_SETPIPE_SZ, pipeSize);
        }
        return true;
    }

    private byte* RentBuffer() =>
        bufferPool.Count > 0 ? (byte*)bufferPool.Pop() : (byte*)NativeMemory.Alloc((nuint)bufferSize);

    private void ReturnBuffer(byte* buffer)
    {
        if (bufferPool.Count < RetainedBuffers)
        {
            bufferPool.Push((nint)buffer);
        }
        else
        {
            NativeMemory.Free(buffer);
        }
    }

    private void End(EpollSession session, bool abort)
    {
        session.Ended = true;
        slots[session.Slot] = null;
        freeSlots.Push(session.Slot);
        EpollDel(epollFd, session.ClientFd);
        EpollDel(epollFd, session.BackendFd);
        if (abort)
        {
            LinuxNative.Shutdown(session.ClientFd, SHUT_RDWR);
            LinuxNative.Shutdown(session.BackendFd, SHUT_RDWR);
        }
        ReleaseDirection(ref session.Up);
        ReleaseDirection(ref session.Down);
        session.ReleaseSockets();
        session.Complete();
    }

    private void ReleaseDirection(ref Direction d)
    {
        if (d.PipeRead >= 0)
        {
            LinuxNative.Close(d.PipeRead);
            LinuxNative.Close(d.PipeWrite);
            d.PipeRead = -1;
            d.PipeWrite = -1;
        }
        if (d.Pending != null)
        {
            ReturnBuffer(d.Pending);
            d.Pending = null;
        }
    }

    /// <summary>Ends every session, including those queued after the last wake-up, and frees the loop's resources.</summary>
    private void StopAll()
    {
        lock (gate)
        {
            stopping = true;
        }
        for (var i = 0; i < usedSlots; i++)
        {
            if (slots[i] is { } session)
            {
                End(session, abort: true);
            }
        }
        while (starting.TryDequeue(out var session))
        {
            session.Ended = true;
            LinuxNative.Shutdown(session.ClientFd, SHUT_RDWR);
            LinuxNative.Shutdown(session.BackendFd, SHUT_RDWR);
            session.ReleaseSockets();
            session.Complete();
        }
        closing.Clear();
        while (bufferPool.Count > 0)
        {
            NativeMemory.Free((void*)bufferPool.Pop());
        }
        NativeMemory.Free(scratch);
        lock (gate)
        {
            wakeClosed = true;
            LinuxNative.Close(wakeFd);
        }
        LinuxNative.Close(epollFd);
    }

    /// <summary>What <see cref="Start"/> returns for sockets that were already unusable.</summary>
    private sealed class EndedSession : ProxySession
    {
        public override long BytesIn => 0;

        public override long BytesOut => 0;

        public override Task Completion => Task.CompletedTask;

        public override void Close()
        {
        }
    }
}
