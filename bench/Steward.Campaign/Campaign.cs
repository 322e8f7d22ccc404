using System.Globalization;
using Npgsql;
using Steward.Campaign.Checking;

namespace Steward.Campaign;

internal sealed record CampaignOptions
{
    public int Faults { get; init; } = 100;
    public bool Synchronous { get; init; }
    public int Seed { get; init; }
    public int Clients { get; init; } = 4;
    public double HoldMin { get; init; } = 4;
    public double HoldMax { get; init; } = 10;
    public double Settle { get; init; } = 2;
    public double RejoinTimeout { get; init; } = 120;
    public string Rate { get; init; } = "128kbit";
    public int Ttl { get; init; } = 10;
    public IReadOnlyList<FaultKind> Kinds { get; init; } = Enum.GetValues<FaultKind>();
    public string? WorkDir { get; init; }
    public string? Results { get; init; }
    public string? SummaryJson { get; init; }

    /// <summary>The router keeps sessions to a member that lost the leader key (close_sessions_on_leader_change: false).</summary>
    public bool RouterKeepsSessions { get; init; }
}

/// <summary>One campaign: builds the hosts, runs the workload, injects the seeded faults, checks the history, cleans up.</summary>
internal sealed class Campaign
{
    private readonly CampaignOptions _o;
    private readonly HistoryClock _clock = new();
    private readonly History _history = new();
    private readonly List<FaultRecord> _faults = [];
    private readonly List<(double At, string? Leader, bool Known)> _leaderSamples = [];
    private readonly Lock _samplesGate = new();
    private readonly Random _random;
    private readonly List<string> _findings = [];
    private Cluster _cluster = null!;

    public Campaign(CampaignOptions options)
    {
        _o = options;
        _random = new Random(options.Seed);
    }

