using Steward.Core.Configuration;

namespace Steward.Core.Cluster;

/// <summary>The <c>conn_url</c> / <c>api_url</c> values of a member key, as Patroni writes them.</summary>
public static class ConnUrl
{
    /// <summary><c>postgres://host:port/postgres</c>.</summary>
    public static string ForPostgres(HostPort address) => $"postgres://{address}/postgres";

    /// <summary><c>http://host:port/patroni</c> (<c>https://</c> when the REST API speaks TLS).</summary>
    public static string ForApi(HostPort address, bool https = false) => $"{(https ? "https" : "http")}://{address}/patroni";

    /// <summary>Host and port of a <c>conn_url</c> or <c>api_url</c>; null when it does not parse.</summary>
    public static HostPort? Parse(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Port <= 0)
        {
            return null;
        }

        var host = uri.Host.Trim('[', ']');
        return host.Length == 0 ? null : new HostPort(host, uri.Port);
    }

    /// <summary>The REST base (<c>http://host:port</c>) of an <c>api_url</c>; null when it does not parse.</summary>
    public static Uri? ApiBase(string apiUrl) =>
        Uri.TryCreate(apiUrl, UriKind.Absolute, out var uri) ? new Uri(uri.GetLeftPart(UriPartial.Authority)) : null;
}
