using System.Diagnostics;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>Hands test directories to the unprivileged PostgreSQL user.</summary>
internal static class Chown
{
    public static async Task PostgresAsync(string path)
    {
        using var p = Process.Start("chown", ["-R", "postgres:postgres", path]);
        await p.WaitForExitAsync();
    }

    public static void Postgres(string path)
    {
        using var p = Process.Start("chown", ["postgres:postgres", path]);
        p.WaitForExit();
    }
}
