using System.Text;

namespace Steward.Core.Postgres;

/// <summary>Physical replication slot names derived from member names, as Patroni derives them.</summary>
public static class SlotNames
{
    public static string For(string memberName)
    {
        ArgumentNullException.ThrowIfNull(memberName);
        var sb = new StringBuilder(memberName.Length);
        foreach (var c in memberName.ToLowerInvariant())
        {
            sb.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' ? c : '_');
        }

        return sb.Length > 63 ? sb.ToString(0, 63) : sb.ToString();
    }
}
