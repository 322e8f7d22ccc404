using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;
using Steward.Core.Postgres;

namespace Steward.Tests.Ha;

/// <summary>
/// Builds <see cref="HaInput"/>s for a cluster of members node1..node4 listening on 127.0.0.1:5432..5435. Start from a
/// preset ("a replica streaming from node1", "the primary holding the lock", ...) and change what the test is about.
/// </summary>
internal sealed class Scenario
{
    public static readonly DateTimeOffset Now = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);
    public const string SystemId = "7312345678901234567";
    public const long MyLease = 7001;
    public const long OtherLease = 9001;

    private readonly string me;
    private readonly SortedDictionary<string, Member> members = new(StringComparer.Ordinal);
    private ClusterView? cluster = new() { Revision = 42, Initialize = SystemId };
    private IReadOnlyCollection<long> pastLeases = [];
    private PgState pg = Pg.Empty;
    private DynamicConfig settings = new();
    private TagsConfig tags = new();
    private DateTimeOffset? leaseDeadline;
    private DateTimeOffset? pgDownSince;
    private DateTimeOffset? notStreamingSince;
    private DateTimeOffset? pgUnresponsiveSince;
    private DateTimeOffset? leaderMissingSince;
    private string? currentUpstream;
    private Dictionary<string, PeerStatus>? peers;
    private TimeSpan? switchoverWaited;

    private Scenario(string me) => this.me = me;

    /// <summary>An initialized cluster with no leader and no members; my data directory is empty.</summary>
    public static Scenario Of(string me) => new(me);

    /// <summary>I (node2) run a replica streaming from <paramref name="leader"/>, which holds the lock; node3 is another replica.</summary>
    public static Scenario ReplicaStreamingFrom(string leader = "node1", string me = "node2", long timeline = 1) =>
        Of(me).Leader(leader, timeline).Replica(me).Replica(Others(leader, me)[0]).WithPg(Pg.Replica()).Upstream(leader);

    /// <summary>I (node1) hold the lock over a running primary; node2 and node3 are streaming replicas.</summary>
    public static Scenario PrimaryHoldingTheLock(string me = "node1") =>
        Of(me).Leader(me).Replica(Others(me)[0]).Replica(Others(me)[1]).WithPg(Pg.Primary());

    /// <summary>The leader (node1) is gone: no leader key, its member key expired. I (node2) and node3 run replicas.</summary>
    public static Scenario NoLeader(string me = "node2") =>
        Of(me).Replica(me).Replica(Others("node1", me)[0]).WithPg(Pg.Replica())
            .WithCluster(c => c with { Status = new ClusterStatus { Optime = Pg.DefaultLsn, Timeline = 1 } });

    public static HostPort Address(string member) => new("127.0.0.1", 5431 + (member[^1] - '0'));

    public static Upstream UpstreamOf(string leader, string me) => new(Address(leader), SlotNames.For(me));

    public static string[] Others(params string[] excluded) =>
        [.. new[] { "node1", "node2", "node3", "node4" }.Where(n => !excluded.Contains(n))];

    public Scenario Member(string name, string role, string? state = "running", long? timeline = 1, bool nofailover = false, bool published = true)
    {
        var data = new MemberData
        {
            ConnUrl = published ? ConnUrl.ForPostgres(Address(name)) : null,
            ApiUrl = published ? $"http://127.0.0.1:{8007 + (name[^1] - '0')}/patroni" : null,
            State = state,
            Role = role,
            Timeline = timeline,
            Tags = nofailover ? new Dictionary<string, object?> { ["nofailover"] = true } : null,
        };
        members[name] = new Member(name, data, 10, name == me ? MyLease : OtherLease);
        return this;
    }

    public Scenario Replica(string name, string? state = "running", long? timeline = 1, bool nofailover = false) =>
        Member(name, "replica", state, timeline, nofailover);

    public Scenario WithoutMember(string name)
    {
        members.Remove(name);
        return this;
    }

    /// <summary><paramref name="name"/> holds the leader key (with my lease when it is me) and runs as primary.</summary>
    public Scenario Leader(string name, long? timeline = 1)
    {
        Member(name, "primary", "running", timeline);
        return LeaderKeyOnly(name, name == me ? MyLease : OtherLease);
    }

    /// <summary>Sets the leader key without touching the member keys.</summary>
    public Scenario LeaderKeyOnly(string name, long lease)
    {
        cluster = cluster! with { Leader = new LeaderKey(name, 40, lease) };
        return this;
    }

    /// <summary>Leases this member's earlier agent runs held (the session ledger beside the data directory).</summary>
    public Scenario PastLeases(params long[] leases)
    {
        pastLeases = leases;
        return this;
    }

    public Scenario NoLeaderKey()
    {
        cluster = cluster! with { Leader = null };
        return this;
    }

    /// <summary>Changes what member <paramref name="name"/> published in its key.</summary>
    public Scenario MemberData(string name, Func<MemberData, MemberData> change)
    {
        members[name] = members[name] with { Data = change(members[name].Data) };
        return this;
    }

    public Scenario WithCluster(Func<ClusterView, ClusterView> change)
    {
        cluster = change(cluster!);
        return this;
    }

    public Scenario StoreUnreachable()
    {
        cluster = null;
        return this;
    }

    public Scenario Failover(string? leader, string? candidate, DateTimeOffset? scheduledAt = null) =>
        WithCluster(c => c with { Failover = new FailoverRequest { Leader = leader, Candidate = candidate, ScheduledAt = scheduledAt, ModRevision = 41 } });

    /// <summary>The cluster switched timelines: <c>history</c> lists timelines 1..<paramref name="newestTimeline"/>−1 as ended.</summary>
    public Scenario History(long newestTimeline) => WithCluster(c => c with
    {
        History = [.. Enumerable.Range(1, (int)newestTimeline - 1).Select(t => new HistoryEntry(t, 0x3000000L * t, "no recovery target specified", Now.AddHours(t - 10), "node1"))],
    });

    /// <summary><c>history</c> as given, row by row.</summary>
    public Scenario History(params HistoryEntry[] rows) => WithCluster(c => c with { History = rows });

    public Scenario WithPg(PgState state)
    {
        pg = state;
        return this;
    }

    public Scenario WithPg(Func<PgState, PgState> change)
    {
        pg = change(pg);
        return this;
    }

    public Scenario WithSettings(Func<DynamicConfig, DynamicConfig> change)
    {
        settings = change(settings);
        return this;
    }

    public Scenario Paused() => WithSettings(s => s with { Pause = true });

    public Scenario UsePgRewind(bool on) => WithSettings(s => s with { Postgresql = s.Postgresql with { UsePgRewind = on } });

    /// <summary>Sets one of my tags (as the YAML's <c>tags:</c> section would).</summary>
    public Scenario Tag(string name, object? value)
    {
        tags = new TagsConfig { NoFailover = tags.NoFailover, All = new Dictionary<string, object?>(tags.All) { [name] = value } };
        return this;
    }

    public Scenario NoFailover()
    {
        tags = new TagsConfig { NoFailover = true, All = new Dictionary<string, object?> { ["nofailover"] = true } };
        return Member(me, members.TryGetValue(me, out var m) ? m.Data.Role ?? "replica" : "replica", nofailover: true);
    }

    public Scenario LeaseLeft(TimeSpan left)
    {
        leaseDeadline = Now + left;
        return this;
    }

    public Scenario PgDownFor(TimeSpan down)
    {
        pgDownSince = Now - down;
        return this;
    }

    /// <summary>The postmaster runs but PostgreSQL has not answered for <paramref name="duration"/> (pg_ctl-started, hung, or stalled).</summary>
    public Scenario PgUnresponsiveFor(TimeSpan duration)
    {
        pg = pg with { Accepting = false, InRecovery = null };
        pgUnresponsiveSince = Now - duration;
        return this;
    }

    /// <summary>This agent has seen no leader key for <paramref name="duration"/>.</summary>
    public Scenario LeaderMissingFor(TimeSpan duration)
    {
        leaderMissingSince = Now - duration;
        return this;
    }

    /// <summary>
    /// The leader's REST API answered this cycle as a running primary on <paramref name="timeline"/> (what a rewind needs).
    /// </summary>
    public Scenario LeaderAnswers(string leader = "node1", long timeline = 1) =>
        Peers(Peer(leader, Pg.DefaultLsn, role: "primary", timeline: timeline));

    public Scenario NotStreamingFor(TimeSpan duration)
    {
        pg = pg with { Streaming = false, UpstreamHost = null };
        notStreamingSince = Now - duration;
        return this;
    }

    /// <summary>This agent first saw the switchover request due <paramref name="waited"/> ago (monotonic clock).</summary>
    public Scenario SwitchoverDueFor(TimeSpan? waited)
    {
        switchoverWaited = waited;
        return this;
    }

    /// <summary>Router <paramref name="name"/> drives PgBouncers (<c>routers/&lt;name&gt;</c>) with this pause_timeout.</summary>
    public Scenario Router(string name, double pauseTimeout = 5, int pgBouncers = 1) => WithCluster(c => c with
    {
        Routers = [.. c.Routers.Where(r => r.Name != name), new RouterEntry(name,
            new RouterRegistration { PgBouncers = [.. Enumerable.Range(0, pgBouncers).Select(i => $"10.0.0.{i + 1}:6432")], PauseTimeout = pauseTimeout }, 77)],
    });

    /// <summary>Router <paramref name="name"/> answered the switchover request at <paramref name="revision"/> (<c>pause/&lt;name&gt;</c>).</summary>
    public Scenario RouterAnswered(string name, long revision = 41, params PgBouncerOutcome[] outcomes) => WithCluster(c => c with
    {
        Pauses = [.. c.Pauses.Where(p => p.Name != name), new PauseEntry(name, new PauseConfirmation
        {
            FailoverRevision = revision,
            PgBouncers = outcomes.Length > 0 ? outcomes : [new PgBouncerOutcome { Address = "10.0.0.1:6432", State = "paused" }],
        }, 50)],
    });

    public Scenario Upstream(string? member)
    {
        currentUpstream = member is null ? null : Address(member).ToString();
        return this;
    }

    /// <summary>Adds what a member's REST API answered; an empty call records that the peers were asked and none answered.</summary>
    public Scenario Peers(params PeerStatus[] statuses)
    {
        peers ??= new Dictionary<string, PeerStatus>(StringComparer.Ordinal);
        foreach (var s in statuses)
        {
            peers[s.Name] = s;
        }

        return this;
    }

    public static PeerStatus Peer(string name, long lsn, string role = "replica", bool reachable = true, bool nofailover = false, DateTimeOffset? lastSeen = null,
        long timeline = 1) =>
        new()
        {
            Name = name,
            Reachable = reachable,
            Role = reachable ? role : null,
            State = reachable ? "running" : null,
            Timeline = reachable ? timeline : null,
            Lsn = reachable ? lsn : null,
            NoFailover = nofailover,
            DcsLastSeen = lastSeen ?? Now.AddSeconds(-1),
            WalAfterLeaderGone = true,
        };

    public HaInput Build() => new()
    {
        Me = me,
        Cluster = cluster is null ? null : cluster with { Members = [.. members.Values] },
        Pg = pg,
        Settings = settings,
        Tags = tags,
        Now = Now,
        MyLeaseId = MyLease,
        PastLeaseIds = pastLeases,
        LeaseDeadline = leaseDeadline,
        PgDownSince = pgDownSince,
        NotStreamingSince = notStreamingSince,
        PgUnresponsiveSince = pgUnresponsiveSince,
        LeaderMissingSince = leaderMissingSince,
        CurrentUpstream = currentUpstream,
        Peers = peers,
        SwitchoverWaited = switchoverWaited,
    };

    public HaPlan Decide() => HaDecision.Decide(Build());
}

