using Steward.Core.Cluster;
using Steward.Core.Postgres;

namespace Steward.Tests.Postgres;

/// <summary>Issues 14 and 16: which slots a primary and a replica create, advance, copy and drop (Patroni's rules).</summary>
public sealed class SlotPlannerTests
{
    private static readonly PermanentSlot Cdc = new("cdc", "logical", "postgres", "test_decoding");
    private static readonly PermanentSlot Keep = new("keep", "physical");

    private static SlotSettings Slots(params PermanentSlot[] permanent) => new() { Permanent = permanent };

    private static ReplicationSlot Physical(string name, long? restart = 100, bool active = false) =>
        new(name, "physical", Active: active) { RestartLsn = restart };

    private static ReplicationSlot Logical(string name, long confirmed = 100, string database = "postgres", string plugin = "test_decoding", bool active = false) =>
        new(name, "logical", database, plugin, active) { ConfirmedFlushLsn = confirmed, RestartLsn = confirmed - 10 };

    private static SlotInputs Primary(params ReplicationSlot[] existing) => new()
    {
        MySlot = "node1",
        MemberSlots = ["node2", "node3"],
        AllMemberSlots = ["node1", "node2", "node3"],
        Existing = existing,
        WalLevel = "logical",
        WriteLsn = 5000,
    };

    private static SlotInputs Replica(params ReplicationSlot[] existing) => new()
    {
        MySlot = "node2",
        MemberSlots = ["node1", "node3"],
        AllMemberSlots = ["node1", "node2", "node3"],
        Existing = existing,
        ReplayLsn = 1000,
        Settings = Slots(Cdc, Keep),
        Published = new Dictionary<string, long> { ["cdc"] = 800, ["keep"] = 700, ["node1"] = 5000 },
    };

    // ---------------------------------------------------------------- primary

    [Fact]
    public void The_primary_creates_member_slots_and_permanent_slots()
    {
        var plan = SlotPlanner.ForPrimary(Primary() with { Settings = Slots(Cdc, Keep) });

        Assert.Equal(
            [new CreatePhysicalSlot("node2"), new CreatePhysicalSlot("node3"), new CreateLogicalSlot("cdc", "postgres", "test_decoding"), new CreatePhysicalSlot("keep")],
            plan.Actions);
        Assert.Empty(plan.Warnings);
        Assert.Equal(["cdc", "keep", "node2", "node3"], plan.Wanted.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_primary_keeps_what_exists_and_never_drops_a_permanent_slot()
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2"), Physical("node3"), Logical("cdc"), Physical("keep")) with
        {
            Settings = Slots(Cdc, Keep),
            MayDrop = _ => true,
        });

        Assert.Empty(plan.Actions);
    }

    [Fact]
    public void A_logical_slot_is_not_created_without_wal_level_logical_and_says_why()
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2"), Physical("node3")) with { Settings = Slots(Cdc), WalLevel = "replica" });

        Assert.Empty(plan.Actions);
        var warning = Assert.Single(plan.Warnings);
        Assert.Contains("cdc not created: wal_level is replica", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_wal_level_does_not_block_the_creation()
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2"), Physical("node3")) with { Settings = Slots(Cdc), WalLevel = null });
        Assert.Equal([new CreateLogicalSlot("cdc", "postgres", "test_decoding")], plan.Actions);
    }

    [Fact]
    public void A_permanent_slot_named_like_this_member_is_not_created_on_it()
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2"), Physical("node3")) with { Settings = Slots(new PermanentSlot("node1", "physical")) });

