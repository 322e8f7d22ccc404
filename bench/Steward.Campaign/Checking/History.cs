using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Steward.Campaign.Checking;

/// <summary>What a client operation does: an insert of a unique id, an append of a unique element to a list, or a read of a list.</summary>
public enum OpKind
{
    Insert,
    Append,
    Read,
}

/// <summary>
/// What the client learned. <see cref="Fail"/> means certainly not committed (the statement was never sent, or the server
/// answered it with an error that rolls it back); <see cref="Indeterminate"/> means the statement was sent and no answer
/// came (a broken connection, a timeout, a crash): it may or may not have committed.
/// </summary>
public enum Outcome
{
    Ok,
    Fail,
    Indeterminate,
}

/// <summary>Which PostgreSQL server answered: a primary is one (address, postmaster start) pair — a restart makes a new one.</summary>
public sealed record ServerIdentity(string Address, string SystemId, int Timeline, string PostmasterStart)
{
    /// <summary>The primary this is: the same address after a restart is a different server.</summary>
    [JsonIgnore]
    public string Key => Address + "@" + PostmasterStart;

    public override string ToString() => $"{Address} (started {PostmasterStart}, timeline {Timeline})";
}

/// <summary>
/// One operation of the history. Times are seconds on the campaign's monotonic clock (<see cref="HistoryClock"/>).
/// <see cref="Value"/> is the inserted id or the appended element; <see cref="ReadValues"/> is the list a read saw.
/// </summary>
public sealed record Op
{
    public long Index { get; init; }
    public int Client { get; init; }
    public OpKind Kind { get; init; }
    public long Key { get; init; }
    public long Value { get; init; }
    public IReadOnlyList<long>? ReadValues { get; init; }
    public double Invoke { get; init; }
    public double Complete { get; init; }
    public Outcome Outcome { get; init; }
    public ServerIdentity? Server { get; init; }
    public string? Error { get; init; }

    [JsonIgnore]
    public bool IsWrite => Kind is OpKind.Insert or OpKind.Append;

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture,
            $"#{Index} client {Client} {Kind} key {Key} {(Kind == OpKind.Read ? "[" + string.Join(',', ReadValues ?? []) + "]" : Value.ToString(CultureInfo.InvariantCulture))} " +
            $"[{Invoke:F3}, {Complete:F3}] {Outcome}{(Server is null ? "" : " by " + Server)}{(Error is null ? "" : ": " + Error)}");
}

/// <summary>The campaign's clock: monotonic seconds since it started (never the wall clock).</summary>
public sealed class HistoryClock
{
    private readonly long _start = Stopwatch.GetTimestamp();

    public double Now => Stopwatch.GetElapsedTime(_start).TotalSeconds;
}

/// <summary>A history being recorded by concurrent clients (thread-safe), or read back from a JSON-lines file.</summary>
public sealed class History
{
    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };
    private readonly List<Op> _ops = [];
    private readonly Lock _gate = new();
    private long _next;

    public History()
    {
    }

    public History(IEnumerable<Op> ops)
    {
        foreach (var op in ops)
        {
            Add(op);
        }
    }

    /// <summary>Records <paramref name="op"/> (its index is assigned here) and returns it.</summary>
    public Op Add(Op op)
    {
        lock (_gate)
        {
            var indexed = op with { Index = _next++ };
            _ops.Add(indexed);
            if (op.IsWrite && op.Outcome == Outcome.Ok)
            {
                LatestOkWriteInvoke = Math.Max(LatestOkWriteInvoke, op.Invoke);
            }

            return indexed;
        }
    }

    /// <summary>The latest invocation time of an acknowledged write so far (-inf: none).</summary>
    public double LatestOkWriteInvoke { get; private set; } = double.NegativeInfinity;

    public IReadOnlyList<Op> Snapshot()
    {
        lock (_gate)
        {
            return [.. _ops];
        }
    }

    public void Save(string path)
    {
        using var writer = new StreamWriter(path);
        foreach (var op in Snapshot())
        {
            writer.WriteLine(JsonSerializer.Serialize(op, Json));
        }
    }

    public static History Load(string path) =>
        new(File.ReadLines(path).Where(l => l.Length > 0).Select(l => JsonSerializer.Deserialize<Op>(l, Json)!));
}
