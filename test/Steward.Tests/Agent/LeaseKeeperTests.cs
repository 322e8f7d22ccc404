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
