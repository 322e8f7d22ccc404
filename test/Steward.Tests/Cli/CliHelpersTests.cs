using Steward.Cli;
using Steward.Core.Cluster;

namespace Steward.Tests.Cli;

public sealed class CliTimeTests
{
    [Theory]
    [InlineData("now")]
    [InlineData(" NOW ")]
    public void Now_means_at_once(string text) => Assert.Null(CliTime.Parse(text, "--scheduled"));

    [Theory]
    [InlineData("2026-11-26T12:00:00+01:00", "2026-11-26T11:00:00Z")]
    [InlineData("2026-11-26T12:00Z", "2026-11-26T12:00:00Z")]
    [InlineData("2026-11-26 12:00:30.5+00:00", "2026-11-26T12:00:30.5Z")]
    public void Iso_8601_times_are_accepted(string text, string utc) =>
        Assert.Equal(DateTimeOffset.Parse(utc, System.Globalization.CultureInfo.InvariantCulture), CliTime.Parse(text, "--scheduled"));

    [Fact]
    public void A_time_without_offset_is_local() =>
        Assert.Equal(TimeZoneInfo.Local.GetUtcOffset(new DateTime(2026, 11, 26, 12, 0, 0, DateTimeKind.Unspecified)), CliTime.Parse("2026-11-26T12:00", "--scheduled")!.Value.Offset);

    [Theory]
    [InlineData("tomorrow")]
    [InlineData("26/11/2026 12:00")]
    [InlineData("2026-13-01T00:00")]
    [InlineData("")]
    public void A_malformed_time_is_refused_naming_the_value_and_the_option(string text)
    {
        var e = Assert.Throws<CliException>(() => CliTime.Parse(text, "--scheduled"));
        Assert.StartsWith($"Unable to parse scheduled timestamp ({text}). It should be in an unambiguous format (e.g. ISO 8601)", e.Message, StringComparison.Ordinal);
        Assert.Contains($"--scheduled: '{text}' is not a time", e.Message, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Failed, e.ExitCode);
    }

    [Fact]
    public void A_time_in_the_past_is_refused()
    {
        var now = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
        var e = Assert.Throws<CliException>(() => CliTime.ParseFuture("2026-11-26T11:59:00+00:00", "--scheduled", now));
        Assert.Contains("is in the past", e.Message, StringComparison.Ordinal);
        Assert.Null(CliTime.ParseFuture(null, "--scheduled", now));
        Assert.Equal(now.AddHours(1), CliTime.ParseFuture("2026-11-26T13:00:00+00:00", "--scheduled", now));
    }
}

public sealed class PrompterTests
{
    private static (Prompter Prompter, StringWriter Prompt) Create(string input)
    {
        var prompt = new StringWriter();
        return (new Prompter(new StringReader(input), prompt), prompt);
    }

    [Fact]
    public void Force_goes_ahead_without_asking()
    {
        var (p, prompt) = Create("");
        Assert.True(p.Confirm("Are you sure?", force: true));
        Assert.Equal("", prompt.ToString());
    }

    [Theory]
    [InlineData("y\n")]
    [InlineData("YES\n")]
    public void Yes_goes_ahead(string answer)
    {
        var (p, prompt) = Create(answer);
        Assert.True(p.Confirm("Are you sure you want to switchover cluster demo, demoting current leader node1?", force: false));
        Assert.Equal("Are you sure you want to switchover cluster demo, demoting current leader node1? [y/N]: ", prompt.ToString());
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("n\n")]
    [InlineData("yep\n")]
    public void Anything_else_aborts(string answer)
    {
        var e = Assert.Throws<CliException>(() => Create(answer).Prompter.Confirm("Sure?", force: false));
        Assert.Contains("Aborted", e.Message, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Failed, e.ExitCode);
    }

    [Fact]
    public void A_closed_stdin_is_a_refusal_that_points_at_force()
    {
        var e = Assert.Throws<CliException>(() => Create("").Prompter.Confirm("Sure?", force: false));
        Assert.Contains("standard input is closed", e.Message, StringComparison.Ordinal);
        Assert.Contains("--force", e.Message, StringComparison.Ordinal);
    }
}

