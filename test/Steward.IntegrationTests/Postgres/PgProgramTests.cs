using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Core.Postgres;
using Steward.Postgres;

namespace Steward.IntegrationTests.Postgres;

public sealed class PgProgramTests
{
    [Fact]
    public async Task A_program_that_hangs_is_killed_at_its_timeout_and_named_in_the_error()
    {
        // a server that accepts and never answers: pg_basebackup waits forever for the startup response
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var program = new PgProgram(PgOsUser.Resolve("postgres"), PgTestCluster.BinDir, TimeProvider.System, NullLogger.Instance);

        var error = await Assert.ThrowsAsync<PostgresException>(() => program.RunAsync(
            "pg_basebackup", ["-D", "/tmp/steward-never", "-h", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--no-password"],
            TimeSpan.FromSeconds(1), CancellationToken.None));

        Assert.StartsWith("pg_basebackup did not finish within 1 s and was killed (pid ", error.Message, StringComparison.Ordinal);
        var pid = int.Parse(error.Message.Split("(pid ")[1].TrimEnd(')'), System.Globalization.CultureInfo.InvariantCulture);
        Assert.False(Directory.Exists($"/proc/{pid}"), $"pid {pid} still exists");
    }

    [Fact]
    public async Task A_failing_program_returns_its_exit_code_and_the_tail_of_its_output()
    {
        var program = new PgProgram(PgOsUser.Resolve("postgres"), PgTestCluster.BinDir, TimeProvider.System, NullLogger.Instance);

        var result = await program.RunAsync("pg_controldata", ["-D", "/nonexistent"], TimeSpan.FromSeconds(30), CancellationToken.None);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("/nonexistent", result.TailText, StringComparison.Ordinal);
        Assert.StartsWith("pg_controldata failed: pg_controldata exited with code 1:\n", result.Failure().Message, StringComparison.Ordinal);
    }
}
