using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Core.Cluster;

namespace Steward.Testing;

/// <summary>
/// An in-process stand-in for one etcd server, for unit tests and deterministic simulation: keys with create/mod
/// revisions, leases that expire by the injected <see cref="TimeProvider"/> (advance a FakeTimeProvider to expire them),
/// and fault injection. Each agent gets its own client with its own session lease:
/// <code>var server = new InMemoryEtcd(time); var a = server.Connect(); var b = server.Connect();</code>
/// </summary>
public sealed class InMemoryEtcd
{
    private readonly Lock _gate = new();
    private readonly SortedDictionary<string, Entry> _keys = new(StringComparer.Ordinal);
    private readonly Dictionary<long, LeaseEntry> _leases = [];
    private readonly List<InMemoryClusterStore> _clients = [];
    private long _revision = 1;
    private long _nextLeaseId = 0x7E57_0000;
    private bool _available = true;
    private bool _quorumLost;
    private (string Prefix, long Revision, ClusterView View)? _parsed;

    public InMemoryEtcd(TimeProvider time)
    {
        Time = time;
    }

    public TimeProvider Time { get; }

    /// <summary>False makes every call of every client throw <see cref="StoreUnavailableException"/>.</summary>
    public bool Available
    {
        get { lock (_gate) { return _available; } }
        set
        {
            List<InMemoryClusterStore> clients;
            lock (_gate)
            {
                _available = value;
                clients = [.. _clients];
            }
            if (value)
            {
                clients.ForEach(c => c.Resync());
            }
        }
    }

    /// <summary>
    /// etcd loses quorum: every call of every client fails and no lease expires meanwhile (no leader revokes it). Unlike
    /// <see cref="Available"/> = false (clients cut off from a working etcd), which lets leases run out.
    /// </summary>
    public void LoseQuorum()
    {
        lock (_gate)
        {
            _quorumLost = true;
            _available = false;
        }
    }

    /// <summary>Quorum is back: as etcd's lessor does when a new leader is elected, every lease is renewed for its full TTL.</summary>
    public void RegainQuorum()
    {
        lock (_gate)
        {
            _quorumLost = false;
            foreach (var (id, lease) in _leases.ToList())
            {
                _leases[id] = lease with { ExpiresAt = Time.GetTimestamp() + lease.Ttl * Time.TimestampFrequency };
                lease.Timer.Change(TimeSpan.FromSeconds(lease.Ttl), Timeout.InfiniteTimeSpan);
            }
        }

        Available = true;
    }

    /// <summary>The current revision (incremented by every change, as etcd's is).</summary>
    public long Revision { get { lock (_gate) { return _revision; } } }

    /// <summary>Ids of the leases that are alive now.</summary>
    public IReadOnlyList<long> Leases
    {
        get
        {
            lock (_gate)
            {
                SweepExpired();
                return [.. _leases.Keys];
            }
        }
    }

    /// <summary>A new client (one agent's connection) with no lease yet.</summary>
    public InMemoryClusterStore Connect(string prefix = "/service/demo/", ILogger<InMemoryClusterStore>? logger = null)
    {
        var client = new InMemoryClusterStore(this, prefix, logger ?? NullLogger<InMemoryClusterStore>.Instance);
        lock (_gate)
        {
            _clients.Add(client);
        }
        return client;
    }

    /// <summary>Expires a lease at once, deleting every key bound to it.</summary>
    public void ExpireLease(long leaseId)
    {
        List<InMemoryClusterStore> notify;
        lock (_gate)
        {
            if (!RevokeLocked(leaseId))
            {
                return;
            }
            notify = [.. _clients];
        }
        Notify(notify);
    }

    /// <summary>Puts raw bytes under a full key (no lease), e.g. to plant garbage the way a foreign writer could.</summary>
    public void PutRaw(string key, string value)
    {
        lock (_gate)
        {
            PutLocked(key, Encoding.UTF8.GetBytes(value), 0);
        }
        Notify(Clients());
    }

    /// <summary>The raw value of a full key, or null.</summary>
    public string? GetRaw(string key)
    {
        lock (_gate)
        {
            SweepExpired();
            return _keys.TryGetValue(key, out var e) ? Encoding.UTF8.GetString(e.Value) : null;
        }
    }

    internal void Disconnect(InMemoryClusterStore client)
    {
        lock (_gate)
        {
            _clients.Remove(client);
        }
    }

