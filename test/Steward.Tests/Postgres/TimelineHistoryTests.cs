using Steward.Core.Cluster;
using Steward.Core.Postgres;
using Steward.Postgres;

namespace Steward.Tests.Postgres;

public sealed class TimelineHistoryTests
{
    private static HistoryEntry Entry(long timeline, string lsn, string reason) =>
        new(timeline, Lsn.Parse(lsn), reason, DateTimeOffset.UnixEpoch, "node1");

    [Fact]
    public void File_names_are_eight_uppercase_hex_digits()
    {
        Assert.Equal("00000003.history", TimelineHistory.FileName(3));
        Assert.Equal("0000001A.history", TimelineHistory.FileName(26));
    }

    [Fact]
    public void The_file_of_timeline_N_plus_1_lists_every_switch_up_to_N_in_PostgreSQL_format()
    {
        var files = TimelineHistory.Files(
        [
            Entry(2, "0/5000000", "no recovery target specified"),
            Entry(1, "0/3000148", "no recovery target specified"),
        ]).ToList();

        Assert.Equal(
            [
                (2L, "1\t0/3000148\tno recovery target specified\n"),
                (3L, "1\t0/3000148\tno recovery target specified\n2\t0/5000000\tno recovery target specified\n"),
            ],
            files);
    }

    [Fact]
    public void Reasons_stay_on_one_line()
    {
        var (_, content) = Assert.Single(TimelineHistory.Files([Entry(1, "0/1", "a\tb\nc")]));

        Assert.Equal("1\t0/1\ta b c\n", content);
    }

    [Fact]
    public void The_last_line_of_a_history_file_is_the_switch_into_its_timeline()
    {
        var last = TimelineHistory.ParseLast("1\t0/3000148\tno recovery target specified\n\n2\t0/50000A0\tbefore 2000-01-01\n");

        Assert.Equal(new TimelineSwitch(2, 0x50000A0, "before 2000-01-01"), last);
    }

    [Fact]
    public void An_empty_history_file_has_no_switch()
    {
        Assert.Null(TimelineHistory.ParseLast("# comment\n\n"));
    }

    [Fact]
    public void A_garbled_line_is_reported()
    {
        var error = Assert.Throws<PostgresException>(() => TimelineHistory.ParseLast("one\t0/1\tx\n"));
        Assert.Contains("one", error.Message, StringComparison.Ordinal);
    }
}
