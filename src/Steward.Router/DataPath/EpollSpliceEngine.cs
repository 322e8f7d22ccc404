using System.Net.Sockets;

namespace Steward.Router.DataPath;

/// <summary>
/// The fast data path: dedicated threads each run epoll_wait (edge-triggered) over non-blocking sockets and move bytes
/// with recv/send through a loop-owned buffer or splice(2) through a pipe per direction, with no managed allocation per
/// event. A session is bound to one loop for its whole life.
/// </summary>
public sealed class EpollSpliceEngine : IProxyEngine
{
    private readonly EpollEventLoop[] loops;
    private int next = -1;

    public EpollSpliceEngine()
        : this(new EpollEngineOptions())
    {
    }

    public EpollSpliceEngine(EpollEngineOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Loops, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BufferSize, 4096);
        ArgumentOutOfRangeException.ThrowIfNegative(options.PipeSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.FairnessBudget, options.BufferSize);
        loops = new EpollEventLoop[options.Loops];
        try
        {
            for (var i = 0; i < loops.Length; i++)
            {
                loops[i] = new EpollEventLoop(options, i);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public EpollEngineOptions Options => loops[0].Options;

    public ProxySession Start(Socket client, Socket backend)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(backend);
        var index = (uint)Interlocked.Increment(ref next) % (uint)loops.Length;
        return loops[index].Start(client, backend);
    }

    public void Dispose()
    {
        foreach (var loop in loops)
        {
            loop?.Dispose();
        }
    }
}
