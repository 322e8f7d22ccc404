using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Steward.Core.Configuration;

/// <summary>
/// One YAML mapping checked against the keys the schema asks for. Every key read (or declared unsupported) is marked
/// known; <see cref="Finish"/> reports the rest as unknown, with a suggestion when one is a likely typo.
/// </summary>
internal sealed class YamlSection
{
    private static readonly string[] TrueWords = ["true", "yes", "on"];
    private static readonly string[] FalseWords = ["false", "no", "off"];

    private readonly ConfigDiagnostics diagnostics;
    private readonly YamlMappingNode node;
    private readonly HashSet<string> known = new(StringComparer.Ordinal);

    private YamlSection(ConfigDiagnostics diagnostics, YamlMappingNode node, string path)
    {
        this.diagnostics = diagnostics;
        this.node = node;
        Path = path;
    }

    public string Path { get; }

    public Origin Origin => Origin.Of(node);

    public static YamlSection Root(ConfigDiagnostics diagnostics, YamlMappingNode node) => new(diagnostics, node, "");

    public string Child(string key) => Path.Length == 0 ? key : $"{Path}.{key}";

    /// <summary>The key's node if the key is written (whatever its value); marks it known.</summary>
    public YamlNode? KeyNode(string key)
    {
        known.Add(key);
        return Find(key)?.Key;
    }

    /// <summary>The key's value; null when the key is absent or its value is YAML null.</summary>
    public YamlNode? Take(string key)
    {
        known.Add(key);
        var value = Find(key)?.Value;
        return value is null || IsNull(value) ? null : value;
    }

    public YamlSection? Section(string key)
    {
        var value = Take(key);
        switch (value)
        {
            case null:
                return null;
            case YamlMappingNode mapping:
                return new YamlSection(diagnostics, mapping, Child(key));
            default:
                diagnostics.Error(Origin.Of(value), Child(key), $"expected a mapping, got {Describe(value)}");
                return null;
        }
    }

    /// <summary>A list of mappings (e.g. router.yml's <c>pgbouncer:</c>), each one a section named <c>key[i]</c>; null when absent.</summary>
    public IReadOnlyList<YamlSection>? SectionList(string key)
    {
        var value = Take(key);
        switch (value)
        {
            case null:
                return null;
            case YamlSequenceNode sequence:
                var items = new List<YamlSection>();
                var index = 0;
                foreach (var item in sequence)
                {
                    var path = $"{Child(key)}[{index++}]";
                    if (item is YamlMappingNode mapping)
                    {
                        items.Add(new YamlSection(diagnostics, mapping, path));
                    }
                    else
                    {
                        diagnostics.Error(Origin.Of(item), path, $"expected a mapping, got {Describe(item)}");
                    }
                }

                return items;
            default:
                diagnostics.Error(Origin.Of(value), Child(key), $"expected a list, got {Describe(value)}");
                return null;
        }
    }

    public Located? String(string key)
    {
        var value = Take(key);
        switch (value)
        {
            case null:
                return null;
            case YamlScalarNode scalar:
                return new Located(scalar.Value ?? "", Origin.Of(scalar));
            default:
                diagnostics.Error(Origin.Of(value), Child(key), $"expected a single value, got {Describe(value)}");
                return null;
        }
    }

    public int? Int(string key, int minimum) => (int?)Long(key, minimum, int.MaxValue);

