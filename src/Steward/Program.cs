using System.CommandLine;
using Steward.Agent;
using Steward.Cli;
using Steward.Demo;
using Steward.Router;

namespace Steward;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is [Agent.Fence.FenceSupervisor.Verb, ..])
        {
            // The agent's fence supervisor: nothing else is loaded (no command line parser, no web host).
            return Agent.Fence.FenceSupervisor.Run(args);
        }

        if (args is ["version"])
        {
            // Where an operator or a script waits: no command tree to build for it.
            Console.WriteLine($"steward {VersionInfo.Version}");
            return 0;
        }

        var root = new RootCommand("Steward: high availability for PostgreSQL. An agent per server (steward node), "
                                   + "with etcd deciding who leads, and an operator CLI.");

        var config = new Option<FileInfo>("--config", "-c") { Description = "the node's YAML configuration (Patroni's shape)", Required = true };
        var node = new Command("node", "Run the agent for one PostgreSQL server: bootstrap or clone it, take part in leader "
                                       + "election through etcd, fail over, and serve the REST API.") { config };
        node.SetAction((pr, ct) => NodeHost.RunAsync(pr.GetValue(config)!.FullName, ct));
        root.Subcommands.Add(node);

        var routerConfig = new Option<FileInfo>("--config", "-c") { Description = "the router's YAML configuration", Required = true };
        var router = new Command("router", "Run the connection router: a write port that reaches only the leader, a read port "
                                           + "balanced over healthy replicas, and a stats page; follows etcd by watch.") { routerConfig };
        router.SetAction((pr, ct) =>
        {
            var path = pr.GetValue(routerConfig)!.FullName;
            RouterExec.TryHandOver(path); // the native package's router-only executable, when installed
            return RouterHost.RunAsync(path, ct);
        });
        root.Subcommands.Add(router);

        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(ListCommand.Create());
        root.Subcommands.Add(ListCommand.CreateTopology());
        root.Subcommands.Add(ConfigCommands.CreateHistory());
        root.Subcommands.Add(ConfigCommands.CreateShowConfig());
        root.Subcommands.Add(ConfigCommands.CreateEditConfig());
        root.Subcommands.Add(SwitchoverCommands.CreateSwitchover());
        root.Subcommands.Add(SwitchoverCommands.CreateFailover());
        root.Subcommands.Add(SwitchoverCommands.CreateFlush());
        root.Subcommands.Add(MemberCommands.CreateRestart());
        root.Subcommands.Add(MemberCommands.CreateReload());
        root.Subcommands.Add(MemberCommands.CreateReinit());
        root.Subcommands.Add(MaintenanceCommands.CreatePause());
        root.Subcommands.Add(MaintenanceCommands.CreateResume());
        root.Subcommands.Add(MaintenanceCommands.CreateRemove());
        root.Subcommands.Add(HaproxyConfigCommand.Create());

        var version = new Command("version", "Print Steward's version.");
        version.SetAction(_ => Console.WriteLine($"steward {VersionInfo.Version}"));
        root.Subcommands.Add(version);

        // The agent handles SIGTERM / SIGINT itself (graceful shutdown must not be cut short).
        return await root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
    }
}
