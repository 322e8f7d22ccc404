using System.Globalization;
using Microsoft.Extensions.Logging;
using Npgsql;
using PhysicalReplicationConnection = Npgsql.Replication.PhysicalReplicationConnection;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;
using PostgresException = Steward.Core.Postgres.PostgresException;

namespace Steward.Postgres;

/// <summary>
/// Drives the local PostgreSQL 15 through its programs (as the OS user) and an Npgsql connection to
/// postgresql.listen as the superuser. See <see cref="IPostgresControl"/> for the contract.
/// </summary>
public sealed class PostgresControl : IPostgresControl, IAsyncDisposable
{
    private const string StandbySignal = "standby.signal";
    private const string VarRunPostgresql = "/var/run/postgresql";
    private static readonly TimeSpan QuickProgram = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PromoteWait = TimeSpan.FromSeconds(60);
    /// <summary>How long an immediate stop waits for the postmaster before it is killed (the whole cycle, lock included, waits on it).</summary>
    private static readonly TimeSpan ImmediateStopWait = TimeSpan.FromSeconds(10);
    /// <summary>How long a killed postmaster may take to disappear.</summary>
    private static readonly TimeSpan KillWait = TimeSpan.FromSeconds(10);
    /// <summary>Every query of the agent's own (connect timeout 3 s, statement timeout 10 s): inspection stays bounded however PostgreSQL hangs.</summary>
    private const int ConnectSeconds = 3;
    private const int QuerySeconds = 10;
    /// <summary>libpq connect_timeout for pg_rewind and pg_basebackup against another member.</summary>
    private const int SourceConnectSeconds = 10;
    private static readonly IReadOnlyDictionary<string, string> CLocale = new Dictionary<string, string> { ["LC_ALL"] = "C" };

    private readonly StewardConfig _config;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lazy<PgOsUser> _user;
    private readonly Lazy<PgProgram> _programs;
    private readonly Lazy<NpgsqlDataSource> _dataSource;
    private readonly Lock _controlGate = new();
    private (DateTime Mtime, long Size, PgControlData Data)? _control;
    private string? _replayTimelineProblem;
    private readonly HashSet<string> _parameterWarnings = new(StringComparer.Ordinal);

    public PostgresControl(StewardConfig config, ILoggerFactory loggers, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(loggers);
        _config = config;
        _time = time;
        _logger = loggers.CreateLogger<PostgresControl>();
        _user = new(() => PgOsUser.Resolve(config.Postgresql.OsUser));
        _programs = new(() => new PgProgram(_user.Value, config.Postgresql.BinDir, time, _logger));
        _dataSource = new(CreateDataSource);
    }

    private string DataDir => _config.Postgresql.DataDir;
    private PgOsUser User => _user.Value;
    private PgProgram Programs => _programs.Value;
    private TimeSpan PgCtlTimeout => TimeSpan.FromSeconds(_config.Postgresql.PgCtlTimeout);

    /// <summary>What postgresql.conf includes first: <c>postgresql.custom_conf</c>, else postgresql.base.conf.</summary>
    private string IncludedConf => _config.Postgresql.CustomConf ?? PgConfigFiles.BaseConf;
    private string InData(string relative) => Path.Combine(DataDir, relative);

    // ---------------------------------------------------------------- inspection

    public async Task<PgState> InspectAsync(CancellationToken ct)
    {
        var status = DataDirState(DataDir);
        if (status != DataDirStatus.Initialized)
        {
            return new PgState { DataDir = status };
        }
        var control = await ReadControlDataAsync(ct).ConfigureAwait(false);
        var pid = LivePostmasterPid();
        var state = new PgState
        {
            DataDir = status,
            SystemId = control.SystemId,
            ControlState = control.State,
            ControlTimeline = control.Timeline,
            StandbySignal = File.Exists(InData(StandbySignal)),
            PrimaryMark = File.Exists(PrimaryMarkPath),
            SynchronousStandbyNamesManaged = File.Exists(InData(PgConfigFiles.SyncConf)),
            Running = pid is not null,
            PostmasterPid = pid,
        };
        if (pid is null)
        {
            return state;
        }
        try
        {
            return await QueryStateAsync(state, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException && !ct.IsCancellationRequested)
        {
            Log.NotAnswering(_logger, DataDir, e.Message);
            _dataSource.Value.Clear();
            return state;
        }
    }

    private async Task<PgState> QueryStateAsync(PgState state, CancellationToken ct)
    {
        await using var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new("""
                    SELECT pg_is_in_recovery(),
                           CASE WHEN pg_is_in_recovery() THEN NULL ELSE (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint END,
                           (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint,
                           (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint,
                           pg_last_xact_replay_timestamp(),
                           CASE WHEN pg_is_in_recovery() THEN NULL
                                ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END,
                           (SELECT timeline_id FROM pg_control_checkpoint())::bigint,
                           current_setting('server_version_num')::int,
                           pg_postmaster_start_time(),
                           EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart),
                           current_setting('synchronous_standby_names')
                    """),
                new("SELECT status, received_tli::bigint, sender_host, sender_port FROM pg_stat_wal_receiver"),
                new("""
                    SELECT usename::text, application_name, client_addr::text, state, sync_state, (replay_lsn - '0/0'::pg_lsn)::bigint,
                           (flush_lsn - '0/0'::pg_lsn)::bigint
                    FROM pg_stat_replication ORDER BY application_name
                    """),
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false);

        await reader.ReadAsync(ct).ConfigureAwait(false);
        var inRecovery = reader.GetBoolean(0);
        var writeLsn = NullableLong(reader, 1);
        var receiveLsn = NullableLong(reader, 2);
        var replayLsn = NullableLong(reader, 3);
        DateTimeOffset? replayTime = reader.IsDBNull(4) ? null : new DateTimeOffset(reader.GetDateTime(4), TimeSpan.Zero);
        var walTimeline = NullableLong(reader, 5);
        var checkpointTimeline = NullableLong(reader, 6);
        var version = reader.GetInt32(7);
        var startTime = new DateTimeOffset(reader.GetDateTime(8), TimeSpan.Zero);
        var pendingRestart = reader.GetBoolean(9);
        var standbyNames = NullableString(reader, 10);

        await reader.NextResultAsync(ct).ConfigureAwait(false);
        bool streaming = false;
        long? receivedTimeline = null;
        string? upstream = null;
        if (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            streaming = !reader.IsDBNull(0) && reader.GetString(0) == "streaming";
            receivedTimeline = NullableLong(reader, 1);
            if (streaming && !reader.IsDBNull(2))
            {
                upstream = new HostPort(reader.GetString(2), reader.IsDBNull(3) ? 0 : reader.GetInt32(3)).ToString();
            }
        }

        await reader.NextResultAsync(ct).ConfigureAwait(false);
        var replication = new List<ReplicationConnection>();
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            replication.Add(new ReplicationConnection(
                NullableString(reader, 0),
                NullableString(reader, 1) ?? "",
                NullableString(reader, 2),
                NullableString(reader, 3) ?? "",
                NullableString(reader, 4) ?? "",
                NullableLong(reader, 5)) { FlushLsn = NullableLong(reader, 6) });
        }

