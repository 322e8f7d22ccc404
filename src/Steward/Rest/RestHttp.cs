using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Steward.Core.Configuration;

namespace Steward.Rest;

/// <summary>
/// The one place that builds the HttpClient for the agents' REST API (the CLI, the agents among themselves, the router's
/// checks and its dashboard): Patroni's <c>ctl</c> settings — the CA the agents' certificates are checked against (or
/// none with <c>insecure</c>), the client certificate, and Basic auth sent with every request.
/// </summary>
internal static class RestHttp
{
    /// <summary>Why the last TLS handshake with a host failed, for <see cref="Describe"/>.</summary>
    private static readonly ConcurrentDictionary<string, string> Problems = new(StringComparer.OrdinalIgnoreCase);

    /// <exception cref="ConfigException">A file named by the settings cannot be read or is not what it should be.</exception>
    public static HttpClient Create(RestClientConfig ctl, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(ctl);
        var handler = new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30) };
        var ca = ctl.CaCert is { } caFile ? TlsFiles.LoadCa(caFile, "ctl.cacert") : null;
        var insecure = ctl.Insecure;
        handler.SslOptions.RemoteCertificateValidationCallback = (sender, certificate, chain, errors) =>
        {
            if (insecure)
            {
                return true;
            }

            var host = (sender as SslStream)?.TargetHostName ?? "";
            if (TlsFiles.Validate(certificate, chain, errors, ca, checkName: true, out var problem))
            {
                Problems.TryRemove(host, out _);
                return true;
            }

            Problems[host] = problem + (ca is null ? "" : $" (ctl.cacert {ctl.CaCert})");
            return false;
        };
        if (ctl.CertFile is { } certFile)
        {
            var certificate = TlsFiles.LoadCertificate(certFile, ctl.KeyFile, ctl.KeyFilePassword, $"{ctl.CertSource}.certfile", $"{ctl.CertSource}.keyfile");
            handler.SslOptions.ClientCertificates = [certificate];
            handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
        }

        var http = new HttpClient(handler, disposeHandler: true) { Timeout = timeout ?? Timeout.InfiniteTimeSpan };
        if (ctl.Authentication is { } login)
        {
            http.DefaultRequestHeaders.Authorization = BasicAuth(login.Username, login.Password);
        }

        return http;
    }

    public static AuthenticationHeaderValue BasicAuth(string username, string? password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{username}:{password}")));

    /// <summary>A failed request's cause in words; for a refused certificate, which one and why.</summary>
    public static string Describe(HttpRequestException e, Uri url)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(url);
        if (e.InnerException is AuthenticationException tls)
        {
            return Problems.TryGetValue(url.Host, out var problem)
                ? $"TLS: the REST API at {url.Authority} was not trusted: {problem}"
                : $"TLS handshake with {url.Authority} failed: {tls.Message}" + (tls.InnerException is { } inner ? $" ({inner.Message})" : "");
        }

        if (url.Scheme == Uri.UriSchemeHttp && e.HttpRequestError is HttpRequestError.ResponseEnded or HttpRequestError.InvalidResponse)
        {
            return $"{e.Message} (does the REST API at {url.Authority} speak HTTPS? Its member's api_url says http)";
        }

        return e.Message;
    }
}
