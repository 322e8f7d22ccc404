using System.Text;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Steward.Core.Cluster;

namespace Steward.Etcd;

/// <summary>
/// <see cref="IClusterStore"/> on etcd v3 (tested against 3.4), talking gRPC through the clients generated in dotnet-etcd
/// so that every call, the one-shot lease keepalive and the watch stream are under our control.
/// <list type="bullet">
/// <item>Every call has a deadline of <c>requestTimeout</c>. Unavailable, DeadlineExceeded, connection errors and any
/// other gRPC failure become <see cref="StoreUnavailableException"/> naming the endpoint(s). With several endpoints a call
/// moves on to the next one when an endpoint is Unavailable; after a timeout the next call starts at the next endpoint.</item>
/// <item>The watch on the prefix starts lazily, with the first <see cref="LoadAsync"/> (pinned to the revision after the
/// one read) or <see cref="WaitForChangeAsync"/>, and runs until <see cref="DisposeAsync"/>. It counts as established only
/// when etcd answered <c>Created</c>; a broken watch is re-established with back-off from the last revision seen, and
/// its re-establishment wakes the waiters so they re-read.</item>
/// <item><see cref="WaitForChangeAsync"/> completes at once when the watch saw a change after the revision of this
/// store's last <see cref="LoadAsync"/>, so a change between a read and the wait is never lost.</item>
/// <item>Writes bound to the session lease that find it expired drop it, so the next <see cref="KeepAliveAsync"/> grants
/// a new one: <see cref="TryAcquireLeaderAsync"/> then returns false; <see cref="PutMemberAsync"/> throws
/// <see cref="StoreUnavailableException"/> (the member key is not written; the caller re-puts after the new lease).</item>
/// <item><see cref="DisposeAsync"/> stops the watch and closes the channels; it does not revoke the lease.</item>
/// </list>
/// </summary>
public sealed partial class EtcdClusterStore : IClusterStore, IRouterKeys
{
    private static readonly TimeSpan MaxWatchBackoff = TimeSpan.FromSeconds(2);

    private readonly Endpoint[] _endpoints;
    private TimeSpan _requestTimeout; // retry_timeout: SetRequestTimeout follows the config key
    private readonly TimeProvider _time;
    private readonly ILogger<EtcdClusterStore> _logger;
    private readonly string? _username;
    private readonly string? _password;
    private readonly ByteString _prefixKey;
    private readonly ByteString _prefixEnd;
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private List<TaskCompletionSource> _waiters = [];
    private int _preferred;
    private long _leaseId;
    private long _loadedRevision;
    private long _eventRevision;
    private long _watchFrom;
    private bool _resync = true;
    private bool _watchEstablishedBefore;
    private Task? _watch;

    /// <summary>
    /// A store for the <c>etcd3</c> section: its endpoints, user and password, and for https its CA
    /// (<c>cacert</c>; else the system's trust store) and client certificate (<c>cert</c>, <c>key</c>, <c>key_password</c>).
    /// </summary>
    /// <exception cref="Steward.Core.Configuration.ConfigException">A certificate or key file cannot be read or loaded.</exception>
    /// <summary>
    /// Calls started from now on get <paramref name="timeout"/> (the <c>config</c> key's retry_timeout changed). The
    /// endpoints' connect timeout stays as created. Safety does not rest on it: the leader's lease deadline does not move.
    /// </summary>
    public void SetRequestTimeout(TimeSpan timeout)
    {
        if (timeout > TimeSpan.Zero && timeout != _requestTimeout)
        {
            LogRequestTimeoutChanged(_logger, _requestTimeout.TotalSeconds, timeout.TotalSeconds);
            _requestTimeout = timeout;
        }
    }

    public static EtcdClusterStore Create(Steward.Core.Configuration.Etcd3Config etcd, string prefix, TimeSpan requestTimeout, TimeProvider time,
        ILogger<EtcdClusterStore> logger)
    {
        ArgumentNullException.ThrowIfNull(etcd);
        var ca = etcd.CaCert is { } caFile ? Steward.Core.Configuration.TlsFiles.LoadCa(caFile, "etcd3.cacert") : null;
        var cert = etcd.Cert is { } certFile
            ? Steward.Core.Configuration.TlsFiles.LoadCertificate(certFile, etcd.Key, etcd.KeyPassword, "etcd3.cert", "etcd3.key")
            : null;
        return new EtcdClusterStore(etcd.Endpoints, prefix, requestTimeout, time, logger, etcd.Username, etcd.Password,
            new EtcdTls(ca, cert, etcd.CaCert));
    }

