using System.Globalization;
using System.Text.Json;

namespace Steward.Core.Cluster;

/// <summary>
/// The <c>config</c> key's JSON, in Patroni's shape. Reading is tolerant, because the key may have been written by Patroni
/// or edited by hand (<c>patronictl edit-config</c>, etcdctl): parameter values that are JSON numbers or booleans become
/// PostgreSQL's text ("100", "on"/"off"), integers may be written as strings, keys Steward does not know are ignored,
/// and Patroni's old name <c>master_start_timeout</c> is accepted. A known key with a value of the wrong type makes the
/// whole document invalid: guessing a lease time is worse than refusing it.
/// </summary>
public static class DynamicConfigJson
{
    public static string Serialize(DynamicConfig config) => JsonSerializer.Serialize(config, CoreJsonPlain.Default.DynamicConfig);

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
    /// <c>config</c> key is written over the REST API: a negative maximum_lag_on_failover makes every replica ineligible,
    /// and timings that let the lease expire while the leader retries make a healthy leader demote.
    /// </summary>
    public static string? Problem(DynamicConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Ttl <= 0 || config.LoopWait <= 0 || config.RetryTimeout <= 0 || config.LoopWait + (2 * config.RetryTimeout) > config.Ttl)
        {
            return "invalid timing: need loop_wait + 2 × retry_timeout ≤ ttl, all positive " +
                   $"(ttl {config.Ttl}, loop_wait {config.LoopWait}, retry_timeout {config.RetryTimeout})";
        }

        if (config.MaximumLagOnFailover < 0)
        {
            return $"maximum_lag_on_failover must be 0 or more bytes, got {config.MaximumLagOnFailover}";
        }

        return config.PrimaryStartTimeout < 0 ? $"primary_start_timeout must be 0 or more seconds, got {config.PrimaryStartTimeout}" : null;
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

        var primaryStartTimeout = Int(root, "primary_start_timeout") ?? Int(root, "master_start_timeout");
        return new DynamicConfig
        {
            Ttl = Int(root, "ttl") ?? defaults.Ttl,
            LoopWait = Int(root, "loop_wait") ?? defaults.LoopWait,
            RetryTimeout = Int(root, "retry_timeout") ?? defaults.RetryTimeout,
            MaximumLagOnFailover = Long(root, "maximum_lag_on_failover") ?? defaults.MaximumLagOnFailover,
            PrimaryStartTimeout = primaryStartTimeout ?? defaults.PrimaryStartTimeout,
            Pause = Bool(root, "pause") ?? defaults.Pause,
            SynchronousMode = Bool(root, "synchronous_mode") ?? defaults.SynchronousMode,
            FailsafeMode = Bool(root, "failsafe_mode") ?? defaults.FailsafeMode,
            MemberSlotsTtl = Duration(root, "member_slots_ttl") ?? defaults.MemberSlotsTtl,
            Postgresql = postgresql is { } section
                ? new DynamicPostgresConfig
                {
                    UsePgRewind = Bool(section, "use_pg_rewind") ?? postgresDefaults.UsePgRewind,
                    UseSlots = Bool(section, "use_slots") ?? postgresDefaults.UseSlots,
                    Parameters = Parameters(section),
                }
                : postgresDefaults,
        };
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
