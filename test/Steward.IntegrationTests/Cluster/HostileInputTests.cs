using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using dotnet_etcd;
using Etcdserverpb;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// Issue 15, hostile input, on one real 3-node cluster with a router: a fixed-seed REST fuzz pass against the leader
/// (random methods and paths, every action with garbage bodies, oversized and deeply nested JSON, malformed HTTP, slow
/// clients), then malformed values written straight into etcd. Throughout, a watcher checks that the leader key never
/// changes, the leader's lease keeps being renewed, its HA cycle keeps running and /health answers quickly.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class HostileInputTests(ITestOutputHelper output)
{
    /// <summary>Fixed for CI; bench/hostile/fuzz.sh runs longer passes (STEWARD_FUZZ_SECONDS) with other seeds (STEWARD_FUZZ_SEED).</summary>
    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("STEWARD_FUZZ_SEED"), out var seed) ? seed : 20261201;
    private static readonly TimeSpan FuzzTime = TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("STEWARD_FUZZ_SECONDS"), out var seconds) && seconds > 0 ? seconds : 12);
    private static readonly TimeSpan SlowClientLimit = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Rest_fuzz_and_malformed_etcd_values_leave_every_agent_answering_with_the_same_leader()
    {
        using var certs = new TempDir("pgssl");
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, options: new ClusterOptions { Ssl = PgTls.Create(certs) });
        await using var _ = cluster;

        // PostgreSQL over TLS (issue 15): the replicas cloned and stream through hostssl with a client certificate whose
        // key is encrypted, so pg_basebackup (service file), primary_conninfo and the agents' Npgsql connections all
        // carried the replication user's SSL settings; no password or sslpassword in any log.
        Assert.Equal(2L, await leader.QueryAsync<long>(
            "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE s.ssl AND s.client_dn = '/CN=replicator'"));
        foreach (var n in cluster.Nodes)
        {
            Assert.DoesNotContain(PgTls.KeyPassword, n.Log(), StringComparison.Ordinal);
            Assert.DoesNotContain("rep-pass", n.Log(), StringComparison.Ordinal);
        }

        await using var router = await TestRouter.StartAsync(cluster, output);
        using var etcd = new EtcdClient(cluster.Etcd.Endpoint);
        var prefix = $"/service/{cluster.Scope}/";
        var configBefore = await GetAsync(etcd, prefix + "config");
        Assert.NotNull(configBefore);

        // Files: the data directory is 0700, the generated files holding secrets 0600.
        foreach (var n in cluster.Nodes)
        {
            Assert.Equal((UnixFileMode)0b111_000_000, File.GetUnixFileMode(n.DataDir));
            foreach (var secret in new[] { Path.Combine(n.Dir, "pgpass"), Path.Combine(n.Dir, "pgpass.service.conf"), Path.Combine(n.DataDir, "postgresql.conf") })
            {
                if (File.Exists(secret))
                {
                    Assert.Equal((UnixFileMode)0b110_000_000, File.GetUnixFileMode(secret));
                }
            }
        }

        Assert.Contains(cluster.Nodes, n => File.Exists(Path.Combine(n.Dir, "pgpass")));

        await using var watch = HaWatch.Start(cluster, leader, etcd, prefix);

        // ------------------------------------------------------------ REST fuzz
        var fuzz = new RestFuzz(leader.RestPort, new Random(Seed));
        var slow = SlowClients.Start(leader.RestPort, headerClients: 60, bodyClients: 20);
        await fuzz.RunAsync(FuzzTime);
        var slowResult = await slow.WaitAsync(SlowClientLimit);
        Measurements.Report(output, $"REST fuzz (seed {Seed}): {fuzz.Requests} requests in {FuzzTime.TotalSeconds:0} s against {leader.Name}; "
                                    + $"by status: {fuzz.StatusSummary()}; transport errors {fuzz.TransportErrors}");
        Measurements.Report(output, $"slow clients: {slowResult.Closed}/{slowResult.Total} dropped by the server, the last after {slowResult.LastClose.TotalSeconds:0.0} s");
        foreach (var line in fuzz.Notable.Take(20))
        {
            output.WriteLine("  " + line);
        }

        foreach (var error in fuzz.ServerErrors.Distinct().Take(20))
        {
            output.WriteLine("  server error: " + error);
        }

        Assert.True(fuzz.Requests > 100, $"only {fuzz.Requests} requests were made");
        Assert.Empty(fuzz.ServerErrors);
        // Refused requests are answered, not logged as unhandled errors with a stack trace each (a log flood).
        var unhandled = leader.Log().Split('\n').Count(l => l.Contains("An unhandled exception was thrown", StringComparison.Ordinal));
        Assert.True(unhandled == 0, $"{leader.Name} logged {unhandled} unhandled exceptions during the fuzz");
        Assert.Empty(fuzz.OversizedNotRefused);
        Assert.Equal(slowResult.Total, slowResult.Closed);
        var configAfter = (await GetAsync(etcd, prefix + "config"))!.Value;
        Assert.True(configBefore!.Value.ModRevision == configAfter.ModRevision, // nothing the fuzz sent was accepted
            $"the fuzz changed the config key:\nbefore {configBefore.Value.Value}\nafter  {configAfter.Value}\n{string.Join('\n', fuzz.Accepted)}");
        await AssertAnswersQuicklyAsync(leader);

        // ------------------------------------------------------------ malformed etcd contents
        var originals = new Dictionary<string, (string Value, long ModRevision)?>(StringComparer.Ordinal);
        foreach (var key in new[] { "config", "history", "status", "sync", "failover", "optime/leader" })
        {
            originals[key] = await GetAsync(etcd, prefix + key);
        }

        var replica = cluster.Nodes.First(n => n != leader);
        var memberBefore = (await GetAsync(etcd, prefix + "members/" + replica.Name))!.Value.Value;
        (string Key, string Value)[][] batches =
        [
            [
                ("config", "{\"ttl\": 6, \"loop_wait\": "),
                ("history", "{\"not\": \"a list\"}"),
                ("status", "garbage"),
                ("sync", "\u0000\u0001 not json"),
                ("failover", "[1, 2, 3]"),
                ("optime/leader", "not a number"),
                ("members/fz-not-json", "not json at all"),
                ("members/fz-missing-fields", "{}"),
                ("members/fz-wrong-types", "{\"role\": 5, \"state\": [], \"conn_url\": {}, \"api_url\": 1, \"xlog_location\": \"x\", \"timeline\": \"y\", \"tags\": 3}"),
            ],
            [
                ("config", "{\"ttl\": \"abc\", \"loop_wait\": [], \"postgresql\": {\"parameters\": 5}, \"synchronous_mode\": \"maybe\"}"),
                ("history", "[[1, 99999999999999999999999, \"overflow\"], [\"x\"], 5, null]"),
                ("status", "{\"optime\": \"abc\", \"slots\": 5}"),
                ("sync", "{\"leader\": 5, \"sync_standby\": []}"),
                ("failover", "{\"leader\": 1, \"member\": {}, \"scheduled_at\": \"not a time\"}"),
                ("members/" + replica.Name, "{\"conn_url\": 5"),
                ("members/fz-missing-fields", "{\"role\": \"primary\", \"state\": \"running\"}"),
                ("members/fz-bad-urls", "{\"conn_url\": \"::not a url::\", \"api_url\": \"http://[::1\", \"role\": \"replica\", \"state\": \"running\", \"xlog_location\": -5}"),
            ],
        ];
        foreach (var batch in batches)
        {
            foreach (var (key, value) in batch)
            {
                await etcd.PutAsync(prefix + key, value);
            }

            await watch.WaitForCyclesAsync(cluster, 3);
            foreach (var n in cluster.Nodes)
            {
                Assert.True(n.IsRunning, $"{n.Name}'s agent exited after bad etcd values:\n{n.LogTail(40)}");
                await AssertAnswersQuicklyAsync(n);
            }

            Assert.True(router.IsRunning, "the router exited after bad etcd values:\n" + router.Log());
            Assert.Equal(leader.Name, await cluster.LeaderKeyAsync());
        }

        // Logged, and not once per cycle: each bad value at most once per process.
        var leaderLog = leader.Log();
        foreach (var key in new[] { "config", "history", "status", "failover", "members/fz-not-json" })
        {
            Assert.Contains($"Ignoring key {key} ", leaderLog, StringComparison.Ordinal);
        }

        var historyWarnings = leaderLog.Split('\n').Count(l => l.Contains("Ignoring key history at mod_revision", StringComparison.Ordinal));
        Assert.True(historyWarnings <= 2, $"the bad history was logged {historyWarnings} times by {leader.Name} (once per value expected)");

        // Fixed: every original value back (or removed), the fuzz members gone; the cluster is whole again.
        foreach (var (key, original) in originals)
        {
            if (original is { } value)
            {
                await etcd.PutAsync(prefix + key, value.Value);
            }
            else
            {
                await etcd.DeleteAsync(prefix + key);
            }
        }

        await etcd.DeleteRangeAsync(prefix + "members/fz-");
        await Poll.UntilAsync(async () => await GetAsync(etcd, prefix + "members/" + replica.Name) is { } m && m.Value != "{\"conn_url\": 5" && m.Value.Contains("conn_url", StringComparison.Ordinal),
            TimeSpan.FromSeconds(30), $"{replica.Name} rewriting its corrupted member key");
        output.WriteLine($"{replica.Name}'s member key before: {memberBefore}");
        await Poll.UntilAsync(async () => (await leader.GetJsonAsync("/cluster"))?.GetProperty("members").GetArrayLength() == 3,
            TimeSpan.FromSeconds(30), "/cluster listing the three members again");
        await cluster.WaitForReplicationAsync(leader, TimeSpan.FromSeconds(30));
        foreach (var n in cluster.Nodes)
        {
            Assert.True(n.IsRunning, $"{n.Name}'s agent exited");
        }

        var ha = await watch.StopAsync();
        Measurements.Report(output, $"HA while under attack: leader key always {leader.Name} ({ha.Samples} samples, {ha.LeaderChanges} changes); "
                                    + $"lease TTL left at least {ha.MinLeaseTtl} s of 6; dcs_last_seen gap at most {ha.MaxCycleGap.TotalSeconds:0.0} s; "
                                    + $"/health at most {ha.MaxHealthLatency.TotalMilliseconds:0} ms, {ha.HealthFailures} failures");
        Assert.Equal(0, ha.LeaderChanges);
        Assert.True(ha.MinLeaseTtl >= 2, $"the leader's lease fell to {ha.MinLeaseTtl} s: renewals were delayed");
        Assert.True(ha.MaxCycleGap < TimeSpan.FromSeconds(4), $"the leader's HA cycle paused for {ha.MaxCycleGap.TotalSeconds:0.0} s");
        Assert.Equal(0, ha.HealthFailures);

        // Last, a leader key naming a member that does not exist (written without a lease, as by hand). Nobody can prove it
        // false, so the leader steps down as for any other holder (never two primaries) and nobody promotes while it stands;
        // once it is removed the cluster elects a leader again.
        await etcd.PutAsync(prefix + "leader", "fz-unknown");
        await Poll.UntilAsync(async () =>
        {
            foreach (var n in cluster.Nodes)
            {
                if (await n.RestStatusAsync("/primary") == 200)
                {
                    return false;
                }
            }

            return true;
        }, TimeSpan.FromSeconds(30), "no member answering as primary under a leader key naming an unknown member", cluster.DescribeAsync);
        foreach (var n in cluster.Nodes)
        {
            Assert.True(n.IsRunning, $"{n.Name}'s agent exited under a leader key naming an unknown member");
        }

        Assert.Equal("fz-unknown", await cluster.LeaderKeyAsync());
        await etcd.DeleteAsync(prefix + "leader");
        var newLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60));
        await cluster.WaitForReplicationAsync(newLeader, TimeSpan.FromSeconds(60));
        Assert.True(router.IsRunning, "the router exited:\n" + router.Log());
        output.WriteLine($"after the bogus leader key was removed, {newLeader.Name} leads and both others replay its writes");
        foreach (var n in cluster.Nodes)
        {
            // The old leader is rewound from the new one over TLS (the rewind user's settings, via the service file).
            Assert.DoesNotContain("pg_rewind failed", n.Log(), StringComparison.Ordinal);
            if (n.Log().Contains("pg_rewind of", StringComparison.Ordinal))
            {
                output.WriteLine($"{n.Name} was rewound over TLS from {newLeader.Name}");
            }
        }
    }

    private static async Task AssertAnswersQuicklyAsync(TestNode node)
    {
        var clock = Stopwatch.StartNew();
        var status = await node.RestStatusAsync("/health");
        Assert.True(status == 200, $"{node.Name} /health answered {status?.ToString(CultureInfo.InvariantCulture) ?? "nothing"}");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"{node.Name} /health took {clock.Elapsed.TotalMilliseconds:0} ms");
    }

    private static async Task<(string Value, long ModRevision)?> GetAsync(EtcdClient etcd, string key)
    {
        var range = await etcd.GetAsync(key);
        return range.Kvs.Count == 0 ? null : (range.Kvs[0].Value.ToStringUtf8(), range.Kvs[0].ModRevision);
    }

    /// <summary>Watches the leader while the test attacks it: leader key, its lease, the HA cycle (dcs_last_seen), /health.</summary>
    private sealed class HaWatch : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };
        private Task<HaResult>? _loop;
        private readonly ConcurrentDictionary<string, long> _lastSeen = new(StringComparer.Ordinal);

        public static HaWatch Start(TestCluster cluster, TestNode leader, EtcdClient etcd, string prefix)
        {
            var watch = new HaWatch();
            watch._loop = Task.Run(() => watch.RunAsync(cluster, leader, etcd, prefix));
            return watch;
        }

        private async Task<HaResult> RunAsync(TestCluster cluster, TestNode leader, EtcdClient etcd, string prefix)
        {
            var result = new HaResult { MinLeaseTtl = long.MaxValue };
            long? lastSeen = null;
            var lastChange = Stopwatch.GetTimestamp();
            while (!_stop.IsCancellationRequested)
            {
                result.Samples++;
                var range = await etcd.GetAsync(prefix + "leader");
                if (range.Kvs.Count == 0 || range.Kvs[0].Value.ToStringUtf8() != leader.Name)
                {
                    result.LeaderChanges++;
                }
                else
                {
                    var ttl = await etcd.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = range.Kvs[0].Lease });
                    result.MinLeaseTtl = Math.Min(result.MinLeaseTtl, ttl.TTL);
                }

                var clock = Stopwatch.StartNew();
                try
                {
                    using var response = await _http.GetAsync($"http://127.0.0.1:{leader.RestPort}/patroni", _stop.Token);
                    var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(_stop.Token)).RootElement;
                    result.MaxHealthLatency = clock.Elapsed > result.MaxHealthLatency ? clock.Elapsed : result.MaxHealthLatency;
                    var seen = body.GetProperty("dcs_last_seen").GetInt64();
                    if (seen != lastSeen)
                    {
                        var gap = Stopwatch.GetElapsedTime(lastChange);
                        if (lastSeen is not null && gap > result.MaxCycleGap)
                        {
                            result.MaxCycleGap = gap;
                        }

                        lastSeen = seen;
                        lastChange = Stopwatch.GetTimestamp();
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException)
                {
                    if (_stop.IsCancellationRequested)
                    {
                        break;
                    }

                    result.HealthFailures++;
                }

                foreach (var n in cluster.Nodes)
                {
                    try
                    {
                        if (await n.PatroniAsync() is { } s && s.TryGetProperty("dcs_last_seen", out var d))
                        {
                            _lastSeen[n.Name] = d.GetInt64();
                        }
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                    {
                    }
                }

                try
                {
                    await Task.Delay(250, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }

            return result;
        }

        /// <summary>Until every agent has run <paramref name="cycles"/> more HA cycles that read etcd (dcs_last_seen moved on as many seconds).</summary>
        public async Task WaitForCyclesAsync(TestCluster cluster, int cycles)
        {
            var start = cluster.Nodes.ToDictionary(n => n.Name, n => _lastSeen.GetValueOrDefault(n.Name));
            await Poll.UntilAsync(() => Task.FromResult(cluster.Nodes.All(n => _lastSeen.GetValueOrDefault(n.Name) >= start[n.Name] + cycles)),
                TimeSpan.FromSeconds(30), $"every agent running {cycles} HA cycles", cluster.DescribeAsync);
        }

        public async Task<HaResult> StopAsync()
        {
            await _stop.CancelAsync();
            return await _loop!;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_stop.IsCancellationRequested)
            {
                await _stop.CancelAsync();
                try
                {
                    await _loop!;
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                }
            }

            _stop.Dispose();
            _http.Dispose();
        }
    }

    private sealed class HaResult
    {
        public int Samples { get; set; }
        public int LeaderChanges { get; set; }
        public long MinLeaseTtl { get; set; }
        public TimeSpan MaxCycleGap { get; set; }
        public TimeSpan MaxHealthLatency { get; set; }
        public int HealthFailures { get; set; }
    }

    /// <summary>Requests with garbage: random methods and paths, every action endpoint with bodies no parser should choke on.</summary>
    private sealed class RestFuzz(int port, Random random)
    {
        private static readonly string[] Methods = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE", "FUZZ"];

        private static readonly (string Method, string Path)[] Actions =
        [
            ("POST", "/switchover"), ("POST", "/failover"), ("POST", "/restart"), ("POST", "/reinitialize"), ("POST", "/failsafe"),
            ("PATCH", "/config"), ("PUT", "/config"), ("DELETE", "/switchover"), ("DELETE", "/restart"),
        ];

        private static readonly string[] Reads =
        [
            "/", "/primary", "/leader", "/replica", "/read-only", "/sync", "/async", "/health", "/liveness", "/readiness", "/patroni",
            "/cluster", "/history", "/config", "/metrics", "/standby-leader",
        ];

        private static readonly string[] Queries =
        [
            "?lag=", "?lag=abc", "?lag=-1", "?lag=99999999999999999999999", "?lag=1e400", "?lag=16MB&lag=1GB", "?lag=9223372036854775807TB",
            "?nofailover=", "?%zz=1", "?tag=%00", "?" + new string('a', 3000), "?lag=1&x=y&x=z",
        ];

        private static readonly string[] Invalid =
        [
            "{", "}", "[1,2", "{\"a\":}", "nul", "\"open", "{'single': 1}", "{\"a\":1,}", "\u0001\u0002", "{\"a\" 1}", "NaN", "--", "<xml/>",
            "{\"leader\": \"fz\" \"candidate\": 1}", "\ufeff{\"leader\": 1", "{\"leader\": \"\\ud800\"}",
        ];

        private static readonly string[] NonObjects = ["[]", "1", "\"s\"", "null", "true", "[{}]", "-0", "1e400", "[null]"];

        private static readonly string[] WrongTypes =
        [
            "{\"leader\":1}", "{\"leader\":[],\"candidate\":{}}", "{\"candidate\":true}", "{\"member\":1.5}", "{\"master\":null,\"leader\":{}}",
            "{\"scheduled_at\":123}", "{\"leader\":\"fzx\",\"scheduled_at\":\"not a time\"}", "{\"leader\":\"fzx\",\"scheduled_at\":\"2020-01-01T00:00:00\"}",
            "{\"leader\":\"fzx\",\"scheduled_at\":\"9999-12-31T23:59:59+14:00\"}", "{\"leader\":\"fzx\",\"scheduled_at\":\"0001-01-01T00:00:00-14:00\"}",
            "{\"schedule\":{}}", "{\"schedule\":\"9999-99-99\"}", "{\"schedule\":\"0001-01-01T00:00:00-14:00\"}", "{\"role\":5}", "{\"role\":\"fz\"}",
            "{\"postgres_version\":true}", "{\"postgres_version\":\"99999999999999999999\"}", "{\"postgres_version\":\"15.99999999999\"}",
            "{\"restart_pending\":\"x\",\"role\":[]}", "{\"timeout\":\"x\"}", "{\"name\":{}}", "{\"name\":\"fzx\"}", "{\"ttl\":\"abc\"}", "{\"ttl\":-1}",
            "{\"ttl\":1e300}", "{\"ttl\":99999999999}", "{\"loop_wait\":[]}", "{\"retry_timeout\":{}}", "{\"postgresql\":\"x\"}",
            "{\"postgresql\":{\"parameters\":5}}", "{\"postgresql\":{\"parameters\":{\"max_connections\":{}}}}",
            "{\"postgresql\":{\"parameters\":{\"max_connections\":[1]}}}", "{\"synchronous_mode\":\"maybe\"}", "{\"maximum_lag_on_failover\":\"big\"}",
            "{\"maximum_lag_on_failover\":1e400}", "{\"leader\":\"a\",\"leader\":\"b\"}", "{\"ttl\":1,\"ttl\":\"x\"}", "{\"\":null,\"ttl\":{}}",
            "{\"slots\":5}", "{\"ignore_slots\":{}}", "{\"tags\":[]}", "{\"standby_cluster\":1}", "{\"check_timeline\":\"x\"}",
            "{\"failsafe_mode\":\"x\"}", "{\"pause\":\"x\"}", "{\"master_start_timeout\":\"x\"}", "{\"primary_start_timeout\":[]}",
        ];

        private readonly ConcurrentDictionary<int, int> _statuses = new();
        private long _requests;
        private long _transportErrors;
        private long _notableTick;

        public long Requests => Interlocked.Read(ref _requests);
        public long TransportErrors => Interlocked.Read(ref _transportErrors);
        public ConcurrentQueue<string> ServerErrors { get; } = new();
        public ConcurrentQueue<string> OversizedNotRefused { get; } = new();
        public ConcurrentQueue<string> Accepted { get; } = new();
        public ConcurrentQueue<string> Notable { get; } = new();

        public string StatusSummary() => string.Join(", ", _statuses.OrderBy(p => p.Key).Select(p => $"{p.Key}×{p.Value}"));

        public async Task RunAsync(TimeSpan duration)
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
            // One generator for the fixed seed, drawn under a lock: the sequence of cases is the seed's.
            var workers = Enumerable.Range(0, 4).Select(async w =>
            {
                using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromSeconds(5) }) { Timeout = TimeSpan.FromSeconds(10) };
                while (Stopwatch.GetTimestamp() < deadline)
                {
                    Func<Task> next;
                    lock (random)
                    {
                        next = NextCase(http);
                    }

                    await next();
                }
            }).ToList();
            workers.Add(Task.Run(async () =>
            {
                while (Stopwatch.GetTimestamp() < deadline)
                {
                    string raw;
                    lock (random)
                    {
                        raw = NextRaw();
                    }

                    await RawAsync(raw);
                }
            }));
            await Task.WhenAll(workers);
        }

        private string Pick(string[] items) => items[random.Next(items.Length)];

        private string RandomText(int length)
        {
            var chars = new char[length];
            for (var i = 0; i < length; i++)
            {
                chars[i] = (char)random.Next(1, 0x2FF);
            }

            return new string(chars);
        }

        private Func<Task> NextCase(HttpClient http)
        {
            var roll = random.Next(100);
            if (roll < 55)
            {
                var (method, path) = Actions[random.Next(Actions.Length)];
                var (body, oversized) = Body(method, path);
                return () => SendAsync(http, method, path, body, oversized);
            }

            if (roll < 75)
            {
                var path = Pick(Reads) + (random.Next(2) == 0 ? Pick(Queries) : "");
                var method = Pick(Methods);
                if (method is "POST" or "PUT" or "PATCH" or "DELETE")
                {
                    method = "GET"; // on a read path; the actions are fuzzed above with their guards
                }

                return () => SendAsync(http, method, path, random.Next(3) == 0 ? Pick(Invalid) : null, oversized: false);
            }

            var randomPath = "/" + string.Join('/', Enumerable.Range(0, random.Next(1, 5)).Select(_ => random.Next(6) switch
            {
                0 => "..",
                1 => "%00",
                2 => "%zz",
                3 => new string('x', random.Next(1, 2000)),
                4 => Uri.EscapeDataString(RandomText(random.Next(1, 30))),
                _ => Pick(Reads).TrimStart('/'),
            }));
            var randomMethod = Pick(Methods);
            if (randomMethod is "POST" or "PUT" or "PATCH" or "DELETE" && Actions.Any(a => a.Path == randomPath))
            {
                randomMethod = "GET";
            }

            var garbage = random.Next(2) == 0 ? RandomText(random.Next(0, 5000)) : null;
            return () => SendAsync(http, randomMethod, randomPath, garbage, oversized: false);
        }

        /// <summary>
        /// A body for an action that cannot succeed: never an empty or "{}" body for /restart (it would restart PostgreSQL) or
        /// a JSON object for /reinitialize or PUT /config (they would act on it).
        /// </summary>
        private (string? Body, bool Oversized) Body(string method, string path)
        {
            var acts = path is "/reinitialize" || (method == "PUT" && path == "/config");
            var kind = random.Next(acts ? 4 : 7);
            return kind switch
            {
                0 => (Pick(Invalid), false),
                1 => (Pick(NonObjects), false),
                2 => (new string('[', 5000 + random.Next(5000)) + new string(']', 5000), false),
                3 => ("{\"leader\": \"" + new string('a', 100_000 + random.Next(900_000)) + "\"}", method != "DELETE"),
                4 => (Pick(WrongTypes), false),
                5 => (string.Concat(Enumerable.Repeat("{\"a\":", 70 + random.Next(2000))) + "1" + new string('}', 2070), false), // deeper than 64
                _ => (method == "DELETE" || path != "/restart" ? null : Pick(WrongTypes), false),
            };
        }

        private async Task SendAsync(HttpClient http, string method, string path, string? body, bool oversized)
        {
            Interlocked.Increment(ref _requests);
            try
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), $"http://127.0.0.1:{port}{path}");
                if (body is not null)
                {
                    request.Content = new StringContent(body, Encoding.UTF8, "application/json");
                }

                using var response = await http.SendAsync(request);
                var status = (int)response.StatusCode;
                _statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
                var what = $"{method} {Shorten(path)} body {Shorten(body)}";
                if (status == 500)
                {
                    ServerErrors.Enqueue($"{what} → 500 {Shorten(await response.Content.ReadAsStringAsync())}");
                }

                if (status is >= 200 and < 300 && method is "PUT" or "PATCH" or "POST")
                {
                    Accepted.Enqueue($"{method} {path} body {Shorten(body)} → {status}");
                }

                if (oversized && status != 413)
                {
                    OversizedNotRefused.Enqueue($"{method} {path} with a {body!.Length}-byte body → {status}");
                }

                if (status is not (200 or 404 or 405 or 503) && Interlocked.Increment(ref _notableTick) % 50 == 0 && Notable.Count < 200)
                {
                    Notable.Enqueue($"{what} → {status} {Shorten(await response.Content.ReadAsStringAsync())}");
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                // The server may close the connection on a request it refuses (an oversized body is cut off).
                Interlocked.Increment(ref _transportErrors);
            }
        }

        private string NextRaw() => random.Next(10) switch
        {
            0 => "GARBAGE\r\n\r\n",
            1 => "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            2 => "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + new string('h', 40_000) + "\r\n\r\n",
            3 => "GET /" + new string('a', 20_000) + " HTTP/1.1\r\nHost: x\r\n\r\n",
            4 => "POST /switchover HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            5 => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + RandomText(50),
            6 => "GET /health HTTP/1.1\r\n" + string.Concat(Enumerable.Range(0, 200).Select(i => $"X-H{i}: v\r\n")) + "\r\n",
            7 => "POST /failover HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{}{}{}{",
            8 => "GET /health HTTP/9.9\r\n\r\n",
            _ => RandomText(random.Next(1, 3000)) + "\r\n\r\n",
        };

        private async Task RawAsync(string request)
        {
            Interlocked.Increment(ref _requests);
            try
            {
                using var client = new TcpClient();
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await client.ConnectAsync("127.0.0.1", port, cts.Token);
                var stream = client.GetStream();
                await stream.WriteAsync(Encoding.UTF8.GetBytes(request), cts.Token);
                var buffer = new byte[512];
                var read = await stream.ReadAsync(buffer, cts.Token);
                var line = Encoding.ASCII.GetString(buffer, 0, read).Split('\n')[0];
                var parts = line.Split(' ');
                if (parts.Length > 1 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var status))
                {
                    _statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
                    if (status == 500)
                    {
                        ServerErrors.Enqueue($"raw {Shorten(request)} → {line}");
                    }
                }
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
            {
                Interlocked.Increment(ref _transportErrors);
            }
        }

        private static string Shorten(string? text) => text is null ? "(none)" : text.Length <= 80 ? text : $"{text[..80]}… ({text.Length} chars)";
    }

    /// <summary>Slowloris: clients that dribble their headers, or their body, a byte at a time and never finish.</summary>
    private sealed class SlowClients
    {
        private readonly List<Task<TimeSpan?>> _clients = [];
        private readonly CancellationTokenSource _stop = new();

        public static SlowClients Start(int port, int headerClients, int bodyClients)
        {
            var slow = new SlowClients();
            for (var i = 0; i < headerClients + bodyClients; i++)
            {
                var head = i < headerClients
                    ? "GET /health HTTP/1.1\r\nHost: x\r\n"
                    : "POST /switchover HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"leader\": \"";
                slow._clients.Add(Task.Run(() => slow.DribbleAsync(port, head, i < headerClients ? "X-a: b\r\n" : "a")));
            }

            return slow;
        }

        /// <summary>How long the server took to drop this client; null: it did not within the limit.</summary>
        private async Task<TimeSpan?> DribbleAsync(int port, string head, string unit)
        {
            var clock = Stopwatch.StartNew();
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", port);
            var stream = client.GetStream();
            var reading = stream.ReadAsync(new byte[4096]).AsTask();
            try
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), _stop.Token);
                while (!_stop.IsCancellationRequested)
                {
                    var done = await Task.WhenAny(reading, Task.Delay(500, _stop.Token));
                    if (done == reading)
                    {
                        return clock.Elapsed; // answered (408/413/400) or closed by the server
                    }

                    await stream.WriteAsync(Encoding.ASCII.GetBytes(unit), _stop.Token);
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                return _stop.IsCancellationRequested ? null : clock.Elapsed;
            }

            return null;
        }

        public async Task<(int Total, int Closed, TimeSpan LastClose)> WaitAsync(TimeSpan limit)
        {
            var all = Task.WhenAll(_clients);
            await Task.WhenAny(all, Task.Delay(limit));
            await _stop.CancelAsync();
            var results = await all;
            var closed = results.Where(r => r is not null).Select(r => r!.Value).ToList();
            return (results.Length, closed.Count, closed.Count == 0 ? TimeSpan.Zero : closed.Max());
        }
    }

    /// <summary>A CA, a server certificate for 127.0.0.1 and a client certificate for the replication user (key encrypted).</summary>
    private static class PgTls
    {
        public const string KeyPassword = "client-key-secret-7f3a";

        public static ClusterSsl Create(TempDir dir)
        {
            using var caKey = System.Security.Cryptography.RSA.Create(2048);
            var caRequest = new System.Security.Cryptography.X509Certificates.CertificateRequest(
                "CN=steward-test-ca", caKey, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
            caRequest.CertificateExtensions.Add(new System.Security.Cryptography.X509Certificates.X509BasicConstraintsExtension(true, false, 0, true));
            caRequest.CertificateExtensions.Add(new System.Security.Cryptography.X509Certificates.X509KeyUsageExtension(
                System.Security.Cryptography.X509Certificates.X509KeyUsageFlags.KeyCertSign | System.Security.Cryptography.X509Certificates.X509KeyUsageFlags.CrlSign, true));
            using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
            File.WriteAllText(dir.Sub("ca.crt"), ca.ExportCertificatePem());

            Issue(dir, ca, "server", "CN=127.0.0.1", server: true, password: null);
            Issue(dir, ca, "replicator", "CN=replicator", server: false, password: KeyPassword);
            foreach (var file in Directory.GetFiles(dir.Path))
            {
                File.SetUnixFileMode(file, file.EndsWith(".key", StringComparison.Ordinal) ? (UnixFileMode)0b110_000_000 : (UnixFileMode)0b110_100_100);
                Chown.Postgres(file);
            }

            var ca_ = dir.Sub("ca.crt");
            return new ClusterSsl(
                Superuser: $", sslmode: require, sslrootcert: {ca_}",
                Replication: $", sslmode: verify-full, sslrootcert: {ca_}, sslcert: {dir.Sub("replicator.crt")}, sslkey: {dir.Sub("replicator.key")}, sslpassword: {KeyPassword}",
                Rewind: $", sslmode: verify-ca, sslrootcert: {ca_}",
                Parameters: $"\n    ssl: 'on'\n    ssl_cert_file: {dir.Sub("server.crt")}\n    ssl_key_file: {dir.Sub("server.key")}\n    ssl_ca_file: {ca_}",
                PgHba:
                [
                    "local all all trust",
                    "hostssl replication replicator 127.0.0.1/32 scram-sha-256 clientcert=verify-full",
                    "hostnossl replication all 0.0.0.0/0 reject",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ]);
        }

        private static void Issue(TempDir dir, System.Security.Cryptography.X509Certificates.X509Certificate2 ca, string name, string subject, bool server, string? password)
        {
            using var key = System.Security.Cryptography.RSA.Create(2048);
            var request = new System.Security.Cryptography.X509Certificates.CertificateRequest(
                subject, key, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
            if (server)
            {
                var san = new System.Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder();
                san.AddIpAddress(System.Net.IPAddress.Loopback);
                san.AddDnsName("localhost");
                request.CertificateExtensions.Add(san.Build());
            }

            request.CertificateExtensions.Add(new System.Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension(
                [new System.Security.Cryptography.Oid(server ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
            var serial = new byte[8];
            System.Security.Cryptography.RandomNumberGenerator.Fill(serial);
            serial[0] &= 0x7F;
            using var cert = request.Create(ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(29), serial);
            File.WriteAllText(dir.Sub(name + ".crt"), cert.ExportCertificatePem());
            File.WriteAllText(dir.Sub(name + ".key"), password is null
                ? key.ExportPkcs8PrivateKeyPem()
                : key.ExportEncryptedPkcs8PrivateKeyPem(password, new System.Security.Cryptography.PbeParameters(
                    System.Security.Cryptography.PbeEncryptionAlgorithm.Aes256Cbc, System.Security.Cryptography.HashAlgorithmName.SHA256, 10_000)));
        }
    }
}
