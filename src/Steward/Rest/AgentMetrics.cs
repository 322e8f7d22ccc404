using Prometheus;
using Steward.Agent;

namespace Steward.Rest;

/// <summary>Prometheus metrics of the agent, named as Patroni names them (patroni_*) so existing dashboards keep working.</summary>
internal sealed class AgentMetrics
{
    private readonly CollectorRegistry _registry = Metrics.NewCustomRegistry();
    private readonly Gauge _version;
    private readonly Gauge _running;
    private readonly Gauge _primary;
    private readonly Gauge _replica;
    private readonly Gauge _standbyLeader;
    private readonly Gauge _syncStandby;
    private readonly Gauge _xlogLocation;
    private readonly Gauge _received;
    private readonly Gauge _replayed;
    private readonly Gauge _timeline;
    private readonly Gauge _unlocked;
    private readonly Gauge _dcsLastSeen;
    private readonly Gauge _pendingRestart;
    private readonly Gauge _paused;
    private readonly Gauge _serverVersion;
    private readonly NodeAgent _agent;

    public AgentMetrics(NodeAgent agent)
    {
        _agent = agent;
        var f = Metrics.WithCustomRegistry(_registry).WithLabels(new Dictionary<string, string>
        {
            ["scope"] = agent.Config.Scope,
            ["name"] = agent.Config.Name,
        });
        _version = f.CreateGauge("patroni_version", "Steward version (as a number: major*10000 + minor*100 + patch).");
        _running = f.CreateGauge("patroni_postgres_running", "1 if PostgreSQL is running, 0 otherwise.");
        _primary = f.CreateGauge("patroni_primary", "1 if this node is the leader and accepts writes, 0 otherwise.");
        _replica = f.CreateGauge("patroni_replica", "1 if this node is a running replica, 0 otherwise.");
        _standbyLeader = f.CreateGauge("patroni_standby_leader", "1 if this node is a standby leader (never: no standby clusters yet).");
        _syncStandby = f.CreateGauge("patroni_sync_standby", "1 if this node is a synchronous standby, 0 otherwise.");
        _xlogLocation = f.CreateGauge("patroni_xlog_location", "Current WAL location on the primary (bytes).");
        _received = f.CreateGauge("patroni_xlog_received_location", "WAL received by the replica (bytes).");
        _replayed = f.CreateGauge("patroni_xlog_replayed_location", "WAL replayed by the replica (bytes).");
        _timeline = f.CreateGauge("patroni_postgres_timeline", "PostgreSQL timeline.");
        _unlocked = f.CreateGauge("patroni_cluster_unlocked", "1 if nobody holds the leader key.");
        _dcsLastSeen = f.CreateGauge("patroni_dcs_last_seen", "Unix time when etcd was last reached.");
        _pendingRestart = f.CreateGauge("patroni_pending_restart", "1 if PostgreSQL needs a restart for a changed parameter.");
        _paused = f.CreateGauge("patroni_is_paused", "1 if the cluster is in maintenance mode.");
        _serverVersion = f.CreateGauge("patroni_postgres_server_version", "PostgreSQL version number (server_version_num).");
    }

    public async Task WriteAsync(AgentSnapshot s, Stream output, CancellationToken ct)
    {
        var parts = VersionInfo.Version.Split('.').Select(p => int.TryParse(p, out var n) ? n : 0).Concat([0, 0, 0]).Take(3).ToArray();
        _version.Set((parts[0] * 10000) + (parts[1] * 100) + parts[2]);
        _running.Set(s.Pg.Running ? 1 : 0);
        _primary.Set(s.HoldsLeader && s.IsPrimaryAcceptingWrites ? 1 : 0);
        _replica.Set(s.IsReplicaRunning ? 1 : 0);
        _standbyLeader.Set(0);
        _syncStandby.Set(RestApi.IsSyncStandby(_agent, s) ? 1 : 0);
        _xlogLocation.Set(s.Pg.InRecovery == false ? s.Pg.WriteLsn ?? 0 : 0);
        _received.Set(s.Pg.ReceiveLsn ?? 0);
        _replayed.Set(s.Pg.ReplayLsn ?? 0);
        _timeline.Set(s.Pg.Timeline ?? s.Pg.ControlTimeline ?? 0);
        _unlocked.Set(s.Cluster is { Leader: null } ? 1 : 0);
        _dcsLastSeen.Set(s.DcsLastSeen?.ToUnixTimeSeconds() ?? 0);
        _pendingRestart.Set(s.Pg.PendingRestart ? 1 : 0);
        _paused.Set(_agent.Settings.Pause ? 1 : 0);
        _serverVersion.Set(s.Pg.ServerVersion ?? 0);
        await _registry.CollectAndExportAsTextAsync(output, ct).ConfigureAwait(false);
    }
}