    /// <summary>
    /// The view of <paramref name="raw"/> at <paramref name="revision"/>, parsed once for every client that reads the same
    /// revision (a simulation has several agents and a router reading the same revision; views are immutable).
    /// </summary>
    internal ClusterView Parsed(string prefix, long revision, List<RawKeyValue> raw, ILogger logger)
    {
        lock (_gate)
        {
            if (_parsed is { } cached && cached.Revision == revision && cached.Prefix == prefix)
            {
                return cached.View;
            }
        }

        var view = PatroniCodec.Parse(revision, raw, logger);
        lock (_gate)
        {
            _parsed = (prefix, revision, view);
        }

        return view;
    }

    /// <summary>Runs one request for <paramref name="client"/> atomically, as etcd applies one request.</summary>
    internal T Execute<T>(InMemoryClusterStore client, string operation, Func<Transaction, T> apply)
    {
        T result;
        bool changed;
        lock (_gate)
        {
            if (!_available)
            {
                throw new StoreUnavailableException($"{operation}: in-memory etcd is unavailable");
            }
            if (client.Partitioned)
            {
                throw new StoreUnavailableException($"{operation}: client is partitioned from in-memory etcd");
            }
            SweepExpired();
            var before = _revision;
            result = apply(new Transaction(this));
            changed = _revision != before;
        }
        if (changed)
        {
            Notify(Clients());
        }
        return result;
    }

    private List<InMemoryClusterStore> Clients()
    {
        lock (_gate)
        {
            return [.. _clients];
        }
    }

    private static void Notify(List<InMemoryClusterStore> clients) => clients.ForEach(c => c.OnChange());

    private void SweepExpired()
    {
        if (_quorumLost)
        {
            return;
        }

        var now = Time.GetTimestamp();
        foreach (var id in _leases.Where(l => l.Value.ExpiresAt <= now).Select(l => l.Key).ToList())
        {
            RevokeLocked(id);
        }
    }

    private void OnLeaseTimer(long leaseId)
    {
        bool expired;
        lock (_gate)
        {
            expired = !_quorumLost && _leases.TryGetValue(leaseId, out var lease) && lease.ExpiresAt <= Time.GetTimestamp() && RevokeLocked(leaseId);
        }
        if (expired)
        {
            Notify(Clients());
        }
    }

    private bool RevokeLocked(long leaseId)
    {
        if (!_leases.Remove(leaseId, out var lease))
        {
            return false;
        }
        lease.Timer.Dispose();
        var bound = _keys.Where(k => k.Value.Lease == leaseId).Select(k => k.Key).ToList();
        if (bound.Count > 0)
        {
            _revision++;
            bound.ForEach(k => _keys.Remove(k));
        }
        return true;
    }

    private void PutLocked(string key, byte[] value, long lease)
    {
        if (lease != 0 && !_leases.ContainsKey(lease))
        {
            throw new InvalidOperationException("requested lease not found");
        }
        _revision++;
        var create = _keys.TryGetValue(key, out var old) ? old.CreateRevision : _revision;
        _keys[key] = new Entry(value, create, _revision, lease);
    }

    /// <summary>The operations one request may perform, applied under the server's lock.</summary>
    internal readonly struct Transaction(InMemoryEtcd server)
    {
        public long Revision => server._revision;

        public Entry? Get(string key) => server._keys.TryGetValue(key, out var e) ? e : null;

        public List<KeyValuePair<string, Entry>> Range(string prefix) =>
            [.. server._keys.Where(k => k.Key.StartsWith(prefix, StringComparison.Ordinal))];

        public bool LeaseExists(long id) => server._leases.ContainsKey(id);

        /// <summary>Throws <see cref="InvalidOperationException"/> "requested lease not found" for a dead lease, as etcd does.</summary>
        public void Put(string key, byte[] value, long lease = 0) => server.PutLocked(key, value, lease);

        public bool Delete(string key)
        {
            if (!server._keys.Remove(key))
            {
                return false;
            }
            server._revision++;
            return true;
        }

        public long Grant(int ttlSeconds)
        {
            var id = ++server._nextLeaseId;
            var s = server;
            var timer = s.Time.CreateTimer(_ => s.OnLeaseTimer(id), null, TimeSpan.FromSeconds(ttlSeconds), Timeout.InfiniteTimeSpan);
            server._leases[id] = new LeaseEntry(ttlSeconds, ExpiryFrom(ttlSeconds), timer);
            return id;
        }

        /// <summary>The lease's TTL after the refresh, or 0 if it no longer exists.</summary>
        public int KeepAlive(long id)
        {
            if (!server._leases.TryGetValue(id, out var lease))
            {
                return 0;
            }
            server._leases[id] = lease with { ExpiresAt = ExpiryFrom(lease.Ttl) };
            lease.Timer.Change(TimeSpan.FromSeconds(lease.Ttl), Timeout.InfiniteTimeSpan);
            return lease.Ttl;
        }

        public bool Revoke(long id) => server.RevokeLocked(id);

        private long ExpiryFrom(int ttlSeconds) => server.Time.GetTimestamp() + ttlSeconds * server.Time.TimestampFrequency;
    }

