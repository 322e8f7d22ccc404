using Steward.Bench;

if (args is ["router", ..])
{
    return await RouterBench.RunAsync();
}
Console.Error.WriteLine("usage: Steward.Bench router   (env: BENCH_SECONDS, BENCH_REPS, BENCH_TARGETS, BENCH_MODES)");
return 2;