    public long? Long(string key, long minimum, long maximum = long.MaxValue)
    {
        if (String(key) is not { } value)
        {
            return null;
        }

        if (!long.TryParse(value.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
        {
            diagnostics.Error(value.Origin, Child(key), $"expected an integer, got '{value.Text}'");
            return null;
        }

        if (number < minimum || number > maximum)
        {
            var range = maximum == long.MaxValue || maximum == int.MaxValue ? $"at least {minimum}" : $"between {minimum} and {maximum}";
            diagnostics.Error(value.Origin, Child(key), $"must be {range}, got {number}");
            return null;
        }

        return number;
    }

    public bool? Bool(string key) => String(key) is { } value ? ParseBool(value, Child(key)) : null;

    /// <summary>true/false, and YAML 1.1's yes/no/on/off (which Patroni's YAML reader also takes as booleans).</summary>
    public bool? ParseBool(Located value, string path)
    {
        if (TrueWords.Contains(value.Text, StringComparer.OrdinalIgnoreCase))
        {
            return true;
        }

        if (FalseWords.Contains(value.Text, StringComparer.OrdinalIgnoreCase))
        {
            return false;
        }

        diagnostics.Error(value.Origin, path, $"expected true or false, got '{value.Text}'");
        return null;
    }

    /// <summary>A list of single values; with <paramref name="commaSeparated"/> also one string split on commas.</summary>
    public IReadOnlyList<Located>? List(string key, bool commaSeparated)
    {
        var value = Take(key);
        switch (value)
        {
            case null:
                return null;
            case YamlScalarNode scalar when commaSeparated:
                return SplitCommas(new Located(scalar.Value ?? "", Origin.Of(scalar)));
            case YamlSequenceNode sequence:
                var items = new List<Located>();
                foreach (var item in sequence)
                {
                    if (item is YamlScalarNode { Value: { } text } && !IsNull(item))
                    {
                        items.Add(new Located(text, Origin.Of(item)));
                    }
                    else
                    {
                        diagnostics.Error(Origin.Of(item), Child(key), $"expected a single value in the list, got {Describe(item)}");
                    }
                }

                return items;
            default:
                diagnostics.Error(Origin.Of(value), Child(key), $"expected a list, got {Describe(value)}");
                return null;
        }
    }

    /// <summary>Every entry, for free-form maps (parameters, tags); marks all keys known.</summary>
    public IEnumerable<(Located Key, YamlNode Value)> Entries()
    {
        foreach (var (key, value) in node.Children)
        {
            if (key is YamlScalarNode { Value: { } name })
            {
                known.Add(name);
                yield return (new Located(name, Origin.Of(key)), value);
            }
        }
    }

    /// <summary>Patroni keys Steward does not act on: a warning each when present, never an error.</summary>
    public void Unsupported(params string[] keys)
    {
        foreach (var key in keys)
        {
            if (KeyNode(key) is { } keyNode)
            {
                diagnostics.Unsupported(keyNode, Child(key));
            }
        }
    }

    /// <summary>Reports every key that no read asked for.</summary>
    public void Finish()
    {
        foreach (var key in node.Children.Keys)
        {
            if (key is not YamlScalarNode { Value: { } name })
            {
                diagnostics.Error(Origin.Of(key), Path, $"expected a plain key, got {Describe(key)}");
            }
            else if (!known.Contains(name))
            {
                var suggestion = known.Where(k => EditDistance(k, name) <= 2).OrderBy(k => EditDistance(k, name)).FirstOrDefault();
                diagnostics.Error(Origin.Of(key), Child(name), suggestion is null ? "unknown key" : $"unknown key (did you mean '{suggestion}'?)");
            }
        }
    }

    public static bool IsNull(YamlNode value) =>
        value is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: null or "" or "~" or "null" or "Null" or "NULL" };

    public static string Describe(YamlNode value) => value switch
    {
        YamlMappingNode => "a mapping",
        YamlSequenceNode => "a list",
        YamlScalarNode scalar when IsNull(scalar) => "nothing",
        YamlScalarNode scalar => $"'{scalar.Value}'",
        _ => "an unexpected node",
    };

    private static List<Located> SplitCommas(Located value) =>
        value.Text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(part => value with { Text = part })
            .ToList();

    private KeyValuePair<YamlNode, YamlNode>? Find(string key)
    {
        foreach (var pair in node.Children)
        {
            if (pair.Key is YamlScalarNode { Value: { } name } && name == key)
            {
                return pair;
            }
        }

        return null;
    }

    private static int EditDistance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }

            previous = current;
        }

        return previous[b.Length];
    }
}
