using System.Text.Json;
using System.Text.Json.Serialization;

namespace Steward.Core.Cluster;

/// <summary>
/// The cluster-wide settings kept in the <c>config</c> key (Patroni's "dynamic configuration"),
/// seeded from <c>bootstrap.dcs</c> by the member that bootstraps the cluster.
/// </summary>
public sealed record DynamicConfig
{
    /// <summary>Lifetime of the leader lease, seconds. Default 6: see docs/timing.md for the trade-off.</summary>
    [JsonPropertyName("ttl")] public int Ttl { get; init; } = 6;

    /// <summary>Seconds between HA cycles when nothing happens (a watch event starts a cycle at once).</summary>
    [JsonPropertyName("loop_wait")] public int LoopWait { get; init; } = 1;

    /// <summary>Seconds an etcd or PostgreSQL call may take before the cycle treats it as failed.</summary>
    [JsonPropertyName("retry_timeout")] public int RetryTimeout { get; init; } = 2;

    /// <summary>A replica further behind the last known leader position than this (bytes) does not promote.</summary>
    [JsonPropertyName("maximum_lag_on_failover")] public long MaximumLagOnFailover { get; init; } = 1048576;

    /// <summary>Seconds a leader whose PostgreSQL died may spend restarting it before releasing the lock.</summary>
    [JsonPropertyName("primary_start_timeout")] public int PrimaryStartTimeout { get; init; } = 30;

    /// <summary>Maintenance mode: agents observe and report but change nothing.</summary>
    [JsonPropertyName("pause")] public bool Pause { get; init; }

    /// <summary>
    /// Synchronous replication managed by the leader: it keeps <c>synchronous_standby_names</c> and the <c>sync</c> key in step
    /// (every standby the key names has every acknowledged commit) and only a standby on record may promote.
    /// </summary>
    [JsonIgnore] public bool SynchronousMode { get; init; }

    /// <summary>
    /// Patroni 4's <c>synchronous_mode: quorum</c> (implies <see cref="SynchronousMode"/>): commits wait for any
    /// <see cref="SynchronousNodeCount"/> of the listed standbys (<c>ANY n (…)</c>), the <c>sync</c> key names the voters and
    /// the quorum, and a member promotes only when it sees enough voters to be sure it holds every acknowledged commit.
    /// </summary>
    [JsonIgnore] public bool SynchronousModeQuorum { get; init; }

    /// <summary>
    /// <c>synchronous_mode</c> as Patroni writes it: <c>true</c>, <c>false</c> or <c>"quorum"</c> (what the JSON carries;
    /// code reads <see cref="SynchronousMode"/> and <see cref="SynchronousModeQuorum"/>).
    /// </summary>
    [JsonPropertyName("synchronous_mode")]
    [JsonConverter(typeof(SynchronousModeJsonConverter))]
    public string SynchronousModeText
    {
        get => SynchronousMode && SynchronousModeQuorum ? "quorum" : SynchronousMode ? "true" : "false";
        init
        {
            SynchronousMode = value is "true" or "quorum";
            SynchronousModeQuorum = value == "quorum";
        }
    }

    /// <summary>With no healthy synchronous standby, commits wait rather than the primary going asynchronous.</summary>
    [JsonPropertyName("synchronous_mode_strict")] public bool SynchronousModeStrict { get; init; }

    /// <summary>How many synchronous standbys a commit waits for (when that many are healthy).</summary>
    [JsonPropertyName("synchronous_node_count")] public int SynchronousNodeCount { get; init; } = 1;

    /// <summary>A synchronous standby further behind than this (bytes) is replaced; -1 disables the check (Patroni's default).</summary>
    [JsonPropertyName("maximum_lag_on_syncnode")] public long MaximumLagOnSyncnode { get; init; } = -1;

    /// <summary>
    /// With etcd unreachable, the leader keeps its primary while every member it knows confirms it over REST
    /// (<c>POST /failsafe</c>); otherwise it demotes at its lease deadline as usual. Patroni 3's failsafe_mode.
    /// </summary>
    [JsonPropertyName("failsafe_mode")] public bool FailsafeMode { get; init; }

    /// <summary>Seconds the leader keeps the replication slot of a member whose key disappeared (Patroni 4: 30min).</summary>
    [JsonPropertyName("member_slots_ttl")] public long MemberSlotsTtl { get; init; } = 1800;

    [JsonPropertyName("postgresql")] public DynamicPostgresConfig Postgresql { get; init; } = new();

