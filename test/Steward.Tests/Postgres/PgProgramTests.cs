using Microsoft.Extensions.Logging.Abstractions;
using Steward.Postgres;

namespace Steward.Tests.Postgres;

public sealed class PgProgramTests
{
    private static PgProgram Program(bool asRoot) =>
        new(new PgOsUser("postgres", 101, 104, @switch: asRoot), "/usr/lib/postgresql/15/bin", TimeProvider.System, NullLogger.Instance);

    [Fact]
    public void The_agents_PG_environment_never_reaches_the_programs()
    {
        // A PGPASSWORD left in the agent's environment made Patroni's pg_basebackup authenticate with the wrong password.
        Environment.SetEnvironmentVariable("PGPASSWORD", "leaked");
        Environment.SetEnvironmentVariable("PGUSER", "leaked");
        try
        {
            var info = Program(asRoot: false).BuildStartInfo("/bin/pg_basebackup", ["-D", "/x"], new Dictionary<string, string> { ["PGPASSFILE"] = "/srv/pgpass" }, newSession: false);

            Assert.DoesNotContain("PGPASSWORD", info.Environment.Keys);
            Assert.DoesNotContain("PGUSER", info.Environment.Keys);
            Assert.Equal("/srv/pgpass", info.Environment["PGPASSFILE"]);
            Assert.Equal("/", info.WorkingDirectory);
        }
        finally
        {
            Environment.SetEnvironmentVariable("PGPASSWORD", null);
            Environment.SetEnvironmentVariable("PGUSER", null);
        }
    }

    [Fact]
    public void As_root_programs_switch_to_the_os_user_through_setpriv()
    {
        var info = Program(asRoot: true).BuildStartInfo("/bin/pg_ctl", ["start"], null, newSession: true);

        Assert.Equal("setsid", info.FileName);
        Assert.Equal(["--wait", "setpriv", "--reuid=101", "--regid=104", "--init-groups", "--", "/bin/pg_ctl", "start"], info.ArgumentList);
    }

    [Fact]
    public void Not_root_programs_run_directly()
    {
        var info = Program(asRoot: false).BuildStartInfo("/bin/initdb", ["-D", "/x"], null, newSession: false);

        Assert.Equal("/bin/initdb", info.FileName);
        Assert.Equal(["-D", "/x"], info.ArgumentList);
    }
}