/// <summary>Local PostgreSQL states as <see cref="IPostgresControl.InspectAsync"/> reports them.</summary>
internal static class Pg
{
    public const long DefaultLsn = 0x3000060;

    public static PgState Empty { get; } = new() { DataDir = DataDirStatus.Empty };

    public static PgState Invalid { get; } = new() { DataDir = DataDirStatus.Invalid };

    public static PgState Primary(long timeline = 1, long lsn = DefaultLsn) => new()
    {
        DataDir = DataDirStatus.Initialized,
        SystemId = Scenario.SystemId,
        ControlState = "in production",
        ControlTimeline = timeline,
        Running = true,
        PostmasterPid = 4242,
        Accepting = true,
        InRecovery = false,
        Timeline = timeline,
        WriteLsn = lsn,
    };

    public static PgState Replica(long timeline = 1, long lsn = DefaultLsn, bool streaming = true) => new()
    {
        DataDir = DataDirStatus.Initialized,
        SystemId = Scenario.SystemId,
        ControlState = "in archive recovery",
        ControlTimeline = timeline,
        StandbySignal = true,
        Running = true,
        PostmasterPid = 4343,
        Accepting = true,
        InRecovery = true,
        Timeline = timeline,
        ReplayTimeline = timeline,
        ReceiveTimeline = streaming ? timeline : null,
        ReceiveLsn = lsn,
        ReplayLsn = lsn - 0x60,
        Streaming = streaming,
        UpstreamHost = streaming ? "127.0.0.1:5432" : null,
    };

    /// <summary>A primary that crashed (or was stopped with -m immediate): pg_control still says "in production".</summary>
    public static PgState CrashedPrimary(long timeline = 1) => new()
    {
        DataDir = DataDirStatus.Initialized,
        SystemId = Scenario.SystemId,
        ControlState = "in production",
        ControlTimeline = timeline,
    };

    /// <summary>A standby shut down cleanly.</summary>
    public static PgState StoppedReplica(long timeline = 1) => new()
    {
        DataDir = DataDirStatus.Initialized,
        SystemId = Scenario.SystemId,
        ControlState = "shut down in recovery",
        ControlTimeline = timeline,
        StandbySignal = true,
    };

    /// <summary>The postmaster is up but the server does not answer queries yet (startup, crash recovery).</summary>
    public static PgState StartingUp() => StoppedReplica() with { Running = true, PostmasterPid = 4444 };
}
