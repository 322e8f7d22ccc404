using Steward.Core.Cluster;

namespace Steward.Core.Configuration;

/// <summary>Reads router.yml, reporting every problem with file, line and key, like <see cref="ConfigLoader"/>.</summary>
public static class RouterConfigLoader
{
    public static RouterConfig Load(string path, IReadOnlyDictionary<string, string?>? environment = null)
    {
        string yaml;
        try
        {
            yaml = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: cannot read the router configuration: {e.Message}", e);
        }

        return Parse(yaml, path, environment);
    }

    public static RouterConfig Parse(string yaml, string sourceName, IReadOnlyDictionary<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        var diagnostics = new ConfigDiagnostics(sourceName);
        var root = YamlSection.Root(diagnostics, ConfigLoader.ReadDocument(yaml, sourceName));
        var reader = new ConfigReader(diagnostics, new ConfigEnvironment(environment ?? ConfigEnvironment.ReadProcessEnvironment()),
            Path.GetDirectoryName(Path.GetFullPath(sourceName)) ?? Directory.GetCurrentDirectory());

        var scope = reader.RequiredName(root, "scope", "SCOPE");
        var ns = reader.ReadNamespace(root);
        var etcd3 = reader.ReadEtcd3(root);

        var writeSection = root.Section("write");
        var write = new WriteListenerConfig
        {
            Listen = Address(diagnostics, writeSection, "listen", root, "write") ?? new HostPort("127.0.0.1", 5500),
            HoldTimeout = Seconds(diagnostics, writeSection, "hold_timeout", 5, 0, 3600),
            CloseSessionsOnLeaderChange = writeSection?.Bool("close_sessions_on_leader_change") ?? true,
        };
        writeSection?.Finish();

        ReadListenerConfig? read = null;
        if (root.Section("read") is { } readSection)
        {
            var maxLag = 1048576L;
            if (readSection.String("max_lag") is { } lag)
            {
                if (!ByteSize.TryParse(lag.Text, out maxLag) || maxLag < 0)
                {
                    diagnostics.Error(lag.Origin, "read.max_lag", $"expected a size such as 1048576, 16MB or 1GB, got '{lag.Text}'");
                }
            }

            var syncStandbys = SyncStandbyReads.Include;
            if (readSection.String("sync_standbys") is { } policy)
            {
                switch (policy.Text.Trim().ToLowerInvariant())
                {
                    case "include": syncStandbys = SyncStandbyReads.Include; break;
                    case "prefer": syncStandbys = SyncStandbyReads.Prefer; break;
                    case "exclude": syncStandbys = SyncStandbyReads.Exclude; break;
                    default:
                        diagnostics.Error(policy.Origin, "read.sync_standbys", $"expected include, prefer or exclude, got '{policy.Text}'");
                        break;
                }
            }

            read = new ReadListenerConfig
            {
                Listen = Address(diagnostics, readSection, "listen", root, "read") ?? new HostPort("127.0.0.1", 5501),
                MaxLag = maxLag,
                FallbackToLeader = readSection.Bool("fallback_to_leader") ?? true,
                SyncStandbys = syncStandbys,
            };
            readSection.Finish();
        }

        HostPort? stats = null;
        if (root.Section("stats") is { } statsSection)
        {
            stats = Address(diagnostics, statsSection, "listen", root, "stats");
            statsSection.Finish();
        }

        var dashboard = reader.ReadLogin(root, "dashboard", "DASHBOARD");
        var restApi = reader.ReadLogin(root, "restapi", "RESTAPI");
        var ctl = reader.ReadCtl(root, null, restApi);
        if (dashboard is not null && stats is null)
        {
            diagnostics.Error(root.Origin, "dashboard", "needs stats.listen (the dashboard is served on the stats port)");
        }

        var name = Environment.MachineName + "-" + write.Listen.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (root.String("name") is { } given)
        {
            if (given.Text.Trim().Length == 0 || given.Text.Contains('/', StringComparison.Ordinal))
            {
                diagnostics.Error(given.Origin, "name", $"expected a name without '/' (it names this router's keys in etcd), got '{given.Text}'");
            }

            name = given.Text.Trim();
        }

        var baseDirectory = Path.GetDirectoryName(Path.GetFullPath(sourceName)) ?? Directory.GetCurrentDirectory();
        var pgBouncers = ReadPgBouncers(diagnostics, root, baseDirectory);

        var config = new RouterConfig
        {
            Scope = scope,
            Namespace = ns,
            Etcd3 = etcd3,
            Write = write,
            Read = read,
            Stats = stats,
            ConnectTimeout = Seconds(diagnostics, root, "connect_timeout", 4, 0.1, 600),
            EtcdUnreachableGrace = Seconds(diagnostics, root, "etcd_unreachable_grace", 30, 0, 86400),
            Dashboard = dashboard,
            RestApi = restApi,
            Ctl = ctl,
            Name = name,
            PgBouncers = pgBouncers,
        };
        root.Finish();

        var listens = new[] { ("write.listen", (HostPort?)write.Listen), ("read.listen", read?.Listen), ("stats.listen", stats) }
            .Where(l => l.Item2 is not null).GroupBy(l => l.Item2!.Port).Where(g => g.Count() > 1);
        foreach (var clash in listens)
        {
            diagnostics.Error(root.Origin, string.Join(", ", clash.Select(c => c.Item1)), $"listen on the same port {clash.Key}");
        }

        return diagnostics.HasErrors ? throw diagnostics.ToException() : config;
    }

