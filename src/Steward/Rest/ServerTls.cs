using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Steward.Core.Configuration;

namespace Steward.Rest;

/// <summary>
/// The REST API's TLS (Patroni's <c>restapi.certfile</c>, <c>keyfile</c>, <c>keyfile_password</c>, <c>cafile</c>,
/// <c>verify_client</c>): only HTTPS is served; with <c>verify_client: required</c> a connection without a client
/// certificate signed by <c>cafile</c> is refused in the handshake, with <c>optional</c> a certificate is asked for and,
/// when given, must be signed by <c>cafile</c> (the unsafe methods then need one, <see cref="RestAccess"/>).
/// </summary>
internal sealed class ServerTls
{
    private readonly X509Certificate2 _certificate;
    private readonly X509Certificate2Collection? _clientCa;
    private readonly VerifyClient _verifyClient;

    private ServerTls(X509Certificate2 certificate, X509Certificate2Collection? clientCa, VerifyClient verifyClient)
    {
        _certificate = certificate;
        _clientCa = clientCa;
        _verifyClient = verifyClient;
    }

    /// <summary>Null when the REST API is plain HTTP.</summary>
    /// <exception cref="ConfigException">A file cannot be read or is not a certificate / key.</exception>
    public static ServerTls? Load(RestApiConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.CertFile is not { } certFile)
        {
            return null;
        }

        var certificate = TlsFiles.LoadCertificate(certFile, config.KeyFile, config.KeyFilePassword, "restapi.certfile", "restapi.keyfile");
        var ca = config.CaFile is { } caFile ? TlsFiles.LoadCa(caFile, "restapi.cafile") : null;
        return new ServerTls(certificate, ca, config.VerifyClient);
    }

    public void Apply(ListenOptions listen)
    {
        ArgumentNullException.ThrowIfNull(listen);
        listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = _certificate,
            ClientCertificateMode = _verifyClient switch
            {
                VerifyClient.Required => ClientCertificateMode.RequireCertificate,
                VerifyClient.Optional => ClientCertificateMode.AllowCertificate,
                _ => ClientCertificateMode.NoCertificate,
            },
            ClientCertificateValidation = (certificate, chain, errors) =>
                TlsFiles.Validate(certificate, chain, errors, _clientCa, checkName: false, out _),
            HandshakeTimeout = TimeSpan.FromSeconds(10),
        });
    }
}
