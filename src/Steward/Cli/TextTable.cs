using System.Text;

namespace Steward.Cli;

/// <summary>
/// Patroni's plain table (<c>+---+</c> borders, a title in the top border). When the natural width exceeds the limit, the
/// widest columns are narrowed: headers wrap at spaces (down to their longest word), and so do the cells of the columns
/// marked wrappable (down to 8 characters); other cells keep their width, so the result may still be wider (see
/// <see cref="Width"/>). A cell may hold several lines (separated by <c>\n</c>).
/// </summary>
internal static class TextTable
{
    /// <summary>$COLUMNS, else the terminal's width, else 80.</summary>
    public static int DefaultWidth
    {
        get
        {
            if (int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var columns) && columns > 20)
            {
                return columns;
            }

            return !Console.IsOutputRedirected && Console.WindowWidth > 20 ? Console.WindowWidth : 80;
        }
    }

    public static string Render(string? title, IReadOnlyList<string> headers, IReadOnlyList<IReadOnlyList<string>> rows, int maxWidth, ISet<int>? rightAligned = null, ISet<int>? wrappable = null)
    {
        ArgumentNullException.ThrowIfNull(headers);
        ArgumentNullException.ThrowIfNull(rows);
        var n = headers.Count;
        var widths = new int[n];
        var headerOnly = new int[n];
        var minimum = new int[n];
        for (var i = 0; i < n; i++)
        {
            var header = headers[i].Split(' ').Max(w => w.Length);
            var data = rows.Count == 0 ? 0 : rows.Max(r => LongestLine(r[i]));
            widths[i] = Math.Max(LongestLine(headers[i]), data);
            headerOnly[i] = Math.Max(data, header);
            minimum[i] = Math.Min(widths[i], wrappable?.Contains(i) == true ? Math.Max(8, header) : headerOnly[i]);
        }

        // Wrap headers first, then the cells of wrappable columns.
        Shrink(widths, headerOnly, maxWidth);
        Shrink(widths, minimum, maxWidth);

        var sb = new StringBuilder();
        var border = "+" + string.Join("+", widths.Select(w => new string('-', w + 2))) + "+";
        if (title is not null)
        {
            var top = $"+ {title} ";
            sb.Append(top.Length < border.Length ? top + border[(top.Length)..] : top).Append('\n');
        }
        else
        {
            sb.Append(border).Append('\n');
        }

        AppendRow(sb, headers, widths, null);
        sb.Append(border).Append('\n');
        foreach (var row in rows)
        {
            AppendRow(sb, row, widths, rightAligned);
        }

        sb.Append(border).Append('\n');
        return sb.ToString();
    }

    /// <summary>Narrows the widest column above its minimum, one character at a time, until the table fits or none can narrow.</summary>
    private static void Shrink(int[] widths, int[] minimum, int maxWidth)
    {
        while (widths.Sum() + (3 * widths.Length) + 1 > maxWidth)
        {
            var widest = Enumerable.Range(0, widths.Length).Where(i => widths[i] > minimum[i]).OrderByDescending(i => widths[i]).FirstOrDefault(-1);
            if (widest < 0)
            {
                return;
            }

            widths[widest]--;
        }
    }

    /// <summary>The width of the widest line of a rendered table.</summary>
    public static int Width(string table) => table.Split('\n').Max(l => l.Length);

    private static void AppendRow(StringBuilder sb, IReadOnlyList<string> cells, int[] widths, ISet<int>? rightAligned)
    {
        var wrapped = cells.Select((c, i) => Wrap(c, widths[i])).ToArray();
        var height = wrapped.Max(w => w.Count);
        for (var line = 0; line < height; line++)
        {
            sb.Append('|');
            for (var i = 0; i < widths.Length; i++)
            {
                var text = line < wrapped[i].Count ? wrapped[i][line] : "";
                sb.Append(' ').Append(rightAligned?.Contains(i) == true ? text.PadLeft(widths[i]) : text.PadRight(widths[i])).Append(" |");
            }

            sb.Append('\n');
        }
    }

    private static int LongestLine(string cell) => cell.Split('\n').Max(l => l.Length);

    /// <summary>The cell's lines, each wrapped to <paramref name="width"/> at spaces (a longer word is cut).</summary>
    internal static List<string> Wrap(string cell, int width)
    {
        var lines = new List<string>();
        foreach (var paragraph in cell.Split('\n'))
        {
            var current = new StringBuilder();
            foreach (var word in paragraph.Split(' '))
            {
                var rest = word;
                if (current.Length > 0 && current.Length + 1 + rest.Length > width)
                {
                    lines.Add(current.ToString());
                    current.Clear();
                }

                while (rest.Length > width)
                {
                    if (current.Length > 0)
                    {
                        lines.Add(current.ToString());
                        current.Clear();
                    }

                    lines.Add(rest[..width]);
                    rest = rest[width..];
                }

                if (current.Length > 0)
                {
                    current.Append(' ');
                }

                current.Append(rest);
            }

            lines.Add(current.ToString());
        }

        return lines;
    }
}
