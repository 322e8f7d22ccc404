using Steward.Core.Cluster;
using Steward.Core.Configuration;
using static Steward.Tests.Configuration.ConfigText;

namespace Steward.Tests.Configuration;

/// <summary>Section-specific rules: etcd3, bootstrap, parameters, tags, unsupported Patroni keys.</summary>
public sealed class ConfigSectionsTests
{
    private static string WithEtcd(string etcd3) =>
        Minimal.Replace("etcd3:\n  hosts: 127.0.0.1:2379", etcd3, StringComparison.Ordinal);

    [Theory]
    [InlineData("etcd3:\n  hosts: 127.0.0.1:2379", "http://127.0.0.1:2379")]
    [InlineData("etcd3:\n  hosts: 10.0.0.1:2379,10.0.0.2:2379, 10.0.0.3", "http://10.0.0.1:2379 http://10.0.0.2:2379 http://10.0.0.3:2379")]
    [InlineData("etcd3:\n  hosts:\n    - 10.0.0.1:2379\n    - '[fd00::2]:2379'", "http://10.0.0.1:2379 http://[fd00::2]:2379")]
    [InlineData("etcd3:\n  host: etcd:2380", "http://etcd:2380")]
    [InlineData("etcd3:\n  url: http://etcd.local:2379/", "http://etcd.local:2379")]
    [InlineData("etcd3:\n  url: http://etcd.local", "http://etcd.local:2379")]
    [InlineData("etcd3:\n  urls: [http://a:2379, http://b:2379]", "http://a:2379 http://b:2379")]
    [InlineData("etcd3:\n  protocol: http\n  hosts: a:1", "http://a:1")]
    [InlineData("etcd3:\n  protocol: https\n  hosts: a:2379,b", "https://a:2379 https://b:2379")]
    [InlineData("etcd3:\n  url: https://etcd.local:2379/", "https://etcd.local:2379")]
    [InlineData("etcd3:\n  urls: [https://a:2379, https://b:2379]", "https://a:2379 https://b:2379")]
    public void Etcd3_endpoints_are_accepted_in_each_of_patronis_forms(string etcd3, string expected) =>
        Assert.Equal(expected.Split(' '), Parse(WithEtcd(etcd3)).Etcd3.Endpoints);

    [Theory]
    [InlineData("etcd3:\n  protocol: ftp\n  hosts: a:2379", "etcd3.protocol: expected http or https, got 'ftp'")]
    [InlineData("etcd3:\n  urls: [http://a:2379, https://b:2379]", "etcd3.urls: mixes http:// and https:// endpoints")]
    [InlineData("etcd3:\n  url: ftp://a:2379", "etcd3.url: expected an http:// or https:// URL, got 'ftp://a:2379'")]
    [InlineData("etcd3:\n  hosts: a:2379\n  cacert: /nonexistent/ca.pem", "etcd3.cacert: no such file: /nonexistent/ca.pem")]
    [InlineData("etcd3:\n  hosts: a:2379\n  key: /nonexistent/key.pem", "etcd3.key: no such file: /nonexistent/key.pem")]
    [InlineData("etcd3:\n  urls: a:2379", "etcd3.urls: expected a URL like http://127.0.0.1:2379, got 'a:2379'")]
    [InlineData("etcd3:\n  hosts: a:99999", "etcd3.hosts: port must be between 1 and 65535, got 99999")]
    [InlineData("etcd3:\n  username: root", "etcd3: one of hosts, host, url or urls is required")]
    [InlineData("etcd3:\n  host: a:1\n  hosts: b:1", "etcd3: set only one of hosts, host, url or urls (found hosts, host)")]
    public void Bad_etcd3_settings_are_rejected(string etcd3, string expected) =>
        Assert.Contains(expected, Fails(WithEtcd(etcd3)).Message, StringComparison.Ordinal);

    [Fact]
    public void Etcd3_username_needs_a_password() =>
        Assert.Contains(
            "etcd3.password: required when etcd3.username is set",
            Fails(WithEtcd("etcd3:\n  hosts: a:1\n  username: root")).Message,
            StringComparison.Ordinal);

