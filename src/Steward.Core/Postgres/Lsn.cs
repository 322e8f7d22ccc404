using System.Globalization;

namespace Steward.Core.Postgres;

/// <summary>PostgreSQL WAL positions: "16/B374D848" &lt;-&gt; a 64-bit number.</summary>
public static class Lsn
{
    public static string Format(long lsn) => string.Create(CultureInfo.InvariantCulture, $"{(ulong)lsn >> 32:X}/{(ulong)lsn & 0xFFFFFFFF:X}");

    public static long Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            throw new FormatException($"not an LSN: '{text}'");
        }

        var hi = ulong.Parse(text.AsSpan(0, slash), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var lo = ulong.Parse(text.AsSpan(slash + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        return (long)((hi << 32) | lo);
    }
}
