using Steward.Core.Cluster;
using Steward.Core.Postgres;
using Steward.Postgres;

namespace Steward.IntegrationTests.Postgres;

public sealed class PostgresControlTests
{
    private static readonly CancellationToken None = CancellationToken.None;

    [Fact]
    public async Task Bootstrapped_primary_runs_on_timeline_1_with_its_roles_and_files_owned_by_the_os_user()
    {
        await using var cluster = new PgTestCluster("boot");
        var node = cluster.Node("node1");

        Assert.Equal(DataDirStatus.Empty, (await node.InspectAsync()).DataDir);
        await node.Control.ValidateDataDirAsync(None);
        await node.BootstrapAsync();

        var state = await node.InspectAsync();
        Assert.Equal(DataDirStatus.Initialized, state.DataDir);
        Assert.Matches("^[0-9]{19}$", state.SystemId);
        Assert.True(state.Running);
        Assert.True(state.Accepting);
        Assert.False(state.InRecovery);
        Assert.Equal(1, state.Timeline);
        Assert.False(state.StandbySignal);
        Assert.InRange(state.ServerVersion ?? 0, 150000, 159999);
        Assert.True(state.WriteLsn > 0);
        Assert.Equal(state.WriteLsn, state.Lsn);
        Assert.False(state.PendingRestart);

        Assert.Equal(["replicator:true", "rewind_user:false"],
            await node.ColumnAsync("SELECT rolname || ':' || rolreplication FROM pg_roles WHERE rolname IN ('replicator', 'rewind_user') ORDER BY 1"));
        Assert.Equal(["true"], await node.ColumnAsync("SELECT has_function_privilege('rewind_user', 'pg_read_binary_file(text, bigint, bigint, boolean)', 'execute')::text"));

        var pgUid = Native.LookupUser("postgres")!.Value.Uid;
        foreach (var file in new[] { "", "postgresql.conf", "postgresql.base.conf", "pg_hba.conf", "log" })
        {
            Assert.Equal(pgUid, Native.Owner(Path.Combine(node.DataDir, file))!.Value.Uid);
        }
        Assert.Equal(pgUid, Native.Owner(node.Config.Postgresql.Pgpass)!.Value.Uid);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(node.Config.Postgresql.Pgpass));
        Assert.StartsWith("include 'postgresql.base.conf'", File.ReadAllLines(Path.Combine(node.DataDir, "postgresql.conf"))[1], StringComparison.Ordinal);

