using System.Text;
using Steward.Core.Configuration;
using Steward.Router.Dashboard;

namespace Steward.Tests.Router;

public sealed class DashboardAuthTests
{
    private static readonly Credentials Login = new("admin", "s3cret");

    private static string Basic(string userColonPassword) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(userColonPassword));

    [Theory]
    [InlineData("admin:s3cret", true)]
    [InlineData("admin:wrong", false)]
    [InlineData("other:s3cret", false)]
    [InlineData("admin:s3cret2", false)]
    public void Only_the_configured_credentials_are_accepted(string given, bool accepted) =>
        Assert.Equal(accepted, DashboardEndpoints.Authorized(Basic(given), Login));

    [Theory]
    [InlineData("")]
    [InlineData("Bearer abc")]
    [InlineData("Basic not-base64!")]
    public void A_missing_or_malformed_header_is_refused(string header) =>
        Assert.False(DashboardEndpoints.Authorized(header, Login));
}