    public EtcdClusterStore(IReadOnlyList<string> endpoints, string prefix, TimeSpan requestTimeout, TimeProvider time,
        ILogger<EtcdClusterStore> logger, string? username = null, string? password = null, EtcdTls? tls = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        if (endpoints.Count == 0)
        {
            throw new ArgumentException("at least one etcd endpoint is required", nameof(endpoints));
        }
        if (requestTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(requestTimeout), requestTimeout, "must be positive");
        }
        Prefix = prefix;
        _requestTimeout = requestTimeout;
        _time = time;
        _logger = logger;
        _username = username;
        _password = password;
        _prefixKey = ByteString.CopyFromUtf8(prefix);
        _prefixEnd = ByteString.CopyFromUtf8(dotnet_etcd.EtcdClient.GetRangeEnd(prefix));
        _endpoints = [.. endpoints.Select(url => new Endpoint(url, requestTimeout, tls))];
    }

    public string Prefix { get; }

    /// <summary>The session lease this store holds (0 for none).</summary>
    public long LeaseId { get { lock (_gate) { return _leaseId; } } }

    public async Task<ClusterView> LoadAsync(CancellationToken ct)
    {
        var response = await CallAsync("load", (ep, o) =>
            ep.Kv.RangeAsync(new RangeRequest { Key = _prefixKey, RangeEnd = _prefixEnd }, o).ResponseAsync, ct).ConfigureAwait(false);
        var revision = response.Header.Revision;
        lock (_gate)
        {
            _loadedRevision = Math.Max(_loadedRevision, revision);
            _resync = false;
        }
        EnsureWatch(revision + 1);
        var raw = response.Kvs.Select(kv => new RawKeyValue(
            kv.Key.ToStringUtf8()[Prefix.Length..], kv.Value.Memory, kv.ModRevision, kv.Lease));
        return PatroniCodec.Parse(revision, raw, _logger);
    }

    public async Task<LeaseState> KeepAliveAsync(int ttlSeconds, CancellationToken ct)
    {
        var renewedAt = _time.GetTimestamp();
        var current = LeaseId;
        if (current != 0)
        {
            var ttl = await CallAsync("keepalive", (ep, o) => KeepAliveOnceAsync(ep, current, o), ct).ConfigureAwait(false);
            if (ttl > 0)
            {
                return new LeaseState(current, false, renewedAt, (int)ttl);
            }
            LogLeaseExpired(_logger, current);
        }
        var granted = await CallAsync("grant lease", (ep, o) =>
            ep.Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = ttlSeconds }, o).ResponseAsync, ct).ConfigureAwait(false);
        lock (_gate)
        {
            _leaseId = granted.ID;
        }
        LogLeaseGranted(_logger, granted.ID, granted.TTL);
        return new LeaseState(granted.ID, true, renewedAt, (int)granted.TTL);
    }

    public async Task<LeaseState> RegrantAsync(int ttlSeconds, string leaderName, CancellationToken ct)
    {
        var renewedAt = _time.GetTimestamp();
        var old = LeaseId;
        var granted = await CallAsync("grant lease", (ep, o) =>
            ep.Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = ttlSeconds }, o).ResponseAsync, ct).ConfigureAwait(false);
        if (old != 0)
        {
            var key = Key(ClusterKeys.Leader);
            var name = ByteString.CopyFromUtf8(leaderName);
            var txn = new TxnRequest();
            txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = name });
            txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Lease, Result = Compare.Types.CompareResult.Equal, Lease = old });
            txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = name, Lease = granted.ID } });
            await TxnAsync("move leader to the new lease", txn, ct).ConfigureAwait(false);
        }

        lock (_gate)
        {
            _leaseId = granted.ID;
        }

        LogLeaseGranted(_logger, granted.ID, granted.TTL);
        return new LeaseState(granted.ID, true, renewedAt, (int)granted.TTL);
    }

    public async Task RevokeLeaseAsync(CancellationToken ct)
    {
        var current = LeaseId;
        if (current == 0)
        {
            return;
        }
        await CallAsync("revoke lease", async (ep, o) =>
        {
            try
            {
                await ep.Lease.LeaseRevokeAsync(new LeaseRevokeRequest { ID = current }, o).ResponseAsync.ConfigureAwait(false);
            }
            catch (RpcException e) when (IsLeaseNotFound(e))
            {
                // already expired: the keys bound to it are gone, which is what revoking asks for
            }
            return true;
        }, ct).ConfigureAwait(false);
        DropLease(current);
    }

    public async Task<bool> TryAcquireLeaderAsync(string name, CancellationToken ct)
    {
        var lease = LeaseId;
        if (lease == 0)
        {
            return false;
        }
        var key = Key(ClusterKeys.Leader);
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFromUtf8(name), Lease = lease } });
        txn.Failure.Add(new RequestOp { RequestRange = new RangeRequest { Key = key } });
        var outcome = await CallAsync("acquire leader", async (ep, o) =>
        {
            try
            {
                var r = await ep.Kv.TxnAsync(txn, o).ResponseAsync.ConfigureAwait(false);
                // Idempotent on retry (another endpoint after Unavailable): our own earlier write counts as success.
                return (bool?)(r.Succeeded || r.Responses[0].ResponseRange.Kvs is [{ } holder] && holder.Lease == lease && holder.Value.ToStringUtf8() == name);
            }
            catch (RpcException e) when (IsLeaseNotFound(e))
            {
                return null;
            }
        }, ct).ConfigureAwait(false);
        if (outcome is null)
        {
            LogLeaseLostOnWrite(_logger, lease, ClusterKeys.Leader);
            DropLease(lease);
        }
        return outcome == true;
    }

    public async Task<bool> HoldsLeaderAsync(string name, CancellationToken ct)
    {
        var lease = LeaseId;
        var key = Key(ClusterKeys.Leader);
        var r = await CallAsync("read leader", (ep, o) => ep.Kv.RangeAsync(new RangeRequest { Key = key }, o).ResponseAsync, ct).ConfigureAwait(false);
        return lease != 0 && r.Kvs is [{ } kv] && kv.Lease == lease && kv.Value.ToStringUtf8() == name;
    }

    public Task<bool> ReleaseLeaderAsync(string name, long leaseId, CancellationToken ct)
    {
        var key = Key(ClusterKeys.Leader);
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = ByteString.CopyFromUtf8(name) });
        txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Lease, Result = Compare.Types.CompareResult.Equal, Lease = leaseId });
        txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } });
        return TxnAsync("release leader", txn, ct);
    }

    public Task PutMemberAsync(string name, MemberData data, CancellationToken ct) =>
        PutWithLeaseAsync("put member", ClusterKeys.MembersDir + name, PatroniCodec.Serialize(data), ct);

    public Task PutRouterAsync(string name, RouterRegistration registration, CancellationToken ct) =>
        PutWithLeaseAsync("put router", ClusterKeys.RoutersDir + name, PatroniCodec.Serialize(registration), ct);

    public Task PutPauseAsync(string name, PauseConfirmation confirmation, CancellationToken ct) =>
        PutWithLeaseAsync("put pause", ClusterKeys.PauseDir + name, PatroniCodec.Serialize(confirmation), ct);

    public Task DeletePauseAsync(string name, CancellationToken ct) => DeleteAsync("delete pause", ClusterKeys.PauseDir + name, ct);

    private async Task PutWithLeaseAsync(string operation, string relativeKey, byte[] value, CancellationToken ct)
    {
        var lease = LeaseId;
        if (lease == 0)
        {
            throw new StoreUnavailableException($"{operation} {relativeKey}: no session lease; KeepAliveAsync grants one");
        }
        var put = new PutRequest { Key = Key(relativeKey), Value = ByteString.CopyFrom(value), Lease = lease };
        var written = await CallAsync(operation, async (ep, o) =>
        {
            try
            {
                await ep.Kv.PutAsync(put, o).ResponseAsync.ConfigureAwait(false);
                return true;
            }
            catch (RpcException e) when (IsLeaseNotFound(e))
            {
                return false;
            }
        }, ct).ConfigureAwait(false);
        if (!written)
        {
            LogLeaseLostOnWrite(_logger, lease, relativeKey);
            DropLease(lease);
            throw new StoreUnavailableException($"{operation} {relativeKey}: session lease {lease} has expired; KeepAliveAsync grants a new one");
        }
    }

    public Task DeleteMemberAsync(string name, CancellationToken ct) => DeleteAsync("delete member", ClusterKeys.MembersDir + name, ct);

    /// <summary>
    /// The bootstrap race. An empty value ("bootstrap in progress") is bound to this agent's lease, so a bootstrapper
    /// that dies half-way does not block the cluster for ever; <see cref="SetInitializeAsync"/> then writes the system
    /// id for good, without a lease.
    /// </summary>
    public Task<bool> TryCreateInitializeAsync(string value, CancellationToken ct) =>
        CreateAsync("create initialize", ClusterKeys.Initialize, ByteString.CopyFromUtf8(value), ct, value.Length == 0 ? LeaseId : 0);

    public Task SetInitializeAsync(string systemId, CancellationToken ct) =>
        PutAsync("set initialize", ClusterKeys.Initialize, ByteString.CopyFromUtf8(systemId), ct);

    public Task DeleteInitializeAsync(CancellationToken ct) => DeleteAsync("delete initialize", ClusterKeys.Initialize, ct);

    public Task<bool> SetConfigAsync(DynamicConfig config, long expectedModRevision, CancellationToken ct)
    {
        var key = Key(ClusterKeys.Config);
        var txn = new TxnRequest();
        txn.Compare.Add(expectedModRevision == 0
            ? new Compare { Key = key, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 }
            : new Compare { Key = key, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = expectedModRevision });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFrom(PatroniCodec.Serialize(config)) } });
        return TxnAsync("set config", txn, ct);
    }

    public Task SetStatusAsync(ClusterStatus status, CancellationToken ct) =>
        PutAsync("set status", ClusterKeys.Status, ByteString.CopyFrom(PatroniCodec.Serialize(status)), ct);

    public Task<bool> SetHistoryAsync(IReadOnlyList<HistoryEntry> history, long expectedModRevision, string leaderName, CancellationToken ct) =>
        LeaderGuardedWriteAsync("set history", ClusterKeys.History, ByteString.CopyFrom(PatroniCodec.Serialize(history)), expectedModRevision, leaderName, ct);

    public Task<bool> SetSyncStateAsync(SyncState? state, long expectedModRevision, string leaderName, CancellationToken ct) =>
        LeaderGuardedWriteAsync(state is null ? "delete sync" : "set sync", ClusterKeys.Sync,
            state is null ? null : ByteString.CopyFrom(PatroniCodec.Serialize(state)), expectedModRevision, leaderName, ct);

    /// <summary>
    /// One transaction: the key is still at <paramref name="expectedModRevision"/> (0: absent) and <c>leader</c> still holds
    /// <paramref name="leaderName"/> on this store's lease; then put <paramref name="value"/> (null: delete).
    /// </summary>
    private Task<bool> LeaderGuardedWriteAsync(string operation, string relativeKey, ByteString? value, long expectedModRevision, string leaderName, CancellationToken ct)
    {
        var lease = LeaseId;
        if (lease == 0)
        {
            return Task.FromResult(false);
        }

        var key = Key(relativeKey);
        var leader = Key(ClusterKeys.Leader);
        var txn = new TxnRequest();
        txn.Compare.Add(expectedModRevision == 0
            ? new Compare { Key = key, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 }
            : new Compare { Key = key, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = expectedModRevision });
        txn.Compare.Add(new Compare { Key = leader, Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = ByteString.CopyFromUtf8(leaderName) });
        txn.Compare.Add(new Compare { Key = leader, Target = Compare.Types.CompareTarget.Lease, Result = Compare.Types.CompareResult.Equal, Lease = lease });
        txn.Success.Add(value is null
            ? new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } }
            : new RequestOp { RequestPut = new PutRequest { Key = key, Value = value } });
        return TxnAsync(operation, txn, ct);
    }

    public Task<bool> TryCreateFailoverAsync(FailoverRequest request, CancellationToken ct) =>
        CreateAsync("create failover", ClusterKeys.Failover, ByteString.CopyFrom(PatroniCodec.Serialize(request)), ct);

    public async Task<bool> DeleteFailoverAsync(long expectedModRevision, CancellationToken ct)
    {
        var key = Key(ClusterKeys.Failover);
        if (expectedModRevision <= 0)
        {
            var r = await CallAsync("delete failover", (ep, o) => ep.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = key }, o).ResponseAsync, ct).ConfigureAwait(false);
            return r.Deleted > 0;
        }
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Equal, ModRevision = expectedModRevision });
        txn.Success.Add(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = key } });
        return await TxnAsync("delete failover", txn, ct).ConfigureAwait(false);
    }

    public async Task<long> RemoveClusterAsync(CancellationToken ct)
    {
        var r = await CallAsync("remove cluster", (ep, o) =>
            ep.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = _prefixKey, RangeEnd = _prefixEnd }, o).ResponseAsync, ct).ConfigureAwait(false);
        return r.Deleted;
    }

    public Task WaitForChangeAsync(CancellationToken ct)
    {
        EnsureWatch(0);
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_resync || _eventRevision > _loadedRevision)
            {
                return Task.CompletedTask;
            }
            _waiters.Add(waiter);
        }
        return waiter.Task.WaitAsync(ct);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        Task? watch;
        lock (_gate)
        {
            watch = _watch;
        }
        if (watch is not null)
        {
            await watch.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        foreach (var ep in _endpoints)
        {
            ep.Dispose();
        }
        _stop.Dispose();
    }

    private ByteString Key(string relative) => ByteString.CopyFromUtf8(Prefix + relative);

    private async Task<bool> CreateAsync(string operation, string relativeKey, ByteString value, CancellationToken ct, long lease = 0)
    {
        var key = Key(relativeKey);
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = value, Lease = lease } });
        return await TxnAsync(operation, txn, ct).ConfigureAwait(false);
    }

    private async Task<bool> TxnAsync(string operation, TxnRequest txn, CancellationToken ct)
    {
        var r = await CallAsync(operation, (ep, o) => ep.Kv.TxnAsync(txn, o).ResponseAsync, ct).ConfigureAwait(false);
        return r.Succeeded;
    }

    private Task PutAsync(string operation, string relativeKey, ByteString value, CancellationToken ct) =>
        CallAsync(operation, (ep, o) => ep.Kv.PutAsync(new PutRequest { Key = Key(relativeKey), Value = value }, o).ResponseAsync, ct);

    private Task DeleteAsync(string operation, string relativeKey, CancellationToken ct) =>
        CallAsync(operation, (ep, o) => ep.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Key(relativeKey) }, o).ResponseAsync, ct);

    /// <summary>
    /// One request and one response on the LeaseKeepAlive stream (dotnet-etcd's helper keeps the stream open forever).
    /// Returns the lease's TTL, or 0 when etcd no longer knows the lease.
    /// </summary>
    private static async Task<long> KeepAliveOnceAsync(Endpoint ep, long leaseId, CallOptions options)
    {
        using var call = ep.Lease.LeaseKeepAlive(options);
        await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = leaseId }, options.CancellationToken).ConfigureAwait(false);
        if (!await call.ResponseStream.MoveNext(options.CancellationToken).ConfigureAwait(false))
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "keepalive stream closed without a response"));
        }
        return call.ResponseStream.Current.TTL;
    }

    /// <summary>
    /// Runs <paramref name="call"/> under one deadline of <c>requestTimeout</c>, on the preferred endpoint and then the
    /// others while they answer Unavailable. Every store failure leaves as <see cref="StoreUnavailableException"/>.
    /// </summary>
    private async Task<T> CallAsync<T>(string operation, Func<Endpoint, CallOptions, Task<T>> call, CancellationToken ct)
    {
        using var timeout = new CancellationTokenSource(_requestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        var deadline = _time.GetUtcNow().UtcDateTime + _requestTimeout;
        int first;
        lock (_gate)
        {
            first = _preferred;
        }
        var unavailable = new List<string>();
        RpcException? last = null;
        var reauthenticated = false;
        for (var i = 0; i < _endpoints.Length; i++)
        {
            var index = (first + i) % _endpoints.Length;
            var ep = _endpoints[index];
            try
            {
                var headers = await HeadersAsync(ep, deadline, linked.Token).ConfigureAwait(false);
                var result = await call(ep, new CallOptions(headers, deadline, linked.Token)).ConfigureAwait(false);
                Prefer(index);
                return result;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unauthenticated && _username is not null && !reauthenticated)
            {
                // the auth token expired: authenticate again once, on the same endpoint
                ep.Token = null;
                reauthenticated = true;
                i--;
            }
            catch (Exception e) when (IsUnreachable(e) && !linked.IsCancellationRequested)
            {
                LogEndpointUnavailable(_logger, ep.Url, operation, e.Message);
                unavailable.Add(ep.TlsProblem is { } tlsProblem ? $"{ep.Url} ({tlsProblem})" : ep.Url);
                last = e as RpcException;
                Prefer(index + 1);
            }
            // A gRPC deadline can surface as TaskCanceledException (from the HTTP/2 read) before our own timer fires:
            // whatever the caller did not cancel is a timeout.
            catch (Exception e) when (!ct.IsCancellationRequested && e is OperationCanceledException or RpcException { StatusCode: StatusCode.DeadlineExceeded or StatusCode.Cancelled })
            {
                Prefer(index + 1);
                throw new StoreUnavailableException($"etcd {operation}: no answer from {ep.Url} within {_requestTimeout.TotalSeconds:0.###} s", e);
            }
            catch (RpcException e) when (!ct.IsCancellationRequested && ep.TlsProblem is { } tlsProblem)
            {
                // gRPC reports a refused server certificate as Internal: say which certificate and why
                throw new StoreUnavailableException($"etcd {operation} at {ep.Url} failed: {tlsProblem}", e);
            }
            catch (RpcException e) when (!ct.IsCancellationRequested)
            {
                var hint = e.StatusCode switch
                {
                    StatusCode.Unauthenticated or StatusCode.PermissionDenied when _username is null => " (etcd has authentication enabled: set etcd3.username and etcd3.password)",
                    StatusCode.InvalidArgument when e.Status.Detail.Contains("authentication failed", StringComparison.Ordinal) => " (check etcd3.username and etcd3.password)",
                    _ => "",
                };
                throw new StoreUnavailableException($"etcd {operation} at {ep.Url} failed: {e.StatusCode} {e.Status.Detail}{hint}", e);
            }
        }
        throw new StoreUnavailableException($"etcd {operation}: unreachable at {string.Join(", ", unavailable)}", last);
    }

    private static bool IsUnreachable(Exception e) =>
        e is RpcException { StatusCode: StatusCode.Unavailable } or HttpRequestException or IOException;

    private static bool IsLeaseNotFound(RpcException e) =>
        e.StatusCode == StatusCode.NotFound && e.Status.Detail.Contains("lease not found", StringComparison.Ordinal);

    private void Prefer(int index)
    {
        lock (_gate)
        {
            _preferred = index % _endpoints.Length;
        }
    }

    private async Task<Metadata?> HeadersAsync(Endpoint ep, DateTime deadline, CancellationToken ct)
    {
        if (_username is null)
        {
            return null;
        }
        if (ep.Token is null)
        {
            var r = await ep.Auth.AuthenticateAsync(new AuthenticateRequest { Name = _username, Password = _password ?? "" },
                new CallOptions(deadline: deadline, cancellationToken: ct)).ResponseAsync.ConfigureAwait(false);
            ep.Token = r.Token;
        }
        return new Metadata { { "token", ep.Token } };
    }

    private void DropLease(long lease)
    {
        lock (_gate)
        {
            if (_leaseId == lease)
            {
                _leaseId = 0;
            }
        }
    }

    private void EnsureWatch(long fromRevision)
    {
        lock (_gate)
        {
            if (_watch is not null || _stop.IsCancellationRequested)
            {
                return;
            }
            _watchFrom = fromRevision;
            _watch = Task.Run(() => WatchLoopAsync(_stop.Token));
        }
    }

    private async Task WatchLoopAsync(CancellationToken stop)
    {
        var backoff = TimeSpan.FromMilliseconds(100);
        while (!stop.IsCancellationRequested)
        {
            int index;
            lock (_gate)
            {
                index = _preferred;
            }
            var ep = _endpoints[index];
            try
            {
                await WatchOnceAsync(ep, stop).ConfigureAwait(false);
                backoff = TimeSpan.FromMilliseconds(100);
            }
            catch (Exception e) when (!stop.IsCancellationRequested)
            {
                if (e is RpcException { StatusCode: StatusCode.Unauthenticated })
                {
                    ep.Token = null; // the auth token expired: the next attempt authenticates again
                }

                LogWatchBroken(_logger, ep.Url, backoff.TotalMilliseconds, e.Message);
                Prefer(index + 1);
            }
            try
            {
                await Task.Delay(backoff, _time, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxWatchBackoff.Ticks));
        }
    }

    /// <summary>One watch stream: returns when etcd ends it (e.g. after a compaction), throws when it breaks.</summary>
    private async Task WatchOnceAsync(Endpoint ep, CancellationToken stop)
    {
        var deadline = _time.GetUtcNow().UtcDateTime + _requestTimeout;
        using var setupTimeout = new CancellationTokenSource(_requestTimeout, _time);
        using var setup = CancellationTokenSource.CreateLinkedTokenSource(stop, setupTimeout.Token);
        var headers = await HeadersAsync(ep, deadline, setup.Token).ConfigureAwait(false);
        using var call = ep.Watch.Watch(new CallOptions(headers, cancellationToken: stop));
        long from;
        lock (_gate)
        {
            from = _watchFrom;
        }
        await call.RequestStream.WriteAsync(new WatchRequest
        {
            CreateRequest = new WatchCreateRequest { Key = _prefixKey, RangeEnd = _prefixEnd, StartRevision = from },
        }, setup.Token).ConfigureAwait(false);

        if (!await call.ResponseStream.MoveNext(setup.Token).ConfigureAwait(false) || !call.ResponseStream.Current.Created)
        {
            throw new InvalidOperationException("etcd did not confirm the watch");
        }
        LogWatchEstablished(_logger, ep.Url, from);
        bool resync;
        lock (_gate)
        {
            // A first watch pinned to the revision after a load misses nothing; any other may have.
            resync = _watchEstablishedBefore || from == 0;
            _watchEstablishedBefore = true;
        }
        if (resync)
        {
            Resync();
        }

        while (await call.ResponseStream.MoveNext(stop).ConfigureAwait(false))
        {
            var r = call.ResponseStream.Current;
            if (r.Canceled)
            {
                lock (_gate)
                {
                    // compacted past our start: continue from now, the re-establishment makes the waiters re-read
                    _watchFrom = r.CompactRevision > 0 ? 0 : _watchFrom;
                }
                throw new InvalidOperationException($"etcd cancelled the watch: {r.CancelReason} (compact revision {r.CompactRevision})");
            }
            if (r.Events.Count > 0 && (WakeOnValueUpdates || r.Events.Any(IsStructural)))
            {
                OnEvents(r.Events.Max(e => e.Kv.ModRevision));
            }
        }
        throw new InvalidOperationException("the watch stream ended");
    }

    /// <summary>
    /// Whether an update of an existing <c>members/&lt;name&gt;</c> or <c>status</c> value wakes <see cref="WaitForChangeAsync"/>.
    /// Default true (the router wants every change). The agent turns it off: those keys change with every WAL position,
    /// and waking every agent on each of them would make the HA loops wake each other without end; a member joining or
    /// leaving, and any change of <c>leader</c>, <c>failover</c>, <c>config</c>, <c>initialize</c>, <c>history</c>, still wakes.
    /// </summary>
    public bool WakeOnValueUpdates { get; init; } = true;

    private bool IsStructural(Mvccpb.Event e)
    {
        var key = e.Kv.Key.ToStringUtf8();
        var valueUpdate = e.Type == Mvccpb.Event.Types.EventType.Put && e.Kv.CreateRevision != e.Kv.ModRevision;
        return !(valueUpdate && (key.StartsWith(Prefix + "members/", StringComparison.Ordinal) || key == Prefix + "status"));
    }

    private void OnEvents(long revision)
    {
        List<TaskCompletionSource> waiters;
        lock (_gate)
        {
            _eventRevision = Math.Max(_eventRevision, revision);
            _watchFrom = Math.Max(_watchFrom, revision + 1);
            (waiters, _waiters) = (_waiters, []);
        }
        waiters.ForEach(w => w.TrySetResult());
    }

    private void Resync()
    {
        List<TaskCompletionSource> waiters;
        lock (_gate)
        {
            _resync = true;
            (waiters, _waiters) = (_waiters, []);
        }
        waiters.ForEach(w => w.TrySetResult());
    }

    [LoggerMessage(EventId = StoreLogEvents.LeaseGranted, Level = LogLevel.Information, Message = "Granted session lease {LeaseId} with TTL {TtlSeconds} s")]
    private static partial void LogLeaseGranted(ILogger logger, long leaseId, long ttlSeconds);

    [LoggerMessage(EventId = StoreLogEvents.LeaseExpired, Level = LogLevel.Warning, Message = "Session lease {LeaseId} has expired; granting a new one")]
    private static partial void LogLeaseExpired(ILogger logger, long leaseId);

    [LoggerMessage(EventId = StoreLogEvents.LeaseLostOnWrite, Level = LogLevel.Warning, Message = "Session lease {LeaseId} was not found writing {Key}; the next keepalive grants a new one")]
    private static partial void LogLeaseLostOnWrite(ILogger logger, long leaseId, string key);

    [LoggerMessage(EventId = StoreLogEvents.EndpointUnavailable, Level = LogLevel.Debug, Message = "etcd endpoint {Endpoint} is unavailable for {Operation}: {Reason}")]
    private static partial void LogEndpointUnavailable(ILogger logger, string endpoint, string operation, string reason);

    [LoggerMessage(EventId = StoreLogEvents.WatchEstablished, Level = LogLevel.Debug, Message = "Watch established on {Endpoint} from revision {Revision}")]
    private static partial void LogWatchEstablished(ILogger logger, string endpoint, long revision);

    [LoggerMessage(EventId = StoreLogEvents.WatchBroken, Level = LogLevel.Warning, Message = "Watch on {Endpoint} broke; re-establishing in {BackoffMs} ms: {Reason}")]
    private static partial void LogWatchBroken(ILogger logger, string endpoint, double backoffMs, string reason);

    [LoggerMessage(EventId = StoreLogEvents.RequestTimeoutChanged, Level = LogLevel.Information, Message = "retry_timeout changed: etcd calls now time out after {NewSeconds} s (was {OldSeconds} s)")]
    private static partial void LogRequestTimeoutChanged(ILogger logger, double oldSeconds, double newSeconds);

    /// <summary>One etcd endpoint: its channel and the generated clients on it.</summary>
    private sealed class Endpoint : IDisposable
    {
        private readonly GrpcChannel _channel;

        public Endpoint(string url, TimeSpan requestTimeout, EtcdTls? tls)
        {
            Url = url;
            var ping = requestTimeout < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : requestTimeout;
            var handler = new SocketsHttpHandler
            {
                ConnectTimeout = requestTimeout,
                EnableMultipleHttp2Connections = true,
                // detects a dead or stalled server under an idle watch stream
                KeepAlivePingDelay = ping,
                KeepAlivePingTimeout = ping * 2,
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            };
            if (url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            {
                handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                {
                    if (Steward.Core.Configuration.TlsFiles.Validate(certificate, chain, errors, tls?.Ca, checkName: true, out var problem))
                    {
                        TlsProblem = null;
                        return true;
                    }

                    TlsProblem = "TLS: " + problem + (tls?.CaFile is { } caFile ? $" (etcd3.cacert {caFile})" : " (etcd3.cacert is not set)");
                    return false;
                };
                if (tls?.ClientCertificate is { } certificate)
                {
                    handler.SslOptions.ClientCertificates = [certificate];
                    handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
                }
            }

            _channel = GrpcChannel.ForAddress(url, new GrpcChannelOptions
            {
                HttpHandler = handler,
                ThrowOperationCanceledOnCancellation = true,
            });
            Kv = new KV.KVClient(_channel);
            Lease = new Lease.LeaseClient(_channel);
            Watch = new Watch.WatchClient(_channel);
            Auth = new Auth.AuthClient(_channel);
        }

        public string Url { get; }
        public KV.KVClient Kv { get; }
        public Lease.LeaseClient Lease { get; }
        public Watch.WatchClient Watch { get; }
        public Auth.AuthClient Auth { get; }
        public string? Token { get; set; }
        /// <summary>Why the last TLS handshake failed (an untrusted certificate), for the error message; null: none.</summary>
        public string? TlsProblem { get; private set; }

        public void Dispose() => _channel.Dispose();
    }
}

/// <summary>TLS to etcd: the CA its certificate is checked against (null: the system's) and the client certificate.</summary>
public sealed record EtcdTls(System.Security.Cryptography.X509Certificates.X509Certificate2Collection? Ca,
    System.Security.Cryptography.X509Certificates.X509Certificate2? ClientCertificate, string? CaFile = null);
