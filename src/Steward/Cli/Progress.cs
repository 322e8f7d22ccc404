using System.Globalization;
using Steward.Core.Cluster;

namespace Steward.Cli;

/// <summary>
/// Waits for an action to take effect, re-reading etcd every 200 ms, with a progress line on stderr: a spinner with the
/// elapsed time and the latest status on a terminal, one line per change of status otherwise. A timeout is a
/// <see cref="CliException"/> that says what was awaited and what was last seen.
/// </summary>
internal sealed class Progress(IClusterStore store, TextWriter err, bool interactive, TimeProvider time, string what)
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    private static readonly char[] Spinner = ['|', '/', '-', '\\'];

    /// <summary>
    /// Polls until <paramref name="done"/> holds for a view; <paramref name="status"/> describes a view in a few words.
    /// An unreachable etcd is reported in the status and retried until the timeout.
    /// </summary>
    public async Task<ClusterView> UntilAsync(Func<ClusterView, CancellationToken, Task<bool>> done, Func<ClusterView, string> status,
        TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(done);
        ArgumentNullException.ThrowIfNull(status);
        var started = time.GetTimestamp();
        var lastStatus = "";
        var tick = 0;
        if (!interactive)
        {
            await err.WriteLineAsync($"Waiting for {what} …").ConfigureAwait(false);
        }

        while (true)
        {
            string current;
            try
            {
                var view = await store.LoadAsync(ct).ConfigureAwait(false);
                if (await done(view, ct).ConfigureAwait(false))
                {
                    await FinishAsync($"{Capitalized(what)}: done after {Elapsed(started)}").ConfigureAwait(false);
                    return view;
                }

                current = status(view);
            }
            catch (StoreUnavailableException e)
            {
                current = $"etcd did not answer ({e.Message})";
            }

            var elapsed = time.GetElapsedTime(started);
            if (elapsed >= timeout)
            {
                await FinishAsync("").ConfigureAwait(false);
                throw new CliException($"gave up waiting for {what} after {timeout.TotalSeconds:0} s; last seen: {current}. "
                                       + "The action may still complete: check with steward list");
            }

            if (interactive)
            {
                var line = $"{Spinner[tick++ % Spinner.Length]} Waiting for {what} ({Elapsed(started)}): {current}";
                await err.WriteAsync("\r" + line.PadRight(Math.Max(line.Length, lastStatus.Length))).ConfigureAwait(false);
                lastStatus = line;
            }
            else if (current != lastStatus)
            {
                await err.WriteLineAsync($"  {Elapsed(started)}: {current}").ConfigureAwait(false);
                lastStatus = current;
            }

            await Task.Delay(PollInterval, time, ct).ConfigureAwait(false);
        }

        async Task FinishAsync(string message)
        {
            if (interactive && lastStatus.Length > 0)
            {
                await err.WriteAsync("\r" + new string(' ', lastStatus.Length) + "\r").ConfigureAwait(false);
            }

            if (message.Length > 0)
            {
                await err.WriteLineAsync(message).ConfigureAwait(false);
            }
        }
    }

    private string Elapsed(long started) => time.GetElapsedTime(started).TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture) + " s";

    private static string Capitalized(string text) => text.Length == 0 ? text : char.ToUpperInvariant(text[0]) + text[1..];

    /// <summary>A member's state in a few words: "node2: running, streaming, TL 3" or "node2: no member key".</summary>
    public static string Describe(ClusterView view, string member) => view.GetMember(member) is { } m
        ? $"{member}: {string.Join(", ", new[] { m.Data.State, m.Data.ReplicationState, m.Data.Timeline is { } tl ? $"TL {tl}" : null }.Where(s => s is not null))}"
        : $"{member}: no member key";

    /// <summary>"leader node1" or "no leader".</summary>
    public static string DescribeLeader(ClusterView view) => view.Leader is { } l ? $"leader {l.Name}" : "no leader";
}
