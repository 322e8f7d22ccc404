using System.Net;

namespace Steward.Core.Configuration;

/// <summary>
/// One entry of Patroni's <c>restapi.allowlist</c>: an address (<c>10.0.0.5</c>, <c>::1</c>), a network
/// (<c>10.0.0.0/24</c>) or a host name (resolved when a request is checked).
/// </summary>
public sealed class AllowlistEntry
{
    private AllowlistEntry(IPNetwork? network, string? host)
    {
        Network = network;
        Host = host;
    }

    public IPNetwork? Network { get; }
    public string? Host { get; }

    public static bool TryParse(string text, out AllowlistEntry? entry, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(text);
        entry = null;
        problem = null;
        var trimmed = text.Trim().Trim('[', ']');
        if (trimmed.Contains('/', StringComparison.Ordinal))
        {
            if (IPNetwork.TryParse(trimmed, out var network))
            {
                entry = new AllowlistEntry(network, null);
                return true;
            }

            problem = $"expected an address, a network such as 10.0.0.0/24 or a host name, got '{text}'";
            return false;
        }

        if (IPAddress.TryParse(trimmed, out var address))
        {
            entry = new AllowlistEntry(new IPNetwork(Normalize(address), address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128), null);
            return true;
        }

        if (trimmed.Length == 0 || Uri.CheckHostName(trimmed) != UriHostNameType.Dns)
        {
            problem = $"expected an address, a network such as 10.0.0.0/24 or a host name, got '{text}'";
            return false;
        }

        entry = new AllowlistEntry(null, trimmed);
        return true;
    }

    /// <summary>Whether <paramref name="remote"/> is this entry (a host name through <paramref name="resolve"/>).</summary>
    public bool Matches(IPAddress remote, Func<string, IReadOnlyList<IPAddress>> resolve)
    {
        ArgumentNullException.ThrowIfNull(remote);
        ArgumentNullException.ThrowIfNull(resolve);
        var address = Normalize(remote);
        return Network is { } network
            ? network.Contains(address)
            : resolve(Host!).Any(a => Normalize(a).Equals(address));
    }

    /// <summary>IPv4 seen through a dual-stack socket (::ffff:10.0.0.5) compares as IPv4.</summary>
    public static IPAddress Normalize(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
    }

    public override string ToString() => Network?.ToString() ?? Host!;
}
