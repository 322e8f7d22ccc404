using System.Globalization;
using System.Text.Json;

namespace Steward.Core.Cluster;

/// <summary>
/// The <c>config</c> key's JSON, in Patroni's shape. Reading is tolerant, because the key may have been written by Patroni
/// or edited by hand (<c>patronictl edit-config</c>, etcdctl): parameter values that are JSON numbers or booleans become
/// PostgreSQL's text ("100", "on"/"off"), integers may be written as strings, keys Steward does not act on are kept
/// verbatim (<see cref="DynamicConfig.Other"/>, so the key round-trips) and reported by <see cref="NotActedOn"/>, and
/// Patroni's old name <c>master_start_timeout</c> is accepted. A known key with a value of the wrong type makes the
/// whole document invalid: guessing a lease time is worse than refusing it.
/// </summary>
public static class DynamicConfigJson
{
    /// <summary>Top-level keys Steward acts on (plus <c>master_start_timeout</c>, read as primary_start_timeout).</summary>
    public static readonly IReadOnlyList<string> Known =
    [
        "ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "primary_start_timeout", "pause",
        "synchronous_mode", "synchronous_mode_strict", "synchronous_node_count", "maximum_lag_on_syncnode",
        "failsafe_mode", "member_slots_ttl", "slots", "ignore_slots", "postgresql", "standby_cluster",
    ];

    /// <summary>Keys of the <c>standby_cluster</c> section Steward acts on.</summary>
    public static readonly IReadOnlyList<string> KnownStandbyCluster =
        ["host", "port", "primary_slot_name", "restore_command", "archive_cleanup_command", "recovery_min_apply_delay"];

    /// <summary>Keys of the <c>postgresql</c> section Steward acts on.</summary>
    public static readonly IReadOnlyList<string> KnownPostgresql = ["use_pg_rewind", "use_slots", "parameters", "pg_hba"];

    public static string Serialize(DynamicConfig config) => JsonSerializer.Serialize(config, CoreJsonPlain.Default.DynamicConfig);

    /// <summary>
    /// Every key of <paramref name="config"/> Steward does not act on (dotted, e.g. <c>check_timeline</c>, <c>postgresql.pg_hba</c>).
    /// An operator setting one is refused; one found in etcd (written by Patroni or by hand) is kept and logged.
    /// </summary>
    public static IReadOnlyList<string> NotActedOn(DynamicConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return [.. (config.Other?.Keys ?? Enumerable.Empty<string>()).Where(k => k != "master_start_timeout").Order(StringComparer.Ordinal),
            .. (config.Postgresql.Other?.Keys ?? Enumerable.Empty<string>()).Order(StringComparer.Ordinal).Select(k => "postgresql." + k)];
    }

    /// <summary>
    /// The keys of <paramref name="proposed"/> that Steward does not act on and that <paramref name="current"/> does not
    /// already hold with the same value: what an operator is trying to set now (and is refused).
    /// </summary>
    public static IReadOnlyList<string> NewlyNotActedOn(DynamicConfig proposed, DynamicConfig? current)
    {
        ArgumentNullException.ThrowIfNull(proposed);
        return [.. NotActedOn(proposed).Where(key => !SameValue(key, proposed, current))];

        static bool SameValue(string key, DynamicConfig proposed, DynamicConfig? current)
        {
            if (current is null)
            {
                return false;
            }

            var (mine, theirs, name) = key.StartsWith("postgresql.", StringComparison.Ordinal)
                ? (proposed.Postgresql.Other, current.Postgresql.Other, key["postgresql.".Length..])
                : (proposed.Other, current.Other, key);
            return mine is not null && theirs is not null && mine.TryGetValue(name, out var a) && theirs.TryGetValue(name, out var b)
                   && JsonElement.DeepEquals(a, b);
        }
    }

