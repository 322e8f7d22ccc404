using System.Net.Http.Json;
using System.Text.Json;
using Steward.Core.Cluster;
using Steward.Core.Ha;

namespace Steward.Agent;

/// <summary>How the agent learns the other members' state before an election or a switchover.</summary>
internal interface IPeerClient
{
    /// <summary>Every other member's status; an unreachable or misbehaving member is reported as unreachable, never thrown.</summary>
    Task<IReadOnlyDictionary<string, PeerStatus>> FetchAsync(ClusterView cluster, string me, TimeSpan timeout, CancellationToken ct);
}

/// <summary>Asks the other members' REST APIs (<c>GET /patroni</c>) for their state before a failover.</summary>
internal sealed class PeerClient(HttpClient http) : IPeerClient
{
    public async Task<IReadOnlyDictionary<string, PeerStatus>> FetchAsync(ClusterView cluster, string me, TimeSpan timeout, CancellationToken ct)
    {
        var others = cluster.Members.Where(m => m.Name != me).ToList();
        var results = await Task.WhenAll(others.Select(m => FetchOneAsync(m, timeout, ct))).ConfigureAwait(false);
        return results.ToDictionary(r => r.Name);
    }

    private async Task<PeerStatus> FetchOneAsync(Member member, TimeSpan timeout, CancellationToken ct)
    {
        var unreachable = new PeerStatus { Name = member.Name, Reachable = false };
        if (member.Data.ApiUrl is not { } api || ConnUrl.ApiBase(api) is not { } baseUri)
        {
            return unreachable;
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            var doc = await http.GetFromJsonAsync<JsonElement>(new Uri(baseUri, "/patroni"), cts.Token).ConfigureAwait(false);
            return Parse(member.Name, doc);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            // Whatever a member answers (or fails to), one misbehaving peer must not block an election.
            return unreachable;
        }
    }

    internal static PeerStatus Parse(string name, JsonElement doc)
    {
        long? Long(JsonElement e, string p) => e.ValueKind == JsonValueKind.Object && e.TryGetProperty(p, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n : null;
        string? Str(JsonElement e, string p) => e.ValueKind == JsonValueKind.Object && e.TryGetProperty(p, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        if (doc.ValueKind != JsonValueKind.Object)
        {
            return new PeerStatus { Name = name, Reachable = false };
        }

        var xlog = doc.TryGetProperty("xlog", out var x) ? x : default;
        var role = Str(doc, "role");
        long? lsn = role is "primary" or "master"
            ? Long(xlog, "location")
            : (Long(xlog, "received_location"), Long(xlog, "replayed_location")) switch
            {
                (null, null) => null,
                (var r, var p) => Math.Max(r ?? 0, p ?? 0),
            };
        var tags = doc.TryGetProperty("tags", out var t) && t.ValueKind == JsonValueKind.Object
            ? t.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value)
            : null;
        DateTimeOffset? seen = Long(doc, "dcs_last_seen") is { } unix ? DateTimeOffset.FromUnixTimeSeconds(unix) : null;
        return new PeerStatus
        {
            Name = name,
            Reachable = true,
            Role = role,
            State = Str(doc, "state"),
            Timeline = Long(doc, "timeline"),
            Lsn = lsn,
            NoFailover = HaDecision.TagIsTrue(tags, "nofailover"),
            DcsLastSeen = seen,
        };
    }
}
