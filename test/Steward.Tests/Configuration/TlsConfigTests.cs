using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Http;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Rest;
using static Steward.Tests.Configuration.ConfigText;

namespace Steward.Tests.Configuration;

/// <summary>Issue 15: restapi TLS / verify_client / allowlist, Patroni's ctl section, etcd3 TLS — parsing, files, access checks.</summary>
public sealed class TlsConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("steward-tls-unit").FullName;

    public TlsConfigTests()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=unit", key, HashAlgorithmName.SHA256);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        File.WriteAllText(Cert, cert.ExportCertificatePem());
        File.WriteAllText(Key, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(EncryptedKey, key.ExportEncryptedPkcs8PrivateKeyPem("key-pass",
            new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 1000)));
        File.WriteAllText(Garbage, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
    }

    private string Cert => Path.Combine(_dir, "cert.pem");
    private string Key => Path.Combine(_dir, "key.pem");
    private string EncryptedKey => Path.Combine(_dir, "key-encrypted.pem");
    private string Garbage => Path.Combine(_dir, "garbage.pem");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WithRestApi(string lines) =>
        Minimal.Replace("restapi:\n  listen: 127.0.0.1:8008\n", "restapi:\n  listen: 127.0.0.1:8008\n" + lines, StringComparison.Ordinal);

    [Fact]
    public void Restapi_tls_ctl_and_etcd3_tls_are_read_with_patronis_names()
    {
        var config = Parse(WithRestApi($$"""
              certfile: {{Cert}}
              keyfile: {{Key}}
              keyfile_password: pw
              cafile: {{Cert}}
              verify_client: Required
              allowlist: [10.0.0.0/24, 192.168.1.7, db1.example.com]
              allowlist_include_members: true
              authentication: {username: admin, password: secret}
            ctl:
              insecure: false
              cacert: {{Cert}}
              certfile: {{Cert}}
              keyfile: {{Key}}
              authentication: {username: ops, password: ops-pass}

            """).Replace("  hosts: 127.0.0.1:2379", $"  hosts: 127.0.0.1:2379\n  protocol: https\n  cacert: {Cert}\n  cert: {Cert}\n  key: {Key}\n  key_password: k\n  username: root\n  password: r", StringComparison.Ordinal));

        var rest = config.RestApi;
        Assert.True(rest.Https);
        Assert.Equal((Cert, Key, "pw", Cert, VerifyClient.Required), (rest.CertFile, rest.KeyFile, rest.KeyFilePassword, rest.CaFile, rest.VerifyClient));
        Assert.Equal(["10.0.0.0/24", "192.168.1.7", "db1.example.com"], rest.Allowlist);
        Assert.True(rest.AllowlistIncludeMembers);
        Assert.Equal((false, Cert, Cert, Key, "ctl"), (config.Ctl.Insecure, config.Ctl.CaCert, config.Ctl.CertFile, config.Ctl.KeyFile, config.Ctl.CertSource));
        Assert.Equal(new Credentials("ops", "ops-pass"), config.Ctl.Authentication);
        Assert.Equal(["https://127.0.0.1:2379"], config.Etcd3.Endpoints);
        Assert.Equal((Cert, Cert, Key, "k", "root"), (config.Etcd3.CaCert, config.Etcd3.Cert, config.Etcd3.Key, config.Etcd3.KeyPassword, config.Etcd3.Username));
        Assert.DoesNotContain(config.Warnings, w => w.Contains("ctl", StringComparison.Ordinal) || w.Contains("certfile", StringComparison.Ordinal));
    }

    [Fact]
    public void Without_ctl_the_clients_use_the_nodes_restapi_ca_certificate_and_credentials_as_patroni_does()
    {
        var config = Parse(WithRestApi($"  certfile: {Cert}\n  keyfile: {Key}\n  cafile: {Cert}\n  authentication: {{username: admin, password: secret}}\n"));

        Assert.Equal((Cert, Cert, Key, "restapi"), (config.Ctl.CaCert, config.Ctl.CertFile, config.Ctl.KeyFile, config.Ctl.CertSource));
        Assert.Equal(new Credentials("admin", "secret"), config.Ctl.Authentication);
        Assert.Equal(VerifyClient.None, config.RestApi.VerifyClient);
    }

    [Fact]
    public void A_cacert_or_cert_turns_etcd_tls_on_and_patroni_env_variables_are_read()
    {
        var config = Parse(Minimal.Replace("  hosts: 127.0.0.1:2379", $"  hosts: 127.0.0.1:2379\n  cacert: {Cert}", StringComparison.Ordinal));
        Assert.Equal(["https://127.0.0.1:2379"], config.Etcd3.Endpoints);

        var fromEnvironment = Parse(Minimal, new Dictionary<string, string?>
        {
            ["PATRONI_RESTAPI_CERTFILE"] = Cert, ["PATRONI_RESTAPI_KEYFILE"] = Key, ["STEWARD_CTL_INSECURE"] = "true", ["PATRONI_ETCD3_CACERT"] = Cert,
        });
        Assert.Equal((Cert, Key, true), (fromEnvironment.RestApi.CertFile, fromEnvironment.RestApi.KeyFile, fromEnvironment.Ctl.Insecure));
        Assert.Equal(["https://127.0.0.1:2379"], fromEnvironment.Etcd3.Endpoints);
    }

    [Theory]
    [InlineData("  verify_client: requird\n", "restapi.verify_client: expected none, optional or required, got 'requird'")]
    [InlineData("  verify_client: required\n", "restapi.verify_client: required needs restapi.certfile")]
    [InlineData("  certfile: CERT\n  verify_client: optional\n", "restapi.verify_client: optional needs restapi.cafile")]
    [InlineData("  certfile: /nonexistent/api.pem\n", "restapi.certfile: no such file: /nonexistent/api.pem")]
    [InlineData("  keyfile: KEY\n", "restapi.certfile: required when restapi.keyfile or keyfile_password is set")]
    [InlineData("  allowlist: [10.0.0.0/40]\n", "restapi.allowlist: expected an address, a network such as 10.0.0.0/24 or a host name, got '10.0.0.0/40'")]
    [InlineData("  allowlist: ['bad host!']\n", "restapi.allowlist: expected an address, a network such as 10.0.0.0/24 or a host name, got 'bad host!'")]
    [InlineData("ctl:\n  cacert: /nonexistent/ca.pem\n", "ctl.cacert: no such file: /nonexistent/ca.pem")]
    [InlineData("ctl:\n  insecure: maybe\n", "ctl.insecure")]
    [InlineData("ctl:\n  certfle: CERT\n", "ctl.certfle: unknown key (did you mean 'certfile'?)")]
    [InlineData("ctl:\n  authentication: {username: ops}\n", "authentication.password: required and not empty")]
    public void Bad_tls_settings_are_refused_naming_the_key(string lines, string expected)
    {
        var error = Fails(WithRestApi(lines.Replace("CERT", Cert, StringComparison.Ordinal).Replace("KEY", Key, StringComparison.Ordinal)));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Etcd3_protocol_http_with_a_cacert_is_refused() =>
        Assert.Contains("etcd3.protocol: is http, but etcd3.cacert or etcd3.cert is set",
            Fails(Minimal.Replace("  hosts: 127.0.0.1:2379", $"  hosts: 127.0.0.1:2379\n  protocol: http\n  cacert: {Cert}", StringComparison.Ordinal)).Message,
            StringComparison.Ordinal);

    [Fact]
    public void Router_config_reads_ctl_and_falls_back_to_its_restapi_login()
    {
        var yaml = $"""
            scope: demo
            etcd3:
              hosts: 127.0.0.1:2379
              cacert: {Cert}
            write:
              listen: 127.0.0.1:5500
            restapi:
              username: admin
              password: secret
            ctl:
              cacert: {Cert}
              certfile: {Cert}
              keyfile: {Key}
            """;
        var config = RouterConfigLoader.Parse(yaml, "/etc/steward/router.yml", NoEnvironment);

        Assert.Equal((Cert, Cert, Key), (config.Ctl.CaCert, config.Ctl.CertFile, config.Ctl.KeyFile));
        Assert.Equal(new Credentials("admin", "secret"), config.Ctl.Authentication);
        Assert.Equal(["https://127.0.0.1:2379"], config.Etcd3.Endpoints);
    }

    [Fact]
    public void Certificates_and_keys_load_and_a_bad_or_locked_key_is_a_clear_error_naming_the_key()
    {
        using (var plain = TlsFiles.LoadCertificate(Cert, Key, null, "restapi.certfile", "restapi.keyfile"))
        using (var encrypted = TlsFiles.LoadCertificate(Cert, EncryptedKey, "key-pass", "restapi.certfile", "restapi.keyfile"))
        {
            Assert.True(plain.HasPrivateKey);
            Assert.True(encrypted.HasPrivateKey);
        }

        var garbage = Assert.Throws<ConfigException>(() => TlsFiles.LoadCertificate(Cert, Garbage, null, "restapi.certfile", "restapi.keyfile"));
        Assert.StartsWith($"restapi.keyfile {Garbage}: cannot load the private key", garbage.Message, StringComparison.Ordinal);

        var locked = Assert.Throws<ConfigException>(() => TlsFiles.LoadCertificate(Cert, EncryptedKey, null, "ctl.certfile", "ctl.keyfile"));
        Assert.Contains("ctl.keyfile", locked.Message, StringComparison.Ordinal);
        Assert.Contains("keyfile_password", locked.Message, StringComparison.Ordinal);

        var wrong = Assert.Throws<ConfigException>(() => TlsFiles.LoadCertificate(Cert, EncryptedKey, "nope", "etcd3.cert", "etcd3.key"));
        Assert.Contains("etcd3.key", wrong.Message, StringComparison.Ordinal);

        var missing = Assert.Throws<ConfigException>(() => TlsFiles.LoadCa(Path.Combine(_dir, "gone.pem"), "restapi.cafile"));
        Assert.StartsWith("restapi.cafile ", missing.Message, StringComparison.Ordinal);

        var notPem = Assert.Throws<ConfigException>(() => TlsFiles.LoadCa(Key, "ctl.cacert"));
        Assert.Contains("holds no PEM certificate", notPem.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Server_tls_loads_the_restapi_files_and_fails_naming_restapi_keyfile()
    {
        var rest = new RestApiConfig { Listen = new("127.0.0.1", 8008), ConnectAddress = new("127.0.0.1", 8008), CertFile = Cert, KeyFile = Garbage };
        var e = Assert.Throws<ConfigException>(() => ServerTls.Load(rest));
        Assert.Contains("restapi.keyfile", e.Message, StringComparison.Ordinal);
        Assert.Null(ServerTls.Load(new RestApiConfig { Listen = new("127.0.0.1", 8008), ConnectAddress = new("127.0.0.1", 8008) }));
    }

    private static RestApiConfig Rest(Action<RestApiConfigBuilder> set)
    {
        var b = new RestApiConfigBuilder();
        set(b);
        return new RestApiConfig
        {
            Listen = new("0.0.0.0", 8008),
            ConnectAddress = new("10.0.0.1", 8008),
            Authentication = b.Authentication,
            CertFile = b.Https ? "/x.pem" : null,
            VerifyClient = b.VerifyClient,
            Allowlist = b.Allowlist,
            AllowlistIncludeMembers = b.IncludeMembers,
        };
    }

    private sealed class RestApiConfigBuilder
    {
        public Credentials? Authentication { get; set; }
        public bool Https { get; set; }
        public VerifyClient VerifyClient { get; set; }
        public IReadOnlyList<string> Allowlist { get; set; } = [];
        public bool IncludeMembers { get; set; }
    }

    private static DefaultHttpContext Request(string remote, string? basic = null, bool certificate = false)
    {
        var ctx = new DefaultHttpContext();
        ctx.Connection.RemoteIpAddress = IPAddress.Parse(remote);
        if (basic is not null)
        {
            ctx.Request.Headers.Authorization = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(basic));
        }

        if (certificate)
        {
            using var key = ECDsa.Create();
            ctx.Connection.ClientCertificate = new CertificateRequest("CN=client", key, HashAlgorithmName.SHA256)
                .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        }

        return ctx;
    }

    private static Member MemberAt(string name, string host) =>
        new(name, new MemberData { ApiUrl = $"https://{host}:8008/patroni" }, 1, 0);

    [Fact]
    public void Unsafe_methods_are_checked_in_patronis_order_allowlist_then_client_certificate_then_password()
    {
        IReadOnlyList<IPAddress> NoDns(string host) => host == "db1.example.com" ? [IPAddress.Parse("10.9.9.9")] : [];
        var members = new[] { MemberAt("node2", "10.0.1.2"), MemberAt("node3", "db1.example.com") };
        var access = new RestAccess(Rest(r =>
        {
            r.Authentication = new Credentials("admin", "secret");
            r.Https = true;
            r.VerifyClient = VerifyClient.Optional;
            r.Allowlist = ["127.0.0.1", "192.168.0.0/16"];
            r.IncludeMembers = true;
        }), () => members, NoDns);

        Assert.Equal((403, "Access is denied"), access.Check(Request("10.0.0.99", "admin:secret", certificate: true)));
        Assert.Equal((403, "client certificate required"), access.Check(Request("192.168.4.5", "admin:secret")));
        Assert.Equal((401, "no or wrong credentials (restapi.authentication)"), access.Check(Request("192.168.4.5", "admin:wrong", certificate: true)));
        Assert.Null(access.Check(Request("192.168.4.5", "admin:secret", certificate: true)));
        Assert.Null(access.Check(Request("::ffff:127.0.0.1", "admin:secret", certificate: true)));
        Assert.Null(access.Check(Request("10.0.1.2", "admin:secret", certificate: true)));   // a member, by address
        Assert.Null(access.Check(Request("10.9.9.9", "admin:secret", certificate: true)));   // a member, by name
        Assert.True(AllowlistEntry.TryParse("10.0.0.1/24", out var loose, out _));              // host bits set, as Python's strict=False
        Assert.True(loose!.Matches(IPAddress.Parse("10.0.0.7"), NoDns));

        var open = new RestAccess(Rest(_ => { }), () => members, NoDns);
        Assert.Null(open.Check(Request("10.0.0.99")));
        var passwordOnly = new RestAccess(Rest(r => r.Authentication = new Credentials("admin", "secret")), () => members, NoDns);
        Assert.Equal(401, passwordOnly.Check(Request("10.0.0.99"))?.Status);
    }

    [Fact]
    public void Haproxy_config_checks_an_https_rest_api_over_tls_against_the_ctl_ca()
    {
        var view = Steward.Tests.Router.Views.Healthy();
        var https = view with { Members = [.. view.Members.Select(m => m with { Data = m.Data with { ApiUrl = m.Data.ApiUrl!.Replace("http://", "https://", StringComparison.Ordinal) } })] };

        Assert.DoesNotContain("check-ssl", Steward.Cli.HaproxyConfigCommand.Render("demo", view, "*", 5000, 5001, 7000, "/etc/ca.pem"), StringComparison.Ordinal);
        Assert.Contains("port 8009 check-ssl verify required ca-file /etc/ca.pem\n", Steward.Cli.HaproxyConfigCommand.Render("demo", https, "*", 5000, 5001, 7000, "/etc/ca.pem"), StringComparison.Ordinal);
        Assert.Contains("port 8009 check-ssl verify none\n", Steward.Cli.HaproxyConfigCommand.Render("demo", https, "*", 5000, 5001, 7000), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("localhost", true)]
    [InlineData("::1", true)]
    [InlineData("127.0.0.1,10.0.0.1", false)]
    [InlineData("0.0.0.0", false)]
    [InlineData("10.0.0.1", false)]
    [InlineData("db1.example.com", false)]
    public void The_unprotected_rest_api_warning_is_for_addresses_beyond_loopback(string host, bool loopback) =>
        Assert.Equal(loopback, RestAccess.IsLoopbackOnly(host));
}
