using Steward.Postgres;

namespace Steward.Tests.Postgres;

public sealed class PgControlDataTests
{
    [Fact]
    public void System_id_state_and_checkpoint_timeline_are_read_from_pg_controldata_output()
    {
        const string output = """
            pg_control version number:            1300
            Catalog version number:               202209061
            Database system identifier:           7363012345678901234
            Database cluster state:               shut down in recovery
            pg_control last modified:             Tue 20 May 2026 10:00:00 AM UTC
            Latest checkpoint location:           0/3000060
            Latest checkpoint's REDO location:    0/3000028
            Latest checkpoint's REDO WAL file:    000000020000000000000003
            Latest checkpoint's TimeLineID:       2
            Latest checkpoint's PrevTimeLineID:   1
            """;

        Assert.Equal(new PgControlData("7363012345678901234", "shut down in recovery", 2), PgControlData.Parse(output));
    }
}
