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
/// RESTAPI_USERNAME/PASSWORD, ETCD3_HOSTS, ETCD3_USERNAME/PASSWORD, {SUPERUSER,REPLICATION,REWIND}_{SSLMODE,SSLCERT,SSLKEY,
/// SSLPASSWORD,SSLROOTCERT}; and <c>STEWARD_PG_USER</c> for
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

        return Parse(yaml, path, environment, filePath: path);
    }

    /// <summary>
    /// A sentence when the file holds a password (any <c>*password</c> key with a value) and its group or others may read
    /// it; null otherwise. Secrets are better given in the environment (STEWARD_SUPERUSER_PASSWORD, …) or a 0600 file.
    /// </summary>
    public static string? ReadableSecretsWarning(string path, YamlMappingNode root)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (OperatingSystem.IsWindows())
        {
            return null;
        }

        UnixFileMode mode;
        try
        {
            mode = File.GetUnixFileMode(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        const UnixFileMode others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
        if ((mode & others) == 0)
        {
            return null;
        }

        var secrets = new List<string>();
        FindSecrets(root, "", secrets);
        return secrets.Count == 0
            ? null
            : $"the file holds secrets ({string.Join(", ", secrets)}) and other users may read it (mode {Convert.ToString((int)mode, 8).PadLeft(4, '0')}): "
              + $"run chmod 600 {path} (or give the passwords in the environment, e.g. STEWARD_SUPERUSER_PASSWORD)";
    }

    private static void FindSecrets(YamlNode node, string path, List<string> secrets)
    {
        if (node is not YamlMappingNode mapping)
        {
            return;
        }

        foreach (var (key, value) in mapping.Children)
        {
            if (key is not YamlScalarNode { Value: { } name })
            {
                continue;
            }

            var child = path.Length == 0 ? name : $"{path}.{name}";
            if (name.EndsWith("password", StringComparison.OrdinalIgnoreCase) && value is YamlScalarNode { Value: { Length: > 0 } } && !YamlSection.IsNull(value))
            {
                secrets.Add(child);
            }
            else
            {
                FindSecrets(value, child, secrets);
            }
        }
    }

    /// <param name="yaml">The file's text.</param>
    /// <param name="sourceName">
    /// The file's name for messages; relative paths inside the file are resolved against its directory (itself relative
    /// to the current directory).
    /// </param>
    /// <param name="environment">Variables to read overrides from; null reads the process environment.</param>
    public static StewardConfig Parse(string yaml, string sourceName, IReadOnlyDictionary<string, string?>? environment = null) =>
        Parse(yaml, sourceName, environment, filePath: null);

    /// <param name="filePath">The file the text was read from: a warning when it holds secrets others may read.</param>
    private static StewardConfig Parse(string yaml, string sourceName, IReadOnlyDictionary<string, string?>? environment, string? filePath)
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
        if (filePath is not null && ReadableSecretsWarning(filePath, document) is { } readable)
        {
            diagnostics.Warning(readable);
        }

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
