using System.Globalization;

namespace Steward.Cli;

/// <summary>Times on the command line: ISO 8601 (<c>2026-11-26T12:00</c>, <c>2026-11-26 12:00:00+01:00</c>, <c>…Z</c>; local time when no offset is given) or <c>now</c>.</summary>
internal static class CliTime
{
    private static readonly string[] Formats =
    [
        "yyyy-MM-dd'T'HH:mmK", "yyyy-MM-dd'T'HH:mm:ssK", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK",
        "yyyy-MM-dd HH:mmK", "yyyy-MM-dd HH:mm:ssK", "yyyy-MM-dd HH:mm:ss.FFFFFFFK",
    ];

    /// <summary>The time, or null for <c>now</c> (act at once). A value that is neither is a <see cref="CliException"/> naming it.</summary>
    public static DateTimeOffset? Parse(string text, string option)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        if (trimmed.Equals("now", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (DateTimeOffset.TryParseExact(trimmed, Formats, CultureInfo.InvariantCulture, DateTimeStyles.AssumeLocal, out var time))
        {
            return time;
        }

        throw new CliException($"Unable to parse scheduled timestamp ({text}). It should be in an unambiguous format (e.g. ISO 8601): "
                               + $"{option}: '{text}' is not a time; give e.g. 2026-11-26T12:00:00+00:00 (without offset: local time) or 'now'");
    }

    /// <summary>Parses <paramref name="text"/> (when given) and refuses a time already past.</summary>
    public static DateTimeOffset? ParseFuture(string? text, string option, DateTimeOffset now)
    {
        if (text is null || Parse(text, option) is not { } time)
        {
            return null;
        }

        return time > now ? time : throw new CliException($"{option}: {Format(time)} is in the past (now is {Format(now)})");
    }

    public static string Format(DateTimeOffset time) => time.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture);
}
