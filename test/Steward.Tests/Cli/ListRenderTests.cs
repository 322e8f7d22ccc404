using System.Text.Json;
using Steward.Cli;
using Steward.Core.Cluster;

namespace Steward.Tests.Cli;

public sealed class ListRenderTests
{
    private static ClusterView ThreeNodes(bool pause = false) => new()
    {
        Initialize = "7312345678901234567",
        Leader = new LeaderKey("node1", 10, 1),
        Status = new ClusterStatus { Optime = 50 * 1048576L },
        Config = new DynamicConfigEntry(new DynamicConfig { Pause = pause }, 5),
        Members =
        [
            Member("node1", "primary", null, 50 * 1048576L, new Dictionary<string, object?> { ["nofailover"] = false }),
            Member("node2", "replica", "streaming", 49 * 1048576L, new Dictionary<string, object?>
            {
                ["nofailover"] = JsonSerializer.SerializeToElement(true), ["noloadbalance"] = false, ["datacenter"] = "eu-west-1a, rack 12, row 3",
            }, pendingRestart: true),
            Member("node3", "replica", "streaming", null, null),
        ],
    };

    private static Member Member(string name, string role, string? replication, long? lsn, Dictionary<string, object?>? tags, bool pendingRestart = false) =>
        new(name, new MemberData
        {
            ConnUrl = $"postgres://10.0.0.{name[^1]}:5432/postgres", ApiUrl = $"http://10.0.0.{name[^1]}:8008/patroni", State = "running", Role = role,
            Timeline = 3, XlogLocation = lsn, ReplicationState = replication, Tags = tags, PendingRestart = pendingRestart ? true : null,
        }, 1, 1);

    [Fact]
    public void List_shows_Patronis_columns_with_the_scope_and_system_id_in_the_title()
    {
        var text = ListCommand.Render("demo", ThreeNodes(), extended: false, width: 80);
        var lines = text.TrimEnd('\n').Split('\n');
        Assert.StartsWith("+ Cluster: demo (7312345678901234567) ", lines[0], StringComparison.Ordinal);
        Assert.Matches(@"^\| Member \| Host +\| Role +\| State +\| TL \| Lag in MB \|$", lines[1]);
        Assert.Matches(@"^\| node1 +\| 10\.0\.0\.1:5432 \| Leader +\| running +\| +3 \| +\|$", lines[3]);
        Assert.Matches(@"^\| node2 +\| 10\.0\.0\.2:5432 \| Replica \| streaming \| +3 \| +1 \|$", lines[4]);
        Assert.Matches(@"^\| node3 .*\| +unknown \|$", lines[5]);
        Assert.All(lines, l => Assert.Equal(lines[1].Length, l.Length));
    }

    [Fact]
    public void Extended_list_fits_80_columns_by_wrapping_tags_and_headers()
    {
        var text = ListCommand.Render("demo", ThreeNodes(), extended: true, width: 80, new Dictionary<string, string> { ["node3"] = "2026-11-26T12:00:00+00:00" });
        var lines = text.TrimEnd('\n').Split('\n');
        Assert.All(lines, l => Assert.True(l.Length <= 80, $"{l.Length} columns: {l}"));
        Assert.Contains("Pending", text, StringComparison.Ordinal);
        Assert.Contains("nofailover: true", text, StringComparison.Ordinal);
        Assert.Contains("| 2026-11-26T12:00:00+00:00 |", text, StringComparison.Ordinal);
        Assert.Matches(@"\| node2 +\| \* ", text);
        Assert.Matches(@"\| node2 +\| 10\.0\.0\.2:5432 \| Replica \| streaming \| +3 \| +1 \|", text);
    }

    [Fact]
    public void Extended_list_is_one_table_when_the_terminal_is_wide_enough()
    {
        var text = ListCommand.Render("demo", ThreeNodes(), extended: true, width: 200);
        Assert.Single(text.Split('\n'), l => l.Contains("Member", StringComparison.Ordinal));
        Assert.Matches(@"\| node2 +\| 10\.0\.0\.2:5432 \| Replica \| streaming \| +3 \| +1 \| \* ", text);
    }

    [Fact]
    public void Maintenance_mode_and_a_scheduled_switchover_are_shown_under_the_table()
    {
        var view = ThreeNodes(pause: true) with
        {
            Failover = new FailoverRequest { Leader = "node1", Candidate = "node2", ScheduledAt = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero) },
        };
        var text = ListCommand.Render("demo", view, extended: false, width: 80);
        Assert.Contains(" Maintenance mode: on\n", text, StringComparison.Ordinal);
        Assert.Contains(" Switchover scheduled at: 2026-11-26T12:00:00+00:00\n", text, StringComparison.Ordinal);
        Assert.Contains("to: node2", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Topology_puts_the_leader_first_and_indents_the_replicas()
    {
        var view = ThreeNodes();
        view = view with { Leader = new LeaderKey("node2", 10, 1) };
        var text = ListCommand.Render("demo", view with { Members = ListCommand.TopologyOrder(view) }, extended: false, width: 80, topology: true);
        var rows = text.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal)).Skip(1).ToList();
        Assert.StartsWith("| node2 ", rows[0], StringComparison.Ordinal);
        Assert.StartsWith("| + node1 ", rows[1], StringComparison.Ordinal);
        Assert.StartsWith("| + node3 ", rows[2], StringComparison.Ordinal);
    }

    [Fact]
    public void Json_data_uses_Patronis_column_names()
    {
        var data = ListCommand.Data("demo", ThreeNodes(), extended: true, null);
        Assert.Equal(3, data.Count);
        Assert.Equal("Leader", data[0]!["Role"]!.GetValue<string>());
        Assert.Equal(1.0, data[1]!["Lag in MB"]!.GetValue<double>());
        Assert.Equal("*", data[1]!["Pending restart"]!.GetValue<string>());
        Assert.Equal("demo", data[2]!["Cluster"]!.GetValue<string>());
    }

    [Fact]
    public void History_shows_timeline_lsn_reason_time_and_new_leader()
    {
        var text = ConfigCommands.RenderHistory([new HistoryEntry(1, 50331808, "no recovery target specified", new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero), "node2")], 120);
        Assert.Contains("| TL | LSN      | Reason", text, StringComparison.Ordinal);
        Assert.Contains("|  1 | 50331808 | no recovery target specified | 2026-01-02T03:04:05.000000+00:00 | node2", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_long_word_is_cut_when_it_does_not_fit()
    {
        Assert.Equal(["abcd", "efgh", "ij"], TextTable.Wrap("abcdefghij", 4));
        Assert.Equal(["one two", "three"], TextTable.Wrap("one two three", 7));
        Assert.Equal(["a: 1", "b: 2"], TextTable.Wrap("a: 1\nb: 2", 10));
    }
}
