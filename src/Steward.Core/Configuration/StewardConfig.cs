using Steward.Core.Cluster;

namespace Steward.Core.Configuration;

/// <summary>
/// The agent's configuration file (<c>steward node -c node.yml</c>), in Patroni's shape so a Patroni user's file with an
/// <c>etcd3:</c> section starts with few or no edits. Loaded and validated by <see cref="ConfigLoader"/>.
/// </summary>
public sealed class StewardConfig
{
    public required string Scope { get; init; }
    /// <summary>Key namespace; normalized to start and end with '/'. Default <c>/service/</c>.</summary>
    public string Namespace { get; init; } = "/service/";
    public required string Name { get; init; }
    public required RestApiConfig RestApi { get; init; }
    /// <summary>How this node's clients (agent to agent, the CLI with <c>-c</c>) call the REST API: Patroni's <c>ctl</c>.</summary>
    public RestClientConfig Ctl { get; init; } = RestClientConfig.Plain;
    public required Etcd3Config Etcd3 { get; init; }
    public BootstrapConfig Bootstrap { get; init; } = new();
    public required PostgresqlConfig Postgresql { get; init; }
    public TagsConfig Tags { get; init; } = new();
    public LogConfig Log { get; init; } = new();
    /// <summary>Where the file was read from (for messages).</summary>
    public string? SourcePath { get; init; }
    /// <summary>Patroni keys that were recognized but are not supported; reported as warnings at start-up.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary><c>&lt;namespace&gt;&lt;scope&gt;/</c>, e.g. <c>/service/demo/</c>.</summary>
    public string KeyPrefix => Namespace + Scope + "/";
}

public sealed class RestApiConfig
{
    /// <summary>host:port to listen on, e.g. <c>127.0.0.1:8008</c>.</summary>
    public required HostPort Listen { get; init; }
    /// <summary>host:port other members and the router use; defaults to <see cref="Listen"/>.</summary>
    public required HostPort ConnectAddress { get; init; }
    /// <summary>Basic-auth credentials required for unsafe methods (POST/PUT/PATCH/DELETE); null = none.</summary>
    public Credentials? Authentication { get; init; }
    /// <summary>The server certificate (PEM); set: the API speaks HTTPS only.</summary>
    public string? CertFile { get; init; }
    /// <summary>Its private key (PEM); null: in <see cref="CertFile"/>.</summary>
    public string? KeyFile { get; init; }
    public string? KeyFilePassword { get; init; }
    /// <summary>The CA that signs the clients' certificates (needed by <see cref="VerifyClient"/> optional / required).</summary>
    public string? CaFile { get; init; }
    public VerifyClient VerifyClient { get; init; } = VerifyClient.None;
    /// <summary>Addresses, networks (CIDR) and host names allowed to call the unsafe methods; empty: anyone.</summary>
    public IReadOnlyList<string> Allowlist { get; init; } = [];
    /// <summary>Also allow the members' REST addresses (from their <c>api_url</c> in etcd).</summary>
    public bool AllowlistIncludeMembers { get; init; }

    public bool Https => CertFile is not null;
}

public sealed class Etcd3Config
{
    /// <summary>Endpoints as http(s)://host:port (from <c>hosts</c>, <c>host</c> or <c>url</c>/<c>urls</c>).</summary>
    public required IReadOnlyList<string> Endpoints { get; init; }
    public string? Username { get; init; }
    public string? Password { get; init; }
    /// <summary>The CA that signed etcd's certificate; null: the system's trust store.</summary>
    public string? CaCert { get; init; }
    /// <summary>Client certificate (PEM) for etcd's <c>--client-cert-auth</c>; null: none.</summary>
    public string? Cert { get; init; }
    /// <summary>Its private key (PEM); null: in <see cref="Cert"/>.</summary>
    public string? Key { get; init; }
    public string? KeyPassword { get; init; }

    public bool Https => Endpoints.Any(e => e.StartsWith("https://", StringComparison.OrdinalIgnoreCase));
}

public sealed class BootstrapConfig
{
    /// <summary>Seeds the <c>config</c> key when this member bootstraps the cluster.</summary>
    public DynamicConfig Dcs { get; init; } = new();
    /// <summary>initdb arguments, normalized from Patroni's list (<c>- data-checksums</c>, <c>- encoding: UTF8</c>) to <c>--data-checksums</c>, <c>--encoding=UTF8</c>.</summary>
    public IReadOnlyList<string> Initdb { get; init; } = [];
    /// <summary><c>bootstrap.method: &lt;name&gt;</c> other than initdb: Patroni's custom bootstrap; null runs initdb.</summary>
    public CustomBootstrap? Method { get; init; }
    /// <summary>
    /// Patroni's <c>bootstrap.post_bootstrap</c> (or its older name <c>post_init</c>): run once on the new primary after
    /// initdb or the custom bootstrap, as <c>command "conninfo"</c> with <c>PGPASSFILE</c> set (Patroni's arguments);
    /// a non-zero exit fails the bootstrap (the data directory is removed and the initialize key given back). Null: none.
    /// </summary>
    public IReadOnlyList<string>? PostBootstrap { get; init; }
}