public sealed class UnifiedDiffTests
{
    [Fact]
    public void Same_text_has_no_diff() => Assert.Equal("", UnifiedDiff.Render("a\nb\n", "a\nb\n", "before", "after"));

    [Fact]
    public void A_changed_line_shows_as_removed_and_added_with_context()
    {
        var before = "loop_wait: 1\nmaximum_lag_on_failover: 1048576\npostgresql:\n  parameters:\n    max_connections: 50\n  use_slots: true\nttl: 6\n";
        var after = before.Replace("max_connections: 50\n", "max_connections: 50\n    work_mem: 8MB\n", StringComparison.Ordinal);
        Assert.Equal("""
            --- before
            +++ after
            @@ -3,4 +3,5 @@
             postgresql:
               parameters:
                 max_connections: 50
            +    work_mem: 8MB
               use_slots: true

            """.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("use_slots: true\n", "use_slots: true\n ttl: 6\n", StringComparison.Ordinal)
                .Replace("-3,4 +3,5", "-3,5 +3,6", StringComparison.Ordinal), UnifiedDiff.Render(before, after, "before", "after"));
    }

    [Fact]
    public void Distant_changes_make_separate_hunks()
    {
        var before = string.Join('\n', Enumerable.Range(1, 20).Select(i => $"line{i}")) + "\n";
        var after = before.Replace("line2\n", "LINE2\n", StringComparison.Ordinal).Replace("line18\n", "LINE18\n", StringComparison.Ordinal);
        var diff = UnifiedDiff.Render(before, after, "a", "b");
        Assert.Equal(2, diff.Split('\n').Count(l => l.StartsWith("@@", StringComparison.Ordinal)));
        Assert.Contains("@@ -1,5 +1,5 @@\n line1\n-line2\n+LINE2\n line3\n", diff, StringComparison.Ordinal);
        Assert.Contains("@@ -15,6 +15,6 @@\n", diff, StringComparison.Ordinal);
    }
}

public sealed class SwitchoverChecksTests
{
    private static readonly ClusterView View = new()
    {
        Leader = new LeaderKey("node1", 1, 1),
        Status = new ClusterStatus { Optime = 100_000_000 },
        Members =
        [
            new("node1", new MemberData { State = "running", Role = "primary", XlogLocation = 100_000_000 }, 1, 1),
            new("node2", new MemberData { State = "running", Role = "replica", ReplicationState = "streaming", XlogLocation = 100_000_000 }, 1, 1),
            new("node3", new MemberData { State = "running", Role = "replica", ReplicationState = "streaming", XlogLocation = 100_000_000,
                Tags = new Dictionary<string, object?> { ["nofailover"] = System.Text.Json.JsonSerializer.SerializeToElement(true) } }, 1, 1),
            new("node4", new MemberData { State = "running", Role = "replica", XlogLocation = 100_000_000 }, 1, 1),
            new("node5", new MemberData { State = "running", Role = "replica", ReplicationState = "streaming", XlogLocation = 10 }, 1, 1),
            new("node6", new MemberData { State = "stopped", Role = "replica" }, 1, 1),
        ],
    };

    [Theory]
    [InlineData("node2", true, null)]
    [InlineData("node1", true, "node1 is already the leader")]
    [InlineData("node3", true, "node3 has the tag nofailover")]
    [InlineData("node4", true, "node4 is not a streaming replica")]
    [InlineData("node4", false, null)]
    [InlineData("node5", true, "node5 is 99999990 bytes behind the leader (maximum_lag_on_failover is 1048576)")]
    [InlineData("node6", false, "node6 is not running (state: stopped)")]
    public void A_candidate_is_refused_with_the_reason(string name, bool requireStreaming, string? reason)
    {
        var why = SwitchoverCommands.Refusal(View, View.GetMember(name)!, View.LeaderMember, requireStreaming);
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
    public void An_unknown_member_is_refused_listing_the_members()
    {
        var e = Assert.Throws<CliException>(() => CliContext.RequireMember(View, "demo", "node9"));
        Assert.Equal("node9 is not a member of cluster demo (members: node1, node2, node3, node4, node5, node6)", e.Message);
    }
}
