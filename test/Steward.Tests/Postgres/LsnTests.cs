using Steward.Core.Postgres;

namespace Steward.Tests.Postgres;

public sealed class LsnTests
{
    [Theory]
    [InlineData("0/0", 0L)]
    [InlineData("0/3000060", 0x3000060L)]
    [InlineData("1/0", 0x1_0000_0000L)]
    [InlineData("16/B374D848", 0x16_B374_D848L)]
    [InlineData("FFFFFFFF/FFFFFFFF", -1L)]
    public void Parses_and_formats_like_PostgreSQL(string text, long value)
    {
        Assert.Equal(value, Lsn.Parse(text));
        Assert.Equal(text, Lsn.Format(value));
    }

    [Fact]
    public void Lowercase_hex_is_accepted()
    {
        Assert.Equal(0x16_B374_D848L, Lsn.Parse("16/b374d848"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    [InlineData("0/")]
    [InlineData("/1")]
    [InlineData("0-3000060")]
    [InlineData("G/0")]
    [InlineData("123456789/0")]
    [InlineData("0/123456789")]
    [InlineData(" 0/1")]
    public void Anything_else_is_refused(string text)
    {
        Assert.False(Lsn.TryParse(text, out _));
        var error = Assert.Throws<FormatException>(() => Lsn.Parse(text));
        Assert.Contains($"'{text}'", error.Message, StringComparison.Ordinal);
    }
}
