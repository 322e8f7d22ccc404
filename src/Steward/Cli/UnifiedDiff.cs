using System.Globalization;
using System.Text;

namespace Steward.Cli;

/// <summary>A unified diff of two short texts (a configuration's YAML), by longest common subsequence of lines, with 3 lines of context.</summary>
internal static class UnifiedDiff
{
    private const int Context = 3;

    /// <summary>The diff, or "" when the texts have the same lines.</summary>
    public static string Render(string before, string after, string beforeName, string afterName)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        var a = Lines(before);
        var b = Lines(after);
        var edits = Edits(a, b);
        if (edits.All(e => e.Kind == ' '))
        {
            return "";
        }

        var sb = new StringBuilder();
        sb.Append("--- ").Append(beforeName).Append('\n').Append("+++ ").Append(afterName).Append('\n');
        var changed = Enumerable.Range(0, edits.Count).Where(i => edits[i].Kind != ' ').ToList();
        var groups = new List<(int First, int Last)>();
        foreach (var i in changed)
        {
            if (groups.Count > 0 && i - groups[^1].Last <= 2 * Context)
            {
                groups[^1] = (groups[^1].First, i);
            }
            else
            {
                groups.Add((i, i));
            }
        }

        foreach (var (first, last) in groups)
        {
            var start = Math.Max(0, first - Context);
            var hunk = edits.GetRange(start, Math.Min(edits.Count, last + 1 + Context) - start);
            var aCount = hunk.Count(e => e.Kind != '+');
            var bCount = hunk.Count(e => e.Kind != '-');
            sb.Append(CultureInfo.InvariantCulture, $"@@ -{Range(hunk[0].A, aCount)} +{Range(hunk[0].B, bCount)} @@\n");
            foreach (var e in hunk)
            {
                sb.Append(e.Kind).Append(e.Text).Append('\n');
            }
        }

        return sb.ToString();
    }

    private static string Range(int zeroBasedStart, int count) => count switch
    {
        0 => $"{zeroBasedStart},0",
        1 => (zeroBasedStart + 1).ToString(CultureInfo.InvariantCulture),
        _ => $"{zeroBasedStart + 1},{count}",
    };

    private static string[] Lines(string text) => text.Length == 0 ? [] : text.TrimEnd('\n').Split('\n');

    private sealed record Edit(char Kind, string Text, int A, int B);

    /// <summary>The edit script: ' ' kept, '-' removed, '+' added, with each line's zero-based index in its text.</summary>
    private static List<Edit> Edits(string[] a, string[] b)
    {
        var lcs = new int[a.Length + 1, b.Length + 1];
        for (var i = a.Length - 1; i >= 0; i--)
        {
            for (var j = b.Length - 1; j >= 0; j--)
            {
                lcs[i, j] = a[i] == b[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            }
        }

        var edits = new List<Edit>();
        int x = 0, y = 0;
        while (x < a.Length || y < b.Length)
        {
            if (x < a.Length && y < b.Length && a[x] == b[y])
            {
                edits.Add(new Edit(' ', a[x], x++, y++));
            }
            else if (x < a.Length && (y == b.Length || lcs[x + 1, y] >= lcs[x, y + 1]))
            {
                edits.Add(new Edit('-', a[x], x++, y));
            }
            else
            {
                edits.Add(new Edit('+', b[y], x, y++));
            }
        }

        return edits;
    }
}
