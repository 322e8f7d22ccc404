using System.Globalization;

namespace Steward.Agent;

/// <summary>
/// The conditions of a restart request (Patroni's <c>POST /restart</c> filters): the member's role, a PostgreSQL version
/// it must be older than, and a pending restart. An immediate restart checks them at once; a scheduled one when it is
/// due, since the role, the version and the pending flag may all change in between (Patroni's semantics).
/// </summary>
internal sealed record RestartConditions(string? Role = null, string? PostgresVersion = null, bool PendingOnly = false)
{
    public static readonly RestartConditions None = new();

    /// <summary>Why the restart must not go ahead, in Patroni's words ("host role mismatch", …), or null when it may.</summary>
    public string? Unmet(string role, int? serverVersion, bool pendingRestart)
    {
        if (Role is { } wanted && wanted != role)
        {
            return $"host role mismatch (this member is {role}, not {wanted})";
        }

        if (PostgresVersion is { } text && VersionNumber(text, out _) is { } version && version <= (serverVersion ?? 0))
        {
            return $"postgres version mismatch (this server is {serverVersion}, not older than {text})";
        }

        return PendingOnly && !pendingRestart ? "pending restart flag is not set" : null;
    }

    /// <summary>
    /// Patroni's <c>postgres_version_to_int</c>: "15.2" → 150002, "9.6.24" → 90624; null with <paramref name="error"/> in
    /// Patroni's words when the text is not X.Y (10 and later) or X.Y.Z.
    /// </summary>
    public static int? VersionNumber(string text, out string? error)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = new List<int>();
        foreach (var part in text.Split('.'))
        {
            if (!int.TryParse(part, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
            {
                error = $"Invalid PostgreSQL version: {text}";
                return null;
            }

            parts.Add(number);
        }

        if (parts.Count < 2 || (parts.Count == 2 && parts[0] < 10) || parts.Count > 3 || parts.Any(p => p is < 0 or > 99))
        {
            error = $"Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {text}";
            return null;
        }

        if (parts.Count == 2)
        {
            parts.Insert(1, 0);
        }

        error = null;
        return (parts[0] * 10000) + (parts[1] * 100) + parts[2];
    }
}

/// <summary>
/// A restart scheduled on this member (REST <c>POST /restart</c> with <c>schedule</c>). <paramref name="PostmasterStartTime"/>
/// is the server's start time when it was scheduled: a server restarted meanwhile cancels it, as in Patroni.
/// </summary>
internal sealed record ScheduledRestart(DateTimeOffset At, RestartConditions Conditions, DateTimeOffset? PostmasterStartTime = null)
{
    public bool PendingOnly => Conditions.PendingOnly;
}
