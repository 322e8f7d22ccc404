using Steward.Core.Cluster;

namespace Steward.Core.Postgres;

/// <summary>A replication slot as <c>pg_replication_slots</c> shows it (temporary slots are never listed). LSNs as bytes.</summary>
public sealed record ReplicationSlot(string Name, string Type, string? Database = null, string? Plugin = null, bool Active = false)
{
    public long? RestartLsn { get; init; }
    public long? ConfirmedFlushLsn { get; init; }
    public long? Xmin { get; init; }
    public long? CatalogXmin { get; init; }

    /// <summary>PostgreSQL 13+'s wal_status (<c>reserved</c>, <c>extended</c>, <c>unreserved</c>, <c>lost</c>).</summary>
    public string? WalStatus { get; init; }
}

/// <summary>One change to the local server's replication slots.</summary>
public abstract record SlotAction(string Name);

public sealed record CreatePhysicalSlot(string Name) : SlotAction(Name);

public sealed record CreateLogicalSlot(string Name, string Database, string Plugin) : SlotAction(Name);

public sealed record DropSlot(string Name, string Reason) : SlotAction(Name);

/// <summary><c>pg_replication_slot_advance(name, lsn)</c>; a logical slot's is run connected to its database.</summary>
public sealed record AdvanceSlot(string Name, string? Database, long Lsn) : SlotAction(Name);

/// <summary>What one node has and is told, for <see cref="SlotPlanner"/>.</summary>
public sealed record SlotInputs
{
    /// <summary>This member's own slot name (<see cref="SlotNames.For"/>): never a slot on itself.</summary>
    public required string MySlot { get; init; }

    /// <summary>The slots of the other members: on a primary the slots it keeps for them (nostream members excluded).</summary>
    public IReadOnlyList<string> MemberSlots { get; init; } = [];

    /// <summary>
    /// Replica: the slots it keeps for the members that stream from it (<c>replicatefrom</c>, cascading replication),
    /// created when missing and never dropped while wanted; see <see cref="SlotNames.MemberSlots"/>.
    /// </summary>
    public IReadOnlyList<string> CascadeSlots { get; init; } = [];

    /// <summary>The slot names of every member (this one included): a permanent logical slot may not take one.</summary>
    public IReadOnlyList<string> AllMemberSlots { get; init; } = [];

    public SlotSettings Settings { get; init; } = SlotSettings.None;
    public bool UseSlots { get; init; } = true;

    /// <summary>Patroni: a <c>nofailover</c> member keeps no permanent slots (it never becomes the leader).</summary>
    public bool NoFailover { get; init; }

    /// <summary>Patroni: a <c>nostream</c> member keeps no logical slots (the primary gets no feedback from it).</summary>
    public bool NoStream { get; init; }

    /// <summary>Maintenance mode: nothing is dropped.</summary>
    public bool Paused { get; init; }

    public IReadOnlyList<ReplicationSlot> Existing { get; init; } = [];

    /// <summary>May a slot nobody wants be dropped now (member_slots_ttl since this node first found it unwanted)?</summary>
    public Func<string, bool> MayDrop { get; init; } = _ => true;

    /// <summary>Primary: its wal_level (a logical slot needs <c>logical</c>).</summary>
    public string? WalLevel { get; init; }

    /// <summary>Primary: its current WAL position (published as its own slot's position).</summary>
    public long? WriteLsn { get; init; }

    /// <summary>Primary: member_slots_ttl; 0 publishes the positions of permanent slots only (Patroni's filter).</summary>
    public long MemberSlotsTtl { get; init; } = 1800;

    /// <summary>Replica: how far it has replayed; a slot is never advanced past it.</summary>
    public long? ReplayLsn { get; init; }

    /// <summary>Replica: the slot positions the leader published (<see cref="ClusterStatus.Slots"/>).</summary>
    public IReadOnlyDictionary<string, long> Published { get; init; } = new Dictionary<string, long>();

