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
}
