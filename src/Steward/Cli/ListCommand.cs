using System.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Core.Cluster;
using Steward.Etcd;

namespace Steward.Cli;

/// <summary><c>steward list</c>: the cluster's members as a table, read from etcd (patronictl list).</summary>
internal static class ListCommand
{
    public static Command Create()
    {
        var target = new ClusterTarget();
        var cmd = new Command("list", "Show the cluster's members: role, state, timeline and lag.");
        target.AddTo(cmd);
        cmd.SetAction(async (pr, ct) =>
        {
            if (target.Resolve(pr, out var error) is not var (endpoints, prefix, scopeName))
            {
                await Console.Error.WriteLineAsync($"steward list: {error}").ConfigureAwait(false);
                return 2;
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
