using System.Text;

namespace Steward.Core.Configuration;

/// <summary>
/// Splits a command line into words as a POSIX shell would, without running one (Python's <c>shlex.split</c>, which
/// Patroni uses for <c>command</c> settings): blanks separate words; single quotes keep everything; double quotes keep
/// everything but <c>\"</c>, <c>\\</c>, <c>\$</c> and <c>\`</c>; a backslash outside quotes keeps the next character.
/// No expansion of variables, globs or <c>~</c>.
/// </summary>
public static class ShellWords
{
    /// <returns>The words, or null with <paramref name="error"/> when a quote is not closed or the line ends in a backslash.</returns>
    public static IReadOnlyList<string>? Split(string line, out string? error)
    {
        ArgumentNullException.ThrowIfNull(line);
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            switch (c)
            {
                case ' ' or '\t' or '\n' or '\r':
                    if (inWord)
                    {
                        words.Add(word.ToString());
                        word.Clear();
                        inWord = false;
                    }

                    break;
                case '\'':
                    var close = line.IndexOf('\'', i + 1);
                    if (close < 0)
                    {
                        error = "no closing quotation (')";
                        return null;
                    }

                    word.Append(line, i + 1, close - i - 1);
                    i = close;
                    inWord = true;
                    break;
                case '"':
                    i++;
                    while (i < line.Length && line[i] != '"')
                    {
                        if (line[i] == '\\' && i + 1 < line.Length && line[i + 1] is '"' or '\\' or '$' or '`')
                        {
                            i++;
                        }

                        word.Append(line[i]);
                        i++;
                    }

                    if (i >= line.Length)
                    {
                        error = "no closing quotation (\")";
                        return null;
                    }

                    inWord = true;
                    break;
                case '\\':
                    if (i + 1 >= line.Length)
                    {
                        error = "no escaped character after the final backslash";
                        return null;
                    }

                    word.Append(line[++i]);
                    inWord = true;
                    break;
                default:
                    word.Append(c);
                    inWord = true;
                    break;
            }
        }

        if (inWord)
        {
            words.Add(word.ToString());
        }

        error = null;
        return words;
    }
}
