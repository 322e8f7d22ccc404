using System.Collections.Concurrent;
using System.Diagnostics;
using Npgsql;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// Clients that each keep one connection (to a PgBouncer, say) and run short write transactions on it back to back —
/// BEGIN, INSERT of a unique id, COMMIT — recording every acknowledged id, every failure and the longest transaction.
/// A failed transaction is counted; the client goes on with its connection if it is still open, else opens a new one
/// (counted in <see cref="Reconnects"/>, as an application's pool would). Stopping lets the transaction in flight finish.
/// </summary>
internal sealed class TransactionClients : IAsyncDisposable
{
    public const string Table = "pgb_writes";

    private readonly string _connectionString;
    private readonly string _chain;
    private readonly ConcurrentQueue<long> _acks = new();
    private readonly ConcurrentQueue<string> _errors = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private Task[] _tasks = [];
    private volatile bool _stopping;
    private long _nextId;
    private int _failures;
    private int _reconnects;
    private long _longestTicks;
    private long _longestAt;

    private TransactionClients(string connectionString, string chain, long idBase)
    {
        _connectionString = connectionString;
        _chain = chain;
        _nextId = idBase;
    }

    public int Count => _acks.Count;
    public int Failures => Volatile.Read(ref _failures);

    /// <summary>Connections opened again after a failure closed one.</summary>
    public int Reconnects => Volatile.Read(ref _reconnects);
    public IReadOnlyCollection<string> Errors => _errors;

    /// <summary>The longest acknowledged transaction (BEGIN sent to COMMIT answered).</summary>
    public TimeSpan Longest => TimeSpan.FromTicks(Interlocked.Read(ref _longestTicks));

    /// <summary>When (on the clients' clock) the longest transaction ended.</summary>
    public TimeSpan LongestAt => TimeSpan.FromTicks(Interlocked.Read(ref _longestAt));

    /// <summary>Creates the table through <paramref name="setup"/> (any connection to the leader) and starts the clients; returns once each has committed.</summary>
    public static async Task<TransactionClients> StartAsync(string connectionString, string chain, int clients, long idBase)
    {
        var load = new TransactionClients(connectionString, chain, idBase);
        var committed = new int[clients];
        load._tasks = [.. Enumerable.Range(0, clients).Select(c => Task.Run(() => load.RunAsync(c, committed)))];
        await Poll.UntilAsync(() => Task.FromResult(committed.All(n => Volatile.Read(ref n) > 0)), TimeSpan.FromSeconds(30),
            $"every {chain} client committing a transaction");
        return load;
    }

    public static async Task CreateTableAsync(string connectionString)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"CREATE TABLE IF NOT EXISTS {Table}(id bigint PRIMARY KEY, chain text NOT NULL, client int NOT NULL)", conn);
        await cmd.ExecuteNonQueryAsync();
    }

    private async Task RunAsync(int client, int[] committed)
    {
        NpgsqlConnection? conn = null;
        try
        {
            while (!_stopping)
            {
                var id = Interlocked.Increment(ref _nextId);
                var started = _clock.Elapsed;
                try
                {
                    if (conn is null)
                    {
                        conn = new NpgsqlConnection(_connectionString);
                        await conn.OpenAsync();
                        if (Volatile.Read(ref committed[client]) > 0)
                        {
                            Interlocked.Increment(ref _reconnects);
                        }
                    }

                    await using (var tx = await conn.BeginTransactionAsync())
                    {
                        await using var cmd = new NpgsqlCommand($"INSERT INTO {Table} VALUES ($1, $2, $3)", conn, tx)
                        {
                            Parameters = { new() { Value = id }, new() { Value = _chain }, new() { Value = client } },
                        };
                        await cmd.ExecuteNonQueryAsync();
                        await tx.CommitAsync();
                    }

                    var took = _clock.Elapsed - started;
                    _acks.Enqueue(id);
                    Interlocked.Increment(ref committed[client]);
                    if (took.Ticks > Interlocked.Read(ref _longestTicks))
                    {
                        Interlocked.Exchange(ref _longestTicks, took.Ticks);
                        Interlocked.Exchange(ref _longestAt, _clock.Elapsed.Ticks);
                    }
                }
                catch (Exception e) when (e is NpgsqlException or IOException or InvalidOperationException or TimeoutException)
                {
                    Interlocked.Increment(ref _failures);
                    if (_errors.Count < 20)
                    {
                        _errors.Enqueue($"{_clock.Elapsed.TotalSeconds:0.000} s client {client}: {e.GetType().Name}: {e.Message}");
                    }

                    if (conn is not null && conn.FullState != System.Data.ConnectionState.Open)
                    {
                        await conn.DisposeAsync();
                        conn = null;
                    }

                    await Task.Delay(50);
                    continue;
                }

                await Task.Delay(10);
            }
        }
        finally
        {
            if (conn is not null)
            {
                await conn.DisposeAsync();
            }
        }
    }

    /// <summary>The acknowledged ids that the server at <paramref name="connectionString"/> does not have.</summary>
    public async Task<List<long>> MissingOnAsync(string connectionString)
    {
        var acknowledged = _acks.ToArray();
        var present = new HashSet<long>();
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"SELECT id FROM {Table}", conn);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            present.Add(reader.GetInt64(0));
        }

        return [.. acknowledged.Where(id => !present.Contains(id))];
    }

    public async Task StopAsync()
    {
        _stopping = true;
        await Task.WhenAll(_tasks);
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
