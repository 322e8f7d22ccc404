namespace Steward.Router.DataPath;

/// <summary>How <see cref="EpollSpliceEngine"/> moves bytes from one socket to the other.</summary>
public enum TransferMode
{
    /// <summary>recv(2) into a buffer of the event loop, send(2) from it; a short send keeps the rest in a pooled buffer.</summary>
    Copy,

    /// <summary>splice(2) through a pipe per direction (zero copy); falls back to <see cref="Copy"/> when splice is not possible.</summary>
    Splice,
}

/// <summary>Tuning of <see cref="EpollSpliceEngine"/>.</summary>
public sealed record EpollEngineOptions
{
    /// <summary>
    /// Event-loop threads; sessions are spread over them round-robin. Default: one per core, at most 4. On 2 busy cores
    /// two loops beat one clearly (pgbench -S 20.1k against 13.9k tps): a lone loop thread waits for a CPU at every wake-up.
    /// </summary>
    public int Loops { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, 4);

    /// <summary>
    /// Copy wins on PostgreSQL traffic (small messages): one recv and one send per message, while splice needs a
    /// third call to learn that the socket is drained (a short splice can also mean the pipe ran out of slots).
    /// </summary>
    public TransferMode Transfer { get; init; } = TransferMode.Copy;

    /// <summary>Bytes read per recv(2) in copy mode, and the size of a pooled buffer that holds what a short send left.</summary>
    public int BufferSize { get; init; } = 64 * 1024;

    /// <summary>Pipe capacity in splice mode (F_SETPIPE_SZ); 0 keeps the kernel default (64 KiB).</summary>
    public int PipeSize { get; init; }

    /// <summary>Bytes one direction may move per wake-up before the loop serves other sessions.</summary>
    public int FairnessBudget { get; init; } = 512 * 1024;
}
