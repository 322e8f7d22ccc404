using System.Reflection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Steward.Agent;
using Steward.Core.Cluster;
using Steward.Testing;

namespace Steward.Tests.Agent;

/// <summary>
/// The lease fence: a primary whose lease cannot be renewed is stopped before the lease can expire on the etcd side.
/// Story: a review found that after a renewal that failed fast (connection refused) the keeper slept a whole period
/// and woke up after the deadline (finding S2); these tests pin the fence to the deadline itself.
/// </summary>
public sealed class LeaseKeeperTests
{
    [Theory]
    [InlineData(6, 1)]
    [InlineData(30, 10)]
    public async Task Fence_fires_at_the_deadline_when_etcd_refuses_every_renewal(int ttl, int loopWait)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var fenced = new TaskCompletionSource<DateTimeOffset>(TaskCreationOptions.RunContinuationsAsynchronously);
        var keeper = new LeaseKeeper(store, time, NullLogger.Instance, () => ttl, () => loopWait, _ =>
        {
            fenced.TrySetResult(time.GetUtcNow());
            return Task.CompletedTask;
        });
        using var cts = new CancellationTokenSource();
        await keeper.RenewAsync(cts.Token);
        var renewed = time.GetUtcNow();
        etcd.Available = false;
        keeper.Start(cts.Token);

