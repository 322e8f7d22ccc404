using System.Text.RegularExpressions;
using System.Diagnostics;
using Steward.IntegrationTests.Infrastructure;
using Steward.IntegrationTests.Cli;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>Issue 14: what a Patroni user's scripts, load balancers and configs rely on, on a real cluster.</summary>
[Collection(ClusterCollectionB.Name)]
public sealed class PatroniCompatibilityTests(ITestOutputHelper output)
{
    private static readonly string[] ReplicaChecks = ["/replica", "/health", "/read-only", "/readiness", "/async", "/replica?lag=1MB"];

    /// <summary>
    /// Story (issue 14, item 4): right after <c>pg_ctl stop -m immediate</c> on a replica in pause mode, <c>/replica</c>
    /// still answered 200 <c>running/streaming</c> from the last cycle's snapshot, so a load balancer kept sending reads
    /// to a server that was gone. Health answers must reflect PostgreSQL now (DESIGN safety rule 8), as Patroni's do.
    /// </summary>
    [Fact]
    public async Task Health_endpoints_answer_503_at_once_when_a_paused_replicas_postgres_is_stopped()
    {
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, nodes: 2);
        await using var _ = cluster;
        var replica = cluster.Nodes.Single(n => n != leader);
        foreach (var path in ReplicaChecks)
        {
            Assert.Equal(200, await replica.RestStatusAsync(path));
        }

        var (code, text) = await CliRun.RunAsync(cluster, output, "pause", "--wait");
        Assert.True(code == 0, text);
        await Poll.UntilAsync(async () => (await replica.PatroniAsync())?.TryGetProperty("pause", out var p) == true && p.GetBoolean(),
            TimeSpan.FromSeconds(30), "the replica sees pause");

        // Paused: what Patroni refuses, in its words (api.py, ctl.py).
        var inAnHour = DateTimeOffset.UtcNow.AddHours(1);
        Assert.Equal((400, "Can't schedule switchover in the paused state"),
            await PostAsync(leader, "/switchover", $$"""{"leader": "{{leader.Name}}", "candidate": "{{replica.Name}}", "scheduled_at": "{{inAnHour:O}}"}"""));
        Assert.Equal((400, "Switchover is possible only to a specific candidate in a paused state"),
            await PostAsync(leader, "/switchover", $$"""{"leader": "{{leader.Name}}"}"""));
        Assert.Equal((500, "Can't schedule restart in the paused state"), await PostAsync(replica, "/restart", $$"""{"schedule": "{{inAnHour:O}}"}"""));
        var at = inAnHour.ToString("yyyy-MM-dd'T'HH:mm:sszzz", System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (verb, args, message) in new (string, string[], string)[]
                 {
                     ("switchover", ["--candidate", replica.Name, "--scheduled", at, "--force"], "Can't schedule switchover in the paused state"),
                     ("restart", [replica.Name, "--scheduled", at, "--force"], "Can't schedule restart in the paused state"),
                     ("pause", [], "Cluster is already paused"),
                 })
        {
            var (exit, said) = await CliRun.RunAsync(cluster, output, verb, args);
            Assert.Equal(1, exit);
            Assert.Contains(message, said, StringComparison.Ordinal);
        }

        await PgCtlStopImmediateAsync(replica.DataDir);
        var clock = Stopwatch.StartNew();
        foreach (var path in ReplicaChecks)
        {
            Assert.Equal(503, await replica.RestStatusAsync(path));
        }

        var elapsed = clock.Elapsed;
        var status = (await replica.PatroniAsync())!.Value;
        Assert.NotEqual("running", status.GetProperty("state").GetString());
        Assert.False(status.TryGetProperty("replication_state", out var _), "no longer streaming");
        output.WriteLine($"{ReplicaChecks.Length} health checks answered 503 within {elapsed.TotalMilliseconds:0} ms of pg_ctl stop; /patroni state {status.GetProperty("state")}");
        Assert.Equal(200, await leader.RestStatusAsync("/leader"));

