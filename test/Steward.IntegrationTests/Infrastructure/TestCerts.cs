using System.Net;
using System.Net.Http;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// Certificates made by the test (.NET's CertificateRequest, ECDSA P-256), as PEM files in a temp directory: a CA, a
/// server certificate for 127.0.0.1 / localhost signed by it, a client certificate signed by it, and a second CA that
/// signed nothing we serve (for the "wrong CA" cases).
/// </summary>
internal sealed class TestCerts : IDisposable
{
    private readonly TempDir _dir;

    private TestCerts(TempDir dir) => _dir = dir;

    public string CaFile => _dir.Sub("ca.pem");
    public string ServerCert => _dir.Sub("server.pem");
    public string ServerKey => _dir.Sub("server-key.pem");
    public string ClientCert => _dir.Sub("client.pem");
    public string ClientKey => _dir.Sub("client-key.pem");
    public string OtherCaFile => _dir.Sub("other-ca.pem");

    public static TestCerts Create()
    {
        var certs = new TestCerts(new TempDir("certs"));
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var ca = SelfSignedCa("CN=steward test CA", caKey, now);
        File.WriteAllText(certs.CaFile, ca.ExportCertificatePem());
        using (var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        using (var other = SelfSignedCa("CN=some other CA", otherKey, now))
        {
            File.WriteAllText(certs.OtherCaFile, other.ExportCertificatePem());
        }

        Issue(ca, "CN=127.0.0.1", certs.ServerCert, certs.ServerKey, now, 1);
        Issue(ca, "CN=steward-client", certs.ClientCert, certs.ClientKey, now, 2);
        return certs;
    }

    private static X509Certificate2 SelfSignedCa(string subject, ECDsa key, DateTimeOffset now)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        return request.CreateSelfSigned(now.AddDays(-1), now.AddDays(2));
    }

    /// <summary>A leaf usable as server (SAN 127.0.0.1, ::1, localhost) and as client.</summary>
    private static void Issue(X509Certificate2 ca, string subject, string certFile, string keyFile, DateTimeOffset now, byte serial)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var cert = request.Create(ca, now.AddDays(-1), now.AddDays(1), [serial, 0x42]);
        File.WriteAllText(certFile, cert.ExportCertificatePem());
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>An HTTP client that trusts the test CA and, unless <paramref name="clientCertificate"/> is false, presents the client certificate.</summary>
    public HttpClient HttpClient(bool clientCertificate = true, TimeSpan? timeout = null)
    {
        var ca = new X509Certificate2Collection();
        ca.ImportFromPemFile(CaFile);
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return certificate is not null && chain.Build(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
        };
        if (clientCertificate)
        {
            using var pem = X509Certificate2.CreateFromPemFile(ClientCert, ClientKey);
            var client = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            handler.SslOptions.ClientCertificates = [client];
            handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => client;
        }

        return new HttpClient(handler) { Timeout = timeout ?? TimeSpan.FromSeconds(3) };
    }

    public void Dispose() => _dir.Dispose();
}
