using System.Globalization;
using Steward.Core.Cluster;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Steward.Core.Configuration;

/// <summary>
/// The schema: walks a parsed file section by section, applies environment overrides and defaults, and reports every
/// problem to <see cref="ConfigDiagnostics"/>. Values that failed to read are replaced by placeholders so the walk can
/// go on; <see cref="ConfigLoader"/> throws before such a config escapes.
/// </summary>
internal sealed class ConfigReader(ConfigDiagnostics diagnostics, ConfigEnvironment environment, string baseDirectory)
{
    private const string EtcdV2Message = "set either etcd3: or Patroni's etcd: (read as etcd3), not both";
    private static readonly string[] OtherStores = ["consul", "zookeeper", "kubernetes", "raft", "exhibitor"];
    private static readonly string[] LogLevels = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
    private static readonly string[] ReservedInitdbOptions = ["pgdata", "nosync", "pwfile", "sync-only", "version"];
    private static readonly string[] UnsupportedPostgresqlKeys =
    [
        "recovery_conf", "use_unix_socket_repl", "config_dir",
        "proxy_address", "use_pg_rewind", "use_slots", "bin_name", "database",
    ];

    /// <summary>
    /// libpq options of Patroni's users that Steward does not pass on: the CRL files have no equivalent in Npgsql (the
    /// agent's own connections), the rest are rarely used.
    /// </summary>
    private static readonly string[] UnsupportedCredentialKeys = ["sslcrl", "sslcrldir", "sslnegotiation", "gssencmode", "channel_binding"];

    private static readonly HostPort Placeholder = new("", 1);

    public StewardConfig Read(YamlSection root, string sourceName)
    {
        var scope = RequiredName(root, "scope", "SCOPE");
        var name = RequiredName(root, "name", "NAME");
        var ns = ReadNamespace(root);
        var restApi = ReadRestApi(root);
        var ctl = ReadCtl(root, restApi, restApi.Authentication);
        var etcd3 = ReadEtcd3(root);
        var bootstrap = ReadBootstrap(root.Section("bootstrap"));
        var postgresql = ReadPostgresql(root, name);
        var tags = ReadTags(root.Section("tags"));
        var log = ReadLog(root.Section("log"));
        ReadWatchdog(root.Section("watchdog"));
        root.Unsupported("citus");
        root.Finish();

        return new StewardConfig
        {
            Scope = scope,
            Namespace = ns,
            Name = name,
            RestApi = restApi,
            Ctl = ctl,
            Etcd3 = etcd3,
            Bootstrap = bootstrap,
            Postgresql = postgresql,
            Tags = tags,
            Log = log,
            SourcePath = sourceName,
            Warnings = diagnostics.Warnings.ToList(),
        };
    }

