using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;
using Steward.Postgres;

namespace Steward.Tests.Postgres;

public sealed class PgConfigFilesTests
{
    private static StewardConfig Config(
        IReadOnlyDictionary<string, string>? parameters = null,
        IReadOnlyList<string>? pgHba = null,
        Credentials? rewind = null,
        bool useUnixSocket = false,
        string? superuserPassword = "su:pa\\ss") => new()
    {
        Scope = "demo",
        Name = "node-1",
        RestApi = new RestApiConfig { Listen = new("127.0.0.1", 8008), ConnectAddress = new("127.0.0.1", 8008) },
        Etcd3 = new Etcd3Config { Endpoints = ["http://127.0.0.1:2379"] },
        Postgresql = new PostgresqlConfig
        {
            Listen = new("0.0.0.0", 5433),
            ConnectAddress = new("10.0.0.1", 5433),
            DataDir = "/srv/pg/data",
            Pgpass = "/srv/pg/pgpass.node-1",
            Authentication = new PostgresAuthentication
            {
                Superuser = new("postgres", superuserPassword),
                Replication = new("replicator", "rep-pass"),
                Rewind = rewind,
            },
            Parameters = parameters ?? new Dictionary<string, string>(),
            PgHba = pgHba ?? [],
            UseUnixSocket = useUnixSocket,
        },
    };

    [Fact]
    public void Local_parameters_override_dynamic_ones_which_override_the_defaults()
    {
        var dynamic = new DynamicConfig
        {
            Postgresql = new DynamicPostgresConfig
            {
                Parameters = new Dictionary<string, string> { ["wal_keep_size"] = "256MB", ["max_connections"] = "100", ["shared_buffers"] = "64MB" },
            },
        };
        var config = Config(new Dictionary<string, string> { ["shared_buffers"] = "128MB" });

        var parameters = PgConfigFiles.Parameters(config, dynamic, "/var/run/postgresql");

        Assert.Equal("256MB", parameters["wal_keep_size"]);
        Assert.Equal("100", parameters["max_connections"]);
        Assert.Equal("128MB", parameters["shared_buffers"]);
        Assert.Equal("replica", parameters["wal_level"]);
        Assert.Equal("/var/run/postgresql", parameters["unix_socket_directories"]);
    }

    [Fact]
    public void Listen_address_and_port_always_follow_postgresql_listen()
    {
        var dynamic = new DynamicConfig
        {
            Postgresql = new DynamicPostgresConfig { Parameters = new Dictionary<string, string> { ["port"] = "1" } },
        };
        var config = Config(new Dictionary<string, string> { ["listen_addresses"] = "*", ["primary_conninfo"] = "host=x" });

        var parameters = PgConfigFiles.Parameters(config, dynamic, "/tmp");

        Assert.Equal("0.0.0.0", parameters["listen_addresses"]);
        Assert.Equal("5433", parameters["port"]);
        Assert.False(parameters.ContainsKey("primary_conninfo"));
    }

    /// <summary>A PostgreSQL 15 server's catalog (wal_keep_size, no wal_keep_segments) and a PostgreSQL 12 one's.</summary>
    private static readonly string[] Pg15 = ["wal_level", "hot_standby", "max_wal_senders", "max_replication_slots", "wal_log_hints", "wal_keep_size",
        "wal_retrieve_retry_interval", "password_encryption", "unix_socket_directories", "listen_addresses", "port", "max_connections", "shared_buffers"];

    private static readonly string[] Pg12 = [.. Pg15.Where(n => n != "wal_keep_size"), "wal_keep_segments"];

    private static SortedDictionary<string, string> Adapted(string[] server, IReadOnlyDictionary<string, string> local, List<string> warnings, IReadOnlyDictionary<string, string>? dynamicParameters = null)
    {
        var catalog = new PgParameterCatalog("/usr/lib/postgresql/x/bin/postgres", server);
        var dynamic = new DynamicConfig { Postgresql = new DynamicPostgresConfig { Parameters = dynamicParameters ?? new Dictionary<string, string>() } };
        return PgConfigFiles.Parameters(Config(local), dynamic, "/tmp", name => catalog.Knows(name) ?? false, warnings);
    }

