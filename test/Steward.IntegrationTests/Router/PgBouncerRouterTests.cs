using System.Text.Json;
using dotnet_etcd;
using Steward.IntegrationTests.Infrastructure;
using Steward.Router.PgBouncer;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Router;

/// <summary>
/// The router's side of the PgBouncer pause against a real PgBouncer 1.18 and a real etcd holding a cluster's keys, no
/// agents: nobody carries the switchover out, so the test decides when it ends. A PgBouncer is never left paused — the
/// switchover cancelled, the router stopped, the router killed and started again.
/// </summary>
public sealed class PgBouncerRouterTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_router_pauses_for_a_due_switchover_answers_in_etcd_and_resumes_when_it_is_cancelled_stopped_or_restarted_after_a_kill()
    {
        await using var etcdServer = await EtcdServer.StartAsync();
        using var etcd = new EtcdClient(etcdServer.Endpoint);
        using var dir = new TempDir("pgb-router");
        var scope = "t" + Guid.NewGuid().ToString("N")[..8];
        var prefix = $"/service/{scope}/";
        // The cluster as etcd sees it: node1 leads as a running primary, node2 streams (their addresses are never dialled).
        await etcd.PutAsync(prefix + "leader", "node1");
        await etcd.PutAsync(prefix + "members/node1", """{"conn_url":"postgres://127.0.0.1:1/postgres","api_url":"http://127.0.0.1:1/patroni","state":"running","role":"primary"}""");
        await etcd.PutAsync(prefix + "members/node2", """{"conn_url":"postgres://127.0.0.1:2/postgres","api_url":"http://127.0.0.1:2/patroni","state":"running","role":"replica","replication_state":"streaming"}""");
        await using var bouncer = await TestPgBouncer.StartAsync(dir, "pgbouncer", FreePorts.Next(), output);
        var yaml = $"name: r1\npgbouncer:\n{bouncer.RouterYamlEntry(pauseTimeout: 2)}";
        var address = $"127.0.0.1:{bouncer.Port}";

        var router = await TestRouter.StartAsync(etcdServer.Endpoint, scope, dir, output, extraYaml: yaml, file: "router-1");
        try
        {
            await Poll.UntilAsync(async () => (await etcd.GetAsync(prefix + "routers/r1")).Kvs.Count == 1, TimeSpan.FromSeconds(20), "routers/r1 registered");
            var registration = JsonDocument.Parse((await etcd.GetAsync(prefix + "routers/r1")).Kvs[0].Value.ToStringUtf8()).RootElement;
            Assert.Equal(2, registration.GetProperty("pause_timeout").GetDouble());
            Assert.Equal(address, registration.GetProperty("pgbouncers")[0].GetString());

            // 1. A switchover is due: PAUSE, then the answer names the request's revision.
            var revision = await RequestSwitchoverAsync(etcd, prefix);
            await Poll.UntilAsync(async () => await AnswerAsync(etcd, prefix) == revision, TimeSpan.FromSeconds(20), "pause/r1 answering the request");
            Assert.True(await IsPausedAsync(bouncer), "PgBouncer paused while the switchover is pending");
            Assert.Equal("paused", await StateAsync(router, address));

            // 2. Cancelled (the key deleted, node1 still writes): RESUME, and the answer goes.
            await etcd.DeleteAsync(prefix + "failover");
            await Poll.UntilAsync(async () => await StateAsync(router, address) == "resumed" && await AnswerAsync(etcd, prefix) is null,
                TimeSpan.FromSeconds(20), "router 1 resuming PgBouncer after the cancellation");
            Assert.False(await IsPausedAsync(bouncer));

            // 3. Paused again, then the router stops (SIGTERM): it RESUMEs on the way out.
            await RequestSwitchoverAsync(etcd, prefix);
            await Poll.UntilAsync(async () => await StateAsync(router, address) == "paused", TimeSpan.FromSeconds(20), "router 1 pausing again");
        }
        finally
        {
            await router.DisposeAsync();
        }

        Assert.False(await IsPausedAsync(bouncer), "PgBouncer left paused by a router that stopped");
        Assert.Contains("the router is stopping: RESUME of every PgBouncer", router.Log(), StringComparison.Ordinal);

        // 4. Paused, then the router is killed: PgBouncer stays paused until a router driving it starts again.
        await using var killed = await TestRouter.StartAsync(etcdServer.Endpoint, scope, dir, output, extraYaml: yaml, file: "router-2");
        await Poll.UntilAsync(async () => await StateAsync(killed, address) == "paused", TimeSpan.FromSeconds(20), "router 2 pausing for the pending switchover");
        await killed.KillAsync();
        Assert.True(await IsPausedAsync(bouncer), "a killed router cannot resume");
        await etcd.DeleteAsync(prefix + "failover"); // the switchover ended while no router ran
        await using var restarted = await TestRouter.StartAsync(etcdServer.Endpoint, scope, dir, output, extraYaml: yaml, file: "router-3");
        Assert.False(await IsPausedAsync(bouncer), "the router resumes its PgBouncers at start");
    }

    private static async Task<long> RequestSwitchoverAsync(EtcdClient etcd, string prefix) =>
        (await etcd.PutAsync(prefix + "failover", """{"leader":"node1","member":"node2"}""")).Header.Revision;

    private static async Task<long?> AnswerAsync(EtcdClient etcd, string prefix)
    {
        var range = await etcd.GetAsync(prefix + "pause/r1");
        return range.Kvs.Count == 0 ? null : JsonDocument.Parse(range.Kvs[0].Value.ToStringUtf8()).RootElement.GetProperty("failover_revision").GetInt64();
    }

    private static async Task<string?> StateAsync(TestRouter router, string address) =>
        (await router.StatsAsync()).GetProperty("pgbouncers").EnumerateArray()
            .Where(b => b.GetProperty("address").GetString() == address).Select(b => b.GetProperty("state").GetString()).FirstOrDefault();

    /// <summary>PgBouncer 1.18 has no SHOW STATE: PAUSE answers "already suspended/paused" when it is; otherwise it pauses, and is resumed at once.</summary>
    private static async Task<bool> IsPausedAsync(TestPgBouncer bouncer)
    {
        try
        {
            await bouncer.AdminAsync("PAUSE");
        }
        catch (AdminConsoleException e) when (e.Message.Contains("already suspended/paused", StringComparison.Ordinal))
        {
            return true;
        }

        await bouncer.AdminAsync("RESUME");
        return false;
    }
}
