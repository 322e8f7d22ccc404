using System.Globalization;

namespace Steward.Core.Configuration;

/// <summary>Patroni's durations: a number of seconds, or a number with a unit (<c>30min</c>, <c>1h</c>, <c>10s</c>, <c>1d</c>).</summary>
public static class DurationText
{
    public static bool TryParseSeconds(string text, out long seconds)
    {
        seconds = 0;
        var trimmed = text?.Trim() ?? "";
        var split = 0;
        while (split < trimmed.Length && (char.IsAsciiDigit(trimmed[split]) || (split == 0 && trimmed[0] == '-')))
        {
            split++;
        }

        if (!long.TryParse(trimmed[..split], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }

        long? factor = trimmed[split..].Trim().ToLowerInvariant() switch
        {
            "" or "s" or "sec" or "second" or "seconds" => 1,
            "min" or "m" or "minute" or "minutes" => 60,
            "h" or "hour" or "hours" => 3600,
            "d" or "day" or "days" => 86400,
            _ => null,
        };
        if (factor is null)
        {
            return false;
        }

        seconds = number * factor.Value;
        return true;
    }
}
