using Steward.Agent;

namespace Steward.Rest;

/// <summary>Prometheus metrics of the agent, named as Patroni names them (patroni_*) so existing dashboards keep working.</summary>
internal sealed class AgentMetrics
{
    private readonly PrometheusText _registry;
    private readonly PrometheusText.Gauge _version;
    private readonly PrometheusText.Gauge _running;
    private readonly PrometheusText.Gauge _primary;
    private readonly PrometheusText.Gauge _replica;
    private readonly PrometheusText.Gauge _standbyLeader;
    private readonly PrometheusText.Gauge _syncStandby;
    private readonly PrometheusText.Gauge _xlogLocation;
    private readonly PrometheusText.Gauge _received;
    private readonly PrometheusText.Gauge _replayed;
    private readonly PrometheusText.Gauge _timeline;
    private readonly PrometheusText.Gauge _unlocked;
    private readonly PrometheusText.Gauge _dcsLastSeen;
    private readonly PrometheusText.Gauge _pendingRestart;
    private readonly PrometheusText.Gauge _paused;
    private readonly PrometheusText.Gauge _serverVersion;
    private readonly NodeAgent _agent;

    public AgentMetrics(NodeAgent agent)
    {
        _agent = agent;
        _registry = new PrometheusText(("scope", agent.Config.Scope), ("name", agent.Config.Name));
        _version = _registry.CreateGauge("patroni_version", "Steward version (as a number: major*10000 + minor*100 + patch).");
        _running = _registry.CreateGauge("patroni_postgres_running", "1 if PostgreSQL is running, 0 otherwise.");
        _primary = _registry.CreateGauge("patroni_primary", "1 if this node is the leader and accepts writes, 0 otherwise.");
        _replica = _registry.CreateGauge("patroni_replica", "1 if this node is a running replica, 0 otherwise.");
        _standbyLeader = _registry.CreateGauge("patroni_standby_leader", "1 if this node is a standby leader (never: no standby clusters yet).");
        _syncStandby = _registry.CreateGauge("patroni_sync_standby", "1 if this node is a synchronous standby, 0 otherwise.");
        _xlogLocation = _registry.CreateGauge("patroni_xlog_location", "Current WAL location on the primary (bytes).");
        _received = _registry.CreateGauge("patroni_xlog_received_location", "WAL received by the replica (bytes).");
        _replayed = _registry.CreateGauge("patroni_xlog_replayed_location", "WAL replayed by the replica (bytes).");
        _timeline = _registry.CreateGauge("patroni_postgres_timeline", "PostgreSQL timeline.");
        _unlocked = _registry.CreateGauge("patroni_cluster_unlocked", "1 if nobody holds the leader key.");
        _dcsLastSeen = _registry.CreateGauge("patroni_dcs_last_seen", "Unix time when etcd was last reached.");
        _pendingRestart = _registry.CreateGauge("patroni_pending_restart", "1 if PostgreSQL needs a restart for a changed parameter.");
        _paused = _registry.CreateGauge("patroni_is_paused", "1 if the cluster is in maintenance mode.");
        _serverVersion = _registry.CreateGauge("patroni_postgres_server_version", "PostgreSQL version number (server_version_num).");
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
        await _registry.WriteAsync(output, ct).ConfigureAwait(false);
    }
}
