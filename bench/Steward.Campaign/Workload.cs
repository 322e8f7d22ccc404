using System.Net.Sockets;
using Npgsql;
using Steward.Campaign.Checking;

namespace Steward.Campaign;

/// <summary>
/// Clients writing through the router's write port: inserts of unique ids, and Jepsen-style list-appends and reads on a
/// small rotating set of keys. Each client keeps one connection for 50 operations and opens a new one after any error (after a back-off
/// of 100 ms doubling to 1 s while errors go on).
/// Every operation goes into the history with its invocation and completion times, its outcome and the server that
/// answered (address, system id, timeline, postmaster start).
/// </summary>
internal sealed class Workload
{
    private const string Identity =
        "host(inet_server_addr()), (SELECT system_identifier FROM pg_control_system())::text, " +
        "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int, pg_postmaster_start_time()::text";

    public const string Schema =
        "CREATE TABLE IF NOT EXISTS campaign_ins(id bigint PRIMARY KEY); " +
        "CREATE TABLE IF NOT EXISTS campaign_list(k bigint PRIMARY KEY, v bigint[] NOT NULL)";

    /// <summary>Appends per key before the clients move to fresh keys (keeps lists, rows and WAL small).</summary>
    private const int AppendsPerKey = 150;

    private const int ActiveKeys = 3;

    /// <summary>A client opens a new connection after this many operations on one.</summary>
    public const int ReconnectEvery = 50;

    /// <summary>After an error a client waits before its next operation: 100 ms, doubling up to 1 s while errors go on.</summary>
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100);

    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);

    private readonly string _connectionString;
    private readonly History _history;
    private readonly HistoryClock _clock;
    private readonly int _seed;
    private long _nextId;
    private long _nextElement;

    public Workload(string connectionString, History history, HistoryClock clock, int seed)
    {
        _connectionString = connectionString;
        _history = history;
        _clock = clock;
        _seed = seed;
    }

    public Task RunAsync(int clients, TimeSpan think, CancellationToken ct) =>
        Task.WhenAll(Enumerable.Range(1, clients).Select(c => Task.Run(() => ClientAsync(c, think, ct), CancellationToken.None)));

    private async Task ClientAsync(int client, TimeSpan think, CancellationToken ct)
    {
        var random = new Random(_seed * 31 + client);
        NpgsqlConnection? conn = null;
        var backoff = FirstBackoff;
        var opsOnConnection = 0;
        while (!ct.IsCancellationRequested)
        {
            var roll = random.Next(10);
            var kind = roll < 4 ? OpKind.Insert : roll < 8 ? OpKind.Append : OpKind.Read;
            var keyBase = Interlocked.Read(ref _nextElement) / AppendsPerKey;
            var op = kind switch
            {
                OpKind.Insert => new Op { Client = client, Kind = kind, Value = Interlocked.Increment(ref _nextId) },
                OpKind.Append => new Op { Client = client, Kind = kind, Key = keyBase + random.Next(ActiveKeys), Value = Interlocked.Increment(ref _nextElement) },
                _ => new Op { Client = client, Kind = kind, Key = keyBase + random.Next(ActiveKeys) },
            };
            if (conn is not null && ++opsOnConnection > ReconnectEvery)
            {
                // Connections are recycled as a pool would: a client stuck on one primary would hide another.
                await conn.DisposeAsync();
                conn = null;
            }

            op = op with { Invoke = _clock.Now };
            var sent = false;
            try
            {
                if (conn is null)
                {
                    opsOnConnection = 1;
                    conn = new NpgsqlConnection(_connectionString);
                    await conn.OpenAsync(CancellationToken.None);
                }

                await using var cmd = conn.CreateCommand();
                (cmd.CommandText, var args) = kind switch
                {
                    OpKind.Insert => ($"INSERT INTO campaign_ins(id) VALUES ($1) RETURNING NULL::bigint[], {Identity}", new object[] { op.Value }),
                    OpKind.Append => ($"INSERT INTO campaign_list AS l (k, v) VALUES ($1, ARRAY[$2::bigint]) ON CONFLICT (k) DO UPDATE SET v = l.v || $2::bigint RETURNING NULL::bigint[], {Identity}", new object[] { op.Key, op.Value }),
                    _ => ($"SELECT coalesce((SELECT v FROM campaign_list WHERE k = $1), '{{}}'::bigint[]), {Identity}", [op.Key]),
                };
                foreach (var a in args)
                {
                    cmd.Parameters.Add(new NpgsqlParameter { Value = a });
                }

                sent = true;
                await using var reader = await cmd.ExecuteReaderAsync(CancellationToken.None);
                if (!await reader.ReadAsync(CancellationToken.None))
                {
                    throw new InvalidOperationException("no row returned");
                }

                var server = new ServerIdentity(reader.GetString(1), reader.GetString(2), reader.GetInt32(3), reader.GetString(4));
                var values = reader.IsDBNull(0) ? null : (long[])reader.GetValue(0);
                await reader.CloseAsync();
                _history.Add(op with { Complete = _clock.Now, Outcome = Outcome.Ok, Server = server, ReadValues = kind == OpKind.Read ? values ?? [] : null });
            }
            catch (Exception e) when (e is NpgsqlException or SocketException or IOException or TimeoutException or InvalidOperationException or InvalidCastException)
            {
                _history.Add(op with { Complete = _clock.Now, Outcome = Classify(e, sent), Error = Describe(e) });
                if (conn is not null)
                {
                    await conn.DisposeAsync();
                    conn = null;
                }

                await Delay(backoff, ct);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
                continue;
            }

            backoff = FirstBackoff;
            await Delay(think, ct);
        }

        if (conn is not null)
        {
            await conn.DisposeAsync();
        }
    }

    private static async Task Delay(TimeSpan delay, CancellationToken ct)
    {
        try
        {
            await Task.Delay(delay, ct);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Fail only when the statement certainly did not commit: it was never sent, or the server answered it with an
    /// error that rolls an autocommit statement back. A broken connection, a timeout, a shutdown or crash message
    /// (class 08, 57P0x, 53, 58, XX) leaves it indeterminate.
    /// </summary>
    public static Outcome Classify(Exception e, bool sent)
    {
        if (!sent)
        {
            return Outcome.Fail;
        }

        if (e is PostgresException pg)
        {
            var state = pg.SqlState;
            var certain = state is "25006" or "23505" or "40001" or "40P01" or "57014" || state.StartsWith("42", StringComparison.Ordinal)
                || state.StartsWith("22", StringComparison.Ordinal);
            return certain ? Outcome.Fail : Outcome.Indeterminate;
        }

        return Outcome.Indeterminate;
    }

    private static string Describe(Exception e)
    {
        var message = e is PostgresException pg ? $"{pg.SqlState} {pg.MessageText}" : $"{e.GetType().Name}: {e.Message}";
        if (e.InnerException is { } inner && e is not PostgresException)
        {
            message += $" ({inner.GetType().Name}: {inner.Message})";
        }

        return message.Length > 200 ? message[..200] : message;
    }
}
