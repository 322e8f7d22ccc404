using Microsoft.Extensions.Logging;

namespace Steward.Testing;

/// <summary>Hands every log line (level Information and above, formatted) to <paramref name="sink"/>: for a simulation's trace.</summary>
public sealed class CapturingLoggerFactory(Action<LogLevel, string, string> sink) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, sink);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Logger(string category, Action<LogLevel, string, string> sink) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            ArgumentNullException.ThrowIfNull(formatter);
            if (IsEnabled(logLevel))
            {
                sink(logLevel, category, formatter(state, exception));
            }
        }
    }
}
