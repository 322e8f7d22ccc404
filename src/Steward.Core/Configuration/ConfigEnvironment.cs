using System.Collections;

namespace Steward.Core.Configuration;

/// <summary>
/// Environment overrides. A setting <c>X</c> is read from <c>STEWARD_X</c>, else <c>PATRONI_X</c> (Patroni's names, so an
/// existing deployment's secrets keep working). An empty variable counts as unset.
/// </summary>
internal sealed class ConfigEnvironment(IReadOnlyDictionary<string, string?> variables)
{
    public Located? Find(string setting) => FindExact("STEWARD_" + setting) ?? FindExact("PATRONI_" + setting);

    public Located? FindExact(string variable) =>
        variables.TryGetValue(variable, out var value) && !string.IsNullOrEmpty(value)
            ? new Located(value, Origin.FromEnvironment(variable))
            : null;

    public static IReadOnlyDictionary<string, string?> ReadProcessEnvironment()
    {
        var result = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            result[(string)entry.Key] = entry.Value as string;
        }

        return result;
    }
}