        await node.Control.StopAsync(StopMode.Fast, None);
        var stopped = await node.InspectAsync();
        Assert.False(stopped.Running);
        Assert.False(stopped.Accepting);
        Assert.Null(stopped.InRecovery);
        Assert.Equal("shut down", stopped.ControlState);
        Assert.Equal(state.SystemId, stopped.SystemId);
        Assert.Equal(1, stopped.ControlTimeline);
        await node.Control.StopAsync(StopMode.Fast, None);
    }

    /// <summary>
    /// Story (issue 14, item 2): a Patroni config written for PostgreSQL 12 (wal_keep_segments: 100) reached PostgreSQL
    /// 15, which refused to start, and the agent looped through initdb. Now the parameters are adapted to what the
    /// server's own binary knows: converted as Patroni converts them, unknown ones left out with a warning, an
    /// extension's dotted parameter and a developer option that --describe-config hides (zero_damaged_pages) kept.
    /// </summary>
    [Fact]
    public async Task Parameters_are_adapted_to_the_server_wal_keep_segments_becomes_wal_keep_size_and_unknown_ones_are_left_out()
    {
        var warnings = new List<string>();
        var loggers = new Steward.Testing.CapturingLoggerFactory((level, _, text) =>
        {
            if (level >= Microsoft.Extensions.Logging.LogLevel.Warning)
            {
                lock (warnings)
                {
                    warnings.Add(text);
                }
            }
        });
        await using var cluster = new PgTestCluster("params");
        var node = cluster.Node("node1", new Dictionary<string, string>
        {
            ["wal_keep_segments"] = "100", ["foo_bar"] = "1", ["myext.x"] = "kept", ["zero_damaged_pages"] = "off",
        }, loggers);

        await node.BootstrapAsync();

        Assert.True((await node.InspectAsync()).Accepting);
        Assert.Equal(["1600MB"], await node.ColumnAsync("SHOW wal_keep_size"));
        Assert.Equal(["kept"], await node.ColumnAsync("SHOW myext.x"));
        Assert.Equal(["off"], await node.ColumnAsync("SELECT setting FROM pg_settings WHERE name = 'zero_damaged_pages' AND source = 'configuration file'"));
        var conf = await File.ReadAllTextAsync(Path.Combine(node.DataDir, "postgresql.conf"));
        Assert.DoesNotContain("foo_bar", conf, StringComparison.Ordinal);
        Assert.DoesNotContain("wal_keep_segments", conf, StringComparison.Ordinal);
        Assert.Contains(warnings, w => w.Contains("wal_keep_segments = 100 written as wal_keep_size = 1600MB", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("parameter foo_bar = 1 left out of postgresql.conf", StringComparison.Ordinal));
        Assert.DoesNotContain(warnings, w => w.Contains("zero_damaged_pages", StringComparison.Ordinal) || w.Contains("myext", StringComparison.Ordinal));
    }

    /// <summary>The per-request check behind the health endpoints (issue 14, item 4): postmaster.pid and /proc, no connection.</summary>
    [Fact]
    public async Task Check_postmaster_sees_a_stopped_killed_or_frozen_postmaster_at_once()
    {
        await using var cluster = new PgTestCluster("check");
        var node = cluster.Node("node1");
        await node.BootstrapAsync();
        var pid = (await node.InspectAsync()).PostmasterPid!.Value;

        Assert.Equal(PostmasterNow.Ready, node.Control.CheckPostmaster(pid));
        Assert.Equal(PostmasterNow.Gone, node.Control.CheckPostmaster(pid + 100_000)); // postmaster.pid names another process

        Assert.True(Steward.IntegrationTests.Infrastructure.Signals.Send(pid, Steward.IntegrationTests.Infrastructure.Signals.SIGSTOP));
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(node.Control.CheckPostmaster(pid) == PostmasterNow.Gone), "a stopped postmaster takes no connection");
        }
        finally
        {
            Steward.IntegrationTests.Infrastructure.Signals.Send(pid, Steward.IntegrationTests.Infrastructure.Signals.SIGCONT);
        }

        await Eventually.TrueAsync(() => Task.FromResult(node.Control.CheckPostmaster(pid) == PostmasterNow.Ready), "resumed");
        await node.Control.StopAsync(StopMode.Immediate, None);
        Assert.Equal(PostmasterNow.Gone, node.Control.CheckPostmaster(pid));
    }

    [Fact]
    public async Task Cloned_replica_streams_through_its_slot_and_reads_the_primary_rows()
    {
        await using var cluster = new PgTestCluster("clone");
        var primary = cluster.Node("node1");
        var replica = cluster.Node("node-2");
        await primary.BootstrapAsync();
        await primary.ExecuteAsync("SELECT pg_create_physical_replication_slot('stale_member')");

        await replica.CloneAndFollowAsync(primary);
        await primary.ExecuteAsync("CREATE TABLE t (v text); INSERT INTO t VALUES ('hello')");

        await Eventually.TrueAsync(async () => (await replica.ColumnAsync("SELECT count(*) FROM pg_class WHERE relname = 't'"))[0] == "1"
            && (await replica.ColumnAsync("SELECT v FROM t")).SequenceEqual(["hello"]), "the row reaches the replica");
        var state = await replica.InspectAsync();
        Assert.True(state.StandbySignal);
        Assert.True(state.InRecovery);
        Assert.True(state.Streaming);
        Assert.Equal(primary.Address.ToString(), state.UpstreamHost);
        Assert.Equal(1, state.Timeline);
        Assert.True(state.ReplayLsn > 0);
        Assert.Equal((await primary.InspectAsync()).SystemId, state.SystemId);

        var primaryState = await primary.InspectAsync();
        var connection = Assert.Single(primaryState.Replication);
        Assert.Equal("node-2", connection.ApplicationName);
        Assert.Equal("replicator", connection.UserName);
        Assert.Equal("streaming", connection.State);
        Assert.Equal(["node_2:true"], await primary.ColumnAsync("SELECT slot_name || ':' || active FROM pg_replication_slots WHERE slot_name = 'node_2'"));

        // the inactive slot of a member that left is dropped; the active one stays
        await primary.Control.SyncReplicationSlotsAsync([replica.Slot], None);
        Assert.Equal(["node_2"], await primary.ColumnAsync("SELECT slot_name FROM pg_replication_slots ORDER BY 1"));
    }

    [Fact]
    public async Task Promoted_replica_moves_to_timeline_2_and_the_diverged_old_primary_is_rewound_to_follow_it()
    {
        await using var cluster = new PgTestCluster("rewind");
        var oldPrimary = cluster.Node("node1");
        var newPrimary = cluster.Node("node2");
        await oldPrimary.BootstrapAsync();
        await newPrimary.CloneAndFollowAsync(oldPrimary);
        await oldPrimary.ExecuteAsync("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')");
        await Eventually.TrueAsync(async () => (await newPrimary.InspectAsync()).ReplayLsn >= (await oldPrimary.InspectAsync()).WriteLsn, "node2 caught up");

        await newPrimary.Control.PromoteAsync(None);

        var promoted = await newPrimary.InspectAsync();
        Assert.False(promoted.InRecovery);
        Assert.Equal(2, promoted.Timeline);
        var timelineSwitch = await newPrimary.Control.ReadLastTimelineSwitchAsync(2, None);
        Assert.NotNull(timelineSwitch);
        Assert.Equal(1, timelineSwitch.ParentTimeline);
        Assert.InRange(timelineSwitch.SwitchLsn, 1, promoted.WriteLsn!.Value);
        Assert.Null(await newPrimary.Control.ReadLastTimelineSwitchAsync(3, None));

        // the old primary keeps taking writes after the promotion: its timeline 1 diverges from the switch point
        await oldPrimary.ExecuteAsync("INSERT INTO t VALUES ('diverged')");
        await oldPrimary.Control.CheckpointAsync(None);
        await oldPrimary.Control.StopAsync(StopMode.Fast, None);
        await newPrimary.Control.SyncReplicationSlotsAsync([oldPrimary.Slot], None);
        await newPrimary.ExecuteAsync("INSERT INTO t VALUES ('after')");

        Assert.True(await oldPrimary.Control.RewindAsync(newPrimary.Address, None));
        await oldPrimary.Control.StartAsync(StartRole.Replica, new Upstream(newPrimary.Address, oldPrimary.Slot), new DynamicConfig(), None);

        await Eventually.TrueAsync(async () => (await oldPrimary.InspectAsync()) is { Streaming: true, Timeline: 2 }, "node1 streams on timeline 2",
            oldPrimary.ServerLogTail);
        await Eventually.TrueAsync(async () => (await oldPrimary.ColumnAsync("SELECT v FROM t ORDER BY v")).SequenceEqual(["after", "before"]),
            "node1 has node2's rows and not its diverged one");
    }

    [Fact]
    public async Task Follow_points_a_running_replica_at_a_new_upstream_without_a_restart()
    {
        await using var cluster = new PgTestCluster("follow");
        var primary = cluster.Node("node1");
        var replica = cluster.Node("node2");
        var cascade = cluster.Node("node3");
        await primary.BootstrapAsync();
        await replica.CloneAndFollowAsync(primary);
        await cascade.CloneAndFollowAsync(primary);
        var startedAt = (await cascade.InspectAsync()).PostmasterStartTime;

        await replica.Control.SyncReplicationSlotsAsync([cascade.Slot], None);
        await cascade.Control.FollowAsync(new Upstream(replica.Address, cascade.Slot), None);

        await Eventually.TrueAsync(async () => (await cascade.InspectAsync()).UpstreamHost == replica.Address.ToString(), "node3 streams from node2");
        var state = await cascade.InspectAsync();
        Assert.Equal(startedAt, state.PostmasterStartTime);
        Assert.False(state.PendingRestart);
    }

    [Fact]
    public async Task Replica_that_knows_the_cluster_history_promotes_to_a_fresh_timeline()
    {
        // Safety rule 4: the cluster already used timelines 2 and 3 elsewhere; this replica never saw them. Without the
        // history files it would create a second "timeline 2".
        await using var cluster = new PgTestCluster("history");
        var primary = cluster.Node("node1");
        var replica = cluster.Node("node2");
        await primary.BootstrapAsync();
        await replica.CloneAndFollowAsync(primary);
        HistoryEntry[] history =
        [
            new(1, Lsn.Parse("0/1000000"), "no recovery target specified", DateTimeOffset.UnixEpoch, "nodeX"),
            new(2, Lsn.Parse("0/1000100"), "no recovery target specified", DateTimeOffset.UnixEpoch, "nodeY"),
        ];
        var walDir = Path.Combine(replica.DataDir, "pg_wal");

        await replica.Control.WriteMissingHistoryFilesAsync(history, None);

        Assert.Equal("1\t0/1000000\tno recovery target specified\n", File.ReadAllText(Path.Combine(walDir, "00000002.history")));
        Assert.Equal("1\t0/1000000\tno recovery target specified\n2\t0/1000100\tno recovery target specified\n",
            File.ReadAllText(Path.Combine(walDir, "00000003.history")));
        Assert.Equal(Native.LookupUser("postgres")!.Value.Uid, Native.Owner(Path.Combine(walDir, "00000003.history"))!.Value.Uid);

        await replica.Control.PromoteAsync(None);
        Assert.Equal(4, (await replica.InspectAsync()).Timeline);
        var timelineSwitch = await replica.Control.ReadLastTimelineSwitchAsync(4, None);
        Assert.Equal(1, timelineSwitch!.ParentTimeline);
    }

    [Fact]
    public async Task Existing_history_files_are_left_alone()
    {
        await using var cluster = new PgTestCluster("histkeep");
        var node = cluster.Node("node1");
        var walDir = Path.Combine(node.DataDir, "pg_wal");
        Directory.CreateDirectory(walDir);
        File.WriteAllText(Path.Combine(walDir, "00000002.history"), "1\t0/1\tPostgreSQL wrote this\n");

        await node.Control.WriteMissingHistoryFilesAsync(
            [new(1, Lsn.Parse("0/2"), "ours", DateTimeOffset.UnixEpoch, null), new(2, Lsn.Parse("0/3"), "ours", DateTimeOffset.UnixEpoch, null)], None);

        Assert.Equal("1\t0/1\tPostgreSQL wrote this\n", File.ReadAllText(Path.Combine(walDir, "00000002.history")));
        Assert.Equal("1\t0/2\tours\n2\t0/3\tours\n", File.ReadAllText(Path.Combine(walDir, "00000003.history")));
        Assert.Equal(new TimelineSwitch(1, 1, "PostgreSQL wrote this"), await node.Control.ReadLastTimelineSwitchAsync(2, None));
    }

    [Fact]
    public async Task Data_dir_owned_by_root_is_refused_with_the_chown_to_run()
    {
        await using var cluster = new PgTestCluster("rootdir");
        var node = cluster.Node("node1");
        Assert.True(Native.EffectiveUid == 0, "this test needs root (as CI runs) to make a data_dir owned by another user");
        Directory.CreateDirectory(node.DataDir);

        var error = await Assert.ThrowsAsync<PostgresException>(() => node.Control.ValidateDataDirAsync(None));

        var pgUid = Native.LookupUser("postgres")!.Value.Uid;
        Assert.Equal(
            $"data_dir {node.DataDir} is owned by uid 0 (root), but PostgreSQL runs as postgres (uid {pgUid}): chown -R postgres {node.DataDir}",
            error.Message);
    }

    [Theory]
    [InlineData(0b111_111_111, 0b111_000_000)]
    [InlineData(0b111_101_101, 0b111_101_000)]
    [InlineData(0b111_101_000, 0b111_101_000)]
    [InlineData(0b111_000_000, 0b111_000_000)]
    public async Task Data_dir_open_to_others_is_set_back_to_0700_keeping_group_read(int mode, int expected)
    {
        await using var cluster = new PgTestCluster("dirmode");
        var node = cluster.Node("node1");
        var pg = Native.LookupUser("postgres")!.Value;
        Directory.CreateDirectory(node.DataDir);
        Native.Chown(node.DataDir, pg.Uid, pg.Gid);
        File.SetUnixFileMode(node.DataDir, (UnixFileMode)mode);

        await node.Control.ValidateDataDirAsync(None);

        Assert.Equal((UnixFileMode)expected, File.GetUnixFileMode(node.DataDir));
    }

    [Fact]
    public async Task Data_dir_that_is_not_a_directory_or_holds_something_else_is_refused()
    {
        await using var cluster = new PgTestCluster("baddir");
        var node = cluster.Node("node1");
        var pg = Native.LookupUser("postgres")!.Value;
        Directory.CreateDirectory(Path.GetDirectoryName(node.DataDir)!);

        File.WriteAllText(node.DataDir, "");
        var notDirectory = await Assert.ThrowsAsync<PostgresException>(() => node.Control.ValidateDataDirAsync(None));
        Assert.Equal($"data_dir {node.DataDir} is not a directory", notDirectory.Message);
        File.Delete(node.DataDir);

        Directory.CreateDirectory(node.DataDir);
        Native.Chown(node.DataDir, pg.Uid, pg.Gid);
        File.WriteAllText(Path.Combine(node.DataDir, "notes.txt"), "not PostgreSQL");
        var foreign = await Assert.ThrowsAsync<PostgresException>(() => node.Control.ValidateDataDirAsync(None));
        Assert.Contains("is not empty but is not a PostgreSQL data directory", foreign.Message, StringComparison.Ordinal);
        Assert.Equal(DataDirStatus.Invalid, (await node.InspectAsync()).DataDir);
        await Assert.ThrowsAsync<PostgresException>(() => node.BootstrapAsync());
    }

    [Fact]
    public async Task Failed_start_reports_the_server_log()
    {
        await using var cluster = new PgTestCluster("badstart");
        var node = cluster.Node("node1");
        await node.BootstrapAsync();
        await node.Control.StopAsync(StopMode.Fast, None);
        var broken = new DynamicConfig
        {
            Postgresql = new DynamicPostgresConfig { Parameters = new Dictionary<string, string> { ["shared_preload_libraries"] = "no_such_library" } },
        };

        var error = await Assert.ThrowsAsync<PostgresException>(() => node.Control.StartAsync(StartRole.Primary, null, broken, None));

        Assert.Contains("pg_ctl exited with code 1", error.Message, StringComparison.Ordinal);
        Assert.Contains("no_such_library", error.Message, StringComparison.Ordinal);
        Assert.False((await node.InspectAsync()).Running);
    }

    [Fact]
    public async Task Failed_clone_leaves_an_empty_data_dir()
    {
        await using var cluster = new PgTestCluster("badclone");
        var node = cluster.Node("node1");

        var error = await Assert.ThrowsAsync<PostgresException>(() => node.Control.CloneAsync(new("127.0.0.1", Infrastructure.FreePorts.Next()), None));

        Assert.Contains("pg_basebackup", error.Message, StringComparison.Ordinal);
        Assert.Equal(DataDirStatus.Empty, (await node.InspectAsync()).DataDir);
    }

    [Fact]
    public async Task Data_dir_moved_aside_keeps_its_contents_under_a_timestamped_name()
    {
        await using var cluster = new PgTestCluster("aside");
        var node = cluster.Node("node1");
        Directory.CreateDirectory(node.DataDir);
        File.WriteAllText(Path.Combine(node.DataDir, "PG_VERSION"), "15\n");

        var moved = await node.Control.MoveDataDirAsideAsync(None);

        Assert.Matches(@"/node1/data\.diverged-[0-9]{8}T[0-9]{6}Z$", moved);
        Assert.False(Directory.Exists(node.DataDir));
        Assert.Equal("15\n", File.ReadAllText(Path.Combine(moved, "PG_VERSION")));
    }
}
