using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Steward.Cli;
using YamlDotNet.Serialization;

namespace Steward.Tests.Cli;

/// <summary>
/// The YAML writer behind <c>--format yaml</c>, <c>show-config</c> and <c>edit-config</c> goes through YamlDotNet's
/// emitter by hand (the reflection-based serializer does not work in the native AOT build). It must write the same text
/// the serializer wrote before: the serializer stays here as the reference.
/// </summary>
public sealed class CliOutputYamlTests
{
    private static readonly string[] Docs =
    [
        """{"ttl": 6, "loop_wait": 1, "pause": false, "postgresql": {"use_pg_rewind": true, "parameters": {"max_connections": "100", "wal_level": "replica", "shared_buffers": "128MB"}}}""",
        """[{"Cluster": "demo", "Member": "node1", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 3, "Lag in MB": null}, {"Member": "node2", "Lag in MB": 0.5, "Tags": {"nofailover": true, "zone": "a"}}]""",
        """{"quoted": ["123", "-4", "1.5", "1e3", ".inf", ".NaN", "0x1F", "0o17", "true", "False", "NULL", "null", "~", "", " ", " lead", "tab\there"]}""",
        """{"plain": ["yes", "no", "on", "off", "y", "a: b", "a #b", "- x", "x-", "#x", "multi\nline", "trailing ", "é ü", "'single'", "\"double\"", "[x]", "{y}", "*ref", "&anchor", "!tag", "%p", "@at", "`tick", "a,b", "?q", "|bar", ">gt"]}""",
        """{"": 1, "123": "x", "true": false, "nested": {"empty_object": {}, "empty_array": [], "list": [[1, 2], [], {"k": null}]}}""",
        """[[1, 4096, "no recovery target specified", "2026-01-01T00:00:00.0000000+00:00", "node2"], [2, 8192, "switchover", "2026-01-02T00:00:00.0000000+00:00", null]]""",
        """{"big": 9223372036854775807, "negative": -12, "decimal": 12.50, "small": 0.000001}""",
    ];

    [Theory]
    [MemberData(nameof(Documents))]
    public void Writes_what_YamlDotNets_serializer_writes(string json)
    {
        var node = JsonNode.Parse(json);

        Assert.Equal(Reference(node), CliOutput.Yaml(node));
    }

    /// <summary>The documents without fractions (ParseYaml reads only integers as numbers, as YAML 1.1's core types do).</summary>
    public static TheoryData<string> RoundTripDocuments() => Data(Docs.Where(d => !d.Contains("0.5", StringComparison.Ordinal) && !d.Contains("12.50", StringComparison.Ordinal)));

    public static TheoryData<string> Documents() => Data(Docs);

    private static TheoryData<string> Data(IEnumerable<string> documents)
    {
        var data = new TheoryData<string>();
        foreach (var d in documents)
        {
            data.Add(d);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(RoundTripDocuments))]
    public void Reads_back_as_the_same_tree(string json)
    {
        var node = JsonNode.Parse(json);

        var back = CliOutput.ParseYaml(CliOutput.Yaml(node));

        Assert.Equal(Normalized(node), Normalized(back));
    }

    /// <summary>The serializer as CliOutput used it before the native build: reflection over plain .NET values.</summary>
    private static string Reference(JsonNode? node) =>
        new SerializerBuilder().WithQuotingNecessaryStrings().Build().Serialize(ToPlain(node));

    private static object? ToPlain(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => o.ToDictionary(p => p.Key, p => ToPlain(p.Value)),
        JsonArray a => a.Select(ToPlain).ToList(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number => v.TryGetValue<long>(out var l) ? l : decimal.Parse(v.ToJsonString(), CultureInfo.InvariantCulture),
            _ => null,
        },
        _ => null,
    };

    /// <summary>Numbers compared by value (YAML has no 12.50, only 12.5).</summary>
    private static string Normalized(JsonNode? node) => node switch
    {
        null => "null",
        JsonObject o => "{" + string.Join(",", o.Select(p => JsonSerializer.Serialize(p.Key) + ":" + Normalized(p.Value))) + "}",
        JsonArray a => "[" + string.Join(",", a.Select(Normalized)) + "]",
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => decimal.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture).ToString("G29", CultureInfo.InvariantCulture),
        _ => node.ToJsonString(),
    };
}
