using Steward.Core.Configuration;

namespace Steward.Tests.Configuration;

/// <summary>router.yml's optional credentials: the dashboard's (who may switch over) and the agents' REST API's.</summary>
public sealed class RouterConfigTests
{
    private const string Minimal = """
        scope: demo
        etcd3:
          hosts: 127.0.0.1:2379
        write:
          listen: 127.0.0.1:5500
        stats:
          listen: 127.0.0.1:7500

        """;

    private static readonly Dictionary<string, string?> NoEnvironment = [];

    [Fact]
    public void Without_a_dashboard_section_the_dashboard_is_read_only()
    {
        var config = RouterConfigLoader.Parse(Minimal, "router.yml", NoEnvironment);
        Assert.Null(config.Dashboard);
        Assert.Null(config.RestApi);
    }

    [Fact]
    public void Dashboard_and_restapi_credentials_are_read()
    {
        var config = RouterConfigLoader.Parse(Minimal + "dashboard:\n  username: admin\n  password: s3cret\nrestapi:\n  username: patroni\n  password: rest\n",
            "router.yml", NoEnvironment);
        Assert.Equal(new Credentials("admin", "s3cret"), config.Dashboard);
        Assert.Equal(new Credentials("patroni", "rest"), config.RestApi);
    }

    [Fact]
    public void The_environment_wins_over_the_file()
    {
        var config = RouterConfigLoader.Parse(Minimal + "dashboard:\n  username: admin\n  password: from-file\n", "router.yml",
            new Dictionary<string, string?> { ["STEWARD_DASHBOARD_PASSWORD"] = "from-env" });
        Assert.Equal("from-env", config.Dashboard?.Password);
    }

