using Steward.Core.Configuration;
using Steward.IntegrationTests.Infrastructure;
using Steward.Router.PgBouncer;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Router;

/// <summary>The router's admin-console client against a real PgBouncer 1.18 (no cluster behind it: the console answers by itself).</summary>
public sealed class PgBouncerAdminTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("scram-sha-256")]
    [InlineData("md5")]
    [InlineData("plain")]
    [InlineData("trust")]
    public async Task The_admin_console_logs_in_and_pauses_and_resumes(string authType)
    {
        using var dir = new TempDir("pgb-admin");
        await using var bouncer = await TestPgBouncer.StartAsync(dir, "pgbouncer", FreePorts.Next(), output, authType);

        Assert.StartsWith("PgBouncer 1.", (await bouncer.AdminAsync("SHOW VERSION")).Rows[0][0], StringComparison.Ordinal);
        Assert.Equal("PAUSE", (await bouncer.AdminAsync("PAUSE")).Tag);
        var again = await Assert.ThrowsAsync<AdminConsoleException>(() => bouncer.AdminAsync("PAUSE"));
        Assert.Contains("already suspended/paused", again.Message, StringComparison.Ordinal);
        Assert.Equal("RECONNECT", (await bouncer.AdminAsync("RECONNECT")).Tag);
        Assert.Equal("RESUME", (await bouncer.AdminAsync("RESUME")).Tag);
        var notPaused = await Assert.ThrowsAsync<AdminConsoleException>(() => bouncer.AdminAsync("RESUME"));
        Assert.Contains("not paused", notPaused.Message, StringComparison.Ordinal);
        var databases = await bouncer.AdminAsync("SHOW DATABASES");
        Assert.Contains("paused", databases.Columns);
    }

    [Fact]
    public async Task A_wrong_password_or_an_unknown_port_is_an_admin_console_error_naming_the_address()
    {
        using var dir = new TempDir("pgb-admin");
        await using var bouncer = await TestPgBouncer.StartAsync(dir, "pgbouncer", FreePorts.Next(), output);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));

        var wrong = new PgBouncerConfig { Host = "127.0.0.1", Port = bouncer.Port, User = TestPgBouncer.AdminUser, Password = "wrong" };
        var refused = await Assert.ThrowsAsync<AdminConsoleException>(() => AdminConsole.ConnectAsync(wrong, cts.Token));
        output.WriteLine(refused.Message);
        Assert.NotNull(refused.SqlState);

        var nobody = new PgBouncerConfig { Host = "127.0.0.1", Port = FreePorts.Next(), User = "x", Password = "y" };
        var down = await Assert.ThrowsAsync<AdminConsoleException>(() => AdminConsole.ConnectAsync(nobody, cts.Token));
        Assert.Contains($"127.0.0.1:{nobody.Port}", down.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_password_can_come_from_a_passfile()
    {
        using var dir = new TempDir("pgb-admin");
        await using var bouncer = await TestPgBouncer.StartAsync(dir, "pgbouncer", FreePorts.Next(), output);
        var passfile = dir.Sub("pgpass");
        await File.WriteAllTextAsync(passfile, $"# comment\nother:1:pgbouncer:x:no\n127.0.0.1:{bouncer.Port}:pgbouncer:{TestPgBouncer.AdminUser}:{TestPgBouncer.AdminPassword}\n");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var config = new PgBouncerConfig { Host = "127.0.0.1", Port = bouncer.Port, User = TestPgBouncer.AdminUser, Passfile = passfile };
        await using var console = await AdminConsole.ConnectAsync(config, cts.Token);
        Assert.Equal("SHOW", (await console.ExecuteAsync("SHOW VERSION", cts.Token)).Tag);
    }
}
