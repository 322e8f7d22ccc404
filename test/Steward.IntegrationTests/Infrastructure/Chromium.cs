using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// Real headless Chromium (Debian's <c>chromium</c>), driven over the DevTools protocol on a WebSocket: navigate,
/// evaluate JavaScript in the page, take screenshots. A fresh profile per instance; stopped by PID.
/// </summary>
internal sealed class Chromium : IAsyncDisposable
{
    public const string NotFound = "chromium not found: apt-get install chromium";

    private readonly Process _process;
    private readonly TempDir _profile;
    private readonly ClientWebSocket _socket;
    private readonly Dictionary<int, TaskCompletionSource<JsonObject>> _pending = [];
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _send = new(1, 1);
    private readonly Task _receiver;
    private int _nextId;

    private Chromium(Process process, TempDir profile, ClientWebSocket socket)
    {
        _process = process;
        _profile = profile;
        _socket = socket;
        _receiver = Task.Run(ReceiveLoopAsync);
    }

    /// <summary>The browser binary: env STEWARD_CHROMIUM, else /usr/bin/chromium. Missing fails the test (never skips).</summary>
    public static string Executable()
    {
        var path = Environment.GetEnvironmentVariable("STEWARD_CHROMIUM") is { Length: > 0 } p ? p : "/usr/bin/chromium";
        if (!File.Exists(path))
        {
            Assert.Fail(NotFound);
        }

        return path;
    }

    public static async Task<Chromium> LaunchAsync()
    {
        var executable = Executable();
        var port = FreePorts.Next();
        var profile = new TempDir("chromium");
        var psi = new ProcessStartInfo(executable)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[]
                 {
                     "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,1100",
                     $"--user-data-dir={profile.Path}", $"--remote-debugging-port={port}", "about:blank",
                 })
        {
            psi.ArgumentList.Add(a);
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {executable}");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            string? pageSocket = null;
            await Poll.UntilAsync(async () =>
            {
                if (process.HasExited)
                {
                    throw new InvalidOperationException($"chromium exited with {process.ExitCode}");
                }

                var targets = JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/json/list"))!.AsArray();
                pageSocket = targets.FirstOrDefault(t => t!["type"]?.GetValue<string>() == "page")?["webSocketDebuggerUrl"]?.GetValue<string>();
                return pageSocket is not null;
            }, TimeSpan.FromSeconds(30), "chromium's DevTools endpoint");
            var socket = new ClientWebSocket();
            await socket.ConnectAsync(new Uri(pageSocket!), CancellationToken.None);
            var browser = new Chromium(process, profile, socket);
            await browser.SendAsync("Page.enable");
            await browser.SendAsync("Runtime.enable");
            return browser;
        }
        catch
        {
            await StopAsync(process);
            profile.Dispose();
            throw;
        }
    }

    public int Pid => _process.Id;

    public Task NavigateAsync(string url) => SendAsync("Page.navigate", new JsonObject { ["url"] = url });

    /// <summary>Evaluates <paramref name="expression"/> in the page (promises awaited) and returns its value as JSON.</summary>
    public async Task<JsonNode?> EvaluateAsync(string expression)
    {
        var result = await SendAsync("Runtime.evaluate", new JsonObject
        {
            ["expression"] = expression,
            ["returnByValue"] = true,
            ["awaitPromise"] = true,
        });
        if (result["exceptionDetails"] is { } error)
        {
            throw new InvalidOperationException($"page script failed: {error.ToJsonString()}");
        }

        return result["result"]?["value"]?.DeepClone();
    }

    public async Task<T> EvaluateAsync<T>(string expression) =>
        (await EvaluateAsync(expression) ?? throw new InvalidOperationException($"'{expression}' evaluated to undefined")).GetValue<T>();

    /// <summary>Saves a PNG of the page (full height) and returns its path.</summary>
    public async Task<string> ScreenshotAsync(string path)
    {
        var shot = await SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png", ["captureBeyondViewport"] = true });
        await File.WriteAllBytesAsync(path, Convert.FromBase64String(shot["data"]!.GetValue<string>()));
        return path;
    }

    private async Task<JsonObject> SendAsync(string method, JsonObject? parameters = null)
    {
        var id = Interlocked.Increment(ref _nextId);
        var done = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            _pending[id] = done;
        }

        var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters ?? new JsonObject() };
        await _send.WaitAsync();
        try
        {
            await _socket.SendAsync(Encoding.UTF8.GetBytes(message.ToJsonString()), WebSocketMessageType.Text, true, CancellationToken.None);
        }
        finally
        {
            _send.Release();
        }

        var response = await done.Task.WaitAsync(TimeSpan.FromSeconds(30));
        return response["error"] is { } error
            ? throw new InvalidOperationException($"{method} failed: {error.ToJsonString()}")
            : response["result"]?.AsObject() ?? [];
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = new byte[1 << 16];
        using var message = new MemoryStream();
        try
        {
            while (_socket.State == WebSocketState.Open)
            {
                var r = await _socket.ReceiveAsync(buffer, CancellationToken.None);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    break;
                }

                message.Write(buffer, 0, r.Count);
                if (!r.EndOfMessage)
                {
                    continue;
                }

                var node = JsonNode.Parse(message.ToArray())!.AsObject();
                message.SetLength(0);
                if (node["id"]?.GetValue<int>() is { } id)
                {
                    TaskCompletionSource<JsonObject>? waiter;
                    lock (_gate)
                    {
                        _pending.Remove(id, out waiter);
                    }

                    waiter?.TrySetResult(node);
                }
            }
        }
        catch (Exception e) when (e is WebSocketException or JsonException or ObjectDisposedException)
        {
        }

        lock (_gate)
        {
            foreach (var w in _pending.Values)
            {
                w.TrySetException(new InvalidOperationException("the DevTools connection closed"));
            }

            _pending.Clear();
        }
    }

    private static async Task StopAsync(Process process)
    {
        if (!process.HasExited)
        {
            Signals.Send(process.Id, Signals.SIGTERM);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                Signals.Send(process.Id, Signals.SIGKILL);
                await process.WaitForExitAsync();
            }
        }

        process.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", cts.Token);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
        }

        await StopAsync(_process);
        await _receiver;
        _socket.Dispose();
        _send.Dispose();
        _profile.Dispose();
    }
}
