using System.Text.Json;
using Steward.Core.Cluster;
using Steward.Core.Configuration;
using Steward.Core.Ha;
using Steward.Core.Postgres;

namespace Steward.Tests.Ha;

/// <summary>
/// Seeded random (but well-formed) inputs to <see cref="HaDecision.Decide"/>, checked against invariants that must hold
/// whatever the cluster looks like. Deterministic: a failure names the seed and the iteration and prints the input.
/// </summary>
public sealed class HaDecisionPropertyTests
{
    private const int Seed = 20250601;
    private const int Runs = 10000;
    private const string SystemId = "7312345678901234567";
    private const long MyLease = 7001;
    private static readonly string[] Names = ["node1", "node2", "node3", "node4"];
    private static readonly DateTimeOffset Epoch = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    [Fact]
    public void Promote_is_always_preceded_by_AcquireLeader_unless_I_already_hold_the_lock() => Check((input, plan) =>
    {
        var promote = IndexOf<Promote>(plan);
        return promote < 0 || HoldsLock(input) || IndexOf<AcquireLeader>(plan) is >= 0 and var acquire && acquire < promote
            ? null
            : "Promote without a preceding AcquireLeader while not holding the lock";
    });

    [Fact]
    public void Nofailover_member_never_promotes_unless_it_already_holds_the_lock() => Check((input, plan) =>
        input.Tags.NoFailover && !HoldsLock(input) && plan.Has<Promote>() ? "a nofailover member promotes" : null);

    [Fact]
    public void PostgreSQL_is_started_as_primary_only_by_the_lock_holder() => Check((input, plan) =>
        plan.Steps.Contains(new StartPostgres(StartRole.Primary, null, null)) || plan.Steps.OfType<StartPostgres>().Any(s => s.Role == StartRole.Primary)
            ? HoldsLock(input) ? null : "StartPostgres(Primary) without holding the lock"
            : null);

    [Fact]
    public void Without_the_store_the_only_steps_are_the_demotion() => Check((input, plan) =>
        input.Cluster is not null || plan.Steps.Count == 0
        || plan.Steps.SequenceEqual([new StopPostgres(StopMode.Immediate)])
            ? null
            : "store unreachable, yet the plan is not the stop/start demotion");

    [Fact]
    public void Stopped_former_primary_never_follows_another_leader_without_rewinding_first() => Check((input, plan) =>
    {
        var pg = input.Pg;
        var wasPrimary = !pg.StandbySignal && pg.ControlState is "in production" or "shut down" or "in crash recovery";
        if (pg.Running || pg.DataDir != DataDirStatus.Initialized || !wasPrimary || input.Cluster?.Leader is not { } leader || leader.Name == input.Me)
        {
            return null;
        }

        var rewind = IndexOf<RewindOrReclone>(plan);
        for (var i = 0; i < plan.Steps.Count; i++)
        {
            if (plan.Steps[i] is Follow or StartPostgres { Role: StartRole.Replica } && (rewind < 0 || rewind > i))
            {
                return $"a former primary is started as a replica of '{leader.Name}' without RewindOrReclone first";
            }
        }

        return null;
    });

    /// <summary>A rewind that cannot reach its source ends in a data directory moved aside (issue 9, defect 0).</summary>
    [Fact]
    public void Nothing_is_rewound_or_moved_aside_unless_the_leader_answered_as_a_running_primary() => Check((input, plan) =>
        plan.Steps.OfType<RewindOrReclone>().FirstOrDefault() is { } rewind
        && input.Peers?.GetValueOrDefault(rewind.Member) is not { Reachable: true, Role: "primary", State: "running" }
            ? $"RewindOrReclone from '{rewind.Member}', which did not answer as a running primary"
            : null);

