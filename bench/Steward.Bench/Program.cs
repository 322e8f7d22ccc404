using System.Globalization;
using Steward.Bench;

if (args is ["router", ..])
{
    return await RouterBench.RunAsync();
}
if (args is ["clients", var name, var connection, var seconds, ..])
{
    return await ClientsBench.RunAsync(name, connection, int.Parse(seconds, CultureInfo.InvariantCulture),
        args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 16);
}
if (args is ["verify", var chain, var verifyConnection])
{
    return await ClientsBench.VerifyAsync(chain, verifyConnection);
}
Console.Error.WriteLine("usage: Steward.Bench router   (env: BENCH_SECONDS, BENCH_REPS, BENCH_TARGETS, BENCH_MODES)");
Console.Error.WriteLine("       Steward.Bench clients NAME CONNSTRING SECONDS [CLIENTS]   (bench/pgbouncer/switchover.sh)");
Console.Error.WriteLine("       Steward.Bench verify NAME CONNSTRING");
return 2;
