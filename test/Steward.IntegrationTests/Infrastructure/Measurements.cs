using Xunit.Abstractions;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// Timings the closing notes quote. Written to the test's output and appended to one file per run
/// (<c>$STEWARD_MEASUREMENTS</c>, default /tmp/steward-measurements.txt), which scripts/test.sh prints at the end.
/// </summary>
internal static class Measurements
{
    private static readonly Lock Gate = new();

    public static void Report(ITestOutputHelper output, string line)
    {
        output.WriteLine("MEASURE " + line);
        var path = Environment.GetEnvironmentVariable("STEWARD_MEASUREMENTS") ?? "/tmp/steward-measurements.txt";
        lock (Gate)
        {
            File.AppendAllText(path, $"{DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} {line}\n");
        }
    }
}
