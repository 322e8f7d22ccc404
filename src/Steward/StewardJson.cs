using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Steward.Core.Cluster;
using Steward.Demo;

namespace Steward;

/// <summary>
/// Source-generated JSON metadata for every type this program serializes with <see cref="JsonSerializer"/> (the native
/// AOT build has no reflection-based serializer: <c>JsonSerializerIsReflectionEnabledByDefault</c> is off in the JIT
/// build too, so a type missing here fails the same way in tests as in the package). Most REST and CLI bodies are
/// built as <see cref="JsonNode"/> trees and need nothing here. Add a <c>[JsonSerializable]</c> line for a new type and
/// pass <c>StewardJson.Default.TheType</c> to the serializer.
/// </summary>
[JsonSerializable(typeof(MemberData))]
[JsonSerializable(typeof(DemoState))]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(JsonObject))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(IEnumerable<KeyValuePair<string, string>>))]
[JsonSerializable(typeof(IReadOnlyDictionary<string, object?>))]
// Tag values are typed object: these are the types they hold (from YAML: bool, long, string; from etcd: JsonElement).
[JsonSerializable(typeof(bool))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(int))]
[JsonSerializable(typeof(double))]
[JsonSerializable(typeof(string))]
internal sealed partial class StewardJson : JsonSerializerContext;

/// <summary>The demo's state file: indented, as it always was.</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(DemoState))]
internal sealed partial class StewardJsonIndented : JsonSerializerContext;