    /// <summary>Patroni's dynamic settings that Steward does not implement (named as such, rather than as unknown).</summary>
    private static readonly HashSet<string> PatroniOnly = new(StringComparer.Ordinal)
    {
        "check_timeline", "max_timelines_history", "primary_stop_timeout",
        "master_stop_timeout", "postgresql.recovery_conf", "postgresql.pg_ident", "postgresql.use_unix_socket",
        "postgresql.use_unix_socket_repl", "postgresql.remove_data_directory_on_rewind_failure",
        "postgresql.remove_data_directory_on_diverged_timelines",
    };

    /// <summary>The sentence an operator gets when setting keys Steward does not act on.</summary>
    public static string NotActedOnMessage(IReadOnlyList<string> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var parts = new List<string>();
        if (keys.Where(PatroniOnly.Contains).ToList() is { Count: > 0 } patroni)
        {
            parts.Add($"{string.Join(", ", patroni)}: Patroni setting{(patroni.Count == 1 ? "" : "s")} Steward does not implement; refused rather than silently ignored");
        }

        if (keys.Where(k => !PatroniOnly.Contains(k)).ToList() is { Count: > 0 } unknown)
        {
            parts.Add($"unknown setting{(unknown.Count == 1 ? "" : "s")} {string.Join(", ", unknown)} (known: {string.Join(", ", Known.Where(k => k != "postgresql"))}, "
                      + $"postgresql.{string.Join(", postgresql.", KnownPostgresql)})");
        }

        return string.Join("; ", parts);
    }