    /// <summary>Replica: logical slots whose advance failed because their WAL is gone or the slot is invalid: copied again.</summary>
    public IReadOnlySet<string> Recopy { get; init; } = new HashSet<string>();
}

/// <summary>The outcome of <see cref="SlotPlanner"/>: run <see cref="Actions"/> in order; <see cref="Copy"/> (replica) needs a restart.</summary>
public sealed record SlotPlan
{
    public IReadOnlyList<SlotAction> Actions { get; init; } = [];

    /// <summary>Replica: logical slots to copy from the primary (missing here, and the leader published their position).</summary>
    public IReadOnlyList<string> Copy { get; init; } = [];

    /// <summary>Sentences to log (configuration that cannot be followed).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>Every slot this node keeps (member slots, permanent ones): never counted as unwanted.</summary>
    public IReadOnlySet<string> Wanted { get; init; } = new HashSet<string>();

    /// <summary>Primary: the positions to publish in the <c>status</c> key's <c>slots</c>.</summary>
    public IReadOnlyDictionary<string, long> Publish { get; init; } = new Dictionary<string, long>();
}

/// <summary>
/// Which replication slots a node creates, advances, copies and drops — Patroni's rules (slots.py, dcs Cluster), as a pure
/// function. Primary: a physical slot per other member, every permanent slot (physical, and logical ones when wal_level is
/// logical); it publishes their positions. Replica: the permanent physical slots, advanced to the position the leader
/// published; the permanent logical slots, copied from the primary once the leader published their position, then
/// advanced to it — never past what this replica has replayed. On both: a slot nobody wants, not matched by
/// <c>ignore_slots</c>, is dropped once <see cref="SlotInputs.MayDrop"/> allows (never while active, never in pause);
/// a kept slot whose type, database or plugin differs from the configuration is dropped (and made again), as is one
/// whose WAL is lost.
/// </summary>
public static class SlotPlanner
{
    public static SlotPlan ForPrimary(SlotInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var warnings = new List<string>();
        var wanted = new Dictionary<string, PermanentSlot>(StringComparer.Ordinal);
        if (inputs.UseSlots)
        {
            foreach (var member in inputs.MemberSlots.Where(m => m != inputs.MySlot))
            {
                wanted[member] = new PermanentSlot(member, SlotSettings.Physical);
            }
        }

        var permanent = Permanent(inputs, warnings);
        foreach (var slot in permanent)
        {
            wanted[slot.Name] = slot;
        }

        var actions = new List<SlotAction>();
        var dropped = Reconcile(inputs, wanted, actions, warnings);
        foreach (var slot in wanted.Values.Where(s => !inputs.Existing.Any(e => e.Name == s.Name)))
        {
            if (!slot.IsLogical)
            {
                actions.Add(new CreatePhysicalSlot(slot.Name));
            }
            else if (inputs.WalLevel is not null && inputs.WalLevel != "logical")
            {
                warnings.Add($"permanent logical slot {slot.Name} not created: wal_level is {inputs.WalLevel}, a logical slot needs wal_level logical (postgresql.parameters)");
            }
            else
            {
                actions.Add(new CreateLogicalSlot(slot.Name, slot.Database!, slot.Plugin!));
            }
        }

        var publish = new Dictionary<string, long>(StringComparer.Ordinal);
        if (inputs.UseSlots)
        {
            foreach (var slot in inputs.Existing.Where(e => wanted.TryGetValue(e.Name, out var spec) && Matches(spec, e) && !dropped.Contains(e.Name)))
            {
                if ((slot.Type == SlotSettings.Logical ? slot.ConfirmedFlushLsn : slot.RestartLsn) is { } lsn)
                {
                    publish[slot.Name] = lsn;
                }
            }

            if (inputs.WriteLsn is { } write)
            {
                publish[inputs.MySlot] = write;
            }

            if (inputs.MemberSlotsTtl == 0)
            {
                // Patroni's maybe_filter_permanent_slots: without member slot retention only permanent slots are published.
                var names = permanent.Select(p => p.Name).Concat(inputs.Settings.Permanent.Where(p => !p.IsLogical).Select(p => p.Name)).ToHashSet(StringComparer.Ordinal);
                foreach (var name in publish.Keys.Where(n => !names.Contains(n)).ToList())
                {
                    publish.Remove(name);
                }
            }
        }

        return new SlotPlan { Actions = actions, Warnings = warnings, Wanted = wanted.Keys.ToHashSet(StringComparer.Ordinal), Publish = publish };
    }

