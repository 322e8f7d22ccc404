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
    /// The files implied by the cluster history: one for every timeline id the cluster has used, 2 up to the highest, so
    /// that PostgreSQL (which takes the first id with no history file after its own) never picks one twice. Each file holds
    /// that timeline's chain of switches, oldest first, as PostgreSQL writes it (<c>"1\t0/3000148\treason\n"</c>); a
    /// timeline the history does not describe (none does, after a crash between promotion and its record) continues the
    /// one before it, so every file stays a valid history.
    /// </summary>
    public static IEnumerable<(long Timeline, string Content)> Files(IReadOnlyList<HistoryEntry> history)
    {
        var byCreated = new Dictionary<long, HistoryEntry>();
        foreach (var entry in history.Where(e => e.Timeline > 0 && e.CreatedTimeline > e.Timeline))
        {
            byCreated.TryAdd(entry.CreatedTimeline, entry);
        }

        var max = HistoryEntry.MaxTimeline(history);
        var chains = new Dictionary<long, string> { [1] = "" };
        for (var timeline = 2L; timeline <= max; timeline++)
        {
            var (parent, lsn, reason) = byCreated.TryGetValue(timeline, out var e) && chains.ContainsKey(e.Timeline)
                ? (e.Timeline, e.Lsn, e.Reason)
                : (timeline - 1, LastLsn(chains[timeline - 1], history), "timeline id reserved by the cluster history");
            var content = chains[parent] + parent.ToString(CultureInfo.InvariantCulture) + '\t' + Lsn.Format(lsn) + '\t' + OneLine(reason) + '\n';
            chains[timeline] = content;
            yield return (timeline, content);
        }
    }

    private static long LastLsn(string chain, IReadOnlyList<HistoryEntry> history) =>
        ParseLast(chain)?.SwitchLsn ?? (history.Count == 0 ? 0 : history.Min(h => h.Lsn));

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
