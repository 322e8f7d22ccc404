using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Steward.Etcd;
using Steward.IntegrationTests.Cluster;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Dashboard;

/// <summary>The router's dashboard in a real headless Chromium, in front of a real three-node cluster.</summary>
[Collection(ClusterCollectionB.Name)]
public sealed class DashboardBrowserTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bootstrap = TimeSpan.FromSeconds(120);
    private const string User = "admin";
    private const string Password = "dash-secret";

    [Fact]
    public async Task The_dashboard_shows_the_members_and_a_switchover_from_the_page_shows_the_new_leader_within_2_s_of_the_key_change()
    {
        Chromium.Executable();
        await using var cluster = await TestCluster.StartAsync(3, output);
        var leader = await cluster.WaitForLeaderAsync(Bootstrap);
        foreach (var r in cluster.Nodes.Where(n => n != leader))
        {
            await cluster.WaitForStreamingAsync(r, Bootstrap);
        }

        await using var router = await TestRouter.StartAsync(cluster, output, dashboard: (User, Password));
        var url = $"http://127.0.0.1:{router.StatsPort}/dashboard";

        // Actions need the dashboard credentials.
        using (var http = new HttpClient())
        {
            using var wrong = new HttpRequestMessage(HttpMethod.Post, url + "/switchover") { Content = new StringContent("{\"candidate\":\"node1\"}") };
            wrong.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{User}:wrong")));
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(wrong)).StatusCode);
        }

        await using var browser = await Chromium.LaunchAsync();
        await browser.NavigateAsync(url);
        await Poll.UntilAsync(async () =>
                await browser.EvaluateAsync<int>("document.querySelectorAll('#members tbody tr').length") == 3
                && await browser.EvaluateAsync<string>("document.querySelector('#members tr.leader')?.dataset.member ?? ''") == leader.Name
                && await browser.EvaluateAsync<int>("document.querySelectorAll('#members tr[data-role=replica]').length") == 2,
            TimeSpan.FromSeconds(20), $"the page showing three members with {leader.Name} as the leader");
        Assert.Equal("live", await browser.EvaluateAsync<string>("document.getElementById('connection').textContent"));

        var candidate = cluster.Nodes.First(n => n != leader).Name;
        await using var store = new EtcdClusterStore([cluster.Etcd.Endpoint], $"/service/{cluster.Scope}/", TimeSpan.FromSeconds(3), TimeProvider.System,
            NullLogger<EtcdClusterStore>.Instance);
        await browser.EvaluateAsync($$"""
            (() => {
              document.getElementById('candidate').value = '{{candidate}}';
              document.getElementById('username').value = '{{User}}';
              document.getElementById('password').value = '{{Password}}';
              document.getElementById('switchover').requestSubmit();
              return true;
            })()
            """);

        // The moment etcd's leader key names the candidate, the page must follow within 2 s.
        await Poll.UntilAsync(async () => (await store.LoadAsync(CancellationToken.None)).Leader?.Name == candidate,
            TimeSpan.FromSeconds(40), $"the leader key naming {candidate}");
        var sinceKeyChange = Stopwatch.StartNew();
        await Poll.UntilAsync(async () => await browser.EvaluateAsync<string>("document.querySelector('#members tr.leader')?.dataset.member ?? ''") == candidate,
            TimeSpan.FromSeconds(10), $"the page showing {candidate} as the leader");
        var shown = sinceKeyChange.Elapsed;
        output.WriteLine($"the page showed the new leader {shown.TotalMilliseconds:0} ms after the key change");
        Assert.True(shown < TimeSpan.FromSeconds(2), $"the page showed the new leader {shown.TotalMilliseconds:0} ms after the key change");

        await Poll.UntilAsync(async () => (await browser.EvaluateAsync<string>("document.getElementById('switchover-result').textContent")).StartsWith("200", StringComparison.Ordinal),
            TimeSpan.FromSeconds(40), "the switchover's answer on the page",
            async () => await browser.EvaluateAsync<string>("document.getElementById('switchover-result').textContent"));
        await Poll.UntilAsync(async () => await browser.EvaluateAsync<int>("document.querySelectorAll('#history tbody tr[data-timeline]').length") >= 1,
            TimeSpan.FromSeconds(10), "the switchover in the page's history");

        // For the screenshot: the cluster settled on the new timeline, both replicas streaming again.
        await Poll.UntilAsync(async () => await browser.EvaluateAsync<bool>(
                "[...document.querySelectorAll('#members tbody tr')].every(r => r.children[5].textContent === '2' && (r.dataset.role === 'leader' || r.children[4].textContent === 'streaming'))"),
            TimeSpan.FromSeconds(60), "both replicas streaming on timeline 2 on the page");

        var dir = Environment.GetEnvironmentVariable("STEWARD_TEST_RESULTS") is { Length: > 0 } d ? d : "/tmp";
        Directory.CreateDirectory(dir);
        var shot = await browser.ScreenshotAsync(Path.Combine(dir, $"dashboard-{DateTime.UtcNow:yyyyMMdd-HHmmss}.png"));
        output.WriteLine($"screenshot: {shot}");
        Console.WriteLine($"dashboard screenshot: {shot}");
    }
}
