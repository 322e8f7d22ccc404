using System.Diagnostics;
using System.Net;
using System.Text;
using Steward.IntegrationTests.Cli;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Cluster;

/// <summary>
/// Issue 15, TLS and authentication on every hop, in one cluster to save CI time: etcd serves TLS only, requires client
/// certificates and has authentication on (tokens expire after 3 s, so every client re-authenticates during the test);
/// the agents' REST API serves HTTPS only with <c>verify_client: required</c> and Basic auth; the CLI, the agents among
/// themselves and the router call it with Patroni's <c>ctl</c> settings. Certificates are made by the test.
/// </summary>
[Collection(ClusterCollectionB.Name)]
public sealed class TlsTests(ITestOutputHelper output)
{
    private const string EtcdRootPassword = "etcd-root-secret";

    [Fact]
    public async Task Tls_and_authentication_everywhere_bootstrap_list_switchover_failover_router_and_clear_errors_for_a_wrong_ca()
    {
        var clock = Stopwatch.StartNew();
        void Step(string what) => output.WriteLine($"{clock.Elapsed.TotalSeconds,5:0.0} s  {what}");
        using var certs = TestCerts.Create();
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, 3, new ClusterOptions { Tls = certs, EtcdRootPassword = EtcdRootPassword });
        await using var _ = cluster;
        Step("bootstrapped over TLS with etcd auth");
        Assert.Equal(leader.Name, await cluster.LeaderKeyAsync());

        // The member keys advertise https.
        var patroni = await leader.PatroniAsync();
        Assert.NotNull(patroni);

