using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Steward.Core.Cluster;

namespace Steward.Cli;

/// <summary>
/// The <c>config</c> key as an editable JSON tree: <c>--set dotted.key=value</c> and <c>--pg param=value</c> (a value of
/// <c>null</c> removes the key), unknown keys refused by name (Steward would ignore them silently), and the rules an
/// agent relies on checked before anything is written.
/// </summary>
internal static partial class ConfigEdit
{
    /// <summary>The configuration as JSON; parameter values that are integers are written as numbers (<c>max_connections: 50</c> in YAML, as Patroni shows it).</summary>
    public static JsonObject ToJson(DynamicConfig config)
    {
        var json = JsonNode.Parse(DynamicConfigJson.Serialize(config))!.AsObject();
        if (json["postgresql"]?["parameters"] is JsonObject parameters)
        {
            foreach (var (name, value) in parameters.ToList())
            {
                if (value?.GetValue<string>() is { } text && long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var number)
                    && number.ToString(System.Globalization.CultureInfo.InvariantCulture) == text)
                {
                    parameters[name] = number;
                }
            }
        }

        return json;
    }

    public static string ToYaml(DynamicConfig config) => CliOutput.Yaml(ToJson(config));

    /// <summary><c>--set key=value</c>: the value is read as a YAML scalar (<c>2</c> a number, <c>false</c> a boolean, <c>null</c> removes).</summary>
    public static void ApplySet(JsonObject document, string assignment)
    {
        var (key, value) = Split(assignment, "--set");
        Set(document, key.Split('.'), CliOutput.Scalar(value), "--set " + assignment);
    }

    /// <summary><c>--pg param=value</c>: sets <c>postgresql.parameters.param</c> to the text <paramref name="assignment"/> gives (<c>null</c> removes it).</summary>
    public static void ApplyPg(JsonObject document, string assignment)
    {
        var (name, value) = Split(assignment, "--pg");
        Set(document, ["postgresql", "parameters", name], value == "null" ? null : JsonValue.Create(value), "--pg " + assignment);
    }

    /// <summary>
    /// The configuration <paramref name="document"/> describes, or a <see cref="CliException"/> naming the first problem.
    /// Keys Steward does not act on are refused when this edit sets them; ones <paramref name="current"/> already holds
    /// (written by Patroni, say) are kept as they are.
    /// </summary>
    public static DynamicConfig Validate(JsonObject document, DynamicConfig? current)
    {
        ArgumentNullException.ThrowIfNull(document);
        var badNames = BadParameterNames(document).ToList();
        if (badNames.Count > 0)
        {
            throw new CliException($"not a PostgreSQL parameter name: {string.Join(", ", badNames)}");
        }

        var config = DynamicConfigJson.TryParse(document.ToJsonString(), out var error)
                     ?? throw new CliException((error ?? "invalid configuration").Replace("config key: ", "", StringComparison.Ordinal));
        if (DynamicConfigJson.NewlyNotActedOn(config, current) is { Count: > 0 } refused)
        {
            throw new CliException(DynamicConfigJson.NotActedOnMessage(refused));
        }

        foreach (var (name, value) in new[] { ("ttl", config.Ttl), ("loop_wait", config.LoopWait), ("retry_timeout", config.RetryTimeout) })
        {
            if (value < 1)
            {
                throw new CliException($"{name} must be a positive number of seconds, got {value}");
            }
        }

        return DynamicConfigJson.Problem(config, current) is { } problem ? throw new CliException(problem) : config;
    }

    private static IEnumerable<string> BadParameterNames(JsonObject document) =>
        document["postgresql"]?["parameters"] is JsonObject parameters
            ? parameters.Select(p => p.Key).Where(n => !ParameterName().IsMatch(n)).Select(n => "postgresql.parameters." + n)
            : [];

    private static (string Key, string Value) Split(string assignment, string option)
    {
        ArgumentNullException.ThrowIfNull(assignment);
        var equals = assignment.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0 || assignment[..equals].Split('.').Any(p => p.Trim().Length == 0))
        {
            throw new CliException($"{option} '{assignment}': expected key=value (e.g. {(option == "--pg" ? "work_mem=8MB" : "loop_wait=2 or postgresql.use_slots=false")})");
        }

        return (assignment[..equals].Trim(), assignment[(equals + 1)..].Trim());
    }

    private static void Set(JsonObject document, string[] path, JsonNode? value, string what)
    {
        var node = document;
        for (var i = 0; i < path.Length - 1; i++)
        {
            switch (node[path[i]])
            {
                case JsonObject child:
                    node = child;
                    break;
                case null when value is null:
                    return;
                case null:
                    var created = new JsonObject();
                    node[path[i]] = created;
                    node = created;
                    break;
                default:
                    throw new CliException($"{what}: {string.Join('.', path[..(i + 1)])} is a single value, not a section");
            }
        }

        if (value is null)
        {
            node.Remove(path[^1]);
        }
        else
        {
            node[path[^1]] = value;
        }
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_.]*$")]
    private static partial Regex ParameterName();
}
