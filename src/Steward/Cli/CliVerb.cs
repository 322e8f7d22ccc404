using System.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Etcd;

namespace Steward.Cli;

/// <summary>A verb refused or failed: the message is printed as <c>steward VERB: message</c> and the process exits with <see cref="ExitCode"/>.</summary>
internal sealed class CliException : Exception
{
    public CliException(string message, int exitCode = ExitCodes.Failed) : base(message) => ExitCode = exitCode;

    public CliException() : this("failed") { }

    public CliException(string message, Exception inner) : base(message, inner) => ExitCode = ExitCodes.Failed;

    public int ExitCode { get; }
}

/// <summary>Exit codes shared by every verb.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Bad input, refused or failed action, declined confirmation, timeout.</summary>
    public const int Failed = 1;
    /// <summary>The cluster could not be located (no -c, no --etcd/--scope).</summary>
    public const int Usage = 2;
    /// <summary>etcd did not answer.</summary>
    public const int EtcdUnreachable = 3;
}

/// <summary>What a verb's action gets: the cluster's store and scope, the console, prompts, REST and progress helpers.</summary>
internal sealed class CliContext(string verb, ResolvedTarget target, IClusterStore store, RestCredentials? rest) : IDisposable
{
    public string Verb { get; } = verb;
    public string Scope => Target.Scope;
    public ResolvedTarget Target { get; } = target;
    public IClusterStore Store { get; } = store;
    public TextWriter Out { get; init; } = Console.Out;
    public TextWriter Err { get; init; } = Console.Error;
    public Prompter Prompter { get; init; } = new(Console.In, Console.Error);
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>The REST client (TLS from the node config's ctl settings; credentials from the options, environment or node config).</summary>
    public RestClient Rest => _rest ??= new RestClient(Target.Ctl, rest);

    private RestClient? _rest;

    public Progress Progress(string what) => new(Store, Err, !Console.IsErrorRedirected, Time, what);

    public async Task<ClusterView> LoadAsync(CancellationToken ct) => await Store.LoadAsync(ct).ConfigureAwait(false);

    /// <summary>The member named <paramref name="name"/>, or a refusal that lists the members there are.</summary>
    public static Member RequireMember(ClusterView view, string scope, string name) =>
        view.GetMember(name) ?? throw new CliException(view.Members.Count == 0
            ? $"{name} is not a member of cluster {scope}: it has no members in etcd (is it running? is the scope right?)"
            : $"{name} is not a member of cluster {scope} (members: {string.Join(", ", view.Members.Select(m => m.Name))})");

    public async Task PrintListAsync(CancellationToken ct)
    {
        var view = await LoadAsync(ct).ConfigureAwait(false);
        await Out.WriteAsync(ListCommand.Render(Scope, view, extended: false, TextTable.DefaultWidth)).ConfigureAwait(false);
    }

    public void Dispose() => _rest?.Dispose();
}

/// <summary>Builds a verb: the cluster target options, optional REST credentials, and one error path for every failure.</summary>
internal static class CliVerb
{
    public static Command Create(string name, string description, Func<CliContext, ParseResult, CancellationToken, Task<int>> run,
        bool rest = false, params Symbol[] symbols)
    {
        var target = new ClusterTarget();
        var restOptions = rest ? new RestOptions() : null;
        var cmd = new Command(name, description);
        target.AddTo(cmd);
        restOptions?.AddTo(cmd);
        foreach (var symbol in symbols)
        {
            if (symbol is Argument argument)
            {
                cmd.Arguments.Add(argument);
            }
            else
            {
                cmd.Options.Add((Option)symbol);
            }
        }

        cmd.SetAction(async (pr, ct) =>
        {
            if (target.Resolve(pr, out var error) is not { } resolved)
            {
                await Console.Error.WriteLineAsync($"steward {name}: {error}").ConfigureAwait(false);
                return ExitCodes.Usage;
            }

            EtcdClusterStore created;
            try
            {
                // 10 s per request, Patroni's default retry_timeout (patronictl waits that long too): an etcd that refuses
                // connections fails at once; one that is slow (a TLS handshake and authentication on a loaded host took
                // more than the 5 s used before) gets an answer instead of an error.
                created = EtcdClusterStore.Create(resolved.Etcd, resolved.Prefix, TimeSpan.FromSeconds(10), TimeProvider.System, NullLogger<EtcdClusterStore>.Instance);
            }
            catch (ConfigException e)
            {
                await Console.Error.WriteLineAsync($"steward {name}: invalid configuration: {e.Message}").ConfigureAwait(false);
                return ExitCodes.Usage;
            }

            await using var store = created;
            using var context = new CliContext(name, resolved, store, restOptions?.Resolve(pr, resolved));
            try
            {
                return await run(context, pr, ct).ConfigureAwait(false);
            }
            catch (ConfigException e)
            {
                await Console.Error.WriteLineAsync($"steward {name}: invalid configuration: {e.Message}").ConfigureAwait(false);
                return ExitCodes.Usage;
            }
            catch (CliException e)
            {
                await Console.Error.WriteLineAsync($"steward {name}: {e.Message}").ConfigureAwait(false);
                return e.ExitCode;
            }
            catch (RestUnreachableException e)
            {
                await Console.Error.WriteLineAsync($"steward {name}: {e.Message}").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
            catch (StoreUnavailableException e)
            {
                await Console.Error.WriteLineAsync($"steward {name}: cannot reach etcd at {string.Join(", ", resolved.Endpoints)}: {e.Message}").ConfigureAwait(false);
                return ExitCodes.EtcdUnreachable;
            }
        });
        return cmd;
    }

    /// <summary><c>--force</c>: skip the confirmation prompt.</summary>
    public static Option<bool> Force(string what = "do it without asking for confirmation") => new("--force") { Description = what };
}