        // REST: plain HTTP is refused on the HTTPS port; so is a client without a certificate, even for a health check.
        using (var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(3) })
        {
            var answered = await Answers(plain, $"http://127.0.0.1:{leader.RestPort}/patroni");
            Assert.False(answered is >= 200 and < 300, $"plain HTTP got {answered}");
        }

        using (var noCert = certs.HttpClient(clientCertificate: false))
        {
            Assert.Null(await Answers(noCert, $"https://127.0.0.1:{leader.RestPort}/patroni"));
        }

        // With a certificate but without Basic auth, an unsafe method is refused (401) and nothing moves.
        using (var withCert = certs.HttpClient())
        {
            using var content = new StringContent($"{{\"leader\":\"{leader.Name}\"}}", Encoding.UTF8, "application/json");
            using var response = await withCert.PostAsync(new Uri($"https://127.0.0.1:{leader.RestPort}/switchover"), content);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal(200, await leader.RestStatusAsync("/leader"));
        }

        Step("REST refusals checked");

        // The router follows the cluster through etcd over TLS with auth, and checks the agents over HTTPS (ctl).
        var ctlYaml = $"ctl:\n  cacert: {certs.CaFile}\n  certfile: {certs.ClientCert}\n  keyfile: {certs.ClientKey}\n"
                      + $"  authentication:\n    username: {TestCluster.RestUser}\n    password: {TestCluster.RestPassword}\n";
        await using var router = await TestRouter.StartAsync(cluster.Etcd.Endpoint, cluster.Scope, cluster.Dir, output,
            dashboard: ("ops", "dash-secret"), extraYaml: ctlYaml, etcd3Yaml: cluster.Etcd3Yaml());
        await Poll.UntilAsync(async () => await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == leader.PgPort,
            TimeSpan.FromSeconds(30), "the router's write port on the leader");

        Step("router on the leader");

        // The CLI with -c (etcd over TLS with auth, the REST API with the ctl settings).
        var (listCode, list) = await CliRun.RunAsync(cluster, output, "list");
        Assert.Equal(0, listCode);
        Assert.All(cluster.Nodes, n => Assert.Contains(n.Name, list, StringComparison.Ordinal));

        // Without -c: --etcd and --scope, with TLS, credentials and the ctl files from the environment.
        var (envCode, envList) = await StewardProcess.RunAsync(["list", "-e", "--etcd", cluster.Etcd.HostPort, "--scope", cluster.Scope], TimeSpan.FromSeconds(60),
            environment: new Dictionary<string, string>
            {
                ["STEWARD_ETCD3_CACERT"] = certs.CaFile, ["STEWARD_ETCD3_CERT"] = certs.ClientCert, ["STEWARD_ETCD3_KEY"] = certs.ClientKey,
                ["STEWARD_ETCD3_USERNAME"] = "root", ["STEWARD_ETCD3_PASSWORD"] = EtcdRootPassword,
                ["STEWARD_CTL_CACERT"] = certs.CaFile, ["STEWARD_CTL_CERTFILE"] = certs.ClientCert, ["STEWARD_CTL_KEYFILE"] = certs.ClientKey,
            });
        output.WriteLine($"$ steward list -e --etcd … → {envCode}\n{envList}");
        Assert.Equal(0, envCode);
        Assert.All(cluster.Nodes, n => Assert.Contains(n.Name, envList, StringComparison.Ordinal));

        var candidate = cluster.Nodes.First(n => n != leader);
        var (switchCode, switchText) = await CliRun.RunAsync(cluster, output, "switchover", "--candidate", candidate.Name, "--force");
        Assert.True(switchCode == 0, switchText);
        var switched = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: leader);
        Assert.Equal(candidate.Name, switched.Name);
        await Poll.UntilAsync(async () => await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == switched.PgPort,
            TimeSpan.FromSeconds(30), "the router's write port on the new leader after the switchover");
        Step("switchover done, router followed");

        // The dashboard's switchover goes to the leader's REST API over HTTPS with the router's ctl settings.
        await cluster.WaitForStreamingAsync(leader, TimeSpan.FromSeconds(60));
        using (var dashboard = new HttpClient { Timeout = TimeSpan.FromSeconds(60) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"http://127.0.0.1:{router.StatsPort}/dashboard/switchover"))
            {
                Content = new StringContent($"{{\"candidate\":\"{leader.Name}\"}}", Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("ops:dash-secret")));
            using var response = await dashboard.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"dashboard switchover: {(int)response.StatusCode} {text}");
        }

        var back = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: switched);
        Assert.Equal(leader.Name, back.Name);
        await Poll.UntilAsync(async () => await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == back.PgPort,
            TimeSpan.FromSeconds(30), "the router's write port on the leader after the dashboard's switchover");
        Step("dashboard switchover done, router followed");

        // Failover: the leader's agent and PostgreSQL die; the others (asking each other over HTTPS) elect a new one.
        await cluster.WaitForStreamingAsync(switched, TimeSpan.FromSeconds(60));
        await back.CrashAsync();
        var promoted = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(60), not: back);
        await Poll.UntilAsync(async () => await router.QueryAsync<bool>(router.WritePort, "SELECT NOT pg_is_in_recovery()")
                                          && await router.QueryAsync<int>(router.WritePort, "SELECT inet_server_port()") == promoted.PgPort,
            TimeSpan.FromSeconds(30), "the router's write port on the leader after the failover");
        Step($"failover to {promoted.Name} done, router followed");

        // Wrong CA for the REST API (ctl.cacert): a clear error naming the member, its URL and the certificate problem.
        var nodeYaml = await File.ReadAllTextAsync(promoted.ConfigPath);
        var wrongRestCa = cluster.Dir.Sub("wrong-rest-ca.yml");
        await File.WriteAllTextAsync(wrongRestCa, nodeYaml.Replace($"ctl:\n  cacert: {certs.CaFile}", $"ctl:\n  cacert: {certs.OtherCaFile}", StringComparison.Ordinal));
        var replica = cluster.Nodes.First(n => n != promoted && n != back);
        await cluster.WaitForStreamingAsync(replica, TimeSpan.FromSeconds(60));
        var (restCode, restText) = await StewardProcess.RunAsync(["switchover", "-c", wrongRestCa, "--candidate", replica.Name, "--force"], TimeSpan.FromSeconds(60));
        output.WriteLine($"wrong ctl.cacert → {restCode}\n{restText}");
        Assert.NotEqual(0, restCode);
        Assert.Contains("not signed by the configured CA", restText, StringComparison.Ordinal);
        Assert.Contains(certs.OtherCaFile, restText, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", restText, StringComparison.Ordinal);

        // Wrong CA for etcd (etcd3.cacert): a clear error naming etcd, the endpoint and the certificate problem.
        var wrongEtcdCa = cluster.Dir.Sub("wrong-etcd-ca.yml");
        await File.WriteAllTextAsync(wrongEtcdCa, nodeYaml.Replace($"  cacert: {certs.CaFile}\n  cert:", $"  cacert: {certs.OtherCaFile}\n  cert:", StringComparison.Ordinal));
        var (etcdCode, etcdText) = await StewardProcess.RunAsync(["list", "-c", wrongEtcdCa], TimeSpan.FromSeconds(60));
        output.WriteLine($"wrong etcd3.cacert → {etcdCode}\n{etcdText}");
        Assert.Equal(3, etcdCode);
        Assert.Contains("etcd", etcdText, StringComparison.Ordinal);
        Assert.Contains(cluster.Etcd.Endpoint, etcdText, StringComparison.Ordinal);
        Assert.Contains("not signed by the configured CA", etcdText, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", etcdText, StringComparison.Ordinal);

        // Nothing was moved by the refused attempts.
        Assert.Equal(promoted.Name, await cluster.LeaderKeyAsync());
        Step("wrong-CA errors checked");
    }

    /// <summary>
    /// etcd's auth tokens expire (here after 3 s idle): a store whose token expired authenticates again, for a call and
    /// for its watch, instead of failing with "invalid auth token" until it is restarted.
    /// </summary>
    [Fact]
    public async Task An_expired_etcd_auth_token_is_renewed_for_calls_and_the_watch()
    {
        using var certs = TestCerts.Create();
        await using var etcd = await EtcdServer.StartAsync(tls: certs);
        await etcd.EnableAuthAsync(EtcdRootPassword);
        var config = new Steward.Core.Configuration.Etcd3Config
        {
            Endpoints = [etcd.Endpoint], CaCert = certs.CaFile, Cert = certs.ClientCert, Key = certs.ClientKey,
            Username = "root", Password = EtcdRootPassword,
        };
        await using var store = Steward.Etcd.EtcdClusterStore.Create(config, "/service/tokens/", TimeSpan.FromSeconds(3), TimeProvider.System,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<Steward.Etcd.EtcdClusterStore>.Instance);
        await store.LoadAsync(CancellationToken.None);
        Assert.True(await store.TryCreateInitializeAsync("7000000000000000001", CancellationToken.None));

        // Idle past the token's lifetime: nothing to poll for, the point is that time passes without a call.
        await Task.Delay(TimeSpan.FromSeconds(6));
        var view = await store.LoadAsync(CancellationToken.None);
        Assert.Equal("7000000000000000001", view.Initialize);

        // Idle again; a write then goes through, and the watch (established with an old token) reports it.
        await Task.Delay(TimeSpan.FromSeconds(6));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var wait = store.WaitForChangeAsync(timeout.Token);
        await store.SetInitializeAsync("7000000000000000002", CancellationToken.None);
        await wait;
        Assert.Equal("7000000000000000002", (await store.LoadAsync(CancellationToken.None)).Initialize);
    }

    /// <summary>A key that cannot be loaded, or a verify_client typo, stops the agent before it touches anything.</summary>
    [Fact]
    public async Task A_bad_key_or_verify_client_typo_stops_the_agent_naming_the_key_with_nothing_started()
    {
        using var certs = TestCerts.Create();
        using var dir = new TempDir("tls-bad");
        var garbage = dir.Sub("garbage-key.pem");
        await File.WriteAllTextAsync(garbage, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
        string Config(string restapi) => $$"""
            scope: bad
            name: node1
            restapi:
              listen: 127.0.0.1:{{FreePorts.Next()}}
            {{restapi}}
            etcd3:
              hosts: 127.0.0.1:{{FreePorts.Next()}}
            postgresql:
              listen: 127.0.0.1:{{FreePorts.Next()}}
              data_dir: {{dir.Sub("data")}}
              authentication:
                superuser: {username: postgres, password: x}
                replication: {username: replicator, password: y}
            """;

        foreach (var (restapi, expected) in new[]
        {
            ($"  certfile: {certs.ServerCert}\n  keyfile: {garbage}", $"restapi.keyfile {garbage}: cannot load the private key"),
            ($"  certfile: {certs.ServerCert}\n  keyfile: {certs.ServerKey}\n  cafile: {certs.CaFile}\n  verify_client: requried",
                "restapi.verify_client: expected none, optional or required, got 'requried'"),
        })
        {
            var path = dir.Sub("node.yml");
            await File.WriteAllTextAsync(path, Config(restapi));
            var (code, text) = await StewardProcess.RunAsync(["node", "-c", path], TimeSpan.FromSeconds(60));
            output.WriteLine($"steward node → {code}\n{text}");
            Assert.Equal(2, code);
            Assert.Contains(expected, text, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
            Assert.False(Directory.Exists(dir.Sub("data")), "the data directory was created");
        }
    }

    /// <summary>The status a GET gets, or null when the connection or TLS handshake failed.</summary>
    private static async Task<int?> Answers(HttpClient http, string url)
    {
        try
        {
            using var response = await http.GetAsync(new Uri(url));
            return (int)response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
        catch (TaskCanceledException)
        {
            return null;
        }
    }
}
