using System.Diagnostics;
using Npgsql;
using Steward.Core.Ha;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// Synchronous mode (issue 10, "Acceptance"), on real etcd and PostgreSQL: no acknowledged write is lost when the leader's
/// host crashes, the new leader is always one the sync key named, strict mode makes commits wait rather than go
/// asynchronous, and switching the mode at run time never lets a standby the key does not name acknowledge a commit.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class SyncReplicationTests(ITestOutputHelper output)
{
    private static int Rounds => int.TryParse(Environment.GetEnvironmentVariable("STEWARD_SYNC_ROUNDS"), out var n) && n > 0 ? n : 3;

    [Fact]
    public async Task Kill_9_of_the_leader_under_8_writers_loses_no_acknowledged_write_and_the_new_leader_was_a_synchronous_standby()
    {
        var options = new ClusterOptions { SynchronousMode = true };
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 3, options);
        await using var stopCluster = cluster;
        await KillLeaderRoundsAsync(cluster, leader, Rounds, "synchronous mode", async l => (await WaitForSyncStandbyAsync(cluster, l), "sync"));
    }

    /// <summary>
    /// Under 8 writers, <paramref name="rounds"/> times: kill -9 of the leader, the new one must be one of those
    /// <paramref name="onRecord"/> named just before (and say how), and hold every acknowledged write; the old one rejoins.
    /// </summary>
    private async Task KillLeaderRoundsAsync(TestCluster cluster, TestNode leader, int rounds, string mode,
        Func<TestNode, Task<(IReadOnlyList<string> Names, string How)>> onRecord)
    {
        var clock = Stopwatch.StartNew();
        await using var writers = await LeaderWriters.StartAsync(cluster, leader, writers: 8, clock);
        var report = new List<string>();
        for (var round = 1; round <= rounds; round++)
        {
            var (names, how) = await onRecord(leader);
            var acknowledgedBefore = writers.Count;
            await leader.CrashAsync();
            var crashedAt = clock.Elapsed;
            var next = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: leader);
            var led = clock.Elapsed - crashedAt;
            Assert.True(names.Contains(next.Name), $"round {round}: {next.Name} took over, but the sync key named [{string.Join(", ", names)}] when {leader.Name} crashed");

            // Every write acknowledged before the new leader answered must be there; so must the ones it acknowledged since.
            var missing = await writers.MissingOnAsync(next);
            report.Add($"round {round}: {leader.Name} crashed with {how} [{string.Join(", ", names)}], {next.Name} leads after {led.TotalSeconds:0.0} s, "
                       + $"{acknowledgedBefore} acknowledged before the crash, {missing.Count} missing");
            Assert.True(missing.Count == 0, $"round {round}: {missing.Count} acknowledged writes missing on {next.Name}, e.g. {string.Join(", ", missing.Take(5))}");

            leader.Start();
            await cluster.WaitForStreamingAsync(leader, TimeSpan.FromSeconds(120));
            leader = next;
        }

        await writers.StopAsync();
        var final = await writers.MissingOnAsync(leader);
        Measurements.Report(output, $"{mode}, kill -9 of the leader under 8 writers, {rounds} rounds: {string.Join("; ", report)}; "
                                    + $"{writers.Count} writes acknowledged in all, {final.Count} missing at the end");
        Assert.Empty(final);
    }

    [Fact]
    public async Task The_read_port_prefers_or_excludes_the_synchronous_standby_as_configured_and_the_dashboard_marks_it()
    {
        var options = new ClusterOptions { SynchronousMode = true };
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 3, options);
        await using var stopCluster = cluster;
        var sync = Assert.Single(await WaitForSyncStandbyAsync(cluster, leader));
        var syncPort = cluster.Nodes.Single(n => n.Name == sync).PgPort;
        await using var prefer = await TestRouter.StartAsync(cluster, output, syncStandbys: "prefer");
        await using var exclude = await TestRouter.StartAsync(cluster, output, syncStandbys: "exclude");
        using var http = new HttpClient();
        foreach (var (router, onSync) in new[] { (prefer, true), (exclude, false) })
        {
            // The router learns the sync key by watch: wait until its dashboard shows it, then every new read session lands as configured.
            await Poll.UntilAsync(async () =>
            {
                var state = System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{router.StatsPort}/dashboard/state.json"))!;
                return state["members"]!.AsArray().Any(m => (string?)m!["name"] == sync && (bool?)m["sync_standby"] == true)
                       && state["members"]!.AsArray().Count(m => (bool?)m!["readable"] == true) >= 1;
            }, TimeSpan.FromSeconds(30), "the dashboard marks the synchronous standby");
            for (var i = 0; i < 6; i++)
            {
                var port = await router.QueryAsync<int>(router.ReadPort, "SELECT inet_server_port()");
                Assert.True(onSync == (port == syncPort), $"read session {i} reached port {port}; the synchronous standby {sync} listens on {syncPort} (sync_standbys: {(onSync ? "prefer" : "exclude")})");
            }
        }
    }

    [Fact]
    public async Task Strict_mode_with_the_only_synchronous_standby_stopped_makes_commits_wait_until_it_returns_and_loses_nothing()
    {
        var options = new ClusterOptions { SynchronousMode = true, SynchronousModeStrict = true };
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 2, options);
        await using var stopCluster = cluster;
        var standby = cluster.Nodes.Single(n => n != leader);
        await WaitForSyncStandbyAsync(cluster, leader);
        await leader.ExecuteAsync("CREATE TABLE strict_writes(id int PRIMARY KEY)");

        await standby.StopAsync();
        await Poll.UntilAsync(async () => await ReplicationRowsAsync(leader) == 0, TimeSpan.FromSeconds(30), $"{standby.Name}'s walsender gone");

        // The commit is sent while no standby can acknowledge it: it must not complete.
        await using var conn = new NpgsqlConnection(leader.ConnectionString.Replace("Command Timeout=10", "Command Timeout=0", StringComparison.Ordinal));
        await conn.OpenAsync();
        var insert = new NpgsqlCommand("INSERT INTO strict_writes VALUES (1)", conn).ExecuteNonQueryAsync();
        var waited = await Task.WhenAny(insert, Task.Delay(TimeSpan.FromSeconds(8)));
        Assert.True(waited != insert, "the commit was acknowledged with no synchronous standby running (strict mode)");
        Assert.Equal(200, await leader.RestStatusAsync("/leader"));

        standby.Start();
        var completed = await Task.WhenAny(insert, Task.Delay(TimeSpan.FromSeconds(90)));
        Assert.True(completed == insert, "the waiting commit did not complete within 90 s of the synchronous standby's return");
        await insert;
        await Poll.UntilAsync(async () => await standby.QueryAsync<long>("SELECT count(*) FROM strict_writes") == 1, TimeSpan.FromSeconds(30), "the row on the standby");
        Measurements.Report(output, "synchronous_mode_strict: with the only synchronous standby stopped a commit waited 8 s without acknowledgement, then completed once it returned");
    }

    [Fact]
    public async Task Switching_synchronous_mode_off_and_on_under_load_keeps_every_standby_of_the_sync_key_waited_for_and_loses_nothing()
    {
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 3);
        await using var stopCluster = cluster;
        var clock = Stopwatch.StartNew();
        await using var writers = await LeaderWriters.StartAsync(cluster, leader, writers: 4, clock);
        using var sampling = new CancellationTokenSource();
        var violations = new List<string>();
        var samples = 0;
        var sampler = Task.Run(async () =>
        {
            // PostgreSQL must wait for every standby the key names (a standby joins synchronous_standby_names before the key
            // and leaves it after). synchronous_standby_names is read before and after the key: a standby on record must be
            // in one of the two reads (both transitions inside one sample's few milliseconds would be needed to miss it).
            while (!sampling.IsCancellationRequested)
            {
                try
                {
                    var before = SyncReplication.Parse(await leader.QueryAsync<string>("SHOW synchronous_standby_names"), managed: true);
                    var key = await cluster.SyncKeyAsync();
                    var after = SyncReplication.Parse(await leader.QueryAsync<string>("SHOW synchronous_standby_names"), managed: true);
                    var onRecord = key?.Standbys ?? [];
                    var notWaitedFor = onRecord.Where(n => !before.Names.Contains(n) && !after.Names.Contains(n)).ToList();
                    if (before.Any || after.Any || notWaitedFor.Count > 0)
                    {
                        lock (violations)
                        {
                            violations.Add($"{clock.Elapsed.TotalSeconds:0.00} s: the sync key names [{string.Join(", ", onRecord)}], synchronous_standby_names "
                                           + $"[{string.Join(", ", before.Names)}]{(before.Any ? " and *" : "")} then [{string.Join(", ", after.Names)}]{(after.Any ? " and *" : "")}");
                        }
                    }

                    Interlocked.Increment(ref samples);
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException or HttpRequestException)
                {
                }

                await Task.Delay(20);
            }
        });

        var steps = new List<string>();
        foreach (var on in new[] { true, false, true, false, true })
        {
            var (exit, text) = await Steward.IntegrationTests.Cli.CliRun.RunAsync(cluster, output, "edit-config", "--set", $"synchronous_mode={(on ? "true" : "false")}", "--force");
            Assert.True(exit == 0, text);
            var started = clock.Elapsed;
            if (on)
            {
                var sync = await WaitForSyncStandbyAsync(cluster, leader);
                steps.Add($"on: sync [{string.Join(", ", sync)}] after {(clock.Elapsed - started).TotalSeconds:0.0} s");
            }
            else
            {
                await Poll.UntilAsync(async () => await cluster.SyncKeyAsync() is null
                                                  && SyncReplication.Parse(await leader.QueryAsync<string>("SHOW synchronous_standby_names"), true).Names.Count == 0,
                    TimeSpan.FromSeconds(30), "the sync key deleted and synchronous_standby_names empty", cluster.DescribeAsync);
                steps.Add($"off after {(clock.Elapsed - started).TotalSeconds:0.0} s");
            }
        }

        await sampling.CancelAsync();
        await sampler;
        await writers.StopAsync();
        var missing = await writers.MissingOnAsync(leader);
        Measurements.Report(output, $"synchronous mode switched at run time under 4 writers: {string.Join("; ", steps)}; {samples} samples of "
                                    + $"synchronous_standby_names vs the sync key, {violations.Count} with a standby on record that PostgreSQL did not wait for; {writers.Count} writes acknowledged, {missing.Count} missing");
        Assert.True(samples > 20, $"only {samples} samples taken");
        Assert.True(violations.Count == 0, string.Join("\n", violations.Take(10)));
        Assert.Empty(missing);
    }

    // The same crash with replication held back: the leader's walsenders are stopped (SIGSTOP) for 3 s under 8 writers, then
    // the leader's host crashes (the stopped walsenders die with it, having sent nothing more). Asynchronous mode acknowledges
    // what no replica has and loses it; synchronous mode makes those commits wait, so nothing it acknowledged is lost.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task With_replication_held_back_a_leader_crash_loses_acknowledged_writes_only_in_asynchronous_mode(bool synchronous)
    {
        var options = new ClusterOptions { SynchronousMode = synchronous };
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 3, options);
        await using var stopCluster = cluster;
        if (synchronous)
        {
            await WaitForSyncStandbyAsync(cluster, leader);
        }

        var clock = Stopwatch.StartNew();
        await using var writers = await LeaderWriters.StartAsync(cluster, leader, writers: 8, clock);
        var walsenders = new List<int>();
        await using (var conn = new NpgsqlConnection(leader.ConnectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT pid FROM pg_stat_replication", conn);
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                walsenders.Add(reader.GetInt32(0));
            }
        }

        Assert.Equal(2, walsenders.Count);
        foreach (var pid in walsenders)
        {
            Assert.True(Signals.Send(pid, Signals.SIGSTOP), $"SIGSTOP {pid}");
        }

        var held = clock.Elapsed;
        await Task.Delay(TimeSpan.FromSeconds(3));
        var acknowledgedWhileHeld = writers.AcknowledgedBy(leader.Name, held);
        await leader.CrashAsync();
        foreach (var pid in walsenders)
        {
            Signals.Send(pid, Signals.SIGKILL); // stopped, they would not notice the postmaster's death; they die having sent nothing more
        }

        var next = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: leader);
        await writers.StopAsync();
        var missing = await writers.MissingOnAsync(next);
        Measurements.Report(output, $"{(synchronous ? "synchronous" : "asynchronous")} mode, walsenders stopped 3 s then kill -9 of the leader under 8 writers: "
                                    + $"{acknowledgedWhileHeld} writes acknowledged while replication was held back, {missing.Count} acknowledged writes missing on the new leader {next.Name}");
        if (synchronous)
        {
            Assert.True(missing.Count == 0, $"{missing.Count} acknowledged writes lost in synchronous mode, e.g. {string.Join(", ", missing.Take(5))}");
        }
        else
        {
            // Not a property of Steward but the reason synchronous mode exists: shown, so the number above means something.
            Assert.True(missing.Count > 0, $"asynchronous mode lost nothing although {acknowledgedWhileHeld} writes were acknowledged while no replica received WAL");
        }
    }

    /// <summary>
    /// Issue 16's quorum commit acceptance: three replicas, synchronous_node_count 2 (<c>ANY 2</c> of three, quorum 1),
    /// kill -9 of the leader under insert load: no acknowledged write lost, and the new leader was a voter.
    /// </summary>
    [Fact]
    public async Task Quorum_commit_kill_9_of_the_leader_under_8_writers_loses_no_acknowledged_write_and_a_voter_takes_over()
    {
        var options = new ClusterOptions { SynchronousMode = true, SynchronousModeQuorum = true, SynchronousNodeCount = 2 };
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 4, options);
        await using var stopCluster = cluster;
        await KillLeaderRoundsAsync(cluster, leader, 2, "quorum commit (ANY 2 of 3 replicas)", async l =>
        {
            var (voters, quorum, ssn) = await WaitForQuorumAsync(cluster, l, voters: 3);
            Assert.Equal(1, quorum);
            Assert.True(ssn is { Quorum: true, Num: 2 }, $"synchronous_standby_names on {l.Name}: ANY 2 of the voters expected");
            return (voters, $"quorum {quorum} ({ssn.Num} of {ssn.Names.Count}) of voters");
        });
        var leaderNow = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30));
        await Poll.UntilAsync(async () => await cluster.Nodes.First(n => n != leaderNow).RestStatusAsync("/quorum") == 200, TimeSpan.FromSeconds(60), "/quorum on a voter");
        Assert.Equal(503, await cluster.Nodes.First(n => n != leaderNow).RestStatusAsync("/sync"));
    }

    /// <summary>Waits until the leader's sync key names <paramref name="voters"/> voters and PostgreSQL waits for ANY k of exactly them.</summary>
    private static async Task<(IReadOnlyList<string> Voters, int Quorum, StandbyNames Ssn)> WaitForQuorumAsync(TestCluster cluster, TestNode leader, int voters)
    {
        (IReadOnlyList<string>, int, StandbyNames) result = default;
        await Poll.UntilAsync(async () =>
        {
            var key = await cluster.SyncKeyAsync();
            var ssn = SyncReplication.Parse(await leader.QueryAsync<string>("SHOW synchronous_standby_names"), true);
            var onRecord = key?.Standbys ?? [];
            result = (onRecord, key?.Quorum ?? -1, ssn);
            return key?.Leader == leader.Name && onRecord.Count == voters && ssn.Quorum && ssn.Names.Count == voters && ssn.Names.All(onRecord.Contains)
                   && key?.Quorum == voters - ssn.Num
                   && await leader.QueryAsync<long>("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'") == voters;
        }, TimeSpan.FromSeconds(90), $"{voters} quorum voters of {leader.Name} on record", cluster.DescribeAsync);
        return result;
    }

    /// <summary>Waits until the leader's sync key names a streaming standby that PostgreSQL waits for; returns the key's standbys.</summary>
    private static async Task<IReadOnlyList<string>> WaitForSyncStandbyAsync(TestCluster cluster, TestNode leader)
    {
        IReadOnlyList<string> standbys = [];
        await Poll.UntilAsync(async () =>
        {
            var key = await cluster.SyncKeyAsync();
            var ssn = SyncReplication.Parse(await leader.QueryAsync<string>("SHOW synchronous_standby_names"), true);
            standbys = key?.Standbys ?? [];
            return key?.Leader == leader.Name && ssn.Names.Count > 0 && ssn.Names.All(standbys.Contains)
                   && await leader.QueryAsync<long>("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") > 0;
        }, TimeSpan.FromSeconds(60), $"a synchronous standby of {leader.Name} on record in the sync key", cluster.DescribeAsync);
        return standbys;
    }

    private static async Task<long> ReplicationRowsAsync(TestNode leader) =>
        await leader.QueryAsync<long>("SELECT count(*) FROM pg_stat_replication");
}
