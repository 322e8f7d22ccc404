using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Steward.Core.Cluster;

namespace Steward.Cli;

/// <summary><c>show-config</c>, <c>edit-config</c> and <c>history</c>: the <c>config</c> and <c>history</c> keys in etcd.</summary>
internal static class ConfigCommands
{
    public static Command CreateShowConfig()
    {
        var format = CliOutput.FormatOption(OutputFormat.Yaml);
        return CliVerb.Create("show-config", "Print the cluster's dynamic configuration (the config key) as YAML.",
            async (cli, pr, ct) =>
            {
                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                var config = view.Config?.Value ?? throw new CliException($"cluster {cli.Scope} has no config key (not bootstrapped yet, or the scope is wrong)");
                var json = ConfigEdit.ToJson(config);
                await cli.Out.WriteAsync(pr.GetValue(format) == OutputFormat.Json ? CliOutput.Json(json) : CliOutput.Yaml(json)).ConfigureAwait(false);
                return ExitCodes.Ok;
            }, rest: false, format);
    }

    public static Command CreateHistory()
    {
        var format = CliOutput.FormatOption();
        return CliVerb.Create("history", "Show the cluster's timeline switches: TL, LSN where it ended, reason, time and new leader.",
            async (cli, pr, ct) =>
            {
                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                var text = pr.GetValue(format) switch
                {
                    OutputFormat.Json => CliOutput.Json(HistoryData(view.History)),
                    OutputFormat.Yaml => CliOutput.Yaml(HistoryData(view.History)),
                    _ => RenderHistory(view.History, TextTable.DefaultWidth),
                };
                await cli.Out.WriteAsync(text).ConfigureAwait(false);
                return ExitCodes.Ok;
            }, rest: false, format);
    }

    internal static string RenderHistory(IReadOnlyList<HistoryEntry> history, int width) =>
        TextTable.Render(null, ["TL", "LSN", "Reason", "Timestamp", "New Leader"],
            [.. history.Select(h => (IReadOnlyList<string>)[
                h.Timeline.ToString(CultureInfo.InvariantCulture), h.Lsn.ToString(CultureInfo.InvariantCulture), h.Reason,
                h.Time.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffffzzz", CultureInfo.InvariantCulture), h.NewLeader ?? ""])],
            width, new HashSet<int> { 0, 1 });

    private static JsonArray HistoryData(IReadOnlyList<HistoryEntry> history) =>
        new([.. history.Select(h => (JsonNode)new JsonObject
        {
            ["TL"] = h.Timeline,
            ["LSN"] = h.Lsn,
            ["Reason"] = h.Reason,
            ["Timestamp"] = h.Time.ToString("O", CultureInfo.InvariantCulture),
            ["New Leader"] = h.NewLeader,
        })]);

    public static Command CreateEditConfig()
    {
        var set = new Option<string[]>("--set", "-s") { Description = "set a key, dotted for sections: --set loop_wait=2, --set postgresql.use_slots=false (value null removes it)", AllowMultipleArgumentsPerToken = false };
        var pg = new Option<string[]>("--pg", "-p") { Description = "set a PostgreSQL parameter: --pg work_mem=8MB (value null removes it)" };
        var force = CliVerb.Force("apply without asking for confirmation");
        var quiet = new Option<bool>("--quiet", "-q") { Description = "do not show the diff" };
        return CliVerb.Create("edit-config",
            "Change the dynamic configuration: with --set/--pg, or in $EDITOR. Shows a diff, asks, and writes it only if nobody else changed it meanwhile.",
            async (cli, pr, ct) =>
            {
                var view = await cli.LoadAsync(ct).ConfigureAwait(false);
                var current = view.Config?.Value ?? new DynamicConfig();
                var before = ConfigEdit.ToYaml(current);
                var sets = pr.GetValue(set) ?? [];
                var pgs = pr.GetValue(pg) ?? [];
                DynamicConfig changed;
                if (sets.Length == 0 && pgs.Length == 0)
                {
                    changed = ConfigEdit.Validate(await EditAsync(before, ct).ConfigureAwait(false), current);
                }
                else
                {
                    var document = ConfigEdit.ToJson(current);
                    foreach (var s in sets)
                    {
                        ConfigEdit.ApplySet(document, s);
                    }

                    foreach (var p in pgs)
                    {
                        ConfigEdit.ApplyPg(document, p);
                    }

                    changed = ConfigEdit.Validate(document, current);
                }

                var after = ConfigEdit.ToYaml(changed);
                var diff = UnifiedDiff.Render(before, after, "before", "after");
                if (diff.Length == 0)
                {
                    await cli.Out.WriteLineAsync("Not changed").ConfigureAwait(false);
                    return ExitCodes.Ok;
                }

                if (!pr.GetValue(quiet))
                {
                    await cli.Out.WriteAsync(diff).ConfigureAwait(false);
                    await cli.Out.FlushAsync(ct).ConfigureAwait(false);
                }

                if (DynamicConfigJson.TimingWarning(changed) is { } timing)
                {
                    await cli.Err.WriteLineAsync($"Warning: {timing}").ConfigureAwait(false);
                }

                cli.Prompter.Confirm($"Apply these changes to cluster {cli.Scope}?", pr.GetValue(force));
                if (!await cli.Store.SetConfigAsync(changed, view.Config?.ModRevision ?? 0, ct).ConfigureAwait(false))
                {
                    throw new CliException($"Config modification aborted due to concurrent changes: the config key of cluster {cli.Scope} was changed by someone else since it was read "
                                           + $"(at revision {view.Config?.ModRevision ?? 0}); nothing was written. Run edit-config again to start from the current version");
                }

                await cli.Out.WriteLineAsync("Configuration changed").ConfigureAwait(false);
                return ExitCodes.Ok;
            }, rest: false, set, pg, force, quiet);
    }

    /// <summary>Opens $EDITOR (else $VISUAL, else vi) on the YAML; returns the edited document.</summary>
    private static async Task<JsonObject> EditAsync(string yaml, CancellationToken ct)
    {
        var path = Path.Combine(Path.GetTempPath(), $"steward-config-{Environment.ProcessId}.yaml");
        await File.WriteAllTextAsync(path, yaml, ct).ConfigureAwait(false);
        try
        {
            var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
            foreach (var a in new[] { "-c", "exec ${EDITOR:-${VISUAL:-vi}} \"$1\"", "sh", path })
            {
                psi.ArgumentList.Add(a);
            }

            using var editor = Process.Start(psi) ?? throw new CliException("could not start the editor ($EDITOR)");
            await editor.WaitForExitAsync(ct).ConfigureAwait(false);
            if (editor.ExitCode != 0)
            {
                throw new CliException($"the editor exited with code {editor.ExitCode}; nothing was changed");
            }

            var edited = CliOutput.ParseYaml(await File.ReadAllTextAsync(path, ct).ConfigureAwait(false));
            return edited as JsonObject ?? throw new CliException("the edited configuration is not a YAML mapping; nothing was changed");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
