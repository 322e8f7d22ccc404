using Microsoft.Extensions.Time.Testing;
using Steward.Core.Cluster;
using Steward.Testing;

namespace Steward.IntegrationTests.Store;

/// <summary>The contract against <see cref="InMemoryClusterStore"/>: time is a fake clock, advanced by the tests.</summary>
public sealed class InMemoryClusterStoreContract : ClusterStoreContract
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2025-10-09T16:00:00+00:00"));
    private readonly InMemoryEtcd _server;

    public InMemoryClusterStoreContract()
    {
        _server = new InMemoryEtcd(_time);
    }

    protected override TimeProvider Time => _time;

    protected override IClusterStore CreateStore() => _server.Connect(Prefix);

    protected override Task PutRawAsync(string relativeKey, string value)
    {
        _server.PutRaw(Prefix + relativeKey, value);
        return Task.CompletedTask;
    }

    protected override async Task TickAsync()
    {
        _time.Advance(TimeSpan.FromMilliseconds(250));
        await Task.Yield();
    }
}

/// <summary>Fault injection of the in-memory store, which the simulation tests rely on.</summary>
public sealed class InMemoryEtcdFaultTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public async Task An_unavailable_server_fails_every_call_with_StoreUnavailable()
    {
        var server = new InMemoryEtcd(_time);
        await using var a = server.Connect();
        await a.KeepAliveAsync(6, CancellationToken.None);
        server.Available = false;

        await Assert.ThrowsAsync<StoreUnavailableException>(() => a.LoadAsync(CancellationToken.None));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => a.KeepAliveAsync(6, CancellationToken.None));
        await Assert.ThrowsAsync<StoreUnavailableException>(() => a.TryAcquireLeaderAsync("a", CancellationToken.None));

        server.Available = true;
        Assert.True(await a.TryAcquireLeaderAsync("a", CancellationToken.None));
    }

    [Fact]
    public async Task A_partitioned_client_fails_while_the_others_carry_on_and_its_lease_runs_out()
    {
        var server = new InMemoryEtcd(_time);
        await using var a = server.Connect();
        await using var b = server.Connect();
        await a.KeepAliveAsync(6, CancellationToken.None);
        await b.KeepAliveAsync(30, CancellationToken.None);
        Assert.True(await a.TryAcquireLeaderAsync("a", CancellationToken.None));

        a.Partitioned = true;
        await Assert.ThrowsAsync<StoreUnavailableException>(() => a.KeepAliveAsync(6, CancellationToken.None));
        _time.Advance(TimeSpan.FromSeconds(6));

        Assert.Null((await b.LoadAsync(CancellationToken.None)).Leader);
        Assert.True(await b.TryAcquireLeaderAsync("b", CancellationToken.None));

        a.Partitioned = false;
        Assert.True((await a.KeepAliveAsync(6, CancellationToken.None)).IsNew);
        Assert.False(await a.HoldsLeaderAsync("a", CancellationToken.None));
    }

    [Fact]
    public async Task ExpireLease_deletes_the_keys_at_once_and_wakes_the_waiters()
    {
        var server = new InMemoryEtcd(_time);
        await using var a = server.Connect();
        await using var b = server.Connect();
        var lease = await a.KeepAliveAsync(6, CancellationToken.None);
        Assert.True(await a.TryAcquireLeaderAsync("a", CancellationToken.None));
        await b.LoadAsync(CancellationToken.None);
        var wait = b.WaitForChangeAsync(CancellationToken.None);

        server.ExpireLease(lease.LeaseId);

        await wait.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Null((await b.LoadAsync(CancellationToken.None)).Leader);
        Assert.Empty(server.Leases);
    }

    [Fact]
    public async Task A_lease_expiring_on_the_fake_clock_wakes_the_waiters()
    {
        var server = new InMemoryEtcd(_time);
        await using var a = server.Connect();
        await using var b = server.Connect();
        await a.KeepAliveAsync(6, CancellationToken.None);
        Assert.True(await a.TryAcquireLeaderAsync("a", CancellationToken.None));
        await b.LoadAsync(CancellationToken.None);
        var wait = b.WaitForChangeAsync(CancellationToken.None);

        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.False(wait.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(1));

        await wait.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Null((await b.LoadAsync(CancellationToken.None)).Leader);
    }
}
