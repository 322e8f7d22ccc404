using Steward.Core.Configuration;
using static Steward.Tests.Configuration.ConfigText;

namespace Steward.Tests.Configuration;

public sealed class ConfigLoaderTests
{
    private static string FixturePath(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "Configuration", .. parts]);

    [Fact]
    public void Patroni_template_loads_without_edits_once_its_placeholders_are_substituted()
    {
        var yaml = File.ReadAllText(FixturePath("Fixtures", "patroni.yml.tmpl"))
            .Replace("@NAME@", "node2", StringComparison.Ordinal)
            .Replace("@PGPORT@", "5433", StringComparison.Ordinal)
            .Replace("@RESTPORT@", "8009", StringComparison.Ordinal)
            .Replace("@BASE@", "/tmp/anchor", StringComparison.Ordinal);

        var config = Parse(yaml);

        Assert.Equal("anchor", config.Scope);
        Assert.Equal("/anchor-service/", config.Namespace);
        Assert.Equal("/anchor-service/anchor/", config.KeyPrefix);
        Assert.Equal("node2", config.Name);
        Assert.Equal(new HostPort("127.0.0.1", 8009), config.RestApi.Listen);
        Assert.Equal(new HostPort("127.0.0.1", 8009), config.RestApi.ConnectAddress);
        Assert.Equal(["http://127.0.0.1:12379"], config.Etcd3.Endpoints);
        Assert.Equal(30, config.Bootstrap.Dcs.Ttl);
        Assert.Equal(10, config.Bootstrap.Dcs.LoopWait);
        Assert.Equal(10, config.Bootstrap.Dcs.RetryTimeout);
        Assert.Equal("100", config.Bootstrap.Dcs.Postgresql.Parameters["max_connections"]);
        Assert.Equal("on", config.Bootstrap.Dcs.Postgresql.Parameters["hot_standby"]);
        Assert.Equal("256MB", config.Bootstrap.Dcs.Postgresql.Parameters["wal_keep_size"]);
        Assert.Equal(["--encoding=UTF8", "--locale=C"], config.Bootstrap.Initdb);
        Assert.Equal(new HostPort("127.0.0.1", 5433), config.Postgresql.Listen);
        Assert.Equal("/tmp/anchor/node2/data", config.Postgresql.DataDir);
        Assert.Equal("/tmp/anchor/node2/pgpass", config.Postgresql.Pgpass);
        Assert.Equal(new Credentials("postgres", "postgres"), config.Postgresql.Authentication.Superuser);
        Assert.Equal(new Credentials("replicator", "rep-pass"), config.Postgresql.Authentication.Replication);
        Assert.Equal(new Credentials("rewind_user", "rewind-pass"), config.Postgresql.Authentication.Rewind);
        Assert.Equal(3, config.Postgresql.PgHba.Count);
        Assert.Equal("%m [%p] ", config.Postgresql.Parameters["log_line_prefix"]);
        Assert.Equal("/tmp/anchor/node2", config.Postgresql.Parameters["unix_socket_directories"]);
        Assert.False(config.Tags.NoFailover);
        Assert.Equal(false, config.Tags.All["nosync"]);
        Assert.Empty(config.Warnings);
    }

    [Fact]
    public void Example_node1_file_loads_with_the_superuser_password_from_the_environment()
    {
        var config = ConfigLoader.Load(
            FixturePath("Examples", "node1.yml"),
            new Dictionary<string, string?> { ["STEWARD_SUPERUSER_PASSWORD"] = "s3cret" });

        Assert.Equal("node1", config.Name);
        Assert.Equal(new HostPort("127.0.0.1", 5432), config.Postgresql.ConnectAddress);
        Assert.Equal(new HostPort("127.0.0.1", 8008), config.RestApi.ConnectAddress);
        Assert.Equal(["http://127.0.0.1:2379"], config.Etcd3.Endpoints);
        Assert.Equal("/var/lib/steward/node1/data", config.Postgresql.DataDir);
        Assert.Equal("/var/lib/steward/node1/pgpass.node1", config.Postgresql.Pgpass);
        Assert.Equal(new Credentials("postgres", "s3cret"), config.Postgresql.Authentication.Superuser);
        Assert.Equal(["--encoding=UTF8", "--data-checksums"], config.Bootstrap.Initdb);
        // The example keeps the replication and rewind passwords in the file, which the checkout leaves readable (0644).
        Assert.All(config.Warnings, w => Assert.Contains("chmod 600", w, StringComparison.Ordinal));
    }

    [Fact]
    public void Defaults_fill_every_optional_key()
    {
        var config = Parse(Minimal);

        Assert.Equal("/service/", config.Namespace);
        Assert.Equal("/etc/steward/node.yml", config.SourcePath);
        Assert.Equal(config.RestApi.Listen, config.RestApi.ConnectAddress);
        Assert.Null(config.RestApi.Authentication);
        Assert.Null(config.Etcd3.Username);
        Assert.Equal((6, 1, 2, 1048576L, 30), (config.Bootstrap.Dcs.Ttl, config.Bootstrap.Dcs.LoopWait, config.Bootstrap.Dcs.RetryTimeout, config.Bootstrap.Dcs.MaximumLagOnFailover, config.Bootstrap.Dcs.PrimaryStartTimeout));
        Assert.False(config.Bootstrap.Dcs.Pause || config.Bootstrap.Dcs.SynchronousMode);
        Assert.True(config.Bootstrap.Dcs.Postgresql.UsePgRewind && config.Bootstrap.Dcs.Postgresql.UseSlots);
        Assert.Empty(config.Bootstrap.Initdb);
        Assert.Equal(config.Postgresql.Listen, config.Postgresql.ConnectAddress);
        Assert.Equal("/usr/lib/postgresql/15/bin", config.Postgresql.BinDir);
        Assert.Equal("/var/lib/steward/node1/pgpass.node1", config.Postgresql.Pgpass);
        Assert.Null(config.Postgresql.Authentication.Rewind);
        Assert.Empty(config.Postgresql.Parameters);
        Assert.Empty(config.Postgresql.PgHba);
        Assert.Equal(60, config.Postgresql.PgCtlTimeout);
        Assert.Equal("postgres", config.Postgresql.OsUser);
        Assert.False(config.Tags.NoFailover || config.Tags.NoLoadBalance || config.Tags.CloneFrom || config.Tags.NoSync);
        Assert.Empty(config.Tags.All);
        Assert.Equal("INFO", config.Log.Level);
        Assert.Empty(config.Warnings);
    }

    [Theory]
    [InlineData("service", "/service/")]
    [InlineData("/service", "/service/")]
    [InlineData("service/", "/service/")]
    [InlineData("/a/b/", "/a/b/")]
    public void Namespace_is_normalized_to_a_leading_and_trailing_slash(string written, string expected) =>
        Assert.Equal(expected, Parse(With($"namespace: {written}")).Namespace);

    [Fact]
    public void Relative_paths_are_resolved_against_the_directory_of_the_file()
    {
        var directory = Directory.CreateTempSubdirectory("steward-config-");
        try
        {
            var path = Path.Combine(directory.FullName, "node.yml");
            File.WriteAllText(path, Minimal.Replace("/var/lib/steward/node1/data", "node1/data/", StringComparison.Ordinal) + "\n  pgpass: ../pgpass\n");

            var config = ConfigLoader.Load(path, NoEnvironment);

            Assert.Equal(Path.Combine(directory.FullName, "node1", "data"), config.Postgresql.DataDir);
            Assert.Equal(Path.Combine(Path.GetDirectoryName(directory.FullName)!, "pgpass"), config.Postgresql.Pgpass);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void Unknown_key_is_rejected_with_its_line_number_and_a_suggestion()
    {
        var yaml = With("  lisen_addresses: x");

        var error = Fails(yaml);

        Assert.Equal($"/etc/steward/node.yml:{Position(yaml, "lisen_addresses")}: postgresql.lisen_addresses: unknown key", error.Message);
        var typo = With("  pg_hab: []");
        Assert.Contains("postgresql.pg_hab: unknown key (did you mean 'pg_hba'?)", Fails(typo).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_required_key_is_named_by_its_dotted_path()
    {
        var yaml = Minimal.Replace("  data_dir: /var/lib/steward/node1/data\n", "", StringComparison.Ordinal);

        var error = Fails(yaml);

        Assert.Equal($"/etc/steward/node.yml:{Position(yaml, "listen: 127.0.0.1:5432")}: postgresql.data_dir: required key is missing", error.Message);
    }

    [Fact]
    public void Missing_sections_are_each_reported()
    {
        var error = Fails("scope: demo\nname: node1\n");

        Assert.Contains("restapi: required key is missing", error.Message, StringComparison.Ordinal);
        Assert.Contains("etcd3: required key is missing (or set STEWARD_ETCD3_HOSTS)", error.Message, StringComparison.Ordinal);
        Assert.Contains("postgresql: required key is missing", error.Message, StringComparison.Ordinal);
        Assert.Contains("postgresql.authentication.superuser.username: required key is missing (or set STEWARD_SUPERUSER_USERNAME)", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bootstrap:\n  dcs:\n    ttl: abc", "bootstrap.dcs.ttl: expected an integer, got 'abc'")]
    [InlineData("bootstrap:\n  dcs:\n    pause: maybe", "bootstrap.dcs.pause: expected true or false, got 'maybe'")]
    [InlineData("bootstrap:\n  dcs: [1, 2]", "bootstrap.dcs: expected a mapping, got a list")]
    [InlineData("tags:\n  nofailover: [true]", "tags.nofailover: expected a single value, got a list")]
    [InlineData("tags:\n  failover_priority: -1", "tags.failover_priority: expected a whole number >= 0 (0: never takes over), got '-1'")]
    [InlineData("tags:\n  sync_priority: high", "tags.sync_priority: expected a whole number >= 0 (0: never a synchronous standby), got 'high'")]
    [InlineData("tags:\n  nostream: maybe", "tags.nostream: expected true or false, got 'maybe'")]
    [InlineData("log:\n  level: verbose", "log.level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'verbose'")]
    [InlineData("bootstrap:\n  dcs:\n    synchronous_mode: quorom", "bootstrap.dcs.synchronous_mode: expected true or false, got 'quorom'")]
    [InlineData("bootstrap:\n  dcs:\n    standby_cluster:\n      port: 5432",
        "bootstrap.dcs: standby_cluster.host: required (the remote primary the standby leader streams from; a standby cluster fed only from restore_command is not implemented)")]
    [InlineData("bootstrap:\n  dcs:\n    standby_cluster:\n      host: 10.0.0.1\n      create_replica_methods: [basebackup]",
        "bootstrap.dcs.standby_cluster.create_replica_methods: not implemented: the standby leader clones from standby_cluster.host with pg_basebackup or the member's postgresql.create_replica_methods")]
    [InlineData("bootstrap:\n  dcs:\n    standby_cluster:\n      host: 10.0.0.1\n      hots: x",
        "bootstrap.dcs.standby_cluster.hots: unknown key (did you mean 'host'?)")]
    public void Value_of_the_wrong_type_is_rejected_with_what_was_expected(string text, string expected)
    {
        var error = Fails(With(text));

        Assert.Single(error.Errors);
        Assert.EndsWith(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Priority_tags_are_read_as_numbers_and_nofailover_wins_over_a_failover_priority_with_a_warning()
    {
        var config = Parse(With("tags:\n  failover_priority: 3\n  sync_priority: 0\n  nostream: false"));
        Assert.Equal(3L, config.Tags.All["failover_priority"]);
        Assert.Equal(0L, config.Tags.All["sync_priority"]);
        Assert.Empty(config.Warnings);
        Assert.False(config.Tags.NoStream);
        Assert.True(Parse(With("tags:\n  nostream: true")).Tags.NoStream);
        var cascading = Parse(With("tags:\n  replicatefrom: node2"));
        Assert.Equal("node2", cascading.Tags.All["replicatefrom"]);
        Assert.Empty(cascading.Warnings);
        Assert.Contains("tags.replicatefrom: expected a member name, got True", Fails(With("tags:\n  replicatefrom: true")).Message, StringComparison.Ordinal);

        var both = Parse(With("tags:\n  nofailover: true\n  failover_priority: 3"));
        Assert.True(both.Tags.NoFailover);
        Assert.Contains(both.Warnings, w => w.Contains("tags.failover_priority: 3 conflicts with nofailover: true; nofailover wins", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("abc", "expected host:port, got 'abc'")]
    [InlineData("127.0.0.1:0", "port must be between 1 and 65535, got 0")]
    [InlineData("127.0.0.1:65536", "port must be between 1 and 65535, got 65536")]
    [InlineData("127.0.0.1:http", "expected host:port, got '127.0.0.1:http'")]
    [InlineData("::1:5432", "write an IPv6 address in brackets, e.g. [::1]:5432, got '::1:5432'")]
    public void Bad_listen_address_is_rejected_at_its_line_and_column(string listen, string expected)
    {
        var yaml = Minimal.Replace("listen: 127.0.0.1:5432", $"listen: '{listen}'", StringComparison.Ordinal);

        var error = Fails(yaml);

        Assert.Equal($"/etc/steward/node.yml:{Position(yaml, $"'{listen}'")}: postgresql.listen: {expected}", error.Message);
    }

    [Fact]
    public void Ipv6_and_host_list_addresses_are_accepted()
    {
        var config = Parse(Minimal
            .Replace("listen: 127.0.0.1:8008", "listen: '[::1]:8008'", StringComparison.Ordinal)
            .Replace("listen: 127.0.0.1:5432", "listen: 10.0.0.1,127.0.0.1:5432\n  connect_address: 10.0.0.1:5432", StringComparison.Ordinal));

        Assert.Equal(new HostPort("::1", 8008), config.RestApi.Listen);
        Assert.Equal("[::1]:8008", config.RestApi.ConnectAddress.ToString());
        Assert.Equal(new HostPort("10.0.0.1,127.0.0.1", 5432), config.Postgresql.Listen);
        Assert.Equal(new HostPort("10.0.0.1", 5432), config.Postgresql.ConnectAddress);
    }

    [Theory]
    [InlineData("0.0.0.0:8008")]
    [InlineData("'[::]:8008'")]
    [InlineData("'*:8008'")]
    public void Wildcard_listen_requires_a_connect_address(string listen)
    {
        var yaml = Minimal.Replace("listen: 127.0.0.1:8008", $"listen: {listen}", StringComparison.Ordinal);

        var error = Fails(yaml);
        var accepted = Parse(yaml.Replace($"listen: {listen}", $"listen: {listen}\n  connect_address: 10.0.0.1:8008", StringComparison.Ordinal));

        Assert.Contains("restapi.connect_address: required because listen", error.Message, StringComparison.Ordinal);
        Assert.Equal(new HostPort("10.0.0.1", 8008), accepted.RestApi.ConnectAddress);
    }

    /// <summary>Story (issue 14, item 1): this was an error, so a Patroni user's file with ttl 20, loop_wait 2, retry_timeout 10 did not start.</summary>
    [Fact]
    public void Lease_timing_that_breaks_patronis_rule_is_accepted_with_a_warning_naming_the_three_values()
    {
        var config = Parse(With("bootstrap:\n  dcs:\n    ttl: 20\n    loop_wait: 2\n    retry_timeout: 10"));

        Assert.Equal((20, 2, 10), (config.Bootstrap.Dcs.Ttl, config.Bootstrap.Dcs.LoopWait, config.Bootstrap.Dcs.RetryTimeout));
        var warning = Assert.Single(config.Warnings, w => w.Contains("retry_timeout", StringComparison.Ordinal));
        Assert.Contains("bootstrap.dcs: loop_wait (2) + 2*retry_timeout (10) = 22 is more than ttl (20)", warning, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ttl: 0", "bootstrap.dcs.ttl: must be at least 1, got 0")]
    [InlineData("loop_wait: -1", "bootstrap.dcs.loop_wait: must be at least 1, got -1")]
    [InlineData("retry_timeout: 0", "bootstrap.dcs.retry_timeout: must be at least 1, got 0")]
    public void Lease_timing_values_must_be_positive(string setting, string expected) =>
        Assert.Contains(expected, Fails(With($"bootstrap:\n  dcs:\n    {setting}")).Message, StringComparison.Ordinal);

    [Theory]
    [InlineData("name: node/1", "name: must not contain '/', got 'node/1'")]
    [InlineData("name: ''", "name: must not be empty")]
    [InlineData("scope: a/b", "scope: must not contain '/', got 'a/b'")]
    public void Name_and_scope_must_be_non_empty_and_without_slashes(string line, string expected)
    {
        var key = line[..line.IndexOf(':', StringComparison.Ordinal)];
        var yaml = Minimal.Replace(key == "name" ? "name: node1" : "scope: demo", line, StringComparison.Ordinal);

        Assert.EndsWith(expected, Fails(yaml).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_data_dir_is_rejected() =>
        Assert.EndsWith(
            "postgresql.data_dir: must not be empty",
            Fails(Minimal.Replace("/var/lib/steward/node1/data", "' '", StringComparison.Ordinal)).Message,
            StringComparison.Ordinal);

    [Fact]
    public void Every_error_is_reported_together_one_per_line()
    {
        var yaml = Minimal
            .Replace("name: node1", "name: node/1", StringComparison.Ordinal)
            .Replace("listen: 127.0.0.1:8008", "listen: abc", StringComparison.Ordinal)
            + "\n  colour: blue";

        var error = Fails(yaml);

        Assert.Equal(3, error.Errors.Count);
        Assert.Equal(error.Errors, error.Message.Split('\n'));
        Assert.All(error.Errors, e => Assert.StartsWith("/etc/steward/node.yml:", e, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("scope: demo\nname: node1\n  restapi: x\n", "3:10")]
    [InlineData("scope: demo\nname: 'node1\n", "2:7")]
    [InlineData("scope: demo\nname: [node1\nrestapi: {}\n", "2:7")]
    public void Malformed_yaml_is_reported_with_its_line_and_column(string yaml, string position)
    {
        var error = Fails(yaml);

        Assert.StartsWith($"/etc/steward/node.yml:{position}: malformed YAML: ", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Idx:", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "the configuration file is empty")]
    [InlineData("# only a comment\n", "the configuration file is empty")]
    [InlineData("- a\n- b\n", "1:1: expected a mapping of settings")]
    [InlineData("scope: a\n---\nscope: b\n", "expected one YAML document, found 2")]
    public void File_that_is_not_one_mapping_is_rejected(string yaml, string expected) =>
        Assert.Contains(expected, Fails(yaml).Message, StringComparison.Ordinal);

    [Fact]
    public void Duplicate_key_is_rejected()
    {
        var error = Fails(Minimal + "\nname: node2");

        Assert.Contains("/etc/steward/node.yml:", error.Message, StringComparison.Ordinal);
        Assert.Contains("Duplicate key", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Missing_file_is_reported_by_its_path()
    {
        var path = Path.Combine(Path.GetTempPath(), $"steward-missing-{Guid.NewGuid():N}.yml");

        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(path, NoEnvironment));

        Assert.Equal($"{path}: the configuration file does not exist", error.Message);
    }

    [Fact]
    public void Unreadable_file_is_reported_by_its_path()
    {
        var directory = Directory.CreateTempSubdirectory("steward-config-");
        try
        {
            var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(directory.FullName, NoEnvironment));

            Assert.StartsWith($"{directory.FullName}: cannot read the configuration file: ", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete();
        }
    }

    [Theory]
    [InlineData(0b110_100_100, true)]
    [InlineData(0b110_000_000, false)]
    [InlineData(0b110_100_000, true)]
    public void A_config_file_with_passwords_that_others_may_read_gets_a_warning_naming_it_and_chmod_600(int mode, bool warned)
    {
        var path = Path.Combine(Path.GetTempPath(), $"steward-secrets-{Guid.NewGuid():N}.yml");
        try
        {
            File.WriteAllText(path, Minimal);
            File.SetUnixFileMode(path, (UnixFileMode)mode);

            var warnings = ConfigLoader.Load(path, NoEnvironment).Warnings.Where(w => w.Contains("chmod 600", StringComparison.Ordinal)).ToList();

            if (warned)
            {
                var warning = Assert.Single(warnings);
                Assert.Contains($"chmod 600 {path}", warning, StringComparison.Ordinal);
                Assert.Contains("postgresql.authentication.superuser.password", warning, StringComparison.Ordinal);
            }
            else
            {
                Assert.Empty(warnings);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_readable_config_file_without_passwords_gets_no_warning()
    {
        var path = Path.Combine(Path.GetTempPath(), $"steward-nosecrets-{Guid.NewGuid():N}.yml");
        try
        {
            File.WriteAllText(path, Minimal.Replace("password: secret", "password: ''", StringComparison.Ordinal).Replace(", password: rep-pass", "", StringComparison.Ordinal));
            File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100);

            Assert.DoesNotContain(ConfigLoader.Load(path, NoEnvironment).Warnings, w => w.Contains("chmod", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_standby_cluster_in_bootstrap_dcs_is_read_and_synchronous_mode_beside_it_is_a_warning_not_an_error()
    {
        var config = Parse(With("bootstrap:\n  dcs:\n    synchronous_mode: true\n    standby_cluster:\n      host: 10.0.0.1\n      port: 5433\n      primary_slot_name: dr\n      restore_command: cp /a/%f %p"));

        Assert.Equal(new Steward.Core.Cluster.StandbyClusterConfig { Host = "10.0.0.1", Port = 5433, PrimarySlotName = "dr", RestoreCommand = "cp /a/%f %p" },
            config.Bootstrap.Dcs.StandbyCluster);
        Assert.Contains(config.Warnings, w => w.Contains("synchronous_mode: ignored in a standby cluster", StringComparison.Ordinal));
    }
}
