using YamlDotNet.RepresentationModel;

namespace Steward.Core.Configuration;

/// <summary>Where a value came from: a place in the file, an environment variable, or nowhere in particular.</summary>
internal readonly record struct Origin(long Line, long Column, string? Variable)
{
    public static Origin Of(YamlNode node) => new(node.Start.Line, node.Start.Column, null);

    public static Origin FromEnvironment(string variable) => new(0, 0, variable);
}

/// <summary>A value together with where it came from, so a later check can point at it.</summary>
internal readonly record struct Located(string Text, Origin Origin);

/// <summary>Collects the errors and warnings of one load, formatted as <c>file:line:column: key.path: message</c>.</summary>
internal sealed class ConfigDiagnostics(string sourceName)
{
    private readonly List<string> errors = [];
    private readonly List<string> warnings = [];

    public bool HasErrors => errors.Count > 0;

    public IReadOnlyList<string> Warnings => warnings;

    public void Error(Origin origin, string path, string message)
    {
        var subject = path.Length == 0 ? message : $"{path}: {message}";
        errors.Add(origin switch
        {
            { Variable: { } variable } => $"{sourceName}: {subject} (from environment {variable})",
            { Line: > 0 } => $"{sourceName}:{origin.Line}:{origin.Column}: {subject}",
            _ => $"{sourceName}: {subject}",
        });
    }

    public void Warning(string message) => warnings.Add($"{sourceName}: {message}");

    /// <summary>A Patroni key Steward recognizes but does not act on.</summary>
    public void Unsupported(YamlNode key, string path) =>
        warnings.Add($"{sourceName}:{key.Start.Line}: {path} is a Patroni setting Steward does not support; ignored");

    public ConfigException ToException() => new(errors.ToList());
}