    /// <returns>The configuration, or null with <paramref name="error"/> saying why when the document cannot be used.</returns>
    public static DynamicConfig? TryParse(string json, out string? error)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var document = JsonDocument.Parse(json);
            var config = Read(document.RootElement);
            error = null;
            return config;
        }
        catch (JsonException e)
        {
            error = $"config key is not valid JSON: {e.Message}";
            return null;
        }
        catch (FormatException e)
        {
            error = $"config key: {e.Message}";
            return null;
        }
    }

    /// <summary>
    /// The first setting that cannot work, as a sentence naming the key, or null when every one can. Checked before the
    /// <c>config</c> key is written over the REST API: a negative maximum_lag_on_failover makes every replica ineligible.
    /// Timings that break Patroni's rule are not a problem but a <see cref="TimingWarning"/>.
    /// </summary>
    /// <param name="current">The configuration in force: <c>slots</c> / <c>ignore_slots</c> entries it already holds as
    /// they are (e.g. written by Patroni) are not held against the change; they are left out at run time and logged.</param>
    public static string? Problem(DynamicConfig config, DynamicConfig? current = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (SlotProblem(config, current) is { } slots)
        {
            return slots;
        }

        if (config.Ttl <= 0 || config.LoopWait <= 0 || config.RetryTimeout <= 0)
        {
            return "invalid timing: ttl, loop_wait and retry_timeout must all be positive " +
                   $"(ttl {config.Ttl}, loop_wait {config.LoopWait}, retry_timeout {config.RetryTimeout})";
        }

        if (config.MaximumLagOnFailover < 0)
        {
            return $"maximum_lag_on_failover must be 0 or more bytes, got {config.MaximumLagOnFailover}";
        }

        if (config.SynchronousNodeCount < 1)
        {
            return $"synchronous_node_count must be 1 or more, got {config.SynchronousNodeCount}";
        }

        if (config.MaximumLagOnSyncnode < -1)
        {
            return $"maximum_lag_on_syncnode must be -1 (off) or 0 or more bytes, got {config.MaximumLagOnSyncnode}";
        }

        if (config.StandbyCluster is { } standby && StandbyClusterProblem(standby) is { } problem)
        {
            return problem;
        }

        return config.PrimaryStartTimeout < 0 ? $"primary_start_timeout must be 0 or more seconds, got {config.PrimaryStartTimeout}" : null;
    }

    /// <summary>What makes a <c>standby_cluster</c> section unusable, or null.</summary>
    public static string? StandbyClusterProblem(StandbyClusterConfig standby)
    {
        ArgumentNullException.ThrowIfNull(standby);
        if (string.IsNullOrWhiteSpace(standby.Host))
        {
            return "standby_cluster.host: required (the remote primary the standby leader streams from; a standby cluster fed only "
                   + "from restore_command is not implemented)";
        }

        if (standby.Host.Any(c => char.IsWhiteSpace(c) || c is '\'' or '\\'))
        {
            return $"standby_cluster.host: '{standby.Host}' is not a host name or address";
        }

        if (standby.Port is < 1 or > 65535)
        {
            return $"standby_cluster.port: expected 1-65535, got {standby.Port}";
        }

        return standby.PrimarySlotName is { } slot && !Postgres.SlotNames.IsValid(slot)
            ? $"standby_cluster.primary_slot_name: '{slot}' is not a valid replication slot name (a-z, 0-9 and _, at most 63)"
            : null;
    }

    /// <summary>
    /// The first unusable <c>slots</c> or <c>ignore_slots</c> entry (the sentence names its key), unless the configuration
    /// in force has the same <c>slots</c> and <c>ignore_slots</c> values (an edit of something else is not refused over them).
    /// </summary>
    public static string? SlotProblem(DynamicConfig config, DynamicConfig? current)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (current is not null && Same(config.Slots, current.Slots) && Same(config.IgnoreSlots, current.IgnoreSlots))
        {
            return null;
        }

        return SlotSettings.Read(config).Problems.FirstOrDefault();

        static bool Same(JsonElement? a, JsonElement? b) =>
            a is not { ValueKind: not JsonValueKind.Null } ? b is not { ValueKind: not JsonValueKind.Null } : b is { } other && JsonElement.DeepEquals(a.Value, other);
    }

    /// <summary>
    /// Patroni's rule <c>loop_wait + 2*retry_timeout &lt;= ttl</c>, broken: a sentence saying what it risks, or null.
    /// Accepted (Patroni accepts such values too, and lowers loop_wait/retry_timeout silently; Steward keeps what was
    /// written and says so). Safety does not rest on the rule: the leader stops PostgreSQL at its lease deadline (last
    /// renewal sent + ttl − margin) whether or not a renewal is still retrying. What it risks is availability: etcd
    /// requests are given up after retry_timeout, so a few slow ones in a row can outlast ttl and make a healthy leader
    /// step down (and the cluster fail over) during an etcd hiccup it would otherwise have ridden out.
    /// ASCII only: it also travels in an HTTP header.
    /// </summary>
    public static string? TimingWarning(DynamicConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var needed = (long)config.LoopWait + (2L * config.RetryTimeout);
        return needed <= config.Ttl
            ? null
            : $"loop_wait ({config.LoopWait}) + 2*retry_timeout ({config.RetryTimeout}) = {needed} is more than ttl ({config.Ttl}), "
              + "breaking Patroni's rule loop_wait + 2*retry_timeout <= ttl: accepted, and the leader stays safe (it stops PostgreSQL "
              + "at its lease deadline whatever its etcd retries are doing), but etcd requests that hang for retry_timeout can "
              + "outlast the lease, so a short etcd slowdown can make a healthy leader step down and the cluster fail over";
    }

    private static DynamicConfig Read(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"expected a JSON object, got {root.ValueKind}");
        }

        var defaults = new DynamicConfig();
        var postgresDefaults = defaults.Postgresql;
        var postgresql = Property(root, "postgresql");
        if (postgresql is { ValueKind: not JsonValueKind.Object })
        {
            throw new FormatException($"postgresql: expected an object, got {postgresql.Value.ValueKind}");
        }

        var masterStartTimeout = Int(root, "master_start_timeout"); // read (and checked) even when primary_start_timeout wins
        var primaryStartTimeout = Int(root, "primary_start_timeout") ?? masterStartTimeout;
        var quorum = Property(root, "synchronous_mode") is { ValueKind: JsonValueKind.String } mode && mode.GetString() == "quorum";

        return new DynamicConfig
        {
            Ttl = Int(root, "ttl") ?? defaults.Ttl,
            LoopWait = Int(root, "loop_wait") ?? defaults.LoopWait,
            RetryTimeout = Int(root, "retry_timeout") ?? defaults.RetryTimeout,
            MaximumLagOnFailover = Long(root, "maximum_lag_on_failover") ?? defaults.MaximumLagOnFailover,
            PrimaryStartTimeout = primaryStartTimeout ?? defaults.PrimaryStartTimeout,
            Pause = Bool(root, "pause") ?? defaults.Pause,
            SynchronousMode = quorum || (Bool(root, "synchronous_mode") ?? defaults.SynchronousMode),
            SynchronousModeQuorum = quorum,
            SynchronousModeStrict = Bool(root, "synchronous_mode_strict") ?? defaults.SynchronousModeStrict,
            SynchronousNodeCount = Int(root, "synchronous_node_count") ?? defaults.SynchronousNodeCount,
            MaximumLagOnSyncnode = Long(root, "maximum_lag_on_syncnode") ?? defaults.MaximumLagOnSyncnode,
            FailsafeMode = Bool(root, "failsafe_mode") ?? defaults.FailsafeMode,
            MemberSlotsTtl = Duration(root, "member_slots_ttl") ?? defaults.MemberSlotsTtl,
            StandbyCluster = StandbyCluster(root),
            Slots = Property(root, "slots")?.Clone(),
            IgnoreSlots = Property(root, "ignore_slots")?.Clone(),
            Postgresql = postgresql is { } section
                ? new DynamicPostgresConfig
                {
                    UsePgRewind = Bool(section, "use_pg_rewind") ?? postgresDefaults.UsePgRewind,
                    UseSlots = Bool(section, "use_slots") ?? postgresDefaults.UseSlots,
                    PgHba = Lines(section, "pg_hba"),
                    Parameters = Parameters(section),
                    Other = Others(section, KnownPostgresql),
                }
                : postgresDefaults,
            Other = Others(root, [.. Known, "master_start_timeout"]),
        };
    }

    /// <summary>
    /// <c>standby_cluster</c>: null when absent, null or empty (Patroni's way to detach: <c>standby_cluster: null</c>).
    /// A key Steward does not act on (<c>create_replica_methods</c>: the standby leader clones with the member's own
    /// <c>postgresql.create_replica_methods</c>) makes the section invalid rather than half applied.
    /// </summary>
    private static StandbyClusterConfig? StandbyCluster(JsonElement root)
    {
        switch (Property(root, "standby_cluster"))
        {
            case null:
                return null;
            case { ValueKind: JsonValueKind.Object } section:
                if (!section.EnumerateObject().Any())
                {
                    return null;
                }

                if (section.EnumerateObject().Select(p => p.Name).FirstOrDefault(name => !KnownStandbyCluster.Contains(name)) is { } unknown)
                {
                    throw new FormatException(unknown == "create_replica_methods"
                        ? "standby_cluster.create_replica_methods: not implemented (the standby leader clones from standby_cluster.host with pg_basebackup or the member's postgresql.create_replica_methods)"
                        : $"standby_cluster.{unknown}: unknown key (known: {string.Join(", ", KnownStandbyCluster)})");
                }

                var defaults = new StandbyClusterConfig();
                return new StandbyClusterConfig
                {
                    Host = Text(section, "host") ?? defaults.Host,
                    Port = Int(section, "port") ?? defaults.Port,
                    PrimarySlotName = Text(section, "primary_slot_name"),
                    RestoreCommand = Text(section, "restore_command"),
                    ArchiveCleanupCommand = Text(section, "archive_cleanup_command"),
                    RecoveryMinApplyDelay = Property(section, "recovery_min_apply_delay") is { ValueKind: JsonValueKind.Number } delay
                        ? delay.GetRawText()
                        : Text(section, "recovery_min_apply_delay"),
                };
            case { } other:
                throw new FormatException($"standby_cluster: expected an object, got {other.ValueKind}");
        }
    }

    /// <summary>A list of text lines (pg_hba.conf's); an empty list or null is "not set".</summary>
    private static List<string>? Lines(JsonElement element, string name)
    {
        switch (Property(element, name))
        {
            case null:
                return null;
            case { ValueKind: JsonValueKind.Array } array:
                var lines = new List<string>();
                foreach (var item in array.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String || item.GetString() is not { } line || line.Contains('\n', StringComparison.Ordinal))
                    {
                        throw new FormatException($"postgresql.{name}: expected a list of lines (strings), got {item.GetRawText()}");
                    }

                    lines.Add(line);
                }

                return lines.Count == 0 ? null : lines;
            case { } other:
                throw new FormatException($"postgresql.{name}: expected a list of lines, got {other.GetRawText()}");
        }
    }

    private static string? Text(JsonElement element, string name) => Property(element, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } text => text.GetString(),
        { } other => throw new FormatException($"{name}: expected a string, got {other.GetRawText()}"),
    };

    private static Dictionary<string, JsonElement>? Others(JsonElement element, IReadOnlyList<string> known)
    {
        var others = element.EnumerateObject().Where(p => !known.Contains(p.Name)).ToList();
        return others.Count == 0 ? null : others.ToDictionary(p => p.Name, p => p.Value.Clone(), StringComparer.Ordinal);
    }

    private static JsonElement? Property(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    private static int? Int(JsonElement element, string name) =>
        Long(element, name) is { } value
            ? value is >= int.MinValue and <= int.MaxValue ? (int)value : throw new FormatException($"{name}: {value} is out of range")
            : null;

    private static long? Long(JsonElement element, string name) => Property(element, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } number when number.TryGetInt64(out var value) => value,
        { ValueKind: JsonValueKind.String } text when long.TryParse(text.GetString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) => value,
        { } other => throw new FormatException($"{name}: expected an integer, got {other.GetRawText()}"),
    };

    private static long? Duration(JsonElement element, string name) => Property(element, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } number when number.TryGetInt64(out var value) && value >= 0 => value,
        { ValueKind: JsonValueKind.String } text when Configuration.DurationText.TryParseSeconds(text.GetString() ?? "", out var value) && value >= 0 => value,
        { } other => throw new FormatException($"{name}: expected a duration (seconds, or e.g. 30min), got {other.GetRawText()}"),
    };

    private static bool? Bool(JsonElement element, string name) => Property(element, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        { ValueKind: JsonValueKind.String } text when text.GetString() is "true" or "on" => true,
        { ValueKind: JsonValueKind.String } text when text.GetString() is "false" or "off" => false,
        { } other => throw new FormatException($"{name}: expected true or false, got {other.GetRawText()}"),
    };

    private static Dictionary<string, string> Parameters(JsonElement postgresql)
    {
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        switch (Property(postgresql, "parameters"))
        {
            case null:
                return parameters;
            case { ValueKind: JsonValueKind.Object } section:
                foreach (var parameter in section.EnumerateObject())
                {
                    if (ParameterText(parameter.Value) is { } text)
                    {
                        parameters[parameter.Name] = text;
                    }
                }

                return parameters;
            case { } other:
                throw new FormatException($"postgresql.parameters: expected an object, got {other.ValueKind}");
        }
    }

    /// <summary>A parameter's value as PostgreSQL text; null (a JSON null) means "not set".</summary>
    private static string? ParameterText(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Number => value.GetRawText(),
        JsonValueKind.True => "on",
        JsonValueKind.False => "off",
        JsonValueKind.Null => null,
        _ => throw new FormatException($"postgresql.parameters: expected a single value, got {value.GetRawText()}"),
    };
}
