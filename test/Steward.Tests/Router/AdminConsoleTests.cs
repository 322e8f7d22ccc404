using Steward.Router.PgBouncer;

namespace Steward.Tests.Router;

/// <summary>The pure parts of the PgBouncer admin-console client: the md5 answer and the passfile lookup.</summary>
public sealed class AdminConsoleTests
{
    [Fact]
    public void The_md5_answer_is_PostgreSQLs()
    {
        // md5(md5(password + user) + salt), as libpq computes it (checked with Python's hashlib).
        Assert.Equal("md5bb41a296aab6baccb36ff243a562abff", AdminConsole.Md5Password("postgres", "secret", [1, 2, 3, 4]));
    }

    [Theory]
    [InlineData("127.0.0.1", 6432, "pgbouncer", "admin", "exact")]
    [InlineData("10.0.0.1", 6432, "pgbouncer", "admin", "any host")]
    [InlineData("10.0.0.1", 6432, "pgbouncer", "other", null)]
    [InlineData("::1", 6432, "pgbouncer", "admin", "colon:host")]
    public void The_passfile_line_that_matches_first_wins(string host, int port, string database, string user, string? expected)
    {
        string[] lines =
        [
            "# host:port:database:user:password",
            "",
            "127.0.0.1:6432:pgbouncer:admin:exact",
            "\\:\\:1:6432:pgbouncer:admin:colon:host",
            "*:6432:pgbouncer:admin:any host",
        ];
        Assert.Equal(expected, Passfile.Find(lines, host, port, database, user));
    }
}
