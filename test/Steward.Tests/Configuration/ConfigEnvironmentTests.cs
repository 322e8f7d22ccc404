using Steward.Core.Configuration;
using static Steward.Tests.Configuration.ConfigText;

namespace Steward.Tests.Configuration;

public sealed class ConfigEnvironmentTests
{
    private static Dictionary<string, string?> Environment(params (string Name, string? Value)[] variables) =>
        variables.ToDictionary(v => v.Name, v => v.Value);

    [Fact]
    public void Patroni_variable_supplies_a_password_the_file_leaves_out()
    {
        var yaml = Minimal.Replace("{username: postgres, password: secret}", "{username: postgres}", StringComparison.Ordinal);

        var config = Parse(yaml, Environment(("PATRONI_SUPERUSER_PASSWORD", "from-env")));

        Assert.Equal(new Credentials("postgres", "from-env"), config.Postgresql.Authentication.Superuser);
    }

    [Fact]
    public void Steward_variable_wins_over_patroni_variable_which_wins_over_the_file()
    {
        var both = Parse(Minimal, Environment(("PATRONI_NAME", "patroni-name"), ("STEWARD_NAME", "steward-name")));
        var patroniOnly = Parse(Minimal, Environment(("PATRONI_NAME", "patroni-name")));

        Assert.Equal("steward-name", both.Name);
        Assert.Equal("patroni-name", patroniOnly.Name);
    }

    [Fact]
    public void Empty_variable_counts_as_unset() =>
        Assert.Equal("node1", Parse(Minimal, Environment(("STEWARD_NAME", ""))).Name);

    [Fact]
    public void Every_documented_variable_is_applied()
    {
        var config = Parse(Minimal, Environment(
            ("PATRONI_SCOPE", "other"),
            ("STEWARD_NAMESPACE", "custom"),
            ("PATRONI_SUPERUSER_USERNAME", "su"),
            ("STEWARD_REPLICATION_USERNAME", "repl"),
            ("STEWARD_REPLICATION_PASSWORD", "repl-pass"),
            ("PATRONI_REWIND_USERNAME", "rw"),
            ("PATRONI_REWIND_PASSWORD", "rw-pass"),
            ("PATRONI_RESTAPI_USERNAME", "api"),
            ("PATRONI_RESTAPI_PASSWORD", "api-pass"),
            ("PATRONI_ETCD3_HOSTS", "'10.0.0.1:2379','10.0.0.2:2379'"),
            ("STEWARD_ETCD3_USERNAME", "root"),
            ("STEWARD_ETCD3_PASSWORD", "root-pass"),
            ("STEWARD_PG_USER", "pgrunner")));

        Assert.Equal("other", config.Scope);
        Assert.Equal("/custom/", config.Namespace);
        Assert.Equal(new Credentials("su", "secret"), config.Postgresql.Authentication.Superuser);
        Assert.Equal(new Credentials("repl", "repl-pass"), config.Postgresql.Authentication.Replication);
        Assert.Equal(new Credentials("rw", "rw-pass"), config.Postgresql.Authentication.Rewind);
        Assert.Equal(new Credentials("api", "api-pass"), config.RestApi.Authentication);
        Assert.Equal(["http://10.0.0.1:2379", "http://10.0.0.2:2379"], config.Etcd3.Endpoints);
        Assert.Equal(("root", "root-pass"), (config.Etcd3.Username, config.Etcd3.Password));
        Assert.Equal("pgrunner", config.Postgresql.OsUser);
    }

    [Fact]
    public void Etcd3_hosts_from_the_environment_replace_a_missing_section()
    {
        var yaml = Minimal.Replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "", StringComparison.Ordinal);

        var config = Parse(yaml, Environment(("STEWARD_ETCD3_HOSTS", "[etcd1:2379, etcd2]")));

        Assert.Equal(["http://etcd1:2379", "http://etcd2:2379"], config.Etcd3.Endpoints);
    }

    [Fact]
    public void Bad_value_from_the_environment_names_the_variable() =>
        Assert.Equal(
            "/etc/steward/node.yml: name: must not contain '/', got 'a/b' (from environment STEWARD_NAME)",
            Fails(Minimal, Environment(("STEWARD_NAME", "a/b"))).Message);

    [Fact]
    public void Restapi_password_without_a_username_is_rejected() =>
        Assert.Contains(
            "restapi.authentication.username: required key is missing (or set STEWARD_RESTAPI_USERNAME)",
            Fails(Minimal, Environment(("STEWARD_RESTAPI_PASSWORD", "x"))).Message,
            StringComparison.Ordinal);
}
