using System.Collections.Concurrent;
using System.Diagnostics;
using Npgsql;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// Insert load on whichever member leads: writers insert unique ids into <see cref="Table"/> on the member that last
/// answered 200 on /leader (one tracker polls every member's REST every 100 ms), each on its own connection, and record
/// every acknowledged id on one Stopwatch. A failed insert is counted and the writer moves on (the next id, perhaps the
/// next leader). <see cref="MissingOnAsync"/> lists the acknowledged ids a member does not have.
/// <code>
/// await using var writers = await LeaderWriters.StartAsync(cluster, leader, writers: 2, clock);
/// ... fault ...
/// await writers.StopAsync();
/// Assert.Empty(await writers.MissingOnAsync(finalLeader));
/// </code>
/// </summary>
internal sealed class LeaderWriters : IAsyncDisposable
{
    public const string Table = "liveness_writes";

    private readonly TestCluster _cluster;
    private readonly Stopwatch _clock;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<Ack> _acks = new();
    private Task[] _tasks = [];
    private volatile TestNode? _leader;
    private long _nextId;
    private int _failures;

    private LeaderWriters(TestCluster cluster, Stopwatch clock)
    {
        _cluster = cluster;
        _clock = clock;
    }

    public int Count => _acks.Count;
    public int Failures => Volatile.Read(ref _failures);
    public TimeSpan? LastAck => _acks.IsEmpty ? null : _acks.Max(a => a.At);

    /// <summary>Creates the table on <paramref name="leader"/> and starts the tracker and <paramref name="writers"/> writers; returns once each has written.</summary>
    public static async Task<LeaderWriters> StartAsync(TestCluster cluster, TestNode leader, int writers, Stopwatch clock)
    {
        await leader.ExecuteAsync($"CREATE TABLE IF NOT EXISTS {Table}(id bigint PRIMARY KEY, writer int NOT NULL, node text NOT NULL)").ConfigureAwait(false);
        var load = new LeaderWriters(cluster, clock) { _leader = leader };
        load._tasks = [Task.Run(load.TrackAsync), .. Enumerable.Range(1, writers).Select(w => Task.Run(() => load.WriteAsync(w)))];
        await Poll.UntilAsync(() => Task.FromResult(Enumerable.Range(1, writers).All(w => load._acks.Any(a => a.Writer == w))),
            TimeSpan.FromSeconds(30), $"every writer acknowledged by {leader.Name}", cluster.DescribeAsync).ConfigureAwait(false);
        return load;
    }

    public int AcknowledgedBy(string node, TimeSpan after) => _acks.Count(a => a.Node == node && a.At > after);

    /// <summary>How many writes each member acknowledged within [from, to], e.g. "node1 12 (last at 3.20 s), node2 40 (…)" (times on the writers' clock).</summary>
    public string AcknowledgedBetween(TimeSpan from, TimeSpan to)
    {
        var by = _acks.Where(a => a.At >= from && a.At <= to).GroupBy(a => a.Node).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Key} {g.Count()} (first at {g.Min(a => a.At).TotalSeconds:0.00} s, last at {g.Max(a => a.At).TotalSeconds:0.00} s)").ToList();
        return by.Count == 0 ? "none" : string.Join(", ", by);
    }

    /// <summary>The longest time between two consecutive acknowledgements (or from <paramref name="from"/> to the first) within [from, to].</summary>
    public TimeSpan LongestGap(TimeSpan from, TimeSpan to)
    {
        var times = _acks.Select(a => a.At).Where(t => t >= from && t <= to).Order().Prepend(from).Append(to).ToList();
        return times.Zip(times.Skip(1), (a, b) => b - a).DefaultIfEmpty(TimeSpan.Zero).Max();
    }

    /// <summary>The acknowledged writes <paramref name="node"/> does not have.</summary>
    public async Task<List<Ack>> MissingOnAsync(TestNode node)
    {
        // Acknowledged before the read starts: a write acknowledged while the rows are read may not be in what was read.
        var acknowledged = _acks.ToArray();
        var present = new HashSet<long>();
        await using var conn = new NpgsqlConnection(node.ConnectionString);
        await conn.OpenAsync().ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand($"SELECT id FROM {Table}", conn);
        await using var reader = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
        while (await reader.ReadAsync().ConfigureAwait(false))
        {
            present.Add(reader.GetInt64(0));
        }

        return [.. acknowledged.Where(a => !present.Contains(a.Id)).OrderBy(a => a.At)];
    }

    private async Task TrackAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var leaders = new List<TestNode>();
            foreach (var n in _cluster.Nodes.Where(n => n.IsRunning))
            {
                if (await n.RestStatusAsync("/leader").ConfigureAwait(false) == 200)
                {
                    leaders.Add(n);
                }
            }

            // No answer, or two (a moment of overlap on /leader): keep the last one; its PostgreSQL refuses writes if it is not primary.
            if (leaders.Count == 1)
            {
                _leader = leaders[0];
            }

            await BreatheAsync(100).ConfigureAwait(false);
        }
    }

    private async Task WriteAsync(int writer)
    {
        NpgsqlConnection? conn = null;
        TestNode? connectedTo = null;
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var target = _leader!;
                var id = Interlocked.Increment(ref _nextId);
                try
                {
                    if (conn is null || connectedTo != target)
                    {
                        if (conn is not null)
                        {
                            await conn.DisposeAsync().ConfigureAwait(false);
                            conn = null;
                        }

                        conn = new NpgsqlConnection(target.ConnectionString);
                        connectedTo = target;
                        await conn.OpenAsync(_stop.Token).ConfigureAwait(false);
                    }

                    await using var cmd = new NpgsqlCommand($"INSERT INTO {Table} VALUES ($1, $2, $3)", conn)
                    {
                        Parameters = { new() { Value = id }, new() { Value = writer }, new() { Value = target.Name } },
                    };
                    await cmd.ExecuteNonQueryAsync(_stop.Token).ConfigureAwait(false);
                    _acks.Enqueue(new Ack(id, _clock.Elapsed, writer, target.Name));
                    await BreatheAsync(5).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    // stopping: an insert cut short is not acknowledged
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException or IOException)
                {
                    Interlocked.Increment(ref _failures);
                    if (conn is not null)
                    {
                        await conn.DisposeAsync().ConfigureAwait(false);
                        conn = null;
                    }

                    await BreatheAsync(50).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            if (conn is not null)
            {
                await conn.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task BreatheAsync(int ms)
    {
        try
        {
            await Task.Delay(ms, _stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_tasks).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    internal sealed record Ack(long Id, TimeSpan At, int Writer, string Node)
    {
        public override string ToString() => $"{Id} (writer {Writer} on {Node}, {At.TotalSeconds:0.000} s)";
    }
}