/// <summary>
/// Patroni's custom bootstrap (<c>bootstrap.method: name</c> with a <c>bootstrap.name</c> section): instead of initdb,
/// <see cref="Command"/> fills the empty data directory (restores a backup, say), run as the PostgreSQL OS user with
/// <c>--scope=…</c> and <c>--datadir=…</c> (unless <c>no_params</c>) and <c>--key=value</c> for every other key of the
/// section. Then recovery settings are removed, kept (<see cref="KeepExistingRecoveryConf"/>, as written by pgBackRest or
/// Barman) or written (<see cref="RecoveryConf"/>, with recovery.signal), PostgreSQL is started, and the new cluster's
/// primary is the end of that recovery.
/// </summary>
public sealed class CustomBootstrap
{
    /// <summary>The method's name (the key of its section).</summary>
    public required string Name { get; init; }
    /// <summary>The command split into words (<see cref="ShellWords"/>): program first.</summary>
    public required IReadOnlyList<string> Command { get; init; }
    public bool NoParams { get; init; }
    public bool KeepExistingRecoveryConf { get; init; }
    /// <summary>Recovery parameters (restore_command, recovery_target_time, recovery_target_action…); null: none given.</summary>
    public IReadOnlyDictionary<string, string>? RecoveryConf { get; init; }
    /// <summary><c>--key=value</c> for every other key of the method's section, in file order.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>The whole command line, as Patroni builds it.</summary>
    public IReadOnlyList<string> CommandLine(string scope, string dataDir) =>
        [.. Command, .. NoParams ? [] : new[] { $"--scope={scope}", $"--datadir={dataDir}" }, .. ExtraArguments];
}

/// <summary>
/// One of Patroni's <c>postgresql.create_replica_methods</c> other than <c>basebackup</c>: a command that fills the empty
/// data directory of a new replica (pgBackRest or WAL-G restoring the latest backup, say), run as the PostgreSQL OS user
/// with <c>--scope</c>, <c>--role=replica</c>, <c>--datadir</c> and <c>--connstring</c> (the source as a libpq URL, the
/// password in the pgpass file named by PGPASSFILE) unless <c>no_params</c>, and <c>--key=value</c> for every other key.
/// </summary>
public sealed class ReplicaMethod
{
    public required string Name { get; init; }
    public required IReadOnlyList<string> Command { get; init; }
    public bool NoParams { get; init; }
    /// <summary>Leave what a failed attempt wrote (Patroni's keep_data; pgBackRest --delta restores into it).</summary>
    public bool KeepData { get; init; }
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    public IReadOnlyList<string> CommandLine(string scope, string dataDir, string connstring) =>
        [.. Command, .. NoParams ? [] : new[] { $"--scope={scope}", "--role=replica", $"--datadir={dataDir}", $"--connstring={connstring}" }, .. ExtraArguments];
}