    /// <summary>
    /// A running replica is stopped only on proof that it left the leader's history: never while it is on the leader's
    /// timeline, nor while its timeline is in the history at a point it has not replayed past (issue 9, defect 0).
    /// </summary>
    [Fact]
    public void A_running_replica_that_has_not_left_the_leaders_history_is_never_stopped() => Check((input, plan) =>
    {
        var pg = input.Pg;
        if (input.Cluster?.Leader is not { } leader || leader.Name == input.Me || !pg.Running || pg.InRecovery != true
            || !plan.Steps.Any(s => s is StopPostgres or RewindOrReclone))
        {
            return null;
        }

        var leaderTimeline = input.Peers?.GetValueOrDefault(leader.Name)?.Timeline ?? input.Cluster.GetMember(leader.Name)?.Data.Timeline;
        if (pg.ReplayTimeline is not { } mine || leaderTimeline is not { } theirs || mine == theirs || pg.Streaming)
        {
            return "a running replica is stopped without proof of divergence (streaming, on the leader's timeline, or timelines unknown)";
        }

        var passedSwitch = input.Cluster.History.Any(h => h.Timeline == mine) && input.Cluster.History.Where(h => h.Timeline == mine).All(h => pg.ReplayLsn > h.Lsn);
        return mine > theirs || passedSwitch ? null : $"a running replica on timeline {mine} that has not passed its switch point is stopped";
    });

    /// <summary>A lock holder whose PostgreSQL has not answered for longer than primary_start_timeout hands the key over (issue 9, defect 1).</summary>
    [Fact]
    public void A_lock_holder_whose_postgres_does_not_answer_past_primary_start_timeout_stops_it_and_releases_the_key() => Check((input, plan) =>
    {
        var pg = input.Pg;
        var unanswered = pg.Running && (!pg.Accepting || pg.InRecovery is null);
        var past = input.PgUnresponsiveSince is { } since && input.Now - since > TimeSpan.FromSeconds(input.Settings.PrimaryStartTimeout);
        if (!HoldsLock(input) || !unanswered || !past || input.Settings.Pause || pg.DataDir != DataDirStatus.Initialized
            || input.Cluster!.Initialize is not { Length: > 0 } id || (pg.SystemId is not null && pg.SystemId != id))
        {
            return null;
        }

        return plan.Steps.SequenceEqual([new StopPostgres(StopMode.Immediate), new ReleaseLeader()])
            ? null
            : "a lock holder whose PostgreSQL has not answered past primary_start_timeout keeps the key";
    });

    /// <summary>A failover request nobody carried out within ttl of the leader key disappearing never holds an election back (issue 9, defect 2).</summary>
    [Fact]
    public void A_failover_request_older_than_ttl_without_a_leader_steers_nobody() => Check((input, plan) =>
        input.Cluster is { Leader: null, Failover: not null } && !input.Settings.Pause
        && input.LeaderMissingSince is { } since && input.Now - since > TimeSpan.FromSeconds(input.Settings.Ttl)
        && (plan.Message.Contains("as requested", StringComparison.Ordinal) || plan.Message.Contains("stepped down", StringComparison.Ordinal))
            ? "an expired failover request still holds the election back"
            : null);

    /// <summary>Without a leader, nobody wins over a reachable member that could take over and is on a newer timeline (issue 9, defect 4).</summary>
    [Fact]
    public void An_election_is_never_won_over_an_eligible_reachable_peer_on_a_newer_timeline() => Check((input, plan) =>
    {
        if (input.Cluster is not { Leader: null } cluster || !plan.Has<Promote>() || input.Peers is null
            || cluster.Failover is { Candidate: { } c } && c == input.Me)
        {
            return null;
        }

        var mine = input.Pg.Timeline ?? input.Pg.ControlTimeline ?? 0;
        var better = input.Peers.Values.FirstOrDefault(p => p.Name != input.Me && p.Reachable && !p.NoFailover && p.Role == "replica"
            && p.Lsn is { } lsn && (cluster.Status is not { } s || s.Optime - lsn <= input.Settings.MaximumLagOnFailover)
            && (p.DcsLastSeen is not { } seen || input.Now - seen <= TimeSpan.FromSeconds(input.Settings.Ttl))
            && p.Name != cluster.Failover?.Leader
            && p.Timeline > mine);
        return better is null ? null : $"promoted on timeline {mine} over '{better.Name}' on timeline {better.Timeline}";
    });