        // A replica's timeline is the one it receives (while streaming) or has replayed into. The last checkpoint's timeline
        // is only a last resort: after a failover it stays on the old timeline until the next restartpoint, minutes later.
        var replayTimeline = inRecovery ? await ReplayTimelineAsync(ct).ConfigureAwait(false) : null;
        return state with
        {
            Accepting = true,
            InRecovery = inRecovery,
            Timeline = inRecovery ? (streaming ? receivedTimeline : null) ?? replayTimeline ?? checkpointTimeline : walTimeline,
            ReplayTimeline = replayTimeline,
            ReceiveTimeline = inRecovery ? receivedTimeline : null,
            WriteLsn = writeLsn,
            ReceiveLsn = receiveLsn,
            ReplayLsn = replayLsn,
            ReplayTimestamp = replayTime,
            Streaming = streaming,
            UpstreamHost = upstream,
            ServerVersion = version,
            PostmasterStartTime = startTime,
            PendingRestart = pendingRestart,
            SynchronousStandbyNames = standbyNames,
            Replication = replication,
        };
    }

    /// <summary>
    /// The timeline of the WAL this standby has replayed, from IDENTIFY_SYSTEM on a replication connection to itself (as
    /// Patroni reads it): on a standby the walsender answers the replay timeline. PostgreSQL 15 has no SQL function for it —
    /// pg_control_checkpoint() lags behind a timeline switch until the next restartpoint, pg_stat_wal_receiver has only
    /// the receive side and only while a WAL receiver runs. Null (and logged when the reason changes) when it cannot be read.
    /// </summary>
    private async Task<long?> ReplayTimelineAsync(CancellationToken ct)
    {
        var builder = ConnectionString(overSocket: false);
        builder.Username = _config.Postgresql.Authentication.Replication.Username;
        builder.Password = _config.Postgresql.Authentication.Replication.Password;
        ApplySsl(builder, _config.Postgresql.Authentication.Replication.Ssl);
        try
        {
            await using var connection = new PhysicalReplicationConnection(builder.ConnectionString);
            await connection.Open(ct).ConfigureAwait(false);
            connection.CommandTimeout = TimeSpan.FromSeconds(QuerySeconds);
            var system = await connection.IdentifySystem(ct).ConfigureAwait(false);
            _replayTimelineProblem = null;
            return system.Timeline;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            if (e.Message != _replayTimelineProblem)
            {
                _replayTimelineProblem = e.Message;
                Log.ReplayTimelineUnknown(_logger, DataDir, builder.Username ?? "", e.Message);
            }

            return null;
        }
    }

    private static long? NullableLong(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetInt64(ordinal);

    private static string? NullableString(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);

    private async Task<PgControlData> ReadControlDataAsync(CancellationToken ct)
    {
        var file = new FileInfo(InData("global/pg_control"));
        lock (_controlGate)
        {
            if (_control is { } cached && cached.Mtime == file.LastWriteTimeUtc && cached.Size == file.Length)
            {
                return cached.Data;
            }
        }
        var result = await Programs.RunAsync("pg_controldata", ["-D", DataDir], QuickProgram, ct, CLocale).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw result.Failure($"pg_controldata of {DataDir}");
        }
        var data = PgControlData.Parse(result.StdOut);
        lock (_controlGate)
        {
            _control = (file.LastWriteTimeUtc, file.Length, data);
        }
        return data;
    }

    /// <summary>The postmaster's PID from postmaster.pid when that process is alive, else null.</summary>
    private int? LivePostmasterPid()
    {
        if (PidFilePid() is not { } pid)
        {
            return null;
        }
        try
        {
            // a PID reused by an unrelated process must not count as a running postmaster
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmdline.Contains("postgres", StringComparison.Ordinal) ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private int? PidFilePid() => PidIn(InData("postmaster.pid"));

    public PostmasterNow CheckPostmaster(int pid)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(InData("postmaster.pid"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return PostmasterNow.Gone; // removed by the postmaster on its way out (pg_ctl stop, even -m immediate)
        }
        if (lines.Length == 0 || lines[0].Trim() != pid.ToString(CultureInfo.InvariantCulture))
        {
            return PostmasterNow.Gone;
        }
        if (ProcessState(pid) is '?' or 'Z' or 'X' or 'x' or 'T' or 't')
        {
            return PostmasterNow.Gone; // killed (kill -9 leaves postmaster.pid behind), not reaped yet, or stopped
        }
        // Line 8 (PostgreSQL 10+): the postmaster's status, rewritten as it moves through starting, standby (recovery, not
        // open), ready (open for connections, primary or hot standby) and stopping.
        return (lines.Length >= 8 ? lines[7].Trim() : "") switch
        {
            "ready" => PostmasterNow.Ready,
            "" => PostmasterNow.Unknown,
            _ => PostmasterNow.NotReady,
        };
    }

    private static int? PidIn(string lockFile)
    {
        string? firstLine;
        try
        {
            using var reader = new StreamReader(lockFile);
            firstLine = reader.ReadLine();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        return int.TryParse(firstLine, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0 ? pid : null;
    }

    /// <summary>
    /// A killed postmaster nobody has reaped yet (its parent is init, or this agent when it runs as PID 1 in a container)
    /// still exists for kill(pid, 0), so PostgreSQL refuses to start over its postmaster.pid and socket lock file: remove
    /// the lock files that name it. A zombie holds no memory and no files.
    /// </summary>
    private void RemoveLockFilesOfZombie()
    {
        if (PidFilePid() is not { } pid || !IsZombie(pid))
        {
            return; // alive, or gone (PostgreSQL removes a stale lock file itself)
        }
        // The socket directory the postmaster used is the fifth line of its postmaster.pid (unix_socket_directories may
        // have been set in the configuration, so it is not necessarily where Steward would put it).
        var directories = new List<string> { SocketDirectory() };
        try
        {
            if (File.ReadLines(InData("postmaster.pid")).Skip(4).FirstOrDefault() is { Length: > 0 } used)
            {
                directories.Add(used.Trim());
            }
        }
        catch (IOException)
        {
        }

        if (_config.Postgresql.Parameters.TryGetValue("unix_socket_directories", out var configured))
        {
            directories.AddRange(configured.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }

        var port = _config.Postgresql.Listen.Port.ToString(CultureInfo.InvariantCulture);
        var socketLocks = directories.Distinct(StringComparer.Ordinal).Select(d => Path.Combine(d, $".s.PGSQL.{port}.lock"));
        foreach (var lockFile in socketLocks.Append(InData("postmaster.pid")).Where(f => PidIn(f) == pid))
        {
            File.Delete(lockFile);
            Log.ZombieLockFileRemoved(_logger, lockFile, pid);
        }
    }

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var afterName = stat.LastIndexOf(')');
            return afterName > 0 && afterName + 2 < stat.Length && stat[afterName + 2] == 'Z';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static DataDirStatus DataDirState(string dataDir)
    {
        if (!Directory.Exists(dataDir) || !Directory.EnumerateFileSystemEntries(dataDir).Any())
        {
            return DataDirStatus.Empty;
        }
        return File.Exists(Path.Combine(dataDir, "PG_VERSION")) && File.Exists(Path.Combine(dataDir, "global", "pg_control"))
            ? DataDirStatus.Initialized
            : DataDirStatus.Invalid;
    }

    public Task ValidateDataDirAsync(CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        if (File.Exists(DataDir))
        {
            throw new PostgresException($"data_dir {DataDir} is not a directory");
        }
        if (!Directory.Exists(DataDir))
        {
            return Task.CompletedTask;
        }
        if (Native.Owner(DataDir) is { } owner && owner.Uid != User.Uid)
        {
            throw new PostgresException(
                $"data_dir {DataDir} is owned by {PgOsUser.Describe(owner.Uid)}, but PostgreSQL runs as {User.Name} (uid {User.Uid}): chown -R {User.Name} {DataDir}");
        }
        TightenDataDirMode();
        if (DataDirState(DataDir) == DataDirStatus.Invalid)
        {
            throw new PostgresException(
                $"data_dir {DataDir} is not empty but is not a PostgreSQL data directory (no PG_VERSION or global/pg_control): move its contents away or point postgresql.data_dir elsewhere");
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// The data directory is 0700 (0750 when initdb -g gave the group read access): a group-writable one is set back to
    /// 0700, others' access is taken away, with a warning.
    /// </summary>
    private void TightenDataDirMode()
    {
        const UnixFileMode open = UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
        var mode = File.GetUnixFileMode(DataDir);
        if ((mode & open) == 0)
        {
            return;
        }

        // group write is no deliberate initdb -g: back to 0700; others' access alone is taken away (0755 → 0750)
        var tightened = mode.HasFlag(UnixFileMode.GroupWrite) ? DataDirMode : mode & ~open;
        File.SetUnixFileMode(DataDir, tightened);
        Log.DataDirModeTightened(_logger, DataDir, Octal(mode), Octal(tightened));
    }

    private static string Octal(UnixFileMode mode) => Convert.ToString((int)mode, 8).PadLeft(4, '0');

    // ---------------------------------------------------------------- lifecycle

    public async Task BootstrapAsync(IReadOnlyList<string> initdbOptions, DynamicConfig dynamic, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(initdbOptions);
        await ValidateDataDirAsync(ct).ConfigureAwait(false);
        if (DataDirState(DataDir) != DataDirStatus.Empty)
        {
            throw new PostgresException($"cannot bootstrap: data_dir {DataDir} is not empty");
        }
        User.CreateDirectory(DataDir, DataDirMode);
        if (_config.Bootstrap.Method is { } custom)
        {
            await CustomBootstrapAsync(custom, dynamic, ct).ConfigureAwait(false);
            return;
        }

        var superuser = _config.Postgresql.Authentication.Superuser;
        string? pwfile = null;
        try
        {
            var args = new List<string>(initdbOptions) { $"--username={superuser.Username}" };
            if (superuser.Password is not null)
            {
                pwfile = Path.Combine(Path.GetTempPath(), $"steward-pwfile-{Guid.NewGuid():N}");
                User.WriteFile(pwfile, superuser.Password + "\n");
                args.Add($"--pwfile={pwfile}");
            }
            args.AddRange(["-D", DataDir]);
            Log.Initdb(_logger, DataDir, User.Name);
            var result = await Programs.RunAsync("initdb", args, TimeSpan.FromMinutes(10), ct).ConfigureAwait(false);
            if (!result.Succeeded)
            {
                throw result.Failure($"initdb of {DataDir}");
            }
        }
        finally
        {
            if (pwfile is not null)
            {
                File.Delete(pwfile);
            }
        }

        await StartAsync(StartRole.Primary, upstream: null, dynamic, ct).ConfigureAwait(false);
        await CreateRolesAsync(ct).ConfigureAwait(false);
        await PostBootstrapAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>bootstrap.post_bootstrap</c> (Patroni's arguments: the command, then a conninfo of the superuser without its
    /// password, with <c>PGPASSFILE</c> for it and <c>PGOPTIONS</c> for a local, untimed session). A failure throws: the
    /// bootstrap failed, and the caller removes the new data directory.
    /// </summary>
    private async Task PostBootstrapAsync(CancellationToken ct)
    {
        if (_config.Bootstrap.PostBootstrap is not { } command)
        {
            return;
        }

        WritePgpass();
        var connection = ConnectionString();
        var conninfo = PgConfigFiles.Conninfo(
        [
            ("dbname", "postgres"),
            ("user", connection.Username ?? ""),
            ("host", connection.Host ?? ""),
            ("port", connection.Port.ToString(CultureInfo.InvariantCulture)),
            .. PgConfigFiles.SslPairs(_config.Postgresql.Authentication.Superuser.Ssl),
        ]);
        List<string> commandLine = [.. command, conninfo];
        var environment = new Dictionary<string, string>(PassfileEnvironment)
        {
            ["PGOPTIONS"] = "-c synchronous_commit=local -c statement_timeout=0",
        };
        Log.PostBootstrap(_logger, string.Join(' ', commandLine));
        var result = await Programs.RunCommandAsync(commandLine, timeout: null, ct, environment).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw result.Failure($"bootstrap.post_bootstrap {command[0]}");
        }

        Log.PostBootstrapDone(_logger, result.TailText);
    }

    /// <summary>
    /// <c>postgresql.before_stop</c> before a planned stop: waited for at most pg_ctl_timeout (then killed); whatever it
    /// returns, the stop goes on (Patroni's semantics).
    /// </summary>
    private async Task BeforeStopAsync(CancellationToken ct)
    {
        if (_config.Postgresql.BeforeStop is not { } command)
        {
            return;
        }

        var line = string.Join(' ', command);
        Log.BeforeStop(_logger, line);
        try
        {
            var result = await Programs.RunCommandAsync(command, PgCtlTimeout, ct).ConfigureAwait(false);
            Log.BeforeStopExited(_logger, line, result.ExitCode, result.TailText);
        }
        catch (PostgresException e)
        {
            Log.BeforeStopExited(_logger, line, -1, e.Message);
        }
    }

    /// <summary>
    /// Patroni's custom bootstrap (<see cref="CustomBootstrap"/>): the command fills the empty data directory; recovery
    /// settings are removed, kept or written; PostgreSQL starts with the superuser allowed in from this host without a
    /// password (the restored cluster's password is not ours); Steward waits for the end of recovery (a restore with
    /// recovery_conf replays WAL and promotes), sets the configured passwords and roles, and restarts PostgreSQL with
    /// the normal pg_hba.conf and parameters. A failure throws; the caller removes what the command left.
    /// </summary>
    private async Task CustomBootstrapAsync(CustomBootstrap custom, DynamicConfig dynamic, CancellationToken ct)
    {
        var what = $"custom bootstrap '{custom.Name}' (bootstrap.{custom.Name}.command)";
        var commandLine = custom.CommandLine(_config.Scope, DataDir);
        WritePgpass();
        Log.CustomBootstrap(_logger, custom.Name, string.Join(' ', commandLine));
        var result = await Programs.RunCommandAsync(commandLine, timeout: null, ct, PassfileEnvironment).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw result.Failure(what);
        }
        if (DataDirState(DataDir) != DataDirStatus.Initialized)
        {
            throw new PostgresException($"{what}: {commandLine[0]} exited 0 but data_dir {DataDir} is not a PostgreSQL data directory (no PG_VERSION or global/pg_control)");
        }

        // What belongs to the cluster (and the Steward) the backup came from.
        foreach (var leftover in new[] { PgConfigFiles.SyncConf, "postmaster.pid", "postmaster.opts" })
        {
            File.Delete(InData(leftover));
        }
        var parameters = await ServerParametersAsync(dynamic, ct).ConfigureAwait(false);
        if (custom.RecoveryConf is { } recovery)
        {
            File.Delete(InData(StandbySignal));
            File.Delete(InData("recovery.conf"));
            User.WriteFile(InData("recovery.signal"), "");
            foreach (var (name, value) in recovery)
            {
                parameters[name.ToLowerInvariant()] = value;
            }
        }
        else if (!custom.KeepExistingRecoveryConf)
        {
            foreach (var signal in new[] { StandbySignal, "recovery.signal", "recovery.conf" })
            {
                File.Delete(InData(signal));
            }
        }
        // As Patroni: replaying a backup with larger max_connections & co. than the source had fails in hot standby, and
        // nobody needs to read from it before the end of recovery.
        if (custom.KeepExistingRecoveryConf || custom.RecoveryConf?.GetValueOrDefault("recovery_target_action") == "promote")
        {
            parameters["hot_standby"] = "off";
        }

        if (LivePostmasterPid() is { } running)
        {
            throw new PostgresException($"{what}: a postmaster (pid {running}) already runs in {DataDir}");
        }
        WriteConfigFiles(StartRole.Primary, null, parameters, PgConfigFiles.RenderCustomBootstrapPgHba(_config), keepSignals: true);
        await PgCtlStartAsync("custom bootstrap", ct).ConfigureAwait(false);
        await WaitForEndOfRecoveryAsync(what, ct).ConfigureAwait(false);

        var superuser = _config.Postgresql.Authentication.Superuser;
        await using (var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false))
        {
            await EnsureRoleAsync(connection, superuser, "SUPERUSER LOGIN", ct).ConfigureAwait(false);
        }
        await CreateRolesAsync(ct).ConfigureAwait(false);
        await StopAsync(StopMode.Fast, ct).ConfigureAwait(false);
        await StartAsync(StartRole.Primary, upstream: null, dynamic, ct).ConfigureAwait(false);
        await PostBootstrapAsync(ct).ConfigureAwait(false);
        Log.CustomBootstrapDone(_logger, custom.Name, DataDir);
    }

    /// <summary>
    /// Waits until the server started by a custom bootstrap has left recovery (no time limit: a restore may replay for
    /// hours; cancellation stops it). Refuses a recovery that paused at its target, which would never end by itself.
    /// </summary>
    private async Task WaitForEndOfRecoveryAsync(string what, CancellationToken ct)
    {
        var logFile = InData(Path.Combine("log", "postgresql.log"));
        var waiting = _time.GetTimestamp();
        var logged = TimeSpan.Zero;
        while (true)
        {
            if (LivePostmasterPid() is null)
            {
                throw new PostgresException($"{what}: PostgreSQL stopped before the end of recovery; last lines of {logFile}:\n{TailOf(logFile, 20)}");
            }
            try
            {
                await using var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false);
                await using var command = new NpgsqlCommand(
                    "SELECT pg_is_in_recovery(), pg_is_in_recovery() AND pg_get_wal_replay_pause_state() <> 'not paused'", connection);
                await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await reader.ReadAsync(ct).ConfigureAwait(false);
                if (!reader.GetBoolean(0))
                {
                    return;
                }
                if (reader.GetBoolean(1))
                {
                    throw new PostgresException($"{what}: recovery paused at its target and will not end by itself: "
                                                + "set recovery_target_action: promote in the method's recovery_conf");
                }
            }
            catch (NpgsqlException) when (!ct.IsCancellationRequested)
            {
                _dataSource.Value.Clear(); // not accepting connections yet (hot_standby off during recovery)
            }
            if (_time.GetElapsedTime(waiting) - logged >= TimeSpan.FromSeconds(10))
            {
                logged = _time.GetElapsedTime(waiting);
                Log.WaitingForRecovery(_logger, DataDir, (long)logged.TotalSeconds);
            }
            await Task.Delay(TimeSpan.FromSeconds(1), _time, ct).ConfigureAwait(false);
        }
    }

    private async Task CreateRolesAsync(CancellationToken ct)
    {
        var auth = _config.Postgresql.Authentication;
        await using var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false);
        if (auth.Replication.Username != auth.Superuser.Username)
        {
            await EnsureRoleAsync(connection, auth.Replication, "LOGIN REPLICATION", ct).ConfigureAwait(false);
        }
        if (auth.Rewind is { } rewind && rewind.Username != auth.Superuser.Username)
        {
            if (rewind.Username != auth.Replication.Username)
            {
                await EnsureRoleAsync(connection, rewind, "LOGIN", ct).ConfigureAwait(false);
            }
            // what pg_rewind needs from a non-superuser source connection (PostgreSQL docs, pg_rewind "Notes")
            var role = PgConfigFiles.QuoteIdent(rewind.Username);
            await ExecuteAsync(connection, $"""
                GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO {role};
                GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO {role};
                GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO {role};
                GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO {role};
                """, ct).ConfigureAwait(false);
        }
    }

    private async Task EnsureRoleAsync(NpgsqlConnection connection, Credentials credentials, string options, CancellationToken ct)
    {
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_roles WHERE rolname = $1", connection)
        {
            Parameters = { new() { Value = credentials.Username } },
        };
        var verb = await exists.ExecuteScalarAsync(ct).ConfigureAwait(false) is null ? "CREATE" : "ALTER";
        var password = credentials.Password is null ? "" : " PASSWORD " + PgConfigFiles.QuoteLiteral(credentials.Password);
        await ExecuteAsync(connection, $"{verb} ROLE {PgConfigFiles.QuoteIdent(credentials.Username)} WITH {options}{password}", ct).ConfigureAwait(false);
        Log.RoleCreated(_logger, credentials.Username);
    }

    /// <summary>
    /// Creates this replica's data directory from <paramref name="source"/> with <c>postgresql.create_replica_methods</c>
    /// in order (Patroni's semantics): a command method, or the built-in pg_basebackup; a method that fails (or leaves no
    /// data directory) is cleaned up after, unless keep_data, and the next is tried. Throws when every one failed.
    /// </summary>
    public async Task CloneAsync(HostPort source, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(source);
        await ValidateDataDirAsync(ct).ConfigureAwait(false);
        if (DataDirState(DataDir) != DataDirStatus.Empty)
        {
            throw new PostgresException($"cannot clone into data_dir {DataDir}: it is not empty");
        }
        WritePgpass();
        User.CreateDirectory(DataDir, DataDirMode);
        Log.Cloning(_logger, DataDir, source.ToString());
        var methods = _config.Postgresql.CreateReplicaMethods is { Count: > 0 } configured ? configured : [null];
        var failures = new List<string>();
        foreach (var method in methods)
        {
            if (DataDirState(DataDir) != DataDirStatus.Empty && method?.KeepData != true)
            {
                RemovePartialClone();
            }
            var failure = method is null
                ? await BasebackupAsync(source, ct).ConfigureAwait(false)
                : await ReplicaMethodAsync(method, source, ct).ConfigureAwait(false);
            if (failure is null)
            {
                Log.Cloned(_logger, DataDir, $"{source} ({method?.Name ?? "basebackup"})");
                return;
            }
            failures.Add(failure);
            Log.ReplicaMethodFailed(_logger, method?.Name ?? "basebackup", failure);
            if (method?.KeepData != true)
            {
                RemovePartialClone();
            }
        }
        throw new PostgresException(failures.Count == 1 ? failures[0] : "every create_replica_methods failed:\n" + string.Join('\n', failures));
    }

    /// <summary>pg_basebackup from <paramref name="source"/>, with postgresql.basebackup's options; the failure in words, or null.</summary>
    private async Task<string?> BasebackupAsync(HostPort source, CancellationToken ct)
    {
        PgProgramResult result;
        try
        {
            result = await Programs.RunAsync(
                "pg_basebackup",
                ["-D", DataDir, "-h", source.Host, "-p", source.Port.ToString(CultureInfo.InvariantCulture),
                 "-U", _config.Postgresql.Authentication.Replication.Username, "-X", "stream", "-c", "fast", "--no-password",
                 .. _config.Postgresql.BasebackupOptions],
                timeout: null, ct, ProgramEnvironment(PgConfigFiles.ReplicationService)).ConfigureAwait(false);
        }
        catch
        {
            RemovePartialClone();
            throw;
        }
        return result.Succeeded ? null : result.Failure($"pg_basebackup from {source} into {DataDir}").Message;
    }

    /// <summary>A command from create_replica_methods; the failure in words, or null when it left a data directory.</summary>
    private async Task<string?> ReplicaMethodAsync(ReplicaMethod method, HostPort source, CancellationToken ct)
    {
        var replication = _config.Postgresql.Authentication.Replication.Username;
        var host = source.Host.Contains(':', StringComparison.Ordinal) ? $"[{source.Host}]" : source.Host;
        var connstring = $"postgresql://{Uri.EscapeDataString(replication)}@{host}:{source.Port.ToString(CultureInfo.InvariantCulture)}/postgres";
        var commandLine = method.CommandLine(_config.Scope, DataDir, connstring);
        Log.ReplicaMethod(_logger, method.Name, string.Join(' ', commandLine));
        PgProgramResult result;
        try
        {
            result = await Programs.RunCommandAsync(commandLine, timeout: null, ct, ProgramEnvironment(PgConfigFiles.ReplicationService)).ConfigureAwait(false);
        }
        catch when (!method.KeepData)
        {
            RemovePartialClone();
            throw;
        }
        if (!result.Succeeded)
        {
            return result.Failure($"create_replica_methods {method.Name} (postgresql.{method.Name}.command)").Message;
        }
        return DataDirState(DataDir) == DataDirStatus.Initialized
            ? null
            : $"create_replica_methods {method.Name}: {commandLine[0]} exited 0 but data_dir {DataDir} is not a PostgreSQL data directory";
    }

    private void RemovePartialClone()
    {
        if (!Directory.Exists(DataDir))
        {
            return;
        }
        var removed = false;
        foreach (var entry in new DirectoryInfo(DataDir).EnumerateFileSystemInfos())
        {
            if (entry is DirectoryInfo directory)
            {
                directory.Delete(recursive: true);
            }
            else
            {
                entry.Delete();
            }
            removed = true;
        }
        if (removed)
        {
            Log.PartialCloneRemoved(_logger, DataDir);
        }
    }

    public async Task StartAsync(StartRole role, Upstream? upstream, DynamicConfig dynamic, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(dynamic);
        if (DataDirState(DataDir) != DataDirStatus.Initialized)
        {
            throw new PostgresException($"cannot start PostgreSQL: data_dir {DataDir} is not a PostgreSQL data directory");
        }
        if (LivePostmasterPid() is { } running)
        {
            throw new PostgresException($"cannot start PostgreSQL in {DataDir}: it is already running (postmaster pid {running})");
        }
        WriteConfigFiles(role, upstream, await ServerParametersAsync(dynamic, ct).ConfigureAwait(false), PgConfigFiles.RenderPgHba(_config, dynamic));
        await PgCtlStartAsync(role.ToString(), ct).ConfigureAwait(false);
    }

    /// <summary>pg_ctl start -w with the files as they are written; <paramref name="how"/> names the start in the log.</summary>
    private async Task PgCtlStartAsync(string how, CancellationToken ct)
    {
        RemoveLockFilesOfZombie();

        var logDir = InData("log");
        User.CreateDirectory(logDir, DataDirMode);
        var logFile = Path.Combine(logDir, "postgresql.log");
        Log.Starting(_logger, DataDir, how);
        var result = await Programs.RunAsync(
            "pg_ctl",
            ["start", "-w", "-t", _config.Postgresql.PgCtlTimeout.ToString(CultureInfo.InvariantCulture), "-D", DataDir, "-l", logFile],
            PgCtlTimeout + QuickProgram, ct, newSession: true).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            var serverLog = TailOf(logFile, 20);
            throw new PostgresException(
                $"pg_ctl start of {DataDir} failed: pg_ctl exited with code {result.ExitCode}:\n{result.TailText}"
                + (serverLog.Length == 0 ? "" : $"\nlast lines of {logFile}:\n{serverLog}"));
        }
        _dataSource.Value.Clear();
        Log.Started(_logger, DataDir);
    }

    public async Task StopAsync(StopMode mode, CancellationToken ct)
    {
        if (LivePostmasterPid() is null)
        {
            return;
        }
        var modeName = mode == StopMode.Immediate ? "immediate" : "fast";
        var wait = mode == StopMode.Immediate && ImmediateStopWait < PgCtlTimeout ? ImmediateStopWait : PgCtlTimeout;
        if (mode == StopMode.Fast)
        {
            await BeforeStopAsync(ct).ConfigureAwait(false);
        }

        Log.Stopping(_logger, DataDir, modeName);
        if (mode == StopMode.Immediate && LivePostmasterPid() is { } frozen && ProcessState(frozen) == 'T')
        {
            // A stopped (SIGSTOP) postmaster never handles SIGQUIT: waiting for pg_ctl would only add its timeout.
            await KillPostmasterAsync(frozen, "the postmaster is stopped (state T) and cannot act on SIGQUIT", ct).ConfigureAwait(false);
            _dataSource.Value.Clear();
            Log.Stopped(_logger, DataDir);
            return;
        }

        PgProgramResult? result = null;
        PostgresException? failure = null;
        try
        {
            result = await Programs.RunAsync(
                "pg_ctl",
                ["stop", "-m", modeName, "-w", "-t", ((int)wait.TotalSeconds).ToString(CultureInfo.InvariantCulture), "-D", DataDir],
                wait + QuickProgram, ct).ConfigureAwait(false);
        }
        catch (PostgresException e) when (mode == StopMode.Immediate)
        {
            failure = e;
        }
        _dataSource.Value.Clear();
        if (result is not { Succeeded: true } && LivePostmasterPid() is { } pid)
        {
            if (mode != StopMode.Immediate)
            {
                throw result!.Failure($"pg_ctl stop -m {modeName} of {DataDir}");
            }

            // A postmaster that does not act on SIGQUIT (stopped, hung on storage) must still go: an immediate stop is how a
            // primary that lost (or is handing over) the lock stops taking writes.
            await KillPostmasterAsync(pid, failure?.Message ?? result?.TailText ?? "", ct).ConfigureAwait(false);
        }
        Log.Stopped(_logger, DataDir);
    }

    private async Task KillPostmasterAsync(int pid, string why, CancellationToken ct)
    {
        // pg_ctl starts the postmaster in a session of its own, so it leads a process group that its backends share.
        var group = Native.ProcessGroup(pid) == pid;
        Log.KillingPostmaster(_logger, DataDir, pid, group, why);
        // PostgreSQL gives every child a session of its own: a group signal misses them, and a backend that outlives its
        // postmaster can still commit. Stop the postmaster (it forks nothing more), kill each child, then it.
        Native.Kill(pid, 19 /* SIGSTOP */);
        foreach (var child in ChildrenOf(pid))
        {
            Native.Kill(child, Native.SigKill);
        }

        Native.Kill(group ? -pid : pid, Native.SigKill);
        Native.Kill(pid, Native.SigKill);
        var started = _time.GetTimestamp();
        while (LivePostmasterPid() == pid)
        {
            if (_time.GetElapsedTime(started) > KillWait)
            {
                // Blocked in the kernel (storage): SIGKILL takes effect the moment the call returns, before the process
                // runs another instruction of its own, so it can acknowledge nothing more. The stop has done its job; the
                // caller may hand the lock over.
                Log.PostmasterNotGoneAfterKill(_logger, DataDir, pid, KillWait.TotalSeconds);
                return;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(50), _time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The state letter of /proc/&lt;pid&gt;/stat (R, S, D, T, Z…), or '?' when it cannot be read.</summary>
    private static char ProcessState(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            var close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length ? stat[close + 2] : '?';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return '?';
        }
    }

    private static List<int> ChildrenOf(int pid)
    {
        var children = new List<int>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task"))
            {
                foreach (var word in File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (int.TryParse(word, NumberStyles.None, CultureInfo.InvariantCulture, out var child))
                    {
                        children.Add(child);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return children;
    }

    public async Task FollowAsync(Upstream? upstream, CancellationToken ct)
    {
        var confPath = InData("postgresql.conf");
        var existing = await File.ReadAllTextAsync(confPath, ct).ConfigureAwait(false);
        User.WriteFile(confPath, PgConfigFiles.WithReplicaSettings(existing, PgConfigFiles.ReplicaSettings(_config, upstream)));
        EnsureStandbySignal();
        await using var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false);
        await ExecuteAsync(connection, "SELECT pg_reload_conf()", ct).ConfigureAwait(false);
        Log.Following(_logger, upstream?.Address.ToString() ?? "nothing", upstream?.SlotName);
    }

    public async Task ReloadAsync(DynamicConfig dynamic, CancellationToken ct)
    {
        var confPath = InData("postgresql.conf");
        if (!File.Exists(confPath))
        {
            return;
        }

        var existing = await File.ReadAllTextAsync(confPath, ct).ConfigureAwait(false);
        var replicaLines = existing.Split('\n').Where(l => l.Length > 0 && PgConfigFiles.IsReplicaParameter(l)).Select(l => l + "\n");
        var parameters = await ServerParametersAsync(dynamic, ct).ConfigureAwait(false);
        User.WriteFile(confPath, PgConfigFiles.RenderPostgresqlConf(parameters, [], IncludedConf) + string.Concat(replicaLines));
        // The cluster-wide pg_hba may have changed with the config key (a local one is written as it is, again).
        if (File.Exists(InData("pg_hba.conf")) && !File.ReadLines(InData("pg_hba.conf")).Take(1).Any(l => l.Contains("custom bootstrap in progress", StringComparison.Ordinal)))
        {
            User.WriteFile(InData("pg_hba.conf"), PgConfigFiles.RenderPgHba(_config, dynamic));
        }
        if (LivePostmasterPid() is not null)
        {
            await using var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false);
            await ExecuteAsync(connection, "SELECT pg_reload_conf()", ct).ConfigureAwait(false);
        }
    }

    /// <summary>Promotes and checkpoints (see <see cref="PromoteAsync(bool, CancellationToken)"/>).</summary>
    public Task PromoteAsync(CancellationToken ct) => PromoteAsync(checkpoint: true, ct);

    public async Task PromoteAsync(bool checkpoint, CancellationToken ct)
    {
        Log.Promoting(_logger, DataDir);
        await using (var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false))
        {
            await using var promote = new NpgsqlCommand("SELECT pg_promote(true, $1)", connection)
            {
                Parameters = { new() { Value = (int)PromoteWait.TotalSeconds } },
                CommandTimeout = (int)PromoteWait.TotalSeconds + 10,
            };
            if (await promote.ExecuteScalarAsync(ct).ConfigureAwait(false) is not true)
            {
                throw new PostgresException($"pg_promote in {DataDir} did not finish within {PromoteWait.TotalSeconds:0} s");
            }
        }
        var deadline = _time.GetTimestamp();
        while (await IsInRecoveryAsync(ct).ConfigureAwait(false))
        {
            if (_time.GetElapsedTime(deadline) > PromoteWait)
            {
                throw new PostgresException($"PostgreSQL in {DataDir} was promoted but is still in recovery after {PromoteWait.TotalSeconds:0} s");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(100), _time, ct).ConfigureAwait(false);
        }
        // PostgreSQL promotes without a checkpoint, so pg_control keeps the old timeline until the next one. pg_rewind
        // reads the source's timeline from pg_control: against a fresh primary it reports "no rewind required" and the
        // diverged old primary can then never follow ("new timeline forked off ... before current recovery point").
        if (checkpoint)
        {
            await CheckpointAsync(ct).ConfigureAwait(false);
        }

        Log.Promoted(_logger, DataDir);
    }

    private async Task<bool> IsInRecoveryAsync(CancellationToken ct)
    {
        await using var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT pg_is_in_recovery()", connection);
        return await command.ExecuteScalarAsync(ct).ConfigureAwait(false) is true;
    }

    public async Task<bool> RewindAsync(HostPort source, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (LivePostmasterPid() is { } running)
        {
            throw new PostgresException($"cannot pg_rewind {DataDir}: PostgreSQL is running (postmaster pid {running})");
        }
        WritePgpass();
        var auth = _config.Postgresql.Authentication;
        var rewindUser = auth.Rewind ?? auth.Superuser;
        // pg_rewind that cannot connect fails like one that broke the data directory; the caller then moves the data aside
        // and clones. Against a source that does not answer, refuse instead: nothing has been changed yet.
        await EnsureSourceAnswersAsync(source, rewindUser, ct).ConfigureAwait(false);
        var sourceServer = PgConfigFiles.Conninfo(
            ("host", source.Host),
            ("port", source.Port.ToString(CultureInfo.InvariantCulture)),
            ("user", rewindUser.Username),
            ("dbname", "postgres"),
            ("connect_timeout", SourceConnectSeconds.ToString(CultureInfo.InvariantCulture)));
        Log.Rewinding(_logger, DataDir, source.ToString());
        var result = await Programs.RunAsync(
            "pg_rewind", ["-D", DataDir, $"--source-server={sourceServer}", "--progress"],
            timeout: null, ct, ProgramEnvironment(PgConfigFiles.RewindService)).ConfigureAwait(false);
        lock (_controlGate)
        {
            _control = null;
        }
        if (!result.Succeeded)
        {
            Log.RewindFailed(_logger, DataDir, source.ToString(), result.ExitCode, result.TailText);
            return false;
        }
        Log.Rewound(_logger, DataDir, source.ToString());
        return true;
    }

    private async Task EnsureSourceAnswersAsync(HostPort source, Credentials credentials, CancellationToken ct)
    {
        var builder = ConnectionString();
        builder.Host = source.Host;
        builder.Port = source.Port;
        builder.Username = credentials.Username;
        builder.Password = credentials.Password;
        builder.Timeout = SourceConnectSeconds;
        ApplySsl(builder, credentials.Ssl);
        try
        {
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(ct).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or InvalidOperationException && !ct.IsCancellationRequested)
        {
            throw new PostgresException($"cannot pg_rewind {DataDir} from {source}: it does not answer as {credentials.Username} ({e.Message}); nothing was changed", e);
        }
    }

    private string PrimaryMarkPath => Path.TrimEndingDirectorySeparator(Path.GetFullPath(DataDir)) + ".steward-primary";

    public Task SetPrimaryMarkAsync(bool present, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var path = PrimaryMarkPath;
        if (present == File.Exists(path))
        {
            return Task.CompletedTask;
        }

        if (present)
        {
            using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
            {
                var text = System.Text.Encoding.UTF8.GetBytes(
                    $"this data directory ({DataDir}) ran as a primary; steward rewinds or re-clones it before it follows any leader\n");
                file.Write(text);
                file.Flush(flushToDisk: true);
            }

            Log.PrimaryMarkSet(_logger, path);
        }
        else
        {
            File.Delete(path);
            Log.PrimaryMarkCleared(_logger, path);
        }

        FsyncDirectory(Path.GetDirectoryName(path)!);
        return Task.CompletedTask;
    }

    private static void FsyncDirectory(string directory)
    {
        try
        {
            using var handle = File.OpenHandle(directory, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, FileOptions.None);
            RandomAccess.FlushToDisk(handle);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the file itself is on disk; only its directory entry may not survive a power loss.
        }
    }

    public Task<string> MoveDataDirAsideAsync(CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        if (LivePostmasterPid() is { } running)
        {
            throw new PostgresException($"cannot move {DataDir} aside: PostgreSQL is running (postmaster pid {running})");
        }
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(DataDir));
        var target = $"{full}.diverged-{_time.GetUtcNow():yyyyMMdd'T'HHmmss'Z'}";
        for (var n = 1; Directory.Exists(target) || File.Exists(target); n++)
        {
            target = $"{full}.diverged-{_time.GetUtcNow():yyyyMMdd'T'HHmmss'Z'}-{n}";
        }
        Directory.Move(full, target);
        Log.MovedAside(_logger, DataDir, target);
        return Task.FromResult(target);
    }

    // ---------------------------------------------------------------- primary housekeeping

    public async Task SyncReplicationSlotsAsync(IReadOnlyCollection<string> slotNames, CancellationToken ct, Func<string, bool>? mayDrop = null)
    {
        ArgumentNullException.ThrowIfNull(slotNames);
        await using var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false);
        var existing = new Dictionary<string, bool>(StringComparer.Ordinal);
        await using (var list = new NpgsqlCommand("SELECT slot_name::text, active FROM pg_replication_slots WHERE slot_type = 'physical'", connection))
        await using (var reader = await list.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                existing[reader.GetString(0)] = reader.GetBoolean(1);
            }
        }
        foreach (var name in slotNames.Where(n => !existing.ContainsKey(n)))
        {
            await ExecuteAsync(connection, "SELECT pg_create_physical_replication_slot($1, true)", ct, name).ConfigureAwait(false);
            Log.SlotCreated(_logger, name);
        }
        foreach (var (name, active) in existing)
        {
            if (!active && !slotNames.Contains(name) && (mayDrop is null || mayDrop(name)))
            {
                await ExecuteAsync(connection, "SELECT pg_drop_replication_slot($1)", ct, name).ConfigureAwait(false);
                Log.SlotDropped(_logger, name);
            }
        }
    }

    /// <summary>How long a pg_replication_slot_advance may take (it decodes the WAL in between): longer than other queries.</summary>
    private const int SlotAdvanceSeconds = 60;

    public async Task<LocalSlots?> ListReplicationSlotsAsync(CancellationToken ct)
    {
        await using var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("""
            SELECT slot_name::text, slot_type, database::text, plugin::text, active,
                   (restart_lsn - '0/0'::pg_lsn)::bigint, (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint,
                   xmin::text::bigint, catalog_xmin::text::bigint, wal_status, current_setting('wal_level')
            FROM pg_replication_slots RIGHT JOIN (SELECT 1) AS one ON NOT temporary
            """, connection);
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var slots = new List<ReplicationSlot>();
        var walLevel = "replica";
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            walLevel = reader.GetString(10);
            if (reader.IsDBNull(0))
            {
                continue; // the row that carries wal_level when there is no slot
            }

            slots.Add(new ReplicationSlot(reader.GetString(0), reader.GetString(1), NullableString(reader, 2), NullableString(reader, 3), reader.GetBoolean(4))
            {
                RestartLsn = NullableLong(reader, 5),
                ConfirmedFlushLsn = NullableLong(reader, 6),
                Xmin = NullableLong(reader, 7),
                CatalogXmin = NullableLong(reader, 8),
                WalStatus = NullableString(reader, 9),
            });
        }

        return new LocalSlots(slots, walLevel);
    }

    public async Task<SlotActionFailure?> ApplySlotActionAsync(SlotAction action, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(action);
        var database = action switch
        {
            CreateLogicalSlot create => create.Database,
            AdvanceSlot { Database: { } db } => db,
            _ => "postgres",
        };
        try
        {
            var builder = ConnectionString();
            builder.Database = database;
            builder.CommandTimeout = action is AdvanceSlot ? SlotAdvanceSeconds : QuerySeconds;
            await using var connection = new NpgsqlConnection(builder.ConnectionString);
            await connection.OpenAsync(ct).ConfigureAwait(false);
            switch (action)
            {
                case CreatePhysicalSlot:
                    await ExecuteAsync(connection, "SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", ct, action.Name).ConfigureAwait(false);
                    Log.SlotCreated(_logger, action.Name);
                    break;
                case CreateLogicalSlot logical:
                    await ExecuteAsync(connection, "SELECT pg_create_logical_replication_slot($1, $2) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", ct, logical.Name, logical.Plugin).ConfigureAwait(false);
                    Log.LogicalSlotCreated(_logger, logical.Name, logical.Database, logical.Plugin);
                    break;
                case DropSlot drop:
                    // Only while inactive: a consumer that connected since the slot was listed keeps it.
                    await using (var command = new NpgsqlCommand("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", connection))
                    {
                        command.Parameters.Add(new NpgsqlParameter { Value = drop.Name });
                        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
                        if (!await reader.ReadAsync(ct).ConfigureAwait(false))
                        {
                            return new SlotActionFailure(null, "it is in use or gone");
                        }
                    }

                    Log.SlotDroppedBecause(_logger, drop.Name, drop.Reason);
                    break;
                case AdvanceSlot advance:
                    await ExecuteAsync(connection, "SELECT pg_replication_slot_advance($1, $2::pg_lsn)", ct, advance.Name, Lsn.Format(advance.Lsn)).ConfigureAwait(false);
                    break;
                default:
                    throw new InvalidOperationException($"unknown slot action {action}");
            }

            return null;
        }
        catch (Npgsql.PostgresException e)
        {
            return new SlotActionFailure(e.SqlState, e.MessageText);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException && !ct.IsCancellationRequested)
        {
            return new SlotActionFailure(null, e.Message);
        }
    }

    /// <summary>A connection to the primary at <paramref name="leader"/> as the rewind user (or the superuser), as Patroni copies slots.</summary>
    private NpgsqlConnectionStringBuilder LeaderConnectionString(HostPort leader)
    {
        var auth = _config.Postgresql.Authentication;
        var user = auth.Rewind ?? auth.Superuser;
        var builder = ConnectionString();
        builder.Host = leader.Host;
        builder.Port = leader.Port;
        builder.Username = user.Username;
        builder.Password = user.Password;
        builder.Timeout = SourceConnectSeconds;
        ApplySsl(builder, user.Ssl);
        return builder;
    }

    public async Task<IReadOnlyList<SlotCopy>> ReadLogicalSlotsAsync(HostPort leader, IReadOnlyCollection<string> names, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(leader);
        ArgumentNullException.ThrowIfNull(names);
        await using var connection = new NpgsqlConnection(LeaderConnectionString(leader).ConnectionString);
        await connection.OpenAsync(ct).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("""
            SELECT slot_name::text, slot_type, datname::text, plugin::text, catalog_xmin::text::bigint,
                   (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint, (restart_lsn - '0/0'::pg_lsn)::bigint,
                   pg_read_binary_file('pg_replslot/' || slot_name || '/state')
            FROM pg_get_replication_slots() JOIN pg_database ON datoid = oid
            WHERE NOT pg_is_in_recovery() AND slot_name = ANY($1)
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = names.ToArray() });
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var copies = new List<SlotCopy>();
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            var slot = new ReplicationSlot(reader.GetString(0), reader.GetString(1), NullableString(reader, 2), NullableString(reader, 3))
            {
                CatalogXmin = NullableLong(reader, 4),
                ConfirmedFlushLsn = NullableLong(reader, 5),
                RestartLsn = NullableLong(reader, 6),
            };
            copies.Add(new SlotCopy(slot, reader.IsDBNull(7) ? [] : (byte[])reader.GetValue(7)));
        }

        return copies;
    }

    public Task InstallSlotCopiesAsync(IReadOnlyList<SlotCopy> copies, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(copies);
        if (LivePostmasterPid() is { } running)
        {
            throw new PostgresException($"cannot install replication slot files in {DataDir}: PostgreSQL is running (postmaster pid {running})");
        }

        var replslot = InData("pg_replslot");
        foreach (var copy in copies)
        {
            ct.ThrowIfCancellationRequested();
            var name = copy.Slot.Name;
            if (!SlotSettings.IsValidName(name))
            {
                throw new PostgresException($"refusing to install a replication slot named '{name}'");
            }

            var dir = Path.Combine(replslot, name);
            var temp = dir + ".tmp";
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }

            User.CreateDirectory(temp, DataDirMode);
            var state = Path.Combine(temp, "state");
            using (var file = new FileStream(state, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            {
                file.Write(copy.State);
                file.Flush(flushToDisk: true);
            }

            User.Own(state);
            FsyncDirectory(temp);
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }

            Directory.Move(temp, dir);
            FsyncDirectory(dir);
        }

        FsyncDirectory(replslot);
        return Task.CompletedTask;
    }

    public async Task<IReadOnlyDictionary<string, long?>> ReadCatalogXminsAsync(HostPort leader, IReadOnlyCollection<string> names, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(leader);
        ArgumentNullException.ThrowIfNull(names);
        await using var connection = new NpgsqlConnection(LeaderConnectionString(leader).ConnectionString);
        await connection.OpenAsync(ct).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(
            "SELECT slot_name::text, catalog_xmin::text::bigint FROM pg_get_replication_slots() WHERE NOT pg_is_in_recovery() AND slot_name = ANY($1)", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = names.ToArray() });
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var result = new Dictionary<string, long?>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            result[reader.GetString(0)] = NullableLong(reader, 1);
        }

        return result;
    }

    public Task WriteMissingHistoryFilesAsync(IReadOnlyList<HistoryEntry> history, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(history);
        var walDir = InData("pg_wal");
        if (!Directory.Exists(walDir))
        {
            throw new PostgresException($"cannot write timeline history files: {walDir} does not exist");
        }
        foreach (var (timeline, content) in TimelineHistory.Files(history))
        {
            ct.ThrowIfCancellationRequested();
            var path = Path.Combine(walDir, TimelineHistory.FileName(timeline));
            if (!File.Exists(path))
            {
                User.WriteFile(path, content);
                Log.HistoryFileWritten(_logger, path);
            }
        }
        return Task.CompletedTask;
    }

    public async Task<TimelineSwitch?> ReadLastTimelineSwitchAsync(long timeline, CancellationToken ct)
    {
        var path = Path.Combine(InData("pg_wal"), TimelineHistory.FileName(timeline));
        string content;
        try
        {
            content = await File.ReadAllTextAsync(path, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        try
        {
            return TimelineHistory.ParseLast(content);
        }
        catch (PostgresException e)
        {
            throw new PostgresException($"{path}: {e.Message}", e);
        }
    }

    public async Task SetSynchronousStandbyNamesAsync(string? value, CancellationToken ct)
    {
        var path = InData(PgConfigFiles.SyncConf);
        string? removed = null;
        if (value is null)
        {
            if (!File.Exists(path))
            {
                return;
            }

            removed = await ReadSyncConfValueAsync(path, ct).ConfigureAwait(false);
            File.Delete(path);
        }
        else
        {
            User.WriteFile(path, $"{PgConfigFiles.Header}\nsynchronous_standby_names = {PgConfigFiles.QuoteConfValue(value)}\n");
        }

        if (LivePostmasterPid() is null)
        {
            return;
        }

        await using (var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false))
        {
            await ExecuteAsync(connection, "SELECT pg_reload_conf()", ct).ConfigureAwait(false);
        }

        // The postmaster re-reads its files asynchronously: wait (bounded) until a new session sees the change.
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            string? now;
            await using (var probe = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false))
            {
                await using var command = new NpgsqlCommand("SELECT current_setting('synchronous_standby_names')", probe);
                now = (string?)await command.ExecuteScalarAsync(ct).ConfigureAwait(false);
            }

            if (value is null ? now != removed : now == value)
            {
                return;
            }

            var waited = System.Diagnostics.Stopwatch.GetElapsedTime(started);
            if (value is null && waited > TimeSpan.FromSeconds(2))
            {
                return; // the operator's own value may equal Steward's last one
            }

            if (waited > TimeSpan.FromSeconds(5))
            {
                throw new PostgresException($"synchronous_standby_names is still '{now}' 5 s after a reload that set it to '{value}'");
            }

            await Task.Delay(50, ct).ConfigureAwait(false);
        }
    }

    private static async Task<string?> ReadSyncConfValueAsync(string path, CancellationToken ct)
    {
        foreach (var line in await File.ReadAllLinesAsync(path, ct).ConfigureAwait(false))
        {
            var equals = line.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && line[..equals].Trim() == "synchronous_standby_names")
            {
                var text = line[(equals + 1)..].Trim();
                return text.Length >= 2 && text[0] == '\'' && text[^1] == '\'' ? text[1..^1].Replace("''", "'", StringComparison.Ordinal) : text;
            }
        }

        return null;
    }

    public async Task CheckpointAsync(CancellationToken ct)
    {
        await using var connection = await _dataSource.Value.OpenConnectionAsync(ct).ConfigureAwait(false);
        // Bounded like pg_ctl: a checkpoint that stalls (storage) must not freeze every later decision.
        await using var command = new NpgsqlCommand("CHECKPOINT", connection) { CommandTimeout = _config.Postgresql.PgCtlTimeout };
        await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- files

    private const UnixFileMode DataDirMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private IReadOnlyDictionary<string, string> PassfileEnvironment => ProgramEnvironment(service: null);

    /// <summary>
    /// The environment of a program that connects to another member: the pgpass file for the password and, with
    /// <paramref name="service"/>, the connection service file for that user's SSL settings (never argv).
    /// </summary>
    private Dictionary<string, string> ProgramEnvironment(string? service)
    {
        var environment = new Dictionary<string, string>
        {
            ["PGPASSFILE"] = _config.Postgresql.Pgpass,
            ["PGCONNECT_TIMEOUT"] = SourceConnectSeconds.ToString(CultureInfo.InvariantCulture),
        };
        if (service is not null)
        {
            environment["PGSERVICEFILE"] = PgConfigFiles.ServiceFilePath(_config);
            environment["PGSERVICE"] = service;
        }

        return environment;
    }

    /// <summary>
    /// The parameters for postgresql.conf, adapted to this server's binary (<see cref="PgParameterCatalog"/>): what was
    /// converted or left out is logged as a warning, once per sentence.
    /// </summary>
    private async Task<SortedDictionary<string, string>> ServerParametersAsync(DynamicConfig dynamic, CancellationToken ct)
    {
        var socket = SocketDirectory();
        var catalog = await PgParameterCatalog.ForAsync(Programs, ct).ConfigureAwait(false);
        await catalog.ProbeAsync(Programs, User, PgConfigFiles.Parameters(_config, dynamic, socket).Keys, ct).ConfigureAwait(false);
        var warnings = new List<string>();
        var parameters = PgConfigFiles.Parameters(_config, dynamic, socket, name => catalog.Knows(name) ?? true, warnings);
        foreach (var warning in warnings)
        {
            bool first;
            lock (_parameterWarnings)
            {
                first = _parameterWarnings.Add(warning);
            }
            if (first)
            {
                Log.ParameterAdapted(_logger, warning);
            }
        }
        return parameters;
    }

    /// <param name="pgHba">pg_hba.conf's text; null: the configured one (<see cref="PgConfigFiles.RenderPgHba"/>).</param>
    /// <param name="keepSignals">leave standby.signal as it is (a custom bootstrap's recovery decides).</param>
    private void WriteConfigFiles(StartRole role, Upstream? upstream, SortedDictionary<string, string> parameters, string? pgHba = null, bool keepSignals = false)
    {
        var conf = InData("postgresql.conf");
        var baseConf = InData(PgConfigFiles.BaseConf);
        if (_config.Postgresql.CustomConf is null && !File.Exists(baseConf))
        {
            // initdb's (or a foreign) postgresql.conf becomes the base we include, as Patroni does
            if (File.Exists(conf) && !File.ReadLines(conf).Take(1).Contains(PgConfigFiles.Header))
            {
                File.Move(conf, baseConf);
            }
            else
            {
                User.WriteFile(baseConf, "");
            }
        }
        var replica = role == StartRole.Replica ? PgConfigFiles.ReplicaSettings(_config, upstream) : [];
        User.WriteFile(conf, PgConfigFiles.RenderPostgresqlConf(parameters, replica, IncludedConf));
        User.WriteFile(InData("pg_hba.conf"), pgHba ?? PgConfigFiles.RenderPgHba(_config));
        if (_config.Postgresql.PgIdent is { } ident)
        {
            if (parameters.ContainsKey("ident_file"))
            {
                Log.PgIdentNotWritten(_logger, parameters["ident_file"]);
            }
            else
            {
                User.WriteFile(InData("pg_ident.conf"), PgConfigFiles.RenderPgIdent(ident));
            }
        }
        WritePgpass();
        if (keepSignals)
        {
            return;
        }
        if (role == StartRole.Replica)
        {
            EnsureStandbySignal();
        }
        else
        {
            File.Delete(InData(StandbySignal));
        }
    }

    private void EnsureStandbySignal()
    {
        var path = InData(StandbySignal);
        if (!File.Exists(path))
        {
            User.WriteFile(path, "");
        }
    }

    private void WritePgpass()
    {
        var path = _config.Postgresql.Pgpass;
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }
        User.WriteFile(path, PgConfigFiles.RenderPgpass(_config));
        User.WriteFile(PgConfigFiles.ServiceFilePath(_config), PgConfigFiles.RenderServiceFile(_config));
    }

    private string SocketDirectory() => User.CanWriteTo(VarRunPostgresql) ? VarRunPostgresql : DataDir;

    /// <summary>
    /// <c>use_unix_socket</c>: the first absolute directory of the local <c>unix_socket_directories</c> (Patroni's "first
    /// suitable value"; an <c>@abstract</c> name is skipped), else the one Steward sets by default.
    /// </summary>
    private string UnixSocketHost() =>
        PgConfigFiles.FirstSocketDirectory(_config.Postgresql.Parameters.GetValueOrDefault("unix_socket_directories")) ?? SocketDirectory();

    private static string TailOf(string path, int lines)
    {
        try
        {
            return string.Join('\n', File.ReadLines(path).TakeLast(lines));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    // ---------------------------------------------------------------- connection

    private NpgsqlDataSource CreateDataSource() => NpgsqlDataSource.Create(ConnectionString());

    /// <summary>
    /// The superuser on the local server. Not pooled: a pooled connection keeps answering through its own backend while the
    /// postmaster is stopped or hung and accepts nobody else; each inspection must prove that a new connection gets in.
    /// </summary>
    /// <param name="overSocket">through the unix socket (<c>use_unix_socket</c> for the superuser; the replication user
    /// stays on TCP, as Patroni's without <c>use_unix_socket_repl</c>).</param>
    private NpgsqlConnectionStringBuilder ConnectionString(bool? overSocket = null)
    {
        var listen = _config.Postgresql.Listen;
        var host = listen.Host.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
        host = host switch
        {
            "" or "*" or "0.0.0.0" => "127.0.0.1",
            "::" => "::1",
            _ => host,
        };
        if (overSocket ?? _config.Postgresql.UseUnixSocket)
        {
            host = UnixSocketHost();
        }
        var superuser = _config.Postgresql.Authentication.Superuser;
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = host,
            Port = listen.Port,
            Username = superuser.Username,
            Password = superuser.Password,
            Database = "postgres",
            ApplicationName = "steward",
            Timeout = ConnectSeconds,
            CommandTimeout = QuerySeconds,
            Pooling = false,
            // PGPASSFILE etc. in the agent's environment must not change whom we connect as
            Passfile = _config.Postgresql.Pgpass,
        };
        ApplySsl(builder, superuser.Ssl);
        return builder;
    }

    /// <summary>
    /// A user's libpq SSL settings on an Npgsql connection. As in libpq, <c>require</c> with a root certificate verifies
    /// the server's certificate against it (verify-ca).
    /// </summary>
    internal static void ApplySsl(NpgsqlConnectionStringBuilder builder, PgSsl? ssl)
    {
        builder.SslMode = ssl?.Mode switch
        {
            "disable" => SslMode.Disable,
            "allow" => SslMode.Allow,
            "require" when ssl.RootCert is not null => SslMode.VerifyCA,
            "require" => SslMode.Require,
            "verify-ca" => SslMode.VerifyCA,
            "verify-full" => SslMode.VerifyFull,
            _ => SslMode.Prefer,
        };
        builder.SslCertificate = ssl?.Cert;
        builder.SslKey = ssl?.Key;
        builder.SslPassword = ssl?.Password;
        builder.RootCertificate = ssl?.RootCert;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken ct, params object[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var value in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }
        await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_dataSource.IsValueCreated)
        {
            await _dataSource.Value.DisposeAsync().ConfigureAwait(false);
        }
    }
}