        var limit = renewed + TimeSpan.FromSeconds(ttl) - LeaseKeeper.Margin(ttl);
        for (var i = 0; i < ttl * 40 && !fenced.Task.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(25));
            await Task.Delay(2);
        }

        await cts.CancelAsync();
        await keeper.StopAsync();
        Assert.True(fenced.Task.IsCompleted, "the fence never fired");
        var at = await fenced.Task;
        Assert.True(at <= limit + TimeSpan.FromMilliseconds(100), $"fenced {(at - renewed).TotalSeconds:0.00} s after the last renewal; the deadline was {(limit - renewed).TotalSeconds:0.00} s");
        Assert.True(at >= limit - TimeSpan.FromMilliseconds(100), $"fenced too early: {(at - renewed).TotalSeconds:0.00} s");
    }

    /// <summary>
    /// Story (issue 14, item 1): Patroni accepts ttl 20, loop_wait 2, retry_timeout 10 (it breaks the rule loop_wait +
    /// 2*retry_timeout &lt;= ttl), and Steward now accepts it with a warning. That is safe only if the fence does not rest
    /// on the rule: here every renewal hangs for retry_timeout (the store's request timeout) and then fails, so at
    /// no point is a renewal "done" when the deadline passes. The fence must still fire at last successful renewal +
    /// ttl − margin (15 s), not when the retries give up.
    /// </summary>
    [Fact]
    public async Task Timings_that_break_patronis_rule_still_fence_at_the_lease_deadline_while_renewals_hang_for_retry_timeout()
    {
        const int ttl = 20, loopWait = 2, retryTimeout = 10;
        Assert.NotNull(DynamicConfigJson.TimingWarning(new DynamicConfig { Ttl = ttl, LoopWait = loopWait, RetryTimeout = retryTimeout }));
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
        var slow = false;
        var attempts = 0;
        var scripted = Scripted.Over(new InMemoryEtcd(time).Connect("/service/t/"), (_, ct) =>
        {
            if (!Volatile.Read(ref slow))
            {
                return null;
            }

            Interlocked.Increment(ref attempts);
            return HangThenFail(ct);
        });
        async Task<LeaseState> HangThenFail(CancellationToken ct)
        {
            await Task.Delay(TimeSpan.FromSeconds(retryTimeout), time, ct);
            throw new StoreUnavailableException($"etcd did not answer within retry_timeout ({retryTimeout} s)");
        }

        var fenced = new TaskCompletionSource<DateTimeOffset>(TaskCreationOptions.RunContinuationsAsynchronously);
        var keeper = new LeaseKeeper(scripted, time, NullLogger.Instance, () => ttl, () => loopWait, _ =>
        {
            fenced.TrySetResult(time.GetUtcNow());
            return Task.CompletedTask;
        });
        using var cts = new CancellationTokenSource();
        await keeper.RenewAsync(cts.Token);
        var renewed = time.GetUtcNow();
        Volatile.Write(ref slow, true);
        keeper.Start(cts.Token);

        var limit = renewed + TimeSpan.FromSeconds(ttl) - LeaseKeeper.Margin(ttl);
        for (var i = 0; i < ttl * 20 * 2 && !fenced.Task.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(50));
            await Task.Delay(1);
        }

        await cts.CancelAsync();
        await keeper.StopAsync();
        Assert.True(fenced.Task.IsCompleted, "the fence never fired");
        var at = await fenced.Task;
        Assert.True(at <= limit + TimeSpan.FromMilliseconds(100), $"fenced {(at - renewed).TotalSeconds:0.00} s after the last renewal; the deadline was {(limit - renewed).TotalSeconds:0.00} s");
        Assert.True(at >= limit - TimeSpan.FromMilliseconds(100), $"fenced too early: {(at - renewed).TotalSeconds:0.00} s");
        Assert.True(Volatile.Read(ref attempts) >= 2, "renewals were being retried when the deadline passed");
    }

    /// <summary>
    /// Story: an integration test of failsafe_mode (etcd frozen, every member up) saw the leader fenced 3.7 s after the
    /// freeze under load. The confirmation was asked for only after the HA cycle's read of etcd had timed out
    /// (retry_timeout), which left less than a second of the lease for it. Now the keeper asks as soon as a renewal is
    /// late (half a period) and at once on every turn after a failed one, so the confirmations come while the lease lives.
    /// </summary>
    [Theory]
    [InlineData(2)] // retry_timeout as in the integration test: each renewal hangs, then fails
    [InlineData(10)] // a renewal that hangs longer than the lease lives (Patroni-rule-breaking timings)
    public async Task With_failsafe_the_members_are_asked_as_soon_as_a_renewal_is_late_and_their_confirmations_keep_the_primary_alive(int retryTimeout)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var hang = false;
        var scripted = Scripted.Over(new InMemoryEtcd(time).Connect("/service/t/"), (_, ct) => Volatile.Read(ref hang) ? HangThenFail(ct) : null);
        async Task<LeaseState> HangThenFail(CancellationToken ct)
        {
            await Task.Delay(TimeSpan.FromSeconds(retryTimeout), time, ct);
            throw new StoreUnavailableException("etcd did not answer within retry_timeout");
        }

        var asked = new List<TimeSpan>();
        var frozenAt = 0L;
        var fenced = 0;
        var keeper = new LeaseKeeper(scripted, time, NullLogger.Instance, () => 6, () => 1, _ =>
        {
            Interlocked.Increment(ref fenced);
            return Task.CompletedTask;
        })
        {
            FailsafeConfirm = _ =>
            {
                lock (asked)
                {
                    asked.Add(time.GetElapsedTime(Volatile.Read(ref frozenAt)));
                }

                return Task.FromResult(true);
            },
        };
        using var cts = new CancellationTokenSource();
        await keeper.RenewAsync(cts.Token);
        Volatile.Write(ref frozenAt, time.GetTimestamp());
        Volatile.Write(ref hang, true);
        keeper.Start(cts.Token);

        for (var i = 0; i < 30 * 40; i++) // 30 s of etcd not answering
        {
            time.Advance(TimeSpan.FromMilliseconds(25));
            await Task.Delay(1);
        }

        await cts.CancelAsync();
        await keeper.StopAsync();
        Assert.Equal(0, Volatile.Read(ref fenced));
        Assert.True(keeper.IsValid, "the confirmations extend the deadline past the lease's");
        TimeSpan[] at;
        lock (asked)
        {
            at = [.. asked];
        }

        Assert.True(at.Length >= 15, $"asked {at.Length} times in 30 s");
        // The first hanging renewal is late after half a period (0.5 s), long before it fails (retry_timeout).
        Assert.InRange(at[0].TotalSeconds, 0.45, 0.6);
        // Then every period while a renewal hangs, and at once on the turn after a failed one (a period after it failed):
        // never more than two periods apart, against the 4.5 s each confirmation buys.
        Assert.All(at.Zip(at.Skip(1), (a, b) => b - a), gap => Assert.InRange(gap.TotalSeconds, 0.9, 2.1));
    }

    [Fact]
    public async Task With_failsafe_refused_by_a_member_the_fence_fires_at_the_lease_deadline()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        var fenced = new TaskCompletionSource<DateTimeOffset>(TaskCreationOptions.RunContinuationsAsynchronously);
        var asked = 0;
        var keeper = new LeaseKeeper(etcd.Connect("/service/t/"), time, NullLogger.Instance, () => 6, () => 1, _ =>
        {
            fenced.TrySetResult(time.GetUtcNow());
            return Task.CompletedTask;
        })
        {
            FailsafeConfirm = _ =>
            {
                Interlocked.Increment(ref asked);
                return Task.FromResult(false);
            },
        };
        using var cts = new CancellationTokenSource();
        await keeper.RenewAsync(cts.Token);
        var renewed = time.GetUtcNow();
        etcd.Available = false;
        keeper.Start(cts.Token);

        for (var i = 0; i < 10 * 40 && !fenced.Task.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(25));
            await Task.Delay(1);
        }

        await cts.CancelAsync();
        await keeper.StopAsync();
        Assert.True(fenced.Task.IsCompleted, "the fence never fired");
        var limit = renewed + TimeSpan.FromSeconds(6) - LeaseKeeper.Margin(6);
        Assert.InRange(await fenced.Task, limit - TimeSpan.FromMilliseconds(100), limit + TimeSpan.FromMilliseconds(100));
        Assert.True(Volatile.Read(ref asked) >= 2, "the members were asked on the turns after the failed renewals");
    }

    [Fact]
    public async Task With_failsafe_and_renewals_answered_in_time_the_members_are_never_asked()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var asked = 0;
        var keeper = new LeaseKeeper(new InMemoryEtcd(time).Connect("/service/t/"), time, NullLogger.Instance, () => 6, () => 1, _ => Task.CompletedTask)
        {
            FailsafeConfirm = _ =>
            {
                Interlocked.Increment(ref asked);
                return Task.FromResult(true);
            },
        };
        using var cts = new CancellationTokenSource();
        await keeper.RenewAsync(cts.Token);
        keeper.Start(cts.Token);
        for (var i = 0; i < 10 * 40; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(25));
            await Task.Delay(1);
        }

        await cts.CancelAsync();
        await keeper.StopAsync();
        Assert.Equal(0, Volatile.Read(ref asked));
        Assert.True(keeper.IsValid);
        Assert.False(keeper.FailsafeActive);
    }

    [Fact]
    public async Task A_live_lease_is_never_fenced()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var fences = 0;
        var keeper = new LeaseKeeper(store, time, NullLogger.Instance, () => 6, () => 1, _ =>
        {
            Interlocked.Increment(ref fences);
            return Task.CompletedTask;
        });
        using var cts = new CancellationTokenSource();
        await keeper.RenewAsync(cts.Token);
        keeper.Start(cts.Token);
        for (var i = 0; i < 800; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(25));
            await Task.Delay(1);
        }

        await cts.CancelAsync();
        await keeper.StopAsync();
        Assert.Equal(0, fences);
        Assert.True(keeper.Deadline > time.GetUtcNow());
    }

    [Fact]
    public async Task Every_renewal_moves_the_fence_deadline_to_send_time_plus_ttl_minus_margin()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var fence = new FenceLog();
        var keeper = new LeaseKeeper(store, time, NullLogger.Instance, () => 6, () => 1, _ => Task.CompletedTask, fence);

        await keeper.RenewAsync(CancellationToken.None);
        var first = time.GetTimestamp() + (long)((6 - LeaseKeeper.Margin(6).TotalSeconds) * time.TimestampFrequency);
        Assert.Equal(first, fence.Deadlines.Single());
        Assert.True(keeper.IsValid);

        time.Advance(TimeSpan.FromSeconds(1));
        await keeper.RenewAsync(CancellationToken.None);
        Assert.Equal(first + time.TimestampFrequency, fence.Deadlines[^1]);

        time.Advance(TimeSpan.FromSeconds(4.5) - TimeSpan.FromTicks(1));
        Assert.True(keeper.IsValid);
        Assert.True(keeper.Remaining > TimeSpan.Zero);
        time.Advance(TimeSpan.FromTicks(1));
        Assert.False(keeper.IsValid, "the lease is no longer provably alive at its deadline");
        Assert.True(keeper.Remaining <= TimeSpan.Zero);
    }

    [Fact]
    public async Task A_lease_found_expired_fences_before_the_new_lease_extends_anything()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var fence = new FenceLog();
        var keeper = new LeaseKeeper(store, time, NullLogger.Instance, () => 6, () => 1, _ =>
        {
            fence.Events.Add("deadline handler");
            return Task.CompletedTask;
        }, fence);

        await keeper.RenewAsync(CancellationToken.None);
        var old = keeper.Current!.LeaseId;
        etcd.ExpireLease(old); // e.g. the agent was frozen past its ttl
        fence.Events.Clear();
        await keeper.RenewAsync(CancellationToken.None);

        Assert.NotEqual(old, keeper.Current!.LeaseId);
        Assert.Equal(["deadline handler", "extend"], fence.Events);
    }

    [Fact]
    public void No_renewal_yet_means_no_valid_lease()
    {
        var time = new FakeTimeProvider();
        var keeper = new LeaseKeeper(new InMemoryEtcd(time).Connect("/service/t/"), time, NullLogger.Instance, () => 6, () => 1, _ => Task.CompletedTask);
        Assert.False(keeper.IsValid);
        Assert.Null(keeper.Remaining);
        Assert.Null(keeper.Deadline);
    }

    [Theory]
    [InlineData(1, 1.0)]
    [InlineData(4, 1.0)]
    [InlineData(6, 1.5)]
    [InlineData(30, 7.5)]
    public void The_margin_is_a_quarter_of_ttl_and_at_least_a_second(int ttl, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), LeaseKeeper.Margin(ttl));

    [Fact]
    public async Task Deadline_and_remaining_count_down_from_send_time_plus_ttl_minus_margin()
    {
        var start = new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
        var time = new FakeTimeProvider(start);
        var keeper = new LeaseKeeper(new InMemoryEtcd(time).Connect("/service/t/"), time, NullLogger.Instance, () => 6, () => 1, _ => Task.CompletedTask);
        await keeper.RenewAsync(CancellationToken.None);
        Assert.Equal(start + TimeSpan.FromSeconds(4.5), keeper.Deadline);
        Assert.Equal(TimeSpan.FromSeconds(4.5), keeper.Remaining);

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(start + TimeSpan.FromSeconds(4.5), keeper.Deadline);
        Assert.Equal(TimeSpan.FromSeconds(3.5), keeper.Remaining);

        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.FromSeconds(-1.5), keeper.Remaining);
        Assert.Equal(start + TimeSpan.FromSeconds(4.5), keeper.Deadline);
        Assert.False(keeper.IsValid);
    }

    [Fact]
    public async Task The_first_lease_signals_a_lease_event_and_fires_nothing_and_a_renewal_of_the_same_lease_signals_nothing()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var (log, lines) = Capture();
        var deadlines = 0;
        var keeper = new LeaseKeeper(new InMemoryEtcd(time).Connect("/service/t/"), time, log, () => 6, () => 1, _ =>
        {
            deadlines++;
            return Task.CompletedTask;
        });

        var first = keeper.WaitForLeaseEventAsync(CancellationToken.None);
        Assert.False(first.IsCompleted);
        await keeper.RenewAsync(CancellationToken.None);
        Assert.True(first.IsCompletedSuccessfully, "a new lease is a lease event");
        Assert.True(keeper.Current!.IsNew);

        var second = keeper.WaitForLeaseEventAsync(CancellationToken.None);
        Assert.False(second.IsCompleted, "each event completes only the waits taken before it");
        time.Advance(TimeSpan.FromSeconds(1));
        await keeper.RenewAsync(CancellationToken.None);
        Assert.False(keeper.Current!.IsNew);
        Assert.False(second.IsCompleted, "renewing the same lease is no lease event");
        Assert.Equal(0, deadlines);
        Assert.Empty(lines);
    }

    [Fact]
    public async Task A_lost_lease_is_logged_fires_the_deadline_handler_once_and_signals_a_lease_event()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        var (log, lines) = Capture();
        var deadlines = 0;
        var keeper = new LeaseKeeper(etcd.Connect("/service/t/"), time, log, () => 6, () => 1, _ =>
        {
            deadlines++;
            return Task.CompletedTask;
        });
        await keeper.RenewAsync(CancellationToken.None);
        var old = keeper.Current!.LeaseId;
        etcd.ExpireLease(old);
        time.Advance(TimeSpan.FromSeconds(2));
        var lost = keeper.WaitForLeaseEventAsync(CancellationToken.None);

        await keeper.RenewAsync(CancellationToken.None);

        var now = keeper.Current!.LeaseId;
        Assert.NotEqual(old, now);
        Assert.Equal(1, deadlines);
        Assert.True(lost.IsCompletedSuccessfully);
        Assert.Equal($"Warning: session lease {old} was lost; granted a new one ({now})", Assert.Single(lines));
        Assert.Equal(TimeSpan.FromSeconds(4.5), keeper.Remaining);
    }

    [Fact]
    public async Task A_lease_found_expired_while_failsafe_holds_every_member_back_does_not_fire_the_deadline_handler()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        var (log, lines) = Capture();
        var deadlines = 0;
        var keeper = new LeaseKeeper(etcd.Connect("/service/t/"), time, log, () => 6, () => 1, _ =>
        {
            deadlines++;
            return Task.CompletedTask;
        });
        await keeper.RenewAsync(CancellationToken.None);
        var old = keeper.Current!.LeaseId;
        time.Advance(TimeSpan.FromSeconds(4));
        keeper.ExtendByFailsafe(time.GetTimestamp()); // confirmed until now + 4.5 s
        time.Advance(TimeSpan.FromSeconds(1)); // the lease's own deadline has passed
        Assert.True(keeper.FailsafeActive);
        etcd.ExpireLease(old);

        await keeper.RenewAsync(CancellationToken.None);

        Assert.Equal(0, deadlines);
        Assert.NotEqual(old, keeper.Current!.LeaseId);
        Assert.Single(lines, l => l.Contains("was lost", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Failsafe_extends_the_deadline_to_the_later_of_lease_and_confirmation_and_is_active_only_past_the_lease()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var fence = new FenceLog();
        var keeper = new LeaseKeeper(new InMemoryEtcd(time).Connect("/service/t/"), time, NullLogger.Instance, () => 6, () => 1, _ => Task.CompletedTask, fence);
        var t0 = time.GetTimestamp();
        var f = time.TimestampFrequency;

        // Before any lease: the confirmation alone.
        keeper.ExtendByFailsafe(t0 - (2 * f));
        Assert.Equal(t0 + (long)(2.5 * f), fence.Deadlines.Single());
        Assert.Equal(TimeSpan.FromSeconds(2.5), keeper.Remaining);
        Assert.True(keeper.FailsafeActive, "no lease deadline: the confirmation keeps the primary alive");

        await keeper.RenewAsync(CancellationToken.None); // lease deadline t0 + 4.5 s, later than the confirmation
        Assert.Equal(t0 + (long)(4.5 * f), fence.Deadlines[^1]);
        Assert.Equal(TimeSpan.FromSeconds(4.5), keeper.Remaining);
        Assert.False(keeper.FailsafeActive, "the lease itself is alive");

        time.Advance(TimeSpan.FromSeconds(3));
        keeper.ExtendByFailsafe(time.GetTimestamp()); // confirmed until t0 + 7.5 s
        Assert.Equal(t0 + (long)(7.5 * f), fence.Deadlines[^1]);
        Assert.Equal(TimeSpan.FromSeconds(4.5), keeper.Remaining);
        Assert.False(keeper.FailsafeActive);

        keeper.ExtendByFailsafe(t0); // an older confirmation replaces it: t0 + 4.5 s, the lease's own
        Assert.Equal(t0 + (long)(4.5 * f), fence.Deadlines[^1]);
        keeper.ExtendByFailsafe(time.GetTimestamp());

        time.Advance(TimeSpan.FromSeconds(1.5)); // exactly the lease deadline
        Assert.True(keeper.FailsafeActive);
        Assert.True(keeper.IsValid);
        Assert.Equal(TimeSpan.FromSeconds(3), keeper.Remaining);

        time.Advance(TimeSpan.FromSeconds(3) - TimeSpan.FromTicks(1));
        Assert.True(keeper.FailsafeActive);
        time.Advance(TimeSpan.FromTicks(1));
        Assert.False(keeper.FailsafeActive, "the confirmation ran out");
        Assert.False(keeper.IsValid);
    }

    [Fact]
    public async Task A_ttl_change_moves_the_leader_key_to_a_new_lease_of_the_new_length()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        await using var store = etcd.Connect("/service/t/");
        var (log, lines) = Capture();
        var ttl = 6;
        var deadlines = 0;
        var fence = new FenceLog();
        var keeper = new LeaseKeeper(store, time, log, () => ttl, () => 1, _ =>
        {
            deadlines++;
            return Task.CompletedTask;
        }, fence) { LeaderName = "n1" };
        Assert.Equal("n1", keeper.LeaderName);
        await keeper.RenewAsync(CancellationToken.None);
        Assert.True(await store.TryAcquireLeaderAsync("n1", CancellationToken.None));
        var old = keeper.Current!.LeaseId;

        await keeper.RenewAsync(CancellationToken.None); // same ttl: the same lease
        Assert.Equal(old, keeper.Current!.LeaseId);

        ttl = 10;
        time.Advance(TimeSpan.FromSeconds(1));
        var moved = keeper.WaitForLeaseEventAsync(CancellationToken.None);
        await keeper.RenewAsync(CancellationToken.None);

        Assert.NotEqual(old, keeper.Current!.LeaseId);
        Assert.Equal(10, keeper.Current.TtlSeconds);
        Assert.True(keeper.Current.IsNew, "the state of the regrant itself, not of a renewal after it");
        Assert.True(moved.IsCompletedSuccessfully);
        Assert.Equal(TimeSpan.FromSeconds(7.5), keeper.Remaining);
        Assert.Equal(time.GetTimestamp() + (long)(7.5 * time.TimestampFrequency), fence.Deadlines[^1]);
        Assert.Equal("Information: ttl changed from 6 s to 10 s: moved to a new session lease", Assert.Single(lines));
        Assert.True(await store.HoldsLeaderAsync("n1", CancellationToken.None));
        Assert.Equal(0, deadlines);

        await keeper.RenewAsync(CancellationToken.None); // settled: the new lease is kept alive
        Assert.False(keeper.Current!.IsNew);
    }

    [Fact]
    public async Task A_ttl_change_without_a_leader_name_or_without_a_lease_keeps_renewing()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        var ttl = 6;
        var keeper = new LeaseKeeper(etcd.Connect("/service/t/"), time, NullLogger.Instance, () => ttl, () => 1, _ => Task.CompletedTask);
        await keeper.RenewAsync(CancellationToken.None);
        var old = keeper.Current!.LeaseId;
        ttl = 10;
        await keeper.RenewAsync(CancellationToken.None);
        Assert.Equal(old, keeper.Current!.LeaseId);
        Assert.Equal(6, keeper.Current.TtlSeconds);

        // A previous state without a lease (id 0) is not moved either.
        var regrants = 0;
        var scripted = Scripted.Over(etcd.Connect("/service/t/"), (_, _) => Task.FromResult(new LeaseState(0, true, time.GetTimestamp(), 6)), () => regrants++);
        var named = new LeaseKeeper(scripted, time, NullLogger.Instance, () => ttl, () => 1, _ => Task.CompletedTask) { LeaderName = "n1" };
        await named.RenewAsync(CancellationToken.None);
        await named.RenewAsync(CancellationToken.None);
        Assert.Equal(0, regrants);
    }

    [Fact]
    public async Task A_renewal_that_fails_is_logged_and_signals_a_lease_event_and_the_keeper_goes_on()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        var (log, lines) = Capture();
        var fail = (Exception?)null;
        var scripted = Scripted.Over(etcd.Connect("/service/t/"), (ttl, ct) => fail is { } e ? Task.FromException<LeaseState>(e) : null);
        var deadlines = 0;
        var keeper = new LeaseKeeper(scripted, time, log, () => 6, () => 1, _ =>
        {
            deadlines++;
            return Task.CompletedTask;
        });
        Assert.True(await Step(keeper, CancellationToken.None));

        fail = new StoreUnavailableException("connection refused");
        var e1 = keeper.WaitForLeaseEventAsync(CancellationToken.None);
        Assert.True(await Step(keeper, CancellationToken.None));
        Assert.True(e1.IsCompletedSuccessfully, "a failed renewal is a lease event");
        Assert.Equal("Warning: DCS is not accessible: connection refused", lines[^1]);

        fail = new InvalidOperationException("bug");
        var e2 = keeper.WaitForLeaseEventAsync(CancellationToken.None);
        Assert.True(await Step(keeper, CancellationToken.None));
        Assert.True(e2.IsCompletedSuccessfully, "whatever failed is a lease event");
        Assert.Equal("Error: HA cycle failed: bug", lines[^1]);
        Assert.Equal(0, deadlines);

        fail = null;
        var e3 = keeper.WaitForLeaseEventAsync(CancellationToken.None);
        Assert.True(await Step(keeper, CancellationToken.None));
        Assert.False(e3.IsCompleted, "a renewal of the same lease is no event");
    }

    [Fact]
    public async Task A_cancelled_step_reports_it_and_signals_nothing()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var (log, lines) = Capture();
        var keeper = new LeaseKeeper(new InMemoryEtcd(time).Connect("/service/t/"), time, log, () => 6, () => 1, _ => Task.CompletedTask);
        await keeper.RenewAsync(CancellationToken.None);
        var wait = keeper.WaitForLeaseEventAsync(CancellationToken.None);
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        Assert.False(await Step(keeper, cts.Token));
        Assert.False(wait.IsCompleted);
        Assert.Empty(lines);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => keeper.WaitForLeaseEventAsync(cts.Token));
    }

    [Fact]
    public async Task A_hanging_renewal_fires_the_deadline_handler_at_the_deadline_not_before()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var etcd = new InMemoryEtcd(time);
        var hang = (TaskCompletionSource<LeaseState>?)null;
        var scripted = Scripted.Over(etcd.Connect("/service/t/"), (_, _) => hang?.Task);
        var fired = new List<TimeSpan>();
        var start = time.GetTimestamp();
        var keeper = new LeaseKeeper(scripted, time, NullLogger.Instance, () => 6, () => 1, _ =>
        {
            fired.Add(time.GetElapsedTime(start));
            return Task.CompletedTask;
        });
        Assert.True(await Step(keeper, CancellationToken.None));
        Assert.Empty(fired);

        hang = new TaskCompletionSource<LeaseState>(TaskCreationOptions.RunContinuationsAsynchronously);
        var step = Step(keeper, CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(4.5) - TimeSpan.FromTicks(1));
        await Task.Yield();
        Assert.Empty(fired);
        Assert.False(step.IsCompleted);
        time.Advance(TimeSpan.FromTicks(1));
        await WaitUntil(() => fired.Count == 1);
        Assert.Equal(TimeSpan.FromSeconds(4.5), fired[0]);
        Assert.False(step.IsCompleted, "the turn still waits for its renewal");

        hang.SetResult(new LeaseState(keeper.Current!.LeaseId, false, time.GetTimestamp(), 6));
        Assert.True(await step);
        Assert.Single(fired);

        // Already past the deadline when the turn starts: the handler runs at once, without waiting for the renewal.
        hang = new TaskCompletionSource<LeaseState>(TaskCreationOptions.RunContinuationsAsynchronously);
        time.Advance(TimeSpan.FromSeconds(5));
        var late = Step(keeper, CancellationToken.None);
        await WaitUntil(() => fired.Count == 2);
        hang.SetResult(new LeaseState(keeper.Current!.LeaseId, false, time.GetTimestamp(), 6));
        Assert.True(await late);
        Assert.Equal(2, fired.Count);
    }

    [Fact]
    public async Task A_hanging_first_renewal_has_no_deadline_to_act_on()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var hang = new TaskCompletionSource<LeaseState>(TaskCreationOptions.RunContinuationsAsynchronously);
        var scripted = Scripted.Over(new InMemoryEtcd(time).Connect("/service/t/"), (_, _) => hang.Task);
        var deadlines = 0;
        var keeper = new LeaseKeeper(scripted, time, NullLogger.Instance, () => 6, () => 1, _ =>
        {
            deadlines++;
            return Task.CompletedTask;
        });
        var step = Step(keeper, CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(60));
        hang.SetResult(new LeaseState(42, true, time.GetTimestamp(), 6));
        Assert.True(await step);
        Assert.Equal(0, deadlines);
    }

    [Theory]
    [InlineData(6, 1, 1.0)]
    [InlineData(9, 5, 3.0)]
    [InlineData(30, 2, 2.0)]
    [InlineData(1, 1, 0.5)]
    [InlineData(60, 30, 10.0)]
    [InlineData(30, 0, 0.5)]
    public void Without_a_lease_the_period_is_min_of_loop_wait_and_a_third_of_ttl_within_half_a_second_and_ten(int ttl, int loopWait, double seconds)
    {
        var time = new FakeTimeProvider();
        var keeper = new LeaseKeeper(new InMemoryEtcd(time).Connect("/service/t/"), time, NullLogger.Instance, () => ttl, () => loopWait, _ => Task.CompletedTask);
        Assert.Equal(TimeSpan.FromSeconds(seconds), keeper.NextPeriod());
    }

    [Fact]
    public async Task The_period_never_sleeps_past_the_deadline_and_is_50_ms_once_it_passed()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var keeper = new LeaseKeeper(new InMemoryEtcd(time).Connect("/service/t/"), time, NullLogger.Instance, () => 6, () => 10, _ => Task.CompletedTask);
        await keeper.RenewAsync(CancellationToken.None); // deadline in 4.5 s, period 2 s
        Assert.Equal(TimeSpan.FromSeconds(2), keeper.NextPeriod());
        time.Advance(TimeSpan.FromSeconds(2.5));
        Assert.Equal(TimeSpan.FromSeconds(2), keeper.NextPeriod()); // exactly 2 s left
        time.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(TimeSpan.FromSeconds(1.5), keeper.NextPeriod());
        time.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Equal(TimeSpan.FromMilliseconds(50), keeper.NextPeriod()); // exactly at the deadline
        time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(TimeSpan.FromMilliseconds(50), keeper.NextPeriod());
    }

    [Fact]
    public async Task The_loop_renews_every_period_until_stopped_and_stopping_twice_or_unstarted_is_harmless()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var renewals = new List<long>();
        var scripted = Scripted.Over(new InMemoryEtcd(time).Connect("/service/t/"), (_, _) =>
        {
            lock (renewals)
            {
                renewals.Add(time.GetTimestamp());
            }

            return null;
        });
        var keeper = new LeaseKeeper(scripted, time, NullLogger.Instance, () => 6, () => 1, _ => Task.CompletedTask);
        await keeper.StopAsync(); // never started

        using var cts = new CancellationTokenSource();
        keeper.Start(cts.Token);
        await WaitUntil(() => Count(renewals) == 1);
        for (var i = 2; i <= 4; i++)
        {
            var expected = i;
            await WaitUntil(() =>
            {
                time.Advance(TimeSpan.FromMilliseconds(50));
                return Count(renewals) >= expected;
            });
        }

        lock (renewals)
        {
            for (var i = 1; i < renewals.Count; i++)
            {
                // The loop sleeps one period (1 s) on the fake clock between renewals, and not less.
                Assert.True(renewals[i] - renewals[i - 1] >= time.TimestampFrequency, $"renewal {i} came {renewals[i] - renewals[i - 1]} ticks after the one before");
            }
        }

        await keeper.StopAsync();
        var stopped = Count(renewals);
        time.Advance(TimeSpan.FromSeconds(10));
        await Task.Delay(50);
        Assert.Equal(stopped, Count(renewals));
        await keeper.StopAsync();
        Assert.False(cts.IsCancellationRequested, "stopping the keeper does not cancel its caller");
    }

    [Fact]
    public async Task Stopping_waits_for_the_renewal_in_flight()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var hang = new TaskCompletionSource<LeaseState>(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = 0;
        var scripted = Scripted.Over(new InMemoryEtcd(time).Connect("/service/t/"), (_, _) => Interlocked.Increment(ref calls) == 1 ? null : hang.Task);
        var keeper = new LeaseKeeper(scripted, time, NullLogger.Instance, () => 6, () => 1, _ => Task.CompletedTask);
        await keeper.RenewAsync(CancellationToken.None);
        keeper.Start(CancellationToken.None);
        await WaitUntil(() => Volatile.Read(ref calls) == 2);

        var stop = keeper.StopAsync();
        await Task.Delay(50);
        Assert.False(stop.IsCompleted, "the loop is still in its turn");
        hang.SetResult(new LeaseState(keeper.Current!.LeaseId, false, time.GetTimestamp(), 6));
        await stop;
        Assert.True(stop.IsCompletedSuccessfully);
    }

    private static int Count(List<long> list)
    {
        lock (list)
        {
            return list.Count;
        }
    }

    private static Task<bool> Step(LeaseKeeper keeper, CancellationToken ct) => (Task<bool>)keeper.StepAsync(ct);

    private static async Task WaitUntil(Func<bool> condition)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), "timed out");
            await Task.Delay(5);
        }
    }

    private static (ILogger Log, List<string> Lines) Capture()
    {
        var lines = new List<string>();
        var log = new CapturingLoggerFactory((level, _, text) =>
        {
            lock (lines)
            {
                lines.Add($"{level}: {text}");
            }
        }).CreateLogger("lease");
        return (log, lines);
    }

    /// <summary>A store whose KeepAliveAsync can be scripted (null: the real one); every other call goes to the inner store.</summary>
    public class Scripted : DispatchProxy
    {
        private IClusterStore _inner = null!;
        private Func<int, CancellationToken, Task<LeaseState>?> _keepAlive = null!;
        private Action _regrant = null!;

        internal static IClusterStore Over(IClusterStore inner, Func<int, CancellationToken, Task<LeaseState>?> keepAlive, Action? regrant = null)
        {
            var proxy = Create<IClusterStore, Scripted>();
            var s = (Scripted)(object)proxy;
            s._inner = inner;
            s._keepAlive = keepAlive;
            s._regrant = regrant ?? (() => { });
            return proxy;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            ArgumentNullException.ThrowIfNull(targetMethod);
            if (targetMethod.Name == nameof(IClusterStore.KeepAliveAsync) && _keepAlive((int)args![0]!, (CancellationToken)args[1]!) is { } scripted)
            {
                return scripted;
            }

            if (targetMethod.Name == nameof(IClusterStore.RegrantAsync))
            {
                _regrant();
            }

            try
            {
                return targetMethod.Invoke(_inner, args);
            }
            catch (TargetInvocationException e) when (e.InnerException is { } inner)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(inner).Throw();
                throw;
            }
        }
    }

    private sealed class FenceLog : Steward.Agent.Fence.IPrimaryFence
    {
        public List<long> Deadlines { get; } = [];
        public List<string> Events { get; } = [];
        public bool Armed => false;
        public void Arm(int? postmasterPid) { }
        public void Disarm() { }
        public bool FireNow(string reason) => false;

        public void Extend(long deadlineTimestamp)
        {
            Deadlines.Add(deadlineTimestamp);
            Events.Add("extend");
        }
    }
}
