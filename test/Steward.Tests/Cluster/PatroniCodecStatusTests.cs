using System.Text;
using Steward.Core.Cluster;

namespace Steward.Tests.Cluster;

/// <summary>Issue 16: the <c>status</c> key in Patroni 3/4's shape, read as Patroni's Status.from_node reads it.</summary>
public sealed class PatroniCodecStatusTests
{
    private static ClusterStatus? Read(string json) => PatroniCodec.ReadStatus(Encoding.UTF8.GetBytes(json));

    [Fact]
    public void Patronis_status_is_read_with_slots_and_retain_slots()
    {
        var status = Read("""{"optime":67108960,"slots":{"cdc":67108800,"node1":67108960},"retain_slots":["node1","node2"]}""")!;

        Assert.Equal(67108960, status.Optime);
        Assert.Equal(new Dictionary<string, long> { ["cdc"] = 67108800, ["node1"] = 67108960 }, status.Slots);
        Assert.Equal(["node1", "node2"], status.RetainSlots);
        Assert.Null(status.Timeline);
    }

    [Fact]
    public void What_steward_writes_patroni_reads_back_the_same()
    {
        var status = new ClusterStatus { Optime = 5, Timeline = 2, Slots = new Dictionary<string, long> { ["cdc"] = 4 }, RetainSlots = ["a"] };
        var json = Encoding.UTF8.GetString(PatroniCodec.Serialize(status));

        Assert.Equal("""{"optime":5,"timeline":2,"slots":{"cdc":4},"retain_slots":["a"]}""", json);
        var back = Read(json)!;
        Assert.Equal((5L, 2L), (back.Optime, back.Timeline!.Value));
        Assert.Equal(status.Slots, back.Slots);
        Assert.Equal(status.RetainSlots, back.RetainSlots);
        Assert.Equal("""{"optime":5}""", Encoding.UTF8.GetString(PatroniCodec.Serialize(new ClusterStatus { Optime = 5 })));
    }

    [Fact]
    public void Slots_may_be_json_text_and_bad_parts_are_left_out()
    {
        var status = Read("""{"optime":"42","slots":"{\"cdc\": 7, \"bad\": \"x\", \"s\": \"9\"}","retain_slots":"[\"n1\", 3]"}""")!;
        Assert.Equal(42, status.Optime);
        Assert.Equal(new Dictionary<string, long> { ["cdc"] = 7, ["s"] = 9 }, status.Slots);
        Assert.Equal(["n1"], status.RetainSlots);

        var broken = Read("""{"optime":1,"slots":"not json","retain_slots":{"a":1}}""")!;
        Assert.Null(broken.Slots);
        Assert.Null(broken.RetainSlots);
        Assert.Null(Read("""{"optime":1,"slots":[1]}""")!.Slots);
    }

    [Fact]
    public void A_bare_number_is_patroni_2s_optime_and_anything_else_is_no_status()
    {
        Assert.Equal(77, Read("77")!.Optime);
        Assert.Null(Read("[1]"));
        Assert.Null(Read("\"x\""));
        Assert.Equal(0, Read("{}")!.Optime);
        Assert.Throws<FormatException>(() => Read("""{"optime": "abc"}"""));
    }
}
