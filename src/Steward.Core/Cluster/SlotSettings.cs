using System.Text.Json;

namespace Steward.Core.Cluster;

/// <summary>A permanent replication slot from the dynamic configuration's <c>slots</c> (Patroni's semantics).</summary>
/// <param name="Name">The slot name (<c>[a-z0-9_]{1,63}</c>).</param>
/// <param name="Type"><c>physical</c> or <c>logical</c>.</param>
/// <param name="Database">A logical slot's database.</param>
/// <param name="Plugin">A logical slot's output plugin.</param>
public sealed record PermanentSlot(string Name, string Type, string? Database = null, string? Plugin = null)
{
    public bool IsLogical => Type == SlotSettings.Logical;
}

/// <summary>
/// One <c>ignore_slots</c> entry: a slot matches when every property the entry sets equals the slot's (Patroni's rule);
/// matching slots are neither created nor dropped.
/// </summary>
public sealed record SlotMatcher(string? Name = null, string? Type = null, string? Database = null, string? Plugin = null)
{
    public bool Matches(string name, string type, string? database, string? plugin) =>
        (Name is null || Name == name)
        && (string.IsNullOrEmpty(Type) || Type == type)
        && (string.IsNullOrEmpty(Database) || Database == database)
        && (string.IsNullOrEmpty(Plugin) || Plugin == plugin);
}

/// <summary>
/// The <c>slots</c> and <c>ignore_slots</c> of the dynamic configuration, read as Patroni reads them: a slot whose value is
/// empty is physical; without a type it is logical when it has both database and plugin, else physical. Entries that
/// cannot be used are left out and named in <see cref="Problems"/> (each sentence starts with the key, e.g.
/// <c>slots.Bad</c>): an operator setting them is refused, a config written by Patroni keeps them and they are logged.
/// </summary>
public sealed record SlotSettings
{
    public const string Physical = "physical";
    public const string Logical = "logical";

    public static readonly SlotSettings None = new();

    public IReadOnlyList<PermanentSlot> Permanent { get; init; } = [];
    public IReadOnlyList<SlotMatcher> Ignore { get; init; } = [];
    public IReadOnlyList<string> Problems { get; init; } = [];

    public bool HasLogical => Permanent.Any(s => s.IsLogical);

    /// <summary>
    /// Whether a member runs with <c>hot_standby_feedback = on</c> whatever is configured (Patroni enforces it): there are
    /// permanent logical slots, use_slots is on, and the member may become the leader and streams (else it keeps no copies).
    /// </summary>
    public static bool EnforcesHotStandbyFeedback(DynamicConfig dynamic, bool noFailover, bool noStream)
    {
        ArgumentNullException.ThrowIfNull(dynamic);
        return dynamic.Postgresql.UseSlots && !noFailover && !noStream && Read(dynamic).HasLogical;
    }

    /// <summary>Whether <c>ignore_slots</c> covers a slot with these properties.</summary>
    public bool Ignores(string name, string type, string? database, string? plugin) => Ignore.Any(m => m.Matches(name, type, database, plugin));

    private static readonly string[] SlotKeys = ["type", "database", "plugin", "cluster_type"];
    private static readonly string[] MatcherKeys = ["name", "type", "database", "plugin"];

    public static SlotSettings Read(DynamicConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Read(config.Slots, config.IgnoreSlots);
    }

    public static SlotSettings Read(JsonElement? slots, JsonElement? ignoreSlots)
    {
        var problems = new List<string>();
        var permanent = new List<PermanentSlot>();
        var ignore = new List<SlotMatcher>();
        if (slots is { ValueKind: not JsonValueKind.Null } slotsValue)
        {
            if (slotsValue.ValueKind != JsonValueKind.Object)
            {
                problems.Add($"slots: expected a mapping of slot names to {{type: physical}} or {{type: logical, database: …, plugin: …}}, got {Describe(slotsValue)}");
            }
            else
            {
                foreach (var entry in slotsValue.EnumerateObject())
                {
                    if (ReadSlot(entry.Name, entry.Value, out var problem) is { } slot)
                    {
                        permanent.Add(slot);
                    }
                    else if (problem is not null)
                    {
                        problems.Add(problem);
                    }
                }
            }
        }

        if (ignoreSlots is { ValueKind: not JsonValueKind.Null } ignoreValue)
        {
            if (ignoreValue.ValueKind != JsonValueKind.Array)
            {
                problems.Add($"ignore_slots: expected a list of {{name, type, database, plugin}} matchers, got {Describe(ignoreValue)}");
            }
            else
            {
                var index = 0;
                foreach (var item in ignoreValue.EnumerateArray())
                {
                    if (ReadMatcher($"ignore_slots[{index}]", item, problems) is { } matcher)
                    {
                        ignore.Add(matcher);
                    }

                    index++;
                }
            }
        }

        return new SlotSettings { Permanent = permanent, Ignore = ignore, Problems = problems };
    }