    /// <summary>
    /// <c>pgbouncer:</c>, a list of admin consoles: <c>host</c> (required), <c>port</c> (6432), <c>user</c> (pgbouncer),
    /// <c>password</c> or <c>passfile</c> (not both), <c>databases</c> (a list; default every database) and
    /// <c>pause_timeout</c> (seconds, default 5).
    /// </summary>
    private static List<PgBouncerConfig> ReadPgBouncers(ConfigDiagnostics diagnostics, YamlSection root, string baseDirectory)
    {
        var result = new List<PgBouncerConfig>();
        foreach (var section in root.SectionList("pgbouncer") ?? [])
        {
            var host = section.String("host");
            if (host is null || host.Value.Text.Trim().Length == 0)
            {
                diagnostics.Error(host?.Origin ?? section.Origin, section.Child("host"), "required (the address of PgBouncer's admin console: its listen_addr)");
            }

            var port = section.Long("port", 1, 65535) ?? 6432;
            var user = section.String("user");
            if (user is { } u && u.Text.Trim().Length == 0)
            {
                diagnostics.Error(u.Origin, section.Child("user"), "must not be empty (a user in PgBouncer's admin_users)");
            }

            var password = section.String("password");
            var passfile = section.String("passfile");
            string? passfilePath = null;
            if (password is not null && passfile is not null)
            {
                diagnostics.Error(passfile.Value.Origin, section.Child("passfile"), "set either password or passfile, not both");
            }
            else if (passfile is { } pf)
            {
                passfilePath = Path.IsPathRooted(pf.Text) ? pf.Text : Path.GetFullPath(Path.Combine(baseDirectory, pf.Text));
                if (!File.Exists(passfilePath))
                {
                    diagnostics.Error(pf.Origin, section.Child("passfile"), $"no such file: {passfilePath}");
                }
            }

            var databases = new List<string>();
            foreach (var db in section.List("databases", commaSeparated: true) ?? [])
            {
                // The names go into admin commands (PAUSE <db>): only plain identifiers.
                if (db.Text.Length == 0 || !db.Text.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
                {
                    diagnostics.Error(db.Origin, section.Child("databases"), $"expected database names made of letters, digits, '_', '-' and '.', got '{db.Text}'");
                }
                else
                {
                    databases.Add(db.Text);
                }
            }

            var entry = new PgBouncerConfig
            {
                Host = host?.Text.Trim() ?? "",
                Port = (int)port,
                User = user?.Text.Trim() is { Length: > 0 } name ? name : "pgbouncer",
                Password = password?.Text,
                Passfile = passfilePath,
                Databases = databases,
                PauseTimeout = Seconds(diagnostics, section, "pause_timeout", 5, 0.1, 600),
            };
            section.Finish();
            if (result.Any(r => r.Address == entry.Address))
            {
                diagnostics.Error(section.Origin, section.Path, $"{entry.Address} is listed twice");
            }

            result.Add(entry);
        }

        return result;
    }

    private static HostPort? Address(ConfigDiagnostics diagnostics, YamlSection? section, string key, YamlSection root, string sectionName)
    {
        if (section?.String(key) is not { } text)
        {
            diagnostics.Error(section?.Origin ?? root.Origin, $"{sectionName}.{key}", "required (host:port to listen on)");
            return null;
        }

        var address = ConfigValues.ParseHostPort(text.Text, null, out var problem);
        if (address is null)
        {
            diagnostics.Error(text.Origin, $"{sectionName}.{key}", problem ?? $"expected host:port, got '{text.Text}'");
        }

        return address;
    }

    private static double Seconds(ConfigDiagnostics diagnostics, YamlSection? section, string key, double fallback, double min, double max)
    {
        if (section?.String(key) is not { } text)
        {
            return fallback;
        }

        var raw = text.Text.Trim().TrimEnd('s');
        if (!double.TryParse(raw, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var value)
            || value < min || value > max)
        {
            diagnostics.Error(text.Origin, section.Child(key), $"expected seconds between {min} and {max}, got '{text.Text}'");
            return fallback;
        }

        return value;
    }
}