    /// <summary>The invariants above are only worth something if the generator reaches the plans they speak about.</summary>
    [Fact]
    public void Generator_reaches_the_plans_the_invariants_speak_about()
    {
        var random = new Random(Seed);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < Runs; i++)
        {
            var input = Generate(random);
            var plan = HaDecision.Decide(input);
            foreach (var step in plan.Steps)
            {
                var name = step is StartPostgres s ? $"StartPostgres({s.Role})" : step.GetType().Name;
                counts[name] = counts.GetValueOrDefault(name) + 1;
            }

            var situations = new (string Name, bool Reached)[]
            {
                ("demotion without store", input.Cluster is null && plan.Has<StopPostgres>()),
                ("running replica rewound", input.Pg is { Running: true, InRecovery: true } && plan.Has<RewindOrReclone>()),
                ("rewind held back: leader not answering", plan.Message.StartsWith("not rewinding", StringComparison.Ordinal)),
                ("unanswering leader hands over", plan.Steps.SequenceEqual([new StopPostgres(StopMode.Immediate), new ReleaseLeader()])),
                ("failover request ignored", plan.Message.Contains("ignoring the failover request", StringComparison.Ordinal)),
                ("waiting for a peer ahead", plan.Message.Contains("is ahead (timeline", StringComparison.Ordinal)),
            };
            foreach (var (name, reached) in situations.Where(s => s.Reached))
            {
                counts[name] = counts.GetValueOrDefault(name) + 1;
            }
        }

