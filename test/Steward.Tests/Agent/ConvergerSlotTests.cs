using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Steward.Agent;
using Steward.Agent.Fence;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;
using Steward.Core.Postgres;
using Steward.Testing;

namespace Steward.Tests.Agent;

/// <summary>
/// Issues 14 and 16: the agent carries out the slot plans — the leader's slots and the <c>status</c> key, a replica's copy
/// of a logical slot (stop, install, start, in that order, only when the copy is not ahead of replay) and its re-copy
/// after an advance failed for lost WAL.
/// </summary>
public sealed class ConvergerSlotTests
{
    private static readonly DynamicConfig Settings = DynamicConfigJson.TryParse(
        """{"slots": {"cdc": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}, "keep": {"type": "physical"}}}""", out _)!;

    private static readonly HostPort LeaderAddress = new("127.0.0.1", 5433);

    [Fact]
    public async Task The_leader_creates_its_slots_and_publishes_their_positions_in_the_status_key()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var pg = new SlotPostgres { InRecovery = false, Slots = [new ReplicationSlot("cdc", "logical", "postgres", "test_decoding") { ConfirmedFlushLsn = 700 }] };
        var converger = Converger(store, pg, time);
        var input = Input(pg, Cluster(leader: "node1"));

        await converger.ExecuteAsync(new HaPlan("housekeeping", [new LeaderHousekeeping()]), input, CancellationToken.None);

