using System.Text.Json.Serialization;

namespace Steward.Core.Cluster;

/// <summary>
/// One consistent read of everything under <c>&lt;namespace&gt;/&lt;scope&gt;/</c> (a single range read at <see cref="Revision"/>).
/// Keys are named as Patroni names them, so a Patroni operator can read them with etcdctl.
/// </summary>
public sealed record ClusterView
{
    /// <summary>The etcd revision this view was read at.</summary>
    public long Revision { get; init; }

    /// <summary>Value of the <c>initialize</c> key: the PostgreSQL system identifier, "" while bootstrap runs, null when absent.</summary>
    public string? Initialize { get; init; }

    /// <summary>The <c>config</c> key (dynamic configuration), null when absent.</summary>
    public DynamicConfigEntry? Config { get; init; }

    /// <summary>The <c>leader</c> key, null when nobody holds it.</summary>
    public LeaderKey? Leader { get; init; }

    /// <summary>Every <c>members/&lt;name&gt;</c> key that parsed; sorted by name.</summary>
    public IReadOnlyList<Member> Members { get; init; } = [];

    /// <summary>The <c>failover</c> key: a pending switchover / failover request.</summary>
    public FailoverRequest? Failover { get; init; }

    /// <summary>The <c>status</c> key: the leader's last known WAL position.</summary>
    public ClusterStatus? Status { get; init; }

    /// <summary>The <c>history</c> key: timeline switches, oldest first.</summary>
    public IReadOnlyList<HistoryEntry> History { get; init; } = [];

    /// <summary>mod_revision of <c>history</c> (0 when absent), for its compare-and-swap.</summary>
    public long HistoryModRevision { get; init; }

    /// <summary>The <c>sync</c> key: the synchronous standbys on record (synchronous mode), null when absent.</summary>
    public SyncState? Sync { get; init; }

    /// <summary>
    /// Every <c>routers/&lt;name&gt;</c> key: routers that pause PgBouncers around a planned switchover and that the leader
    /// waits for before it demotes (docs/pgbouncer.md). Sorted by name.
    /// </summary>
    public IReadOnlyList<RouterEntry> Routers { get; init; } = [];

    /// <summary>Every <c>pause/&lt;name&gt;</c> key: a router's answer to a switchover request. Sorted by name.</summary>
    public IReadOnlyList<PauseEntry> Pauses { get; init; } = [];

    public Member? GetMember(string name) => Members.FirstOrDefault(m => m.Name == name);

    public Member? LeaderMember => Leader is null ? null : GetMember(Leader.Name);
}

/// <summary>The <c>leader</c> key: value is the member name; bound to the holder's lease.</summary>
public sealed record LeaderKey(string Name, long ModRevision, long LeaseId);

/// <summary>The <c>config</c> key with the revision used for compare-and-set.</summary>
public sealed record DynamicConfigEntry(DynamicConfig Value, long ModRevision);

/// <summary>A <c>members/&lt;name&gt;</c> key.</summary>
public sealed record Member(string Name, MemberData Data, long ModRevision, long LeaseId);

/// <summary>
/// JSON body of <c>members/&lt;name&gt;</c>, in Patroni's shape (snake_case), so Patroni tooling can read it.
/// </summary>
public sealed record MemberData
{
    [JsonPropertyName("conn_url")] public string? ConnUrl { get; init; }
    [JsonPropertyName("api_url")] public string? ApiUrl { get; init; }
    /// <summary>running, starting, stopped, crashed, creating replica, initializing new cluster, …</summary>
    [JsonPropertyName("state")] public string? State { get; init; }
    /// <summary>primary, replica, uninitialized.</summary>
    [JsonPropertyName("role")] public string? Role { get; init; }
    [JsonPropertyName("version")] public string? Version { get; init; }
    [JsonPropertyName("timeline")] public long? Timeline { get; init; }
    /// <summary>Primary: current write LSN. Replica: the larger of received and replayed.</summary>
    [JsonPropertyName("xlog_location")] public long? XlogLocation { get; init; }
    [JsonPropertyName("receive_lsn")] public long? ReceiveLsn { get; init; }
    [JsonPropertyName("replay_lsn")] public long? ReplayLsn { get; init; }
    /// <summary>"streaming" when the WAL receiver is connected.</summary>
    [JsonPropertyName("replication_state")] public string? ReplicationState { get; init; }
    [JsonPropertyName("pending_restart")] public bool? PendingRestart { get; init; }
    [JsonPropertyName("tags")] public IReadOnlyDictionary<string, object?>? Tags { get; init; }
}

