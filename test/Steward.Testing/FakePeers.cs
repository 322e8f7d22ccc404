using System.Text.Json;
using Steward.Agent;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;
using Steward.Rest;

namespace Steward.Testing;

/// <summary>
/// <see cref="IPeerClient"/> answered by the other simulated agents: each reachable member's <c>GET /patroni</c> body is
/// built by the real <see cref="RestApi.Status"/> from that agent's snapshot and parsed by the real
/// <see cref="PeerClient.Parse"/>. A member whose agent is dead or frozen (or not found) is unreachable.
/// </summary>
internal sealed class FakePeers(Func<HostPort, NodeAgent?> reachableAgentAt) : IPeerClient
{
    public Task<IReadOnlyDictionary<string, PeerStatus>> FetchAsync(ClusterView cluster, string me, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var result = new Dictionary<string, PeerStatus>();
        foreach (var member in cluster.Members.Where(m => m.Name != me))
        {
            result[member.Name] = Ask(member);
        }

        return Task.FromResult<IReadOnlyDictionary<string, PeerStatus>>(result);
    }

    /// <summary>POST /failsafe as the real endpoint answers it (RestActions.FailsafeAsync).</summary>
    public Task<bool> ConfirmFailsafeAsync(ClusterView cluster, string me, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var all = true;
        foreach (var member in cluster.Members.Where(m => m.Name != me))
        {
            if (member.Data.ApiUrl is not { } url || ConnUrl.Parse(url) is not { } address || reachableAgentAt(address) is not { } agent
                || !agent.Settings.FailsafeMode || agent.Snapshot.Pg is { Running: true, InRecovery: false })
            {
                all = false;
                continue;
            }

            agent.RecordFailsafeLeader(me);
        }

        return Task.FromResult(all);
    }

    private PeerStatus Ask(Member member)
    {
        if (member.Data.ApiUrl is not { } url || ConnUrl.Parse(url) is not { } address || reachableAgentAt(address) is not { } agent)
        {
            return new PeerStatus { Name = member.Name, Reachable = false };
        }

        var body = JsonSerializer.SerializeToElement(RestApi.Status(agent, agent.Snapshot));
        return PeerClient.Parse(member.Name, body);
    }
}
