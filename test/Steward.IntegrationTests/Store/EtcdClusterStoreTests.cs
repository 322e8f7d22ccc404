using System.Diagnostics;
using dotnet_etcd;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Core.Cluster;
using Steward.Etcd;
using Steward.IntegrationTests.Infrastructure;

namespace Steward.IntegrationTests.Store;

/// <summary>The contract against a real etcd (one per class; every test has its own prefix).</summary>
public sealed class EtcdClusterStoreContract(EtcdFixture etcd) : ClusterStoreContract, IClassFixture<EtcdFixture>
{
    protected override TimeProvider Time => TimeProvider.System;

    protected override IClusterStore CreateStore() =>
        new EtcdClusterStore([etcd.Endpoint], Prefix, TimeSpan.FromSeconds(5), TimeProvider.System, NullLogger<EtcdClusterStore>.Instance);

    protected override async Task PutRawAsync(string relativeKey, string value)
    {
        using var client = new EtcdClient(etcd.Endpoint);
        await client.PutAsync(Prefix + relativeKey, value, cancellationToken: Ct);
    }

    protected override Task TickAsync() => Task.Delay(100, Ct);
}

/// <summary>What only a real etcd can show: unreachable endpoints, endpoint failover, a stalled server.</summary>
public sealed class EtcdClusterStoreTests
{
    private const string Prefix = "/service/demo/";

    private static EtcdClusterStore Store(TimeSpan timeout, params string[] endpoints) =>
        new(endpoints, Prefix, timeout, TimeProvider.System, NullLogger<EtcdClusterStore>.Instance);

    [Fact]
    public async Task An_unreachable_endpoint_fails_with_StoreUnavailable_within_the_request_timeout()
    {
        var endpoint = $"http://127.0.0.1:{FreePorts.Next()}";
        await using var store = Store(TimeSpan.FromSeconds(2), endpoint);

        var watch = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.LoadAsync(CancellationToken.None));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"took {watch.Elapsed}");
        Assert.Contains(endpoint, e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<StoreUnavailableException>(() => store.KeepAliveAsync(6, CancellationToken.None));
    }

    /// <summary>
    /// Found by this test: with a frozen server, Grpc.Net.Client sometimes reports its own deadline as a
    /// TaskCanceledException from the HTTP/2 read instead of RpcException(DeadlineExceeded), which leaked to the caller.
    /// </summary>
    [Fact]
    public async Task A_stalled_server_fails_with_StoreUnavailable_within_the_request_timeout()
    {
        await using var etcd = await EtcdServer.StartAsync();
        await using var store = Store(TimeSpan.FromSeconds(1), etcd.Endpoint);
        await store.LoadAsync(CancellationToken.None);
        etcd.Pause();
        try
        {
            var watch = Stopwatch.StartNew();
            var e = await Assert.ThrowsAsync<StoreUnavailableException>(() => store.LoadAsync(CancellationToken.None));
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"took {watch.Elapsed}");
            Assert.Contains(etcd.Endpoint, e.Message, StringComparison.Ordinal);
        }
        finally
        {
            etcd.Resume();
        }
        await store.LoadAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_call_moves_on_to_the_next_endpoint_when_the_first_is_unreachable()
    {
        await using var etcd = await EtcdServer.StartAsync();
        var dead = $"http://127.0.0.1:{FreePorts.Next()}";
        await using var store = Store(TimeSpan.FromSeconds(3), dead, etcd.Endpoint);

        var lease = await store.KeepAliveAsync(6, CancellationToken.None);
        Assert.True(await store.TryAcquireLeaderAsync("a", CancellationToken.None));
        Assert.Equal(lease.LeaseId, (await store.LoadAsync(CancellationToken.None)).Leader?.LeaseId);
    }

    /// <summary>
    /// A leader renewing a 6 s lease every second must survive etcd freezing for 2 s: the keepalives during the stall
    /// fail (StoreUnavailable), the first one after it succeeds, and the leader key never went away.
    /// </summary>
    [Fact]
    public async Task A_lease_renewed_every_second_survives_a_two_second_stall_of_etcd()
    {
        await using var etcd = await EtcdServer.StartAsync();
        await using var store = Store(TimeSpan.FromSeconds(1), etcd.Endpoint);
        var first = await store.KeepAliveAsync(6, CancellationToken.None);
        Assert.True(await store.TryAcquireLeaderAsync("a", CancellationToken.None));

        using var renewing = new CancellationTokenSource();
        var failures = 0;
        var renewals = Task.Run(async () =>
        {
            using var tick = new PeriodicTimer(TimeSpan.FromSeconds(1));
            while (await tick.WaitForNextTickAsync(renewing.Token))
            {
                try
                {
                    var state = await store.KeepAliveAsync(6, renewing.Token);
                    Assert.False(state.IsNew, "the lease was lost");
                }
                catch (StoreUnavailableException)
                {
                    failures++;
                }
            }
        });

        await Task.Delay(1500);
        etcd.Pause();
        await Task.Delay(2000);
        etcd.Resume();
        await Task.Delay(2500);
        await renewing.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => renewals);

        Assert.True(await store.HoldsLeaderAsync("a", CancellationToken.None));
        var after = await store.KeepAliveAsync(6, CancellationToken.None);
        Assert.Equal(first.LeaseId, after.LeaseId);
        Assert.False(after.IsNew);
        Assert.InRange(failures, 1, 3);
    }
}
