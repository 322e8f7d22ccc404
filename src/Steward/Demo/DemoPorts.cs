using System.Net;
using System.Net.Sockets;
using System.Text.Json.Serialization;

namespace Steward.Demo;

/// <summary>Every port the demo listens on, all on 127.0.0.1.</summary>
internal sealed record DemoPorts
{
    [JsonPropertyName("etcd")] public required int Etcd { get; init; }
    [JsonPropertyName("etcd_peer")] public required int EtcdPeer { get; init; }
    [JsonPropertyName("write")] public required int Write { get; init; }
    [JsonPropertyName("read")] public required int Read { get; init; }
    [JsonPropertyName("stats")] public required int Stats { get; init; }
    /// <summary>PgBouncer's port with <c>--pgbouncer</c> (null without).</summary>
    [JsonPropertyName("pgbouncer")] public int? PgBouncer { get; init; }
    [JsonPropertyName("postgres")] public required IReadOnlyList<int> Postgres { get; init; }
    [JsonPropertyName("rest")] public required IReadOnlyList<int> Rest { get; init; }

    /// <summary>
    /// The preferred ports: the seed's (PostgreSQL 5432…, REST 8008…, router 5500/5501, stats 7500, etcd 2379/2380), or
    /// with <paramref name="basePort"/> a block from there (etcd +0/+1, router +2/+3, stats +4, PgBouncer +5, PostgreSQL
    /// +10…, REST +40…); PgBouncer's (6432) only with <paramref name="pgBouncer"/>. Each one taken is replaced by a free
    /// one, and <paramref name="say"/> is told which.
    /// </summary>
    public static DemoPorts Choose(int nodes, int? basePort, Action<string> say, bool pgBouncer = false)
    {
        var picker = new Picker(say);
        int Seed(int seed, int offset) => basePort is { } b ? b + offset : seed;
        return new DemoPorts
        {
            Etcd = picker.Pick(Seed(2379, 0)),
            EtcdPeer = picker.Pick(Seed(2380, 1)),
            Write = picker.Pick(Seed(5500, 2)),
            Read = picker.Pick(Seed(5501, 3)),
            Stats = picker.Pick(Seed(7500, 4)),
            PgBouncer = pgBouncer ? picker.Pick(Seed(6432, 5)) : null,
            Postgres = Enumerable.Range(0, nodes).Select(i => picker.Pick(Seed(5432, 10) + i)).ToArray(),
            Rest = Enumerable.Range(0, nodes).Select(i => picker.Pick(Seed(8008, 40) + i)).ToArray(),
        };
    }

    private sealed class Picker(Action<string> say)
    {
        private readonly HashSet<int> _given = [];

        public int Pick(int preferred)
        {
            if (preferred is > 0 and < 65536 && _given.Add(preferred) && IsFree(preferred))
            {
                return preferred;
            }

            // Look upward from the preferred port first: the kernel's ephemeral range (from 32768) is where outgoing
            // connections get their source ports, so a port picked there can be taken again before we bind it.
            for (var port = preferred + 1; port < Math.Min(preferred + 2000, 32768); port++)
            {
                if (!_given.Contains(port) && IsFree(port))
                {
                    _given.Add(port);
                    say($"port {preferred} is taken; using {port} instead");
                    return port;
                }
            }

            for (var attempt = 0; attempt < 100; attempt++)
            {
                var port = Ephemeral();
                if (_given.Add(port))
                {
                    say($"port {preferred} is taken; using {port} instead");
                    return port;
                }
            }

            throw new InvalidOperationException($"no free loopback port instead of {preferred}");
        }

        private static bool IsFree(int port)
        {
            try
            {
                using var probe = new TcpListener(IPAddress.Loopback, port);
                probe.Start();
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }

        private static int Ephemeral()
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            return ((IPEndPoint)probe.LocalEndpoint).Port;
        }
    }
}