    public static SlotPlan ForReplica(SlotInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var warnings = new List<string>();
        var wanted = Permanent(inputs, warnings).ToDictionary(s => s.Name, StringComparer.Ordinal);
        if (inputs.UseSlots)
        {
            foreach (var member in inputs.CascadeSlots.Where(m => m != inputs.MySlot))
            {
                wanted.TryAdd(member, new PermanentSlot(member, SlotSettings.Physical));
            }
        }

        var actions = new List<SlotAction>();
        var dropped = Reconcile(inputs, wanted, actions, warnings);
        var copy = new List<string>();
        foreach (var slot in wanted.Values)
        {
            var existing = inputs.Existing.FirstOrDefault(e => e.Name == slot.Name);
            var published = inputs.Published.TryGetValue(slot.Name, out var lsn) ? lsn : (long?)null;
            if (existing is null || dropped.Contains(slot.Name))
            {
                if (!slot.IsLogical)
                {
                    if (existing is null)
                    {
                        actions.Add(new CreatePhysicalSlot(slot.Name));
                    }
                }
                else if (published is not null && existing is null)
                {
                    copy.Add(slot.Name); // only slots the leader has published a position for (Patroni: "feedback in DCS")
                }

                continue;
            }

            if (published is not { } target || existing.Active)
            {
                continue;
            }

            if (!slot.IsLogical)
            {
                if (existing.Xmin is null && existing.RestartLsn is { } restart && target > restart)
                {
                    actions.Add(new AdvanceSlot(slot.Name, null, target)); // PostgreSQL stops at what this standby replayed
                }
            }
            else if (inputs.Recopy.Contains(slot.Name))
            {
                copy.Add(slot.Name);
            }
            else if (inputs.ReplayLsn is { } replay && Math.Min(target, replay) is var advanceTo
                     && (existing.ConfirmedFlushLsn ?? 0) < advanceTo)
            {
                actions.Add(new AdvanceSlot(slot.Name, slot.Database, advanceTo));
            }
        }

        return new SlotPlan { Actions = actions, Copy = copy, Warnings = warnings, Wanted = wanted.Keys.ToHashSet(StringComparer.Ordinal) };
    }

    /// <summary>
    /// Why a logical slot read from the primary may not be installed on this replica now, or null when it may: it must be
    /// the configured slot (type, database, plugin), its state must have been read, and its confirmed_flush_lsn must not
    /// be ahead of what this replica has replayed (promoted before it caught up, the copy would skip the changes between).
    /// </summary>
    public static string? CopyProblem(PermanentSlot configured, ReplicationSlot onPrimary, int stateBytes, long? replayLsn)
    {
        ArgumentNullException.ThrowIfNull(configured);
        ArgumentNullException.ThrowIfNull(onPrimary);
        if (!Matches(configured, onPrimary))
        {
            return $"the slot on the primary ({Describe(onPrimary)}) is not the configured one ({Describe(configured)})";
        }

        if (stateBytes <= 0)
        {
            return "its state file could not be read on the primary";
        }

        if (onPrimary.ConfirmedFlushLsn is not { } confirmed || replayLsn is not { } replay)
        {
            return "its confirmed_flush_lsn or this replica's replay position is unknown";
        }

        return confirmed > replay
            ? $"its confirmed_flush_lsn {Lsn.Format(confirmed)} is ahead of what this replica has replayed ({Lsn.Format(replay)}); copied once it caught up"
            : null;
    }

