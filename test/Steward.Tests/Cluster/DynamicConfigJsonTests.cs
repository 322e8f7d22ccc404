using System.Text.Json;
using Steward.Core.Cluster;

namespace Steward.Tests.Cluster;

public sealed class DynamicConfigJsonTests
{
    /// <summary>Story (issue 9, defect 7): PATCH /config accepted a negative maximum_lag_on_failover, and then no replica was eligible for failover.</summary>
    [Theory]
    [InlineData("""{"maximum_lag_on_failover": -1}""", "maximum_lag_on_failover must be 0 or more bytes, got -1")]
    [InlineData("""{"primary_start_timeout": -5}""", "primary_start_timeout must be 0 or more seconds, got -5")]
    [InlineData("""{"ttl": -6}""", "invalid timing: ttl, loop_wait and retry_timeout must all be positive (ttl -6, loop_wait 1, retry_timeout 2)")]
    [InlineData("""{"loop_wait": 0}""", "invalid timing: ttl, loop_wait and retry_timeout must all be positive (ttl 6, loop_wait 0, retry_timeout 2)")]
    public void Settings_that_cannot_work_are_named(string json, string problem)
    {
        var config = DynamicConfigJson.TryParse(json, out _)!;

        Assert.Equal(problem, DynamicConfigJson.Problem(config));
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("""{"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 0, "primary_start_timeout": 0}""")]
    [InlineData("""{"ttl": 20, "loop_wait": 2, "retry_timeout": 10}""")]
    public void Settings_that_can_work_have_no_problem(string json) =>
        Assert.Null(DynamicConfigJson.Problem(DynamicConfigJson.TryParse(json, out _)!));

    /// <summary>Story (issue 14, item 1): Patroni accepts timings that break its own rule (it warns); Steward refused them, so a Patroni user's config did not start.</summary>
    [Theory]
    [InlineData(20, 2, 10, "loop_wait (2) + 2*retry_timeout (10) = 22 is more than ttl (20)")]
    [InlineData(30, 10, 11, "loop_wait (10) + 2*retry_timeout (11) = 32 is more than ttl (30)")]
    public void Timings_that_break_patronis_rule_are_a_warning_that_says_what_they_risk(int ttl, int loopWait, int retryTimeout, string start)
    {
        var config = new DynamicConfig { Ttl = ttl, LoopWait = loopWait, RetryTimeout = retryTimeout };
        var warning = DynamicConfigJson.TimingWarning(config);

        Assert.Null(DynamicConfigJson.Problem(config));
        Assert.NotNull(warning);
        Assert.StartsWith(start, warning, StringComparison.Ordinal);
        Assert.Contains("the leader stays safe", warning, StringComparison.Ordinal);
        Assert.Contains("fail over", warning, StringComparison.Ordinal);
        Assert.True(warning.All(char.IsAscii), "the warning travels in an HTTP header");
        Assert.Null(DynamicConfigJson.TimingWarning(config with { Ttl = loopWait + (2 * retryTimeout) }));
    }

    [Fact]
    public void Config_survives_a_round_trip_in_patronis_key_names()
    {
        var config = new DynamicConfig
        {
            Ttl = 30,
            LoopWait = 10,
            RetryTimeout = 10,
            MaximumLagOnFailover = 5,
            PrimaryStartTimeout = 0,
            Pause = true,
            SynchronousMode = true,
            Postgresql = new DynamicPostgresConfig
            {
                UsePgRewind = false,
                UseSlots = false,
                Parameters = new Dictionary<string, string> { ["max_connections"] = "100", ["hot_standby"] = "on" },
            },
        };

        var json = DynamicConfigJson.Serialize(config);
        var parsed = DynamicConfigJson.TryParse(json, out var error);

        Assert.Null(error);
        Assert.NotNull(parsed);
        Assert.Equal(config with { Postgresql = parsed.Postgresql }, parsed);
        Assert.Equal(config.Postgresql with { Parameters = parsed.Postgresql.Parameters }, parsed.Postgresql);
        Assert.Equal(config.Postgresql.Parameters, parsed.Postgresql.Parameters);
        using var document = JsonDocument.Parse(json);
        Assert.Equal(30, document.RootElement.GetProperty("ttl").GetInt32());
        Assert.Equal("100", document.RootElement.GetProperty("postgresql").GetProperty("parameters").GetProperty("max_connections").GetString());
    }