/// <summary>The <c>failover</c> key (Patroni's shape: leader, member, scheduled_at).</summary>
public sealed record FailoverRequest
{
    [JsonPropertyName("leader")] public string? Leader { get; init; }
    [JsonPropertyName("member")] public string? Candidate { get; init; }
    [JsonPropertyName("scheduled_at")] public DateTimeOffset? ScheduledAt { get; init; }
    /// <summary>
    /// Quorum commit (Patroni 4's <c>quorum</c>): how many voters besides itself a member must see, none of them ahead of it,
    /// before it may promote — any commit acknowledged so far is missing from at most this many of the voters. Absent
    /// (null) in priority mode, where every standby named holds every acknowledged commit (a quorum of 0).
    /// </summary>
    [JsonPropertyName("quorum")] public int? Quorum { get; init; }

    [JsonIgnore] public long ModRevision { get; init; }
}

/// <summary>
/// The value of <c>routers/&lt;name&gt;</c>, written by a router that drives PgBouncers (bound to its lease, so it goes
/// when the router does): the leader waits up to <see cref="PauseTimeout"/> (plus a margin) for its answer before it
/// demotes for a switchover.
/// </summary>
public sealed record RouterRegistration
{
    /// <summary>The admin consoles it drives (host:port), for people reading etcd.</summary>
    [JsonPropertyName("pgbouncers")] public IReadOnlyList<string> PgBouncers { get; init; } = [];

    /// <summary>Seconds its PAUSE may take (the largest of its PgBouncers' <c>pause_timeout</c>).</summary>
    [JsonPropertyName("pause_timeout")] public double PauseTimeout { get; init; }
}

/// <summary>A <c>routers/&lt;name&gt;</c> key.</summary>
public sealed record RouterEntry(string Name, RouterRegistration Data, long LeaseId);

/// <summary>
/// The value of <c>pause/&lt;name&gt;</c>: a router's answer to the switchover request whose <c>failover</c> key has
/// mod_revision <see cref="FailoverRevision"/> — it has done what it could to pause its PgBouncers (each one's outcome in
/// <see cref="PgBouncers"/>), and the leader may demote as far as this router goes. Deleted after RESUME.
/// </summary>
public sealed record PauseConfirmation
{
    [JsonPropertyName("failover_revision")] public long FailoverRevision { get; init; }

    [JsonPropertyName("pgbouncers")] public IReadOnlyList<PgBouncerOutcome> PgBouncers { get; init; } = [];
}

/// <summary>What a PAUSE did on one PgBouncer: <c>paused</c>, <c>timeout</c> (transactions still running: they will be cut) or <c>unreachable</c>.</summary>
public sealed record PgBouncerOutcome
{
    [JsonPropertyName("address")] public string Address { get; init; } = "";

    [JsonPropertyName("state")] public string State { get; init; } = "";

    [JsonPropertyName("detail")] public string? Detail { get; init; }
}

/// <summary>A <c>pause/&lt;name&gt;</c> key.</summary>
public sealed record PauseEntry(string Name, PauseConfirmation Data, long ModRevision);

