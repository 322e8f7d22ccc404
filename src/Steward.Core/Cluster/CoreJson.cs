using System.Text.Json;
using System.Text.Json.Serialization;

namespace Steward.Core.Cluster;

/// <summary>
/// Source-generated JSON metadata for the cluster keys in Patroni's shapes (no reflection, so the native AOT build
/// serializes exactly what the JIT build does). The options match what <see cref="PatroniCodec"/> always used: nulls
/// are not written, numbers may be read from strings, and PostgreSQL parameters go through
/// <see cref="PatroniCodec.ParametersConverter"/> (Patroni writes them as JSON numbers and booleans; we keep text).
/// A new type written to or read from etcd needs a <c>[JsonSerializable]</c> line here.
/// </summary>
[JsonSourceGenerationOptions(
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.AllowReadingFromString,
    Converters = [typeof(PatroniCodec.ParametersConverter)])]
[JsonSerializable(typeof(MemberData))]
[JsonSerializable(typeof(DynamicConfig))]
[JsonSerializable(typeof(ClusterStatus))]
[JsonSerializable(typeof(FailoverRequest))]
[JsonSerializable(typeof(SyncState))]
[JsonSerializable(typeof(RouterRegistration))]
[JsonSerializable(typeof(PauseConfirmation))]
// Tag values are typed object: these are the types they hold (from YAML: bool, long, string; from etcd: JsonElement).
[JsonSerializable(typeof(bool))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(int))]
[JsonSerializable(typeof(double))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(JsonElement))]
internal sealed partial class CoreJson : JsonSerializerContext;

/// <summary>
/// The same types with the serializer's default options, for <see cref="DynamicConfigJson.Serialize"/> (the REST API's
/// <c>GET /config</c> body, which has always carried nulls and parameters as written).
/// </summary>
[JsonSerializable(typeof(DynamicConfig))]
internal sealed partial class CoreJsonPlain : JsonSerializerContext;