        Assert.Empty(plan.Actions);
        Assert.DoesNotContain("node1", plan.Wanted);
    }

    [Fact]
    public void A_permanent_physical_slot_named_like_another_member_keeps_its_slot_when_the_member_is_gone()
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2"), Physical("node3")) with
        {
            MemberSlots = ["node2"],
            Settings = Slots(new PermanentSlot("node3", "physical")),
            MayDrop = _ => true,
        });

        Assert.Empty(plan.Actions);
        Assert.Contains("node3", plan.Wanted);
    }

    [Theory]
    [InlineData("node2")]
    [InlineData("node1")]
    public void A_permanent_logical_slot_named_like_a_member_is_ignored_with_a_warning(string name)
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2"), Physical("node3")) with { Settings = Slots(Cdc with { Name = name }) });

        Assert.Empty(plan.Actions);
        Assert.Equal([$"permanent logical slot {name} ignored: it has the name of a member's physical replication slot"], plan.Warnings);
    }

    [Fact]
    public void A_permanent_logical_slot_named_like_a_member_listed_only_among_all_members_is_ignored_too()
    {
        var plan = SlotPlanner.ForPrimary(Primary() with { MemberSlots = [], AllMemberSlots = ["gone"], Settings = Slots(Cdc with { Name = "gone" }) });
        Assert.Empty(plan.Actions);
        Assert.Single(plan.Warnings);
    }

    [Fact]
    public void Unknown_slots_are_dropped_only_when_allowed_inactive_not_ignored_and_not_paused()
    {
        var existing = new[] { Physical("node2"), Physical("node3"), Physical("old_phys"), Logical("old_logical"), Logical("busy", active: true), Logical("debezium") };
        var asked = new List<string>();
        var inputs = Primary(existing) with
        {
            Settings = new SlotSettings { Ignore = [new SlotMatcher(Name: "debezium")] },
            MayDrop = name =>
            {
                asked.Add(name);
                return name != "old_phys";
            },
        };

        var plan = SlotPlanner.ForPrimary(inputs);

        Assert.Equal([new DropSlot("old_logical", "no member, permanent slot or ignore_slots entry claims it")], plan.Actions);
        Assert.Equal(["old_phys", "old_logical"], asked); // not asked for wanted, active or ignored slots
        Assert.Empty(SlotPlanner.ForPrimary(inputs with { Paused = true }).Actions);
        Assert.Empty(SlotPlanner.ForPrimary(inputs with { MayDrop = _ => false }).Actions);
    }

    [Fact]
    public void A_kept_slot_whose_configuration_changed_is_dropped_and_made_again_next_time()
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2"), Physical("node3"), Logical("cdc", plugin: "wal2json")) with { Settings = Slots(Cdc) });

        var drop = Assert.IsType<DropSlot>(Assert.Single(plan.Actions));
        Assert.Equal("cdc", drop.Name);
        Assert.Equal("it is logical, database postgres, plugin wal2json and the configuration asks for logical, database postgres, plugin test_decoding", drop.Reason);
        Assert.DoesNotContain("cdc", plan.Publish.Keys);
    }

    [Theory]
    [InlineData("other_db", "test_decoding")]
    [InlineData("postgres", "pgoutput")]
    public void A_logical_slot_on_another_database_or_plugin_is_not_the_configured_one(string database, string plugin)
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2"), Physical("node3"), Logical("cdc", database: database, plugin: plugin)) with { Settings = Slots(Cdc) });
        Assert.Equal("cdc", Assert.IsType<DropSlot>(Assert.Single(plan.Actions)).Name);
    }

    [Fact]
    public void A_physical_slot_where_a_logical_one_is_configured_is_replaced()
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2"), Physical("node3"), Physical("cdc")) with { Settings = Slots(Cdc) });
        Assert.Equal("it is physical and the configuration asks for logical, database postgres, plugin test_decoding",
            Assert.IsType<DropSlot>(Assert.Single(plan.Actions)).Reason);
    }

    [Fact]
    public void A_slot_that_must_go_but_is_in_use_is_kept_with_a_warning_and_nothing_goes_in_pause()
    {
        var inputs = Primary(Physical("node2"), Physical("node3"), Logical("cdc", plugin: "wal2json", active: true)) with { Settings = Slots(Cdc) };

        var plan = SlotPlanner.ForPrimary(inputs);
        Assert.Empty(plan.Actions);
        Assert.Equal(["replication slot cdc should be dropped (it is logical, database postgres, plugin wal2json and the configuration asks for logical, database postgres, plugin test_decoding) but it is in use"], plan.Warnings);

        var paused = SlotPlanner.ForPrimary(inputs with { Existing = [Physical("node2"), Physical("node3"), Logical("cdc", plugin: "wal2json")], Paused = true });
        Assert.Empty(paused.Actions);
        Assert.Empty(paused.Warnings);
    }

    [Fact]
    public void A_kept_slot_whose_wal_is_lost_is_dropped()
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2") with { WalStatus = "lost" }, Physical("node3") with { WalStatus = "extended" }));
        Assert.Equal([new DropSlot("node2", "its WAL is lost (wal_status lost)")], plan.Actions);
    }

    [Fact]
    public void The_primary_publishes_the_positions_of_its_slots_and_its_own()
    {
        var plan = SlotPlanner.ForPrimary(Primary(Physical("node2", 300), Physical("node3", null), Logical("cdc", 700), Physical("keep", 200), Logical("stray", 999)) with
        {
            Settings = Slots(Cdc, Keep),
            MayDrop = _ => false,
        });

        Assert.Equal(new Dictionary<string, long> { ["node2"] = 300, ["cdc"] = 700, ["keep"] = 200, ["node1"] = 5000 }, plan.Publish);
    }

    [Fact]
    public void Without_member_slot_retention_only_permanent_slots_are_published()
    {
        var inputs = Primary(Physical("node2", 300), Physical("node3", 400), Logical("cdc", 700), Physical("keep", 200)) with
        {
            Settings = Slots(Cdc, Keep, new PermanentSlot("node1", "physical")),
            MemberSlotsTtl = 0,
        };

        Assert.Equal(new Dictionary<string, long> { ["cdc"] = 700, ["keep"] = 200, ["node1"] = 5000 }, SlotPlanner.ForPrimary(inputs).Publish);
        Assert.Equal(new Dictionary<string, long> { ["cdc"] = 700, ["keep"] = 200 },
            SlotPlanner.ForPrimary(inputs with { Settings = Slots(Cdc, Keep) }).Publish);
    }

    [Fact]
    public void Without_use_slots_nothing_is_wanted_or_published()
    {
        var plan = SlotPlanner.ForPrimary(Primary() with { UseSlots = false, Settings = Slots(Cdc, Keep) });
        Assert.Empty(plan.Actions);
        Assert.Empty(plan.Publish);
        Assert.Empty(plan.Wanted);
    }

    [Fact]
    public void A_nofailover_member_keeps_no_permanent_slots_and_a_nostream_one_no_logical_ones()
    {
        Assert.Equal([new CreatePhysicalSlot("node2"), new CreatePhysicalSlot("node3")],
            SlotPlanner.ForPrimary(Primary() with { Settings = Slots(Cdc, Keep), NoFailover = true }).Actions);
        Assert.Equal([new CreatePhysicalSlot("node2"), new CreatePhysicalSlot("node3"), new CreatePhysicalSlot("keep")],
            SlotPlanner.ForPrimary(Primary() with { Settings = Slots(Cdc, Keep), NoStream = true }).Actions);
    }

    [Fact]
    public void The_primary_never_wants_a_slot_for_itself_from_the_member_list()
    {
        var plan = SlotPlanner.ForPrimary(Primary() with { MemberSlots = ["node1", "node2"] });
        Assert.Equal([new CreatePhysicalSlot("node2")], plan.Actions);
    }

    // ---------------------------------------------------------------- replica

    [Fact]
    public void A_replica_creates_permanent_physical_slots_and_copies_published_logical_ones()
    {
        var plan = SlotPlanner.ForReplica(Replica());

        Assert.Equal([new CreatePhysicalSlot("keep")], plan.Actions);
        Assert.Equal(["cdc"], plan.Copy);
        Assert.Equal(["cdc", "keep"], plan.Wanted.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_logical_slot_without_a_published_position_is_not_copied_yet()
    {
        var plan = SlotPlanner.ForReplica(Replica() with { Published = new Dictionary<string, long>() });
        Assert.Empty(plan.Copy);
        Assert.Equal([new CreatePhysicalSlot("keep")], plan.Actions);
    }

    [Fact]
    public void A_replica_keeps_no_member_slots_and_drops_strays_as_allowed()
    {
        var plan = SlotPlanner.ForReplica(Replica(Physical("node1"), Physical("keep", 700), Logical("cdc", 800)));
        Assert.Equal([new DropSlot("node1", "no member, permanent slot or ignore_slots entry claims it")], plan.Actions);
        Assert.Empty(SlotPlanner.ForReplica(Replica(Physical("node1"), Physical("keep", 700), Logical("cdc", 800)) with { MayDrop = _ => false }).Actions);
    }

    [Fact]
    public void A_replica_keeps_a_slot_for_each_member_that_replicates_from_it_and_never_advances_it()
    {
        var create = SlotPlanner.ForReplica(Replica(Physical("keep", 700), Logical("cdc", 800)) with { CascadeSlots = ["node3"] });
        Assert.Equal([new CreatePhysicalSlot("node3")], create.Actions);

        var kept = SlotPlanner.ForReplica(Replica(Physical("keep", 700), Logical("cdc", 800), Physical("node3", 50)) with
        {
            CascadeSlots = ["node3"],
            Published = new Dictionary<string, long> { ["cdc"] = 800, ["keep"] = 700 },
        });
        Assert.Empty(kept.Actions);
        Assert.Contains("node3", kept.Wanted);

        var gone = SlotPlanner.ForReplica(Replica(Physical("keep", 700), Logical("cdc", 800), Physical("node3", 50)));
        Assert.Equal([new DropSlot("node3", "no member, permanent slot or ignore_slots entry claims it")], gone.Actions);
        Assert.DoesNotContain(new CreatePhysicalSlot("node3"), SlotPlanner.ForReplica(Replica() with { CascadeSlots = ["node3"], UseSlots = false }).Actions);
    }

    [Fact]
    public void A_copied_logical_slot_is_advanced_to_the_published_position()
    {
        var plan = SlotPlanner.ForReplica(Replica(Physical("keep", 700), Logical("cdc", 500)));
        Assert.Equal([new AdvanceSlot("cdc", "postgres", 800)], plan.Actions);
        Assert.Empty(plan.Copy);
    }

    [Theory]
    [InlineData(600L, 600L)]
    [InlineData(800L, 800L)]
    [InlineData(5000L, 800L)]
    public void A_logical_slot_is_never_advanced_past_what_the_replica_replayed(long replay, long expected)
    {
        var plan = SlotPlanner.ForReplica(Replica(Physical("keep", 700), Logical("cdc", 500)) with { ReplayLsn = replay });
        Assert.Equal([new AdvanceSlot("cdc", "postgres", expected)], plan.Actions);
    }

    [Theory]
    [InlineData(500L, 500L)] // already at the replay position
    [InlineData(800L, 1000L)] // already at the published position
    [InlineData(900L, 1000L)] // ahead of the published position
    [InlineData(100L, null)] // replay position unknown
    public void A_logical_slot_at_or_past_its_target_is_not_advanced(long confirmed, long? replay)
    {
        var plan = SlotPlanner.ForReplica(Replica(Physical("keep", 700), Logical("cdc", confirmed)) with { ReplayLsn = replay });
        Assert.Empty(plan.Actions);
    }

    [Fact]
    public void An_active_slot_is_not_advanced()
    {
        var plan = SlotPlanner.ForReplica(Replica(Physical("keep", 100, active: true), Logical("cdc", 500, active: true)));
        Assert.Empty(plan.Actions);
    }

    [Fact]
    public void A_permanent_physical_slot_is_advanced_to_the_published_position_only_forward_and_without_xmin()
    {
        Assert.Equal([new AdvanceSlot("keep", null, 700)], SlotPlanner.ForReplica(Replica(Physical("keep", 600), Logical("cdc", 800))).Actions);
        Assert.Empty(SlotPlanner.ForReplica(Replica(Physical("keep", 700), Logical("cdc", 800))).Actions);
        Assert.Empty(SlotPlanner.ForReplica(Replica(Physical("keep", 900), Logical("cdc", 800))).Actions);
        Assert.Empty(SlotPlanner.ForReplica(Replica(Physical("keep", null), Logical("cdc", 800))).Actions);
        Assert.Empty(SlotPlanner.ForReplica(Replica(Physical("keep", 600) with { Xmin = 12 }, Logical("cdc", 800))).Actions);
    }

    [Fact]
    public void A_slot_whose_advance_failed_for_lost_wal_is_copied_again_instead()
    {
        var plan = SlotPlanner.ForReplica(Replica(Physical("keep", 700), Logical("cdc", 500)) with { Recopy = new HashSet<string> { "cdc" } });
        Assert.Empty(plan.Actions);
        Assert.Equal(["cdc"], plan.Copy);
    }

    [Fact]
    public void A_replica_slot_with_another_plugin_is_dropped_and_copied_later_not_now()
    {
        var plan = SlotPlanner.ForReplica(Replica(Physical("keep", 700), Logical("cdc", 500, plugin: "wal2json")));
        Assert.Equal("cdc", Assert.IsType<DropSlot>(Assert.Single(plan.Actions)).Name);
        Assert.Empty(plan.Copy); // copied at the next cycle, from the fresh list
    }

    [Fact]
    public void A_replica_with_nofailover_keeps_no_permanent_slots()
    {
        var plan = SlotPlanner.ForReplica(Replica(Logical("cdc", 500)) with { NoFailover = true, MayDrop = _ => false });
        Assert.Empty(plan.Actions);
        Assert.Empty(plan.Copy);
        Assert.Empty(plan.Wanted);
    }

    [Fact]
    public void A_replica_does_not_make_its_own_slot_nor_publish_anything()
    {
        var plan = SlotPlanner.ForReplica(Replica(Logical("cdc", 800)) with { Settings = Slots(Cdc, new PermanentSlot("node2", "physical")) });
        Assert.Empty(plan.Actions);
        Assert.Empty(plan.Publish);
    }

    // ---------------------------------------------------------------- copy and readiness

    [Fact]
    public void A_copy_is_installed_only_when_it_is_the_configured_slot_and_not_ahead_of_replay()
    {
        var onPrimary = Logical("cdc", 900);

        Assert.Null(SlotPlanner.CopyProblem(Cdc, onPrimary, 200, 900));
        Assert.Null(SlotPlanner.CopyProblem(Cdc, onPrimary, 1, 5000));
        Assert.Equal("its confirmed_flush_lsn 0/384 is ahead of what this replica has replayed (0/383); copied once it caught up",
            SlotPlanner.CopyProblem(Cdc, onPrimary, 200, 899));
        Assert.Equal("its confirmed_flush_lsn or this replica's replay position is unknown", SlotPlanner.CopyProblem(Cdc, onPrimary, 200, null));
        Assert.Equal("its confirmed_flush_lsn or this replica's replay position is unknown",
            SlotPlanner.CopyProblem(Cdc, onPrimary with { ConfirmedFlushLsn = null }, 200, 900));
        Assert.Equal("its state file could not be read on the primary", SlotPlanner.CopyProblem(Cdc, onPrimary, 0, 900));
        Assert.Equal("the slot on the primary (logical, database postgres, plugin wal2json) is not the configured one (logical, database postgres, plugin test_decoding)",
            SlotPlanner.CopyProblem(Cdc, Logical("cdc", 900, plugin: "wal2json"), 200, 900));
    }

    [Theory]
    [InlineData(10L, 10L, 10L, true)]
    [InlineData(10L, 12L, 15L, true)]
    [InlineData(10L, 9L, 15L, false)] // the physical slot's catalog_xmin has not overtaken the logical one's yet
    [InlineData(10L, 16L, 15L, false)] // past the copy's catalog_xmin
    [InlineData(10L, null, 15L, false)] // no feedback
    [InlineData(10L, 12L, null, false)] // no copy
    public void A_copy_is_safe_after_failover_once_the_primary_keeps_its_catalog_rows(long primaryLogical, long? primaryPhysical, long? standby, bool safe) =>
        Assert.Equal(safe, SlotPlanner.SafeAfterFailover(primaryLogical, primaryPhysical, standby));
}