        // Paused: the agent does not start it again, and the answers stay 503 after its next cycles too.
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Null(replica.PostmasterPid());
        Assert.Equal(503, await replica.RestStatusAsync("/replica"));
    }

    /// <summary>
    /// Story (issue 14, item 6): <c>bootstrap.method</c> was ignored and initdb ran, so a user who asked to restore a backup
    /// silently got an empty cluster. Now Patroni's custom bootstrap runs: the method's command (as postgres, with
    /// <c>--scope</c>, <c>--datadir</c> and the section's other keys as <c>--key=value</c>) restores a pg_basebackup taken
    /// from another cluster; recovery_conf makes it an archive recovery that ends in a promotion; the restored cluster
    /// keeps its data and system identifier, gets this config's passwords and roles, and a second member clones from it.
    /// </summary>
    [Fact]
    public async Task A_custom_bootstrap_restores_a_base_backup_of_another_cluster()
    {
        await using var source = new Steward.IntegrationTests.Postgres.PgTestCluster("custom-bootstrap-source");
        var old = source.Node("old");
        await old.BootstrapAsync();
        await old.ExecuteAsync("CREATE TABLE restored(v text); INSERT INTO restored VALUES ('from the other cluster')");
        var systemId = (await old.InspectAsync()).SystemId;
        var backup = source.Node("backup"); // its data directory receives the pg_basebackup; it is never started
        await backup.Control.CloneAsync(old.Address, CancellationToken.None);
        await old.Control.StopAsync(Steward.Core.Postgres.StopMode.Fast, CancellationToken.None);

        await using var cluster = await TestCluster.StartAsync(3, output, new ClusterOptions { StartAll = false });
        var (first, second, third) = (cluster.Nodes[0], cluster.Nodes[1], cluster.Nodes[2]);
        var script = Path.Combine(first.Dir, "restore.sh");
        await File.WriteAllTextAsync(script, """
            #!/bin/sh
            set -e
            for a in "$@"; do
              case "$a" in
                --datadir=*) datadir="${a#--datadir=}" ;;
                --backup=*) backup="${a#--backup=}" ;;
              esac
            done
            echo "$@" > "$(dirname "$datadir")/restore-args"
            cp -a "$backup/." "$datadir/"
            """);
        File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
        var yaml = await File.ReadAllTextAsync(first.ConfigPath);
        const string initdb = "  initdb:\n    - encoding: UTF8\n    - locale: C\n";
        Assert.Contains(initdb, yaml, StringComparison.Ordinal);
        await File.WriteAllTextAsync(first.ConfigPath, yaml.Replace(initdb, $$"""
              method: from_backup
              from_backup:
                command: {{script}}
                backup: {{backup.DataDir}}
                recovery_conf:
                  restore_command: 'false'
                  recovery_target_action: promote

            """, StringComparison.Ordinal));

        first.Start();
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(120));
        Assert.Equal(first.Name, leader.Name);
        Assert.Equal("from the other cluster", await first.QueryAsync<string>("SELECT v FROM restored"));
        var status = (await first.PatroniAsync())!.Value;
        Assert.Equal(systemId, status.GetProperty("database_system_identifier").GetString());
        Assert.Equal(2, status.GetProperty("timeline").GetInt64()); // the archive recovery ended in a promotion
        Assert.Equal("on", await first.QueryAsync<string>("SHOW hot_standby"));
        Assert.Equal($"--scope={cluster.Scope} --datadir={first.DataDir} --backup={backup.DataDir}",
            (await File.ReadAllTextAsync(Path.Combine(first.Dir, "restore-args"))).Trim());
        Assert.DoesNotContain("custom bootstrap in progress", await File.ReadAllTextAsync(Path.Combine(first.DataDir, "pg_hba.conf")), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(first.DataDir, "recovery.signal")));
        Assert.Contains("running custom bootstrap 'from_backup'", first.Log(), StringComparison.Ordinal);

        // create_replica_methods (issue 14, item 6), tried in order as Patroni tries them: a method that fails is
        // followed by the next; node2's own script clones with the --connstring it is given, node3 falls back to the
        // built-in pg_basebackup with postgresql.basebackup's options.
        var clone = Path.Combine(second.Dir, "clone.sh");
        await File.WriteAllTextAsync(clone, """
            #!/bin/sh
            set -e
            for a in "$@"; do
              case "$a" in
                --datadir=*) datadir="${a#--datadir=}" ;;
                --connstring=*) connstring="${a#--connstring=}" ;;
              esac
            done
            echo "$@" > "$(dirname "$datadir")/clone-args"
            exec /usr/lib/postgresql/15/bin/pg_basebackup -D "$datadir" -d "$connstring" -X stream -c fast --no-password
            """);
        File.SetUnixFileMode(clone, (UnixFileMode)0b111_101_101);
        await AddToPostgresqlSectionAsync(second, $"""
              create_replica_methods: [broken, script, basebackup]
              broken:
                command: /bin/false
              script:
                command: {clone}
                label: nightly
            """);
        await AddToPostgresqlSectionAsync(third, """
              create_replica_methods: [broken, basebackup]
              broken:
                command: /bin/false
              basebackup:
                - max-rate: 100M
            """);
        second.Start();
        third.Start();
        foreach (var replica in new[] { second, third })
        {
            await cluster.WaitForStreamingAsync(replica, TimeSpan.FromSeconds(120));
            await Poll.UntilAsync(async () => await replica.QueryAsync<string>("SELECT v FROM restored") == "from the other cluster",
                TimeSpan.FromSeconds(30), $"the restored row on {replica.Name}");
            Assert.Contains("create_replica_methods 'broken' failed, trying the next one", replica.Log(), StringComparison.Ordinal);
        }

        Assert.Equal($"--scope={cluster.Scope} --role=replica --datadir={second.DataDir} --connstring=postgresql://replicator@127.0.0.1:{first.PgPort}/postgres --label=nightly",
            (await File.ReadAllTextAsync(Path.Combine(second.Dir, "clone-args"))).Trim());
        Assert.Contains($"from 127.0.0.1:{first.PgPort} (script)", second.Log(), StringComparison.Ordinal);
        Assert.Contains($"from 127.0.0.1:{first.PgPort} (basebackup)", third.Log(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Issue 14, item 7: Patroni's callbacks run as <c>command action role scope</c> (on_start, on_stop, on_role_change on
    /// promote and demote), and a pre_promote script that exits 1 prevents the promotion: the member gives the leader
    /// key back and stays a replica, until the script lets it promote.
    /// </summary>
    [Fact]
    public async Task Callbacks_follow_promote_and_demote_and_a_failing_pre_promote_prevents_the_promotion()
    {
        await using var cluster = await TestCluster.StartAsync(2, output, new ClusterOptions { StartAll = false });
        var (first, second) = (cluster.Nodes[0], cluster.Nodes[1]);
        var forbid = Path.Combine(cluster.Dir.Path, "forbid-promote");
        foreach (var node in cluster.Nodes)
        {
            var callback = Path.Combine(node.Dir, "callback.sh");
            await File.WriteAllTextAsync(callback, $"#!/bin/sh\necho \"$@\" >> {node.Dir}/callbacks.log\n");
            File.SetUnixFileMode(callback, (UnixFileMode)0b111_101_101);
            var prePromote = Path.Combine(node.Dir, "pre-promote.sh");
            await File.WriteAllTextAsync(prePromote, $"#!/bin/sh\nif [ -e {forbid} ]; then echo 'fencing failed'; exit 1; fi\n");
            File.SetUnixFileMode(prePromote, (UnixFileMode)0b111_101_101);
            await AddToPostgresqlSectionAsync(node, $"""
                  callbacks:
                    on_start: {callback}
                    on_stop: {callback}
                    on_restart: {callback}
                    on_role_change: {callback}
                  pre_promote: {prePromote}
                """);
        }

        string Callbacks(TestNode node) => File.Exists(Path.Combine(node.Dir, "callbacks.log")) ? File.ReadAllText(Path.Combine(node.Dir, "callbacks.log")) : "";
        Task Called(TestNode node, string line) => Poll.UntilAsync(() => Task.FromResult(Callbacks(node).Contains(line + "\n", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(30), $"{node.Name}'s callback: {line} (so far: {Callbacks(node).Replace("\n", "; ", StringComparison.Ordinal)})");

        first.Start();
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(120));
        second.Start();
        await cluster.WaitForStreamingAsync(second, TimeSpan.FromSeconds(120));
        await Called(first, $"on_start primary {cluster.Scope}");
        await Called(second, $"on_start replica {cluster.Scope}");

        // A switchover demotes node1 and promotes node2 (pre_promote exits 0).
        await SwitchoverAsync(first, second);
        await Called(first, $"on_role_change replica {cluster.Scope}");
        await Called(second, $"on_role_change primary {cluster.Scope}");
        await cluster.WaitForStreamingAsync(first, TimeSpan.FromSeconds(60));

        // pre_promote exits 1: the leader's crash is not followed by a promotion while it does.
        await File.WriteAllTextAsync(forbid, "");
        await second.CrashAsync();
        await Poll.UntilAsync(() => Task.FromResult(first.Log().Split("the pre_promote script failed; the leader key is released").Length > 2),
            TimeSpan.FromSeconds(60), "two promotions aborted by pre_promote");
        Assert.Contains("exited with 1: fencing failed", first.Log(), StringComparison.Ordinal);
        Assert.True(await first.QueryAsync<bool>("SELECT pg_is_in_recovery()"), "promoted although pre_promote exited 1");
        Assert.NotEqual(200, await first.RestStatusAsync("/leader"));
        Assert.Single(Callbacks(first).Split('\n'), l => l.StartsWith("on_role_change primary", StringComparison.Ordinal) || l.StartsWith("on_role_change replica", StringComparison.Ordinal));

        File.Delete(forbid);
        await Poll.UntilAsync(async () => await first.RestStatusAsync("/leader") == 200, TimeSpan.FromSeconds(30), "node1 promotes once pre_promote lets it");
        await Called(first, $"on_role_change primary {cluster.Scope}");
        output.WriteLine($"node1: {Callbacks(first)}\nnode2: {Callbacks(second)}");
    }

    /// <summary>
    /// Issue 14: Patroni's <c>bootstrap.post_bootstrap</c> (run once with the superuser's conninfo; what it creates reaches
    /// the replicas), <c>before_stop</c> (run before the planned stop of a switchover), <c>pg_ident</c> (written),
    /// <c>custom_conf</c> (included in place of postgresql.base.conf), <c>use_unix_socket</c> (every connection of the
    /// agent arrives on the socket) and <c>remove_data_directory_on_diverged_timelines</c> (without pg_rewind, a crashed
    /// former leader is cloned again and its old data directory is removed, not kept aside).
    /// </summary>
    [Fact]
    public async Task Post_bootstrap_before_stop_pg_ident_custom_conf_unix_socket_and_data_directory_removal_act_as_patronis()
    {
        await using var cluster = await TestCluster.StartAsync(2, output, new ClusterOptions { StartAll = false });
        var (first, second) = (cluster.Nodes[0], cluster.Nodes[1]);
        foreach (var node in cluster.Nodes)
        {
            var hooks = Path.Combine(node.Dir, "hooks.log");
            var postBootstrap = Path.Combine(node.Dir, "post-bootstrap.sh");
            await File.WriteAllTextAsync(postBootstrap, $"""
                #!/bin/sh
                echo "post_bootstrap $*" >> {hooks}
                exec /usr/lib/postgresql/15/bin/psql "$1" -v ON_ERROR_STOP=1 -c 'CREATE TABLE made_by_post_bootstrap (id int)'

                """);
            var beforeStop = Path.Combine(node.Dir, "before-stop.sh");
            await File.WriteAllTextAsync(beforeStop, $"#!/bin/sh\necho before_stop >> {hooks}\n");
            foreach (var script in new[] { postBootstrap, beforeStop })
            {
                File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
            }

            var custom = Path.Combine(node.Dir, "custom.conf");
            await File.WriteAllTextAsync(custom, "work_mem = '7MB'\nlog_connections = on\nlog_line_prefix = '%p '\n");
            var text = await File.ReadAllTextAsync(node.ConfigPath);
            Assert.Contains("\n  initdb:\n", text, StringComparison.Ordinal);
            await File.WriteAllTextAsync(node.ConfigPath, text.Replace("\n  initdb:\n", $"\n  post_bootstrap: {postBootstrap}\n  initdb:\n", StringComparison.Ordinal));
            await AddToPostgresqlSectionAsync(node, $"""
                  before_stop: {beforeStop}
                  pg_ident:
                    - steward_map root {TestCluster.Superuser}
                  custom_conf: {custom}
                  use_unix_socket: true
                  remove_data_directory_on_diverged_timelines: true
                """);
        }

        string Hooks(TestNode node) => File.Exists(Path.Combine(node.Dir, "hooks.log")) ? File.ReadAllText(Path.Combine(node.Dir, "hooks.log")) : "";

        first.Start();
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(120));
        second.Start();
        await cluster.WaitForStreamingAsync(second, TimeSpan.FromSeconds(120));

        // post_bootstrap ran once, on the member that bootstrapped, with the superuser's conninfo over the socket; its table
        // reached the replica.
        Assert.Equal($"post_bootstrap dbname='postgres' user='{TestCluster.Superuser}' host='{first.Dir}' port='{first.PgPort}' sslmode='prefer'\n", Hooks(first));
        Assert.Equal("", Hooks(second));
        await Poll.UntilAsync(async () => await second.QueryAsync<string>("SELECT to_regclass('made_by_post_bootstrap')::text") is not null,
            TimeSpan.FromSeconds(30), "the post_bootstrap table on the replica");

        // pg_ident.conf written; custom_conf included (its work_mem), still before Steward's own settings.
        foreach (var node in cluster.Nodes)
        {
            Assert.Contains($"steward_map root {TestCluster.Superuser}\n", await File.ReadAllTextAsync(Path.Combine(node.DataDir, "pg_ident.conf")), StringComparison.Ordinal);
            Assert.Equal("7MB", await node.QueryAsync<string>("SHOW work_mem"));
            Assert.Contains($"include '{Path.Combine(node.Dir, "custom.conf")}'", await File.ReadAllTextAsync(Path.Combine(node.DataDir, "postgresql.conf")), StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(node.DataDir, "postgresql.base.conf")), $"{node.Name}: postgresql.base.conf written although custom_conf replaces it");
        }

        // use_unix_socket: every connection the agent made (application_name steward, log_connections on) came in on the
        // socket ("host=[local]"), none over TCP.
        var serverLog = await ReadSharedAsync(Path.Combine(first.DataDir, "log", "postgresql.log"));
        var agentPids = Regex.Matches(serverLog, @"^(\d+) LOG:  connection authorized: .*application_name=steward", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.True(agentPids.Count > 3, $"too few connections of the agent in the server log ({agentPids.Count})");
        var received = Regex.Matches(serverLog, @"^(\d+) LOG:  connection received: host=(\S+)", RegexOptions.Multiline)
            .Where(m => agentPids.Contains(m.Groups[1].Value)).Select(m => m.Groups[2].Value).Distinct().ToList();
        Assert.Equal(["[local]"], received);

        // before_stop runs before the planned (fast) stop of a switchover.
        await SwitchoverAsync(first, second);
        await Poll.UntilAsync(() => Task.FromResult(Hooks(first).Contains("before_stop\n", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), "node1's before_stop");
        await cluster.WaitForStreamingAsync(first, TimeSpan.FromSeconds(60));
        Assert.Contains("before_stop script", first.Log(), StringComparison.Ordinal);

        // Without pg_rewind a crashed leader that comes back must be cloned again: its old data directory is removed.
        var (code, patched) = await SendAsync(second, HttpMethod.Patch, "/config", """{"postgresql": {"use_pg_rewind": false}}""");
        Assert.True(code == 200, patched);
        await second.ExecuteAsync("CREATE TABLE written_by_node2 (id int); INSERT INTO written_by_node2 VALUES (1)");
        await cluster.WaitForReplicationAsync(second, TimeSpan.FromSeconds(30));
        await second.CrashAsync();
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: second);
        second.Start();
        await cluster.WaitForStreamingAsync(second, TimeSpan.FromSeconds(120));
        Assert.Contains("removed the old data directory", second.Log(), StringComparison.Ordinal);
        Assert.Empty(Directory.GetDirectories(second.Dir, "data.diverged-*"));
        Assert.Equal(1, await second.QueryAsync<int>("SELECT count(*)::int FROM written_by_node2"));
        output.WriteLine($"node1 hooks: {Hooks(first)}node2 hooks: {Hooks(second)}");
    }

    /// <summary>
    /// A switchover from <paramref name="from"/> to <paramref name="to"/>. The candidate's member key says "running" a
    /// moment after it streams: until then the switchover is refused (412) and asked again.
    /// </summary>
    private static async Task SwitchoverAsync(TestNode from, TestNode to)
    {
        var (status, text) = (0, "");
        await Poll.UntilAsync(async () =>
        {
            (status, text) = await PostAsync(from, "/switchover", $$"""{"leader": "{{from.Name}}", "candidate": "{{to.Name}}"}""");
            return status != 412;
        }, TimeSpan.FromSeconds(30), "the switchover is accepted");
        Assert.True(status == 200, text);
    }

    private static async Task<string> ReadSharedAsync(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync();
    }

    private static async Task<(int Status, string Text)> SendAsync(TestNode node, HttpMethod method, string path, string body)
    {
        using var request = new HttpRequestMessage(method, new Uri($"http://127.0.0.1:{node.RestPort}{path}"))
        {
            Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json"),
        };
        using var response = await Http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>Appends <paramref name="yaml"/> (two-space indented) to the postgresql section of the node's file, before its authentication.</summary>
    private static async Task AddToPostgresqlSectionAsync(TestNode node, string yaml)
    {
        var text = await File.ReadAllTextAsync(node.ConfigPath);
        const string marker = "  authentication:\n";
        Assert.Contains(marker, text, StringComparison.Ordinal);
        await File.WriteAllTextAsync(node.ConfigPath, text.Replace(marker, yaml.TrimEnd('\n') + "\n" + marker, StringComparison.Ordinal));
    }

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(60) };

    private static async Task<(int Status, string Text)> PostAsync(TestNode node, string path, string body)
    {
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        using var response = await Http.PostAsync(new Uri($"http://127.0.0.1:{node.RestPort}{path}"), content);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>pg_ctl stop -m immediate as the postgres OS user, as an operator would run it.</summary>
    private static async Task PgCtlStopImmediateAsync(string dataDir)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--reuid=postgres", "--regid=postgres", "--init-groups", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "stop", "-m", "immediate", "-D", dataDir })
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"pg_ctl stop -m immediate failed: {await err}");
    }
}
