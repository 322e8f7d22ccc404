using Steward.Core.Configuration;

namespace Steward.Tests.Configuration;

public sealed class ShellWordsTests
{
    [Theory]
    [InlineData("a b\tc", new[] { "a", "b", "c" })]
    [InlineData("  spaced   out  ", new[] { "spaced", "out" })]
    [InlineData("'single quoted' x", new[] { "single quoted", "x" })]
    [InlineData("\"double \\\"quoted\\\" \\\\ $HOME\"", new[] { "double \"quoted\" \\ $HOME" })]
    [InlineData("\"keep \\n\"", new[] { "keep \\n" })]
    [InlineData("back\\ slash", new[] { "back slash" })]
    [InlineData("a'b'\"c\"d", new[] { "abcd" })]
    [InlineData("''", new[] { "" })]
    [InlineData("", new string[0])]
    public void Splits_as_shlex_does(string line, string[] words) =>
        Assert.Equal(words, ShellWords.Split(line, out _));

    [Theory]
    [InlineData("'open", "no closing quotation (')")]
    [InlineData("\"open", "no closing quotation (\")")]
    [InlineData("end\\", "no escaped character after the final backslash")]
    public void Unbalanced_input_is_an_error(string line, string error)
    {
        Assert.Null(ShellWords.Split(line, out var why));
        Assert.Equal(error, why);
    }
}
