using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;

namespace Steward.Core.Cluster;

/// <summary>Names of the keys under the cluster prefix, as Patroni names them.</summary>
public static class ClusterKeys
{
    public const string Leader = "leader";
    public const string MembersDir = "members/";
    public const string Config = "config";
    public const string Initialize = "initialize";
    public const string Status = "status";
    public const string History = "history";
    public const string Failover = "failover";
    public const string Sync = "sync";

    /// <summary><c>routers/&lt;name&gt;</c>: a router that pauses PgBouncers (docs/pgbouncer.md). Not a Patroni key.</summary>
    public const string RoutersDir = "routers/";

    /// <summary><c>pause/&lt;name&gt;</c>: a router's answer to a switchover request. Not a Patroni key.</summary>
    public const string PauseDir = "pause/";
}

/// <summary>One key as a store read it: <see cref="Key"/> is relative to the prefix.</summary>
public readonly record struct RawKeyValue(string Key, ReadOnlyMemory<byte> Value, long ModRevision, long LeaseId);

/// <summary>
/// Reads and writes the values of the cluster keys in Patroni's JSON shapes. Shared by every <see cref="IClusterStore"/>
/// so the in-memory store parses exactly what the etcd store parses.
/// Reading is lenient: a member whose JSON does not parse is skipped, an unparsable config/status/history/failover is
/// treated as absent (each with a warning); unknown fields are ignored; config parameter values written by Patroni as
/// JSON numbers or booleans become strings (booleans as <c>on</c>/<c>off</c>).
/// </summary>
public static partial class PatroniCodec
{
    private const string HistoryTimeFormat = "yyyy-MM-dd'T'HH:mm:ss.ffffffzzz";

    public static byte[] Serialize(MemberData data) => JsonSerializer.SerializeToUtf8Bytes(data, CoreJson.Default.MemberData);

    public static byte[] Serialize(DynamicConfig config) => JsonSerializer.SerializeToUtf8Bytes(config, CoreJson.Default.DynamicConfig);

    public static byte[] Serialize(ClusterStatus status) => JsonSerializer.SerializeToUtf8Bytes(status, CoreJson.Default.ClusterStatus);

    public static byte[] Serialize(FailoverRequest request) => JsonSerializer.SerializeToUtf8Bytes(request, CoreJson.Default.FailoverRequest);

    public static byte[] Serialize(RouterRegistration registration) => JsonSerializer.SerializeToUtf8Bytes(registration, CoreJson.Default.RouterRegistration);

    public static byte[] Serialize(PauseConfirmation confirmation) => JsonSerializer.SerializeToUtf8Bytes(confirmation, CoreJson.Default.PauseConfirmation);

