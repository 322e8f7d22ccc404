using System.Text;
using Microsoft.Extensions.Logging;
using Steward.Core.Cluster;
using Steward.Testing;

namespace Steward.Tests.Cluster;

/// <summary>Issue 15, malformed etcd contents: a bad value is ignored (never an exception out of Parse) and reported once per value.</summary>
public sealed class PatroniCodecMalformedTests
{
    private static RawKeyValue Key(string key, string value, long modRevision) => new(key, Encoding.UTF8.GetBytes(value), modRevision, 0);

    [Theory]
    [InlineData("history", "{\"not\": \"a list\"}")]
    [InlineData("history", "[[1, 99999999999999999999999, \"overflow\"]]")]
    [InlineData("history", "[[\"99999999999999999999999\", 1, \"overflow as text\"]]")]
    [InlineData("history", "[[1, 2, \"r\", \"not a time\"]]")]
    [InlineData("history", "[[1, 2, \"r\", \"2024-01-01T00:00:00Z\", \"n\", 1.5]]")]
    [InlineData("history", "[5, null]")]
    [InlineData("config", "{\"ttl\": ")]
    [InlineData("config", "{\"ttl\": \"abc\", \"loop_wait\": []}")]
    [InlineData("status", "garbage")]
    [InlineData("status", "{\"optime\": \"abc\"}")]
    [InlineData("sync", "{\"leader\": 5}")]
    [InlineData("failover", "[1, 2]")]
    [InlineData("failover", "{\"scheduled_at\": \"not a time\"}")]
    [InlineData("members/x", "not json")]
    [InlineData("members/x", "{\"role\": 5}")]
    [InlineData("members/x", "{\"xlog_location\": 1e400}")]
    public void A_bad_value_is_ignored_with_a_warning_naming_the_key(string key, string value)
    {
        var lines = new List<string>();
        var logger = new CapturingLoggerFactory((_, _, line) => lines.Add(line)).CreateLogger("store");

        var view = PatroniCodec.Parse(10, [Key(key, value, 9), Key("leader", "node1", 3)], logger);

        Assert.Equal("node1", view.Leader!.Name);
        Assert.Contains(lines, l => l.Contains($"Ignoring key {key} at mod_revision 9", StringComparison.Ordinal));
    }

    [Fact]
    public void The_same_bad_value_is_reported_once_however_often_it_is_read_and_again_when_it_changes()
    {
        var lines = new List<string>();
        var logger = new CapturingLoggerFactory((_, _, line) => lines.Add(line)).CreateLogger("store");

        for (var cycle = 0; cycle < 5; cycle++)
        {
            PatroniCodec.Parse(10 + cycle, [Key("history", "{}", 9)], logger);
        }

        PatroniCodec.Parse(20, [Key("history", "[5]", 19)], logger);

        Assert.Equal(2, lines.Count(l => l.Contains("Ignoring key history", StringComparison.Ordinal)));
    }
}