    /// <summary>Story (issue 14, item 2): wal_keep_segments: 100 from a Patroni config reached PostgreSQL 15, which refused to start.</summary>
    [Fact]
    public void Wal_keep_segments_becomes_wal_keep_size_in_16MB_segments_on_a_server_that_only_has_wal_keep_size()
    {
        var warnings = new List<string>();
        var parameters = Adapted(Pg15, new Dictionary<string, string>(), warnings, new Dictionary<string, string> { ["wal_keep_segments"] = "100" });

        Assert.Equal("1600MB", parameters["wal_keep_size"]);
        Assert.False(parameters.ContainsKey("wal_keep_segments"));
        Assert.Contains("wal_keep_segments = 100 written as wal_keep_size = 1600MB", Assert.Single(warnings), StringComparison.Ordinal);
    }

    [Fact]
    public void When_both_are_written_the_name_the_server_has_wins()
    {
        var warnings = new List<string>();
        var on15 = Adapted(Pg15, new Dictionary<string, string> { ["wal_keep_segments"] = "100", ["wal_keep_size"] = "1GB" }, warnings);
        Assert.Equal("1GB", on15["wal_keep_size"]);
        Assert.False(on15.ContainsKey("wal_keep_segments"));

        var on12 = Adapted(Pg12, new Dictionary<string, string> { ["wal_keep_segments"] = "100", ["wal_keep_size"] = "1GB" }, warnings);
        Assert.Equal("100", on12["wal_keep_segments"]);
        Assert.False(on12.ContainsKey("wal_keep_size"));
    }

    [Theory]
    [InlineData(null, "8")] // our default 128MB, converted as Patroni converts its own: (128 + 8) / 16
    [InlineData("1GB", "64")]
    [InlineData("512", "32")]
    public void Wal_keep_size_becomes_wal_keep_segments_on_a_server_before_13(string? size, string segments)
    {
        var local = size is null ? new Dictionary<string, string>() : new Dictionary<string, string> { ["wal_keep_size"] = size };
        var parameters = Adapted(Pg12, local, []);

        Assert.Equal(segments, parameters["wal_keep_segments"]);
        Assert.False(parameters.ContainsKey("wal_keep_size"));
    }