/// <summary>
/// The <c>status</c> key in Patroni 3/4's shape: <c>{"optime": lsn, "slots": {name: lsn}, "retain_slots": [names]}</c>.
/// optime is the leader's last known WAL position; slots the positions of the slots on the leader (a logical slot's
/// confirmed_flush_lsn, a physical slot's restart_lsn, the leader's own slot name at optime), which replicas advance their
/// copies to; retain_slots the member slots the leader keeps.
/// </summary>
public sealed record ClusterStatus
{
    [JsonPropertyName("optime")] public long Optime { get; init; }
    [JsonPropertyName("timeline")] public long? Timeline { get; init; }
    [JsonPropertyName("slots")] public IReadOnlyDictionary<string, long>? Slots { get; init; }
    [JsonPropertyName("retain_slots")] public IReadOnlyList<string>? RetainSlots { get; init; }
}

/// <summary>
/// The <c>sync</c> key in Patroni's shape: <c>{"leader": "a", "sync_standby": "b,c"}</c>. Every standby it names holds every
/// commit acknowledged so far (PostgreSQL waits for each of them; a standby joins the key only after it caught up, and
/// leaves it before PostgreSQL stops waiting for it), so any of them may take over.
/// </summary>
public sealed record SyncState
{
    [JsonPropertyName("leader")] public string? Leader { get; init; }

    /// <summary>Comma-separated member names (Patroni writes null for none).</summary>
    [JsonPropertyName("sync_standby")] public string? SyncStandby { get; init; }

    /// <summary>
    /// Quorum commit (Patroni 4's <c>quorum</c>): how many voters besides itself a member must see, none of them ahead of it,
    /// before it may promote — any commit acknowledged so far is missing from at most this many of the voters. Absent
    /// (null) in priority mode, where every standby named holds every acknowledged commit (a quorum of 0).
    /// </summary>
    [JsonPropertyName("quorum")] public int? Quorum { get; init; }

    [JsonIgnore] public long ModRevision { get; init; }

    /// <summary>The standbys on record, in the order written.</summary>
    [JsonIgnore]
    public IReadOnlyList<string> Standbys => string.IsNullOrWhiteSpace(SyncStandby)
        ? []
        : [.. SyncStandby.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    /// <summary>True when <paramref name="member"/> is a synchronous standby on record.</summary>
    public bool IsStandby(string member) => Standbys.Contains(member, StringComparer.Ordinal);

    public static SyncState For(string leader, IEnumerable<string> standbys, int? quorum = null)
    {
        var names = standbys.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        return new SyncState { Leader = leader, SyncStandby = names.Count == 0 ? null : string.Join(',', names), Quorum = quorum };
    }
}

/// <summary>
/// One timeline switch: timeline <see cref="Timeline"/> ended at <see cref="Lsn"/> and the cluster moved to
/// <c>Timeline + 1</c>. Serialized as Patroni's array <c>[timeline, lsn, reason, timestamp, new_leader]</c>.
/// </summary>
public sealed record HistoryEntry(long Timeline, long Lsn, string Reason, DateTimeOffset Time, string? NewLeader)
{
    /// <summary>
    /// The timeline this switch created. Patroni's rows do not say (it is <see cref="Timeline"/> + 1 on a linear history);
    /// Steward writes it as a sixth element so that a branch from an older timeline (1 → 3 after 1 → 2) is on record and
    /// no timeline id is ever used twice.
    /// </summary>
    public long? NewTimeline { get; init; }

    /// <summary><see cref="NewTimeline"/>, or the linear default.</summary>
    public long CreatedTimeline => NewTimeline ?? Timeline + 1;

    /// <summary>A reservation written before pg_promote: its <see cref="Lsn"/> is not the switch point (the exact row replaces it).</summary>
    public bool IsProvisional => Reason.EndsWith(ProvisionalSuffix, StringComparison.Ordinal);

    /// <summary>Ends the reason of a reservation row.</summary>
    public const string ProvisionalSuffix = "(switch point not yet known)";

    /// <summary>The highest timeline id a history has used (1 when empty).</summary>
    public static long MaxTimeline(IReadOnlyList<HistoryEntry> history) =>
        history.Count == 0 ? 1 : Math.Max(1, history.Max(h => h.CreatedTimeline));
}
