using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Router.Routing;

namespace Steward.Tests.Router;

/// <summary>Cluster views for router tests: members node1..node3 on 127.0.0.1:5432..5434, REST on 8009..8011.</summary>
internal static class Views
{
    public static readonly DateTimeOffset Now = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    public static HostPort Pg(string name) => new("127.0.0.1", 5431 + (name[^1] - '0'));

    public static Uri Api(string name) => new($"http://127.0.0.1:{8008 + (name[^1] - '0')}");

    public static Backend Backend(string name) => new(name, Pg(name), Api(name));

    public static Member Member(string name, string role, string state = "running", string? replication = null, long? lsn = 1000) =>
        new(name, new MemberData
        {
            ConnUrl = ConnUrl.ForPostgres(Pg(name)),
            ApiUrl = ConnUrl.ForApi(new HostPort("127.0.0.1", Api(name).Port)),
            Role = role,
            State = state,
            ReplicationState = replication ?? (role == "replica" ? "streaming" : null),
            XlogLocation = lsn,
        }, 10, 0);

    /// <summary>node1 holds the key as a running primary; node2 and node3 are streaming replicas.</summary>
    public static ClusterView Healthy(string leader = "node1") => new()
    {
        Revision = 100,
        Leader = new LeaderKey(leader, 90, 7),
        Members = [.. new[] { "node1", "node2", "node3" }.Select(n => n == leader ? Member(n, "primary") : Member(n, "replica"))],
    };

    public static ClusterView WithMember(this ClusterView view, Member member) =>
        view with { Members = [.. view.Members.Where(m => m.Name != member.Name).Append(member).OrderBy(m => m.Name, StringComparer.Ordinal)] };
}