    internal sealed record Entry(byte[] Value, long CreateRevision, long ModRevision, long Lease);

    private sealed record LeaseEntry(int Ttl, long ExpiresAt, ITimer Timer);
}

/// <summary>
/// One agent's client of an <see cref="InMemoryEtcd"/>, honouring the <see cref="IClusterStore"/> contract exactly as
/// <c>EtcdClusterStore</c> does (the shared contract tests run against both).
/// <see cref="WaitForChangeAsync"/> completes at once when the server changed since this client's last
/// <see cref="LoadAsync"/>, so no change between a read and the wait is lost.
/// </summary>
public sealed class InMemoryClusterStore : IClusterStore, IRouterKeys
{
    private readonly InMemoryEtcd _server;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private List<TaskCompletionSource> _waiters = [];
    private long _loadedRevision;
    private bool _resync = true;
    private long _leaseId;
    private volatile bool _partitioned;

    internal InMemoryClusterStore(InMemoryEtcd server, string prefix, ILogger logger)
    {
        _server = server;
        Prefix = prefix;
        _logger = logger;
    }

    public string Prefix { get; }

    /// <summary>True cuts this client off: its calls throw <see cref="StoreUnavailableException"/>; its waits see nothing.</summary>
    public bool Partitioned
    {
        get => _partitioned;
        set
        {
            _partitioned = value;
            if (!value)
            {
                Resync();
            }
        }
    }

    /// <summary>The session lease this client holds (0 for none).</summary>
    public long LeaseId { get { lock (_gate) { return _leaseId; } } }

    public Task<ClusterView> LoadAsync(CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var (revision, raw) = _server.Execute(this, "load", tx =>
            (tx.Revision, tx.Range(Prefix).Select(k => new RawKeyValue(k.Key[Prefix.Length..], k.Value.Value, k.Value.ModRevision, k.Value.Lease)).ToList()));
        lock (_gate)
        {
            _loadedRevision = Math.Max(_loadedRevision, revision);
            _resync = false;
        }
        return Task.FromResult(_server.Parsed(Prefix, revision, raw, _logger));
    }

    public Task<LeaseState> KeepAliveAsync(int ttlSeconds, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var renewedAt = _server.Time.GetTimestamp();
        var current = LeaseId;
        var state = _server.Execute(this, "keepalive", tx =>
        {
            if (current != 0)
            {
                var ttl = tx.KeepAlive(current);
                if (ttl > 0)
                {
                    return new LeaseState(current, false, renewedAt, ttl);
                }
            }
            return new LeaseState(tx.Grant(ttlSeconds), true, renewedAt, ttlSeconds);
        });
        lock (_gate)
        {
            _leaseId = state.LeaseId;
        }
        return Task.FromResult(state);
    }

    public Task<LeaseState> RegrantAsync(int ttlSeconds, string leaderName, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var renewedAt = _server.Time.GetTimestamp();
        var old = LeaseId;
        var key = Prefix + ClusterKeys.Leader;
        var state = _server.Execute(this, "regrant", tx =>
        {
            var lease = tx.Grant(ttlSeconds);
            if (old != 0 && tx.Get(key) is { } leader && leader.Lease == old && Encoding.UTF8.GetString(leader.Value) == leaderName)
            {
                tx.Put(key, leader.Value, lease);
            }

            return new LeaseState(lease, true, renewedAt, ttlSeconds);
        });
        lock (_gate)
        {
            _leaseId = state.LeaseId;
        }

        return Task.FromResult(state);
    }

