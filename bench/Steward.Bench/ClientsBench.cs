using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Steward.Bench;

/// <summary>
/// <c>Steward.Bench clients NAME CONNSTRING SECONDS [CLIENTS]</c>: clients that each keep one connection and run short
/// write transactions on it back to back (BEGIN, INSERT of a unique id, COMMIT, 10 ms apart) for SECONDS; a failed
/// transaction is counted and the client goes on with its connection if it is still open, else opens a new one
/// (a "reconnect"). At the end it prints one <c>RESULT</c> line (transactions, failed, reconnects, longest and p99
/// latency, when the longest ended) and the acknowledged ids to <c>NAME.acks</c> for bench/pgbouncer/switchover.sh to
/// check on the final leader. Every failure is printed as it happens, with the second it happened at.
/// </summary>
internal static class ClientsBench
{
    public static async Task<int> RunAsync(string name, string connectionString, int seconds, int clients)
    {
        await using (var setup = new NpgsqlConnection(connectionString))
        {
            await setup.OpenAsync();
            await using var cmd = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS bench_writes(id bigint PRIMARY KEY, chain text NOT NULL)", setup);
            await cmd.ExecuteNonQueryAsync();
        }

        var clock = Stopwatch.StartNew();
        var acks = new ConcurrentQueue<long>();
        var latencies = new ConcurrentBag<double>();
        var kinds = new ConcurrentDictionary<string, int>();
        var idBase = Random.Shared.NextInt64(1, 1L << 40) * 1_000_000; // unique across runs and concurrent chains on the same table
        long next = idBase, failures = 0, reconnects = 0, longestTicks = 0, longestAt = 0;
        var end = TimeSpan.FromSeconds(seconds);

        async Task ClientAsync(int client)
        {
            NpgsqlConnection? conn = null;
            var opened = false;
            while (clock.Elapsed < end)
            {
                var id = Interlocked.Increment(ref next);
                var started = clock.Elapsed;
                try
                {
                    if (conn is null)
                    {
                        conn = new NpgsqlConnection(connectionString);
                        await conn.OpenAsync();
                        if (opened)
                        {
                            Interlocked.Increment(ref reconnects);
                        }

                        opened = true;
                    }

                    await using (var tx = await conn.BeginTransactionAsync())
                    {
                        await using var cmd = new NpgsqlCommand("INSERT INTO bench_writes VALUES ($1, $2)", conn, tx)
                        {
                            Parameters = { new() { Value = id }, new() { Value = name } },
                        };
                        await cmd.ExecuteNonQueryAsync();
                        await tx.CommitAsync();
                    }

                    var took = clock.Elapsed - started;
                    acks.Enqueue(id);
                    latencies.Add(took.TotalMilliseconds);
                    if (took.Ticks > Interlocked.Read(ref longestTicks))
                    {
                        Interlocked.Exchange(ref longestTicks, took.Ticks);
                        Interlocked.Exchange(ref longestAt, clock.Elapsed.Ticks);
                    }

                    await Task.Delay(10);
                }
                catch (Exception e) when (e is NpgsqlException or IOException or InvalidOperationException or TimeoutException)
                {
                    Interlocked.Increment(ref failures);
                    kinds.AddOrUpdate(e.Message.Split('\n')[0], 1, (_, n) => n + 1);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {name} {clock.Elapsed.TotalSeconds,6:0.00} s client {client}: {e.GetType().Name}: {e.Message.Split('\n')[0]}"));
                    if (conn is not null && conn.FullState != System.Data.ConnectionState.Open)
                    {
                        await conn.DisposeAsync();
                        conn = null;
                    }

                    await Task.Delay(50);
                }
            }

            if (conn is not null)
            {
                await conn.DisposeAsync();
            }
        }

        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(() => ClientAsync(c))));
        var sorted = latencies.Order().ToArray();
        var p99 = sorted.Length == 0 ? 0 : sorted[(int)Math.Min(sorted.Length - 1, Math.Ceiling(sorted.Length * 0.99) - 1)];
        await File.WriteAllLinesAsync(name + ".acks", acks.Select(a => a.ToString(CultureInfo.InvariantCulture)));
        foreach (var (message, count) in kinds.OrderByDescending(k => k.Value))
        {
            Console.WriteLine($"ERRORS {name}: {count} x {message}");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"RESULT {name}: {acks.Count} transactions, {failures} failed, {reconnects} reconnects, longest {TimeSpan.FromTicks(longestTicks).TotalMilliseconds:0} ms " +
            $"(ended at {TimeSpan.FromTicks(longestAt).TotalSeconds:0.0} s), p99 {p99:0} ms"));
        return 0;
    }

    /// <summary><c>Steward.Bench verify NAME CONNSTRING</c>: how many ids of NAME.acks the server lacks (prints a <c>RESULT</c> line).</summary>
    public static async Task<int> VerifyAsync(string name, string connectionString)
    {
        var acked = (await File.ReadAllLinesAsync(name + ".acks")).Where(l => l.Length > 0).Select(l => long.Parse(l, CultureInfo.InvariantCulture)).ToList();
        var present = new HashSet<long>();
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT id FROM bench_writes", conn);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            present.Add(reader.GetInt64(0));
        }

        var missing = acked.Count(id => !present.Contains(id));
        Console.WriteLine($"RESULT {name}: {missing} of {acked.Count} acknowledged writes missing on the leader");
        return missing == 0 ? 0 : 1;
    }
}
