using System.CommandLine;
using Steward.Core.Configuration;

namespace Steward.Cli;

/// <summary>
/// Where the cluster is: etcd (endpoints, credentials, TLS), the key prefix and scope, and how to call the REST API
/// (the node config's <c>ctl</c> settings if one was given).
/// </summary>
internal sealed record ResolvedTarget(Etcd3Config Etcd, string Prefix, string Scope, RestClientConfig Ctl)
{
    public IReadOnlyList<string> Endpoints => Etcd.Endpoints;
}

/// <summary>How a CLI verb finds the cluster: <c>-c node.yml</c>, or <c>--etcd HOSTS --scope NAME</c> (env STEWARD_ETCD / STEWARD_SCOPE).</summary>
internal sealed class ClusterTarget
{
    public Option<FileInfo?> Config { get; } = new("--config", "-c") { Description = "a node's YAML configuration (for etcd3 hosts, namespace, scope and REST credentials)" };
    public Option<string?> Etcd { get; } = new("--etcd") { Description = "etcd endpoints, comma-separated host:port or URLs (env STEWARD_ETCD; TLS and credentials from STEWARD_ETCD3_CACERT, _CERT, _KEY, _USERNAME, _PASSWORD)" };
    public Option<string?> Scope { get; } = new("--scope") { Description = "cluster name (env STEWARD_SCOPE)" };
    public Option<string?> Namespace { get; } = new("--namespace") { Description = "key namespace (default /service/)" };

    public void AddTo(Command command)
    {
        command.Options.Add(Config);
        command.Options.Add(Etcd);
        command.Options.Add(Scope);
        command.Options.Add(Namespace);
    }

    /// <summary>The target; or null with an error message naming what is missing or wrong.</summary>
    public ResolvedTarget? Resolve(ParseResult pr, out string? error)
    {
        error = null;
        if (pr.GetValue(Config) is { } file)
        {
            try
            {
                var c = ConfigLoader.Load(file.FullName);
                return new ResolvedTarget(c.Etcd3, c.KeyPrefix, c.Scope, c.Ctl);
            }
            catch (ConfigException e)
            {
                error = $"invalid configuration: {e.Message}";
                return null;
            }
        }

        var hosts = pr.GetValue(Etcd) ?? Environment.GetEnvironmentVariable("STEWARD_ETCD");
        var scope = pr.GetValue(Scope) ?? Environment.GetEnvironmentVariable("STEWARD_SCOPE");
        if (string.IsNullOrWhiteSpace(hosts) || string.IsNullOrWhiteSpace(scope))
        {
            error = "give -c node.yml, or --etcd HOSTS and --scope NAME (or set STEWARD_ETCD and STEWARD_SCOPE)";
            return null;
        }

        // Without a node file, TLS and credentials come from the node file's environment variables (docs/security.md).
        var caCert = Variable("ETCD3_CACERT");
        var cert = Variable("ETCD3_CERT");
        var scheme = caCert is not null || cert is not null ? "https://" : "http://";
        var etcd = new Etcd3Config
        {
            Endpoints = [.. hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(h => h.Contains("://", StringComparison.Ordinal) ? h : scheme + h)],
            CaCert = caCert,
            Cert = cert,
            Key = Variable("ETCD3_KEY"),
            KeyPassword = Variable("ETCD3_KEY_PASSWORD"),
            Username = Variable("ETCD3_USERNAME"),
            Password = Variable("ETCD3_PASSWORD"),
        };
        var ctl = new RestClientConfig
        {
            Insecure = Variable("CTL_INSECURE") is { } insecure && (insecure.Equals("true", StringComparison.OrdinalIgnoreCase) || insecure == "1"),
            CaCert = Variable("CTL_CACERT"),
            CertFile = Variable("CTL_CERTFILE"),
            KeyFile = Variable("CTL_KEYFILE"),
            KeyFilePassword = Variable("CTL_KEYFILE_PASSWORD"),
        };
        var ns = "/" + (pr.GetValue(Namespace) ?? "/service/").Trim('/') + "/";
        return new ResolvedTarget(etcd, (ns == "//" ? "/" : ns) + scope + "/", scope, ctl);
    }

    /// <summary><c>STEWARD_x</c>, else <c>PATRONI_x</c> (the names a node file's settings take in the environment).</summary>
    private static string? Variable(string name) =>
        Environment.GetEnvironmentVariable("STEWARD_" + name) is { Length: > 0 } value ? value
        : Environment.GetEnvironmentVariable("PATRONI_" + name) is { Length: > 0 } patroni ? patroni : null;
}
