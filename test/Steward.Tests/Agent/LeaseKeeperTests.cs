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
}
