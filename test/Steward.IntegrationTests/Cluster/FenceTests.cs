using System.Collections.Concurrent;
using System.Diagnostics;
using Npgsql;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// One writer, always (issue 8): the leader's PostgreSQL stops taking writes before its lease can expire, even when
/// its agent is killed, frozen or slow. Clients write straight to that PostgreSQL — as a direct client, a read-port
/// session that fell back to the leader or a router's stale user would — and every acknowledgement is timed on one
/// Stopwatch, so "acknowledged by the old primary after the new one took a write" is a count, not an impression.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class FenceTests(ITestOutputHelper output)
{
    private const string RealBinDir = "/usr/lib/postgresql/15/bin";
    private const string Table = "CREATE TABLE fence_writes(id bigint PRIMARY KEY, writer text NOT NULL)";
    private static readonly TimeSpan Rejoin = TimeSpan.FromSeconds(120);

    // Story: the only fence lived inside the agent. After kill -9 of the leader's agent alone, its PostgreSQL (started
    // in its own session) went on committing; a replica promoted once the lease expired, and every write the old
    // primary acknowledged from then on was thrown away when it rejoined (~530 here, 205 with Patroni sans watchdog).
    [Fact]
    public async Task Leader_agent_killed_alone_its_PostgreSQL_takes_no_write_once_another_member_leads_and_none_is_lost()
    {
        var (cluster, oldLeader) = await TestCluster.StartHealthyAsync(output, nodes: 2);
        await using var stopCluster = cluster;
        await oldLeader.ExecuteAsync(Table);
        var clock = Stopwatch.StartNew();
        await using var writers = DirectWriters.Start(oldLeader, clock);
        await writers.WaitUntilBothWriteAsync();

        var fault = clock.Elapsed;
        await oldLeader.KillAgentAsync();
        var takeover = await NewLeaderTakesAWriteAsync(cluster, oldLeader, clock, TimeSpan.FromSeconds(60));

        // An old primary still alive would go on acknowledging: give it 3 s to show it (an observation window).
        await Task.Delay(TimeSpan.FromSeconds(3));
        await writers.StopAsync();
        var late = writers.AcknowledgedAfter(takeover.FirstWrite);
        Measurements.Report(output, $"fence, leader agent kill -9: the old primary acknowledged {late} writes after the new leader took its first write "
            + $"({Since(takeover.FirstWrite, fault)} after the kill); last acknowledgement {Since(writers.LastAck, fault)} after the kill; "
            + $"{writers.Count} acknowledged, {writers.Failures} refused");

        oldLeader.Start();
        await cluster.WaitForStreamingAsync(oldLeader, Rejoin);
        Assert.Equal(takeover.Leader.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).Name);
        var missing = await writers.MissingOnAsync(takeover.Leader);
        Measurements.Report(output, $"fence, leader agent kill -9: {missing.Count} acknowledged writes missing after the old primary rejoined "
            + $"({missing.Count(a => a.At > takeover.FirstWrite)} of them acknowledged after the new leader's first write)");

        Assert.True(late == 0, $"the old primary acknowledged {late} writes after the new leader took one");
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged writes are missing on the new timeline, e.g. {string.Join(", ", missing.Take(5))}");
    }

    // Story: a frozen agent (SIGSTOP, a stalled VM, a long GC) is a dead agent that comes back. Its PostgreSQL went on
    // committing while another member led (~520 writes here), and once thawed it answered /leader 200 from the
    // snapshot it had before the freeze, so a router's health check would have sent writes to it.
    [Fact]
    public async Task Leader_agent_frozen_for_two_ttl_its_PostgreSQL_takes_no_write_once_another_member_leads_and_it_never_claims_the_lead()
    {
        var options = new ClusterOptions();
        var (cluster, oldLeader) = await TestCluster.StartHealthyAsync(output, nodes: 2, options);
        await using var stopCluster = cluster;
        await oldLeader.ExecuteAsync(Table);
        var clock = Stopwatch.StartNew();
        await using var writers = DirectWriters.Start(oldLeader, clock);
        await writers.WaitUntilBothWriteAsync();

        var fault = clock.Elapsed;
        oldLeader.PauseAgent();
        await using var probe = RestProbe.Start(oldLeader, clock);
        var takeoverTask = NewLeaderTakesAWriteAsync(cluster, oldLeader, clock, TimeSpan.FromSeconds(2 * options.Ttl + 60));
        TimeSpan resumed;
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(2 * options.Ttl)); // the fault itself lasts 2 × ttl
        }
        finally
        {
            oldLeader.ResumeAgent();
            resumed = clock.Elapsed;
        }

        var takeover = await takeoverTask;
        await Task.Delay(TimeSpan.FromSeconds(5)); // the thawed agent is watched (and written to) for 5 s
        await probe.StopAsync();
        await writers.StopAsync();
        var late = writers.AcknowledgedAfter(takeover.FirstWrite);
        var claims = probe.OkAnsweredAfter(takeover.FirstLeader);
        Measurements.Report(output, $"fence, leader agent frozen {2 * options.Ttl} s: the old primary acknowledged {late} writes after the new leader took its first write "
            + $"({Since(takeover.FirstWrite, fault)} after the freeze, thawed at {Since(resumed, fault)}); last acknowledgement {Since(writers.LastAck, fault)} after the freeze; "
            + $"{writers.Count} acknowledged, {writers.Failures} refused");
        Measurements.Report(output, $"fence, leader agent frozen {2 * options.Ttl} s: the old agent answered 200 {claims.Count} times on /leader or /primary while another member led "
            + $"(first answered {(claims.Count == 0 ? "never" : Since(claims.Min(c => c.AnsweredAt), fault))} after the freeze; {probe.Count} probes)");

        await cluster.WaitForStreamingAsync(oldLeader, Rejoin);
        Assert.Equal(takeover.Leader.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).Name);
        var missing = await writers.MissingOnAsync(takeover.Leader);
        Measurements.Report(output, $"fence, leader agent frozen {2 * options.Ttl} s: {missing.Count} acknowledged writes missing after the old primary rejoined "
            + $"({missing.Count(a => a.At > takeover.FirstWrite)} of them acknowledged after the new leader's first write)");

        Assert.True(late == 0, $"the old primary acknowledged {late} writes after the new leader took one");
        Assert.True(claims.Count == 0, $"the old agent answered 200 while another member led: {string.Join(", ", claims.Take(5))}");
        Assert.True(missing.Count == 0, $"{missing.Count} acknowledged writes are missing on the new timeline, e.g. {string.Join(", ", missing.Take(5))}");
    }

    // Story: at the lease deadline the agent inspected PostgreSQL first (pg_controldata, 30 s timeout) and stopped it
    // only then, so a slow pg_controldata kept the old primary writable long after etcd could have let another in.
    [Fact]
    public async Task Slow_pg_controldata_at_the_lease_deadline_does_not_delay_the_stop()
    {
        const int SlowSeconds = 20; // more than a ttl, less than the agent's 30 s program timeout
        using var bin = new TempDir("bin");
        var flag = bin.Sub("slow");
        foreach (var program in Directory.GetFiles(RealBinDir).Where(p => Path.GetFileName(p) != "pg_controldata"))
        {
            File.CreateSymbolicLink(Path.Combine(bin.Path, Path.GetFileName(program)), program);
        }

        var wrapper = bin.Sub("pg_controldata");
        await File.WriteAllTextAsync(wrapper, $"""
            #!/bin/sh
            # Fault injection (FenceTests): slow for up to {SlowSeconds} s while {flag} exists.
            i=0
            while [ -e '{flag}' ] && [ $i -lt {SlowSeconds * 10} ]; do sleep 0.1; i=$((i + 1)); done
            exec {RealBinDir}/pg_controldata "$@"

            """);
        File.SetUnixFileMode(wrapper, (UnixFileMode)0b111_101_101);

        var options = new ClusterOptions { BinDir = bin.Path };
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 2, options);
        await using var stopCluster = cluster;
        await leader.ExecuteAsync(Table);
        var clock = Stopwatch.StartNew();
        await using var writers = DirectWriters.Start(leader, clock);
        await writers.WaitUntilBothWriteAsync();
        var postmaster = leader.PostmasterPid() ?? throw new InvalidOperationException("the leader's postmaster is not running");

        // etcd frozen: the lease is not renewed and its deadline comes; every pg_controldata is slow from now on (the
        // agent caches its output by pg_control's mtime and size: touching the file makes the next inspection run it).
        var window = TimeSpan.FromSeconds(SlowSeconds + 20);
        cluster.Etcd.Pause();
        var freeze = clock.Elapsed;
        TimeSpan? gone;
        try
        {
            await File.WriteAllTextAsync(flag, "");
            File.SetLastWriteTimeUtc(Path.Combine(leader.DataDir, "global", "pg_control"), DateTime.UtcNow);
            gone = await GoneAsync(postmaster, clock, freeze + window);
        }
        finally
        {
            File.Delete(flag);
            cluster.Etcd.Resume();
        }

        await writers.StopAsync();
        Measurements.Report(output, $"fence, slow pg_controldata ({SlowSeconds} s) at the deadline: postmaster gone {Since(gone, freeze)} after etcd froze, "
            + $"last write acknowledged {Since(writers.LastAck, freeze)} after (ttl {options.Ttl} s)");

        await RecoversAsync(cluster);
        Assert.True(gone < TimeSpan.FromSeconds(options.Ttl) + freeze, gone is null ? $"the postmaster was still alive {window.TotalSeconds:0} s after etcd froze" : $"the postmaster was gone only {Since(gone, freeze)} after etcd froze");
        Assert.True(writers.LastAck < TimeSpan.FromSeconds(options.Ttl) + freeze, $"the old primary acknowledged a write {Since(writers.LastAck, freeze)} after etcd froze");
    }

    // Story: with the postmaster not answering (SIGSTOP: new connections hang, sessions already open still commit),
    // the deadline handler spent its time on an inspection and then on `pg_ctl stop -m immediate`, whose SIGQUIT a
    // stopped postmaster never acts on: the old primary's open sessions kept committing.
    [Fact]
    public async Task A_postmaster_that_does_not_answer_at_the_lease_deadline_is_killed_before_the_lease_can_expire()
    {
        var options = new ClusterOptions();
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 2, options);
        await using var stopCluster = cluster;
        await leader.ExecuteAsync(Table);
        var clock = Stopwatch.StartNew();
        await using var writers = DirectWriters.Start(leader, clock);
        await writers.WaitUntilBothWriteAsync();
        var postmaster = leader.PostmasterPid() ?? throw new InvalidOperationException("the leader's postmaster is not running");

        var window = TimeSpan.FromSeconds(options.Ttl + 15);
        cluster.Etcd.Pause();
        var freeze = clock.Elapsed;
        TimeSpan? gone;
        try
        {
            Signals.Send(postmaster, Signals.SIGSTOP);
            gone = await GoneAsync(postmaster, clock, freeze + window);
        }
        finally
        {
            if (Signals.IsAlive(postmaster))
            {
                Signals.Send(postmaster, Signals.SIGCONT);
            }
            cluster.Etcd.Resume();
        }

        await writers.StopAsync();
        Measurements.Report(output, $"fence, postmaster not answering (SIGSTOP) at the deadline: postmaster gone {Since(gone, freeze)} after etcd froze, "
            + $"last write acknowledged {Since(writers.LastAck, freeze)} after (ttl {options.Ttl} s)");

        await RecoversAsync(cluster);
        Assert.True(gone < TimeSpan.FromSeconds(options.Ttl) + freeze, gone is null ? $"the postmaster was still alive {window.TotalSeconds:0} s after etcd froze" : $"the postmaster was gone only {Since(gone, freeze)} after etcd froze");
        Assert.True(writers.LastAck < TimeSpan.FromSeconds(options.Ttl) + freeze, $"the old primary acknowledged a write {Since(writers.LastAck, freeze)} after etcd froze");
    }

    private sealed record Takeover(TestNode Leader, TimeSpan FirstLeader, TimeSpan FirstWrite);

    /// <summary>
    /// Tries a write on every other member every 50 ms (a replica refuses it) until one takes it: the earliest instant
    /// the new leader is writable. Also records when one first answered 200 on /leader.
    /// </summary>
    private static async Task<Takeover> NewLeaderTakesAWriteAsync(TestCluster cluster, TestNode old, Stopwatch clock, TimeSpan timeout)
    {
        var until = clock.Elapsed + timeout;
        TimeSpan? firstLeader = null;
        var id = 1_000_000_000L;
        while (clock.Elapsed < until)
        {
            foreach (var n in cluster.Nodes.Where(n => n != old))
            {
                if (firstLeader is null && await n.RestStatusAsync("/leader") == 200)
                {
                    firstLeader = clock.Elapsed;
                }

                try
                {
                    await n.ExecuteAsync($"INSERT INTO fence_writes VALUES ({id++}, 'new leader')");
                    var wrote = clock.Elapsed;
                    return new Takeover(n, firstLeader ?? wrote, wrote);
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException)
                {
                }
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"no other member took a write within {timeout.TotalSeconds:0} s\n{await cluster.DescribeAsync()}");
    }

    /// <summary>Polls every 20 ms until <paramref name="pid"/> is gone; its time on <paramref name="clock"/>, or null if still alive at <paramref name="until"/>.</summary>
    private static async Task<TimeSpan?> GoneAsync(int pid, Stopwatch clock, TimeSpan until)
    {
        while (clock.Elapsed < until)
        {
            if (!Signals.IsAlive(pid))
            {
                return clock.Elapsed;
            }

            await Task.Delay(20);
        }

        return null;
    }

    /// <summary>After etcd is back: one leader, the other member streaming from it.</summary>
    private static async Task RecoversAsync(TestCluster cluster)
    {
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(90));
        foreach (var n in cluster.Nodes.Where(n => n != leader))
        {
            await cluster.WaitForStreamingAsync(n, Rejoin);
        }
    }

    private static string Since(TimeSpan? at, TimeSpan origin) => at is { } t ? $"{(t - origin).TotalSeconds:0.00} s" : "never (within the test's window)";

    internal sealed record Ack(long Id, TimeSpan At, string Writer)
    {
        public override string ToString() => $"{Id} ({Writer}, {At.TotalSeconds:0.000} s)";
    }

    /// <summary>
    /// Two clients writing unique ids straight to one member's PostgreSQL until stopped: one opens a new connection per
    /// INSERT, one keeps its connection (and reconnects when it breaks). Failures are counted and retried.
    /// </summary>
    private sealed class DirectWriters : IAsyncDisposable
    {
        private readonly TestNode _target;
        private readonly Stopwatch _clock;
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentQueue<Ack> _acks = new();
        private Task[] _tasks = [];
        private long _nextId;
        private int _failures;

        private DirectWriters(TestNode target, Stopwatch clock)
        {
            _target = target;
            _clock = clock;
        }

        public int Count => _acks.Count;
        public int Failures => Volatile.Read(ref _failures);
        public TimeSpan? LastAck => _acks.IsEmpty ? null : _acks.Max(a => a.At);

        public static DirectWriters Start(TestNode target, Stopwatch clock)
        {
            var writers = new DirectWriters(target, clock);
            writers._tasks = [Task.Run(writers.NewConnectionPerInsertAsync), Task.Run(writers.PersistentConnectionAsync)];
            return writers;
        }

        public Task WaitUntilBothWriteAsync() => Poll.UntilAsync(
            () => Task.FromResult(_acks.Count(a => a.Writer == "per-insert") >= 10 && _acks.Count(a => a.Writer == "persistent") >= 10),
            TimeSpan.FromSeconds(30), $"both writers acknowledged by {_target.Name}");

        public int AcknowledgedAfter(TimeSpan t) => _acks.Count(a => a.At > t);

        /// <summary>The acknowledged writes that <paramref name="leader"/> does not have.</summary>
        public async Task<List<Ack>> MissingOnAsync(TestNode leader)
        {
            var present = new HashSet<long>();
            await using var conn = new NpgsqlConnection(leader.ConnectionString);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT id FROM fence_writes", conn);
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                present.Add(reader.GetInt64(0));
            }

            return [.. _acks.Where(a => !present.Contains(a.Id)).OrderBy(a => a.At)];
        }

        private async Task NewConnectionPerInsertAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                var id = Interlocked.Increment(ref _nextId);
                try
                {
                    await using var conn = new NpgsqlConnection(_target.ConnectionString);
                    await conn.OpenAsync();
                    await InsertAsync(conn, id, "per-insert");
                }
                catch (Exception e) when (IsClientFailure(e))
                {
                    await FailedAsync();
                }

                await BreatheAsync();
            }
        }

        private async Task PersistentConnectionAsync()
        {
            NpgsqlConnection? conn = null;
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    var id = Interlocked.Increment(ref _nextId);
                    try
                    {
                        if (conn is null)
                        {
                            conn = new NpgsqlConnection(_target.ConnectionString);
                            await conn.OpenAsync();
                        }

                        await InsertAsync(conn, id, "persistent");
                    }
                    catch (Exception e) when (IsClientFailure(e))
                    {
                        if (conn is not null)
                        {
                            await conn.DisposeAsync();
                            conn = null;
                        }

                        await FailedAsync();
                    }

                    await BreatheAsync();
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

        private async Task InsertAsync(NpgsqlConnection conn, long id, string writer)
        {
            await using var cmd = new NpgsqlCommand("INSERT INTO fence_writes VALUES ($1, $2)", conn) { Parameters = { new() { Value = id }, new() { Value = writer } } };
            await cmd.ExecuteNonQueryAsync();
            _acks.Enqueue(new Ack(id, _clock.Elapsed, writer));
        }

        private static bool IsClientFailure(Exception e) => e is NpgsqlException or TimeoutException or InvalidOperationException or IOException;

        private async Task FailedAsync()
        {
            Interlocked.Increment(ref _failures);
            await BreatheAsync(50);
        }

        // A few ms between writes: a steady stream (~100/s per writer) without starving the 2-core machine.
        private async Task BreatheAsync(int ms = 5)
        {
            try
            {
                await Task.Delay(ms, _stop.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_tasks);
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _stop.Dispose();
        }
    }

    internal sealed record Answer(string Path, TimeSpan SentAt, TimeSpan AnsweredAt, int Status)
    {
        public override string ToString() => $"{Path} {Status} (sent {SentAt.TotalSeconds:0.00} s, answered {AnsweredAt.TotalSeconds:0.00} s)";
    }

    /// <summary>
    /// Sends GET /leader and GET /primary to one agent every 200 ms without waiting for the answers (a frozen agent
    /// answers nothing until thawed; the kernel queues the connections and the thawed agent then answers them all),
    /// with a timeout long enough that a request sent during the freeze gets its answer after the thaw.
    /// </summary>
    private sealed class RestProbe : IAsyncDisposable
    {
        private readonly TestNode _node;
        private readonly Stopwatch _clock;
        private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentQueue<Answer> _answers = new();
        private readonly ConcurrentBag<Task> _pending = [];
        private Task _loop = Task.CompletedTask;

        private RestProbe(TestNode node, Stopwatch clock)
        {
            _node = node;
            _clock = clock;
        }

        public int Count => _answers.Count;

        public static RestProbe Start(TestNode node, Stopwatch clock)
        {
            var probe = new RestProbe(node, clock);
            probe._loop = Task.Run(probe.LoopAsync);
            return probe;
        }

        public List<Answer> OkAnsweredAfter(TimeSpan t) => [.. _answers.Where(a => a.Status == 200 && a.AnsweredAt >= t).OrderBy(a => a.AnsweredAt)];

        private async Task LoopAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                _pending.Add(ProbeAsync("/leader"));
                _pending.Add(ProbeAsync("/primary"));
                try
                {
                    await Task.Delay(200, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        }

        private async Task ProbeAsync(string path)
        {
            var sent = _clock.Elapsed;
            try
            {
                using var resp = await _http.GetAsync($"http://127.0.0.1:{_node.RestPort}{path}");
                _answers.Enqueue(new Answer(path, sent, _clock.Elapsed, (int)resp.StatusCode));
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
            }
        }

        /// <summary>Stops sending and waits for the answers still on their way (each bounded by the client's timeout).</summary>
        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            await Task.WhenAll(_pending);
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _http.Dispose();
            _stop.Dispose();
        }
    }
}