    [Fact]
    public void Patroni_written_config_is_read_tolerantly()
    {
        const string json = """
            {"ttl": "30", "loop_wait": 10, "retry_timeout": 10, "master_start_timeout": 300,
             "synchronous_mode_strict": false, "failsafe_mode": true, "slots": {"x": {"type": "physical"}},
             "postgresql": {"use_pg_rewind": true, "use_slots": "off", "pg_hba": ["local all all trust"],
                            "parameters": {"max_connections": 100, "hot_standby": true, "fsync": false,
                                           "wal_keep_size": "256MB", "checkpoint_completion_target": 0.9, "unset": null}}}
            """;

        var config = DynamicConfigJson.TryParse(json, out var error);

        Assert.Null(error);
        Assert.NotNull(config);
        Assert.Equal((30, 10, 10, 300), (config.Ttl, config.LoopWait, config.RetryTimeout, config.PrimaryStartTimeout));
        Assert.False(config.Postgresql.UseSlots);
        Assert.Equal(["local all all trust"], config.Postgresql.PgHba);
        Assert.Empty(DynamicConfigJson.NotActedOn(config));
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["max_connections"] = "100", ["hot_standby"] = "on", ["fsync"] = "off", ["wal_keep_size"] = "256MB",
                ["checkpoint_completion_target"] = "0.9",
            },
            config.Postgresql.Parameters);
    }

    [Fact]
    public void Keys_steward_does_not_act_on_round_trip_and_are_reported()
    {
        const string json = """
            {"ttl": 6, "check_timeline": true, "max_timelines_history": 5, "slots": {"x": {"type": "physical"}}, "ignore_slots": [{"name": "y"}],
             "synchronous_mode": true, "synchronous_node_count": 2, "postgresql": {"pg_ident": ["m a b"], "parameters": {"a": "1"}}}
            """;

        var config = DynamicConfigJson.TryParse(json, out var error)!;
        Assert.Null(error);
        Assert.Equal(["check_timeline", "max_timelines_history", "postgresql.pg_ident"], DynamicConfigJson.NotActedOn(config));
        Assert.Equal((true, 2), (config.SynchronousMode, config.SynchronousNodeCount));

        var again = DynamicConfigJson.TryParse(DynamicConfigJson.Serialize(config), out _)!;
        using var document = JsonDocument.Parse(DynamicConfigJson.Serialize(again));
        Assert.Equal("physical", document.RootElement.GetProperty("slots").GetProperty("x").GetProperty("type").GetString());
        Assert.Equal("y", document.RootElement.GetProperty("ignore_slots")[0].GetProperty("name").GetString());
        Assert.True(document.RootElement.GetProperty("check_timeline").GetBoolean());
        Assert.Equal("m a b", document.RootElement.GetProperty("postgresql").GetProperty("pg_ident")[0].GetString());
        Assert.Equal(2, document.RootElement.GetProperty("synchronous_node_count").GetInt32());

        // Unchanged keys are not "newly set"; a changed or added one is.
        Assert.Empty(DynamicConfigJson.NewlyNotActedOn(again, config));
        var changed = DynamicConfigJson.TryParse(json.Replace("\"max_timelines_history\": 5", "\"max_timelines_history\": 6", StringComparison.Ordinal), out _)!;
        Assert.Equal(["max_timelines_history"], DynamicConfigJson.NewlyNotActedOn(changed, config));
        Assert.Equal(["check_timeline", "max_timelines_history", "postgresql.pg_ident"], DynamicConfigJson.NewlyNotActedOn(config, null));
        Assert.Contains("unknown setting typo", DynamicConfigJson.NotActedOnMessage(["check_timeline", "typo"]), StringComparison.Ordinal);
        Assert.Contains("check_timeline: Patroni setting Steward does not implement", DynamicConfigJson.NotActedOnMessage(["check_timeline", "typo"]), StringComparison.Ordinal);
    }

    /// <summary>No slots written: none serialized (GET /config shows no "slots": null).</summary>
    [Fact]
    public void Absent_slots_are_not_written()
    {
        var json = DynamicConfigJson.Serialize(DynamicConfigJson.TryParse("""{"ttl": 6, "slots": null}""", out _)!);
        Assert.DoesNotContain("\"slots\"", json, StringComparison.Ordinal);
        Assert.DoesNotContain("ignore_slots", json, StringComparison.Ordinal);
    }

    /// <summary>Issue 16: bad permanent slots are refused with the key named; values already in force are not held against an edit.</summary>
    [Theory]
    [InlineData("""{"slots": {"Bad": {"type": "physical"}}}""", "slots.Bad: invalid slot name")]
    [InlineData("""{"slots": {"cdc": {"type": "logical", "database": "postgres"}}}""", "slots.cdc: a logical slot needs plugin")]
    [InlineData("""{"slots": [1]}""", "slots: expected a mapping")]
    [InlineData("""{"ignore_slots": {"name": "x"}}""", "ignore_slots: expected a list")]
    [InlineData("""{"ignore_slots": [{"name": "x", "type": "virtual"}]}""", "ignore_slots[0]: type must be physical or logical, got 'virtual'")]
    public void Bad_slots_are_a_problem_unless_already_in_force(string json, string problem)
    {
        var config = DynamicConfigJson.TryParse(json, out var error)!;
        Assert.Null(error);
        Assert.StartsWith(problem, DynamicConfigJson.Problem(config), StringComparison.Ordinal);
        Assert.StartsWith(problem, DynamicConfigJson.Problem(config, new DynamicConfig()), StringComparison.Ordinal);
        Assert.Null(DynamicConfigJson.Problem(config with { Ttl = 7 }, config));
        Assert.Null(DynamicConfigJson.SlotProblem(config, config));
    }

    [Theory]
    [InlineData("""{"synchronous_node_count": 0}""", "synchronous_node_count must be 1 or more, got 0")]
    [InlineData("""{"maximum_lag_on_syncnode": -2}""", "maximum_lag_on_syncnode must be -1 (off) or 0 or more bytes, got -2")]
    public void Synchronous_settings_out_of_range_are_problems(string json, string problem) =>
        Assert.Equal(problem, DynamicConfigJson.Problem(DynamicConfigJson.TryParse(json, out _)!));

    [Fact]
    public void Quorum_mode_is_read_and_written_back_as_Patroni_writes_it()
    {
        var config = DynamicConfigJson.TryParse("""{"synchronous_mode": "quorum", "synchronous_node_count": 2}""", out var error);

        Assert.Null(error);
        Assert.True(config!.SynchronousMode);
        Assert.True(config.SynchronousModeQuorum);
        Assert.Contains("\"synchronous_mode\":\"quorum\"", DynamicConfigJson.Serialize(config), StringComparison.Ordinal);
        Assert.Contains("\"synchronous_mode\":true", DynamicConfigJson.Serialize(config with { SynchronousModeQuorum = false }), StringComparison.Ordinal);
        Assert.Contains("\"synchronous_mode\":false", DynamicConfigJson.Serialize(new DynamicConfig()), StringComparison.Ordinal);
        Assert.False(DynamicConfigJson.TryParse("""{"synchronous_mode": true}""", out _)!.SynchronousModeQuorum);
    }

    [Fact]
    public void Empty_object_gives_the_defaults()
    {
        var config = DynamicConfigJson.TryParse("{}", out var error);

        Assert.Null(error);
        Assert.Equal((6, 1, 2), (config!.Ttl, config.LoopWait, config.RetryTimeout));
        Assert.True(config.Postgresql.UsePgRewind);
    }

    [Theory]
    [InlineData("{\"ttl\": ", "config key is not valid JSON")]
    [InlineData("[1, 2]", "config key: expected a JSON object, got Array")]
    [InlineData("{\"ttl\": \"soon\"}", "config key: ttl: expected an integer, got \"soon\"")]
    [InlineData("{\"ttl\": 1.5}", "config key: ttl: expected an integer, got 1.5")]
    [InlineData("{\"pause\": 2}", "config key: pause: expected true or false, got 2")]
    [InlineData("{\"postgresql\": []}", "config key: postgresql: expected an object, got Array")]
    [InlineData("{\"postgresql\": {\"parameters\": {\"a\": [1]}}}", "config key: postgresql.parameters: expected a single value, got [1]")]
    [InlineData("{\"primary_start_timeout\": 30, \"master_start_timeout\": \"x\"}", "config key: master_start_timeout: expected an integer, got \"x\"")]
    public void Malformed_document_gives_null_and_says_why(string json, string expected)
    {
        var config = DynamicConfigJson.TryParse(json, out var error);

        Assert.Null(config);
        Assert.NotNull(error);
        Assert.StartsWith(expected, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"postgresql": {"pg_hba": "host all all 0.0.0.0/0 md5"}}""", "postgresql.pg_hba: expected a list of lines")]
    [InlineData("""{"postgresql": {"pg_hba": [1]}}""", "postgresql.pg_hba: expected a list of lines (strings), got 1")]
    [InlineData("""{"postgresql": {"pg_hba": ["a\nb"]}}""", "postgresql.pg_hba: expected a list of lines (strings)")]
    public void A_cluster_wide_pg_hba_that_is_not_a_list_of_lines_is_refused(string json, string expected)
    {
        Assert.Null(DynamicConfigJson.TryParse(json, out var error));
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_cluster_wide_pg_hba_round_trips_and_an_empty_one_is_not_set()
    {
        var config = DynamicConfigJson.TryParse("""{"postgresql": {"pg_hba": ["host all all 0.0.0.0/0 md5", "host replication replicator 10.0.0.0/8 md5"]}}""", out _)!;

        Assert.Equal(config.Postgresql.PgHba, DynamicConfigJson.TryParse(DynamicConfigJson.Serialize(config), out _)!.Postgresql.PgHba);
        Assert.Null(DynamicConfigJson.TryParse("""{"postgresql": {"pg_hba": []}}""", out _)!.Postgresql.PgHba);
        Assert.DoesNotContain("pg_hba", DynamicConfigJson.Serialize(new DynamicConfig()), StringComparison.Ordinal);
    }
}
