using System.Globalization;
using System.Text;
using Steward.Core.Cluster;
using Steward.Core.Postgres;

namespace Steward.Postgres;

/// <summary>PostgreSQL's <c>pg_wal/&lt;timeline&gt;.history</c> files: one "parent TLI, switch LSN, reason" line per ancestor.</summary>
internal static class TimelineHistory
{
    /// <summary>00000003.history.</summary>
    public static string FileName(long timeline) => timeline.ToString("X8", CultureInfo.InvariantCulture) + ".history";

    /// <summary>
    /// The files implied by the cluster history: the one for timeline N+1 lists every switch with parent timeline &lt;= N,
    /// oldest first, as PostgreSQL writes it (<c>"1\t0/3000148\treason\n"</c>). The first entry per timeline wins.
    /// </summary>
    public static IEnumerable<(long Timeline, string Content)> Files(IReadOnlyList<HistoryEntry> history)
    {
        var entries = history
            .Where(e => e.Timeline > 0)
            .GroupBy(e => e.Timeline)
            .Select(g => g.First())
            .OrderBy(e => e.Timeline)
            .ToList();
        var content = new StringBuilder();
        foreach (var entry in entries)
        {
            content.Append(entry.Timeline.ToString(CultureInfo.InvariantCulture))
                .Append('\t').Append(Lsn.Format(entry.Lsn))
                .Append('\t').Append(OneLine(entry.Reason))
                .Append('\n');
            yield return (entry.Timeline + 1, content.ToString());
        }
    }

    /// <summary>The last entry of a history file, null when it has none.</summary>
    public static TimelineSwitch? ParseLast(string content)
    {
        TimelineSwitch? last = null;
        foreach (var raw in content.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            var fields = line.Split('\t', 3);
            if (fields.Length < 2
                || !long.TryParse(fields[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var parent)
                || !Lsn.TryParse(fields[1].Trim(), out var lsn))
            {
                throw new PostgresException($"unexpected line in timeline history file: '{line}'");
            }
            last = new TimelineSwitch(parent, lsn, fields.Length > 2 ? fields[2].Trim() : "");
        }
        return last;
    }

    private static string OneLine(string reason) =>
        reason.Replace('\n', ' ').Replace('\r', ' ').Replace('\t', ' ');
}
