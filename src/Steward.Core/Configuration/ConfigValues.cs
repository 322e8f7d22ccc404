using System.Globalization;

namespace Steward.Core.Configuration;

/// <summary>Parsers for the value formats of the configuration file; each returns null and a reason when it cannot parse.</summary>
internal static class ConfigValues
{
    /// <summary>Default etcd client port, as Patroni assumes when a host has none.</summary>
    public const int EtcdPort = 2379;

    /// <summary>
    /// <c>host:port</c>, <c>[v6]:port</c>, or (when <paramref name="defaultPort"/> is given) a bare host. An empty host
    /// (<c>:8008</c>) means every interface, like Patroni.
    /// </summary>
    public static HostPort? ParseHostPort(string text, int? defaultPort, out string? problem)
    {
        problem = null;
        var expected = $"expected host:port, got '{text}'";
        string host;
        string? port;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || (close + 1 < text.Length && text[close + 1] != ':'))
            {
                problem = expected;
                return null;
            }

            host = text[1..close];
            port = close + 1 < text.Length ? text[(close + 2)..] : null;
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon >= 0 && text.IndexOf(':', StringComparison.Ordinal) != colon)
            {
                problem = $"write an IPv6 address in brackets, e.g. [::1]:5432, got '{text}'";
                return null;
            }

            host = colon < 0 ? text : text[..colon];
            port = colon < 0 ? null : text[(colon + 1)..];
        }

        if (port is null)
        {
            if (defaultPort is { } fallback && host.Length > 0)
            {
                return new HostPort(host, fallback);
            }

            problem = expected;
            return null;
        }

        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            problem = expected;
            return null;
        }

        if (number is < 1 or > 65535)
        {
            problem = $"port must be between 1 and 65535, got {number}";
            return null;
        }

        return new HostPort(host, number);
    }

    /// <summary>
    /// PostgreSQL's listen: like <see cref="ParseHostPort"/>, but the host may be a comma-separated list
    /// (<c>10.0.0.1,127.0.0.1:5432</c>), kept as written because it becomes <c>listen_addresses</c>.
    /// </summary>
    public static HostPort? ParseListen(string text, out string? problem)
    {
        var colon = text.LastIndexOf(':');
        if (colon < 0 || !text[..colon].Contains(',', StringComparison.Ordinal))
        {
            return ParseHostPort(text, null, out problem);
        }

        var hosts = text[..colon].Split(',', StringSplitOptions.TrimEntries);
        var port = ParseHostPort("localhost" + text[colon..], null, out problem);
        if (port is null || hosts.Any(host => host.Length == 0))
        {
            problem ??= $"expected host:port, got '{text}'";
            return null;
        }

        return port with { Host = string.Join(',', hosts) };
    }

    /// <summary>Whether a listen host means "every interface", which other machines cannot connect to.</summary>
    public static bool IsWildcard(string host) => host is "" or "0.0.0.0" or "::" or "*";

    /// <summary>An etcd URL (<c>http[s]://host[:port][/…]</c>) as <c>http[s]://host:port</c>.</summary>
    public static string? ParseEtcdUrl(string text, out string? problem)
    {
        var separator = text.IndexOf("://", StringComparison.Ordinal);
        if (separator < 0)
        {
            problem = $"expected a URL like http://127.0.0.1:2379, got '{text}'";
            return null;
        }

        var scheme = text[..separator];
        var https = scheme.Equals("https", StringComparison.OrdinalIgnoreCase);
        if (!https && !scheme.Equals("http", StringComparison.OrdinalIgnoreCase))
        {
            problem = $"expected an http:// or https:// URL, got '{text}'";
            return null;
        }

        var authority = text[(separator + 3)..];
        var slash = authority.IndexOf('/', StringComparison.Ordinal);
        var endpoint = ParseHostPort(slash < 0 ? authority : authority[..slash], EtcdPort, out problem);
        return endpoint is null ? null : EtcdEndpoint(endpoint, https);
    }

    public static string EtcdEndpoint(HostPort endpoint, bool https = false) => $"{(https ? "https" : "http")}://{endpoint}";

    /// <summary>
    /// A list as Patroni reads it from an environment variable: a YAML-ish list (<c>['a:1','b:2']</c>) or a plain
    /// comma-separated string.
    /// </summary>
    public static IReadOnlyList<string> SplitEnvironmentList(string text) =>
        text.Trim().TrimStart('[').TrimEnd(']')
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(item => item.Trim('\'', '"').Trim())
            .Where(item => item.Length > 0)
            .ToList();
}
