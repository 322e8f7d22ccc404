using System.Globalization;

namespace Steward.Core.Configuration;

/// <summary>Sizes as PostgreSQL and Patroni write them.</summary>
public static class ByteSize
{
    /// <summary>Parses "1048576", "16kB", "1MB", "2 GB" (PostgreSQL's units, case-insensitive) into bytes.</summary>
    public static bool TryParse(string text, out long bytes)
    {
        bytes = 0;
        var t = text.Trim();
        var i = 0;
        while (i < t.Length && char.IsAsciiDigit(t[i]))
        {
            i++;
        }

        if (i == 0 || !long.TryParse(t.AsSpan(0, i), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            return false;
        }

        long? factor = t[i..].Trim().ToUpperInvariant() switch
        {
            "" or "B" => 1,
            "KB" => 1L << 10,
            "MB" => 1L << 20,
            "GB" => 1L << 30,
            "TB" => 1L << 40,
            _ => null,
        };
        if (factor is null)
        {
            return false;
        }

        bytes = n * factor.Value;
        return true;
    }
}
