using System.Globalization;

namespace Steward.Postgres;

/// <summary>The fields of pg_controldata's output the agent uses (run with LC_ALL=C so the labels are English).</summary>
internal sealed record PgControlData(string? SystemId, string? State, long? Timeline)
{
    public static PgControlData Parse(string output)
    {
        string? systemId = null, state = null;
        long? timeline = null;
        foreach (var line in output.Split('\n'))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                continue;
            }
            var value = line[(colon + 1)..].Trim();
            switch (line[..colon].Trim())
            {
                case "Database system identifier":
                    systemId = value;
                    break;
                case "Database cluster state":
                    state = value;
                    break;
                case "Latest checkpoint's TimeLineID":
                    timeline = long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var t) ? t : null;
                    break;
            }
        }
        return new PgControlData(systemId, state, timeline);
    }
}