    public Task RevokeLeaseAsync(CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var current = LeaseId;
        if (current != 0)
        {
            _server.Execute(this, "revoke", tx => tx.Revoke(current));
            DropLease(current);
        }
        return Task.CompletedTask;
    }

    public Task<bool> TryAcquireLeaderAsync(string name, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var lease = LeaseId;
        if (lease == 0)
        {
            return Task.FromResult(false);
        }
        var key = Prefix + ClusterKeys.Leader;
        var acquired = _server.Execute(this, "acquire leader", tx =>
        {
            if (tx.Get(key) is not null)
            {
                return (bool?)false;
            }
            if (!tx.LeaseExists(lease))
            {
                return null;
            }
            tx.Put(key, Encoding.UTF8.GetBytes(name), lease);
            return true;
        });
        if (acquired is null)
        {
            DropLease(lease);
        }
        return Task.FromResult(acquired == true);
    }

    public Task<bool> HoldsLeaderAsync(string name, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var lease = LeaseId;
        var key = Prefix + ClusterKeys.Leader;
        var entry = _server.Execute(this, "read leader", tx => tx.Get(key));
        return Task.FromResult(lease != 0 && entry is not null && entry.Lease == lease && Encoding.UTF8.GetString(entry.Value) == name);
    }

    public Task<bool> ReleaseLeaderAsync(string name, long leaseId, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var key = Prefix + ClusterKeys.Leader;
        return Task.FromResult(_server.Execute(this, "release leader", tx =>
            tx.Get(key) is { } e && Encoding.UTF8.GetString(e.Value) == name && e.Lease == leaseId && tx.Delete(key)));
    }

    public Task PutMemberAsync(string name, MemberData data, CancellationToken ct) =>
        PutWithLease("put member", ClusterKeys.MembersDir + name, PatroniCodec.Serialize(data), ct);

    public Task PutRouterAsync(string name, RouterRegistration registration, CancellationToken ct) =>
        PutWithLease("put router", ClusterKeys.RoutersDir + name, PatroniCodec.Serialize(registration), ct);

    public Task PutPauseAsync(string name, PauseConfirmation confirmation, CancellationToken ct) =>
        PutWithLease("put pause", ClusterKeys.PauseDir + name, PatroniCodec.Serialize(confirmation), ct);

    public Task DeletePauseAsync(string name, CancellationToken ct) => Delete(ClusterKeys.PauseDir + name, "delete pause", ct);

    private Task PutWithLease(string operation, string relativeKey, byte[] value, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var lease = LeaseId;
        if (lease == 0)
        {
            throw new StoreUnavailableException($"{operation} {relativeKey}: no session lease; KeepAliveAsync grants one");
        }
        var key = Prefix + relativeKey;
        var written = _server.Execute(this, operation, tx =>
        {
            if (!tx.LeaseExists(lease))
            {
                return false;
            }
            tx.Put(key, value, lease);
            return true;
        });
        if (!written)
        {
            DropLease(lease);
            throw new StoreUnavailableException($"{operation} {relativeKey}: session lease {lease} has expired; KeepAliveAsync grants a new one");
        }
        return Task.CompletedTask;
    }

    public Task DeleteMemberAsync(string name, CancellationToken ct) =>
        Delete(ClusterKeys.MembersDir + name, "delete member", ct);

    public Task<bool> TryCreateInitializeAsync(string value, CancellationToken ct) =>
        Task.FromResult(Create(ClusterKeys.Initialize, Encoding.UTF8.GetBytes(value), "create initialize", ct));

    public Task SetInitializeAsync(string systemId, CancellationToken ct) =>
        Put(ClusterKeys.Initialize, Encoding.UTF8.GetBytes(systemId), "set initialize", ct);

    public Task DeleteInitializeAsync(CancellationToken ct) => Delete(ClusterKeys.Initialize, "delete initialize", ct);

    public Task<bool> SetConfigAsync(DynamicConfig config, long expectedModRevision, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var key = Prefix + ClusterKeys.Config;
        var value = PatroniCodec.Serialize(config);
        return Task.FromResult(_server.Execute(this, "set config", tx =>
        {
            var current = tx.Get(key);
            var matches = expectedModRevision == 0 ? current is null : current?.ModRevision == expectedModRevision;
            if (matches)
            {
                tx.Put(key, value);
            }
            return matches;
        }));
    }

