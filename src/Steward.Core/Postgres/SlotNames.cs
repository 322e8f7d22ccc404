namespace Steward.Core.Postgres;

/// <summary>Replication slot names derived from member names, as Patroni derives them.</summary>
public static class SlotNames
{
    /// <summary>PostgreSQL's NAMEDATALEN - 1.</summary>
    public const int MaxLength = 63;

    /// <summary>The member name lowercased, every character outside <c>[a-z0-9_]</c> replaced by '_', cut to 63 characters.</summary>
    public static string For(string memberName)
    {
        ArgumentException.ThrowIfNullOrEmpty(memberName);
        var length = Math.Min(memberName.Length, MaxLength);
        return string.Create(length, memberName, static (span, name) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                var c = char.ToLowerInvariant(name[i]);
                span[i] = c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' ? c : '_';
            }
        });
    }

    /// <summary>Whether PostgreSQL accepts <paramref name="name"/> as a replication slot name (a-z, 0-9, _; 1 to 63).</summary>
    public static bool IsValid(string name) =>
        name is { Length: > 0 and <= MaxLength } && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_');
}
