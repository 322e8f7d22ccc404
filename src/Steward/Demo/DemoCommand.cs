using System.CommandLine;
using System.Runtime.InteropServices;
using Steward.Agent;

namespace Steward.Demo;

/// <summary><c>steward demo</c>: the whole stack on loopback in one command (the README's first command).</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var nodes = new Option<int>("--nodes", "-n") { Description = "how many PostgreSQL servers (agents)", DefaultValueFactory = _ => 3 };
        var dir = new Option<string>("--dir") { Description = "where all data, logs and configuration live", DefaultValueFactory = _ => "/tmp/steward-demo" };
        var detach = new Option<bool>("--detach") { Description = "start, print how to connect, and return (stop later with --down)" };
        var down = new Option<bool>("--down") { Description = "stop the demo running in --dir (by the PIDs recorded there)" };
        var basePort = new Option<int?>("--base-port")
        {
            Description = "prefer ports from this one up (etcd +0/+1, router +2/+3, stats +4, PostgreSQL +10…, REST +40…) instead of the seed's",
        };
        var etcdBin = new Option<string?>("--etcd-bin") { Description = "the etcd program (env STEWARD_ETCD_BIN; default: etcd on PATH)" };
        var pgBin = new Option<string>("--pg-bin") { Description = "PostgreSQL 15's programs", DefaultValueFactory = _ => "/usr/lib/postgresql/15/bin" };
        var pgBouncer = new Option<bool>("--pgbouncer")
        {
            Description = "also start Debian's pgbouncer (transaction pooling) on 6432 in front of the write port; the router pauses it around a switchover",
        };
        var cmd = new Command("demo", "Run the whole stack on loopback: etcd, N agents with PostgreSQL 15 and the router (write 5500, read "
                                      + "5501, dashboard on 7500), the seed's ports or free ones when taken. Ctrl-C stops everything.")
        {
            nodes, dir, detach, down, basePort, etcdBin, pgBin, pgBouncer,
        };
        cmd.SetAction(async (pr, ct) =>
        {
            var count = pr.GetValue(nodes);
            if (count is < 1 or > 20)
            {
                await Console.Error.WriteLineAsync($"steward demo: --nodes must be between 1 and 20, got {count}").ConfigureAwait(false);
                return NodeHost.ExitConfig;
            }

            var options = new DemoOptions
            {
                Nodes = count,
                Dir = Path.GetFullPath(pr.GetValue(dir)!),
                BasePort = pr.GetValue(basePort),
                EtcdBin = pr.GetValue(etcdBin) ?? (Environment.GetEnvironmentVariable("STEWARD_ETCD_BIN") is { Length: > 0 } e ? e : null),
                PgBin = pr.GetValue(pgBin)!,
                PgBouncer = pr.GetValue(pgBouncer),
            };
            var stack = new DemoStack(options, Console.Out, Console.Error);
            if (pr.GetValue(down))
            {
                return await stack.DownAsync(ct).ConfigureAwait(false);
            }

            return await RunAsync(stack, options, pr.GetValue(detach), ct).ConfigureAwait(false);
        });
        return cmd;
    }

    private static async Task<int> RunAsync(DemoStack stack, DemoOptions options, bool detach, CancellationToken outer)
    {
        if (stack.CheckPrerequisites(out var etcd) is { } missing)
        {
            await Console.Error.WriteLineAsync($"steward demo: {missing}").ConfigureAwait(false);
            return NodeHost.ExitEnvironment;
        }

        if (stack.Running() is not null)
        {
            await Console.Error.WriteLineAsync($"steward demo: a demo is already running in {options.Dir}: stop it with `steward demo --down --dir {options.Dir}`, "
                                               + "or use another --dir").ConfigureAwait(false);
            return NodeHost.ExitEnvironment;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(outer);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        var (exit, state) = await stack.UpAsync(etcd, stop.Token).ConfigureAwait(false);
        if (exit != 0 || !detach)
        {
            if (exit == 0)
            {
                await Console.Error.WriteLineAsync("steward demo: running; press Ctrl-C to stop everything").ConfigureAwait(false);
                try
                {
                    await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    await Console.Error.WriteLineAsync().ConfigureAwait(false);
                }
            }

            if (state is not null)
            {
                await stack.StopAsync(state, CancellationToken.None).ConfigureAwait(false);
            }

            return exit;
        }

        await Console.Error.WriteLineAsync($"steward demo: running in the background; stop it with `steward demo --down --dir {options.Dir}`").ConfigureAwait(false);
        return 0;
    }
}
