using System.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Etcd;

namespace Steward.Cli;

/// <summary><c>steward list</c>: the cluster's members as a table, read from etcd (patronictl list).</summary>
internal static class ListCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo?>("--config", "-c") { Description = "a node's YAML configuration (for etcd3 hosts, namespace and scope)" };
        var etcd = new Option<string?>("--etcd") { Description = "etcd endpoints, comma-separated host:port (env STEWARD_ETCD)" };
        var scope = new Option<string?>("--scope") { Description = "cluster name (env STEWARD_SCOPE)" };
        var ns = new Option<string?>("--namespace") { Description = "key namespace (default /service/)" };
        var cmd = new Command("list", "Show the cluster's members: role, state, timeline and lag.") { config, etcd, scope, ns };
        cmd.SetAction(async (pr, ct) =>
        {
            string[] endpoints;
            string prefix;
            string scopeName;
            if (pr.GetValue(config) is { } file)
            {
                StewardConfig c;
                try
                {
                    c = ConfigLoader.Load(file.FullName);
                }
                catch (ConfigException e)
                {
                    await Console.Error.WriteLineAsync($"steward: invalid configuration: {e.Message}").ConfigureAwait(false);
                    return 2;
                }

                endpoints = [.. c.Etcd3.Endpoints];
                prefix = c.KeyPrefix;
                scopeName = c.Scope;
            }
            else
            {
                var hosts = pr.GetValue(etcd) ?? Environment.GetEnvironmentVariable("STEWARD_ETCD");
                var s = pr.GetValue(scope) ?? Environment.GetEnvironmentVariable("STEWARD_SCOPE");
                if (hosts is null || s is null)
                {
                    await Console.Error.WriteLineAsync("steward list: give -c node.yml, or --etcd HOSTS and --scope NAME").ConfigureAwait(false);
                    return 2;
                }

                endpoints = [.. hosts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(h => h.Contains("://", StringComparison.Ordinal) ? h : "http://" + h)];
                var n = pr.GetValue(ns) ?? "/service/";
                prefix = "/" + n.Trim('/') + "/" + s + "/";
                if (prefix.StartsWith("//", StringComparison.Ordinal))
                {
                    prefix = prefix[1..];
                }

                scopeName = s;
            }

            await using var store = new EtcdClusterStore(endpoints, prefix, TimeSpan.FromSeconds(3), TimeProvider.System, NullLogger<EtcdClusterStore>.Instance);
            try
            {
                var view = await store.LoadAsync(ct).ConfigureAwait(false);
                Console.Write(Render(scopeName, view));
                return 0;
            }
            catch (StoreUnavailableException e)
            {
                await Console.Error.WriteLineAsync($"steward list: cannot reach etcd at {string.Join(", ", endpoints)}: {e.Message}").ConfigureAwait(false);
                return 3;
            }
        });
        return cmd;
    }

    /// <summary>Patroni's table: Member | Host | Role | State | TL | Lag in MB.</summary>
    internal static string Render(string scope, ClusterView view)
    {
        var rows = new List<string[]> { new[] { "Member", "Host", "Role", "State", "TL", "Lag in MB" } };
        var leaderLsn = view.Status?.Optime ?? view.LeaderMember?.Data.XlogLocation;
        foreach (var m in view.Members)
        {
            var isLeader = view.Leader?.Name == m.Name;
            var host = m.Data.ConnUrl is { } url && ConnUrl.Parse(url) is { } hp ? hp.ToString() : "";
            var role = isLeader ? "Leader" : m.Data.Role == "primary" ? "Primary" : "Replica";
            var state = m.Data.ReplicationState ?? m.Data.State ?? "";
            var lag = isLeader ? "" : leaderLsn is { } l && m.Data.XlogLocation is { } x ? Math.Round(Math.Max(0, l - x) / 1048576.0, 1).ToString(System.Globalization.CultureInfo.InvariantCulture) : "unknown";
            rows.Add([m.Name, host, role, state, m.Data.Timeline?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "", lag]);
        }

        var widths = Enumerable.Range(0, 6).Select(i => rows.Max(r => r[i].Length)).ToArray();
        var sb = new System.Text.StringBuilder();
        var border = "+" + string.Join("+", widths.Select(w => new string('-', w + 2))) + "+";
        var title = $"+ Cluster: {scope} ({(string.IsNullOrEmpty(view.Initialize) ? "uninitialized" : view.Initialize)}) ";
        sb.AppendLine(title.Length < border.Length ? title + new string('-', border.Length - title.Length - 1) + "+" : title);
        for (var r = 0; r < rows.Count; r++)
        {
            sb.AppendLine("| " + string.Join(" | ", rows[r].Select((c, i) => c.PadRight(widths[i]))) + " |");
            if (r == 0)
            {
                sb.AppendLine(border);
            }
        }

        sb.AppendLine(border);
        return sb.ToString();
    }
}
