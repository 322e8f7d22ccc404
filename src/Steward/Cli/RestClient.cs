using System.CommandLine;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Steward.Core.Cluster;

namespace Steward.Cli;

/// <summary>Basic-auth credentials for the agents' unsafe endpoints; <see cref="None"/> sends no Authorization header.</summary>
internal sealed record RestCredentials(string? Username, string? Password)
{
    public static RestCredentials None { get; } = new(null, null);
}

/// <summary><c>--username</c> / <c>--password</c> for the REST API (env STEWARD_RESTAPI_USERNAME / STEWARD_RESTAPI_PASSWORD; else the node config's restapi.authentication).</summary>
internal sealed class RestOptions
{
    private readonly Option<string?> _username = new("--username") { Description = "REST API user (env STEWARD_RESTAPI_USERNAME; default: restapi.authentication of -c)" };
    private readonly Option<string?> _password = new("--password") { Description = "REST API password (env STEWARD_RESTAPI_PASSWORD; default: restapi.authentication of -c)" };

    public void AddTo(Command command)
    {
        command.Options.Add(_username);
        command.Options.Add(_password);
    }

    public RestCredentials Resolve(ParseResult pr, ResolvedTarget target)
    {
        var username = pr.GetValue(_username) ?? Environment.GetEnvironmentVariable("STEWARD_RESTAPI_USERNAME") ?? target.Ctl.Authentication?.Username;
        var password = pr.GetValue(_password) ?? Environment.GetEnvironmentVariable("STEWARD_RESTAPI_PASSWORD") ?? target.Ctl.Authentication?.Password;
        return new RestCredentials(username, password);
    }
}

/// <summary>One answer of an agent's REST API.</summary>
internal sealed record RestResponse(string Member, Uri Url, int Status, string Body)
{
    public bool IsSuccess => Status is >= 200 and < 300;

    /// <summary>"node1 answered 412 on POST http://…/switchover: candidate is lagging".</summary>
    public string Describe(string method) => $"{Member} answered {Status} on {method} {Url}: {(Body.Length == 0 ? "(empty body)" : Body.Trim())}";
}

/// <summary>
/// Calls the agents' REST API (the member's <c>api_url</c> from etcd) with Basic auth when credentials are known. A member
/// that cannot be reached, times out or refuses the credentials becomes a <see cref="CliException"/> naming the member and
/// the URL; every other status is returned for the verb to judge.
/// </summary>
internal sealed class RestClient : IDisposable
{
    /// <summary>Longer than the agent's own 30 s wait for a switchover to complete.</summary>
    public static readonly TimeSpan ActionTimeout = TimeSpan.FromSeconds(45);

    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(3);

    private readonly HttpClient _http;
    private readonly RestCredentials _credentials;

    /// <exception cref="Steward.Core.Configuration.ConfigException">A certificate or key named by <paramref name="ctl"/> cannot be loaded.</exception>
    public RestClient(Steward.Core.Configuration.RestClientConfig ctl, RestCredentials? credentials)
    {
        ArgumentNullException.ThrowIfNull(ctl);
        // Credentials go per request (the options may override the config's), so the shared client carries none.
        _http = Steward.Rest.RestHttp.Create(new Steward.Core.Configuration.RestClientConfig
        {
            Insecure = ctl.Insecure,
            CaCert = ctl.CaCert,
            CertFile = ctl.CertFile,
            KeyFile = ctl.KeyFile,
            KeyFilePassword = ctl.KeyFilePassword,
            CertSource = ctl.CertSource,
        });
        _credentials = credentials ?? RestCredentials.None;
    }

    public void Dispose() => _http.Dispose();

    public static Uri BaseUrl(Member member) =>
        member.Data.ApiUrl is { } api && ConnUrl.ApiBase(api) is { } uri
            ? uri
            : throw new CliException($"member {member.Name} has no usable api_url in etcd ({member.Data.ApiUrl ?? "none"}); is its agent running?");

    public Task<RestResponse> GetAsync(Member member, string path, CancellationToken ct) =>
        SendAsync(member, HttpMethod.Get, path, null, ReadTimeout, ct);

    public async Task<RestResponse> SendAsync(Member member, HttpMethod method, string path, JsonNode? body, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(member);
        var url = new Uri(BaseUrl(member), path);
        using var request = new HttpRequestMessage(method, url);
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }

        if (_credentials.Username is { } user)
        {
            var token = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{_credentials.Password}"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", token);
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        try
        {
            using var response = await _http.SendAsync(request, deadline.Token).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync(deadline.Token).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.Unauthorized)
            {
                throw new CliException($"{member.Name} refused the credentials (401) on {method} {url}: give --username/--password, "
                                       + "STEWARD_RESTAPI_USERNAME/STEWARD_RESTAPI_PASSWORD, or -c with restapi.authentication");
            }

            return new RestResponse(member.Name, url, (int)response.StatusCode, text);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new RestUnreachableException($"{member.Name} did not answer {method} {url} within {timeout.TotalSeconds:0} s");
        }
        catch (HttpRequestException e)
        {
            throw new RestUnreachableException($"cannot reach {member.Name} at {url}: {Steward.Rest.RestHttp.Describe(e, url)}");
        }
    }
}

/// <summary>A member's REST API could not be reached or did not answer in time (the request may or may not have been carried out).</summary>
internal sealed class RestUnreachableException : Exception
{
    public RestUnreachableException(string message) : base(message) { }

    public RestUnreachableException() { }

    public RestUnreachableException(string message, Exception inner) : base(message, inner) { }
}