    [Fact]
    public void Patronis_etcd_v2_section_is_read_as_etcd3_with_a_warning_that_says_what_differs()
    {
        var config = Parse(WithEtcd("etcd:\n  host: 10.0.0.7:2379"));

        Assert.Equal(["http://10.0.0.7:2379"], config.Etcd3.Endpoints);
        Assert.Contains(config.Warnings, w => w.Contains("etcd: read as etcd3: Steward speaks etcd's v3 API", StringComparison.Ordinal)
                                             && w.Contains("keys Patroni wrote through the v2 API are in another keyspace", StringComparison.Ordinal));
    }

    [Fact]
    public void Etcd_and_etcd3_together_are_refused()
    {
        var yaml = Minimal + "\netcd:\n  host: 10.0.0.7:2379\n";

        var error = Fails(yaml);

        Assert.Equal(
            $"/etc/steward/node.yml:{Position(yaml, "etcd:")}: etcd: set either etcd3: or Patroni's etcd: (read as etcd3), not both",
            error.Message);
    }

    [Fact]
    public void Patronis_own_postgres0_yml_starts_as_it_is()
    {
        var config = Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Configuration", "Fixtures", "postgres0.yml")));

        Assert.Equal(("batman", "postgresql0"), (config.Scope, config.Name));
        Assert.Equal(["http://127.0.0.1:2379"], config.Etcd3.Endpoints);
        Assert.Equal((30, 10, 10), (config.Bootstrap.Dcs.Ttl, config.Bootstrap.Dcs.LoopWait, config.Bootstrap.Dcs.RetryTimeout));
        Assert.Equal(["--encoding=UTF8", "--data-checksums"], config.Bootstrap.Initdb);
        Assert.Equal(new Credentials("rewind_user", "rewind_password"), config.Postgresql.Authentication.Rewind);
        Assert.Equal("..", config.Postgresql.Parameters["unix_socket_directories"]);
        Assert.Equal(["host replication replicator 127.0.0.1/32 md5", "host all all 0.0.0.0/0 md5"], config.Bootstrap.Dcs.Postgresql.PgHba);
        Assert.All(config.Warnings, w => Assert.Matches("etcd: read as etcd3|clonefrom|nostream", w));
    }

    [Theory]
    [InlineData("consul")]
    [InlineData("zookeeper")]
    [InlineData("kubernetes")]
    [InlineData("raft")]
    [InlineData("exhibitor")]
    public void Other_stores_are_rejected(string store) =>
        Assert.EndsWith(
            $"{store}: only etcd3 is supported; Steward cannot use {store}",
            Fails(WithEtcd($"{store}:\n  host: a:1")).Message,
            StringComparison.Ordinal);

    [Fact]
    public void Initdb_options_are_normalized_from_patronis_list()
    {
        var config = Parse(With("bootstrap:\n  initdb:\n    - data-checksums\n    - encoding: UTF8\n    - {locale: en_US.UTF-8}\n    - auth-host: scram-sha-256"));

        Assert.Equal(["--data-checksums", "--encoding=UTF8", "--locale=en_US.UTF-8", "--auth-host=scram-sha-256"], config.Bootstrap.Initdb);
    }

    [Fact]
    public void Initdb_options_may_also_be_a_mapping() =>
        Assert.Equal(["--encoding=UTF8", "--locale=C"], Parse(With("bootstrap:\n  initdb: {encoding: UTF8, locale: C}")).Bootstrap.Initdb);

    [Theory]
    [InlineData("    - pgdata: /tmp/x", "--pgdata is set by Steward and cannot be given here")]
    [InlineData("    - [a, b]", "expected an option name or one 'option: value' pair, got a list")]
    [InlineData("    - {a: 1, b: 2}", "expected an option name or one 'option: value' pair, got a mapping")]
    public void Bad_initdb_options_are_rejected(string item, string expected) =>
        Assert.Contains($"bootstrap.initdb: {expected}", Fails(With($"bootstrap:\n  initdb:\n{item}")).Message, StringComparison.Ordinal);

    [Fact]
    public void Bootstrap_dcs_settings_are_read_and_master_start_timeout_is_accepted_as_the_old_name()
    {
        var config = Parse(With("""
            bootstrap:
              dcs:
                ttl: 20
                loop_wait: 2
                retry_timeout: 5
                maximum_lag_on_failover: 0
                master_start_timeout: 0
                synchronous_mode: false
                pause: yes
                postgresql:
                  use_pg_rewind: false
                  use_slots: off
            """));

        var dcs = config.Bootstrap.Dcs;
        Assert.Equal((20, 2, 5, 0L, 0), (dcs.Ttl, dcs.LoopWait, dcs.RetryTimeout, dcs.MaximumLagOnFailover, dcs.PrimaryStartTimeout));
        Assert.True(!dcs.SynchronousMode && dcs.Pause);
        Assert.False(dcs.Postgresql.UsePgRewind || dcs.Postgresql.UseSlots);
    }

