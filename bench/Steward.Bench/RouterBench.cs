using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Steward.Router.DataPath;

namespace Steward.Bench;

/// <summary>
/// pgbench against PostgreSQL directly, through each engine, and through HAProxy, interleaved; then the memory of
/// 1000 idle connections through an engine. Everything it starts it stops by PID, also on Ctrl-C or SIGTERM.
/// </summary>
internal static partial class RouterBench
{
    private const string PgBin = "/usr/lib/postgresql/15/bin";
    private const string Direct = "direct";
    private const string HaProxy = "haproxy";

    private sealed record Sample(double Tps, double LatencyMs, double? ProxyCpuSeconds);

    public static async Task<int> RunAsync()
    {
        var seconds = EnvInt("BENCH_SECONDS", 20);
        var reps = EnvInt("BENCH_REPS", 2);
        var modes = (Environment.GetEnvironmentVariable("BENCH_MODES") ?? "select,tpcb").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var only = Environment.GetEnvironmentVariable("BENCH_TARGETS")?.Split(',', StringSplitOptions.RemoveEmptyEntries);

        using var cts = new CancellationTokenSource();
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        var cleanup = new Stack<(string What, Action Undo)>();
        var dir = Path.Combine("/tmp", $"steward-bench-{Guid.NewGuid():N}"[..26]);
        try
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
            cleanup.Push(("remove " + dir, () => Directory.Delete(dir, recursive: true)));
            await Run("chown", ["postgres:postgres", dir], cts.Token);

            var pgPort = FreePort();
            Console.WriteLine($"initdb and PostgreSQL 15 on 127.0.0.1:{pgPort} in {dir}");
            var data = Path.Combine(dir, "data");
            await Run("setpriv", [.. AsPostgres, $"{PgBin}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"], cts.Token);
            var pg = Child.Start("setpriv", [.. AsPostgres, $"{PgBin}/postgres", "-D", data, "-p", pgPort.ToString(CultureInfo.InvariantCulture),
                "-c", "listen_addresses=127.0.0.1", "-c", $"unix_socket_directories={dir}", "-c", "max_connections=100",
                "-c", "shared_buffers=256MB", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                Path.Combine(dir, "postgres.log"));
            cleanup.Push(($"PostgreSQL pid {pg.Pid}", () => { pg.Stop(Child.SIGINT, TimeSpan.FromSeconds(20)); pg.Dispose(); }));
            await WaitReadyAsync(pgPort, cts.Token);
            Console.WriteLine("pgbench -i -s 10");
            await Run("pgbench", ["-i", "-s", "10", "-q", "-h", "127.0.0.1", "-p", pgPort.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "postgres"], cts.Token);

            var pgEndpoint = new IPEndPoint(IPAddress.Loopback, pgPort);
            var listeners = new List<EngineListener>
            {
                new("epoll", new EpollSpliceEngine(), pgEndpoint),
                new("epoll-1loop", new EpollSpliceEngine(new EpollEngineOptions { Loops = 1 }), pgEndpoint),
                new("epoll-splice", new EpollSpliceEngine(new EpollEngineOptions { Transfer = TransferMode.Splice }), pgEndpoint),
                new("epoll-asyncconnect", new EpollSpliceEngine(), pgEndpoint, asyncConnect: true),
                new("socket-copy", new SocketCopyEngine(), pgEndpoint),
            };
            foreach (var l in listeners)
            {
                cleanup.Push(($"listener {l.Name}", l.Dispose));
            }

            var haPort = FreePort();
            var haCfg = Path.Combine(dir, "haproxy.cfg");
            await File.WriteAllTextAsync(haCfg, $"""
                global
                    maxconn 4096
                defaults
                    mode tcp
                    timeout connect 5s
                    timeout client 30m
                    timeout server 30m
                listen pg
                    bind 127.0.0.1:{haPort}
                    server pg1 127.0.0.1:{pgPort}

                """, cts.Token);
            var haproxy = Child.Start("haproxy", ["-f", haCfg, "-db"], Path.Combine(dir, "haproxy.log"));
            cleanup.Push(($"HAProxy pid {haproxy.Pid}", () => { haproxy.Stop(Child.SIGTERM, TimeSpan.FromSeconds(5)); haproxy.Dispose(); }));
            await WaitReadyAsync(haPort, cts.Token);

            var targets = new List<(string Name, int Port, Func<double>? Cpu)> { (Direct, pgPort, null) };
            targets.AddRange(listeners.Select(l => (l.Name, l.Port, (Func<double>?)OwnCpuSeconds)));
            targets.Add((HaProxy, haPort, haproxy.CpuSeconds));
            if (only is not null)
            {
                targets = [.. targets.Where(t => t.Name is Direct or HaProxy || only.Contains(t.Name))];
            }

            Console.WriteLine("warm-up: pgbench -S -T 5 direct and through every target (not counted)");
            foreach (var (_, port, _) in targets)
            {
                await PgbenchAsync(port, "select", 5, cts.Token);
            }
            Console.WriteLine($"pgbench -c 8 -j 2 -T {seconds}, {reps} interleaved repetitions, modes {string.Join(",", modes)}");
            var results = new Dictionary<(string Target, string Mode), List<Sample>>();
            for (var rep = 0; rep < reps; rep++)
            {
                foreach (var mode in modes)
                {
                    // rotate the order so no target always runs right after the same neighbour
                    for (var k = 0; k < targets.Count; k++)
                    {
                        var (name, port, cpu) = targets[(k + rep) % targets.Count];
                        var cpuBefore = cpu?.Invoke();
                        var (tps, latency) = await PgbenchAsync(port, mode, seconds, cts.Token);
                        var sample = new Sample(tps, latency, cpu is null ? null : cpu() - cpuBefore);
                        Console.WriteLine($"  rep {rep + 1} {mode,-6} {name,-20} {tps,10:F0} tps {latency,7:F3} ms{(sample.ProxyCpuSeconds is { } c ? $"  proxy cpu {c / seconds:P0} of a core" : "")}");
                        if (!results.TryGetValue((name, mode), out var list))
                        {
                            results[(name, mode)] = list = [];
                        }
                        list.Add(sample);
                    }
                }
            }
            PrintTable(results, targets.Select(t => t.Name).ToList(), modes, seconds);

            Console.WriteLine();
            Console.WriteLine("RSS with 1000 idle connections held open (the 2000 peer sockets live in this process too):");
            await MeasureIdleAsync("epoll", () => new EpollSpliceEngine(), cts.Token);
            await MeasureIdleAsync("epoll-splice", () => new EpollSpliceEngine(new EpollEngineOptions { Transfer = TransferMode.Splice }), cts.Token);
            await MeasureIdleAsync("socket-copy", () => new SocketCopyEngine(), cts.Token);
            return 0;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("interrupted");
            return 130;
        }
        finally
        {
            while (cleanup.TryPop(out var step))
            {
                try
                {
                    step.Undo();
                }
                catch (Exception e)
                {
                    Console.Error.WriteLine($"cleanup '{step.What}' failed: {e.Message}");
                }
            }
        }

        void Cancel(PosixSignalContext context)
        {
            context.Cancel = true;
            cts.Cancel();
        }
    }

