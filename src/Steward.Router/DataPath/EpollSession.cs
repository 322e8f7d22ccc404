using System.Net.Sockets;

namespace Steward.Router.DataPath;

/// <summary>One direction of a session: what the loop knows about its source and destination, and the bytes in flight.</summary>
internal unsafe struct Direction
{
    public int Src;
    public int Dst;

    /// <summary>Bytes sent to the destination so far; written by the loop thread only, read with Volatile from any thread.</summary>
    public long Bytes;

    /// <summary>Edge-triggered readiness: the source may have data (set by an event, cleared on EAGAIN or a short recv).</summary>
    public bool SrcReadable;

    /// <summary>Edge-triggered readiness: the destination may take data (set by an event, cleared on EAGAIN or a short send).</summary>
    public bool DstWritable;

    /// <summary>The source reported RDHUP or HUP: its EOF may sit behind the data, so a short recv does not prove it drained.</summary>
    public bool SrcHup;

    public bool SrcEof;

    /// <summary>The source reached EOF, everything was delivered and the destination was shut down for writing.</summary>
    public bool Done;

    public bool UsePipe;
    public int PipeRead;
    public int PipeWrite;
    public int InPipe;

    /// <summary>Copy mode: a pooled buffer holding what a short send left, or null.</summary>
    public byte* Pending;
    public int PendingOffset;
    public int PendingLength;

    public readonly bool HasBufferedData => InPipe > 0 || PendingLength > 0;

    public void Init(int src, int dst, bool usePipe)
    {
        Src = src;
        Dst = dst;
        UsePipe = usePipe;
        PipeRead = -1;
        PipeWrite = -1;
        DstWritable = true;
    }
}

/// <summary>A session of <see cref="EpollSpliceEngine"/>. Its fields belong to the loop thread, except where noted.</summary>
internal sealed class EpollSession : ProxySession
{
    public const ulong ClientSide = 0;
    public const ulong BackendSide = 1;

    private readonly TaskCompletionSource completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int closeRequested;

    public EpollSession(EpollEventLoop loop, Socket client, Socket backend, bool usePipe)
    {
        Loop = loop;
        Client = client;
        Backend = backend;
        // the descriptors must stay valid (not closed and reused) until the loop is done with them
        var addedClient = false;
        client.SafeHandle.DangerousAddRef(ref addedClient);
        try
        {
            var addedBackend = false;
            backend.SafeHandle.DangerousAddRef(ref addedBackend);
        }
        catch
        {
            client.SafeHandle.DangerousRelease();
            throw;
        }
        ClientFd = (int)client.SafeHandle.DangerousGetHandle();
        BackendFd = (int)backend.SafeHandle.DangerousGetHandle();
        Up.Init(ClientFd, BackendFd, usePipe);
        Down.Init(BackendFd, ClientFd, usePipe);
    }

    public EpollEventLoop Loop { get; }

    public Socket Client { get; }

    public Socket Backend { get; }

    public int ClientFd { get; }

    public int BackendFd { get; }

    /// <summary>Client to backend.</summary>
    public Direction Up;

    /// <summary>Backend to client.</summary>
    public Direction Down;

    public int Slot = -1;
    public uint Generation;
    public bool Ended;

    /// <summary>Queued on the loop's retry list because a direction used up its fairness budget.</summary>
    public bool Retrying;

    public override long BytesIn => Volatile.Read(ref Up.Bytes);

    public override long BytesOut => Volatile.Read(ref Down.Bytes);

    public override Task Completion => completion.Task;

    public ulong Token(ulong side) => ((ulong)Generation << 32) | ((ulong)(uint)Slot << 1) | side;

    /// <summary>Close was called (any thread). Set before the close is queued to the loop.</summary>
    public bool CloseRequested => Volatile.Read(ref closeRequested) != 0;

    public override void Close()
    {
        if (Interlocked.Exchange(ref closeRequested, 1) == 0)
        {
            Loop.RequestClose(this);
        }
    }

    /// <summary>Releases the handles taken in the constructor and closes both sockets. Loop thread, once.</summary>
    public void ReleaseSockets()
    {
        Client.SafeHandle.DangerousRelease();
        Backend.SafeHandle.DangerousRelease();
        Client.Dispose();
        Backend.Dispose();
    }

    public void Complete() => completion.TrySetResult();
}
