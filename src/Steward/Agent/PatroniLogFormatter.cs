using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace Steward.Agent;

/// <summary>
/// One line per event, as Patroni writes them: <c>2026-11-26 11:30:00,123 INFO: no action. I am (node2), …</c>, so
/// an operator's greps and log pipelines carry over.
/// </summary>
internal sealed class PatroniLogFormatter() : ConsoleFormatter(FormatterName)
{
    public const string FormatterName = "patroni";

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        var message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        var level = logEntry.LogLevel switch
        {
            LogLevel.Trace or LogLevel.Debug => "DEBUG",
            LogLevel.Information => "INFO",
            LogLevel.Warning => "WARNING",
            LogLevel.Error => "ERROR",
            _ => "CRITICAL",
        };
        var now = DateTimeOffset.Now;
        textWriter.Write(now.ToString("yyyy-MM-dd HH:mm:ss,fff", CultureInfo.InvariantCulture));
        textWriter.Write(' ');
        textWriter.Write(level);
        textWriter.Write(": ");
        textWriter.WriteLine(message);
        if (logEntry.Exception is { } e && logEntry.LogLevel >= LogLevel.Error)
        {
            textWriter.WriteLine(e.ToString());
        }
    }
}
