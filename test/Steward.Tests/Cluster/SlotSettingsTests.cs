using System.Text.Json;
using Steward.Core.Cluster;

namespace Steward.Tests.Cluster;

/// <summary>Issues 14 and 16: <c>slots</c> and <c>ignore_slots</c> read with Patroni's rules, bad entries named.</summary>
public sealed class SlotSettingsTests
{
    private static SlotSettings Read(string slots, string? ignore = null)
    {
        using var s = JsonDocument.Parse(slots);
        using var i = JsonDocument.Parse(ignore ?? "null");
        return SlotSettings.Read(s.RootElement.Clone(), i.RootElement.Clone());
    }

    [Fact]
    public void Types_follow_patronis_defaults()
    {
        var settings = Read("""
            {"p1": {"type": "physical"}, "p2": null, "p3": {}, "l1": {"type": "logical", "database": "db", "plugin": "pgoutput"},
             "l2": {"database": "db2", "plugin": "test_decoding"}, "s1": {"type": "physical", "cluster_type": "standby"},
             "p4": {"type": "physical", "cluster_type": "primary"}}
            """);

        Assert.Empty(settings.Problems);
        Assert.Equal(
            [new PermanentSlot("p1", "physical"), new PermanentSlot("p2", "physical"), new PermanentSlot("p3", "physical"),
             new PermanentSlot("l1", "logical", "db", "pgoutput"), new PermanentSlot("l2", "logical", "db2", "test_decoding"),
             new PermanentSlot("p4", "physical")],
            settings.Permanent);
        Assert.True(settings.HasLogical);
        Assert.False(Read("""{"p": {"type": "physical"}}""").HasLogical);
        Assert.True(settings.Permanent[3].IsLogical);
        Assert.False(settings.Permanent[0].IsLogical);
    }

    [Theory]
    [InlineData("""{"Upper": null}""", "slots.Upper: invalid slot name: a slot name is 1 to 63 lower case letters, digits and underscores")]
    [InlineData("""{"with-dash": null}""", "slots.with-dash: invalid slot name: a slot name is 1 to 63 lower case letters, digits and underscores")]
    [InlineData("""{"": null}""", "slots.: invalid slot name: a slot name is 1 to 63 lower case letters, digits and underscores")]
    [InlineData("""{"a": 5}""", "slots.a: expected {type: physical} or {type: logical, database: …, plugin: …}, got 5")]
    [InlineData("""{"a": {"type": "both"}}""", "slots.a: type must be physical or logical, got 'both'")]
    [InlineData("""{"a": {"type": "logical"}}""", "slots.a: a logical slot needs database and plugin")]
    [InlineData("""{"a": {"type": "logical", "plugin": "p"}}""", "slots.a: a logical slot needs database")]
    [InlineData("""{"a": {"type": "logical", "database": "d"}}""", "slots.a: a logical slot needs plugin")]
    [InlineData("""{"a": {"type": "logical", "database": "", "plugin": "p"}}""", "slots.a: a logical slot needs database")]
    [InlineData("""{"a": {"database": "d"}}""", "slots.a: a logical slot needs both database and plugin (got only database); a physical slot needs neither")]
    [InlineData("""{"a": {"plugin": "p"}}""", "slots.a: a logical slot needs both database and plugin (got only plugin); a physical slot needs neither")]
    [InlineData("""{"a": {"type": "physical", "plugn": "p"}}""", "slots.a: unknown property 'plugn' (known: type, database, plugin, cluster_type)")]
    [InlineData("""{"a": {"type": "physical", "cluster_type": "other"}}""", "slots.a: cluster_type must be primary or standby, got 'other'")]
    [InlineData("""{"a": {"type": "logical", "database": "d", "plugin": "p", "cluster_type": "primary"}}""", "slots.a: cluster_type applies to physical slots only")]
    [InlineData("""{"a": {"type": "logical", "database": ["d"], "plugin": "p"}}""", "slots.a.database: expected text, got a list")]
    [InlineData("""{"a": {"type": {"x": 1}}}""", "slots.a.type: expected text, got a mapping")]
    [InlineData("""["a"]""", "slots: expected a mapping of slot names to {type: physical} or {type: logical, database: …, plugin: …}, got a list")]
    [InlineData("\"a\"", "slots: expected a mapping of slot names to {type: physical} or {type: logical, database: …, plugin: …}, got \"a\"")]
    public void Bad_slots_are_left_out_and_named(string slots, string problem)
    {
        var settings = Read(slots);

        Assert.Equal([problem], settings.Problems);
        Assert.Empty(settings.Permanent);
    }

    [Fact]
    public void A_bad_entry_does_not_hide_the_good_ones()
    {
        var settings = Read("""{"good": null, "Bad": null, "also_good": {"type": "logical", "database": "d", "plugin": "p"}}""");

        Assert.Equal(["good", "also_good"], settings.Permanent.Select(p => p.Name));
        Assert.Single(settings.Problems);
    }

    [Theory]
    [InlineData("a", true)]
    [InlineData("a_1_b", true)]
    [InlineData("_", true)]
    [InlineData("0", true)]
    [InlineData("z9", true)]
    [InlineData("A", false)]
    [InlineData("a-b", false)]
    [InlineData("a.b", false)]
    [InlineData("é", false)]
    [InlineData("", false)]
    [InlineData("`", false)]
    [InlineData("{", false)]
    [InlineData("/", false)]
    [InlineData(":", false)]
    public void Slot_names_are_patronis(string name, bool valid) => Assert.Equal(valid, SlotSettings.IsValidName(name));