    private void Say(string line) => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{_clock.Now,8:F1}s] {line}"));

    public async Task<int> RunAsync(CancellationToken ct)
    {
        var runId = Convert.ToHexString(BitConverter.GetBytes(Random.Shared.Next()))[..4].ToLowerInvariant();
        var dir = _o.WorkDir ?? $"/tmp/steward-campaign-{runId}";
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        var net = new Topology(runId, Topology.FreeSubnet(new Random()), dir);
        _cluster = new Cluster(net, new CampaignSettings { Synchronous = _o.Synchronous, Ttl = _o.Ttl, RouterKeepsSessions = _o.RouterKeepsSessions, RetryTimeout = Math.Min(3, (_o.Ttl - 1) / 2) }, dir);
        Say($"campaign seed {_o.Seed}, mode {(_o.Synchronous ? "sync" : "async")}, {_o.Faults} faults, run {runId}, subnet 10.231.{net.Subnet}.0/24, directory {dir}");
        Report? report = null;
        try
        {
            net.Create(["n1", "n2", "n3", Topology.RouterHost]);
            await StartClusterAsync(ct);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var sampler = SampleLeaderAsync(stop.Token);
            var workload = new Workload(_cluster.WriteConnectionString, _history, _clock, _o.Seed).RunAsync(_o.Clients, TimeSpan.FromMilliseconds(10), stop.Token);
            await Task.Delay(TimeSpan.FromSeconds(3), ct);
            var schedule = Schedule();
            Say($"schedule: {string.Join(", ", schedule.Select(k => k.Name()))}");
            for (var i = 1; i <= _o.Faults && !ct.IsCancellationRequested; i++)
            {
                await InjectAsync(i, schedule[i - 1], ct);
                await Task.Delay(TimeSpan.FromSeconds(_o.Settle), ct);
            }

            await Task.Delay(TimeSpan.FromSeconds(2), ct);
            await stop.CancelAsync();
            await workload;
            await sampler;
            Say("workload stopped; waiting for every node to be healthy and caught up");
            var final = await FinalStateAsync();
            var history = _history.Snapshot();
            _history.Save(Path.Combine(dir, "history.jsonl"));
            var windows = _faults.Select(f => new Window($"#{f.Number} {f.Kind.Name()}", f.Injected, f.Healthy, f.Failover)).ToList();
            var result = Checker.Check(history, final, windows);
            lock (_samplesGate)
            {
                report = new Report(_o, runId, dir, _faults, result, [.. _leaderSamples], _findings, history);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Say($"campaign failed: {e}");
            _findings.Add($"campaign aborted: {e.Message}");
            throw;
        }
        finally
        {
            Say("cleaning up (processes by PID, namespaces, bridge)");
            _cluster.KillAll();
            net.Destroy();
            KeepLogsOnly(dir);
            _cluster.Dispose();
        }

        var text = report!.Render();
        Console.WriteLine(text);
        if (_o.Results is { } results)
        {
            await File.AppendAllTextAsync(results, text + "\n");
            Say($"table appended to {results}");
        }

        if (_o.SummaryJson is { } json)
        {
            await File.WriteAllTextAsync(json, report.SummaryJson());
        }

        return report.Violations == 0 ? 0 : 1;
    }

    private async Task StartClusterAsync(CancellationToken ct)
    {
        _cluster.WriteConfigs();
        foreach (var h in _cluster.Hosts)
        {
            _cluster.StartEtcd(h);
        }

        await UntilAsync(async () => (await Task.WhenAll(_cluster.Hosts.Select(_cluster.EtcdHealthyAsync))).All(x => x), 60, "etcd cluster healthy", ct);
        foreach (var h in _cluster.Hosts)
        {
            _cluster.StartAgent(h);
        }

        await UntilAsync(async () =>
        {
            // An agent that refuses its configuration (e.g. synchronous_mode before it is supported) exits: say why now.
            if (_cluster.Hosts.FirstOrDefault(h => h.Agent is { HasExited: true }) is { } dead)
            {
                throw new InvalidOperationException($"the agent of {dead.Name} exited while starting: " +
                    string.Join('\n', File.ReadLines(dead.AgentLog).TakeLast(5)));
            }

            return (await _cluster.HealthAsync()).Unhealthy.Count == 0;
        }, 240, "a leader and two streaming replicas", ct);
        _cluster.StartRouter();
        await UntilAsync(async () =>
        {
            try
            {
                await using var conn = new NpgsqlConnection(_cluster.WriteConnectionString);
                await conn.OpenAsync(ct);
                await using var cmd = new NpgsqlCommand(Workload.Schema, conn);
                await cmd.ExecuteNonQueryAsync(ct);
                return true;
            }
            catch (NpgsqlException)
            {
                return false;
            }
        }, 60, "the schema created through the router", ct);
        Say($"cluster up: leader {await _cluster.LeaderKeyAsync(ct)}");
    }

    private async Task UntilAsync(Func<Task<bool>> condition, double seconds, string what, CancellationToken ct)
    {
        var deadline = _clock.Now + seconds;
        while (!await condition())
        {
            if (_clock.Now > deadline)
            {
                throw new TimeoutException($"not {what} within {seconds} s; see the logs in {_cluster.Dir}");
            }

            await Task.Delay(250, ct);
        }
    }

    private async Task SampleLeaderAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            (string? Leader, bool Known) sample;
            try
            {
                sample = (await _cluster.LeaderKeyAsync(ct), true);
            }
            catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
            {
                sample = (null, false);
            }

            lock (_samplesGate)
            {
                _leaderSamples.Add((_clock.Now, sample.Leader, sample.Known));
            }

            try
            {
                await Task.Delay(250, ct);
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private async Task<Host?> LeaderAsync()
    {
        for (var i = 0; i < 20; i++)
        {
            try
            {
                if (await _cluster.LeaderKeyAsync() is { } name)
                {
                    return _cluster[name];
                }
            }
            catch (InvalidOperationException)
            {
            }

            await Task.Delay(500);
        }

        return null;
    }

    /// <summary>The faults in order: rounds of every kind, each round shuffled by the seeded random.</summary>
    private List<FaultKind> Schedule()
    {
        var schedule = new List<FaultKind>();
        while (schedule.Count < _o.Faults)
        {
            var round = _o.Kinds.ToArray();
            _random.Shuffle(round);
            schedule.AddRange(round);
        }

        return schedule.GetRange(0, _o.Faults);
    }

    /// <summary>
    /// How long a fault lasts. A fault that cuts the leader off (frozen agent or postmaster, its host partitioned, its
    /// agent dead) lasts longer than the lease (ttl + 2 s more) every other time on average, so that both the "rides it
    /// out" and the "fails over, then the old leader rejoins" paths are taken.
    /// </summary>
    private double Hold(FaultKind kind)
    {
        var hold = _o.HoldMin + _random.NextDouble() * (_o.HoldMax - _o.HoldMin);
        var isolating = kind is FaultKind.StopLeaderAgent or FaultKind.StopLeaderPostmaster or FaultKind.PartitionLeader or FaultKind.KillLeaderAgent;
        return isolating && _random.Next(2) == 0 ? hold + _o.Ttl + 2 : hold;
    }

    private async Task InjectAsync(int number, FaultKind kind, CancellationToken ct)
    {
        var leader = await LeaderAsync();
        var hold = Hold(kind);
        var replicas = _cluster.Hosts.Where(h => h != leader).ToList();
        var etcdVictims = _cluster.Hosts.OrderBy(_ => _random.Next()).Take(kind == FaultKind.KillTwoEtcd ? 2 : 1).ToList();
        var f = new FaultRecord
        {
            Number = number,
            Kind = kind,
            Hold = hold,
            LeaderBefore = leader?.Name,
            Target = kind is FaultKind.KillOneEtcd or FaultKind.KillTwoEtcd ? string.Join('+', etcdVictims.Select(h => "etcd " + h.Name)) : leader?.Name ?? "-",
        };
        _faults.Add(f);
        if (leader is null)
        {
            f.Notes.Add("no leader to aim at");
            f.Injected = f.Healed = _clock.Now;
            await WaitHealthyAsync(f, ct);
            return;
        }

        Say($"fault #{number}: {kind.Name()} on {f.Target} (hold {hold:F1} s)");

        // Injected: the moment the fault took hold (right after the signal, the link change or the request).
        var holdDelay = TimeSpan.FromSeconds(hold);
        switch (kind)
        {
            case FaultKind.CrashLeader:
                CrashHost(leader, f);
                await Task.Delay(holdDelay, ct);
                _cluster.StartAgent(leader);
                break;
            case FaultKind.KillLeaderAgent:
                leader.Agent!.Signal(Os.SIGKILL);
                f.Injected = _clock.Now;
                leader.Agent.Kill();
                await Task.Delay(holdDelay, ct);
                _cluster.StartAgent(leader);
                break;
            case FaultKind.KillLeaderPostmaster:
                if (leader.PostmasterPid() is { } pm)
                {
                    Os.Signal(pm, Os.SIGKILL);
                }
                else
                {
                    f.Notes.Add("no postmaster to kill");
                }

                f.Injected = _clock.Now;

                break;
            case FaultKind.StopLeaderAgent:
                leader.Agent!.Signal(Os.SIGSTOP);
                f.Injected = _clock.Now;
                Os.WaitUntilStopped(leader.Agent.Pid, TimeSpan.FromSeconds(5));
                await Task.Delay(holdDelay, ct);
                leader.Agent.Signal(Os.SIGCONT);
                break;
            case FaultKind.StopLeaderPostmaster:
                if (leader.PostmasterPid() is { } stopped)
                {
                    Os.Signal(stopped, Os.SIGSTOP);
                    f.Injected = _clock.Now;
                    await Task.Delay(holdDelay, ct);
                    Os.Signal(stopped, Os.SIGCONT);
                }
                else
                {
                    f.Injected = _clock.Now;
                    f.Notes.Add("no postmaster to stop");
                }

                break;
            case FaultKind.PartitionLeader:
                _cluster.Net.SetLink(leader.Name, up: false);
                f.Injected = _clock.Now;
                await Task.Delay(holdDelay, ct);
                _cluster.Net.SetLink(leader.Name, up: true);
                break;
            case FaultKind.PartitionRouterLeader:
                _cluster.Net.SetPartition(Topology.RouterHost, leader.Name, partitioned: true);
                f.Injected = _clock.Now;
                await Task.Delay(holdDelay, ct);
                _cluster.Net.SetPartition(Topology.RouterHost, leader.Name, partitioned: false);
                break;
            case FaultKind.KillOneEtcd or FaultKind.KillTwoEtcd:
                foreach (var h in etcdVictims)
                {
                    h.Etcd!.Kill();
                }

                f.Injected = _clock.Now;

                await Task.Delay(holdDelay, ct);
                foreach (var h in etcdVictims)
                {
                    _cluster.StartEtcd(h);
                }

                break;
            case FaultKind.Switchover:
                f.Injected = _clock.Now;
                var answer = await _cluster.SwitchoverAsync(leader);
                f.Notes.Add("switchover: " + answer);
                if (!answer.StartsWith("200", StringComparison.Ordinal))
                {
                    Say($"  switchover answered {answer}");
                }

                break;
            case FaultKind.ReplicationDelay:
            case FaultKind.ReplicationDelayThenCrash:
                foreach (var r in replicas)
                {
                    _cluster.Net.SetRate(r.Name, _o.Rate);
                }

                f.Injected = _clock.Now;
                f.Notes.Add(string.Create(CultureInfo.InvariantCulture, $"replication delayed from {_clock.Now:F1} s"));
                await Task.Delay(holdDelay, ct);
                if (kind == FaultKind.ReplicationDelayThenCrash)
                {
                    // A host crash: its link goes down with its processes, so the WAL still in its kernel's socket buffers
                    // never leaves (a kill -9 alone lets the kernel deliver it). The window starts here.
                    _cluster.Net.SetLink(leader.Name, up: false);
                    CrashHost(leader, f);
                }

                foreach (var r in replicas)
                {
                    _cluster.Net.SetRate(r.Name, null);
                }

                if (kind == FaultKind.ReplicationDelayThenCrash)
                {
                    await Task.Delay(TimeSpan.FromSeconds(3), ct);
                    _cluster.Net.SetLink(leader.Name, up: true);
                    _cluster.StartAgent(leader);
                }

                break;
        }

        f.Healed = _clock.Now;
        await WaitHealthyAsync(f, ct);
        Say($"  healthy after {f.Healthy - f.Injected:F1} s; leader {f.LeaderBefore} -> {f.LeaderAfter}" +
            (f.NotRejoined.Count > 0 ? $"; NOT REJOINED: {string.Join(", ", f.NotRejoined)}" : ""));
    }

    /// <summary>A host crash, etcd aside: kill -9 of the agent, the postmaster and everything else on the host at once.</summary>
    private void CrashHost(Host h, FaultRecord f)
    {
        var keep = h.Etcd is { HasExited: false } e ? e.Pid : -1;
        var pids = _cluster.Net.PidsIn(h.Name).Where(p => p != keep).ToList();
        foreach (var pid in pids)
        {
            Os.Signal(pid, Os.SIGKILL);
        }

        f.Injected = _clock.Now;

        h.Agent?.Kill();
        var deadline = _clock.Now + 10;
        while (pids.Any(Os.IsAlive) && _clock.Now < deadline)
        {
            Thread.Sleep(20);
        }
    }

    /// <summary>
    /// Waits until the cluster is healthy again (every etcd member, a leader, two streaming replicas). A node that is not
    /// back within the rejoin timeout is recorded as not rejoined; an agent or etcd that exited on its own is restarted
    /// (and recorded) so that the campaign can go on.
    /// </summary>
    private async Task WaitHealthyAsync(FaultRecord f, CancellationToken ct)
    {
        var deadline = _clock.Now + _o.RejoinTimeout;
        var unhealthy = new List<string>();

        // The agents' REST answers lag a fault by up to a cycle (a killed postmaster still shows a healthy leader):
        // look no earlier than two cycles after the healing, and count healthy only once a write has succeeded since.
        await Task.Delay(TimeSpan.FromSeconds(2), ct);
        while (!ct.IsCancellationRequested)
        {
            RestartExited(f);
            (f.LeaderAfter, unhealthy) = await _cluster.HealthAsync();
            if (f.Number > 0 && _history.LatestOkWriteInvoke < f.Healed)
            {
                unhealthy.Add("no successful write through the router yet");
            }

            if (unhealthy.Count == 0 && f.LeaderAfter is not null)
            {
                f.Healthy = _clock.Now;
                return;
            }

            if (_clock.Now > deadline)
            {
                break;
            }

            await Task.Delay(250, ct);
        }

        f.NotRejoined.AddRange(unhealthy.Count > 0 ? unhealthy : ["no leader"]);
        _findings.Add($"fault #{f.Number} ({f.Kind.Name()} on {f.Target}): not healthy {_o.RejoinTimeout} s after healing: {string.Join(", ", f.NotRejoined)}");
        var second = _clock.Now + _o.RejoinTimeout;
        while (_clock.Now < second && !ct.IsCancellationRequested)
        {
            RestartExited(f);
            (f.LeaderAfter, unhealthy) = await _cluster.HealthAsync();
            if (unhealthy.Count == 0 && f.LeaderAfter is not null)
            {
                break;
            }

            await Task.Delay(500, ct);
        }

        f.Healthy = _clock.Now;
    }

    private void RestartExited(FaultRecord f)
    {
        foreach (var h in _cluster.Hosts)
        {
            if (h.Agent is { HasExited: true })
            {
                _findings.Add($"fault #{f.Number}: the agent of {h.Name} exited on its own (see {h.AgentLog}); restarted");
                Say($"  agent {h.Name} exited on its own: restarting it");
                _cluster.StartAgent(h);
            }

            if (h.Etcd is { HasExited: true })
            {
                _findings.Add($"fault #{f.Number}: etcd on {h.Name} exited on its own; restarted");
                _cluster.StartEtcd(h);
            }
        }

        if (!_cluster.RouterRunning)
        {
            _findings.Add($"fault #{f.Number}: the router exited on its own (see {_cluster.RouterLog}); restarted");
            _cluster.StartRouter();
        }
    }

    /// <summary>
    /// The final state, read from the leader once every node is healthy and every replica has replayed the leader's
    /// last position; each replica's copy is compared with it (a difference is a finding).
    /// </summary>
    private async Task<FinalState> FinalStateAsync()
    {
        var f = new FaultRecord { Number = 0, Kind = FaultKind.Switchover, Target = "final" };
        await WaitHealthyAsync(f, CancellationToken.None);
        var leader = _cluster[f.LeaderAfter ?? throw new InvalidOperationException("no leader at the end")];
        var lsn = await _cluster.QueryAsync<string>(leader, "SELECT pg_current_wal_lsn()::text");
        foreach (var r in _cluster.Hosts.Where(h => h != leader))
        {
            await UntilAsync(async () =>
            {
                try
                {
                    return await _cluster.QueryAsync<bool>(r, $"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
                }
                catch (NpgsqlException)
                {
                    return false;
                }
            }, 120, $"{r.Name} replayed up to {lsn}", CancellationToken.None);
        }

        var state = await ReadStateAsync(leader);
        foreach (var r in _cluster.Hosts.Where(h => h != leader))
        {
            var copy = await ReadStateAsync(r);
            if (!copy.Inserted.SetEquals(state.Inserted) || copy.Lists.Count != state.Lists.Count
                || copy.Lists.Any(kv => !state.Lists.TryGetValue(kv.Key, out var l) || !l.SequenceEqual(kv.Value)))
            {
                _findings.Add($"replica {r.Name} differs from leader {leader.Name} after catching up");
            }
        }

        return state;
    }

    private async Task<FinalState> ReadStateAsync(Host h)
    {
        await using var conn = new NpgsqlConnection(_cluster.ConnectionStringOf(h));
        await conn.OpenAsync();
        var ids = new HashSet<long>();
        await using (var cmd = new NpgsqlCommand("SELECT id FROM campaign_ins", conn))
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                ids.Add(reader.GetInt64(0));
            }
        }

        var lists = new Dictionary<long, IReadOnlyList<long>>();
        await using (var cmd = new NpgsqlCommand("SELECT k, v FROM campaign_list", conn))
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                lists[reader.GetInt64(0)] = (long[])reader.GetValue(1);
            }
        }

        return new FinalState(ids, lists);
    }

    /// <summary>Data directories go (PostgreSQL and etcd); logs, configs and the history stay for reading.</summary>
    private static void KeepLogsOnly(string dir)
    {
        foreach (var n in new[] { "n1", "n2", "n3" })
        {
            var host = Path.Combine(dir, n);
            var data = Path.Combine(host, "data");
            var pgLog = Path.Combine(data, "log");
            try
            {
                if (Directory.Exists(pgLog))
                {
                    foreach (var file in Directory.GetFiles(pgLog))
                    {
                        File.Copy(file, Path.Combine(host, "postgresql-" + Path.GetFileName(file)), overwrite: true);
                    }
                }

                foreach (var d in Directory.Exists(host) ? Directory.GetDirectories(host) : [])
                {
                    Directory.Delete(d, recursive: true);
                }
            }
            catch (IOException)
            {
            }
        }
    }
}
