using System.CommandLine;
using Steward.Core.Configuration;

namespace Steward.Cli;

/// <summary>How a CLI verb finds the cluster: <c>-c node.yml</c>, or <c>--etcd HOSTS --scope NAME</c> (env STEWARD_ETCD / STEWARD_SCOPE).</summary>
internal sealed class ClusterTarget
{
    public Option<FileInfo?> Config { get; } = new("--config", "-c") { Description = "a node's YAML configuration (for etcd3 hosts, namespace and scope)" };
    public Option<string?> Etcd { get; } = new("--etcd") { Description = "etcd endpoints, comma-separated host:port (env STEWARD_ETCD)" };
    public Option<string?> Scope { get; } = new("--scope") { Description = "cluster name (env STEWARD_SCOPE)" };
    public Option<string?> Namespace { get; } = new("--namespace") { Description = "key namespace (default /service/)" };

    public void AddTo(Command command)
    {
        command.Options.Add(Config);
        command.Options.Add(Etcd);
        command.Options.Add(Scope);
        command.Options.Add(Namespace);
    }

    /// <summary>Endpoints, key prefix and scope; or an error message naming what is missing or wrong.</summary>
    public (string[] Endpoints, string Prefix, string Scope)? Resolve(ParseResult pr, out string? error)
    {
        error = null;
        if (pr.GetValue(Config) is { } file)
        {
            try
            {
                var c = ConfigLoader.Load(file.FullName);
                return ([.. c.Etcd3.Endpoints], c.KeyPrefix, c.Scope);
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

        var endpoints = hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(h => h.Contains("://", StringComparison.Ordinal) ? h : "http://" + h).ToArray();
        var ns = "/" + (pr.GetValue(Namespace) ?? "/service/").Trim('/') + "/";
        return (endpoints, (ns == "//" ? "/" : ns) + scope + "/", scope);
    }
}
