namespace Steward.Core.Configuration;

/// <summary>
/// The configuration file could not be used. <see cref="Exception.Message"/> holds every problem found, one per line,
/// each naming the file, the line and column, and the dotted key, e.g.
/// <c>node.yml:12:3: postgresql.listen: expected host:port, got 'abc'</c>.
/// </summary>
public sealed class ConfigException : Exception
{
    public ConfigException()
        : this("the configuration is invalid")
    {
    }

    public ConfigException(string message)
        : base(message) => Errors = [message];

    public ConfigException(string message, Exception innerException)
        : base(message, innerException) => Errors = [message];

    public ConfigException(IReadOnlyList<string> errors)
        : base(string.Join('\n', errors ?? throw new ArgumentNullException(nameof(errors)))) => Errors = errors;

    /// <summary>Each problem on its own, in file order as far as the walk allows.</summary>
    public IReadOnlyList<string> Errors { get; }
}