    /// <summary>
    /// Patroni's readiness rule for a copied logical slot: safe to use after a failover once the primary's physical slot
    /// for this replica holds a catalog_xmin (hot_standby_feedback reaches it) that is at or past the logical slot's
    /// catalog_xmin on the primary when this was first seen, and not past the copy's own catalog_xmin.
    /// </summary>
    public static bool SafeAfterFailover(long primaryLogicalCatalogXmin, long? primaryPhysicalCatalogXmin, long? standbyLogicalCatalogXmin) =>
        primaryPhysicalCatalogXmin is { } physical && standbyLogicalCatalogXmin is { } standby
        && primaryLogicalCatalogXmin <= physical && physical <= standby;

    /// <summary>The permanent slots this node keeps (Patroni's _get_permanent_slots and _merge_permanent_slots).</summary>
    private static List<PermanentSlot> Permanent(SlotInputs inputs, List<string> warnings)
    {
        if (!inputs.UseSlots || inputs.NoFailover)
        {
            return [];
        }

        var result = new List<PermanentSlot>();
        foreach (var slot in inputs.Settings.Permanent)
        {
            if (!slot.IsLogical)
            {
                // A permanent physical slot named after a member keeps that member's slot; on that member itself there is none.
                if (slot.Name != inputs.MySlot)
                {
                    result.Add(slot);
                }
            }
            else if (inputs.AllMemberSlots.Contains(slot.Name) || inputs.MemberSlots.Contains(slot.Name) || slot.Name == inputs.MySlot)
            {
                warnings.Add($"permanent logical slot {slot.Name} ignored: it has the name of a member's physical replication slot");
            }
            else if (!inputs.NoStream)
            {
                result.Add(slot);
            }
        }

        return result;
    }

    /// <summary>Drops what must go (see the class summary); returns the names dropped.</summary>
    private static HashSet<string> Reconcile(SlotInputs inputs, Dictionary<string, PermanentSlot> wanted, List<SlotAction> actions, List<string> warnings)
    {
        var dropped = new HashSet<string>(StringComparer.Ordinal);
        foreach (var slot in inputs.Existing)
        {
            string? reason = null;
            if (wanted.TryGetValue(slot.Name, out var spec))
            {
                if (!Matches(spec, slot))
                {
                    reason = $"it is {Describe(slot)} and the configuration asks for {Describe(spec)}";
                }
                else if (slot.WalStatus == "lost")
                {
                    reason = "its WAL is lost (wal_status lost)";
                }
            }
            else if (!inputs.Settings.Ignores(slot.Name, slot.Type, slot.Database, slot.Plugin) && !inputs.Paused && !slot.Active && inputs.MayDrop(slot.Name))
            {
                actions.Add(new DropSlot(slot.Name, "no member, permanent slot or ignore_slots entry claims it"));
                dropped.Add(slot.Name);
                continue;
            }

            if (reason is null || inputs.Paused)
            {
                continue;
            }

            if (slot.Active)
            {
                warnings.Add($"replication slot {slot.Name} should be dropped ({reason}) but it is in use");
                continue;
            }

            actions.Add(new DropSlot(slot.Name, reason));
            dropped.Add(slot.Name);
        }

        return dropped;
    }

    /// <summary>Patroni's compare_slots: same type, and for a logical slot the same database and plugin.</summary>
    private static bool Matches(PermanentSlot spec, ReplicationSlot slot) =>
        spec.Type == slot.Type && (spec.Type == SlotSettings.Physical || (spec.Database == slot.Database && spec.Plugin == slot.Plugin));

    private static string Describe(ReplicationSlot slot) =>
        slot.Type == SlotSettings.Logical ? $"logical, database {slot.Database}, plugin {slot.Plugin}" : slot.Type;

    private static string Describe(PermanentSlot slot) =>
        slot.IsLogical ? $"logical, database {slot.Database}, plugin {slot.Plugin}" : slot.Type;
}
