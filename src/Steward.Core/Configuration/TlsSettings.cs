using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Steward.Core.Configuration;

/// <summary>Patroni's <c>restapi.verify_client</c>.</summary>
public enum VerifyClient
{
    /// <summary>No client certificate is asked for (default).</summary>
    None,

    /// <summary>A client certificate is asked for; the unsafe methods (POST, PUT, PATCH, DELETE) need one.</summary>
    Optional,

    /// <summary>Every connection needs a client certificate signed by <c>restapi.cafile</c>.</summary>
    Required,
}

/// <summary>
/// How a client calls the agents' REST API: Patroni's <c>ctl</c> section (<c>insecure</c>, <c>cacert</c>,
/// <c>certfile</c>, <c>keyfile</c>, <c>keyfile_password</c>, <c>authentication</c>), with Patroni's fallbacks to the
/// node's own <c>restapi</c> settings already applied. Used by the CLI, the agents among themselves and the router.
/// </summary>
public sealed class RestClientConfig
{
    public static RestClientConfig Plain { get; } = new();

    /// <summary>Do not verify the agents' certificates (Patroni's <c>ctl.insecure</c>).</summary>
    public bool Insecure { get; init; }
    /// <summary>The CA that signed the agents' certificates; null: the system's trust store.</summary>
    public string? CaCert { get; init; }
    /// <summary>Client certificate (PEM) to present; null: none.</summary>
    public string? CertFile { get; init; }
    /// <summary>Its private key (PEM); null: in <see cref="CertFile"/>.</summary>
    public string? KeyFile { get; init; }
    public string? KeyFilePassword { get; init; }
    /// <summary>Basic-auth credentials sent with every request; null: none.</summary>
    public Credentials? Authentication { get; init; }
    /// <summary>The dotted key the certificate settings came from (for messages): <c>ctl</c> or <c>restapi</c>.</summary>
    public string CertSource { get; init; } = "ctl";
}

/// <summary>Loads and checks certificates and keys named by the configuration; every failure names the key and file.</summary>
public static class TlsFiles
{
    /// <summary>A certificate with its private key, from PEM files (the key may be in the certificate's file).</summary>
    public static X509Certificate2 LoadCertificate(string certFile, string? keyFile, string? password, string certKey, string keyKey)
    {
        ArgumentNullException.ThrowIfNull(certFile);
        Readable(certFile, certKey);
        if (keyFile is not null)
        {
            Readable(keyFile, keyKey);
        }

        try
        {
            var loaded = password is { Length: > 0 }
                ? X509Certificate2.CreateFromEncryptedPemFile(certFile, password, keyFile)
                : X509Certificate2.CreateFromPemFile(certFile, keyFile);
            using (loaded)
            {
                // A PKCS#12 round trip gives a certificate whose key every TLS stack can use (SslStream, Kestrel).
                return X509CertificateLoader.LoadPkcs12(loaded.Export(X509ContentType.Pkcs12), null);
            }
        }
        catch (CryptographicException e)
        {
            var which = keyFile is null ? $"{certKey} {certFile}" : $"{keyKey} {keyFile}";
            throw new ConfigException(
                $"{which}: cannot load the private key for {certFile}: {e.Message}" +
                (password is null ? " (an encrypted key needs its password: keyfile_password / key_password)" : " (is the password right?)"), e);
        }
        catch (ArgumentException e)
        {
            throw new ConfigException($"{certKey} {certFile}: not a PEM certificate with its key: {e.Message}", e);
        }
    }

    /// <summary>Every certificate in a PEM bundle.</summary>
    public static X509Certificate2Collection LoadCa(string file, string key)
    {
        ArgumentNullException.ThrowIfNull(file);
        Readable(file, key);
        var ca = new X509Certificate2Collection();
        try
        {
            ca.ImportFromPemFile(file);
        }
        catch (CryptographicException e)
        {
            throw new ConfigException($"{key} {file}: not a PEM certificate bundle: {e.Message}", e);
        }

        return ca.Count == 0 ? throw new ConfigException($"{key} {file}: holds no PEM certificate") : ca;
    }

    private static void Readable(string file, string key)
    {
        try
        {
            using var stream = File.OpenRead(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{key} {file}: cannot read it: {e.Message}", e);
        }
    }

    /// <summary>
    /// Whether a peer's certificate is trusted: signed by <paramref name="ca"/> (or the system's roots when null) and, for
    /// a server, issued for the name connected to. <paramref name="problem"/> says why not, for the error message.
    /// </summary>
    public static bool Validate(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors, X509Certificate2Collection? ca,
        bool checkName, out string? problem)
    {
        problem = null;
        if (certificate is null)
        {
            problem = "no certificate was presented";
            return false;
        }

        if (checkName && errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            problem = $"the certificate ({certificate.Subject}) is not issued for this host name or address";
            return false;
        }

        if (ca is null)
        {
            var chainErrors = errors & ~SslPolicyErrors.RemoteCertificateNameMismatch;
            if (chainErrors == SslPolicyErrors.None)
            {
                return true;
            }

            problem = $"the certificate ({certificate.Subject}, issued by {certificate.Issuer}) is not trusted by the system's CAs: "
                      + ChainStatus(presented) + " (set the CA file)";
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements.Skip(1))
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (chain.Build(leaf))
        {
            return true;
        }

        problem = $"the certificate ({leaf.Subject}, issued by {leaf.Issuer}) is not signed by the configured CA: {ChainStatus(chain)}";
        return false;
    }

    private static string ChainStatus(X509Chain? chain) =>
        chain is null || chain.ChainStatus.Length == 0
            ? "untrusted"
            : string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct(StringComparer.Ordinal));
}