    [Theory]
    [InlineData("dashboard:\n  username: admin\n", "dashboard.password: required and not empty when dashboard is set")]
    [InlineData("dashboard:\n  password: x\n", "dashboard.username: required when dashboard is set")]
    [InlineData("dashboard:\n  username: admin\n  password: ''\n", "dashboard.password: required and not empty")]
    [InlineData("dashboard:\n  username: admin\n  password: x\n  realm: y\n", "dashboard.realm")]
    [InlineData("restapi:\n  username: patroni\n", "restapi.password: required and not empty when restapi is set")]
    public void Incomplete_credentials_are_refused_naming_the_key(string section, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => RouterConfigLoader.Parse(Minimal + section, "router.yml", NoEnvironment));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_dashboard_needs_the_stats_port()
    {
        var yaml = Minimal.Replace("stats:\n  listen: 127.0.0.1:7500\n", "", StringComparison.Ordinal) + "dashboard:\n  username: a\n  password: b\n";
        var e = Assert.Throws<ConfigException>(() => RouterConfigLoader.Parse(yaml, "router.yml", NoEnvironment));
        Assert.Contains("dashboard: needs stats.listen", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", SyncStandbyReads.Include)]
    [InlineData("  sync_standbys: include\n", SyncStandbyReads.Include)]
    [InlineData("  sync_standbys: prefer\n", SyncStandbyReads.Prefer)]
    [InlineData("  sync_standbys: EXCLUDE\n", SyncStandbyReads.Exclude)]
    public void Read_sync_standbys_policy_is_read(string line, SyncStandbyReads expected)
    {
        var config = RouterConfigLoader.Parse(Minimal + "read:\n  listen: 127.0.0.1:5501\n" + line, "router.yml", NoEnvironment);
        Assert.Equal(expected, config.Read!.SyncStandbys);
    }

    [Fact]
    public void An_unknown_sync_standbys_policy_is_refused_naming_the_key()
    {
        var e = Assert.Throws<ConfigException>(() => RouterConfigLoader.Parse(Minimal + "read:\n  listen: 127.0.0.1:5501\n  sync_standbys: sometimes\n", "router.yml", NoEnvironment));
        Assert.Contains("read.sync_standbys", e.Message, StringComparison.Ordinal);
        Assert.Contains("sometimes", e.Message, StringComparison.Ordinal);
    }

    // ---- pgbouncer: ----

    [Fact]
    public void Without_pgbouncer_the_router_drives_none()
    {
        var config = RouterConfigLoader.Parse(Minimal, "router.yml", NoEnvironment);
        Assert.Empty(config.PgBouncers);
        Assert.Equal(Environment.MachineName + "-5500", config.Name);
    }

    [Fact]
    public void Pgbouncer_entries_are_read_with_their_defaults()
    {
        var config = RouterConfigLoader.Parse(Minimal + """
            name: app1
            pgbouncer:
              - host: 10.0.0.5
                password: s3cret
              - host: 127.0.0.1
                port: 6433
                user: admin
                databases: [app, reports]
                pause_timeout: 2.5

            """, "router.yml", NoEnvironment);
        Assert.Equal("app1", config.Name);
        Assert.Equal(2, config.PgBouncers.Count);
        var first = config.PgBouncers[0];
        Assert.Equal(("10.0.0.5", 6432, "pgbouncer", "s3cret", 5.0), (first.Host, first.Port, first.User, first.Password, first.PauseTimeout));
        Assert.Empty(first.Databases);
        var second = config.PgBouncers[1];
        Assert.Equal(("127.0.0.1", 6433, "admin", (string?)null, 2.5), (second.Host, second.Port, second.User, second.Password, second.PauseTimeout));
        Assert.Equal(["app", "reports"], second.Databases);
    }

    [Fact]
    public void A_passfile_is_resolved_beside_the_config_file()
    {
        var dir = Directory.CreateTempSubdirectory("steward-router-config");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "pgb.pgpass"), "*:*:pgbouncer:pgbouncer:x\n");
            var config = RouterConfigLoader.Parse(Minimal + "pgbouncer:\n  - host: 127.0.0.1\n    passfile: pgb.pgpass\n",
                Path.Combine(dir.FullName, "router.yml"), NoEnvironment);
            Assert.Equal(Path.Combine(dir.FullName, "pgb.pgpass"), config.PgBouncers[0].Passfile);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("pgbouncer:\n  - port: 6432\n", "pgbouncer[0].host: required")]
    [InlineData("pgbouncer:\n  - host: a\n    port: 70000\n", "pgbouncer[0].port: must be between 1 and 65535, got 70000")]
    [InlineData("pgbouncer:\n  - host: a\n    password: x\n    passfile: /etc/hosts\n", "pgbouncer[0].passfile: set either password or passfile, not both")]
    [InlineData("pgbouncer:\n  - host: a\n    passfile: /nonexistent/pgpass\n", "pgbouncer[0].passfile: no such file: /nonexistent/pgpass")]
    [InlineData("pgbouncer:\n  - host: a\n    pause_timeout: 0\n", "pgbouncer[0].pause_timeout: expected seconds between 0.1 and 600, got '0'")]
    [InlineData("pgbouncer:\n  - host: a\n    pause_timeout: soon\n", "pgbouncer[0].pause_timeout: expected seconds")]
    [InlineData("pgbouncer:\n  - host: a\n    databases: ['app; SHUTDOWN']\n", "pgbouncer[0].databases: expected database names")]
    [InlineData("pgbouncer:\n  - host: a\n    pause_timout: 3\n", "pgbouncer[0].pause_timout: unknown key (did you mean 'pause_timeout'?)")]
    [InlineData("pgbouncer:\n  - host: a\n  - host: a\n", "pgbouncer[1]: a:6432 is listed twice")]
    [InlineData("pgbouncer:\n  host: a\n", "pgbouncer: expected a list, got a mapping")]
    [InlineData("pgbouncer:\n  - 127.0.0.1:6432\n", "pgbouncer[0]: expected a mapping, got '127.0.0.1:6432'")]
    [InlineData("name: a/b\n", "name: expected a name without '/'")]
    public void Bad_pgbouncer_entries_are_refused_naming_the_key(string section, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => RouterConfigLoader.Parse(Minimal + section, "router.yml", NoEnvironment));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
