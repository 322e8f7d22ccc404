using Steward.Core.Cluster;
using Steward.Core.Postgres;

namespace Steward.Tests.Postgres;

public sealed class SlotNamesTests
{
    [Theory]
    [InlineData("node1", "node1")]
    [InlineData("Node-2", "node_2")]
    [InlineData("pg.db-01.example.com", "pg_db_01_example_com")]
    [InlineData("a b/c", "a_b_c")]
    [InlineData("snake_case_9", "snake_case_9")]
    [InlineData("nœud", "n_ud")]
    public void Member_names_become_lowercase_slot_names_of_letters_digits_and_underscores(string member, string slot)
    {
        Assert.Equal(slot, SlotNames.For(member));
    }

    [Fact]
    public void Long_names_are_cut_to_63_characters()
    {
        var slot = SlotNames.For(new string('x', 100));
        Assert.Equal(63, slot.Length);
    }

    [Fact]
    public void An_empty_name_is_refused()
    {
        Assert.Throws<ArgumentException>(() => SlotNames.For(""));
    }

    private static ClusterView Cluster(params (string Name, string? ReplicateFrom, bool NoStream)[] members) => new()
    {
        Leader = new LeaderKey("node1", 1, 7),
        Members = [.. members.Select(m => new Member(m.Name, new MemberData
        {
            Tags = new Dictionary<string, object?> { ["replicatefrom"] = m.ReplicateFrom, ["nostream"] = m.NoStream },
        }, 1, 1))],
    };

    [Fact]
    public void The_leader_keeps_a_slot_per_member_streaming_from_it_and_none_for_cascading_or_nostream_members()
    {
        var cluster = Cluster(("node1", null, false), ("node2", null, false), ("node3", "node2", false), ("node4", "gone", false),
            ("node5", "node1", false), ("node6", null, true));

        Assert.Equal(["node2", "node4", "node5"], SlotNames.MemberSlots(cluster, "node1", leader: true));
    }

    [Fact]
    public void A_replica_keeps_a_slot_per_member_that_replicates_from_it_the_leader_excepted()
    {
        var cluster = Cluster(("node1", "node2", false), ("node2", null, false), ("node3", "node2", false), ("node4", "node3", false),
            ("node5", "node2", true));

        Assert.Equal(["node3"], SlotNames.MemberSlots(cluster, "node2", leader: false));
        Assert.Equal(["node4"], SlotNames.MemberSlots(cluster, "node3", leader: false));
        Assert.Empty(SlotNames.MemberSlots(cluster, "node4", leader: false));
    }
}
