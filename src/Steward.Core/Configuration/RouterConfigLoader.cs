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
        if (dashboard is not null && stats is null)
        {
            diagnostics.Error(root.Origin, "dashboard", "needs stats.listen (the dashboard is served on the stats port)");
        }

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