        Assert.Equal([new CreatePhysicalSlot("node2"), new CreatePhysicalSlot("keep")], pg.Applied);
        var status = (await store.LoadAsync(CancellationToken.None)).Status!;
        Assert.Equal(5000, status.Optime);
        Assert.Equal(new Dictionary<string, long> { ["cdc"] = 700, ["node1"] = 5000 }, status.Slots);
        Assert.Equal(["node1", "node2"], status.RetainSlots);
    }

    [Fact]
    public async Task A_replica_copies_a_published_logical_slot_with_a_restart_when_the_copy_is_not_ahead_of_replay()
    {
        var time = new FakeTimeProvider();
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var pg = new SlotPostgres { ReplayLsn = 900, Slots = [new ReplicationSlot("keep", "physical") { RestartLsn = 800 }] };
        pg.OnPrimary.Add(new SlotCopy(new ReplicationSlot("cdc", "logical", "postgres", "test_decoding") { ConfirmedFlushLsn = 900 }, [1, 2, 3]));
        var converger = Converger(store, pg, time);

        await converger.SyncReplicaSlotsAsync(Input(pg, Cluster(leader: "node2", published: 800)), pg.State, CancellationToken.None);

        Assert.Equal(["list", "read cdc", "inspect", "stop", "install cdc", "inspect", "start Replica 127.0.0.1:5433 slot node1"], pg.Calls);
        Assert.Equal("127.0.0.1:5433", converger.CurrentUpstream);
    }

    [Fact]
    public async Task A_copy_ahead_of_what_the_replica_replayed_waits_and_postgres_keeps_running()
    {
        var time = new FakeTimeProvider();
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var pg = new SlotPostgres { ReplayLsn = 899 };
        pg.OnPrimary.Add(new SlotCopy(new ReplicationSlot("cdc", "logical", "postgres", "test_decoding") { ConfirmedFlushLsn = 900 }, [1, 2, 3]));
        var converger = Converger(store, pg, time);

        await converger.SyncReplicaSlotsAsync(Input(pg, Cluster(leader: "node2", published: 800)), pg.State, CancellationToken.None);

        Assert.Equal(["list", "read cdc", "inspect"], pg.Calls.Where(c => !c.StartsWith("apply", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task An_advance_that_fails_for_lost_wal_copies_the_slot_again_at_the_next_cycle()
    {
        var time = new FakeTimeProvider();
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var pg = new SlotPostgres
        {
            ReplayLsn = 900,
            Slots = [new ReplicationSlot("cdc", "logical", "postgres", "test_decoding") { ConfirmedFlushLsn = 500 }, new ReplicationSlot("keep", "physical") { RestartLsn = 800 }],
            Fail = new SlotActionFailure("58P01", "requested WAL segment has already been removed"),
        };
        pg.OnPrimary.Add(new SlotCopy(new ReplicationSlot("cdc", "logical", "postgres", "test_decoding") { ConfirmedFlushLsn = 850 }, [1]));
        var converger = Converger(store, pg, time);
        var input = Input(pg, Cluster(leader: "node2", published: 800));

        await converger.SyncReplicaSlotsAsync(input, pg.State, CancellationToken.None);
        Assert.Equal([new AdvanceSlot("cdc", "postgres", 800)], pg.Applied);
        Assert.DoesNotContain("stop", pg.Calls);

        pg.Calls.Clear();
        pg.Fail = null;
        await converger.SyncReplicaSlotsAsync(input, pg.State, CancellationToken.None);
        Assert.Contains("install cdc", pg.Calls);
        Assert.Equal([new AdvanceSlot("cdc", "postgres", 800)], pg.Applied); // not advanced again: copied instead
    }

    [Fact]
    public async Task A_replica_does_nothing_with_slots_without_a_leader_or_use_slots()
    {
        var time = new FakeTimeProvider();
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var pg = new SlotPostgres { ReplayLsn = 900 };
        var converger = Converger(store, pg, time);
        var state = pg.State;

        await converger.SyncReplicaSlotsAsync(Input(pg, Cluster(leader: null, published: 800)), state, CancellationToken.None);
        await converger.SyncReplicaSlotsAsync(Input(pg, Cluster(leader: "node1", published: 800)), state, CancellationToken.None); // I lead
        await converger.SyncReplicaSlotsAsync(Input(pg, Cluster(leader: "node2", published: 800)) with
        {
            Settings = Settings with { Postgresql = new DynamicPostgresConfig { UseSlots = false } },
        }, state, CancellationToken.None);

        Assert.Empty(pg.Calls);
    }

    private static Converger Converger(IClusterStore store, SlotPostgres pg, TimeProvider time) =>
        new(Config(), store, pg, new NullFence(), new AgentStatus(time), time, NullLogger.Instance, () => 0);

    private static HaInput Input(SlotPostgres pg, ClusterView cluster) => new()
    {
        Me = "node1",
        Pg = pg.State,
        Settings = Settings,
        Tags = new TagsConfig(),
        Now = DateTimeOffset.UnixEpoch,
        Cluster = cluster,
    };

    private static ClusterView Cluster(string? leader, long? published = null) => new()
    {
        Leader = leader is null ? null : new LeaderKey(leader, 1, 1),
        Members =
        [
            new Member("node1", new MemberData { ConnUrl = "postgres://127.0.0.1:5432/postgres" }, 1, 1),
            new Member("node2", new MemberData { ConnUrl = ConnUrl.ForPostgres(LeaderAddress) }, 1, 1),
        ],
        Status = published is { } p ? new ClusterStatus { Optime = 5000, Slots = new Dictionary<string, long> { ["cdc"] = p, ["keep"] = p } } : null,
    };

    private static StewardConfig Config() => new()
    {
        Scope = "t",
        Name = "node1",
        RestApi = new RestApiConfig { Listen = new HostPort("127.0.0.1", 8008), ConnectAddress = new HostPort("127.0.0.1", 8008) },
        Etcd3 = new Etcd3Config { Endpoints = ["127.0.0.1:2379"] },
        Postgresql = new PostgresqlConfig
        {
            Listen = new HostPort("127.0.0.1", 5432),
            ConnectAddress = new HostPort("127.0.0.1", 5432),
            DataDir = "/nonexistent/steward-test",
            Pgpass = "/nonexistent/pgpass",
            Authentication = new PostgresAuthentication { Superuser = new Credentials("postgres", "x"), Replication = new Credentials("replicator", "x") },
        },
    };

    private sealed class NullFence : IPrimaryFence
    {
        public bool Armed => false;
        public void Arm(int? postmasterPid) { }
        public void Disarm() { }
        public void Extend(long deadlineTimestamp) { }
        public bool FireNow(string reason) => false;
    }

    /// <summary>A running server whose slots are a list; records every call in order.</summary>
    private sealed class SlotPostgres : IPostgresControl
    {
        public List<string> Calls { get; } = [];
        public List<SlotAction> Applied { get; } = [];
        public List<SlotCopy> OnPrimary { get; } = [];
        public IReadOnlyList<ReplicationSlot> Slots { get; set; } = [];
        public bool InRecovery { get; init; } = true;
        public long ReplayLsn { get; init; }
        public SlotActionFailure? Fail { get; set; }
        private bool _running = true;

        public PgState State => new()
        {
            DataDir = DataDirStatus.Initialized, SystemId = "1", Running = _running, PostmasterPid = _running ? 4242 : null,
            Accepting = _running, InRecovery = _running ? InRecovery : null, Timeline = 1, WriteLsn = InRecovery ? null : 5000, ReplayLsn = InRecovery ? ReplayLsn : null,
        };

        public Task<PgState> InspectAsync(CancellationToken ct)
        {
            Calls.Add("inspect");
            return Task.FromResult(State);
        }

        public Task<LocalSlots?> ListReplicationSlotsAsync(CancellationToken ct)
        {
            Calls.Add("list");
            return Task.FromResult<LocalSlots?>(new LocalSlots(Slots, "logical"));
        }

        public Task<SlotActionFailure?> ApplySlotActionAsync(SlotAction action, CancellationToken ct)
        {
            Calls.Add($"apply {action.Name}");
            Applied.Add(action);
            return Task.FromResult(action is AdvanceSlot ? Fail : null);
        }

        public Task<IReadOnlyList<SlotCopy>> ReadLogicalSlotsAsync(HostPort leader, IReadOnlyCollection<string> names, CancellationToken ct)
        {
            Assert.Equal(LeaderAddress, leader);
            Calls.Add($"read {string.Join(",", names)}");
            return Task.FromResult<IReadOnlyList<SlotCopy>>([.. OnPrimary.Where(c => names.Contains(c.Slot.Name))]);
        }

        public Task InstallSlotCopiesAsync(IReadOnlyList<SlotCopy> copies, CancellationToken ct)
        {
            Assert.False(_running, "slot files are written only while PostgreSQL is stopped");
            Calls.Add($"install {string.Join(",", copies.Select(c => c.Slot.Name))}");
            Slots = [.. Slots.Where(s => !copies.Any(c => c.Slot.Name == s.Name)), .. copies.Select(c => c.Slot)];
            return Task.CompletedTask;
        }

        public Task StopAsync(StopMode mode, CancellationToken ct)
        {
            Calls.Add("stop");
            _running = false;
            return Task.CompletedTask;
        }

        public Task StartAsync(StartRole role, Upstream? upstream, DynamicConfig dynamic, CancellationToken ct)
        {
            Calls.Add($"start {role} {upstream?.Address} slot {upstream?.SlotName}");
            _running = true;
            return Task.CompletedTask;
        }

        public Task ValidateDataDirAsync(CancellationToken ct) => Task.CompletedTask;
        public Task BootstrapAsync(IReadOnlyList<string> initdbOptions, DynamicConfig dynamic, CancellationToken ct) => Task.CompletedTask;
        public Task CloneAsync(HostPort source, CancellationToken ct) => Task.CompletedTask;
        public Task FollowAsync(Upstream? upstream, CancellationToken ct) => Task.CompletedTask;
        public Task ReloadAsync(DynamicConfig dynamic, CancellationToken ct) => Task.CompletedTask;
        public Task PromoteAsync(bool checkpoint, CancellationToken ct) => Task.CompletedTask;
        public Task<bool> RewindAsync(HostPort source, CancellationToken ct) => Task.FromResult(true);
        public Task<string> MoveDataDirAsideAsync(CancellationToken ct) => Task.FromResult("");
        public Task SyncReplicationSlotsAsync(IReadOnlyCollection<string> slotNames, CancellationToken ct, Func<string, bool>? mayDrop = null) => Task.CompletedTask;
        public Task WriteMissingHistoryFilesAsync(IReadOnlyList<HistoryEntry> history, CancellationToken ct) => Task.CompletedTask;
        public Task<TimelineSwitch?> ReadLastTimelineSwitchAsync(long timeline, CancellationToken ct) => Task.FromResult<TimelineSwitch?>(null);
        public Task CheckpointAsync(CancellationToken ct) => Task.CompletedTask;
        public Task SetSynchronousStandbyNamesAsync(string? value, CancellationToken ct) => Task.CompletedTask;
        public Task SetPrimaryMarkAsync(bool present, CancellationToken ct) => Task.CompletedTask;
    }
}
