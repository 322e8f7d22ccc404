using System.Globalization;
using System.Text;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;

namespace Steward.Postgres;

/// <summary>
/// Renders the files the agent owns in and next to the data directory, Patroni's way: initdb's postgresql.conf becomes
/// postgresql.base.conf, and our postgresql.conf includes it and then sets every parameter we manage.
/// </summary>
internal static class PgConfigFiles
{
    public const string BaseConf = "postgresql.base.conf";

    /// <summary>synchronous_standby_names as the leader sets it in synchronous mode; included last, so it wins.</summary>
    public const string SyncConf = "steward.sync.conf";
    public const string Header = "# Written by steward; edits are overwritten. Set parameters in the config key or the node's postgresql.parameters.";

    /// <summary>Parameters only a replica carries; <see cref="WithReplicaSettings"/> replaces exactly these.</summary>
    public static readonly IReadOnlyList<string> ReplicaParameters = ["primary_conninfo", "primary_slot_name", "recovery_target_timeline"];

    private static readonly string[] Pinned = ["listen_addresses", "port"];

    /// <summary>
    /// Our defaults, overridden by the dynamic parameters, overridden by the local ones; listen_addresses and port always
    /// follow postgresql.listen. With <paramref name="known"/> (does this server have the parameter?) they are adapted to
    /// the server as Patroni adapts them: <c>wal_keep_segments</c> ↔ <c>wal_keep_size</c> (16MB segments), and a
    /// parameter the server does not know is left out, with a sentence in <paramref name="warnings"/> (PostgreSQL would
    /// refuse to start over it). Dotted names (an extension's parameters, <c>myext.x</c>) are always kept.
    /// </summary>
    public static SortedDictionary<string, string> Parameters(
        StewardConfig config, DynamicConfig dynamic, string socketDirectory, Func<string, bool>? known = null, ICollection<string>? warnings = null)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["wal_level"] = "replica",
            ["hot_standby"] = "on",
            ["max_wal_senders"] = "10",
            ["max_replication_slots"] = "10",
            ["wal_log_hints"] = "on",
            ["wal_keep_size"] = "128MB",
            ["wal_retrieve_retry_interval"] = "1s", // a replica re-pointed at a new leader reconnects within a second (default 5 s)
            ["password_encryption"] = "scram-sha-256", // PostgreSQL 14+'s default, said out loud: roles Steward creates get SCRAM verifiers
            ["unix_socket_directories"] = socketDirectory,
        };
        var written = new HashSet<string>(StringComparer.Ordinal);
        // A standby cluster's restore_command & co. (Patroni's standby_cluster section) sit between the dynamic and the local
        // parameters: the cluster's setting, which a member's own file may still override.
        IEnumerable<KeyValuePair<string, string>> standby = dynamic.StandbyCluster?.RecoveryParameters() ?? [];
        foreach (var source in new[] { dynamic.Postgresql.Parameters, standby, config.Postgresql.Parameters })
        {
            foreach (var (name, value) in source)
            {
                result[name.ToLowerInvariant()] = value;
                written.Add(name.ToLowerInvariant());
            }
        }
        if (SlotSettings.EnforcesHotStandbyFeedback(dynamic, config.Tags.NoFailover, config.Tags.NoStream))
        {
            // Patroni: with permanent logical slots a replica reports its xmin, so the primary keeps the catalog rows the
            // copies of those slots need to decode after a failover.
            result["hot_standby_feedback"] = "on";
        }

        foreach (var name in Pinned.Concat(ReplicaParameters))
        {
            result.Remove(name);
        }
        if (known is not null)
        {
            AdaptToServer(result, written, known, warnings ?? []);
        }
        result["listen_addresses"] = config.Postgresql.Listen.Host;
        result["port"] = config.Postgresql.Listen.Port.ToString(CultureInfo.InvariantCulture);
        return result;
    }

    private const string WalKeepSegments = "wal_keep_segments";
    private const string WalKeepSize = "wal_keep_size";

    private static void AdaptToServer(SortedDictionary<string, string> parameters, HashSet<string> written, Func<string, bool> known, ICollection<string> warnings)
    {
        // PostgreSQL 13 renamed wal_keep_segments to wal_keep_size. Patroni converts with 16MB segments (the usual size;
        // the point is that a config written for one version starts on the other) and, when both are written, keeps the
        // one the server has.
        if (known(WalKeepSize) && !known(WalKeepSegments) && parameters.Remove(WalKeepSegments, out var segments))
        {
            if (written.Contains(WalKeepSize))
            {
                warnings.Add($"{WalKeepSegments} = {segments} left out: this server has {WalKeepSize} instead, which is set ({parameters[WalKeepSize]})");
            }
            else if (long.TryParse(segments.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var count))
            {
                parameters[WalKeepSize] = FormattableString.Invariant($"{count * 16}MB");
                warnings.Add($"{WalKeepSegments} = {segments} written as {WalKeepSize} = {parameters[WalKeepSize]}: this server has {WalKeepSize} instead (16MB segments, as Patroni converts it)");
            }
            else
            {
                warnings.Add($"{WalKeepSegments} = '{segments}' left out: not a number of segments, and this server has {WalKeepSize} instead");
            }
        }
        else if (known(WalKeepSegments) && !known(WalKeepSize) && parameters.Remove(WalKeepSize, out var size))
        {
            if (written.Contains(WalKeepSegments))
            {
                // the server's own name was written too: it wins
            }
            else if (Megabytes(size) is { } mb)
            {
                parameters[WalKeepSegments] = ((mb + 8) / 16).ToString(CultureInfo.InvariantCulture);
                if (written.Contains(WalKeepSize))
                {
                    warnings.Add($"{WalKeepSize} = {size} written as {WalKeepSegments} = {parameters[WalKeepSegments]}: this server has {WalKeepSegments} instead (16MB segments, as Patroni converts it)");
                }
            }
            else
            {
                warnings.Add($"{WalKeepSize} = '{size}' left out: not a size, and this server has {WalKeepSegments} instead");
            }
        }

        foreach (var name in parameters.Keys.Where(n => !known(n)).ToList())
        {
            warnings.Add($"parameter {name} = {parameters[name]} left out of postgresql.conf: this PostgreSQL server does not know it "
                         + "(postgres --describe-config), and would refuse to start over it");
            parameters.Remove(name);
        }
    }

    /// <summary>A memory size in PostgreSQL's notation as megabytes (wal_keep_size's unit, also when none is written); null when it is not one.</summary>
    internal static long? Megabytes(string value)
    {
        var text = value.Trim();
        var digits = 0;
        while (digits < text.Length && char.IsAsciiDigit(text[digits]))
        {
            digits++;
        }
        if (digits == 0 || !long.TryParse(text[..digits], NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            return null;
        }
        return text[digits..].Trim() switch
        {
            "" or "MB" => number,
            "kB" => number / 1024,
            "GB" => number * 1024,
            "TB" => number * 1024 * 1024,
            _ => null,
        };
    }

    /// <summary>primary_conninfo, primary_slot_name and recovery_target_timeline for a replica of <paramref name="upstream"/> (none: only the timeline).</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> ReplicaSettings(StewardConfig config, Upstream? upstream)
    {
        var settings = new List<KeyValuePair<string, string>>();
        if (upstream is { Stream: true })
        {
            var replication = config.Postgresql.Authentication.Replication;
            var conninfo = Conninfo(
            [
                ("host", upstream.Address.Host),
                ("port", upstream.Address.Port.ToString(CultureInfo.InvariantCulture)),
                ("user", replication.Username),
                ("passfile", config.Postgresql.Pgpass),
                ("application_name", config.Name),
                .. SslPairs(replication.Ssl),
            ]);
            settings.Add(new("primary_conninfo", conninfo));
            if (!string.IsNullOrEmpty(upstream.SlotName))
            {
                settings.Add(new("primary_slot_name", upstream.SlotName));
            }
        }
        settings.Add(new("recovery_target_timeline", "latest"));
        return settings;
    }

    /// <param name="include">The file included first: <see cref="BaseConf"/> (in the data directory) or the operator's
    /// <c>custom_conf</c> (an absolute path).</param>
    public static string RenderPostgresqlConf(IEnumerable<KeyValuePair<string, string>> parameters, IEnumerable<KeyValuePair<string, string>> replicaSettings, string include = BaseConf)
    {
        ArgumentException.ThrowIfNullOrEmpty(include);
        var text = new StringBuilder();
        text.Append(Header).Append('\n');
        text.Append("include '").Append(include).Append("'\n\n");
        foreach (var (name, value) in parameters)
        {
            text.Append(name).Append(" = ").Append(QuoteConfValue(value)).Append('\n');
        }
        text.Append("include_if_exists '").Append(SyncConf).Append("'\n");
        foreach (var (name, value) in replicaSettings)
        {
            text.Append(name).Append(" = ").Append(QuoteConfValue(value)).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>The existing postgresql.conf with the replica parameters replaced by <paramref name="replicaSettings"/>.</summary>
    public static string WithReplicaSettings(string existing, IEnumerable<KeyValuePair<string, string>> replicaSettings)
    {
        var text = new StringBuilder();
        foreach (var line in existing.Split('\n'))
        {
            if (line.Length == 0 || ReplicaParameters.Contains(ParameterName(line)))
            {
                continue;
            }
            text.Append(line).Append('\n');
            if (line.StartsWith("include ", StringComparison.Ordinal))
            {
                text.Append('\n');
            }
        }
        foreach (var (name, value) in replicaSettings)
        {
            text.Append(name).Append(" = ").Append(QuoteConfValue(value)).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>Whether a postgresql.conf line sets one of the replica parameters (primary_conninfo, …).</summary>
    public static bool IsReplicaParameter(string line) => ReplicaParameters.Contains(ParameterName(line));

    private static string ParameterName(string line)
    {
        var end = line.IndexOfAny([' ', '=', '\t']);
        return (end < 0 ? line : line[..end]).Trim().ToLowerInvariant();
    }

    /// <summary>
    /// pg_hba.conf: the local <c>postgresql.pg_hba</c>, else the cluster-wide one of <paramref name="dynamic"/> (Patroni's
    /// order), else a safe default.
    /// </summary>
    public static string RenderPgHba(StewardConfig config, DynamicConfig? dynamic = null)
    {
        IEnumerable<string> lines = config.Postgresql.PgHba.Count > 0 ? config.Postgresql.PgHba
            : dynamic?.Postgresql.PgHba is { Count: > 0 } cluster ? cluster : [];
        if (!lines.Any())
        {
            // Passwords (SCRAM) over TCP from this host only; replication only for the replication user. The agent connects
            // over TCP to postgresql.listen (samehost covers a listen address other than loopback). The unix socket admits
            // only the superuser, by peer (OS user = role name): no password, for the operator's psql as postgres.
            // With use_unix_socket the agent itself comes in over the socket, under whatever OS user it runs as: then
            // the superuser gives its password there too (peer only when it has none).
            var replication = HbaQuote(config.Postgresql.Authentication.Replication.Username);
            var superuser = HbaQuote(config.Postgresql.Authentication.Superuser.Username);
            var local = config.Postgresql.UseUnixSocket && config.Postgresql.Authentication.Superuser.Password is not null ? "scram-sha-256" : "peer";
            lines =
            [
                $"local all {superuser} {local}",
                "host all all 127.0.0.1/32 scram-sha-256",
                "host all all ::1/128 scram-sha-256",
                $"host all {superuser} samehost scram-sha-256",
                $"host replication {replication} 127.0.0.1/32 scram-sha-256",
                $"host replication {replication} ::1/128 scram-sha-256",
                $"host replication {replication} samehost scram-sha-256",
            ];
        }
        return "# Written by steward from postgresql.pg_hba (or its safe default); edits are overwritten.\n" + string.Join('\n', lines) + "\n";
    }

    /// <summary>pg_ident.conf from <c>postgresql.pg_ident</c>'s lines.</summary>
    public static string RenderPgIdent(IEnumerable<string> lines) =>
        "# Written by steward from postgresql.pg_ident; edits are overwritten.\n" + string.Concat(lines.Select(line => line + "\n"));

    /// <summary>
    /// The first directory of a <c>unix_socket_directories</c> value a client can connect through: an absolute path
    /// (an <c>@name</c> in the abstract namespace is skipped); null when there is none.
    /// </summary>
    public static string? FirstSocketDirectory(string? unixSocketDirectories) =>
        unixSocketDirectories?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => directory.Trim('"'))
            .FirstOrDefault(directory => directory.StartsWith('/'));

    /// <summary>
    /// pg_hba.conf while a custom bootstrap brings up a restored cluster: its superuser's password is the old cluster's,
    /// so the superuser may connect without one from this host only (as Patroni opens it) until Steward has set the
    /// configured password; then the normal file replaces this one.
    /// </summary>
    public static string RenderCustomBootstrapPgHba(StewardConfig config)
    {
        var superuser = HbaQuote(config.Postgresql.Authentication.Superuser.Username);
        return "# Written by steward for a custom bootstrap in progress: the superuser may connect from this host without a password.\n"
               + $"local all {superuser} trust\nhost all {superuser} samehost trust\n";
    }

    /// <summary>One <c>*:*:*:user:password</c> line per distinct user with a password.</summary>
    public static string RenderPgpass(StewardConfig config)
    {
        var auth = config.Postgresql.Authentication;
        var text = new StringBuilder();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var credentials in new[] { auth.Superuser, auth.Replication, auth.Rewind })
        {
            if (credentials?.Password is { } password && seen.Add(credentials.Username))
            {
                text.Append("*:*:*:").Append(PgpassEscape(credentials.Username)).Append(':').Append(PgpassEscape(password)).Append('\n');
            }
        }
        return text.ToString();
    }

    /// <summary>A user's SSL settings as conninfo pairs; none written: <c>sslmode=prefer</c> (libpq's default, said out loud).</summary>
    public static IEnumerable<(string Key, string Value)> SslPairs(PgSsl? ssl)
    {
        var pairs = ssl?.ConninfoPairs().ToList() ?? [];
        if (ssl?.Mode is null)
        {
            pairs.Insert(0, ("sslmode", "prefer"));
        }

        return pairs;
    }

    /// <summary>The service names in <see cref="RenderServiceFile"/>: pg_basebackup and replica methods use the first, pg_rewind the second.</summary>
    public const string ReplicationService = "steward_replication";
    public const string RewindService = "steward_rewind";

    /// <summary>The connection service file (mode 0600, next to the pgpass file) that hands pg_basebackup and pg_rewind their SSL settings.</summary>
    public static string ServiceFilePath(StewardConfig config) => config.Postgresql.Pgpass + ".service.conf";

    /// <summary>
    /// A libpq connection service file with the replication and rewind users' SSL settings: programs get
    /// <c>PGSERVICEFILE</c> and <c>PGSERVICE</c> in their environment, so an <c>sslpassword</c> never appears in argv (libpq
    /// has no environment variable for it).
    /// </summary>
    public static string RenderServiceFile(StewardConfig config)
    {
        var auth = config.Postgresql.Authentication;
        var text = new StringBuilder("# Written by steward: SSL settings of the replication and rewind users; edits are overwritten.\n");
        foreach (var (service, credentials) in new[] { (ReplicationService, auth.Replication), (RewindService, auth.Rewind ?? auth.Superuser) })
        {
            text.Append('[').Append(service).Append("]\n");
            foreach (var (key, value) in credentials.Ssl?.ConninfoPairs() ?? [])
            {
                if (value.Contains('\n', StringComparison.Ordinal) || value.Contains('\r', StringComparison.Ordinal))
                {
                    throw new PostgresException($"postgresql.authentication {key} of {credentials.Username} contains a line break, which a connection service file cannot hold");
                }

                text.Append(key).Append('=').Append(value).Append('\n');
            }
        }

        return text.ToString();
    }

    /// <summary>A postgresql.conf string literal: single quotes, with quotes doubled and backslashes escaped.</summary>
    public static string QuoteConfValue(string value) =>
        "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal) + "'";

    /// <summary>A libpq connection string, every value single-quoted with \ and ' escaped.</summary>
    public static string Conninfo(params IEnumerable<(string Key, string Value)> pairs) =>
        string.Join(' ', pairs.Select(p => p.Key + "=" + QuoteConninfoValue(p.Value)));

    public static string QuoteConninfoValue(string value) =>
        "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";

    private static string PgpassEscape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace(":", "\\:", StringComparison.Ordinal);

    private static string HbaQuote(string user) =>
        user.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') ? user : "\"" + user.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>An SQL identifier in double quotes.</summary>
    public static string QuoteIdent(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>An SQL string literal (standard_conforming_strings is on since 9.1).</summary>
    public static string QuoteLiteral(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";
}
