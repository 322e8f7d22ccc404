using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Steward.Core.Cluster;
using Steward.Core.Configuration;

namespace Steward.Rest;

/// <summary>
/// Who may call the unsafe methods (POST, PUT, PATCH, DELETE), checked in Patroni's order: the <c>allowlist</c> (and
/// with <c>allowlist_include_members</c> the members' REST addresses from etcd) → 403 "Access is denied"; over HTTPS
/// with <c>verify_client</c> optional or required, a client certificate → 403; then <c>authentication</c> → 401.
/// The safe methods (GET, HEAD, OPTIONS: health checks) stay open.
/// </summary>
internal sealed class RestAccess
{
    private readonly RestApiConfig _config;
    private readonly IReadOnlyList<AllowlistEntry> _allowlist;
    private readonly Func<IEnumerable<Member>> _members;
    private readonly Func<string, IReadOnlyList<IPAddress>> _resolve;

    public RestAccess(RestApiConfig config, Func<IEnumerable<Member>> members, Func<string, IReadOnlyList<IPAddress>>? resolve = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        _config = config;
        _members = members;
        _resolve = resolve ?? Resolve;
        _allowlist = [.. config.Allowlist.Select(text => AllowlistEntry.TryParse(text, out var entry, out _) ? entry! : throw new ArgumentException($"bad allowlist entry '{text}'", nameof(config)))];
    }

    /// <summary>Null when the request may go on; else its status and reason.</summary>
    public (int Status, string Reason)? Check(HttpContext ctx)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        if ((_allowlist.Count > 0 || _config.AllowlistIncludeMembers) && !Allowed(ctx.Connection.RemoteIpAddress))
        {
            return (403, "Access is denied");
        }

        if (_config.Https && _config.VerifyClient != VerifyClient.None && ctx.Connection.ClientCertificate is null)
        {
            return (403, "client certificate required");
        }

        return RestActions.Authorized(ctx, _config.Authentication) ? null : (401, "no or wrong credentials (restapi.authentication)");
    }

    private bool Allowed(IPAddress? remote)
    {
        if (remote is null)
        {
            return false;
        }

        if (_allowlist.Any(entry => entry.Matches(remote, _resolve)))
        {
            return true;
        }

        if (!_config.AllowlistIncludeMembers)
        {
            return false;
        }

        var address = AllowlistEntry.Normalize(remote);
        foreach (var member in _members())
        {
            if (member.Data.ApiUrl is { } api && ConnUrl.Parse(api) is { } host
                && (IPAddress.TryParse(host.Host, out var ip) ? [ip] : _resolve(host.Host)).Any(a => AllowlistEntry.Normalize(a).Equals(address)))
            {
                return true;
            }
        }

        return false;
    }

    private static IReadOnlyList<IPAddress> Resolve(string host)
    {
        try
        {
            return Dns.GetHostAddresses(host);
        }
        catch (SocketException)
        {
            return [];
        }
    }

    /// <summary>Whether a listen host is reachable from this machine only.</summary>
    public static bool IsLoopbackOnly(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (host.Split(',').All(h => IPAddress.TryParse(h.Trim().Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip)));
}