    /// <summary>Patroni writes <c>sync_standby</c> as null when there is none; so do we (not omitted).</summary>
    public static byte[] Serialize(SyncState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("leader", state.Leader);
            if (state.SyncStandby is null)
            {
                w.WriteNull("sync_standby");
            }
            else
            {
                w.WriteString("sync_standby", state.SyncStandby);
            }

            if (state.Quorum is { } quorum)
            {
                w.WriteNumber("quorum", quorum);
            }

            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>Patroni's history: an array of <c>[timeline, lsn, reason, timestamp, new_leader]</c>.</summary>
    public static byte[] Serialize(IReadOnlyList<HistoryEntry> history)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartArray();
            foreach (var e in history)
            {
                w.WriteStartArray();
                w.WriteNumberValue(e.Timeline);
                w.WriteNumberValue(e.Lsn);
                w.WriteStringValue(e.Reason);
                w.WriteStringValue(e.Time.ToString(HistoryTimeFormat, CultureInfo.InvariantCulture));
                if (e.NewLeader is not null || e.NewTimeline is not null)
                {
                    w.WriteStringValue(e.NewLeader ?? "");
                }

                if (e.NewTimeline is { } created)
                {
                    w.WriteNumberValue(created);
                }
                w.WriteEndArray();
            }
            w.WriteEndArray();
        }
        return buffer.ToArray();
    }

    /// <summary>The <c>config</c> key, read by the one tolerant reader every path shares (<see cref="DynamicConfigJson"/>).</summary>
    public static DynamicConfig? DeserializeConfig(ReadOnlySpan<byte> json) =>
        DynamicConfigJson.TryParse(Encoding.UTF8.GetString(json), out var error) ?? throw new FormatException(error);

    /// <summary>Builds a view from every key under the prefix. Never throws for odd contents.</summary>
    public static ClusterView Parse(long revision, IEnumerable<RawKeyValue> keys, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var members = new List<Member>();
        string? initialize = null;
        DynamicConfigEntry? config = null;
        LeaderKey? leader = null;
        FailoverRequest? failover = null;
        ClusterStatus? status = null;
        IReadOnlyList<HistoryEntry> history = [];
        long historyModRevision = 0;
        SyncState? sync = null;
        var routers = new List<RouterEntry>();
        var pauses = new List<PauseEntry>();

        foreach (var kv in keys)
        {
            switch (kv.Key)
            {
                case ClusterKeys.Leader:
                    leader = new LeaderKey(Encoding.UTF8.GetString(kv.Value.Span), kv.ModRevision, kv.LeaseId);
                    break;
                case ClusterKeys.Initialize:
                    initialize = Encoding.UTF8.GetString(kv.Value.Span);
                    break;
                case ClusterKeys.Config:
                    config = TryRead(kv, logger, v => DeserializeConfig(v) is { } c ? new DynamicConfigEntry(c, kv.ModRevision) : null);
                    break;
                case ClusterKeys.Status:
                    status = TryRead(kv, logger, ReadStatus);
                    break;
                case ClusterKeys.Failover:
                    failover = TryRead(kv, logger, v => JsonSerializer.Deserialize(v, CoreJson.Default.FailoverRequest) is { } f
                        ? f with { ModRevision = kv.ModRevision }
                        : null);
                    break;
                case ClusterKeys.History:
                    history = TryRead(kv, logger, ParseHistory) ?? [];
                    historyModRevision = kv.ModRevision;
                    break;
                case ClusterKeys.Sync:
                    sync = TryRead(kv, logger, v => JsonSerializer.Deserialize(v, CoreJson.Default.SyncState) is { } st
                        ? st with { ModRevision = kv.ModRevision }
                        : null);
                    break;
                case var key when key.StartsWith(ClusterKeys.RoutersDir, StringComparison.Ordinal) && key.Length > ClusterKeys.RoutersDir.Length:
                    if (TryRead(kv, logger, v => JsonSerializer.Deserialize(v, CoreJson.Default.RouterRegistration)) is { } registration)
                    {
                        routers.Add(new RouterEntry(key[ClusterKeys.RoutersDir.Length..], registration, kv.LeaseId));
                    }
                    break;
                case var key when key.StartsWith(ClusterKeys.PauseDir, StringComparison.Ordinal) && key.Length > ClusterKeys.PauseDir.Length:
                    if (TryRead(kv, logger, v => JsonSerializer.Deserialize(v, CoreJson.Default.PauseConfirmation)) is { } confirmation)
                    {
                        pauses.Add(new PauseEntry(key[ClusterKeys.PauseDir.Length..], confirmation, kv.ModRevision));
                    }
                    break;
                default:
                    if (kv.Key.StartsWith(ClusterKeys.MembersDir, StringComparison.Ordinal) && kv.Key.Length > ClusterKeys.MembersDir.Length)
                    {
                        var name = kv.Key[ClusterKeys.MembersDir.Length..];
                        var data = TryRead(kv, logger, v => JsonSerializer.Deserialize(v, CoreJson.Default.MemberData));
                        if (data is { Role: "master" })
                        {
                            data = data with { Role = "primary" }; // Patroni 3's name for it (Patroni 4 and Steward say primary)
                        }

                        if (data is not null)
                        {
                            members.Add(new Member(name, data, kv.ModRevision, kv.LeaseId));
                        }
                    }
                    break;
            }
        }

        members.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        routers.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        pauses.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return new ClusterView
        {
            Revision = revision,
            Initialize = initialize,
            Config = config,
            Leader = leader,
            Members = members,
            Failover = failover,
            Status = status,
            History = history,
            HistoryModRevision = historyModRevision,
            Sync = sync,
            Routers = routers,
            Pauses = pauses,
        };
    }

    private delegate T? Reader<out T>(ReadOnlySpan<byte> value);

    /// <summary>
    /// The <c>status</c> key, read as Patroni's <c>Status.from_node</c> reads it: a bare number is the optime (Patroni 2),
    /// <c>slots</c> and <c>retain_slots</c> may be JSON text, and a slot position that is not a number is left out rather
    /// than the whole key. An optime that is not a number makes the key unreadable (Patroni reads it as 0).
    /// </summary>
    public static ClusterStatus? ReadStatus(ReadOnlySpan<byte> value)
    {
        using var document = JsonDocument.Parse(value.ToArray());
        var root = document.RootElement;
        if (root.ValueKind == JsonValueKind.Number)
        {
            return new ClusterStatus { Optime = root.TryGetInt64(out var legacy) ? legacy : 0 };
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        return new ClusterStatus
        {
            // The optime weighs on who may fail over: one that is not a number makes the key unreadable (and logged).
            Optime = root.TryGetProperty("optime", out var optime) ? AsLong(optime) ?? throw new FormatException($"optime: expected a WAL position in bytes, got {optime.GetRawText()}") : 0,
            Timeline = root.TryGetProperty("timeline", out var timeline) ? AsLong(timeline) : null,
            Slots = root.TryGetProperty("slots", out var slots) && Embedded(slots) is { ValueKind: JsonValueKind.Object } map
                ? map.EnumerateObject().Where(p => AsLong(p.Value) is not null).ToDictionary(p => p.Name, p => AsLong(p.Value)!.Value, StringComparer.Ordinal)
                : null,
            RetainSlots = root.TryGetProperty("retain_slots", out var retain) && Embedded(retain) is { ValueKind: JsonValueKind.Array } list
                ? [.. list.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!)]
                : null,
        };

        static long? AsLong(JsonElement e) => e.ValueKind switch
        {
            JsonValueKind.Number when e.TryGetInt64(out var n) => n,
            JsonValueKind.String when long.TryParse(e.GetString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) => n,
            _ => null,
        };

        // Patroni also accepts the value as JSON text inside a string.
        static JsonElement? Embedded(JsonElement e)
        {
            if (e.ValueKind != JsonValueKind.String)
            {
                return e;
            }

            try
            {
                using var inner = JsonDocument.Parse(e.GetString() ?? "");
                return inner.RootElement.Clone();
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }

    private static T? TryRead<T>(RawKeyValue kv, ILogger logger, Reader<T> read) where T : class
    {
        try
        {
            var value = read(kv.Value.Span);
            if (value is null)
            {
                LogUnparsableOnce(logger, kv, "null");
            }
            return value;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NotSupportedException
                                       or OverflowException or ArgumentException or KeyNotFoundException or IndexOutOfRangeException)
        {
            LogUnparsableOnce(logger, kv, e.Message);
            return null;
        }
    }

    /// <summary>Per logger: the mod_revision of each key whose bad value was last reported (a view is parsed every cycle).</summary>
    private static readonly ConditionalWeakTable<ILogger, ConcurrentDictionary<string, long>> Reported = new();

    /// <summary>Warns once per bad value (key and mod_revision), not on every read of the same value.</summary>
    private static void LogUnparsableOnce(ILogger logger, RawKeyValue kv, string reason)
    {
        var reported = Reported.GetOrCreateValue(logger);
        if (reported.TryGetValue(kv.Key, out var revision) && revision == kv.ModRevision)
        {
            return;
        }

        reported[kv.Key] = kv.ModRevision;
        LogUnparsableKey(logger, kv.Key, kv.ModRevision, reason);
    }

    /// <summary>Accepts Patroni's older 3- and 4-element rows too (no timestamp / no new leader).</summary>
    private static List<HistoryEntry> ParseHistory(ReadOnlySpan<byte> json)
    {
        using var doc = JsonDocument.Parse(json.ToArray());
        var result = new List<HistoryEntry>();
        foreach (var row in doc.RootElement.EnumerateArray())
        {
            if (row.ValueKind != JsonValueKind.Array || row.GetArrayLength() < 3)
            {
                throw new FormatException("a history row is not an array of at least 3 elements");
            }
            var timeline = ReadLong(row[0]);
            var lsn = ReadLong(row[1]);
            var reason = row[2].ValueKind == JsonValueKind.String ? row[2].GetString() ?? "" : row[2].GetRawText();
            var time = row.GetArrayLength() > 3 && row[3].ValueKind == JsonValueKind.String
                ? DateTimeOffset.Parse(row[3].GetString()!, CultureInfo.InvariantCulture)
                : default;
            var newLeader = row.GetArrayLength() > 4 && row[4].ValueKind == JsonValueKind.String ? row[4].GetString() : null;
            long? created = row.GetArrayLength() > 5 && row[5].ValueKind == JsonValueKind.Number ? row[5].GetInt64() : null;
            result.Add(new HistoryEntry(timeline, lsn, reason, time, newLeader) { NewTimeline = created });
        }
        return result;
    }

    private static long ReadLong(JsonElement e) => e.ValueKind == JsonValueKind.String
        ? long.Parse(e.GetString()!, CultureInfo.InvariantCulture)
        : e.GetInt64();

    [LoggerMessage(EventId = StoreLogEvents.UnparsableKey, Level = LogLevel.Warning,
        Message = "Ignoring key {Key} at mod_revision {ModRevision}: its value does not parse ({Reason})")]
    private static partial void LogUnparsableKey(ILogger logger, string key, long modRevision, string reason);

    /// <summary>PostgreSQL parameters: Patroni writes numbers and booleans as JSON values; we keep strings.</summary>
    internal sealed class ParametersConverter : JsonConverter<IReadOnlyDictionary<string, string>>
    {
        public override IReadOnlyDictionary<string, string> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            using var doc = JsonDocument.ParseValue(ref reader);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new JsonException("postgresql.parameters is not an object");
            }
            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                switch (p.Value.ValueKind)
                {
                    case JsonValueKind.String:
                        result[p.Name] = p.Value.GetString()!;
                        break;
                    case JsonValueKind.True:
                        result[p.Name] = "on";
                        break;
                    case JsonValueKind.False:
                        result[p.Name] = "off";
                        break;
                    case JsonValueKind.Null:
                        break;
                    default:
                        result[p.Name] = p.Value.GetRawText();
                        break;
                }
            }
            return result;
        }

        public override void Write(Utf8JsonWriter writer, IReadOnlyDictionary<string, string> value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            foreach (var (name, v) in value.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                writer.WriteString(name, v);
            }
            writer.WriteEndObject();
        }
    }
}

/// <summary>Event ids of the store's log messages (2000–2099), so operators can alert on them.</summary>
public static class StoreLogEvents
{
    public const int UnparsableKey = 2001;
    public const int LeaseGranted = 2010;
    public const int LeaseExpired = 2011;
    public const int LeaseLostOnWrite = 2012;
    public const int EndpointUnavailable = 2020;
    public const int WatchEstablished = 2030;
    public const int WatchBroken = 2031;
    public const int RequestTimeoutChanged = 2040;
}
