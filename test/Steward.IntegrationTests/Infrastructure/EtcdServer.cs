using System.Diagnostics;
using System.Runtime.InteropServices;
using dotnet_etcd;
using System.Security.Cryptography.X509Certificates;
using Etcdserverpb;
using Grpc.Net.Client;

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

    private EtcdServer(Process process, TempDir dir, string endpoint, TestCerts? tls)
    {
        _process = process;
        _dir = dir;
        Endpoint = endpoint;
        Tls = tls;
    }

    /// <summary>Set when etcd serves TLS only and requires client certificates signed by its CA.</summary>
    public TestCerts? Tls { get; }

    /// <summary>The root user's password once <see cref="EnableAuthAsync"/> turned authentication on; null before.</summary>
    public string? RootPassword { get; private set; }

    /// <summary>The client endpoint as <c>host:port</c> (for <c>etcd3.hosts</c>).</summary>
    public string HostPort => new Uri(Endpoint).Authority;

    /// <summary>Client URL, e.g. <c>http://127.0.0.1:40123</c>.</summary>
    public string Endpoint { get; }

    public int Pid => _process.Id;

    /// <summary>etcd's own log (zap, JSON lines): read it when a test fails.</summary>
    public string LogFile => _dir.Sub("etcd.log");

    /// <param name="tls">
    /// Serve clients over TLS only with these certificates, requiring client certificates (<c>--client-cert-auth</c>),
    /// and expire auth tokens after 3 s (so that clients re-authenticate during a test).
    /// </param>
    public static async Task<EtcdServer> StartAsync(CancellationToken ct = default, TestCerts? tls = null)
    {
        var binary = FindBinary() ?? throw new InvalidOperationException("etcd not found: apt-get install etcd-server");
        var dir = new TempDir("etcd");
        var clientPort = FreePorts.Next();
        var peerPort = FreePorts.Next();
        var client = $"{(tls is null ? "http" : "https")}://127.0.0.1:{clientPort}";
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

        if (tls is not null)
        {
            foreach (var arg in new[]
            {
                "--cert-file", tls.ServerCert, "--key-file", tls.ServerKey, "--trusted-ca-file", tls.CaFile, "--client-cert-auth",
                "--auth-token", "simple", "--auth-token-ttl", "3",
            })
            {
                start.ArgumentList.Add(arg);
            }
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {binary}");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new EtcdServer(process, dir, client, tls);
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
        _channel?.Dispose();
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

    /// <summary>
    /// Turns etcd's authentication on (<c>etcdctl user add root</c>, <c>auth enable</c>), as an operator would; every
    /// client then needs the root user's name and <paramref name="rootPassword"/>.
    /// </summary>
    public async Task EnableAuthAsync(string rootPassword)
    {
        await EtcdctlAsync("user", "add", $"root:{rootPassword}", "--interactive=false");
        await EtcdctlAsync("auth", "enable");
        RootPassword = rootPassword;
    }

    private async Task EtcdctlAsync(params string[] args)
    {
        var start = new ProcessStartInfo("etcdctl") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["ETCDCTL_API"] = "3";
        start.ArgumentList.Add($"--endpoints={Endpoint}");
        if (Tls is not null)
        {
            start.ArgumentList.Add($"--cacert={Tls.CaFile}");
            start.ArgumentList.Add($"--cert={Tls.ClientCert}");
            start.ArgumentList.Add($"--key={Tls.ClientKey}");
        }

        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start etcdctl");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"etcdctl {string.Join(' ', args)} failed ({process.ExitCode}): {await output}{await error}");
        }
    }

    private GrpcChannel? _channel;

    /// <summary>A gRPC channel to this etcd (trusting the test CA and presenting the client certificate when TLS is on).</summary>
    private GrpcChannel Channel()
    {
        if (_channel is not null)
        {
            return _channel;
        }

        var handler = new SocketsHttpHandler();
        if (Tls is not null)
        {
            var ca = new X509Certificate2Collection();
            ca.ImportFromPemFile(Tls.CaFile);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return certificate is not null && chain.Build(X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            };
            using var pem = X509Certificate2.CreateFromPemFile(Tls.ClientCert, Tls.ClientKey);
            var client = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            handler.SslOptions.ClientCertificates = [client];
            handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => client;
        }

        return _channel = GrpcChannel.ForAddress(Endpoint, new GrpcChannelOptions { HttpHandler = handler });
    }

    /// <summary>The auth token header (a fresh token each time: they expire after 3 s here), or null without auth.</summary>
    private async Task<Grpc.Core.Metadata?> AuthHeadersAsync(CancellationToken ct)
    {
        if (RootPassword is null)
        {
            return null;
        }

        var auth = new Auth.AuthClient(Channel());
        var r = await auth.AuthenticateAsync(new AuthenticateRequest { Name = "root", Password = RootPassword }, deadline: DateTime.UtcNow.AddSeconds(2), cancellationToken: ct);
        return new Grpc.Core.Metadata { { "token", r.Token } };
    }

    /// <summary>The value of <paramref name="key"/> (null: no such key), read with TLS and auth as configured.</summary>
    public async Task<string?> GetValueAsync(string key, CancellationToken ct = default)
    {
        var kv = new KV.KVClient(Channel());
        var r = await kv.RangeAsync(new RangeRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8(key) }, await AuthHeadersAsync(ct),
            DateTime.UtcNow.AddSeconds(2), ct);
        return r.Kvs.Count == 0 ? null : r.Kvs[0].Value.ToStringUtf8();
    }

    private async Task WaitHealthyAsync(CancellationToken ct)
    {
        if (Tls is not null)
        {
            await WaitHealthyTlsAsync(ct);
            return;
        }

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

    private async Task WaitHealthyTlsAsync(CancellationToken ct)
    {
        var cluster = new Etcdserverpb.Cluster.ClusterClient(Channel());
        var started = Stopwatch.StartNew();
        Exception? last = null;
        while (started.Elapsed < StartTimeout)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"etcd exited with {_process.ExitCode} while starting; log: {TailOfLog()}");
            }

            try
            {
                var members = await cluster.MemberListAsync(new MemberListRequest(), deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: ct);
                if (!members.Members.Any(m => m.Name == $"steward-test-{new Uri(Endpoint).Port}"))
                {
                    throw new InvalidOperationException($"the etcd answering at {Endpoint} is not the one this fixture started (port taken by another process)");
                }

                return;
            }
            catch (Exception e) when (e is Grpc.Core.RpcException or OperationCanceledException or HttpRequestException && !ct.IsCancellationRequested)
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
