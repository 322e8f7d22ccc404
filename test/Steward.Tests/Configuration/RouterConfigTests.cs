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
}
