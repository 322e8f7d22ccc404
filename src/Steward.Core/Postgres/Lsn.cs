using System.Globalization;

namespace Steward.Core.Postgres;

/// <summary>PostgreSQL WAL positions (<c>pg_lsn</c>) as written by PostgreSQL: two hex halves, <c>"0/3000060"</c>.</summary>
public static class Lsn
{
    /// <summary>Formats like PostgreSQL (<c>%X/%X</c>): uppercase hex, no padding.</summary>
    public static string Format(long lsn)
    {
        var value = unchecked((ulong)lsn);
        return string.Create(CultureInfo.InvariantCulture, $"{value >> 32:X}/{value & 0xFFFF_FFFF:X}");
    }

    /// <summary>Parses <c>"X/Y"</c>; returns false for anything else (empty halves, more than 8 hex digits per half, other characters).</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out long lsn)
    {
        lsn = 0;
        var slash = text.IndexOf('/');
        if (slash <= 0 || slash > 8 || text.Length - slash - 1 is < 1 or > 8)
        {
            return false;
        }
        if (!uint.TryParse(text[..slash], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var high)
            || !uint.TryParse(text[(slash + 1)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var low))
        {
            return false;
        }
        lsn = unchecked((long)(((ulong)high << 32) | low));
        return true;
    }

    /// <summary>Parses <c>"X/Y"</c>; throws <see cref="FormatException"/> naming the text otherwise.</summary>
    public static long Parse(string text) =>
        TryParse(text, out var lsn) ? lsn : throw new FormatException($"'{text}' is not a WAL position (expected X/Y in hex, e.g. 0/3000060)");
}
