namespace Steward.Cli;

/// <summary>
/// Confirmation prompts, written to stderr (stdout stays data) and answered on stdin. A closed stdin (no terminal, nothing
/// piped) is a refusal with a message that points at <c>--force</c>: a script never hangs on a question and never acts unasked.
/// </summary>
internal sealed class Prompter(TextReader input, TextWriter prompt)
{
    /// <summary>True to go ahead: <paramref name="force"/>, or the operator answered y/yes. "No" aborts with exit 1.</summary>
    public bool Confirm(string question, bool force)
    {
        if (force)
        {
            return true;
        }

        var answer = Ask($"{question} [y/N]: ", "pass --force to go ahead without asking");
        if (answer.Trim().ToUpperInvariant() is "Y" or "YES")
        {
            return true;
        }

        throw new CliException("Aborted: nothing was changed");
    }

    /// <summary>Asks for a line of text; a closed stdin is a refusal that says <paramref name="hint"/>.</summary>
    public string Ask(string question, string hint)
    {
        prompt.Write(question);
        prompt.Flush();
        return input.ReadLine() ?? throw new CliException($"no answer: standard input is closed (not a terminal?); {hint}. Nothing was changed");
    }
}