    public Task SetStatusAsync(ClusterStatus status, CancellationToken ct) =>
        Put(ClusterKeys.Status, PatroniCodec.Serialize(status), "set status", ct);

    public Task<bool> SetHistoryAsync(IReadOnlyList<HistoryEntry> history, long expectedModRevision, string leaderName, CancellationToken ct) =>
        LeaderGuardedWrite(ClusterKeys.History, PatroniCodec.Serialize(history), expectedModRevision, leaderName, "set history", ct);

    public Task<bool> SetSyncStateAsync(SyncState? state, long expectedModRevision, string leaderName, CancellationToken ct) =>
        LeaderGuardedWrite(ClusterKeys.Sync, state is null ? null : PatroniCodec.Serialize(state), expectedModRevision, leaderName,
            state is null ? "delete sync" : "set sync", ct);

    private Task<bool> LeaderGuardedWrite(string relativeKey, byte[]? value, long expectedModRevision, string leaderName, string operation, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var lease = LeaseId;
        var key = Prefix + relativeKey;
        var leader = Prefix + ClusterKeys.Leader;
        return Task.FromResult(lease != 0 && _server.Execute(this, operation, tx =>
        {
            var current = tx.Get(key);
            var unchanged = expectedModRevision == 0 ? current is null : current?.ModRevision == expectedModRevision;
            if (!unchanged || tx.Get(leader) is not { } holder || holder.Lease != lease || Encoding.UTF8.GetString(holder.Value) != leaderName)
            {
                return false;
            }

            if (value is null)
            {
                tx.Delete(key);
            }
            else
            {
                tx.Put(key, value);
            }

            return true;
        }));
    }

    public Task<bool> TryCreateFailoverAsync(FailoverRequest request, CancellationToken ct) =>
        Task.FromResult(Create(ClusterKeys.Failover, PatroniCodec.Serialize(request), "create failover", ct));

    public Task<bool> DeleteFailoverAsync(long expectedModRevision, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var key = Prefix + ClusterKeys.Failover;
        return Task.FromResult(_server.Execute(this, "delete failover", tx =>
            tx.Get(key) is { } e && (expectedModRevision <= 0 || e.ModRevision == expectedModRevision) && tx.Delete(key)));
    }

    public Task<long> RemoveClusterAsync(CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(_server.Execute(this, "remove cluster", tx =>
            (long)tx.Range(Prefix).Count(kv => tx.Delete(kv.Key))));
    }

    public Task WaitForChangeAsync(CancellationToken ct)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bool resync;
        long loaded;
        lock (_gate)
        {
            _waiters.Add(waiter);
            (resync, loaded) = (_resync, _loadedRevision);
        }
        // Checked after registering (and outside our lock: the server calls into us under its lock), so a change that
        // lands in between either completes the registered waiter or shows in the revision.
        if (!_partitioned && _server.Available && (resync || _server.Revision > loaded))
        {
            waiter.TrySetResult();
        }
        return waiter.Task.WaitAsync(ct);
    }

    public ValueTask DisposeAsync()
    {
        _server.Disconnect(this);
        return ValueTask.CompletedTask;
    }

    internal void OnChange()
    {
        if (!Partitioned)
        {
            CompleteWaiters();
        }
    }

    /// <summary>The connection came back: like a re-established watch, wake the waiters so they re-read.</summary>
    internal void Resync()
    {
        lock (_gate)
        {
            _resync = true;
        }
        CompleteWaiters();
    }

    private void CompleteWaiters()
    {
        List<TaskCompletionSource> waiters;
        lock (_gate)
        {
            (waiters, _waiters) = (_waiters, []);
        }
        waiters.ForEach(w => w.TrySetResult());
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

    private bool Create(string relativeKey, byte[] value, string operation, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var key = Prefix + relativeKey;
        return _server.Execute(this, operation, tx =>
        {
            if (tx.Get(key) is not null)
            {
                return false;
            }
            tx.Put(key, value);
            return true;
        });
    }

    private Task Put(string relativeKey, byte[] value, string operation, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var key = Prefix + relativeKey;
        _server.Execute(this, operation, tx =>
        {
            tx.Put(key, value);
            return true;
        });
        return Task.CompletedTask;
    }

    private Task Delete(string relativeKey, string operation, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var key = Prefix + relativeKey;
        _server.Execute(this, operation, tx => tx.Delete(key));
        return Task.CompletedTask;
    }
}
