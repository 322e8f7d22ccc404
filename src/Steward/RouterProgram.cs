using Steward.Router;

namespace Steward;

/// <summary>
/// The router-only executable (<c>/usr/lib/steward/steward-router</c>): the same project published with
/// <c>-p:StewardRouterOnly=true</c>, whose entry point reaches nothing but the router, so that the native compiler leaves
/// the agent, the CLI, Npgsql and the command-line parser out. Every Steward process of one executable carries that
/// executable's code and type data; the router alone is two thirds the size (18.7 MB against 28.4 MB; bench/footprint).
/// <c>steward router</c> hands over to it (<see cref="RouterExec"/>) once it has checked its arguments, so operators
/// and units keep one command.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        switch (args)
        {
            case ["--version"]:
                Console.WriteLine($"steward-router {VersionInfo.Version}");
                return 0;
            case ["--config" or "-c", var path] when path.Length > 0:
                return await RouterHost.RunAsync(Path.GetFullPath(path), CancellationToken.None).ConfigureAwait(false);
            default:
                await Console.Error.WriteLineAsync("usage: steward-router --config ROUTER.YML (the router alone; `steward router --help` describes it)")
                    .ConfigureAwait(false);
                return 2;
        }
    }
}
