namespace Steward.Core.Configuration;

/// <summary>
/// <c>steward router -c router.yml</c>: which cluster to follow and where to listen. Loaded by
/// <see cref="RouterConfigLoader"/>, with the same error reporting as the node file (file, line, key).
/// </summary>
public sealed class RouterConfig
{
    public required string Scope { get; init; }
    public string Namespace { get; init; } = "/service/";
    public required Etcd3Config Etcd3 { get; init; }
    public required WriteListenerConfig Write { get; init; }
    public ReadListenerConfig? Read { get; init; }
    public HostPort? Stats { get; init; }
    /// <summary>Seconds a new backend connection may take. Default 4 (HAProxy's timeout connect in the seed).</summary>
    public double ConnectTimeout { get; init; } = 4;
    /// <summary>
    /// Seconds the last known view is kept while etcd is unreachable (confirmed every second through the agents'
    /// REST API); after that the router stops routing. Default 30.
    /// </summary>
    public double EtcdUnreachableGrace { get; init; } = 30;
    /// <summary>
    /// <c>dashboard: {username, password}</c>: who may act from the dashboard (switchover). Without it the dashboard is
    /// read-only.
    /// </summary>
    public Credentials? Dashboard { get; init; }
    /// <summary><c>restapi: {username, password}</c>: the agents' REST credentials, sent with the dashboard's actions.</summary>
    public Credentials? RestApi { get; init; }
    /// <summary>
    /// <c>ctl:</c> (Patroni's section, the same keys as in a node's file): how the router calls the agents' REST API (health
    /// checks and the dashboard's switchover) when it speaks HTTPS; <c>ctl.authentication</c> falls back to <c>restapi</c>.
    /// </summary>
    public RestClientConfig Ctl { get; init; } = RestClientConfig.Plain;

    /// <summary>
    /// This router's name in etcd (<c>routers/&lt;name&gt;</c>, <c>pause/&lt;name&gt;</c>), used only when it drives
    /// PgBouncers. Default: the host name and the write port, e.g. <c>app1-5500</c>.
    /// </summary>
    public string Name { get; init; } = "router";

    /// <summary>
    /// <c>pgbouncer:</c> the PgBouncers in front of the write port that this router pauses around a planned switchover
    /// (docs/pgbouncer.md). Empty: the router behaves as without PgBouncer and registers nothing in etcd.
    /// </summary>
    public IReadOnlyList<PgBouncerConfig> PgBouncers { get; init; } = [];

    public string KeyPrefix => Namespace + Scope + "/";
}

/// <summary>One PgBouncer's admin console, as the router reaches it (an entry of <c>pgbouncer:</c> in router.yml).</summary>
public sealed class PgBouncerConfig
{
    /// <summary>Its <c>listen_addr</c> as the router reaches it.</summary>
    public required string Host { get; init; }

    /// <summary>Its <c>listen_port</c>. Default 6432.</summary>
    public int Port { get; init; } = 6432;

    /// <summary>A user in its <c>admin_users</c>. Default <c>pgbouncer</c>.</summary>
    public string User { get; init; } = "pgbouncer";

    /// <summary>The admin user's password (or <see cref="Passfile"/>; neither: PgBouncer trusts the router).</summary>
    public string? Password { get; init; }

    /// <summary>A file in .pgpass format holding the password (host:port:pgbouncer:user:password).</summary>
    public string? Passfile { get; init; }

    /// <summary>PAUSE / RECONNECT / RESUME only these databases. Empty (default): the whole PgBouncer.</summary>
    public IReadOnlyList<string> Databases { get; init; } = [];

    /// <summary>
    /// Seconds PAUSE may take (the transactions in flight finishing) before the switchover goes on and cuts the ones
    /// still running. Default 5.
    /// </summary>
    public double PauseTimeout { get; init; } = 5;

    public HostPort Address => new(Host, Port);

    public override string ToString() => Address.ToString();
}

public sealed class WriteListenerConfig
{
    public required HostPort Listen { get; init; }
    /// <summary>Seconds a new client waits for a leader while there is none (or a switchover is pending). Default 5.</summary>
    public double HoldTimeout { get; init; } = 5;
    /// <summary>Close every session forwarded to a member when it loses the leader key. Default true.</summary>
    public bool CloseSessionsOnLeaderChange { get; init; } = true;
}

public sealed class ReadListenerConfig
{
    public required HostPort Listen { get; init; }
    /// <summary>Replicas further behind the leader than this (bytes) get no new reads. Default 1 MB.</summary>
    public long MaxLag { get; init; } = 1048576;
    /// <summary>When no replica qualifies, send reads to the leader. Default true.</summary>
    public bool FallbackToLeader { get; init; } = true;
    /// <summary><c>sync_standbys</c>: how the read port treats the synchronous standbys the <c>sync</c> key names.</summary>
    public SyncStandbyReads SyncStandbys { get; init; } = SyncStandbyReads.Include;
}

/// <summary>How the read port treats synchronous standbys (those the <c>sync</c> key names for the current leader).</summary>
public enum SyncStandbyReads
{
    /// <summary>Like any other healthy replica (default).</summary>
    Include,

    /// <summary>Only synchronous standbys while one qualifies (their reads see every acknowledged commit); else the others.</summary>
    Prefer,

    /// <summary>Never: keeps read load off the standbys commits wait for.</summary>
    Exclude,
}