public sealed class PostgresqlConfig
{
    public required HostPort Listen { get; init; }
    public required HostPort ConnectAddress { get; init; }
    public required string DataDir { get; init; }
    /// <summary>Directory of PostgreSQL's programs; default <c>/usr/lib/postgresql/15/bin</c>.</summary>
    public string BinDir { get; init; } = "/usr/lib/postgresql/15/bin";
    /// <summary>The pgpass file the agent writes for pg_basebackup / pg_rewind; default <c>&lt;data_dir&gt;/../pgpass.&lt;name&gt;</c>.</summary>
    public required string Pgpass { get; init; }
    public required PostgresAuthentication Authentication { get; init; }
    /// <summary>Local parameters; override the dynamic ones from the <c>config</c> key.</summary>
    public IReadOnlyDictionary<string, string> Parameters { get; init; } = new Dictionary<string, string>();
    /// <summary>pg_hba.conf lines; when empty a safe default is written.</summary>
    public IReadOnlyList<string> PgHba { get; init; } = [];
    /// <summary>
    /// How a new replica gets its data, tried in order until one succeeds: a <see cref="ReplicaMethod"/>, or null for the
    /// built-in pg_basebackup. Empty: pg_basebackup only.
    /// </summary>
    public IReadOnlyList<ReplicaMethod?> CreateReplicaMethods { get; init; } = [];
    /// <summary>Extra pg_basebackup options from Patroni's <c>postgresql.basebackup</c> (<c>--max-rate=100M</c>, <c>--verbose</c>).</summary>
    public IReadOnlyList<string> BasebackupOptions { get; init; } = [];
    /// <summary>
    /// Patroni's <c>postgresql.callbacks</c>: action (on_start, on_stop, on_restart, on_reload, on_role_change) → command
    /// words; run as <c>command action role scope</c>, asynchronously.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Callbacks { get; init; } = new Dictionary<string, IReadOnlyList<string>>();
    /// <summary>Patroni's <c>postgresql.pre_promote</c>: run before a promotion; a non-zero exit aborts it. Null: none.</summary>
    public IReadOnlyList<string>? PrePromote { get; init; }
    /// <summary>
    /// Patroni's <c>postgresql.before_stop</c>: run (and waited for, at most <see cref="PgCtlTimeout"/>) right before a
    /// planned (fast) stop of PostgreSQL; its exit code is logged and does not change the stop. Never run before an
    /// immediate stop: those take a primary out of service for safety and wait for nothing. Null: none.
    /// </summary>
    public IReadOnlyList<string>? BeforeStop { get; init; }
    /// <summary>pg_ident.conf lines (Patroni's <c>postgresql.pg_ident</c>); null: the file is left as it is.</summary>
    public IReadOnlyList<string>? PgIdent { get; init; }
    /// <summary>
    /// Patroni's <c>postgresql.custom_conf</c>: an absolute path to a postgresql.conf of the operator's, included in place
    /// of <c>postgresql.base.conf</c> (the settings Steward manages still come after it). Null: postgresql.base.conf.
    /// </summary>
    public string? CustomConf { get; init; }
    /// <summary>Patroni's <c>postgresql.use_unix_socket</c>: the agent connects to its PostgreSQL over the unix socket.</summary>
    public bool UseUnixSocket { get; init; }
    /// <summary>
    /// Patroni's <c>remove_data_directory_on_rewind_failure</c> / <c>remove_data_directory_on_diverged_timelines</c>: the
    /// data directory of a member that must be cloned again is deleted instead of moved aside (the space it takes comes
    /// back before the clone). False: moved aside as <c>&lt;data_dir&gt;.steward-&lt;time&gt;</c> for the operator.
    /// </summary>
    public bool RemoveDataDirectoryOnRewindFailure { get; init; }
    /// <inheritdoc cref="RemoveDataDirectoryOnRewindFailure"/>
    public bool RemoveDataDirectoryOnDivergedTimelines { get; init; }
    /// <summary>Seconds pg_ctl waits for start / stop. Default 60.</summary>
    public int PgCtlTimeout { get; init; } = 60;
    /// <summary>
    /// The unprivileged OS user PostgreSQL's programs run as when the agent runs as root. Default <c>postgres</c>;
    /// environment <c>STEWARD_PG_USER</c>. Ignored when the agent is not root (programs then run as the agent's user).
    /// </summary>
    public string OsUser { get; init; } = "postgres";
}

public sealed class PostgresAuthentication
{
    public required Credentials Superuser { get; init; }
    public required Credentials Replication { get; init; }
    /// <summary>pg_rewind's user; defaults to the superuser.</summary>
    public Credentials? Rewind { get; init; }
}

public sealed record Credentials(string Username, string? Password)
{
    /// <summary>
    /// libpq's SSL settings for this PostgreSQL user (Patroni's <c>postgresql.authentication.&lt;user&gt;.ssl*</c>); null:
    /// none written (libpq's defaults; <c>primary_conninfo</c> then says <c>sslmode=prefer</c>).
    /// </summary>
    public PgSsl? Ssl { get; init; }
}

/// <summary>
/// One PostgreSQL user's SSL settings, as libpq names them. Paths are absolute (relative ones are taken from the config
/// file's directory). <see cref="Password"/> is a secret: it goes only into files of mode 0600 and never into argv.
/// </summary>
public sealed record PgSsl
{
    /// <summary>libpq's sslmode values, in increasing strictness.</summary>
    public static readonly IReadOnlyList<string> Modes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

    public string? Mode { get; init; }
    public string? Cert { get; init; }
    public string? Key { get; init; }
    public string? Password { get; init; }
    public string? RootCert { get; init; }

    /// <summary>The settings that are written, as libpq conninfo keywords and values (sslmode first).</summary>
    public IEnumerable<(string Key, string Value)> ConninfoPairs()
    {
        foreach (var (key, value) in new[] { ("sslmode", Mode), ("sslcert", Cert), ("sslkey", Key), ("sslpassword", Password), ("sslrootcert", RootCert) })
        {
            if (value is not null)
            {
                yield return (key, value);
            }
        }
    }
}

public sealed class TagsConfig
{
    public bool NoFailover { get; init; }
    public bool NoLoadBalance { get; init; }
    public bool CloneFrom { get; init; }
    public bool NoSync { get; init; }

    /// <summary>
    /// Patroni 4's <c>nostream</c>: as a replica this member does not stream (no primary_conninfo, no slot on the leader);
    /// it replays WAL from the archive (<c>restore_command</c>) only, and is never a synchronous standby.
    /// </summary>
    public bool NoStream { get; init; }
    /// <summary>Every tag as written (including the four above and custom ones), published in the member key.</summary>
    public IReadOnlyDictionary<string, object?> All { get; init; } = new Dictionary<string, object?>();
}

public sealed class LogConfig
{
    /// <summary>DEBUG, INFO, WARNING, ERROR, CRITICAL (Patroni's names). Default INFO.</summary>
    public string Level { get; init; } = "INFO";
}

/// <summary>A host and port, as written in <c>listen</c> / <c>connect_address</c>.</summary>
public sealed record HostPort(string Host, int Port)
{
    public override string ToString() => Host.Contains(':', StringComparison.Ordinal) ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
