using System.Globalization;

namespace Steward.Campaign;

/// <summary>
/// The campaign's hosts: three network namespaces (n1..n3, addresses 10.231.S.1..3) and a fourth for the router
/// (10.231.S.10), each joined by a veth pair to one bridge in the root namespace (10.231.S.254, where the workload
/// runs). No namespace has a route out of 10.231.S.0/24. Everything is named after the run id, recorded in the run
/// directory for campaign.sh's cleanup trap, and removed by <see cref="Destroy"/>.
/// </summary>
internal sealed class Topology
{
    public const string RouterHost = "r";

    private readonly List<string> _namespaces = [];
    private bool _bridge;

    public Topology(string runId, int subnet, string dir)
    {
        RunId = runId;
        Subnet = subnet;
        Dir = dir;
    }

    public string RunId { get; }
    public int Subnet { get; }
    public string Dir { get; }
    public string Bridge => $"stc{RunId}br";
    public string RootAddress => Address(254);
    public string RouterAddress => Address(10);

    public string Address(int host) => string.Create(CultureInfo.InvariantCulture, $"10.231.{Subnet}.{host}");
    public string AddressOf(string host) => host == RouterHost ? RouterAddress : Address(int.Parse(host[1..], CultureInfo.InvariantCulture));
    public string Netns(string host) => $"stc{RunId}-{host}";

    /// <summary>The root-namespace end of a host's veth pair (rate limits and link-down partitions go here).</summary>
    public string HostVeth(string host) => $"stc{RunId}h{host}";

    private string NsVeth(string host) => $"stc{RunId}n{host}";

    /// <summary>A /24 in 10.231.0.0/16 that no route of the root namespace uses yet.</summary>
    public static int FreeSubnet(Random random)
    {
        var routes = Os.Run("ip", "-4", "route", "show");
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var s = random.Next(1, 250);
            if (!routes.Contains($"10.231.{s}.", StringComparison.Ordinal))
            {
                return s;
            }
        }

        throw new InvalidOperationException("no free 10.231.x.0/24 subnet");
    }

    public void Create(IEnumerable<string> hosts)
    {
        File.WriteAllText(Path.Combine(Dir, "bridge"), Bridge + "\n");
        Os.Run("ip", "link", "add", Bridge, "type", "bridge");
        _bridge = true;
        Os.Run("ip", "addr", "add", RootAddress + "/24", "dev", Bridge);
        Os.Run("ip", "link", "set", Bridge, "up");
        foreach (var host in hosts)
        {
            var ns = Netns(host);
            File.AppendAllText(Path.Combine(Dir, "namespaces"), ns + "\n");
            Os.Run("ip", "netns", "add", ns);
            _namespaces.Add(ns);
            Os.Run("ip", "link", "add", HostVeth(host), "type", "veth", "peer", "name", NsVeth(host));
            Os.Run("ip", "link", "set", NsVeth(host), "netns", ns);
            Os.Run("ip", "link", "set", HostVeth(host), "master", Bridge);
            Os.Run("ip", "link", "set", HostVeth(host), "up");
            Os.Run("ip", "-n", ns, "addr", "add", AddressOf(host) + "/24", "dev", NsVeth(host));
            Os.Run("ip", "-n", ns, "link", "set", NsVeth(host), "up");
            Os.Run("ip", "-n", ns, "link", "set", "lo", "up");
        }
    }

    /// <summary>Takes a host off the network (its bridge port down) or back.</summary>
    public void SetLink(string host, bool up) => Os.Run("ip", "link", "set", HostVeth(host), up ? "up" : "down");

    /// <summary>Drops (a blackhole route on both sides) or restores the traffic between two hosts only.</summary>
    public void SetPartition(string a, string b, bool partitioned)
    {
        foreach (var (from, to) in new[] { (a, b), (b, a) })
        {
            Os.Run(partitioned, "ip", "-n", Netns(from), "route", partitioned ? "add" : "del", "blackhole", AddressOf(to) + "/32");
        }
    }

    /// <summary>A token-bucket rate limit on the traffic into <paramref name="host"/> (null removes it).</summary>
    public void SetRate(string host, string? rate)
    {
        if (rate is null)
        {
            Os.Run(false, "tc", "qdisc", "del", "dev", HostVeth(host), "root");
        }
        else
        {
            Os.Run("tc", "qdisc", "replace", "dev", HostVeth(host), "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms");
        }
    }

    /// <summary>PIDs of every process inside the namespace of <paramref name="host"/>.</summary>
    public IReadOnlyList<int> PidsIn(string host) => PidsInNamespace(Netns(host));

    private static IReadOnlyList<int> PidsInNamespace(string ns) =>
        [.. Os.Run(false, "ip", "netns", "pids", ns).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => int.Parse(p, CultureInfo.InvariantCulture))];

    /// <summary>
    /// Kills by PID every process left in our namespaces (PostgreSQL and whatever else the agents started), then deletes
    /// the namespaces (their veths go with them) and the bridge. Safe to call twice.
    /// </summary>
    public void Destroy()
    {
        foreach (var ns in _namespaces)
        {
            foreach (var pid in PidsInNamespace(ns))
            {
                Os.Signal(pid, Os.SIGCONT);
                Os.Signal(pid, Os.SIGKILL);
            }
        }

        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (_namespaces.Any(ns => PidsInNamespace(ns).Any(Os.IsAlive)) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(100);
        }

        foreach (var ns in _namespaces)
        {
            Os.Run(false, "ip", "netns", "del", ns);
        }

        _namespaces.Clear();
        if (_bridge)
        {
            Os.Run(false, "ip", "link", "del", Bridge);
            _bridge = false;
        }
    }
}
