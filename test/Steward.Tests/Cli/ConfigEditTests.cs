using System.Text.Json.Nodes;
using Steward.Cli;
using Steward.Core.Cluster;

namespace Steward.Tests.Cli;

public sealed class ConfigEditTests
{
    private static readonly DynamicConfig Current = new()
    {
        Ttl = 6, LoopWait = 1, RetryTimeout = 2,
        Postgresql = new DynamicPostgresConfig { Parameters = new Dictionary<string, string> { ["max_connections"] = "50", ["wal_keep_size"] = "64MB" } },
    };

    private static DynamicConfig Apply(string[] sets, string[] pgs)
    {
        var doc = ConfigEdit.ToJson(Current);
        foreach (var s in sets)
        {
            ConfigEdit.ApplySet(doc, s);
        }

        foreach (var p in pgs)
        {
            ConfigEdit.ApplyPg(doc, p);
        }

        return ConfigEdit.Validate(doc, Current);
    }

    [Fact]
    public void Set_takes_dotted_keys_and_typed_values()
    {
        var c = Apply(["loop_wait=2", "ttl=10", "postgresql.use_slots=false", "maximum_lag_on_failover=0"], []);
        Assert.Equal(2, c.LoopWait);
        Assert.Equal(10, c.Ttl);
        Assert.False(c.Postgresql.UseSlots);
        Assert.Equal(0, c.MaximumLagOnFailover);
        Assert.Equal("50", c.Postgresql.Parameters["max_connections"]);
    }

    [Fact]
    public void Pg_sets_and_null_removes_a_PostgreSQL_parameter()
    {
        var c = Apply([], ["work_mem=8MB", "wal_keep_size=null", "max_connections=100"]);
        Assert.Equal("8MB", c.Postgresql.Parameters["work_mem"]);
        Assert.Equal("100", c.Postgresql.Parameters["max_connections"]);
        Assert.False(c.Postgresql.Parameters.ContainsKey("wal_keep_size"));
    }

    [Fact]
    public void Set_null_removes_a_key_so_its_default_applies()
    {
        var c = Apply(["ttl=12", "retry_timeout=null"], []);
        Assert.Equal(12, c.Ttl);
        Assert.Equal(new DynamicConfig().RetryTimeout, c.RetryTimeout);
    }