    /// <summary>Issue 16: bootstrap.dcs slots and ignore_slots (Patroni's YAML) are read into the config key's JSON.</summary>
    [Fact]
    public void Permanent_slots_and_ignore_slots_are_read()
    {
        var dcs = Parse(With("""
            bootstrap:
              dcs:
                slots:
                  cdc: {type: logical, database: postgres, plugin: test_decoding}
                  keep:
                    type: physical
                  bare:
                ignore_slots:
                  - name: external
                  - {type: logical, plugin: pgoutput}
            """)).Bootstrap.Dcs;

        var slots = SlotSettings.Read(dcs);
        Assert.Empty(slots.Problems);
        Assert.Equal([new PermanentSlot("cdc", "logical", "postgres", "test_decoding"), new PermanentSlot("keep", "physical"), new PermanentSlot("bare", "physical")], slots.Permanent);
        Assert.Equal([new SlotMatcher(Name: "external"), new SlotMatcher(Type: "logical", Plugin: "pgoutput")], slots.Ignore);
        Assert.Contains("\"cdc\":{\"type\":\"logical\"", DynamicConfigJson.Serialize(dcs), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("slots:\n      Bad: {type: physical}", "bootstrap.dcs.slots.Bad", "invalid slot name")]
    [InlineData("slots:\n      cdc: {type: logical, database: postgres}", "bootstrap.dcs.slots.cdc", "a logical slot needs plugin")]
    [InlineData("ignore_slots:\n      - {type: virtual}", "bootstrap.dcs.ignore_slots[0]", "type must be physical or logical")]
    public void Bad_permanent_slots_stop_start_up_with_the_key_named(string yaml, string key, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(With($"bootstrap:\n  dcs:\n    {yaml}")));
        Assert.Contains(e.Errors, x => x.Contains(key, StringComparison.Ordinal) && x.Contains(message, StringComparison.Ordinal));
    }

    [Fact]
    public void Synchronous_mode_settings_are_read()
    {
        var dcs = Parse(With("bootstrap:\n  dcs:\n    synchronous_mode: true\n    synchronous_mode_strict: on\n    synchronous_node_count: 2\n    maximum_lag_on_syncnode: 1048576")).Bootstrap.Dcs;
        Assert.Equal((true, true, 2, 1048576L), (dcs.SynchronousMode, dcs.SynchronousModeStrict, dcs.SynchronousNodeCount, dcs.MaximumLagOnSyncnode));
    }

    [Fact]
    public void Synchronous_node_count_below_one_is_refused() =>
        Assert.Contains("synchronous_node_count", Fails(With("bootstrap:\n  dcs:\n    synchronous_node_count: 0")).Message, StringComparison.Ordinal);

    [Fact]
    public void Primary_start_timeout_and_its_old_name_together_are_rejected() =>
        Assert.Contains(
            "set primary_start_timeout or its old name master_start_timeout, not both",
            Fails(With("bootstrap:\n  dcs:\n    primary_start_timeout: 10\n    master_start_timeout: 20")).Message,
            StringComparison.Ordinal);

    [Fact]
    public void Parameters_keep_their_yaml_text_and_booleans_become_on_or_off()
    {
        var config = Parse(With("""
              parameters:
                max_connections: 100
                shared_buffers: 128MB
                hot_standby: true
                fsync: False
                wal_log_hints: on
                quoted: "true"
                ratio: 0.5
            """));

        Assert.Equal(
            new Dictionary<string, string>
            {
                ["max_connections"] = "100", ["shared_buffers"] = "128MB", ["hot_standby"] = "on", ["fsync"] = "off",
                ["wal_log_hints"] = "on", ["quoted"] = "true", ["ratio"] = "0.5",
            },
            config.Postgresql.Parameters);
    }

    [Fact]
    public void Parameter_without_a_single_value_is_rejected() =>
        Assert.Contains(
            "postgresql.parameters.shared_preload_libraries: expected a single value, got a list",
            Fails(With("  parameters:\n    shared_preload_libraries: [a, b]")).Message,
            StringComparison.Ordinal);

