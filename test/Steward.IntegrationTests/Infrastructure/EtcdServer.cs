using System.Diagnostics;
using System.Runtime.InteropServices;
using dotnet_etcd;
using Etcdserverpb;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// A real single-node etcd for one test (or one test class through <see cref="EtcdFixture"/>):
/// <code>
/// await using var etcd = await EtcdServer.StartAsync();
/// var store = new EtcdClusterStore([etcd.Endpoint], "/service/demo/", ...);
/// etcd.Pause(); ... etcd.Resume();
/// </code>
/// It listens on free loopback ports, keeps its data and its zap log (<see cref="LogFile"/>) in a fresh temp directory,
/// and is stopped by PID only (SIGTERM, then SIGKILL). Without an etcd binary the test fails: it is never skipped.
/// </summary>
internal sealed partial class EtcdServer : IAsyncDisposable
{

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly TempDir _dir;

    private EtcdServer(Process process, TempDir dir, string endpoint)
    {
        _process = process;
        _dir = dir;
        Endpoint = endpoint;
    }

    /// <summary>Client URL, e.g. <c>http://127.0.0.1:40123</c>.</summary>
    public string Endpoint { get; }

    public int Pid => _process.Id;

    /// <summary>etcd's own log (zap, JSON lines): read it when a test fails.</summary>
    public string LogFile => _dir.Sub("etcd.log");

    public static async Task<EtcdServer> StartAsync(CancellationToken ct = default)
    {
        var binary = FindBinary() ?? throw new InvalidOperationException("etcd not found: apt-get install etcd-server");
        var dir = new TempDir("etcd");
        var clientPort = FreePorts.Next();
        var peerPort = FreePorts.Next();
        var client = $"http://127.0.0.1:{clientPort}";
        var peer = $"http://127.0.0.1:{peerPort}";
        var start = new ProcessStartInfo(binary)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[]
        {
            "--name", $"steward-test-{clientPort}", "--data-dir", dir.Sub("data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", $"steward-test-{clientPort}={peer}", "--initial-cluster-state", "new",
            "--logger=zap", $"--log-outputs={dir.Sub("etcd.log")}",
        })
        {
            start.ArgumentList.Add(arg);
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {binary}");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new EtcdServer(process, dir, client);
        try
        {
            await server.WaitHealthyAsync(ct);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Freezes etcd (SIGSTOP): connections stay open, nothing answers.</summary>
    public void Pause()
    {
        Signal(Signals.SIGSTOP);

        // SIGSTOP takes effect as each of etcd's threads is next scheduled: wait until the kernel reports every one
        // stopped, so a request sent after Pause() cannot still be served (seen once on a busy machine).
        Signals.WaitUntilStopped(Pid, TimeSpan.FromSeconds(5));
    }

    /// <summary>Thaws etcd (SIGCONT).</summary>
    public void Resume() => Signal(Signals.SIGCONT);

    /// <summary>SIGTERM, then SIGKILL if etcd has not exited within 10 s. Idempotent.</summary>
    public async Task StopAsync()
    {
        if (_process.HasExited)
        {
            return;
        }
        Signal(Signals.SIGCONT);
        Signal(Signals.SIGTERM);
        using var graceful = new CancellationTokenSource(StopTimeout);
        try
        {
            await _process.WaitForExitAsync(graceful.Token);
        }
        catch (OperationCanceledException)
        {
            Signal(Signals.SIGKILL);
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process.Dispose();
        _dir.Dispose();
    }

    private static string? FindBinary()
    {
        var onPath = (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "etcd"))
            .FirstOrDefault(File.Exists);
        return onPath ?? (File.Exists("/usr/bin/etcd") ? "/usr/bin/etcd" : null);
    }

    private async Task WaitHealthyAsync(CancellationToken ct)
    {
        using var client = new EtcdClient(Endpoint);
        var started = Stopwatch.StartNew();
        Exception? last = null;
        while (started.Elapsed < StartTimeout)
        {
            ct.ThrowIfCancellationRequested();
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"etcd exited with {_process.ExitCode} while starting; log: {TailOfLog()}");
            }
            try
            {
                await client.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: ct);
                await client.GetAsync("/health-probe", deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: ct);

                // The member answering must be ours: if another process took our port first, our etcd exits and a
                // stranger's answers (a paused "our" etcd would then not pause anything; seen once in a full run).
                var members = await client.MemberListAsync(new MemberListRequest(), deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: ct);
                if (!members.Members.Any(m => m.Name == $"steward-test-{new Uri(Endpoint).Port}"))
                {
                    throw new InvalidOperationException($"the etcd answering at {Endpoint} is not the one this fixture started (port taken by another process)");
                }

                return;
            }
            catch (Exception e) when (e is Grpc.Core.RpcException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                last = e;
                await Task.Delay(100, ct);
            }
        }
        throw new TimeoutException($"etcd at {Endpoint} not healthy after {StartTimeout}: {last?.Message}; log: {TailOfLog()}");
    }

    private string TailOfLog()
    {
        try
        {
            return string.Join('\n', File.ReadLines(LogFile).TakeLast(20));
        }
        catch (IOException e)
        {
            return $"(no log: {e.Message})";
        }
    }

    private void Signal(int signal)
    {
        if (!_process.HasExited && !Signals.Send(_process.Id, signal) && !_process.HasExited)
        {
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed with errno {Marshal.GetLastPInvokeError()}");
        }
    }
}

/// <summary>
/// One etcd shared by the tests of a class (<c>IClassFixture&lt;EtcdFixture&gt;</c>) or of a collection
/// (<c>[Collection(EtcdCollection.Name)]</c>). Tests that share it should use their own key prefix.
/// </summary>
public sealed class EtcdFixture : IAsyncLifetime
{
    private EtcdServer? _server;

    internal EtcdServer Server => _server ?? throw new InvalidOperationException("the etcd fixture has not started");

    public string Endpoint => Server.Endpoint;

    public async Task InitializeAsync() => _server = await EtcdServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class EtcdCollection : ICollectionFixture<EtcdFixture>
{
    public const string Name = "etcd";
}
