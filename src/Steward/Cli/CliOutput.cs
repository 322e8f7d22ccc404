using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;

namespace Steward.Cli;

/// <summary>How a verb prints data: Patroni's table, or the same data as JSON or YAML for scripts.</summary>
internal enum OutputFormat
{
    Table,
    Json,
    Yaml,
}

/// <summary>The <c>--format</c> option and the JSON / YAML writers shared by the verbs.</summary>
internal static class CliOutput
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Option<OutputFormat> FormatOption(OutputFormat defaultFormat = OutputFormat.Table) => new("--format", "-f")
    {
        Description = "output format: table, json or yaml",
        DefaultValueFactory = _ => defaultFormat,
    };

    public static string Json(JsonNode? node) => (node?.ToJsonString(Indented) ?? "null") + "\n";

    /// <summary>Block-style YAML of a JSON tree; strings that would read back as numbers, booleans or null are quoted.</summary>
    public static string Yaml(JsonNode? node)
    {
        var serializer = new SerializerBuilder().WithQuotingNecessaryStrings().Build();
        return serializer.Serialize(ToPlain(node));
    }

    /// <summary>Reads a YAML document into a JSON tree: plain scalars become numbers, booleans or null where they read as such; quoted ones stay strings.</summary>
    public static JsonNode? ParseYaml(string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new CliException($"not valid YAML: line {e.Start.Line}, column {e.Start.Column}: {e.Message}");
        }

        return stream.Documents.Count == 0 ? null : FromYaml(stream.Documents[0].RootNode);
    }

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

    private static JsonNode? FromYaml(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(c => KeyValuePair.Create(
            c.Key is YamlScalarNode { Value: { } key } ? key : throw new CliException($"line {c.Key.Start.Line}: a key must be a plain name"),
            FromYaml(c.Value)))),
        YamlSequenceNode seq => new JsonArray(seq.Children.Select(FromYaml).ToArray()),
        YamlScalarNode { Style: ScalarStyle.Plain } plain => Scalar(plain.Value),
        YamlScalarNode quoted => JsonValue.Create(quoted.Value ?? ""),
        _ => null,
    };

    /// <summary>A plain (unquoted) scalar as YAML 1.1 core types read it: null, booleans, integers, else a string.</summary>
    internal static JsonNode? Scalar(string? text) => text switch
    {
        null or "" or "~" or "null" or "Null" or "NULL" => null,
        "true" or "True" or "TRUE" => JsonValue.Create(true),
        "false" or "False" or "FALSE" => JsonValue.Create(false),
        _ when long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
        _ => JsonValue.Create(text),
    };
}
