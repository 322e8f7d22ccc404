using System.Text.Json.Nodes;
using Steward.Agent;
using Steward.Rest;

namespace Steward.Tests.Agent;

/// <summary>Patroni's restart filters and schedule parsing (issue 14, item 5), in its words.</summary>
public sealed class RestartConditionsTests
{
    [Theory]
    [InlineData("15.2", 150002)]
    [InlineData("10.1", 100001)]
    [InlineData("9.6.24", 90624)]
    [InlineData("15.0.3", 150003)]
    public void Versions_are_read_as_Patroni_reads_them(string text, int number) =>
        Assert.Equal(number, RestartConditions.VersionNumber(text, out _));

    [Theory]
    [InlineData("9.6", "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6")]
    [InlineData("15", "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 15")]
    [InlineData("1.2.3.4", "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 1.2.3.4")]
    [InlineData("a.b.c", "Invalid PostgreSQL version: a.b.c")]
    public void Bad_versions_are_refused_in_Patronis_words(string text, string error)
    {
        Assert.Null(RestartConditions.VersionNumber(text, out var why));
        Assert.Equal(error, why);
    }

    [Theory]
    [InlineData(null, null, false, "replica", 150004, false, null)]
    [InlineData("primary", null, false, "replica", 150004, false, "host role mismatch")]
    [InlineData("replica", null, false, "replica", 150004, false, null)]
    [InlineData(null, "15.4", false, "replica", 150004, false, "postgres version mismatch")] // only an older server restarts
    [InlineData(null, "15.5", false, "replica", 150004, false, null)]
    [InlineData(null, null, true, "replica", 150004, false, "pending restart flag is not set")]
    [InlineData(null, null, true, "primary", 150004, true, null)]
    public void Conditions_say_in_Patronis_words_why_a_restart_does_not_go_ahead(
        string? role, string? version, bool pendingOnly, string memberRole, int serverVersion, bool pending, string? reason)
    {
        var why = new RestartConditions(role, version, pendingOnly).Unmet(memberRole, serverVersion, pending);
        if (reason is null)
        {
            Assert.Null(why);
        }
        else
        {
            Assert.StartsWith(reason, why, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Schedules_are_parsed_as_Patroni_parses_them()
    {
        var future = DateTimeOffset.UtcNow.AddHours(1);
        Assert.Equal((0, null, future), RestActions.ParseSchedule(JsonValue.Create(future.ToString("O")), "restart"));
        Assert.Equal((400, "Timezone information is mandatory for the scheduled restart", null),
            RestActions.ParseSchedule(JsonValue.Create("2099-01-01T12:00:00"), "restart"));
        Assert.Equal((422, "Cannot schedule switchover in the past", null),
            RestActions.ParseSchedule(JsonValue.Create("2001-01-01T12:00:00Z"), "switchover"));
        Assert.Equal((422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601", null),
            RestActions.ParseSchedule(JsonValue.Create("next tuesday"), "restart"));
        Assert.Equal(422, RestActions.ParseSchedule(JsonValue.Create(42), "restart").Status);
    }
}