    [Fact]
    public void Slot_names_are_at_most_63_characters()
    {
        Assert.True(SlotSettings.IsValidName(new string('a', 63)));
        Assert.False(SlotSettings.IsValidName(new string('a', 64)));
    }

    [Fact]
    public void Numbers_are_read_as_names()
    {
        var settings = Read("""{"a": {"type": "logical", "database": 5, "plugin": "p"}}""");
        Assert.Equal("5", Assert.Single(settings.Permanent).Database);
    }

    [Fact]
    public void Ignore_matchers_match_on_every_property_they_set()
    {
        var settings = Read("{}", """
            [{"name": "by_name"}, {"type": "logical", "database": "db1"}, {"type": "physical", "name": "phys"}, {"plugin": "wal2json"}]
            """);

        Assert.Empty(settings.Problems);
        Assert.Equal(4, settings.Ignore.Count);
        Assert.True(settings.Ignores("by_name", "physical", null, null));
        Assert.True(settings.Ignores("by_name", "logical", "x", "y"));
        Assert.True(settings.Ignores("anything", "logical", "db1", "pgoutput"));
        Assert.False(settings.Ignores("anything", "logical", "db2", "pgoutput"));
        Assert.False(settings.Ignores("anything", "physical", "db1", null));
        Assert.True(settings.Ignores("phys", "physical", null, null));
        Assert.False(settings.Ignores("phys", "logical", "db9", "p"));
        Assert.True(settings.Ignores("w", "logical", "db9", "wal2json"));
        Assert.False(settings.Ignores("w", "logical", "db9", "pgoutput"));
        Assert.False(settings.Ignores("other", "physical", null, null));
    }

    [Fact]
    public void An_empty_matcher_matches_every_slot() =>
        Assert.True(new SlotMatcher().Matches("x", "logical", "d", "p"));

    [Theory]
    [InlineData("""{"name": "x"}""", "physical", null, null, true)]
    [InlineData("""{"name": "x", "plugin": "p"}""", "logical", "d", "p", true)]
    [InlineData("""{"name": "x", "plugin": "p"}""", "logical", "d", "q", false)]
    [InlineData("""{"name": "y"}""", "physical", null, null, false)]
    [InlineData("""{"database": "d"}""", "logical", "d", "p", true)]
    [InlineData("""{"database": "d"}""", "logical", "e", "p", false)]
    [InlineData("""{"type": "logical"}""", "logical", "e", "p", true)]
    [InlineData("""{"type": "logical"}""", "physical", null, null, false)]
    public void One_matcher(string matcher, string type, string? database, string? plugin, bool matches) =>
        Assert.Equal(matches, Read("{}", $"[{matcher}]").Ignores("x", type, database, plugin));

    [Theory]
    [InlineData("""{"name": "x"}""", "ignore_slots: expected a list of {name, type, database, plugin} matchers, got a mapping")]
    [InlineData("""["x"]""", "ignore_slots[0]: expected a mapping of name, type, database, plugin, got \"x\"")]
    [InlineData("""[{"name": "ok"}, {"nmae": "x"}]""", "ignore_slots[1]: unknown property 'nmae' (known: name, type, database, plugin)")]
    [InlineData("""[{"type": "virtual"}]""", "ignore_slots[0]: type must be physical or logical, got 'virtual'")]
    [InlineData("""[{"name": ["x"]}]""", "ignore_slots[0].name: expected text, got a list")]
    public void Bad_ignore_entries_are_named(string ignore, string problem)
    {
        var settings = Read("{}", ignore);
        Assert.Equal([problem], settings.Problems);
        Assert.Equal(ignore.Contains("\"ok\"", StringComparison.Ordinal) ? 1 : 0, settings.Ignore.Count);
    }

    [Fact]
    public void Nothing_configured_is_nothing()
    {
        var settings = SlotSettings.Read(new DynamicConfig());
        Assert.Empty(settings.Permanent);
        Assert.Empty(settings.Ignore);
        Assert.Empty(settings.Problems);
        Assert.False(settings.Ignores("x", "physical", null, null));
    }

    [Fact]
    public void Hot_standby_feedback_is_enforced_only_with_permanent_logical_slots_on_members_that_may_lead_and_stream()
    {
        var logical = DynamicConfigJson.TryParse("""{"slots": {"cdc": {"type": "logical", "database": "d", "plugin": "p"}}}""", out _)!;
        var physical = DynamicConfigJson.TryParse("""{"slots": {"keep": {"type": "physical"}}}""", out _)!;

        Assert.True(SlotSettings.EnforcesHotStandbyFeedback(logical, noFailover: false, noStream: false));
        Assert.False(SlotSettings.EnforcesHotStandbyFeedback(logical, noFailover: true, noStream: false));
        Assert.False(SlotSettings.EnforcesHotStandbyFeedback(logical, noFailover: false, noStream: true));
        Assert.False(SlotSettings.EnforcesHotStandbyFeedback(logical with { Postgresql = new DynamicPostgresConfig { UseSlots = false } }, false, false));
        Assert.False(SlotSettings.EnforcesHotStandbyFeedback(physical, false, false));
    }
}
