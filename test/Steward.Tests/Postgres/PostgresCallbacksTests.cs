using Steward.Postgres;

namespace Steward.Tests.Postgres;

/// <summary>Which Patroni callback an observed change of PostgreSQL fires (issue 14, item 7).</summary>
public sealed class PostgresCallbacksTests
{
    private static readonly DateTimeOffset T1 = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset T2 = T1.AddMinutes(1);

    [Fact]
    public void The_first_inspection_is_only_recorded() =>
        Assert.Null(PostgresCallbacks.Transition(null, null, (true, "primary", T1)));

    [Fact]
    public void Up_and_down_are_on_start_and_on_stop_with_the_role()
    {
        Assert.Equal(("on_start", "replica"), PostgresCallbacks.Transition((false, null, null), null, (true, "replica", T1)));
        Assert.Equal(("on_stop", "primary"), PostgresCallbacks.Transition((true, "primary", T1), "primary", (false, null, null)));
        Assert.Null(PostgresCallbacks.Transition((true, "replica", T1), "replica", (true, "replica", T1)));
        Assert.Null(PostgresCallbacks.Transition((false, null, null), "replica", (false, null, null)));
    }

    [Fact]
    public void A_promotion_is_on_role_change_primary_and_a_restart_in_the_same_role_is_on_restart()
    {
        Assert.Equal(("on_role_change", "primary"), PostgresCallbacks.Transition((true, "replica", T1), "replica", (true, "primary", T1)));
        Assert.Equal(("on_restart", "replica"), PostgresCallbacks.Transition((true, "replica", T1), "replica", (true, "replica", T2)));
        Assert.Equal(("on_role_change", "replica"), PostgresCallbacks.Transition((true, "primary", T1), "primary", (true, "replica", T2)));
    }

    /// <summary>A demoted primary is stopped, then started as a replica: Patroni's on_stop, then on_role_change (not on_start).</summary>
    [Fact]
    public void Coming_back_in_another_role_is_on_role_change()
    {
        Assert.Equal(("on_stop", "primary"), PostgresCallbacks.Transition((true, "primary", T1), "primary", (false, null, null)));
        Assert.Equal(("on_role_change", "replica"), PostgresCallbacks.Transition((false, null, null), "primary", (true, "replica", T2)));
        Assert.Equal(("on_start", "replica"), PostgresCallbacks.Transition((false, null, null), "replica", (true, "replica", T2)));
    }
}