    [Theory]
    [InlineData("loop_wait=0", "loop_wait must be a positive number of seconds, got 0")]
    [InlineData("ttl=0", "ttl must be a positive number of seconds, got 0")]
    [InlineData("retry_timeout=-1", "retry_timeout must be a positive number of seconds")]
    [InlineData("ttl=abc", "ttl: expected an integer, got \"abc\"")]
    [InlineData("pause=maybe", "pause: expected true or false")]
    [InlineData("maximum_lag_on_failover=-5", "maximum_lag_on_failover must be 0 or more")]
    [InlineData("ttll=10", "unknown setting ttll")]
    [InlineData("postgresql.use_slot=false", "unknown setting postgresql.use_slot")]
    [InlineData("synchronous_mode=sometimes", "synchronous_mode: expected true or false")]
    [InlineData("synchronous_node_count=0", "synchronous_node_count must be 1 or more, got 0")]
    [InlineData("maximum_lag_on_syncnode=-2", "maximum_lag_on_syncnode must be -1 (off) or 0 or more bytes")]
    [InlineData("slots.x.type=fancy", "slots.x: type must be physical or logical, got 'fancy'")]
    [InlineData("slots.Bad.type=physical", "slots.Bad: invalid slot name")]
    [InlineData("slots.x.type=logical", "slots.x: a logical slot needs database and plugin")]
    [InlineData("check_timeline=true", "check_timeline: Patroni setting Steward does not implement")]
    [InlineData("postgresql.pg_ident=x", "postgresql.pg_ident: Patroni setting Steward does not implement")]
    [InlineData("postgresql.pg_hba=x", "postgresql.pg_hba: expected a list of lines")]
    [InlineData("ttl.x=1", "ttl is a single value, not a section")]
    public void Invalid_settings_are_refused_with_the_key_named(string set, string message)
    {
        var e = Assert.Throws<CliException>(() => Apply([set], []));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    /// <summary>Story (issue 14, item 1): edit-config refused what Patroni accepts; it is now written, and the command warns (ConfigCommands).</summary>
    [Fact]
    public void Timings_that_break_patronis_rule_are_accepted()
    {
        var c = Apply(["ttl=20", "loop_wait=2", "retry_timeout=10"], []);
        Assert.Equal((20, 2, 10), (c.Ttl, c.LoopWait, c.RetryTimeout));
        Assert.NotNull(DynamicConfigJson.TimingWarning(c));
    }

    [Theory]
    [InlineData("ttl")]
    [InlineData("=5")]
    [InlineData("a..b=1")]
    public void An_assignment_without_key_or_equals_sign_is_refused(string set)
    {
        var e = Assert.Throws<CliException>(() => ConfigEdit.ApplySet(ConfigEdit.ToJson(Current), set));
        Assert.Contains("expected key=value", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_parameter_name_that_PostgreSQL_would_not_accept_is_refused()
    {
        var e = Assert.Throws<CliException>(() => Apply([], ["work mem=8MB"]));
        Assert.Contains("postgresql.parameters.work mem", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Synchronous_settings_are_applied()
    {
        var c = Apply(["synchronous_mode=true", "synchronous_mode_strict=true", "synchronous_node_count=2", "maximum_lag_on_syncnode=1000"], []);
        Assert.True(c.SynchronousMode);
        Assert.True(c.SynchronousModeStrict);
        Assert.Equal(2, c.SynchronousNodeCount);
        Assert.Equal(1000, c.MaximumLagOnSyncnode);
    }

    [Fact]
    public void Keys_written_by_Patroni_that_Steward_does_not_act_on_are_kept_but_cannot_be_changed()
    {
        var current = DynamicConfigJson.TryParse("""{"ttl": 6, "check_timeline": true, "slots": {"Bad-Name": {"type": "physical"}}, "postgresql": {"pg_ident": ["m a b"]}}""", out _)!;
        var doc = ConfigEdit.ToJson(current);
        ConfigEdit.ApplySet(doc, "loop_wait=2");
        var edited = ConfigEdit.Validate(doc, current);
        Assert.Equal(2, edited.LoopWait);
        Assert.Equal(["check_timeline", "postgresql.pg_ident"], DynamicConfigJson.NotActedOn(edited));
        Assert.Contains("\"Bad-Name\"", DynamicConfigJson.Serialize(edited), StringComparison.Ordinal); // a bad slot Patroni wrote is kept

        ConfigEdit.ApplySet(doc, "check_timeline=false");
        var e = Assert.Throws<CliException>(() => ConfigEdit.Validate(doc, current));
        Assert.Contains("check_timeline: Patroni setting", e.Message, StringComparison.Ordinal);

        // Changing slots while a bad entry is there: refused, naming the entry.
        doc = ConfigEdit.ToJson(current);
        ConfigEdit.ApplySet(doc, "slots.cdc.type=physical");
        e = Assert.Throws<CliException>(() => ConfigEdit.Validate(doc, current));
        Assert.StartsWith("slots.Bad-Name: invalid slot name", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Yaml_round_trips_and_keeps_numeric_looking_parameter_text()
    {
        var yaml = ConfigEdit.ToYaml(Current with { Pause = true });
        Assert.Contains("ttl: 6\n", yaml, StringComparison.Ordinal);
        Assert.Contains("pause: true\n", yaml, StringComparison.Ordinal);
        Assert.Contains("    max_connections: 50\n", yaml, StringComparison.Ordinal);
        var back = ConfigEdit.Validate((JsonObject)CliOutput.ParseYaml(yaml)!, null);
        Assert.Equal(ConfigEdit.ToYaml(Current with { Pause = true }), ConfigEdit.ToYaml(back));
        Assert.Equal("50", back.Postgresql.Parameters["max_connections"]);
    }

    [Fact]
    public void Malformed_yaml_from_the_editor_is_refused_with_its_line()
    {
        var e = Assert.Throws<CliException>(() => CliOutput.ParseYaml("ttl: 6\n  loop_wait: [1\n"));
        Assert.Contains("not valid YAML: line", e.Message, StringComparison.Ordinal);
    }
}