    [Fact]
    public void Tags_set_the_four_flags_and_keep_every_tag()
    {
        var config = Parse(With("tags:\n  nofailover: true\n  nosync: 'yes'\n  failover_priority: 2\n  zone: eu-1\n  replicatefrom:"));

        Assert.True(config.Tags.NoFailover);
        Assert.True(config.Tags.NoSync);
        Assert.False(config.Tags.NoLoadBalance);
        Assert.Equal(true, config.Tags.All["nofailover"]);
        Assert.Equal(2L, config.Tags.All["failover_priority"]);
        Assert.Equal("eu-1", config.Tags.All["zone"]);
        Assert.Null(config.Tags.All["replicatefrom"]);
    }

    [Fact]
    public void Log_level_is_case_insensitive() =>
        Assert.Equal("WARNING", Parse(With("log:\n  level: warning")).Log.Level);

    [Fact]
    public void Other_postgresql_settings_are_read()
    {
        var config = Parse(With("  bin_dir: /usr/lib/postgresql/16/bin\n  pg_ctl_timeout: 120\n  os_user: pg\n  pg_hba:\n    - local all all peer"));

        Assert.Equal("/usr/lib/postgresql/16/bin", config.Postgresql.BinDir);
        Assert.Equal(120, config.Postgresql.PgCtlTimeout);
        Assert.Equal("pg", config.Postgresql.OsUser);
        Assert.Equal(["local all all peer"], config.Postgresql.PgHba);
    }

