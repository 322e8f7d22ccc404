using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Core.Cluster;

namespace Steward.Tests.Cluster;

public sealed class PatroniCodecRoleTests
{
    /// <summary>Issue 14, item 6: Patroni 3 writes role "master" into members/&lt;name&gt;; Steward reads it as primary everywhere.</summary>
    [Fact]
    public void A_member_key_written_by_Patroni_3_with_role_master_reads_as_primary()
    {
        var keys = new[]
        {
            new RawKeyValue("members/old", Encoding.UTF8.GetBytes("""{"role": "master", "state": "running", "conn_url": "postgres://10.0.0.1:5432/postgres"}"""), 5, 0),
            new RawKeyValue("members/new", Encoding.UTF8.GetBytes("""{"role": "replica", "state": "running"}"""), 6, 0),
        };

        var view = PatroniCodec.Parse(7, keys, NullLogger.Instance);

        Assert.Equal("primary", view.GetMember("old")!.Data.Role);
        Assert.Equal("replica", view.GetMember("new")!.Data.Role);
    }
}
