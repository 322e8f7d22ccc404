using System.Collections.Concurrent;
using Steward.Core.Postgres;

namespace Steward.Postgres;

/// <summary>
/// The parameters one <c>postgres</c> binary knows, asked of the binary itself (as Patroni does):
/// <c>postgres --describe-config</c> lists the ones meant for postgresql.conf. It hides a few that a file may still set
/// (developer options such as <c>zero_damaged_pages</c>, <c>allow_system_table_mods</c>), so a name it does not list is
/// asked once more on its own with <c>postgres -C name</c> against an empty configuration, which fails only for a
/// parameter the server does not have. Both answers are cached per binary (path, size and modification time: an
/// upgraded binary is asked again).
/// </summary>
internal sealed class PgParameterCatalog
{
    private static readonly ConcurrentDictionary<(string Path, long Size, DateTime Modified), PgParameterCatalog> Cache = new();
    private static readonly TimeSpan ProgramTimeout = TimeSpan.FromSeconds(30);

    private readonly HashSet<string> _described;
    private readonly ConcurrentDictionary<string, bool> _probed = new(StringComparer.Ordinal);

    internal PgParameterCatalog(string binary, IEnumerable<string> described)
    {
        Binary = binary;
        _described = new HashSet<string>(described, StringComparer.Ordinal);
    }

    /// <summary>The <c>postgres</c> binary this catalog describes.</summary>
    public string Binary { get; }

    /// <summary>How many parameters <c>--describe-config</c> listed.</summary>
    public int Count => _described.Count;

    /// <summary>The names in <c>postgres --describe-config</c> output: its first tab-separated column, lower case.</summary>
    public static IEnumerable<string> ParseDescribeConfig(string output)
    {
        ArgumentNullException.ThrowIfNull(output);
        foreach (var line in output.Split('\n'))
        {
            var tab = line.IndexOf('\t', StringComparison.Ordinal);
            if (tab > 0)
            {
                yield return line[..tab].Trim().ToLowerInvariant();
            }
        }
    }

    /// <summary>
    /// Whether the server has <paramref name="name"/>: a dotted name is an extension's (custom) parameter and always
    /// kept, as PostgreSQL and Patroni keep it; null when only <see cref="ProbeAsync"/> can tell.
    /// </summary>
    public bool? Knows(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var lower = name.ToLowerInvariant();
        if (lower.Contains('.', StringComparison.Ordinal) || _described.Contains(lower))
        {
            return true;
        }

        return _probed.TryGetValue(lower, out var known) ? known : null;
    }

    /// <summary>The catalog of the binary <paramref name="programs"/> runs as <c>postgres</c>, from the cache or asked now.</summary>
    public static async Task<PgParameterCatalog> ForAsync(PgProgram programs, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(programs);
        var path = Path.GetFullPath(programs.PathOf("postgres"));
        var file = new FileInfo(path);
        var key = (path, file.Exists ? file.Length : -1, file.Exists ? file.LastWriteTimeUtc : DateTime.MinValue);
        if (Cache.TryGetValue(key, out var cached))
        {
            return cached;
        }

        var result = await programs.RunAsync("postgres", ["--describe-config"], ProgramTimeout, ct).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            throw result.Failure("postgres --describe-config (listing the parameters this server knows)");
        }

        var catalog = new PgParameterCatalog(path, ParseDescribeConfig(result.StdOut));
        if (catalog.Count == 0)
        {
            throw new PostgresException($"postgres --describe-config ({path}) listed no parameters");
        }

        return Cache.GetOrAdd(key, catalog);
    }

    /// <summary>
    /// Asks the binary about each name <see cref="Knows"/> cannot answer: <c>postgres -C name -D dir</c> with an empty
    /// postgresql.conf in a fresh directory readable by <paramref name="user"/>. Exit 0: a parameter; anything else
    /// ("unrecognized configuration parameter"): not one.
    /// </summary>
    public async Task ProbeAsync(PgProgram programs, PgOsUser user, IEnumerable<string> names, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(programs);
        ArgumentNullException.ThrowIfNull(user);
        var unknown = names.Select(n => n.ToLowerInvariant()).Where(n => Knows(n) is null).Distinct(StringComparer.Ordinal).ToList();
        if (unknown.Count == 0)
        {
            return;
        }

        var directory = Directory.CreateTempSubdirectory("steward-guc-");
        try
        {
            var readable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
                           | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
            File.SetUnixFileMode(directory.FullName, readable);
            var conf = Path.Combine(directory.FullName, "postgresql.conf");
            await File.WriteAllTextAsync(conf, "", ct).ConfigureAwait(false);
            File.SetUnixFileMode(conf, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            user.Own(directory.FullName);
            user.Own(conf);

            foreach (var name in unknown)
            {
                var result = await programs.RunAsync("postgres", ["-C", name, "-D", directory.FullName], ProgramTimeout, ct).ConfigureAwait(false);
                // Only PostgreSQL's own "unrecognized" proves a name unknown; any other failure keeps the parameter (the
                // server then says what is wrong with it when it starts).
                _probed[name] = result.Succeeded || !result.TailText.Contains("unrecognized configuration parameter", StringComparison.Ordinal);
            }
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