    /// <summary>PostgreSQL's slot names as Patroni accepts them: 1 to 63 of lower case letters, digits and '_'.</summary>
    public static bool IsValidName(string name) =>
        name.Length is >= 1 and <= Postgres.SlotNames.MaxLength && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_');

    /// <returns>The slot, or null: not a permanent slot here (<paramref name="problem"/> says why, or is null when the
    /// slot is valid but meant for the other kind of cluster — <c>cluster_type: standby</c>).</returns>
    private static PermanentSlot? ReadSlot(string name, JsonElement value, out string? problem)
    {
        var key = $"slots.{name}";
        problem = null;
        if (!IsValidName(name))
        {
            problem = $"{key}: invalid slot name: a slot name is 1 to 63 lower case letters, digits and underscores";
            return null;
        }

        if (value.ValueKind == JsonValueKind.Null)
        {
            return new PermanentSlot(name, Physical);
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            problem = $"{key}: expected {{type: physical}} or {{type: logical, database: …, plugin: …}}, got {Describe(value)}";
            return null;
        }

        if (value.EnumerateObject().Select(p => p.Name).FirstOrDefault(k => !SlotKeys.Contains(k)) is { } unknown)
        {
            problem = $"{key}: unknown property '{unknown}' (known: {string.Join(", ", SlotKeys)})";
            return null;
        }

        string? type, database, plugin, clusterType;
        try
        {
            type = Text(value, "type", key);
            database = Text(value, "database", key);
            plugin = Text(value, "plugin", key);
            clusterType = Text(value, "cluster_type", key);
        }
        catch (FormatException e)
        {
            problem = e.Message;
            return null;
        }

        if (type is null)
        {
            if ((database is null) != (plugin is null))
            {
                problem = $"{key}: a logical slot needs both database and plugin (got only {(database is null ? "plugin" : "database")}); a physical slot needs neither";
                return null;
            }

            type = database is not null ? Logical : Physical;
        }

        switch (type)
        {
            case Physical:
                if (clusterType is not (null or "primary" or "standby"))
                {
                    problem = $"{key}: cluster_type must be primary or standby, got '{clusterType}'";
                    return null;
                }

                // Steward runs primary clusters only: a slot meant for a standby cluster is not created here.
                return clusterType == "standby" ? null : new PermanentSlot(name, Physical);

            case Logical:
                if (database is null || plugin is null)
                {
                    problem = $"{key}: a logical slot needs {(database is null && plugin is null ? "database and plugin" : database is null ? "database" : "plugin")}";
                    return null;
                }

                if (clusterType is not null)
                {
                    problem = $"{key}: cluster_type applies to physical slots only";
                    return null;
                }

                return new PermanentSlot(name, Logical, database, plugin);

            default:
                problem = $"{key}: type must be physical or logical, got '{type}'";
                return null;
        }
    }

    private static SlotMatcher? ReadMatcher(string key, JsonElement value, List<string> problems)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            problems.Add($"{key}: expected a mapping of name, type, database, plugin, got {Describe(value)}");
            return null;
        }

        if (value.EnumerateObject().Select(p => p.Name).FirstOrDefault(k => !MatcherKeys.Contains(k)) is { } unknown)
        {
            problems.Add($"{key}: unknown property '{unknown}' (known: {string.Join(", ", MatcherKeys)})");
            return null;
        }

        try
        {
            var matcher = new SlotMatcher(Text(value, "name", key), Text(value, "type", key), Text(value, "database", key), Text(value, "plugin", key));
            if (matcher.Type is not (null or Physical or Logical))
            {
                problems.Add($"{key}: type must be physical or logical, got '{matcher.Type}'");
                return null;
            }

            return matcher;
        }
        catch (FormatException e)
        {
            problems.Add(e.Message);
            return null;
        }
    }

    /// <summary>A property's text: null when absent, null or empty; a number is read as its text (YAML writes names so).</summary>
    private static string? Text(JsonElement element, string name, string key) =>
        !element.TryGetProperty(name, out var value) ? null : value.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => string.IsNullOrEmpty(value.GetString()) ? null : value.GetString(),
            JsonValueKind.Number => value.GetRawText(),
            _ => throw new FormatException($"{key}.{name}: expected text, got {Describe(value)}"),
        };

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "a mapping",
        JsonValueKind.Array => "a list",
        _ => value.GetRawText(),
    };
}