    [Fact]
    public void A_parameter_the_server_does_not_know_is_left_out_with_a_warning_and_an_extension_parameter_is_kept()
    {
        var warnings = new List<string>();
        var parameters = Adapted(Pg15, new Dictionary<string, string> { ["foo_bar"] = "1", ["myext.x"] = "on", ["max_connections"] = "50" }, warnings);

        Assert.False(parameters.ContainsKey("foo_bar"));
        Assert.Equal("on", parameters["myext.x"]);
        Assert.Equal("50", parameters["max_connections"]);
        Assert.Equal("5433", parameters["port"]);
        Assert.Contains("parameter foo_bar = 1 left out of postgresql.conf: this PostgreSQL server does not know it", Assert.Single(warnings), StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_catalog_nothing_is_adapted()
    {
        var parameters = PgConfigFiles.Parameters(Config(new Dictionary<string, string> { ["wal_keep_segments"] = "100", ["foo_bar"] = "1" }), new DynamicConfig(), "/tmp");

        Assert.Equal("100", parameters["wal_keep_segments"]);
        Assert.Equal("1", parameters["foo_bar"]);
    }

    [Theory]
    [InlineData("128MB", 128L)]
    [InlineData("2GB", 2048L)]
    [InlineData("2048kB", 2L)]
    [InlineData("1TB", 1048576L)]
    [InlineData(" 64 ", 64L)]
    [InlineData("1.5GB", null)]
    [InlineData("lots", null)]
    [InlineData("64mb", null)] // PostgreSQL's units are case-sensitive
    public void Sizes_are_read_in_megabytes(string text, long? megabytes) => Assert.Equal(megabytes, PgConfigFiles.Megabytes(text));

    [Fact]
    public void The_catalog_reads_the_first_column_of_describe_config_and_keeps_dotted_names()
    {
        const string output = "archive_mode\tpostmaster\tWrite-Ahead Log / Archiving\tENUM\toff\t\t\tAllows archiving.\t\n"
                              + "Wal_Keep_Size\tsighup\tReplication / Sending Servers\tINTEGER\t0\t0\t2147483647\tSets the size.\t\n";
        var catalog = new PgParameterCatalog("/bin/postgres", PgParameterCatalog.ParseDescribeConfig(output));

        Assert.Equal(2, catalog.Count);
        Assert.True(catalog.Knows("wal_keep_size"));
        Assert.True(catalog.Knows("ARCHIVE_MODE"));
        Assert.True(catalog.Knows("pg_stat_statements.max"));
        Assert.Null(catalog.Knows("zero_damaged_pages")); // not listed: only postgres -C can tell
    }

    [Fact]
    public void Postgresql_conf_includes_the_base_and_quotes_every_value()
    {
        var conf = PgConfigFiles.RenderPostgresqlConf(
            [new("listen_addresses", "127.0.0.1"), new("log_line_prefix", "%m 'x' \\")],
            [new("recovery_target_timeline", "latest")]);

        var lines = conf.Split('\n');
        Assert.Equal("include 'postgresql.base.conf'", lines[1]);
        Assert.Contains("listen_addresses = '127.0.0.1'", lines);
        Assert.Contains("log_line_prefix = '%m ''x'' \\\\'", lines);
        Assert.Contains("recovery_target_timeline = 'latest'", lines);
    }

    [Fact]
    public void Replica_settings_point_at_the_upstream_as_the_replication_user_with_the_pgpass_file()
    {
        var settings = PgConfigFiles.ReplicaSettings(Config(), new Upstream(new HostPort("10.0.0.2", 5432), "node_1"));

        Assert.Equal(
            [
                new("primary_conninfo", "host='10.0.0.2' port='5432' user='replicator' passfile='/srv/pg/pgpass.node-1' application_name='node-1' sslmode='prefer'"),
                new("primary_slot_name", "node_1"),
                new("recovery_target_timeline", "latest"),
            ],
            settings);
    }

    [Fact]
    public void A_replica_without_upstream_only_follows_the_latest_timeline()
    {
        var settings = PgConfigFiles.ReplicaSettings(Config(), upstream: null);

        Assert.Equal([new("recovery_target_timeline", "latest")], settings);
    }

    [Fact]
    public void A_nostream_replica_gets_no_conninfo_and_no_slot_only_the_latest_timeline()
    {
        var settings = PgConfigFiles.ReplicaSettings(Config(), new Upstream(new HostPort("10.0.0.2", 5432), "node_1", Stream: false));

        Assert.Equal([new("recovery_target_timeline", "latest")], settings);
    }

    [Fact]
    public void Conninfo_values_escape_quotes_and_backslashes()
    {
        Assert.Equal("user='o\\'brien' passfile='C:\\\\x'", PgConfigFiles.Conninfo(("user", "o'brien"), ("passfile", "C:\\x")));
    }

    [Fact]
    public void Following_another_upstream_replaces_only_the_replica_settings()
    {
        var before = PgConfigFiles.RenderPostgresqlConf(
            [new("port", "5433"), new("shared_buffers", "128MB")],
            PgConfigFiles.ReplicaSettings(Config(), new Upstream(new HostPort("10.0.0.2", 5432), "node_1")));

        var after = PgConfigFiles.WithReplicaSettings(before, PgConfigFiles.ReplicaSettings(Config(), new Upstream(new HostPort("10.0.0.3", 5432), null)));

        Assert.Contains("shared_buffers = '128MB'", after, StringComparison.Ordinal);
        Assert.Contains("include 'postgresql.base.conf'", after, StringComparison.Ordinal);
        Assert.Contains("host=''10.0.0.3''", after, StringComparison.Ordinal);
        Assert.DoesNotContain("10.0.0.2", after, StringComparison.Ordinal);
        Assert.DoesNotContain("primary_slot_name", after, StringComparison.Ordinal);
        Assert.Single(after.Split('\n'), l => l.StartsWith("recovery_target_timeline", StringComparison.Ordinal));
    }

    [Fact]
    public void Default_pg_hba_allows_the_superuser_by_peer_and_this_host_by_scram_only_and_replication_only_to_the_replication_user()
    {
        var hba = PgConfigFiles.RenderPgHba(Config()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')).ToList();

        Assert.Equal(
            [
                "local all postgres peer",
                "host all all 127.0.0.1/32 scram-sha-256",
                "host all all ::1/128 scram-sha-256",
                "host all postgres samehost scram-sha-256",
                "host replication replicator 127.0.0.1/32 scram-sha-256",
                "host replication replicator ::1/128 scram-sha-256",
                "host replication replicator samehost scram-sha-256",
            ],
            hba);
        Assert.DoesNotContain(hba, l => l.Contains("trust", StringComparison.Ordinal) || l.Contains("md5", StringComparison.Ordinal));
        Assert.All(hba.Where(l => l.Contains("replication", StringComparison.Ordinal)), l => Assert.Contains(" replicator ", l, StringComparison.Ordinal));
        Assert.Equal("scram-sha-256", PgConfigFiles.Parameters(Config(), new DynamicConfig(), "/tmp")["password_encryption"]);
    }

    private static StewardConfig WithSsl(PgSsl? replication, PgSsl? rewind)
    {
        var config = Config(rewind: rewind is null ? null : new Credentials("rewind_user", "rw") { Ssl = rewind });
        var auth = config.Postgresql.Authentication;
        return new StewardConfig
        {
            Scope = config.Scope,
            Name = config.Name,
            RestApi = config.RestApi,
            Etcd3 = config.Etcd3,
            Postgresql = new PostgresqlConfig
            {
                Listen = config.Postgresql.Listen,
                ConnectAddress = config.Postgresql.ConnectAddress,
                DataDir = config.Postgresql.DataDir,
                Pgpass = config.Postgresql.Pgpass,
                Authentication = new PostgresAuthentication
                {
                    Superuser = auth.Superuser,
                    Replication = auth.Replication with { Ssl = replication },
                    Rewind = auth.Rewind,
                },
            },
        };
    }

    private static readonly PgSsl FullSsl = new()
    {
        Mode = "verify-full", Cert = "/etc/pg/client.crt", Key = "/etc/pg/client.key", Password = "key-secret", RootCert = "/etc/pg/ca.crt",
    };

    [Fact]
    public void The_replication_users_ssl_settings_go_into_primary_conninfo()
    {
        var settings = PgConfigFiles.ReplicaSettings(WithSsl(FullSsl, null), new Upstream(new HostPort("10.0.0.2", 5432), null));

        Assert.Equal(
            "host='10.0.0.2' port='5432' user='replicator' passfile='/srv/pg/pgpass.node-1' application_name='node-1' sslmode='verify-full' "
            + "sslcert='/etc/pg/client.crt' sslkey='/etc/pg/client.key' sslpassword='key-secret' sslrootcert='/etc/pg/ca.crt'",
            settings[0].Value);
    }

    [Fact]
    public void The_service_file_carries_the_replication_and_rewind_users_ssl_settings_for_pg_basebackup_and_pg_rewind()
    {
        var text = PgConfigFiles.RenderServiceFile(WithSsl(FullSsl, new PgSsl { Mode = "require" }));

        Assert.Equal(
            "[steward_replication]\nsslmode=verify-full\nsslcert=/etc/pg/client.crt\nsslkey=/etc/pg/client.key\nsslpassword=key-secret\n"
            + "sslrootcert=/etc/pg/ca.crt\n[steward_rewind]\nsslmode=require\n",
            text[(text.IndexOf('\n', StringComparison.Ordinal) + 1)..]);
        Assert.Equal("/srv/pg/pgpass.node-1.service.conf", PgConfigFiles.ServiceFilePath(Config()));
        Assert.Throws<PostgresException>(() => PgConfigFiles.RenderServiceFile(WithSsl(FullSsl with { Password = "a\nb" }, null)));
    }

    [Fact]
    public void Without_a_rewind_user_the_rewind_service_has_the_superusers_settings_and_none_are_empty_sections()
    {
        var text = PgConfigFiles.RenderServiceFile(Config());

        Assert.EndsWith("[steward_replication]\n[steward_rewind]\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_local_pg_hba_wins_over_the_cluster_wide_one_which_wins_over_the_default()
    {
        var cluster = new DynamicConfig { Postgresql = new DynamicPostgresConfig { PgHba = ["host all all 0.0.0.0/0 md5"] } };

        Assert.EndsWith("\nhost all all 0.0.0.0/0 md5\n", PgConfigFiles.RenderPgHba(Config(), cluster), StringComparison.Ordinal);
        Assert.EndsWith("\nlocal all all trust\n", PgConfigFiles.RenderPgHba(Config(pgHba: ["local all all trust"]), cluster), StringComparison.Ordinal);
        Assert.Equal(PgConfigFiles.RenderPgHba(Config()), PgConfigFiles.RenderPgHba(Config(), new DynamicConfig()));
        Assert.Contains("local all postgres peer", PgConfigFiles.RenderPgHba(Config()), StringComparison.Ordinal);
    }

    [Fact]
    public void Configured_pg_hba_lines_are_written_as_given()
    {
        var hba = PgConfigFiles.RenderPgHba(Config(pgHba: ["local all all trust", "host all all 0.0.0.0/0 md5"]));

        Assert.EndsWith("local all all trust\nhost all all 0.0.0.0/0 md5\n", hba, StringComparison.Ordinal);
    }

    [Fact]
    public void Pgpass_has_one_escaped_line_per_distinct_user()
    {
        var pgpass = PgConfigFiles.RenderPgpass(Config(rewind: new("postgres", "other")));

        Assert.Equal("*:*:*:postgres:su\\:pa\\\\ss\n*:*:*:replicator:rep-pass\n", pgpass);
    }

    [Fact]
    public void Sql_quoting_doubles_quotes()
    {
        Assert.Equal("\"we\"\"ird\"", PgConfigFiles.QuoteIdent("we\"ird"));
        Assert.Equal("'it''s'", PgConfigFiles.QuoteLiteral("it's"));
    }

    [Fact]
    public void Custom_conf_is_included_in_place_of_the_base_and_the_managed_settings_still_come_after_it()
    {
        var conf = PgConfigFiles.RenderPostgresqlConf([new("port", "5433")], [], "/etc/pg/custom.conf").Split('\n');

        Assert.Equal("include '/etc/pg/custom.conf'", conf[1]);
        Assert.DoesNotContain(conf, l => l.Contains(PgConfigFiles.BaseConf, StringComparison.Ordinal));
        Assert.True(Array.IndexOf(conf, "port = '5433'") > 1);
    }

    [Fact]
    public void Pg_ident_lines_are_written_as_given_one_per_line() =>
        Assert.Equal("# Written by steward from postgresql.pg_ident; edits are overwritten.\nmap1 alice postgres\nmap1 bob postgres\n",
            PgConfigFiles.RenderPgIdent(["map1 alice postgres", "map1 bob postgres"]));

    [Theory]
    [InlineData("/var/run/postgresql", "/var/run/postgresql")]
    [InlineData("@abstract, /tmp,/var/run/postgresql", "/tmp")]
    [InlineData("'', \"/run/pg\"", "/run/pg")]
    [InlineData("@only", null)]
    [InlineData("", null)]
    [InlineData(null, null)]
    public void The_unix_socket_to_connect_through_is_the_first_absolute_directory(string? value, string? expected) =>
        Assert.Equal(expected, PgConfigFiles.FirstSocketDirectory(value));

    [Fact]
    public void With_use_unix_socket_the_default_pg_hba_takes_the_superusers_password_on_the_socket_instead_of_peer()
    {
        static string Local(StewardConfig config) => PgConfigFiles.RenderPgHba(config).Split('\n').Single(l => l.StartsWith("local", StringComparison.Ordinal));

        Assert.Equal("local all postgres scram-sha-256", Local(Config(useUnixSocket: true)));
        Assert.Equal("local all postgres peer", Local(Config(useUnixSocket: true, superuserPassword: null)));
        Assert.Equal("local all postgres peer", Local(Config()));
    }
}
