using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Steward.Core.Configuration;

/// <summary>
/// Reads the agent's configuration file, in Patroni's shape. Every problem found is reported at once in a
/// <see cref="ConfigException"/>, each naming the file, line, column and dotted key. Patroni keys Steward recognizes but
/// does not act on are not errors: they are listed in <see cref="StewardConfig.Warnings"/>.
/// </summary>
/// <remarks>
/// Environment variables override the file for the secrets and a few keys: <c>STEWARD_X</c>, else <c>PATRONI_X</c>, for X in
/// NAME, SCOPE, NAMESPACE, SUPERUSER_USERNAME/PASSWORD, REPLICATION_USERNAME/PASSWORD, REWIND_USERNAME/PASSWORD,
/// RESTAPI_USERNAME/PASSWORD, ETCD3_HOSTS, ETCD3_USERNAME/PASSWORD; and <c>STEWARD_PG_USER</c> for
/// <c>postgresql.os_user</c>. A variable may also supply a key the file leaves out.
/// </remarks>
public static partial class ConfigLoader
{
    /// <param name="path">The file; relative paths inside it (data_dir, pgpass, bin_dir) are resolved against its directory.</param>
    /// <param name="environment">Variables to read overrides from; null reads the process environment.</param>
    public static StewardConfig Load(string path, IReadOnlyDictionary<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string yaml;
        try
        {
            yaml = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ConfigException($"{path}: the configuration file does not exist", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new ConfigException($"{path}: cannot read the configuration file: {e.Message}", e);
        }

        return Parse(yaml, path, environment);
    }

    /// <param name="yaml">The file's text.</param>
    /// <param name="sourceName">
    /// The file's name for messages; relative paths inside the file are resolved against its directory (itself relative
    /// to the current directory).
    /// </param>
    /// <param name="environment">Variables to read overrides from; null reads the process environment.</param>
    public static StewardConfig Parse(string yaml, string sourceName, IReadOnlyDictionary<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        ArgumentException.ThrowIfNullOrEmpty(sourceName);
        var diagnostics = new ConfigDiagnostics(sourceName);
        var document = ReadDocument(yaml, sourceName);
        var baseDirectory = Path.GetDirectoryName(Path.GetFullPath(sourceName)) ?? Directory.GetCurrentDirectory();
        var reader = new ConfigReader(
            diagnostics,
            new ConfigEnvironment(environment ?? ConfigEnvironment.ReadProcessEnvironment()),
            baseDirectory);
        var config = reader.Read(YamlSection.Root(diagnostics, document), sourceName);
        return diagnostics.HasErrors ? throw diagnostics.ToException() : config;
    }

    internal static YamlMappingNode ReadDocument(string yaml, string sourceName)
    {
        var stream = new YamlStream();
        var parser = new TrackingParser(new Parser(new StringReader(yaml)));
        try
        {
            stream.Load(parser);
        }
        catch (YamlException e)
        {
            throw new ConfigException($"{sourceName}:{e.Start.Line}:{e.Start.Column}: malformed YAML: {YamlExceptionPrefix().Replace(e.Message, "")}", e);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet's scanner fails this way on some truncated input, e.g. an unclosed '[' at the end of the file.
            throw new ConfigException(
                $"{sourceName}:{parser.LastGood.Line}:{parser.LastGood.Column}: malformed YAML: cannot be read past this point (an unclosed '[', '{{' or quote?)", e);
        }

        return stream.Documents switch
        {
            [] => throw new ConfigException($"{sourceName}: the configuration file is empty"),
            [{ RootNode: YamlMappingNode root }] => root,
            [{ RootNode: var root }] when YamlSection.IsNull(root) => throw new ConfigException($"{sourceName}: the configuration file is empty"),
            [{ RootNode: var root }] => throw new ConfigException(
                $"{sourceName}:{root.Start.Line}:{root.Start.Column}: expected a mapping of settings (scope:, name:, …), got {YamlSection.Describe(root)}"),
            [_, var second, ..] => throw new ConfigException(
                $"{sourceName}:{second.RootNode.Start.Line}:{second.RootNode.Start.Column}: expected one YAML document, found {stream.Documents.Count}"),
        };
    }

    /// <summary>Remembers where the last successfully read event ended, for errors that carry no position.</summary>
    private sealed class TrackingParser(IParser inner) : IParser
    {
        public ParsingEvent? Current => inner.Current;

        public Mark LastGood { get; private set; } = new(0, 1, 1);

        public bool MoveNext()
        {
            if (inner.Current is { } current)
            {
                LastGood = current.End;
            }

            return inner.MoveNext();
        }
    }

    /// <summary>YamlDotNet prefixes its messages with the marks, which ours already name.</summary>
    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ")]
    private static partial Regex YamlExceptionPrefix();
}