    /// <summary>
    /// Patroni's standby cluster: the whole cluster follows a remote primary (another cluster's leader). Its leader is a
    /// <em>standby leader</em> — it holds the leader key and streams from <see cref="StandbyClusterConfig.Host"/> — and the
    /// other members follow it. Removing the section promotes the standby leader (the cluster is detached). Null: a normal
    /// cluster.
    /// </summary>
    [JsonPropertyName("standby_cluster")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public StandbyClusterConfig? StandbyCluster { get; init; }

    /// <summary>
    /// Permanent replication slots (Patroni's <c>slots</c>), kept as written so the key round-trips; read with
    /// <see cref="SlotSettings.Read(DynamicConfig)"/>.
    /// </summary>
    [JsonPropertyName("slots")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Slots { get; init; }

    /// <summary>Patroni's <c>ignore_slots</c>: matchers for slots Steward neither creates nor drops (as written).</summary>
    [JsonPropertyName("ignore_slots")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? IgnoreSlots { get; init; }

    /// <summary>
    /// Keys Steward does not act on (e.g. <c>check_timeline</c> written by Patroni), kept verbatim so that the <c>config</c> key
    /// round-trips every key; see <see cref="DynamicConfigJson.NotActedOn"/>. (Settable: the JSON source generator
    /// cannot bind extension data to an init-only property.)
    /// </summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Other { get; set; }
}

/// <summary>Patroni's <c>standby_cluster</c> section (<see cref="DynamicConfig.StandbyCluster"/>).</summary>
public sealed record StandbyClusterConfig
{
    /// <summary>The remote primary's host (or a host list / DNS name its clients use).</summary>
    [JsonPropertyName("host")] public string Host { get; init; } = "";
    [JsonPropertyName("port")] public int Port { get; init; } = 5432;
    /// <summary>A slot on the remote primary the standby leader streams through; null: none.</summary>
    [JsonPropertyName("primary_slot_name")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? PrimarySlotName { get; init; }
    /// <summary>PostgreSQL's recovery settings for the standby cluster's members (written as parameters).</summary>
    [JsonPropertyName("restore_command")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? RestoreCommand { get; init; }
    [JsonPropertyName("archive_cleanup_command")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ArchiveCleanupCommand { get; init; }
    [JsonPropertyName("recovery_min_apply_delay")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? RecoveryMinApplyDelay { get; init; }

    /// <summary>The recovery parameters this section sets (restore_command, archive_cleanup_command, recovery_min_apply_delay).</summary>
    public IEnumerable<KeyValuePair<string, string>> RecoveryParameters()
    {
        if (RestoreCommand is { } restore)
        {
            yield return new("restore_command", restore);
        }

        if (ArchiveCleanupCommand is { } cleanup)
        {
            yield return new("archive_cleanup_command", cleanup);
        }

        if (RecoveryMinApplyDelay is { } delay)
        {
            yield return new("recovery_min_apply_delay", delay);
        }
    }
}

public sealed record DynamicPostgresConfig
{
    [JsonPropertyName("use_pg_rewind")] public bool UsePgRewind { get; init; } = true;
    [JsonPropertyName("use_slots")] public bool UseSlots { get; init; } = true;
    [JsonPropertyName("parameters")] public IReadOnlyDictionary<string, string> Parameters { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// Patroni's cluster-wide <c>postgresql.pg_hba</c> (usually in <c>bootstrap.dcs</c>): the pg_hba.conf lines of every
    /// member that has no local <c>postgresql.pg_hba</c> (the local list wins, as in Patroni). Null: not set.
    /// </summary>
    [JsonPropertyName("pg_hba")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? PgHba { get; init; }

    /// <summary>Keys of the <c>postgresql</c> section Steward does not act on, kept verbatim.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Other { get; set; }
}

/// <summary>Writes <c>synchronous_mode</c> as a JSON boolean, or the string <c>"quorum"</c>, as Patroni does.</summary>
public sealed class SynchronousModeJsonConverter : JsonConverter<string>
{
    public override string Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.True => "true",
        JsonTokenType.False or JsonTokenType.Null => "false",
        JsonTokenType.String when reader.GetString() is "quorum" => "quorum",
        JsonTokenType.String when reader.GetString() is "true" or "on" => "true",
        JsonTokenType.String when reader.GetString() is "false" or "off" => "false",
        _ => throw new JsonException($"synchronous_mode: expected true, false or quorum"),
    };

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (value == "quorum")
        {
            writer.WriteStringValue(value);
        }
        else
        {
            writer.WriteBooleanValue(value == "true");
        }
    }
}