    /// <summary>
    /// Patroni's <c>watchdog</c>: Steward drives no hardware watchdog (its fence process covers a dead or frozen agent,
    /// docs/agent.md). <c>off</c> is accepted; <c>automatic</c> means "use one if available", and none is: a warning, as
    /// Patroni gives when it finds no device; <c>required</c> cannot be honoured and is refused.
    /// </summary>
    private void ReadWatchdog(YamlSection? watchdog)
    {
        if (watchdog is null)
        {
            return;
        }

        var mode = watchdog.String("mode");
        _ = watchdog.String("device");
        _ = watchdog.String("safety_margin");
        _ = watchdog.String("driver");
        watchdog.Finish();
        switch (mode?.Text.ToLowerInvariant())
        {
            case "off" or "false" or "no":
                break;
            case null or "automatic" or "auto":
                diagnostics.Warning($"{watchdog.Child("mode")}: {(mode is null ? "not set (Patroni's default is automatic)" : "automatic")}: Steward drives no hardware watchdog; continuing without one "
                                    + "(as Patroni does when no watchdog device is available). The fence process still kills a primary "
                                    + "whose agent dies or freezes (docs/agent.md)");
                break;
            case "required" or "require":
                diagnostics.Error(mode.Value.Origin, watchdog.Child("mode"),
                    "required: Steward drives no hardware watchdog, so it cannot promise one; set mode: off (the fence process still "
                    + "kills a primary whose agent dies or freezes, docs/agent.md)");
                break;
            default:
                diagnostics.Error(mode.Value.Origin, watchdog.Child("mode"), $"'{mode.Value.Text}' is not one of off, automatic, required");
                break;
        }
    }

    /// <summary>
    /// The file's value is always read (so a bad one is still reported and the key is not "unknown"), but a value from
    /// the environment wins.
    /// </summary>
    private Located? Setting(YamlSection? section, string key, string variable) =>
        Override(section?.String(key), environment.Find(variable));

    private static Located? Override(Located? fileValue, Located? environmentValue) => environmentValue ?? fileValue;

    private void Missing(Origin origin, string path, string? variable = null) =>
        diagnostics.Error(origin, path, variable is null ? "required key is missing" : $"required key is missing (or set STEWARD_{variable})");

    internal string RequiredName(YamlSection root, string key, string variable)
    {
        if (Setting(root, key, variable) is not { } value)
        {
            Missing(root.Origin, key, variable);
            return "";
        }

        if (value.Text.Trim().Length == 0)
        {
            diagnostics.Error(value.Origin, key, "must not be empty");
        }
        else if (value.Text.Contains('/', StringComparison.Ordinal))
        {
            diagnostics.Error(value.Origin, key, $"must not contain '/', got '{value.Text}'");
        }

        return value.Text;
    }

    internal string ReadNamespace(YamlSection root)
    {
        if (Setting(root, "namespace", "NAMESPACE") is not { } value)
        {
            return "/service/";
        }

        var trimmed = value.Text.Trim().Trim('/');
        return trimmed.Length == 0 ? "/" : $"/{trimmed}/";
    }

    private HostPort Address(Located? value, string path, bool allowHostList = false)
    {
        if (value is not { } text)
        {
            return Placeholder;
        }

        var parsed = allowHostList
            ? ConfigValues.ParseListen(text.Text, out var problem)
            : ConfigValues.ParseHostPort(text.Text, null, out problem);
        if (parsed is null)
        {
            diagnostics.Error(text.Origin, path, problem!);
            return Placeholder;
        }

        return parsed;
    }

    /// <summary>connect_address defaults to listen, unless listen cannot be connected to (a wildcard or a host list).</summary>
    private HostPort ConnectAddress(YamlSection section, HostPort listen, Located? listenText)
    {
        var path = section.Child("connect_address");
        if (section.String("connect_address") is { } written)
        {
            var address = Address(written, path);
            if (ConfigValues.IsWildcard(address.Host) && address != Placeholder)
            {
                diagnostics.Error(written.Origin, path, $"must be an address other machines can connect to, got '{written.Text}'");
            }

            return address;
        }

        if (listenText is not null && listen != Placeholder
            && (ConfigValues.IsWildcard(listen.Host) || listen.Host.Contains(',', StringComparison.Ordinal)))
        {
            diagnostics.Error(section.Origin, path, $"required because listen '{listenText.Value.Text}' is not an address other machines can connect to");
        }

        return listen;
    }

    private RestApiConfig ReadRestApi(YamlSection root)
    {
        var section = root.Section("restapi");
        if (section is null)
        {
            Missing(root.Origin, "restapi");
        }

        var listenText = section?.String("listen");
        if (section is not null && listenText is null)
        {
            Missing(section.Origin, section.Child("listen"));
        }

        var listen = Address(listenText, "restapi.listen");
        var connect = section is null ? listen : ConnectAddress(section, listen, listenText);

        var authSection = section?.Section("authentication");
        var username = Setting(authSection, "username", "RESTAPI_USERNAME");
        var password = Setting(authSection, "password", "RESTAPI_PASSWORD");
        authSection?.Finish();
        Credentials? authentication = null;
        if (username is not null || password is not null)
        {
            var origin = authSection?.Origin ?? section?.Origin ?? root.Origin;
            if (username is null)
            {
                Missing(origin, "restapi.authentication.username", "RESTAPI_USERNAME");
            }

            if (password is null)
            {
                Missing(origin, "restapi.authentication.password", "RESTAPI_PASSWORD");
            }

            authentication = new Credentials(username?.Text ?? "", password?.Text);
        }

        var certFile = FileSetting(section, "certfile", "RESTAPI_CERTFILE", "restapi.certfile");
        var keyFile = FileSetting(section, "keyfile", "RESTAPI_KEYFILE", "restapi.keyfile");
        var keyPassword = Setting(section, "keyfile_password", "RESTAPI_KEYFILE_PASSWORD");
        var caFile = FileSetting(section, "cafile", "RESTAPI_CAFILE", "restapi.cafile");
        var verifyClient = ReadVerifyClient(section, certFile, caFile);
        if (certFile is null && (keyFile is not null || keyPassword is not null))
        {
            diagnostics.Error((section ?? root).Origin, "restapi.certfile", "required when restapi.keyfile or keyfile_password is set (the server certificate, PEM)");
        }

        var allowlist = new List<string>();
        foreach (var entry in section?.List("allowlist", commaSeparated: true) ?? [])
        {
            if (AllowlistEntry.TryParse(entry.Text, out _, out var problem))
            {
                allowlist.Add(entry.Text.Trim());
            }
            else
            {
                diagnostics.Error(entry.Origin, "restapi.allowlist", problem!);
            }
        }

        var includeMembers = section?.Bool("allowlist_include_members") ?? false;

        // ciphers: an OpenSSL cipher string .NET cannot take as such; the system's OpenSSL defaults apply (a warning).
        section?.Unsupported("ciphers", "http_extra_headers", "https_extra_headers", "request_queue_size", "server_tokens");
        section?.Finish();
        return new RestApiConfig
        {
            Listen = listen,
            ConnectAddress = connect,
            Authentication = authentication,
            CertFile = certFile,
            KeyFile = keyFile,
            KeyFilePassword = keyPassword?.Text,
            CaFile = caFile,
            VerifyClient = verifyClient,
            Allowlist = allowlist,
            AllowlistIncludeMembers = includeMembers,
        };
    }

    private VerifyClient ReadVerifyClient(YamlSection? section, string? certFile, string? caFile)
    {
        if (Setting(section, "verify_client", "RESTAPI_VERIFY_CLIENT") is not { } written)
        {
            return VerifyClient.None;
        }

        var mode = written.Text.Trim().ToLowerInvariant() switch
        {
            "none" => VerifyClient.None,
            "optional" => VerifyClient.Optional,
            "required" => VerifyClient.Required,
            _ => (VerifyClient?)null,
        };
        if (mode is null)
        {
            diagnostics.Error(written.Origin, "restapi.verify_client", $"expected none, optional or required, got '{written.Text}'");
            return VerifyClient.None;
        }

        if (mode != VerifyClient.None && certFile is null)
        {
            diagnostics.Error(written.Origin, "restapi.verify_client", $"{written.Text} needs restapi.certfile (client certificates are checked over TLS only)");
        }
        else if (mode != VerifyClient.None && caFile is null)
        {
            diagnostics.Error(written.Origin, "restapi.verify_client", $"{written.Text} needs restapi.cafile (the CA that signs the clients' certificates)");
        }

        return mode.Value;
    }

    /// <summary>A file named by <paramref name="key"/> (or its environment variable), made absolute; it must exist.</summary>
    private string? FileSetting(YamlSection? section, string key, string variable, string path)
    {
        if (Setting(section, key, variable) is not { } written)
        {
            return null;
        }

        if (written.Text.Trim().Length == 0)
        {
            diagnostics.Error(written.Origin, path, "must not be empty");
            return null;
        }

        var file = AbsolutePath(written.Text.Trim());
        if (!File.Exists(file))
        {
            diagnostics.Error(written.Origin, path, $"no such file: {file}");
        }

        return file;
    }

    /// <summary>
    /// Patroni's <c>ctl</c> section: how this node's clients call the REST API. As in Patroni, <c>cacert</c> falls back to
    /// <c>restapi.cafile</c>, <c>authentication</c> to <c>restapi.authentication</c>, and the client certificate to the
    /// node's own <c>restapi.certfile</c> (so agents present it to each other when <c>verify_client</c> asks).
    /// </summary>
    internal RestClientConfig ReadCtl(YamlSection root, RestApiConfig? restApi, Credentials? fallbackAuthentication)
    {
        var section = root.Section("ctl");
        var insecure = Setting(section, "insecure", "CTL_INSECURE") is { } flag ? (section ?? root).ParseBool(flag, "ctl.insecure") ?? false : false;
        var caCert = FileSetting(section, "cacert", "CTL_CACERT", "ctl.cacert");
        var certFile = FileSetting(section, "certfile", "CTL_CERTFILE", "ctl.certfile");
        var keyFile = FileSetting(section, "keyfile", "CTL_KEYFILE", "ctl.keyfile");
        var keyPassword = Setting(section, "keyfile_password", "CTL_KEYFILE_PASSWORD");
        if (certFile is null && (keyFile is not null || keyPassword is not null))
        {
            diagnostics.Error((section ?? root).Origin, "ctl.certfile", "required when ctl.keyfile or keyfile_password is set (the client certificate, PEM)");
        }

        Credentials? authentication = null;
        if (section is not null)
        {
            authentication = ReadLogin(section, "authentication", "CTL");
            section.Finish();
        }

        var fromRestApi = certFile is null && restApi?.CertFile is not null;
        return new RestClientConfig
        {
            Insecure = insecure,
            CaCert = caCert ?? restApi?.CaFile,
            CertFile = fromRestApi ? restApi!.CertFile : certFile,
            KeyFile = fromRestApi ? restApi!.KeyFile : keyFile,
            KeyFilePassword = fromRestApi ? restApi!.KeyFilePassword : keyPassword?.Text,
            Authentication = authentication ?? fallbackAuthentication,
            CertSource = fromRestApi ? "restapi" : "ctl",
        };
    }

    /// <summary>
    /// An optional <c>key: {username, password}</c> section (env <c>STEWARD_{variable}_USERNAME</c> / <c>_PASSWORD</c> win):
    /// null when absent; both keys required, the password not empty, when present.
    /// </summary>
    internal Credentials? ReadLogin(YamlSection root, string key, string variable)
    {
        var section = root.Section(key);
        var username = Setting(section, "username", variable + "_USERNAME");
        var password = Setting(section, "password", variable + "_PASSWORD");
        section?.Finish();
        if (section is null && username is null && password is null)
        {
            return null;
        }

        var origin = section?.Origin ?? root.Origin;
        if (username is not { } user || user.Text.Trim().Length == 0)
        {
            diagnostics.Error(username?.Origin ?? origin, $"{key}.username", $"required when {key} is set (or set STEWARD_{variable}_USERNAME)");
        }

        if (password is not { } secret || secret.Text.Length == 0)
        {
            diagnostics.Error(password?.Origin ?? origin, $"{key}.password", $"required and not empty when {key} is set (or set STEWARD_{variable}_PASSWORD)");
        }

        return new Credentials(username?.Text ?? "", password?.Text);
    }

    internal Etcd3Config ReadEtcd3(YamlSection root)
    {
        // Patroni's `etcd:` speaks etcd's v2 API. Every etcd Steward supports (3.4+) serves v3 on the same client port, so
        // the section is read as etcd3 — a Patroni config starts as it is — and the one difference is said: keys Patroni
        // wrote through v2 live in another keyspace. Both sections at once would be ambiguous.
        var section = root.Section("etcd3");
        if (root.KeyNode("etcd") is { } etcdV2)
        {
            if (section is not null)
            {
                diagnostics.Error(Origin.Of(etcdV2), "etcd", EtcdV2Message);
            }
            else
            {
                diagnostics.Warning($"{root.Section("etcd")?.Path ?? "etcd"}: read as etcd3: Steward speaks etcd's v3 API to these hosts (etcd 3.4+ serves it on the same port); "
                                    + "keys Patroni wrote through the v2 API are in another keyspace and are not seen (rename the section to etcd3: to silence this)");
                section = root.Section("etcd");
            }
        }

        foreach (var store in OtherStores)
        {
            if (root.KeyNode(store) is { } other)
            {
                diagnostics.Error(Origin.Of(other), store, $"only etcd3 is supported; Steward cannot use {store}");
            }
        }

        var endpoints = new List<string>();
        ReadEtcdEndpoints(section, endpoints);
        if (environment.Find("ETCD3_HOSTS") is { } hosts)
        {
            endpoints.Clear();
            foreach (var item in ConfigValues.SplitEnvironmentList(hosts.Text))
            {
                AddEtcdHost(hosts with { Text = item }, "etcd3.hosts", endpoints);
            }
        }
        else if (section is null && root.KeyNode("etcd") is null && !OtherStores.Any(store => root.KeyNode(store) is not null))
        {
            Missing(root.Origin, "etcd3", "ETCD3_HOSTS");
        }

        var caCert = FileSetting(section, "cacert", "ETCD3_CACERT", "etcd3.cacert");
        var cert = FileSetting(section, "cert", "ETCD3_CERT", "etcd3.cert");
        var key = FileSetting(section, "key", "ETCD3_KEY", "etcd3.key");
        var keyPassword = Setting(section, "key_password", "ETCD3_KEY_PASSWORD");
        if (cert is null && (key is not null || keyPassword is not null))
        {
            diagnostics.Error((section ?? root).Origin, "etcd3.cert", "required when etcd3.key or key_password is set (the client certificate, PEM)");
        }

        // TLS when asked for (protocol: https, an https:// URL) or implied by a CA or client certificate.
        var protocol = Setting(section, "protocol", "ETCD3_PROTOCOL");
        var https = protocol?.Text.Trim().ToLowerInvariant() switch
        {
            null => endpoints.Any(e => e.StartsWith("https://", StringComparison.Ordinal)) || caCert is not null || cert is not null,
            "https" => true,
            "http" => false,
            _ => (bool?)null,
        };
        if (https is null)
        {
            diagnostics.Error(protocol!.Value.Origin, "etcd3.protocol", $"expected http or https, got '{protocol.Value.Text}'");
        }
        else if (https == false && (caCert is not null || cert is not null))
        {
            diagnostics.Error(protocol!.Value.Origin, "etcd3.protocol", "is http, but etcd3.cacert or etcd3.cert is set: set protocol: https (or remove them)");
        }

        var byUrl = section?.KeyNode("url") is not null || section?.KeyNode("urls") is not null;
        if (byUrl && endpoints.Any(e => e.StartsWith("https://", StringComparison.Ordinal)) && endpoints.Any(e => e.StartsWith("http://", StringComparison.Ordinal)))
        {
            diagnostics.Error((section ?? root).Origin, "etcd3.urls", "mixes http:// and https:// endpoints: use one protocol for every etcd endpoint");
        }
        else if (byUrl && https == true && protocol is not null && endpoints.Any(e => e.StartsWith("http://", StringComparison.Ordinal)))
        {
            diagnostics.Error(protocol.Value.Origin, "etcd3.protocol", "is https, but the etcd3 URLs are http://: make them agree");
        }

        if (https == true)
        {
            for (var i = 0; i < endpoints.Count; i++)
            {
                endpoints[i] = "https://" + endpoints[i][(endpoints[i].IndexOf("://", StringComparison.Ordinal) + 3)..];
            }
        }

        var username = Setting(section, "username", "ETCD3_USERNAME");
        var password = Setting(section, "password", "ETCD3_PASSWORD");
        if ((username is null) != (password is null))
        {
            var (given, missing) = username is null ? ("password", "username") : ("username", "password");
            diagnostics.Error((username ?? password)!.Value.Origin, $"etcd3.{missing}", $"required when etcd3.{given} is set");
        }

        section?.Unsupported("srv", "srv_suffix", "proxy", "use_proxies", "retry_timeout");
        section?.Finish();
        return new Etcd3Config
        {
            Endpoints = endpoints,
            Username = username?.Text,
            Password = password?.Text,
            CaCert = caCert,
            Cert = cert,
            Key = key,
            KeyPassword = keyPassword?.Text,
        };
    }

    private void ReadEtcdEndpoints(YamlSection? section, List<string> endpoints)
    {
        if (section is null)
        {
            return;
        }

        var written = new[] { "hosts", "host", "url", "urls" }.Where(key => section.KeyNode(key) is not null).ToList();
        if (written.Count > 1)
        {
            diagnostics.Error(section.Origin, "etcd3", $"set only one of hosts, host, url or urls (found {string.Join(", ", written)})");
        }

        foreach (var host in section.List("hosts", commaSeparated: true) ?? [])
        {
            AddEtcdHost(host, "etcd3.hosts", endpoints);
        }

        if (section.String("host") is { } single)
        {
            AddEtcdHost(single, "etcd3.host", endpoints);
        }

        var urls = (section.String("url") is { } url ? [url] : new List<Located>()).Concat(section.List("urls", commaSeparated: true) ?? []);
        foreach (var item in urls)
        {
            if (ConfigValues.ParseEtcdUrl(item.Text, out var problem) is { } endpoint)
            {
                endpoints.Add(endpoint);
            }
            else
            {
                diagnostics.Error(item.Origin, written.Contains("url") ? "etcd3.url" : "etcd3.urls", problem!);
            }
        }

        if (written.Count == 0 && environment.Find("ETCD3_HOSTS") is null)
        {
            diagnostics.Error(section.Origin, "etcd3", "one of hosts, host, url or urls is required");
        }
    }

    private void AddEtcdHost(Located host, string path, List<string> endpoints)
    {
        if (ConfigValues.ParseHostPort(host.Text, ConfigValues.EtcdPort, out var problem) is { } endpoint)
        {
            endpoints.Add(ConfigValues.EtcdEndpoint(endpoint));
        }
        else
        {
            diagnostics.Error(host.Origin, path, problem!);
        }
    }

    private BootstrapConfig ReadBootstrap(YamlSection? section)
    {
        if (section is null)
        {
            return new BootstrapConfig();
        }

        var dcs = ReadDcs(section.Section("dcs"));
        var initdb = ReadInitdb(section);
        CustomBootstrap? custom = null;
        if (section.String("method") is { } method && method.Text != "initdb")
        {
            custom = ReadCustomBootstrap(section, method);
        }

        var postBootstrap = Command(section, "post_bootstrap");
        var postInit = Command(section, "post_init");
        if (postBootstrap is not null && postInit is not null)
        {
            diagnostics.Error(section.Origin, section.Child("post_init"), "set either post_bootstrap or post_init (its older name), not both");
        }

        section.Unsupported("users", "pg_hba");
        section.Finish();
        return new BootstrapConfig { Dcs = dcs, Initdb = initdb, Method = custom, PostBootstrap = postBootstrap ?? postInit };
    }

    private static readonly string[] ReservedBootstrapArguments = ["scope", "datadir"];

    /// <summary>
    /// <c>bootstrap.method: name</c> and its <c>bootstrap.name</c> section. Patroni runs initdb when the section or its
    /// command is missing; Steward refuses to start instead: a user who asked to restore a backup must never silently
    /// get an empty cluster.
    /// </summary>
    private CustomBootstrap? ReadCustomBootstrap(YamlSection bootstrap, Located method)
    {
        var path = bootstrap.Child(method.Text);
        if (method.Text is "dcs" or "users" or "pg_hba" or "post_bootstrap" or "post_init")
        {
            diagnostics.Error(method.Origin, bootstrap.Child("method"), $"'{method.Text}' is a key of bootstrap, not a bootstrap method");
            return null;
        }

        if (bootstrap.Section(method.Text) is not { } section)
        {
            diagnostics.Error(method.Origin, bootstrap.Child("method"),
                $"{method.Text}: no {path} section with its command; Steward does not fall back to initdb (set method: initdb, or add {path}.command)");
            return null;
        }

        IReadOnlyList<string>? command = null;
        if (section.String("command") is not { } text)
        {
            diagnostics.Error(section.Origin, section.Child("command"), "required: the command that fills the data directory (Steward does not fall back to initdb)");
        }
        else if (ShellWords.Split(text.Text, out var problem) is not { Count: > 0 } words)
        {
            diagnostics.Error(text.Origin, section.Child("command"), problem ?? "is empty");
        }
        else
        {
            command = words;
        }

        var noParams = section.Bool("no_params") ?? false;
        var keep = section.Bool("keep_existing_recovery_conf") ?? false;
        Dictionary<string, string>? recovery = null;
        if (section.Section("recovery_conf") is { } recoverySection)
        {
            recovery = ReadParameters(recoverySection);
        }

        var extra = new List<string>();
        foreach (var (key, value) in section.Entries().ToList())
        {
            if (key.Text is "command" or "no_params" or "keep_existing_recovery_conf" or "recovery_conf")
            {
                continue;
            }

            if (ReservedBootstrapArguments.Contains(key.Text, StringComparer.Ordinal))
            {
                continue; // Patroni drops them too: --scope and --datadir are its own
            }

            if (value is YamlScalarNode { Value: { } scalar } && !YamlSection.IsNull(value))
            {
                extra.Add($"--{key.Text}={scalar}");
            }
            else
            {
                diagnostics.Error(Origin.Of(value), section.Child(key.Text), $"expected a single value (passed as --{key.Text}=value), got {YamlSection.Describe(value)}");
            }
        }

        section.Finish();
        return command is null
            ? null
            : new CustomBootstrap
            {
                Name = method.Text,
                Command = command,
                NoParams = noParams,
                KeepExistingRecoveryConf = keep,
                RecoveryConf = recovery,
                ExtraArguments = extra,
            };
    }

    private DynamicConfig ReadDcs(YamlSection? section)
    {
        var defaults = new DynamicConfig();
        if (section is null)
        {
            return defaults;
        }

        var ttl = section.Int("ttl", 1) ?? defaults.Ttl;
        var loopWait = section.Int("loop_wait", 1) ?? defaults.LoopWait;
        var retryTimeout = section.Int("retry_timeout", 1) ?? defaults.RetryTimeout;
        if (DynamicConfigJson.TimingWarning(new DynamicConfig { Ttl = ttl, LoopWait = loopWait, RetryTimeout = retryTimeout }) is { } timing)
        {
            diagnostics.Warning($"{section.Path}: {timing}");
        }

        var primary = section.Int("primary_start_timeout", 0);
        var master = section.Int("master_start_timeout", 0);
        if (primary is not null && master is not null)
        {
            diagnostics.Error(section.Origin, section.Path, "set primary_start_timeout or its old name master_start_timeout, not both");
        }

        var quorum = section.String("synchronous_mode") is { Text: "quorum" };
        var synchronous = section.String("synchronous_mode") is { } mode
            ? quorum ? true : section.ParseBool(mode, section.Child("synchronous_mode"))
            : null;
        var postgresql = section.Section("postgresql");
        var dynamicPostgres = new DynamicPostgresConfig();
        if (postgresql is not null)
        {
            dynamicPostgres = new DynamicPostgresConfig
            {
                UsePgRewind = postgresql.Bool("use_pg_rewind") ?? dynamicPostgres.UsePgRewind,
                UseSlots = postgresql.Bool("use_slots") ?? dynamicPostgres.UseSlots,
                Parameters = ReadParameters(postgresql.Section("parameters")),
                PgHba = postgresql.List("pg_hba", commaSeparated: false)?.Select(line => line.Text).ToList() is { Count: > 0 } hba ? hba : null,
            };
            postgresql.Unsupported("recovery_conf", "pg_ident");
            postgresql.Finish();
        }

        var result = new DynamicConfig
        {
            Ttl = ttl,
            LoopWait = loopWait,
            RetryTimeout = retryTimeout,
            MaximumLagOnFailover = section.Long("maximum_lag_on_failover", 0) ?? defaults.MaximumLagOnFailover,
            PrimaryStartTimeout = primary ?? master ?? defaults.PrimaryStartTimeout,
            SynchronousMode = synchronous ?? defaults.SynchronousMode,
            SynchronousModeQuorum = quorum,
            SynchronousModeStrict = section.Bool("synchronous_mode_strict") ?? defaults.SynchronousModeStrict,
            SynchronousNodeCount = section.Int("synchronous_node_count", 1) ?? defaults.SynchronousNodeCount,
            MaximumLagOnSyncnode = section.Long("maximum_lag_on_syncnode", -1) ?? defaults.MaximumLagOnSyncnode,
            Pause = section.Bool("pause") ?? defaults.Pause,
            FailsafeMode = section.Bool("failsafe_mode") ?? defaults.FailsafeMode,
            MemberSlotsTtl = ReadDuration(section, "member_slots_ttl") ?? defaults.MemberSlotsTtl,
            Postgresql = dynamicPostgres,
        };
        if (section.Section("standby_cluster") is { } standby)
        {
            result = result with { StandbyCluster = ReadStandbyCluster(standby) };
            if (result.StandbyCluster is not null && result.SynchronousMode)
            {
                diagnostics.Warning($"{section.Child("synchronous_mode")}: ignored in a standby cluster (its standby leader replicates from the remote primary; as Patroni)");
            }
        }

        // Permanent slots and ignore_slots: kept as JSON (as the config key holds them) and checked as an operator's edit is.
        var slotsNode = section.Take("slots");
        var ignoreNode = section.Take("ignore_slots");
        result = result with
        {
            Slots = slotsNode is null ? null : YamlToJson(slotsNode),
            IgnoreSlots = ignoreNode is null ? null : YamlToJson(ignoreNode),
        };
        foreach (var problem in SlotSettings.Read(result).Problems)
        {
            var key = problem.StartsWith("ignore_slots", StringComparison.Ordinal) ? "ignore_slots" : "slots";
            diagnostics.Error(Origin.Of((key == "slots" ? slotsNode : ignoreNode)!), section.Child(problem[..problem.IndexOf(':', StringComparison.Ordinal)]),
                problem[(problem.IndexOf(':', StringComparison.Ordinal) + 2)..]);
        }

        section.Unsupported(
            "check_timeline", "max_timelines_history", "primary_stop_timeout", "master_stop_timeout");
        section.Finish();
        return result;
    }

    /// <summary><c>bootstrap.dcs.standby_cluster</c>: checked as the <c>config</c> key's (<see cref="DynamicConfigJson.StandbyClusterProblem"/>).</summary>
    private StandbyClusterConfig? ReadStandbyCluster(YamlSection standby)
    {
        if (standby.KeyNode("create_replica_methods") is { } methods)
        {
            diagnostics.Error(Origin.Of(methods), standby.Child("create_replica_methods"),
                "not implemented: the standby leader clones from standby_cluster.host with pg_basebackup or the member's postgresql.create_replica_methods");
            _ = standby.List("create_replica_methods", commaSeparated: true);
        }

        var config = new StandbyClusterConfig
        {
            Host = standby.String("host")?.Text ?? "",
            Port = standby.Int("port", 1) ?? 5432,
            PrimarySlotName = standby.String("primary_slot_name")?.Text,
            RestoreCommand = standby.String("restore_command")?.Text,
            ArchiveCleanupCommand = standby.String("archive_cleanup_command")?.Text,
            RecoveryMinApplyDelay = standby.String("recovery_min_apply_delay")?.Text,
        };
        standby.Finish();
        if (DynamicConfigJson.StandbyClusterProblem(config) is { } problem)
        {
            diagnostics.Error(standby.Origin, "bootstrap.dcs", problem);
            return null;
        }

        return config;
    }

    /// <summary>A YAML value as JSON: mappings and lists as such, scalars as text (YAML null as JSON null).</summary>
    private static System.Text.Json.JsonElement YamlToJson(YamlNode node)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            Write(writer, node);
        }