        string[] expected = ["AcquireLeader", "Promote", "StartPostgres(Primary)", "StartPostgres(Replica)", "RewindOrReclone", "Follow",
            "ReleaseLeader", "FetchPeers", "LeaderHousekeeping", "CloneFrom", "BootstrapCluster", "Checkpoint", "DeleteFailoverKey",
            "Fatal", "demotion without store", "running replica rewound", "rewind held back: leader not answering", "unanswering leader hands over",
            "failover request ignored", "waiting for a peer ahead"];
        Assert.All(expected, name => Assert.True(counts.GetValueOrDefault(name) >= 10,
            $"{name} appeared {counts.GetValueOrDefault(name)} times in {Runs} plans: {string.Join(", ", counts.Select(kv => $"{kv.Key}={kv.Value}"))}"));
    }

    private static void Check(Func<HaInput, HaPlan, string?> violation)
    {
        var random = new Random(Seed);
        for (var i = 0; i < Runs; i++)
        {
            var input = Generate(random);
            var plan = HaDecision.Decide(input);
            if (violation(input, plan) is { } what)
            {
                Assert.Fail($"{what} (seed {Seed}, iteration {i})\nplan: {plan}\ninput: {JsonSerializer.Serialize(input, Json)}");
            }
        }
    }

    private static bool HoldsLock(HaInput input) =>
        input.Cluster?.Leader is { } l && l.Name == input.Me && l.LeaseId == input.MyLeaseId;

    private static int IndexOf<T>(HaPlan plan) where T : HaStep
    {
        for (var i = 0; i < plan.Steps.Count; i++)
        {
            if (plan.Steps[i] is T)
            {
                return i;
            }
        }

        return -1;
    }

    private static T Pick<T>(Random r, params T[] values) => values[r.Next(values.Length)];

    private static bool Chance(Random r, double p) => r.NextDouble() < p;

    private static HostPort Address(string name) => new("127.0.0.1", 5431 + (name[^1] - '0'));

    private static HaInput Generate(Random r)
    {
        var me = Pick(r, Names);
        var now = Epoch.AddSeconds(r.Next(0, 3600));
        var baseLsn = 0x3000000L + r.Next(0, 0x100000);
        long Lsn() => baseLsn + r.Next(-0x200000, 0x200000);

        var settings = new DynamicConfig
        {
            Ttl = Pick(r, 6, 30),
            MaximumLagOnFailover = Pick(r, 0L, 1048576L, 16L * 1048576),
            PrimaryStartTimeout = Pick(r, 0, 30),
            Pause = Chance(r, 0.05),
            Postgresql = new DynamicPostgresConfig { UsePgRewind = Chance(r, 0.7), UseSlots = Chance(r, 0.7) },
        };
        var nofailover = Chance(r, 0.25);
        var tags = new TagsConfig { NoFailover = nofailover };

        var input = new HaInput
        {
            Me = me,
            Cluster = Chance(r, 0.1) ? null : GenerateCluster(r, me, now, baseLsn, Lsn),
            Pg = GeneratePg(r, Lsn),
            Settings = settings,
            Tags = tags,
            Now = now,
            MyLeaseId = MyLease,
            LeaseDeadline = Chance(r, 0.3) ? null : now.AddSeconds(r.Next(-10, 10)),
            PgDownSince = Chance(r, 0.5) ? null : now.AddSeconds(-r.Next(0, 60)),
            PgUnresponsiveSince = Chance(r, 0.5) ? null : now.AddSeconds(-r.Next(0, 60)),
            NotStreamingSince = Chance(r, 0.5) ? null : now.AddSeconds(-r.Next(0, 30)),
            LeaderMissingSince = Chance(r, 0.5) ? null : now.AddSeconds(-r.Next(0, 60)),
            CurrentUpstream = Chance(r, 0.3) ? null : Address(Pick(r, Names)).ToString(),
            Peers = Chance(r, 0.4) ? null : GeneratePeers(r, now, Lsn),
        };

        // Nor into a leader that answers as a primary, which every rewind needs: make the leader answer in half of the
        // inputs that have both a leader and peers.
        if (input is { Cluster.Leader: { } leaderKey, Peers: { } known } && Chance(r, 0.5))
        {
            input = input with
            {
                Peers = new Dictionary<string, PeerStatus>(known, StringComparer.Ordinal)
                {
                    [leaderKey.Name] = new() { Name = leaderKey.Name, Reachable = true, Role = "primary", State = "running", Timeline = r.Next(1, 5), Lsn = Lsn() },
                },
                CurrentUpstream = Chance(r, 0.5) ? Address(leaderKey.Name).ToString() : input.CurrentUpstream,
            };
        }

        // Fully random inputs rarely line up into a healthy leader facing a switchover: make one in five of them do so.
        if (input.Cluster is { } cluster && Chance(r, 0.2))
        {
            var myPg = input.Pg.Running && input.Pg.InRecovery == false ? input.Pg : GeneratePg(r, Lsn, primary: true);
            input = input with
            {
                Pg = myPg with { SystemId = cluster.Initialize is { Length: > 0 } id ? id : myPg.SystemId },
                Cluster = cluster with
                {
                    Leader = new LeaderKey(me, 40, MyLease),
                    Failover = Chance(r, 0.5) ? cluster.Failover : new FailoverRequest { Leader = me, Candidate = Chance(r, 0.5) ? null : Pick(r, Names) },
                },
            };
        }

        return input;
    }

    private static ClusterView GenerateCluster(Random r, string me, DateTimeOffset now, long baseLsn, Func<long> lsn)
    {
        var members = new List<Member>();
        foreach (var name in Names)
        {
            if (!Chance(r, name == me ? 0.8 : 0.7))
            {
                continue;
            }

            var data = new MemberData
            {
                ConnUrl = Chance(r, 0.85) ? ConnUrl.ForPostgres(Address(name)) : null,
                State = Pick(r, "running", "running", "running", "starting", "stopped", "creating replica"),
                Role = Pick(r, "primary", "replica", "replica"),
                Timeline = Chance(r, 0.1) ? null : r.Next(1, 5),
                XlogLocation = lsn(),
                Tags = Chance(r, 0.2) ? new Dictionary<string, object?> { ["nofailover"] = true } : null,
            };
            members.Add(new Member(name, data, 10, name == me ? MyLease : 9000 + name[^1]));
        }

        LeaderKey? leader = null;
        if (Chance(r, 0.7))
        {
            var name = Chance(r, 0.35) ? me : Pick(r, Names);
            var lease = name == me && Chance(r, 0.6) ? MyLease : 9000 + r.Next(0, 3);
            leader = new LeaderKey(name, 40, lease);
        }

        return new ClusterView
        {
            Revision = r.Next(50, 500),
            Initialize = Pick(r, SystemId, SystemId, SystemId, SystemId, SystemId, SystemId, SystemId, "", null, null, "7000000000000000000"),
            Leader = leader,
            Members = members,
            Failover = Chance(r, 0.35)
                ? new FailoverRequest
                {
                    Leader = Chance(r, 0.3) ? null : Pick(r, Names),
                    Candidate = Chance(r, 0.3) ? null : Pick(r, Names),
                    ScheduledAt = Pick<DateTimeOffset?>(r, null, null, now.AddMinutes(-1), now.AddMinutes(5)),
                }
                : null,
            Status = Chance(r, 0.3) ? null : new ClusterStatus { Optime = baseLsn + r.Next(-0x100000, 0x2000000) },
            History = [.. Enumerable.Range(1, r.Next(0, 4)).Select(t => new HistoryEntry(t, 0x1000000L * t, "no recovery target specified", now.AddHours(-t), Pick(r, Names)))],
        };
    }

    private static PgState GeneratePg(Random r, Func<long> lsn, bool primary = false)
    {
        var systemId = Pick(r, SystemId, SystemId, SystemId, SystemId, SystemId, SystemId, SystemId, SystemId, null, "7000000000000000000");
        var timeline = r.Next(1, 5);
        var stopped = new PgState
        {
            DataDir = DataDirStatus.Initialized,
            SystemId = systemId,
            ControlState = Pick(r, "in production", "shut down", "in crash recovery", "shut down in recovery", "in archive recovery", null),
            ControlTimeline = timeline,
            StandbySignal = Chance(r, 0.5),
        };
        var roll = primary ? 0.5 : r.NextDouble();
        return roll switch
        {
            < 0.08 => new PgState { DataDir = DataDirStatus.Empty },
            < 0.10 => new PgState { DataDir = DataDirStatus.Invalid },
            < 0.40 => stopped,
            < 0.45 => stopped with { Running = true, PostmasterPid = 4000 },
            < 0.70 => stopped with
            {
                ControlState = "in production",
                StandbySignal = false,
                Running = true,
                Accepting = true,
                InRecovery = false,
                Timeline = timeline,
                WriteLsn = lsn(),
            },
            _ => stopped with
            {
                ControlState = "in archive recovery",
                StandbySignal = true,
                Running = true,
                Accepting = true,
                InRecovery = true,
                Timeline = timeline,
                ReplayTimeline = Chance(r, 0.1) ? null : Math.Max(1, timeline - r.Next(0, 2)),
                ReceiveLsn = lsn(),
                ReplayLsn = lsn(),
                Streaming = Chance(r, 0.6),
            },
        };
    }

    private static Dictionary<string, PeerStatus> GeneratePeers(Random r, DateTimeOffset now, Func<long> lsn)
    {
        var peers = new Dictionary<string, PeerStatus>(StringComparer.Ordinal);
        foreach (var name in Names.Where(_ => Chance(r, 0.7)))
        {
            var reachable = Chance(r, 0.8);
            peers[name] = new PeerStatus
            {
                Name = name,
                Reachable = reachable,
                Role = reachable ? Pick(r, "replica", "replica", "replica", "primary") : null,
                State = reachable ? Pick(r, "running", "running", "starting") : null,
                Timeline = r.Next(1, 5),
                Lsn = reachable ? lsn() : null,
                NoFailover = Chance(r, 0.2),
                DcsLastSeen = Chance(r, 0.2) ? null : now.AddSeconds(-r.Next(0, 40)),
            };
        }

        return peers;
    }
}
