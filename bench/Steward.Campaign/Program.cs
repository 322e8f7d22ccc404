using System.Globalization;
using System.Runtime.InteropServices;
using Steward.Campaign;

// steward fault campaign (issue 11): see docs/campaign.md. Run through bench/faults/campaign.sh.
const string Usage = """
    usage: Steward.Campaign [--faults N] [--mode sync|async] [--seed S] [--clients N] [--hold MIN-MAX] [--ttl S]
                            [--rate TBF_RATE] [--rejoin-timeout S] [--kinds kind,kind...] [--dir DIR]
                            [--results FILE] [--summary-json FILE] [--router-keeps-sessions]
    Needs root (network namespaces, PostgreSQL as the postgres user). Kinds: 
    """ + "crash-leader, kill-leader-agent, kill-leader-postmaster, stop-leader-agent, stop-leader-postmaster, partition-leader,\n    " +
    "partition-router-leader, kill-one-etcd, kill-two-etcd, switchover, replication-delay, replication-delay-then-crash";

var options = new CampaignOptions { Seed = Random.Shared.Next(1, 1_000_000) };
try
{
    for (var i = 0; i < args.Length; i++)
    {
        string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
        int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
        options = args[i] switch
        {
            "--faults" => options with { Faults = Int() },
            "--mode" => Next() switch
            {
                "sync" => options with { Synchronous = true },
                "async" => options with { Synchronous = false },
                var m => throw new ArgumentException($"--mode is sync or async, not {m}"),
            },
            "--seed" => options with { Seed = Int() },
            "--clients" => options with { Clients = Int() },
            "--ttl" => options with { Ttl = Int() },
            "--hold" => Next().Split('-') is [var lo, var hi]
                ? options with { HoldMin = double.Parse(lo, CultureInfo.InvariantCulture), HoldMax = double.Parse(hi, CultureInfo.InvariantCulture) }
                : throw new ArgumentException("--hold MIN-MAX (seconds)"),
            "--settle" => options with { Settle = double.Parse(Next(), CultureInfo.InvariantCulture) },
            "--rate" => options with { Rate = Next() },
            "--rejoin-timeout" => options with { RejoinTimeout = Int() },
            "--kinds" => options with { Kinds = [.. Next().Split(',').Select(ParseKind)] },
            "--dir" => options with { WorkDir = Next() },
            "--results" => options with { Results = Next() },
            "--summary-json" => options with { SummaryJson = Next() },
            "--router-keeps-sessions" => options with { RouterKeepsSessions = true },
            "--help" or "-h" => throw new ArgumentException(""),
            var other => throw new ArgumentException($"unknown option {other}"),
        };
    }
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    if (e.Message.Length > 0)
    {
        Console.Error.WriteLine(e.Message);
    }

    Console.Error.WriteLine(Usage);
    return 2;
}

if (!Os.IsRoot)
{
    Console.Error.WriteLine("the fault campaign needs root: it creates network namespaces, veth pairs and a bridge, and runs PostgreSQL as the postgres user (run it with sudo)");
    return 2;
}

using var cts = new CancellationTokenSource();
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; cts.Cancel(); });
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); });
try
{
    return await new Campaign(options).RunAsync(cts.Token);
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine("campaign interrupted (everything it started has been removed)");
    return 3;
}
catch (Exception e)
{
    Console.Error.WriteLine($"campaign failed: {e.Message}");
    return 2;
}

static FaultKind ParseKind(string name) =>
    Enum.GetValues<FaultKind>().FirstOrDefault(k => string.Concat(k.ToString().Select((c, i) => i > 0 && char.IsUpper(c) ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()))
        == name.Trim(), (FaultKind)(-1)) is var k && Enum.IsDefined(k) ? k : throw new ArgumentException($"unknown fault kind {name}");
