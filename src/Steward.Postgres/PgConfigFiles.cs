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

    /// <summary>Our defaults, overridden by the dynamic parameters, overridden by the local ones; listen_addresses and port always follow postgresql.listen.</summary>
    public static SortedDictionary<string, string> Parameters(StewardConfig config, DynamicConfig dynamic, string socketDirectory)
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
            ["unix_socket_directories"] = socketDirectory,
        };
        foreach (var source in new[] { dynamic.Postgresql.Parameters, config.Postgresql.Parameters })
        {
            foreach (var (name, value) in source)
            {
                result[name.ToLowerInvariant()] = value;
            }
        }
        foreach (var name in Pinned.Concat(ReplicaParameters))
        {
            result.Remove(name);
        }
        result["listen_addresses"] = config.Postgresql.Listen.Host;
        result["port"] = config.Postgresql.Listen.Port.ToString(CultureInfo.InvariantCulture);
        return result;
    }

    /// <summary>primary_conninfo, primary_slot_name and recovery_target_timeline for a replica of <paramref name="upstream"/> (none: only the timeline).</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> ReplicaSettings(StewardConfig config, Upstream? upstream)
    {
        var settings = new List<KeyValuePair<string, string>>();
        if (upstream is not null)
        {
            var conninfo = Conninfo(
                ("host", upstream.Address.Host),
                ("port", upstream.Address.Port.ToString(CultureInfo.InvariantCulture)),
                ("user", config.Postgresql.Authentication.Replication.Username),
                ("passfile", config.Postgresql.Pgpass),
                ("application_name", config.Name),
                ("sslmode", "prefer"));
            settings.Add(new("primary_conninfo", conninfo));
            if (!string.IsNullOrEmpty(upstream.SlotName))
            {
                settings.Add(new("primary_slot_name", upstream.SlotName));
            }
        }
        settings.Add(new("recovery_target_timeline", "latest"));
        return settings;
    }

    public static string RenderPostgresqlConf(IEnumerable<KeyValuePair<string, string>> parameters, IEnumerable<KeyValuePair<string, string>> replicaSettings)
    {
        var text = new StringBuilder();
        text.Append(Header).Append('\n');
        text.Append("include '").Append(BaseConf).Append("'\n\n");
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

    public static string RenderPgHba(StewardConfig config)
    {
        IEnumerable<string> lines = config.Postgresql.PgHba;
        if (config.Postgresql.PgHba.Count == 0)
        {
            var replication = HbaQuote(config.Postgresql.Authentication.Replication.Username);
            lines =
            [
                "local all all peer",
                "host all all 127.0.0.1/32 scram-sha-256",
                "host all all ::1/128 scram-sha-256",
                $"host replication {replication} 127.0.0.1/32 scram-sha-256",
                $"host replication {replication} ::1/128 scram-sha-256",
            ];
        }
        return "# Written by steward from postgresql.pg_hba (or its safe default); edits are overwritten.\n" + string.Join('\n', lines) + "\n";
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

    /// <summary>A postgresql.conf string literal: single quotes, with quotes doubled and backslashes escaped.</summary>
    public static string QuoteConfValue(string value) =>
        "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal) + "'";

    /// <summary>A libpq connection string, every value single-quoted with \ and ' escaped.</summary>
    public static string Conninfo(params (string Key, string Value)[] pairs) =>
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