    [Fact]
    public void Unsupported_patroni_keys_are_warnings_with_their_line_not_errors()
    {
        var yaml = Minimal
            .Replace("restapi:\n", "restapi:\n  ciphers: HIGH\n", StringComparison.Ordinal)
            .Replace("  hosts: 127.0.0.1:2379", "  hosts: 127.0.0.1:2379\n  use_proxies: true", StringComparison.Ordinal)
            + """

              callbacks:
                on_start: /bin/true
              create_replica_methods: [pgbackrest, basebackup]
              pgbackrest:
                command: restore
              basebackup:
                checkpoint: fast
              use_slots: true
            bootstrap:
              method: initdb
              users: {admin: {password: x}}
              dcs:
                synchronous_mode_strict: false
                failsafe_mode: true
                postgresql:
                  pg_ident: [m a b]
            watchdog:
              mode: automatic
            ctl:
              insecure: true
            log:
              dir: /var/log/steward
            """;

        var config = Parse(yaml);

        string Warning(string marker, string path) =>
            $"/etc/steward/node.yml:{Line(yaml, marker)}: {path} is a Patroni setting Steward does not support; ignored";
        Assert.Equal(
            new[]
            {
                Warning("ciphers:", "restapi.ciphers"),
                Warning("use_proxies:", "etcd3.use_proxies"),
                Warning("pg_ident: [m a b]", "bootstrap.dcs.postgresql.pg_ident"),
                Warning("users: {admin", "bootstrap.users"),
                Warning("use_slots: true", "postgresql.use_slots"),
                Warning("  dir: /var/log", "log.dir"),
            }.Order(StringComparer.Ordinal),
            config.Warnings.Where(w => !w.Contains("watchdog", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        Assert.Contains(config.Warnings, w => w.Contains("watchdog.mode: automatic: Steward drives no hardware watchdog", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("off")]
    [InlineData("false")]
    public void Watchdog_off_is_accepted_silently(string mode) =>
        Assert.DoesNotContain(Parse(With($"watchdog:\n  mode: {mode}\n  device: /dev/watchdog\n  safety_margin: 5")).Warnings, w => w.Contains("watchdog", StringComparison.Ordinal));

    [Fact]
    public void A_watchdog_section_without_mode_is_Patronis_automatic_and_warned() =>
        Assert.Contains(Parse(With("watchdog:\n  device: /dev/watchdog\n  safety_margin: 5")).Warnings,
            w => w.Contains("watchdog.mode: not set (Patroni's default is automatic): Steward drives no hardware watchdog", StringComparison.Ordinal));

    [Theory]
    [InlineData("required", "Steward drives no hardware watchdog")]
    [InlineData("sometimes", "is not one of off, automatic, required")]
    public void Watchdog_required_or_unknown_mode_is_refused(string mode, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(With($"watchdog:\n  mode: {mode}")));
        Assert.Contains(e.Errors, x => x.Contains("watchdog.mode", StringComparison.Ordinal) && x.Contains(message, StringComparison.Ordinal));
    }

    /// <summary>Story (issue 14, item 6): bootstrap.method was a warning and initdb ran: a user who asked to restore a backup got an empty cluster.</summary>
    [Fact]
    public void A_custom_bootstrap_method_is_read_as_Patroni_passes_it_to_its_command()
    {
        var config = Parse(With("""
            bootstrap:
              method: pitr
              pitr:
                command: /usr/local/bin/restore --from 'my backups' "s3://b/\"x\""
                keep_existing_recovery_conf: false
                recovery_conf:
                  recovery_target_action: promote
                  restore_command: cp /archive/%f %p
                  recovery_target_inclusive: false
                backup: latest
                scope: ignored
            """));

        var method = config.Bootstrap.Method!;
        Assert.Equal("pitr", method.Name);
        Assert.Equal(["/usr/local/bin/restore", "--from", "my backups", "s3://b/\"x\""], method.Command);
        Assert.Equal(new Dictionary<string, string> { ["recovery_target_action"] = "promote", ["restore_command"] = "cp /archive/%f %p", ["recovery_target_inclusive"] = "off" },
            method.RecoveryConf);
        Assert.Equal(["/usr/local/bin/restore", "--from", "my backups", "s3://b/\"x\"", "--scope=demo", "--datadir=/srv/data", "--backup=latest"],
            method.CommandLine("demo", "/srv/data"));
        Assert.DoesNotContain(config.Warnings, w => w.Contains("bootstrap", StringComparison.Ordinal));
    }

    [Fact]
    public void No_params_leaves_out_scope_and_datadir()
    {
        var method = Parse(With("bootstrap:\n  method: copy\n  copy:\n    command: cp -a /backup/. .\n    no_params: true")).Bootstrap.Method!;
        Assert.Equal(["cp", "-a", "/backup/.", "."], method.CommandLine("demo", "/srv/data"));
        Assert.Null(method.RecoveryConf);
        Assert.Null(Parse(With("bootstrap:\n  method: initdb")).Bootstrap.Method);
    }

    /// <summary>Patroni runs initdb when the method's section or command is missing; Steward refuses to start.</summary>
    [Theory]
    [InlineData("bootstrap:\n  method: pitr", "bootstrap.method: pitr: no bootstrap.pitr section with its command; Steward does not fall back to initdb")]
    [InlineData("bootstrap:\n  method: pitr\n  pitr:\n    keep_existing_recovery_conf: true", "bootstrap.pitr.command: required")]
    [InlineData("bootstrap:\n  method: pitr\n  pitr:\n    command: \"restore 'unclosed\"", "bootstrap.pitr.command: no closing quotation")]
    [InlineData("bootstrap:\n  method: pitr\n  pitr:\n    command: x\n    extra: [1, 2]", "bootstrap.pitr.extra: expected a single value")]
    [InlineData("bootstrap:\n  method: dcs", "'dcs' is a key of bootstrap, not a bootstrap method")]
    public void A_custom_bootstrap_that_cannot_run_stops_start_up_instead_of_running_initdb(string yaml, string message) =>
        Assert.Contains(message, Fails(With(yaml)).Message, StringComparison.Ordinal);

    [Fact]
    public void Create_replica_methods_are_read_as_Patroni_passes_them_with_basebackup_options()
    {
        var config = Parse(With("""
              create_replica_methods: [pgbackrest, basebackup]
              pgbackrest:
                command: /usr/bin/pgbackrest --stanza=main --delta restore
                keep_data: true
                no_params: true
              basebackup:
                - verbose
                - max-rate: 100M
            """));

        var methods = config.Postgresql.CreateReplicaMethods;
        Assert.Equal(2, methods.Count);
        Assert.Equal(["/usr/bin/pgbackrest", "--stanza=main", "--delta", "restore"], methods[0]!.CommandLine("demo", "/d", "postgresql://r@h:5432/postgres"));
        Assert.True(methods[0]!.KeepData);
        Assert.Null(methods[1]); // the built-in pg_basebackup
        Assert.Equal(["--verbose", "--max-rate=100M"], config.Postgresql.BasebackupOptions);

        var script = Parse(With("  create_replica_methods: [script]\n  script:\n    command: /bin/restore\n    from: s3")).Postgresql.CreateReplicaMethods.Single()!;
        Assert.Equal(["/bin/restore", "--scope=demo", "--role=replica", "--datadir=/d", "--connstring=postgresql://r@h:5432/postgres", "--from=s3"],
            script.CommandLine("demo", "/d", "postgresql://r@h:5432/postgres"));
    }

    [Theory]
    [InlineData("  create_replica_methods: [pgbackrest]", "postgresql.create_replica_methods: pgbackrest: no postgresql.pgbackrest section with its command")]
    [InlineData("  create_replica_methods: [x]\n  x:\n    keep_data: true", "postgresql.x.command: required")]
    [InlineData("  basebackup:\n    - pgdata: /elsewhere", "--pgdata is set by Steward and cannot be given here")]
    public void A_replica_method_that_cannot_run_stops_start_up(string yaml, string message) =>
        Assert.Contains(message, Fails(With(yaml)).Message, StringComparison.Ordinal);

    [Fact]
    public void Callbacks_and_pre_promote_are_read_as_commands()
    {
        var postgresql = Parse(With("  callbacks:\n    on_role_change: /usr/local/bin/cb.sh --verbose\n    on_start: \"'my script'\"\n  pre_promote: /usr/local/bin/fence.sh 'old primary'")).Postgresql;

        Assert.Equal(["/usr/local/bin/cb.sh", "--verbose"], postgresql.Callbacks["on_role_change"]);
        Assert.Equal(["my script"], postgresql.Callbacks["on_start"]);
        Assert.Equal(["/usr/local/bin/fence.sh", "old primary"], postgresql.PrePromote);
    }

    [Fact]
    public void An_unknown_callback_is_refused_by_name() =>
        Assert.Contains("postgresql.callbacks.on_promote: unknown key", Fails(With("  callbacks:\n    on_promote: /bin/true")).Message, StringComparison.Ordinal);

    private const string SslUsers = """
        postgresql:
          listen: 127.0.0.1:5432
          data_dir: /var/lib/steward/node1/data
          authentication:
            superuser: {username: postgres, password: secret, sslmode: verify-full, sslrootcert: /etc/pg/ca.crt}
            replication:
              username: replicator
              password: rep-pass
              sslmode: Require
              sslcert: certs/client.crt
              sslkey: certs/client.key
              sslpassword: key-secret
            rewind: {username: rewind_user, sslmode: verify-ca}
        """;

    private static string WithPostgresql(string postgresql) =>
        Minimal[..Minimal.IndexOf("postgresql:", StringComparison.Ordinal)] + postgresql;

    [Fact]
    public void Ssl_settings_of_the_three_users_are_read_with_paths_relative_to_the_config_file()
    {
        var auth = Parse(WithPostgresql(SslUsers)).Postgresql.Authentication;

        Assert.Equal(new PgSsl { Mode = "verify-full", RootCert = "/etc/pg/ca.crt" }, auth.Superuser.Ssl);
        Assert.Equal(
            new PgSsl { Mode = "require", Cert = "/etc/steward/certs/client.crt", Key = "/etc/steward/certs/client.key", Password = "key-secret" },
            auth.Replication.Ssl);
        Assert.Equal(new PgSsl { Mode = "verify-ca" }, auth.Rewind!.Ssl);
        Assert.Null(Parse(Minimal).Postgresql.Authentication.Superuser.Ssl);
    }

    [Fact]
    public void Ssl_settings_come_from_the_environment_too() =>
        Assert.Equal(
            new PgSsl { Mode = "verify-ca", RootCert = "/ca.crt" },
            Parse(Minimal, new Dictionary<string, string?> { ["PATRONI_REPLICATION_SSLMODE"] = "verify-ca", ["STEWARD_REPLICATION_SSLROOTCERT"] = "/ca.crt" })
                .Postgresql.Authentication.Replication.Ssl);

    [Theory]
    [InlineData("sslmode: required", "postgresql.authentication.replication.sslmode: expected one of disable, allow, prefer, require, verify-ca, verify-full, got 'required'")]
    [InlineData("sslkey: /k", "postgresql.authentication.replication.sslcert: required when sslkey is set")]
    [InlineData("sslrootcert: ''", "postgresql.authentication.replication.sslrootcert: must not be empty")]
    public void Bad_ssl_settings_are_refused_naming_the_key(string setting, string expected) =>
        Assert.Contains(expected, Fails(WithPostgresql($$"""
            postgresql:
              listen: 127.0.0.1:5432
              data_dir: /d
              authentication:
                superuser: {username: postgres}
                replication: {username: replicator, {{setting}}}
            """)).Message, StringComparison.Ordinal);

    [Fact]
    public void Ssl_crl_files_are_a_warning_not_acted_on() =>
        Assert.Contains(
            Parse(WithPostgresql("""
                postgresql:
                  listen: 127.0.0.1:5432
                  data_dir: /d
                  authentication:
                    superuser: {username: postgres, sslcrl: /crl.pem}
                    replication: {username: replicator}
                """)).Warnings,
            w => w.Contains("postgresql.authentication.superuser.sslcrl", StringComparison.Ordinal));

    private static string PostgresqlWith(string extra) => WithPostgresql($$"""
        postgresql:
          listen: 127.0.0.1:5432
          data_dir: /d
          authentication:
            superuser: {username: postgres, password: p}
            replication: {username: replicator}
        {{extra}}
        """);

    [Fact]
    public void Patronis_hooks_and_files_are_read_before_stop_pg_ident_custom_conf_unix_socket_and_data_directory_removal()
    {
        var custom = Path.GetTempFileName();
        try
        {
            var postgresql = Parse(PostgresqlWith($"""
                  before_stop: /usr/local/bin/drain 'the pool'
                  pg_ident:
                    - map1 alice postgres
                    - map1 bob postgres
                  custom_conf: {custom}
                  use_unix_socket: true
                  remove_data_directory_on_rewind_failure: true
                  remove_data_directory_on_diverged_timelines: false
                """)).Postgresql;

            Assert.Equal(["/usr/local/bin/drain", "the pool"], postgresql.BeforeStop);
            Assert.Equal(["map1 alice postgres", "map1 bob postgres"], postgresql.PgIdent);
            Assert.Equal(custom, postgresql.CustomConf);
            Assert.True(postgresql.UseUnixSocket);
            Assert.True(postgresql.RemoveDataDirectoryOnRewindFailure);
            Assert.False(postgresql.RemoveDataDirectoryOnDivergedTimelines);
        }
        finally
        {
            File.Delete(custom);
        }
    }

    [Fact]
    public void Without_them_nothing_is_run_written_or_removed()
    {
        var postgresql = Parse(PostgresqlWith("")).Postgresql;

        Assert.Null(postgresql.BeforeStop);
        Assert.Null(postgresql.PgIdent);
        Assert.Null(postgresql.CustomConf);
        Assert.False(postgresql.UseUnixSocket);
        Assert.False(postgresql.RemoveDataDirectoryOnRewindFailure);
        Assert.False(postgresql.RemoveDataDirectoryOnDivergedTimelines);
        Assert.Null(Parse(Minimal).Bootstrap.PostBootstrap);
    }

    [Theory]
    [InlineData("  custom_conf: /no/such/custom.conf", "postgresql.custom_conf: /no/such/custom.conf: no such file")]
    [InlineData("  custom_conf: ''", "postgresql.custom_conf: must not be empty")]
    [InlineData("  use_unix_socket: sometimes", "postgresql.use_unix_socket")]
    [InlineData("  remove_data_directory_on_rewind_failure: 2", "postgresql.remove_data_directory_on_rewind_failure")]
    [InlineData("  before_stop: ''", "postgresql.before_stop")]
    [InlineData("  pg_ident: map1 alice postgres", "postgresql.pg_ident")]
    public void Bad_values_of_the_hooks_and_files_stop_start_up_naming_the_key(string extra, string expected) =>
        Assert.Contains(expected, Fails(PostgresqlWith(extra)).Message, StringComparison.Ordinal);

    [Theory]
    [InlineData("post_bootstrap: /usr/local/bin/setup --db 'app one'")]
    [InlineData("post_init: /usr/local/bin/setup --db 'app one'")]
    public void Post_bootstrap_or_its_older_name_post_init_is_the_command_run_after_bootstrap(string setting) =>
        Assert.Equal(["/usr/local/bin/setup", "--db", "app one"],
            Parse(Minimal + $"\nbootstrap:\n  {setting}\n").Bootstrap.PostBootstrap);

    [Fact]
    public void Post_bootstrap_and_post_init_together_are_refused() =>
        Assert.Contains("set either post_bootstrap or post_init",
            Fails(Minimal + "\nbootstrap:\n  post_bootstrap: /a\n  post_init: /b\n").Message, StringComparison.Ordinal);
}
