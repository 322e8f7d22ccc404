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

    /// <summary>
    /// failsafe_mode: <c>POST /failsafe</c> to every other member of <paramref name="cluster"/>; true only when every one
    /// of them answered 200. Never throws for a member's failure (it counts as not confirmed).
    /// </summary>
    Task<bool> ConfirmFailsafeAsync(ClusterView cluster, string me, TimeSpan timeout, CancellationToken ct);
}

/// <summary>Asks the other members' REST APIs (<c>GET /patroni</c>) for their state before a failover.</summary>
internal sealed class PeerClient(HttpClient http, Steward.Core.Configuration.Credentials? credentials = null) : IPeerClient
{
    public async Task<bool> ConfirmFailsafeAsync(ClusterView cluster, string me, TimeSpan timeout, CancellationToken ct)
    {
        var others = cluster.Members.Where(m => m.Name != me).ToList();
        var answers = await Task.WhenAll(others.Select(m => ConfirmOneAsync(m, me, timeout, ct))).ConfigureAwait(false);
        return answers.All(a => a);
    }

    private async Task<bool> ConfirmOneAsync(Member member, string me, TimeSpan timeout, CancellationToken ct)
    {
        if (member.Data.ApiUrl is not { } api || ConnUrl.ApiBase(api) is not { } baseUri)
        {
            return false;
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUri, "/failsafe"))
            {
                Content = JsonContent.Create(new Dictionary<string, string> { ["name"] = me }, StewardJson.Default.DictionaryStringString),
            };
            if (credentials is { } c)
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue(
                    "Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{c.Username}:{c.Password}")));
            }

            using var response = await http.SendAsync(request, cts.Token).ConfigureAwait(false);
            return response.IsSuccessStatusCode;
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }

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
            var doc = await http.GetFromJsonAsync(new Uri(baseUri, "/patroni"), StewardJson.Default.JsonElement, cts.Token).ConfigureAwait(false);
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
            FailoverPriority = tags is null ? null : HaDecision.FailoverPriority(tags),
            DcsLastSeen = seen,
            WalAfterLeaderGone = doc.TryGetProperty("wal_after_leader_gone", out var after) && after.ValueKind == JsonValueKind.True,
        };
    }
}
