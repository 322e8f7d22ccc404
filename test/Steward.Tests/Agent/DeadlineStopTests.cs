using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Steward.Agent;
using Steward.Agent.Fence;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Postgres;
using Steward.Testing;

namespace Steward.Tests.Agent;

/// <summary>
/// At the lease deadline the stop comes first: the fence fires before anything that could be slow or throw (an
/// inspection of PostgreSQL that hangs, a pg_controldata that never returns). Story: the first version inspected
/// PostgreSQL at the deadline and only then ran pg_ctl stop, so a slow inspection kept the old primary writable after
/// etcd let another member in (issue 8, defect 2).
/// </summary>
public sealed class DeadlineStopTests
{
    [Fact]
    public async Task An_armed_fence_fires_at_the_deadline_even_while_inspecting_postgres_hangs()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var pg = new HangingPostgres();
        var fence = new RecordingFence(time);
        await using var agent = new NodeAgent(Config(), store, pg, new NoPeers(), fence, time, NullLoggerFactory.Instance);
        using var cts = new CancellationTokenSource();
        await agent.Lease.RenewAsync(cts.Token);
        fence.Arm(4242); // a cycle armed it for the running primary
        pg.Hang = true;  // from now on every inspection hangs
        etcd.Available = false;
        agent.Lease.Start(cts.Token);