        using var document = System.Text.Json.JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();

        static void Write(System.Text.Json.Utf8JsonWriter writer, YamlNode node)
        {
            switch (node)
            {
                case YamlMappingNode mapping:
                    writer.WriteStartObject();
                    foreach (var (key, value) in mapping.Children)
                    {
                        writer.WritePropertyName(key is YamlScalarNode { Value: { } name } ? name : key.ToString());
                        Write(writer, value);
                    }

                    writer.WriteEndObject();
                    break;
                case YamlSequenceNode sequence:
                    writer.WriteStartArray();
                    foreach (var item in sequence.Children)
                    {
                        Write(writer, item);
                    }

                    writer.WriteEndArray();
                    break;
                case YamlScalarNode scalar when YamlSection.IsNull(scalar):
                    writer.WriteNullValue();
                    break;
                case YamlScalarNode scalar:
                    writer.WriteStringValue(scalar.Value);
                    break;
                default:
                    writer.WriteNullValue();
                    break;
            }
        }
    }

    private long? ReadDuration(YamlSection section, string key)
    {
        if (section.String(key) is not { } value)
        {
            return null;
        }

        if (DurationText.TryParseSeconds(value.Text, out var seconds) && seconds >= 0)
        {
            return seconds;
        }

        diagnostics.Error(value.Origin, section.Child(key), $"'{value.Text}' is not a duration (seconds, or e.g. 30min, 1h)");
        return null;
    }

    /// <summary>Patroni's initdb list: <c>- data-checksums</c> → <c>--data-checksums</c>, <c>- encoding: UTF8</c> → <c>--encoding=UTF8</c>.</summary>
    private List<string> ReadInitdb(YamlSection bootstrap) => ReadOptionList(bootstrap, "initdb", ReservedInitdbOptions, "is set by Steward and cannot be given here");

    private static readonly string[] CallbackActions = ["on_start", "on_stop", "on_restart", "on_reload", "on_role_change"];

    /// <summary>A command setting split like a shell would (<see cref="ShellWords"/>); null when absent or unusable (reported).</summary>
    private IReadOnlyList<string>? Command(YamlSection section, string key)
    {
        if (section.String(key) is not { } text)
        {
            return null;
        }

        if (ShellWords.Split(text.Text, out var problem) is { Count: > 0 } words)
        {
            return words;
        }

        diagnostics.Error(text.Origin, section.Child(key), problem ?? "is empty");
        return null;
    }

    private static readonly string[] ReservedBasebackupOptions =
        ["pgdata", "D", "format", "F", "wal-method", "X", "xlog-method", "gzip", "z", "version", "dbname", "d", "host", "h", "port", "p", "username", "U", "password", "W", "no-password", "w"];

    /// <summary>
    /// Patroni's <c>postgresql.create_replica_methods</c>: each name but <c>basebackup</c> needs a section with a command.
    /// A name without one stops start-up (Patroni would run the name itself as the command; a typo there would fail each
    /// clone at run time, a missing section here is said at once).
    /// </summary>
    private List<ReplicaMethod?> ReadReplicaMethods(YamlSection postgresql)
    {
        var methods = new List<ReplicaMethod?>();
        foreach (var name in postgresql.List("create_replica_methods", commaSeparated: true) ?? [])
        {
            if (name.Text == "basebackup")
            {
                methods.Add(null);
                continue;
            }

            var path = postgresql.Child(name.Text);
            if (postgresql.Section(name.Text) is not { } section)
            {
                diagnostics.Error(name.Origin, postgresql.Child("create_replica_methods"), $"{name.Text}: no {path} section with its command");
                continue;
            }

            IReadOnlyList<string>? command = null;
            if (section.String("command") is not { } text)
            {
                diagnostics.Error(section.Origin, section.Child("command"), "required: the command that creates the replica's data directory");
            }
            else if (ShellWords.Split(text.Text, out var problem) is not { Count: > 0 } words)
            {
                diagnostics.Error(text.Origin, section.Child("command"), problem ?? "is empty");
            }
            else
            {
                command = words;
            }

            var noParams = section.Bool("no_params") ?? false;
            var keepData = section.Bool("keep_data") ?? false;
            if (section.KeyNode("no_leader") is not null)
            {
                // Patroni may then create a replica while no leader exists; Steward clones only from a running leader.
                section.Unsupported("no_leader");
                _ = section.String("no_leader");
            }

            var extra = new List<string>();
            foreach (var (key, value) in section.Entries().ToList())
            {
                if (key.Text is "command" or "no_params" or "keep_data" or "no_leader")
                {
                    continue;
                }

                if (value is YamlScalarNode { Value: { } scalar } && !YamlSection.IsNull(value))
                {
                    extra.Add($"--{key.Text}={scalar}");
                }
                else
                {
                    diagnostics.Error(Origin.Of(value), section.Child(key.Text), $"expected a single value (passed as --{key.Text}=value), got {YamlSection.Describe(value)}");
                }
            }

            section.Finish();
            if (command is not null)
            {
                methods.Add(new ReplicaMethod { Name = name.Text, Command = command, NoParams = noParams, KeepData = keepData, ExtraArguments = extra });
            }
        }

        return methods;
    }

    /// <summary>A list (or mapping) of program options in Patroni's shape: <c>- verbose</c>, <c>- max-rate: 100M</c>.</summary>
    private List<string> ReadOptionList(YamlSection parent, string key, string[] reserved, string reservedMessage)
    {
        var path = parent.Child(key);
        var options = new List<string>();
        void Add(string name, string? value, Origin origin)
        {
            var option = name.TrimStart('-');
            if (reserved.Contains(option, StringComparer.Ordinal))
            {
                diagnostics.Error(origin, path, $"--{option} {reservedMessage}");
            }

            options.Add(value is null ? $"--{option}" : $"--{option}={value}");
        }

        void AddPairs(YamlMappingNode mapping)
        {
            foreach (var (key, value) in mapping.Children)
            {
                if (key is YamlScalarNode { Value: { } name } && value is YamlScalarNode scalar)
                {
                    Add(name, scalar.Value, Origin.Of(key));
                }
                else
                {
                    diagnostics.Error(Origin.Of(value), path, $"expected 'option: value', got {YamlSection.Describe(value)}");
                }
            }
        }

        switch (parent.Take(key))
        {
            case null:
                break;
            case YamlSequenceNode list:
                foreach (var item in list)
                {
                    switch (item)
                    {
                        case YamlScalarNode { Value: { Length: > 0 } name }:
                            Add(name, null, Origin.Of(item));
                            break;
                        case YamlMappingNode { Children.Count: 1 } pair:
                            AddPairs(pair);
                            break;
                        default:
                            diagnostics.Error(Origin.Of(item), path, $"expected an option name or one 'option: value' pair, got {YamlSection.Describe(item)}");
                            break;
                    }
                }

                break;
            case YamlMappingNode mapping:
                AddPairs(mapping);
                break;
            case var other:
                diagnostics.Error(Origin.Of(other), path, $"expected a list, got {YamlSection.Describe(other)}");
                break;
        }

        return options;
    }

    /// <summary>Values keep their YAML text ("128MB", 100 → "100"); YAML booleans become PostgreSQL's on/off.</summary>
    private Dictionary<string, string> ReadParameters(YamlSection? section)
    {
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        if (section is null)
        {
            return parameters;
        }

        foreach (var (key, value) in section.Entries())
        {
            if (value is YamlScalarNode { Value: { } text } scalar && !YamlSection.IsNull(value))
            {
                parameters[key.Text] = scalar.Style is ScalarStyle.Plain && bool.TryParse(text, out var flag) ? (flag ? "on" : "off") : text;
            }
            else
            {
                diagnostics.Error(Origin.Of(value), section.Child(key.Text), $"expected a single value, got {YamlSection.Describe(value)}");
            }
        }

        section.Finish();
        return parameters;
    }

    private string AbsolutePath(string path) => Path.GetFullPath(path, baseDirectory);

    private PostgresqlConfig ReadPostgresql(YamlSection root, string name)
    {
        var section = root.Section("postgresql");
        if (section is null)
        {
            Missing(root.Origin, "postgresql");
        }

        var listenText = section?.String("listen");
        var dataDirText = section?.String("data_dir");
        if (section is not null)
        {
            if (listenText is null)
            {
                Missing(section.Origin, section.Child("listen"));
            }

            if (dataDirText is null)
            {
                Missing(section.Origin, section.Child("data_dir"));
            }
        }

        var listen = Address(listenText, "postgresql.listen", allowHostList: true);
        var connect = section is null ? listen : ConnectAddress(section, listen, listenText);

        var dataDir = "";
        if (dataDirText is { } dir)
        {
            if (dir.Text.Trim().Length == 0)
            {
                diagnostics.Error(dir.Origin, "postgresql.data_dir", "must not be empty");
            }
            else
            {
                dataDir = Path.TrimEndingDirectorySeparator(AbsolutePath(dir.Text));
            }
        }

        var defaults = new PostgresqlConfig
        {
            Listen = listen,
            ConnectAddress = connect,
            DataDir = dataDir,
            Pgpass = "",
            Authentication = new PostgresAuthentication { Superuser = new("", null), Replication = new("", null) },
        };
        var binDir = section?.String("bin_dir") is { } bin ? AbsolutePath(bin.Text) : defaults.BinDir;
        var pgpass = section?.String("pgpass") is { } pass
            ? AbsolutePath(pass.Text)
            : Path.Combine(Path.GetDirectoryName(dataDir) ?? "/", $"pgpass.{name}");
        var authentication = ReadPostgresAuthentication(section, root.Origin);
        var parameters = ReadParameters(section?.Section("parameters"));
        var pgHba = section?.List("pg_hba", commaSeparated: false)?.Select(line => line.Text).ToList() ?? [];
        var pgCtlTimeout = section?.Int("pg_ctl_timeout", 1) ?? defaults.PgCtlTimeout;
        var osUser = Override(section?.String("os_user"), environment.FindExact("STEWARD_PG_USER"));
        if (osUser is { } osUserValue && osUserValue.Text.Trim().Length == 0)
        {
            diagnostics.Error(osUserValue.Origin, "postgresql.os_user", "must not be empty");
        }

        IReadOnlyList<ReplicaMethod?> replicaMethods = [];
        IReadOnlyList<string> basebackup = [];
        var callbacks = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        IReadOnlyList<string>? prePromote = null;
        IReadOnlyList<string>? beforeStop = null;
        IReadOnlyList<string>? pgIdent = null;
        string? customConf = null;
        bool useUnixSocket = false, removeOnRewindFailure = false, removeOnDivergedTimelines = false;
        if (section is not null)
        {
            if (section.Section("callbacks") is { } callbackSection)
            {
                foreach (var action in CallbackActions)
                {
                    if (Command(callbackSection, action) is { } words)
                    {
                        callbacks[action] = words;
                    }
                }

                callbackSection.Finish();
            }

            prePromote = Command(section, "pre_promote");
            beforeStop = Command(section, "before_stop");
            pgIdent = section.List("pg_ident", commaSeparated: false)?.Select(line => line.Text).ToList();
            if (section.String("custom_conf") is { } custom)
            {
                customConf = ReadCustomConf(custom);
            }

            useUnixSocket = section.Bool("use_unix_socket") ?? false;
            removeOnRewindFailure = section.Bool("remove_data_directory_on_rewind_failure") ?? false;
            removeOnDivergedTimelines = section.Bool("remove_data_directory_on_diverged_timelines") ?? false;
            replicaMethods = ReadReplicaMethods(section);
            basebackup = ReadOptionList(section, "basebackup", ReservedBasebackupOptions, "is set by Steward and cannot be given here");
            section.Unsupported(UnsupportedPostgresqlKeys);
            section.Finish();
        }

        return new PostgresqlConfig
        {
            Listen = listen,
            ConnectAddress = connect,
            DataDir = dataDir,
            BinDir = binDir,
            Pgpass = pgpass,
            Authentication = authentication,
            Parameters = parameters,
            PgHba = pgHba,
            CreateReplicaMethods = replicaMethods,
            BasebackupOptions = basebackup,
            Callbacks = callbacks,
            PrePromote = prePromote,
            BeforeStop = beforeStop,
            PgIdent = pgIdent,
            CustomConf = customConf,
            UseUnixSocket = useUnixSocket,
            RemoveDataDirectoryOnRewindFailure = removeOnRewindFailure,
            RemoveDataDirectoryOnDivergedTimelines = removeOnDivergedTimelines,
            PgCtlTimeout = pgCtlTimeout,
            OsUser = osUser?.Text ?? defaults.OsUser,
        };
    }

    /// <summary>
    /// <c>postgresql.custom_conf</c>: PostgreSQL would refuse to start on an include it cannot find, so a file that is not
    /// there (or not a file) stops start-up now, with the path named.
    /// </summary>
    private string? ReadCustomConf(Located custom)
    {
        if (custom.Text.Trim().Length == 0)
        {
            diagnostics.Error(custom.Origin, "postgresql.custom_conf", "must not be empty (leave the key out to use postgresql.base.conf)");
            return null;
        }

        var path = AbsolutePath(custom.Text);
        if (!File.Exists(path))
        {
            diagnostics.Error(custom.Origin, "postgresql.custom_conf", $"{path}: no such file (it must exist on every node and be readable by PostgreSQL)");
            return null;
        }

        if (path.Contains('\'', StringComparison.Ordinal) || path.Contains('\n', StringComparison.Ordinal))
        {
            diagnostics.Error(custom.Origin, "postgresql.custom_conf", $"{path}: a path with a quote or a line break cannot be included");
            return null;
        }

        return path;
    }

    private PostgresAuthentication ReadPostgresAuthentication(YamlSection? postgresql, Origin fallback)
    {
        var section = postgresql?.Section("authentication");
        var origin = section?.Origin ?? postgresql?.Origin ?? fallback;
        var superuser = ReadCredentials(section, "superuser", "SUPERUSER", required: true, origin);
        var replication = ReadCredentials(section, "replication", "REPLICATION", required: true, origin);
        var rewind = ReadCredentials(section, "rewind", "REWIND", required: false, origin);
        section?.Finish();
        return new PostgresAuthentication
        {
            Superuser = superuser ?? new Credentials("", null),
            Replication = replication ?? new Credentials("", null),
            Rewind = rewind,
        };
    }

    /// <summary>One PostgreSQL user; the password is optional (trust or peer authentication need none).</summary>
    private Credentials? ReadCredentials(YamlSection? authentication, string key, string variable, bool required, Origin fallback)
    {
        var path = $"postgresql.authentication.{key}";
        var section = authentication?.Section(key);
        var username = Setting(section, "username", variable + "_USERNAME");
        var password = Setting(section, "password", variable + "_PASSWORD");
        var ssl = ReadSsl(section, path, variable);
        section?.Unsupported(UnsupportedCredentialKeys);
        section?.Finish();
        if (username is null)
        {
            if (required || password is not null || section is not null)
            {
                Missing(section?.Origin ?? fallback, $"{path}.username", variable + "_USERNAME");
            }

            return null;
        }

        if (username.Value.Text.Trim().Length == 0)
        {
            diagnostics.Error(username.Value.Origin, $"{path}.username", "must not be empty");
        }

        return new Credentials(username.Value.Text, password?.Text) { Ssl = ssl };
    }

    /// <summary>
    /// Patroni's <c>sslmode</c>, <c>sslcert</c>, <c>sslkey</c>, <c>sslpassword</c>, <c>sslrootcert</c> of one user (env
    /// <c>STEWARD_{variable}_SSLMODE</c> … win); null when none is written.
    /// </summary>
    private PgSsl? ReadSsl(YamlSection? section, string path, string variable)
    {
        var mode = Setting(section, "sslmode", variable + "_SSLMODE");
        var cert = Setting(section, "sslcert", variable + "_SSLCERT");
        var key = Setting(section, "sslkey", variable + "_SSLKEY");
        var password = Setting(section, "sslpassword", variable + "_SSLPASSWORD");
        var rootCert = Setting(section, "sslrootcert", variable + "_SSLROOTCERT");
        if (mode is null && cert is null && key is null && password is null && rootCert is null)
        {
            return null;
        }

        string? modeText = null;
        if (mode is { } written)
        {
            modeText = written.Text.Trim().ToLowerInvariant();
            if (!PgSsl.Modes.Contains(modeText, StringComparer.Ordinal))
            {
                diagnostics.Error(written.Origin, $"{path}.sslmode", $"expected one of {string.Join(", ", PgSsl.Modes)}, got '{written.Text}'");
            }
        }

        string? FilePath(Located? value, string name)
        {
            if (value is not { } text)
            {
                return null;
            }

            if (text.Text.Trim().Length == 0)
            {
                diagnostics.Error(text.Origin, $"{path}.{name}", "must not be empty (leave the key out for libpq's default)");
                return null;
            }

            return AbsolutePath(text.Text);
        }

        if (key is not null && cert is null)
        {
            diagnostics.Error(key.Value.Origin, $"{path}.sslcert", "required when sslkey is set (the client certificate that goes with the key)");
        }

        return new PgSsl
        {
            Mode = modeText,
            Cert = FilePath(cert, "sslcert"),
            Key = FilePath(key, "sslkey"),
            Password = password?.Text,
            RootCert = FilePath(rootCert, "sslrootcert"),
        };
    }

    private TagsConfig ReadTags(YamlSection? section)
    {
        if (section is null)
        {
            return new TagsConfig();
        }

        var all = new Dictionary<string, object?>(StringComparer.Ordinal);
        var flags = new Dictionary<string, bool>(StringComparer.Ordinal);
        foreach (var (key, value) in section.Entries())
        {
            var path = section.Child(key.Text);
            switch (value)
            {
                case var _ when YamlSection.IsNull(value):
                    all[key.Text] = null;
                    break;
                case YamlScalarNode { Value: { } text } scalar when key.Text is "failover_priority" or "sync_priority":
                    if (long.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var priority) && priority >= 0)
                    {
                        all[key.Text] = priority;
                    }
                    else
                    {
                        diagnostics.Error(Origin.Of(scalar), path, $"expected a whole number >= 0 (0: never {(key.Text == "sync_priority" ? "a synchronous standby" : "takes over")}), got '{text}'");
                    }

                    break;
                case YamlScalarNode { Value: { } text } scalar when key.Text is "nofailover" or "noloadbalance" or "clonefrom" or "nosync" or "nostream":
                    if (section.ParseBool(new Located(text, Origin.Of(scalar)), path) is { } flag)
                    {
                        flags[key.Text] = flag;
                        all[key.Text] = flag;
                    }

                    break;
                case YamlScalarNode { Value: { } text } scalar:
                    all[key.Text] = TagValue(text, scalar.Style);
                    break;
                default:
                    diagnostics.Error(Origin.Of(value), path, $"expected a single value, got {YamlSection.Describe(value)}");
                    break;
            }
        }

        section.Finish();
        if (all.TryGetValue("replicatefrom", out var from) && from is not (null or string))
        {
            diagnostics.Error(section.Origin, section.Child("replicatefrom"), $"expected a member name, got {from}");
        }

        if (flags.GetValueOrDefault("nofailover") && all.GetValueOrDefault("failover_priority") is long p && p > 0)
        {
            diagnostics.Warning($"{section.Child("failover_priority")}: {p} conflicts with nofailover: true; nofailover wins (this member never takes over)");
        }

        return new TagsConfig
        {
            NoFailover = flags.GetValueOrDefault("nofailover"),
            NoLoadBalance = flags.GetValueOrDefault("noloadbalance"),
            CloneFrom = flags.GetValueOrDefault("clonefrom"),
            NoSync = flags.GetValueOrDefault("nosync"),
            NoStream = flags.GetValueOrDefault("nostream"),
            All = all,
        };
    }

    /// <summary>A custom tag keeps its YAML type: plain true/false and integers stay bool and long, the rest are strings.</summary>
    private static object TagValue(string text, ScalarStyle style)
    {
        if (style is ScalarStyle.Plain)
        {
            if (bool.TryParse(text, out var flag))
            {
                return flag;
            }

            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
            {
                return number;
            }
        }

        return text;
    }

    private LogConfig ReadLog(YamlSection? section)
    {
        if (section is null)
        {
            return new LogConfig();
        }

        var level = new LogConfig().Level;
        if (section.String("level") is { } written)
        {
            var upper = written.Text.ToUpperInvariant();
            if (LogLevels.Contains(upper, StringComparer.Ordinal))
            {
                level = upper;
            }
            else
            {
                diagnostics.Error(written.Origin, "log.level", $"expected one of {string.Join(", ", LogLevels)}, got '{written.Text}'");
            }
        }

        section.Unsupported(
            "dir", "format", "file_num", "file_size", "loggers", "traceback_level", "dateformat", "type", "static_fields",
            "max_queue_size", "mode", "deduplicate_heartbeat_logs");
        section.Finish();
        return new LogConfig { Level = level };
    }
}