    private static readonly string[] AsPostgres = ["--reuid=postgres", "--regid=postgres", "--init-groups"];

    private static void PrintTable(Dictionary<(string Target, string Mode), List<Sample>> results, List<string> targets, string[] modes, int seconds)
    {
        Console.WriteLine();
        Console.WriteLine("| target | mode | TPS (mean; min-max) | mean latency ms | ratio to direct | ratio to HAProxy | proxy CPU (cores) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var mode in modes)
        {
            var direct = results[(Direct, mode)].Average(s => s.Tps);
            var haproxy = results.TryGetValue((HaProxy, mode), out var h) ? h.Average(s => s.Tps) : double.NaN;
            foreach (var target in targets)
            {
                var samples = results[(target, mode)];
                var tps = samples.Average(s => s.Tps);
                var cpu = samples.All(s => s.ProxyCpuSeconds is not null) ? (samples.Average(s => s.ProxyCpuSeconds!.Value) / seconds).ToString("F2", CultureInfo.InvariantCulture) : "-";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {target} | {mode} | {tps:F0}; {samples.Min(s => s.Tps):F0}-{samples.Max(s => s.Tps):F0} | {samples.Average(s => s.LatencyMs):F3} | {tps / direct:F2} | {tps / haproxy:F2} | {cpu} |"));
            }
        }
    }

    private static async Task<(double Tps, double LatencyMs)> PgbenchAsync(int port, string mode, int seconds, CancellationToken ct)
    {
        List<string> args = ["-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "-c", "8", "-j", "2", "-T", seconds.ToString(CultureInfo.InvariantCulture)];
        if (mode == "select")
        {
            args.Add("-S");
        }
        args.Add("postgres");
        var (code, output) = await Child.RunAsync("pgbench", args, ct);
        var tps = TpsLine().Match(output);
        var latency = LatencyLine().Match(output);
        if (code != 0 || !tps.Success || !latency.Success)
        {
            throw new InvalidOperationException($"pgbench on port {port} failed ({code}):\n{output}");
        }
        return (double.Parse(tps.Groups[1].Value, CultureInfo.InvariantCulture), double.Parse(latency.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>1000 client connections through the engine to a sink that holds them; RSS before and after.</summary>
    private static async Task MeasureIdleAsync(string name, Func<IProxyEngine> engine, CancellationToken ct)
    {
        const int count = 1000;
        using var sink = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        sink.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        sink.Listen(4096);
        var held = new List<Socket>();
        var sinkThread = new Thread(() =>
        {
            try
            {
                while (true)
                {
                    var s = sink.Accept();
                    lock (held)
                    {
                        held.Add(s);
                    }
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // the sink was closed
            }
        }) { IsBackground = true };
        sinkThread.Start();
        var listener = new EngineListener(name, engine(), (IPEndPoint)sink.LocalEndPoint!);
        var clients = new List<Socket>();
        try
        {
            var before = RssKiB();
            var ping = new byte[] { 1 };
            for (var i = 0; i < count; i++)
            {
                var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                c.Connect(new IPEndPoint(IPAddress.Loopback, listener.Port));
                c.Send(ping);
                clients.Add(c);
            }
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while ((listener.Accepted < count || held.Count < count) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50, ct);
            }
            await Task.Delay(500, ct);
            var after = RssKiB();
            Console.WriteLine($"  {name,-14} VmRSS {before / 1024.0:F1} MiB -> {after / 1024.0:F1} MiB with {listener.Accepted} sessions: {(after - before) / (double)count:F1} KiB per connection (all 3 sockets' objects included)");
        }
        finally
        {
            foreach (var c in clients)
            {
                c.Dispose();
            }
            listener.Dispose();
            sink.Dispose();
            sinkThread.Join();
            lock (held)
            {
                held.ForEach(s => s.Dispose());
            }
        }
    }

    private static long RssKiB()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    private static double OwnCpuSeconds()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime.TotalSeconds;
    }

    private static async Task Run(string file, IEnumerable<string> args, CancellationToken ct)
    {
        var (code, output) = await Child.RunAsync(file, args, ct);
        if (code != 0)
        {
            throw new InvalidOperationException($"{file} exited with {code}:\n{output}");
        }
    }

    private static async Task WaitReadyAsync(int port, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var (code, _) = await Child.RunAsync($"{PgBin}/pg_isready", ["-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-U", "postgres"], ct);
            if (code == 0)
            {
                return;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"nothing ready on port {port}");
            }
            await Task.Delay(100, ct);
        }
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;

    [GeneratedRegex(@"tps = ([0-9.]+) \(without initial connection time\)")]
    private static partial Regex TpsLine();

    [GeneratedRegex(@"latency average = ([0-9.]+) ms")]
    private static partial Regex LatencyLine();
}