        var deadline = fence.Deadline!.Value;
        for (var i = 0; i < 400 && fence.FiredAt is null; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(25));
            await Task.Delay(2);
        }

        await cts.CancelAsync();
        await agent.Lease.StopAsync();
        Assert.NotNull(fence.FiredAt);
        Assert.True(fence.FiredAt <= deadline + (long)(0.1 * time.TimestampFrequency),
            $"fired {(fence.FiredAt - deadline) / (double)time.TimestampFrequency:0.00} s after the deadline");
        Assert.Equal(0, pg.Stops); // no pg_ctl before the kill: the kill is the stop
    }

    [Fact]
    public async Task An_unarmed_fence_still_stops_a_primary_found_at_the_deadline()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var pg = new HangingPostgres();
        var fence = new RecordingFence(time);
        await using var agent = new NodeAgent(Config(), store, pg, new NoPeers(), fence, time, NullLoggerFactory.Instance);
        using var cts = new CancellationTokenSource();
        await agent.Lease.RenewAsync(cts.Token);
        etcd.Available = false;
        agent.Lease.Start(cts.Token);

        for (var i = 0; i < 400 && fence.FiredAt is null; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(25));
            await Task.Delay(2);
        }

        await cts.CancelAsync();
        await agent.Lease.StopAsync();
        Assert.NotNull(fence.FiredAt);
        Assert.Equal(4242, fence.ArmedPid);
    }

    [Fact]
    public async Task The_rest_snapshot_never_vouches_for_a_lease_past_its_deadline()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var fence = new RecordingFence(time);
        await using var agent = new NodeAgent(Config(), store, new HangingPostgres(), new NoPeers(), fence, time, NullLoggerFactory.Instance);
        await agent.Lease.RenewAsync(CancellationToken.None);
        await store.TryCreateInitializeAsync("1", CancellationToken.None);
        await agent.RunCycleAsync(CancellationToken.None); // the running primary takes the free key
        Assert.True(agent.Snapshot.HoldsLeader);

        // The agent is frozen: no renewal, no cycle. Its snapshot must stop vouching the moment the lease may be gone.
        time.Advance(TimeSpan.FromSeconds(6) - LeaseKeeper.Margin(6) + TimeSpan.FromMilliseconds(10));
        Assert.False(agent.Snapshot.HoldsLeader);
    }

    [Fact]
    public async Task The_slot_of_a_member_that_is_gone_is_kept_for_member_slots_ttl()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var pg = new HangingPostgres();
        var converger = new Converger(Config(), new InMemoryEtcd(time).Connect("/service/t/"), pg, new RecordingFence(time),
            new AgentStatus(time), time, NullLogger.Instance, () => 0);
        var settings = new DynamicConfig { MemberSlotsTtl = 600 };
        var state = await pg.InspectAsync(CancellationToken.None);
        var input = new Core.Ha.HaInput
        {
            Me = "node1", Pg = state, Settings = settings, Tags = new TagsConfig(), Now = time.GetUtcNow(),
            Cluster = new ClusterView { Members = [new Member("node1", new MemberData(), 1, 1)] },
        };
        var plan = new Core.Ha.HaPlan("housekeeping", [new Core.Ha.LeaderHousekeeping()]);

        await converger.ExecuteAsync(plan, input, CancellationToken.None);
        Assert.False(pg.MayDrop!("node2"), "dropped at once when first found unwanted");
        time.Advance(TimeSpan.FromSeconds(599));
        Assert.False(pg.MayDrop!("node2"), "dropped before member_slots_ttl");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(pg.MayDrop!("node2"), "kept past member_slots_ttl");

        // The member comes back: its slot is wanted again, and the clock restarts when it next disappears.
        await converger.ExecuteAsync(plan, input with { Cluster = new ClusterView { Members = [new Member("node2", new MemberData(), 1, 1)] } }, CancellationToken.None);
        await converger.ExecuteAsync(plan, input, CancellationToken.None);
        Assert.False(pg.MayDrop!("node2"));
    }

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
            Authentication = new PostgresAuthentication
            {
                Superuser = new Credentials("postgres", "x"),
                Replication = new Credentials("replicator", "x"),
            },
        },
    };

    private sealed class NoPeers : IPeerClient
    {
        public Task<IReadOnlyDictionary<string, Core.Ha.PeerStatus>> FetchAsync(ClusterView cluster, string me, TimeSpan timeout, CancellationToken ct) =>
            Task.FromResult<IReadOnlyDictionary<string, Core.Ha.PeerStatus>>(new Dictionary<string, Core.Ha.PeerStatus>());

        public Task<bool> ConfirmFailsafeAsync(ClusterView cluster, string me, TimeSpan timeout, CancellationToken ct) => Task.FromResult(false);
    }

    /// <summary>Records what the agent asks of its fence, on the fake clock.</summary>
    private sealed class RecordingFence(TimeProvider time) : IPrimaryFence
    {
        public bool Armed { get; private set; }
        public int? ArmedPid { get; private set; }
        public long? Deadline { get; private set; }
        public long? FiredAt { get; private set; }

        public void Arm(int? postmasterPid) => (Armed, ArmedPid) = (true, postmasterPid);

        public void Disarm() => Armed = false;

        public void Extend(long deadlineTimestamp) => Deadline = deadlineTimestamp;

        public bool FireNow(string reason)
        {
            if (!Armed)
            {
                return false;
            }

            FiredAt ??= time.GetTimestamp();
            return true;
        }
    }

    /// <summary>A running primary (postmaster 4242) whose inspection can be made to hang for ever.</summary>
    private sealed class HangingPostgres : IPostgresControl
    {
        public volatile bool Hang;
        public int Stops;

        public async Task<PgState> InspectAsync(CancellationToken ct)
        {
            if (Hang)
            {
                await Task.Delay(Timeout.Infinite, ct);
            }

            return new PgState
            {
                DataDir = DataDirStatus.Initialized, SystemId = "1", ControlState = "in production", ControlTimeline = 1,
                Running = true, PostmasterPid = 4242, Accepting = true, InRecovery = false, Timeline = 1, WriteLsn = 100,
            };
        }

        public Task StopAsync(StopMode mode, CancellationToken ct)
        {
            Interlocked.Increment(ref Stops);
            return Task.CompletedTask;
        }

        public Task ValidateDataDirAsync(CancellationToken ct) => Task.CompletedTask;
        public Task BootstrapAsync(IReadOnlyList<string> initdbOptions, DynamicConfig dynamic, CancellationToken ct) => Task.CompletedTask;
        public Task CloneAsync(HostPort source, CancellationToken ct) => Task.CompletedTask;
        public Task StartAsync(StartRole role, Upstream? upstream, DynamicConfig dynamic, CancellationToken ct) => Task.CompletedTask;
        public Task FollowAsync(Upstream? upstream, CancellationToken ct) => Task.CompletedTask;
        public Task ReloadAsync(DynamicConfig dynamic, CancellationToken ct) => Task.CompletedTask;
        public Task PromoteAsync(bool checkpoint, CancellationToken ct) => Task.CompletedTask;
        public Task<bool> RewindAsync(HostPort source, CancellationToken ct) => Task.FromResult(true);
        public Task<string> MoveDataDirAsideAsync(CancellationToken ct) => Task.FromResult("");
        public Func<string, bool>? MayDrop;

        public Task SyncReplicationSlotsAsync(IReadOnlyCollection<string> slotNames, CancellationToken ct, Func<string, bool>? mayDrop = null)
        {
            MayDrop = mayDrop;
            return Task.CompletedTask;
        }
        public Task WriteMissingHistoryFilesAsync(IReadOnlyList<HistoryEntry> history, CancellationToken ct) => Task.CompletedTask;
        public Task<TimelineSwitch?> ReadLastTimelineSwitchAsync(long timeline, CancellationToken ct) => Task.FromResult<TimelineSwitch?>(null);
        public Task CheckpointAsync(CancellationToken ct) => Task.CompletedTask;

        public Task SetSynchronousStandbyNamesAsync(string? value, CancellationToken ct) => Task.CompletedTask;
        public Task SetPrimaryMarkAsync(bool present, CancellationToken ct) => Task.CompletedTask;
    }
}
