using Steward.Core.Configuration;

namespace Steward.Tests.Configuration;

/// <summary>A minimal valid file and helpers to load variations of it without reading the process environment.</summary>
internal static class ConfigText
{
    public const string Minimal = """
        scope: demo
        name: node1
        restapi:
          listen: 127.0.0.1:8008
        etcd3:
          hosts: 127.0.0.1:2379
        postgresql:
          listen: 127.0.0.1:5432
          data_dir: /var/lib/steward/node1/data
          authentication:
            superuser: {username: postgres, password: secret}
            replication: {username: replicator, password: rep-pass}
        """;

    public static readonly IReadOnlyDictionary<string, string?> NoEnvironment = new Dictionary<string, string?>();

    public static StewardConfig Parse(string yaml, IReadOnlyDictionary<string, string?>? environment = null) =>
        ConfigLoader.Parse(yaml, "/etc/steward/node.yml", environment ?? NoEnvironment);

    public static ConfigException Fails(string yaml, IReadOnlyDictionary<string, string?>? environment = null) =>
        Assert.Throws<ConfigException>(() => Parse(yaml, environment));

    /// <summary>Minimal with <paramref name="text"/> appended (indent it to land inside the last section).</summary>
    public static string With(string text) => Minimal + "\n" + text;

    /// <summary>1-based line and column of the first occurrence of <paramref name="marker"/>.</summary>
    public static string Position(string yaml, string marker)
    {
        var index = yaml.IndexOf(marker, StringComparison.Ordinal);
        Assert.True(index >= 0, $"marker '{marker}' not in the text");
        var before = yaml[..index];
        var line = before.Count(c => c == '\n') + 1;
        var column = index - (before.LastIndexOf('\n') + 1) + 1;
        return $"{line}:{column}";
    }

    public static int Line(string yaml, string marker) => int.Parse(Position(yaml, marker).Split(':')[0], System.Globalization.CultureInfo.InvariantCulture);
}
