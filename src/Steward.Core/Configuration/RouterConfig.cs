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

    public string KeyPrefix => Namespace + Scope + "/";
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
