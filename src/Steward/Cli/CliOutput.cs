using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Steward.Cli;

/// <summary>How a verb prints data: Patroni's table, or the same data as JSON or YAML for scripts.</summary>
internal enum OutputFormat
{
    Table,
    Json,
    Yaml,
}

/// <summary>The <c>--format</c> option and the JSON / YAML writers shared by the verbs.</summary>
internal static partial class CliOutput
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Option<OutputFormat> FormatOption(OutputFormat defaultFormat = OutputFormat.Table) => new("--format", "-f")
    {
        Description = "output format: table, json or yaml",
        DefaultValueFactory = _ => defaultFormat,
    };

    public static string Json(JsonNode? node) => (node?.ToJsonString(Indented) ?? "null") + "\n";

    /// <summary>Block-style YAML of a JSON tree; strings that would read back as numbers, booleans or null are quoted.</summary>
    /// <remarks>
    /// Written through YamlDotNet's emitter (no reflection, so it works in the native AOT build); the text is what
    /// YamlDotNet's <c>SerializerBuilder().WithQuotingNecessaryStrings()</c> writes for the same data (a unit test compares them).
    /// </remarks>
    public static string Yaml(JsonNode? node)
    {
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        var emitter = new Emitter(text);
        emitter.Emit(new StreamStart());
        emitter.Emit(new DocumentStart());
        EmitYaml(emitter, node);
        emitter.Emit(new DocumentEnd(true));
        emitter.Emit(new StreamEnd());
        return text.ToString();
    }

    private static void EmitYaml(Emitter emitter, JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                emitter.Emit(new MappingStart(AnchorName.Empty, TagName.Empty, true, MappingStyle.Any));
                foreach (var (key, value) in o)
                {
                    EmitString(emitter, key);
                    EmitYaml(emitter, value);
                }

                emitter.Emit(new MappingEnd());
                break;
            case JsonArray a:
                emitter.Emit(new SequenceStart(AnchorName.Empty, TagName.Empty, true, SequenceStyle.Any));
                foreach (var item in a)
                {
                    EmitYaml(emitter, item);
                }

                emitter.Emit(new SequenceEnd());
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                EmitString(emitter, v.GetValue<string>());
                break;
            case JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False:
                EmitPlain(emitter, v.GetValueKind() == JsonValueKind.True ? "true" : "false");
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.Number:
                EmitPlain(emitter, v.TryGetValue<long>(out var l)
                    ? l.ToString(CultureInfo.InvariantCulture)
                    : decimal.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture));
                break;
            default:
                // null: an empty plain scalar (the null tag is what lets the emitter write it unquoted; it is not printed).
                emitter.Emit(new Scalar(AnchorName.Empty, NullTag, "", ScalarStyle.Plain, true, false));
                break;
        }
    }

    private static readonly TagName NullTag = new("tag:yaml.org,2002:null");

    private static void EmitPlain(Emitter emitter, string value) =>
        emitter.Emit(new Scalar(AnchorName.Empty, TagName.Empty, value, ScalarStyle.Plain, true, false));

    /// <summary>
    /// A string that would read back as something else (null, a boolean, a number, blank) is double-quoted; any other
    /// string gets the style the emitter finds fits (plain, quoted, or a folded block for several lines).
    /// </summary>
    private static void EmitString(Emitter emitter, string value) =>
        emitter.Emit(new Scalar(AnchorName.Empty, TagName.Empty, value,
            value.Trim().Length == 0 || SpecialString().IsMatch(value) ? ScalarStyle.DoubleQuoted : ScalarStyle.Any, true, false));

    /// <summary>YAML 1.2 core-schema nulls, booleans and numbers, and text starting with white space (YamlDotNet's list).</summary>
    [GeneratedRegex(@"^(null|Null|NULL|\~|true|True|TRUE|false|False|FALSE|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?(\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN|\s.*)$")]
    private static partial Regex SpecialString();

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
