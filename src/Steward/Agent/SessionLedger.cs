using System.Globalization;

namespace Steward.Agent;

/// <summary>
/// The session leases this member's agents were granted, kept beside the data directory (<c>&lt;data_dir&gt;.steward-sessions</c>)
/// so that a restarted agent can tell the leader key its previous run left (released at once) from one held by another
/// agent started with the same name (never touched). Without a path (the simulation) it lives in memory, shared by the
/// agent runs of one member.
/// </summary>
public sealed class SessionLedger
{
    private const int Kept = 8;
    private readonly string? _path;
    private readonly Lock _gate = new();
    private List<long> _leases = [];
    private bool _loaded;

    public SessionLedger(string? path) => _path = path;

    /// <summary>The ledger beside <paramref name="dataDir"/>.</summary>
    public static SessionLedger Beside(string dataDir) =>
        new(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dataDir)) + ".steward-sessions");

    /// <summary>Every lease recorded (this run's and earlier runs').</summary>
    public IReadOnlyCollection<long> Leases
    {
        get
        {
            lock (_gate)
            {
                Load();
                return [.. _leases];
            }
        }
    }

    /// <summary>Records <paramref name="leaseId"/> (before the agent takes the leader key on it). Idempotent.</summary>
    public void Record(long leaseId)
    {
        if (leaseId == 0)
        {
            return;
        }

        lock (_gate)
        {
            Load();
            if (_leases.Contains(leaseId))
            {
                return;
            }

            _leases.Add(leaseId);
            if (_leases.Count > Kept)
            {
                _leases.RemoveRange(0, _leases.Count - Kept);
            }

            if (_path is null)
            {
                return;
            }

            try
            {
                var temp = _path + ".tmp";
                File.WriteAllLines(temp, _leases.Select(l => l.ToString("x", CultureInfo.InvariantCulture)));
                File.Move(temp, _path, overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not recorded: after a restart this lease's leader key is left to expire (ttl) instead of released at once.
            }
        }
    }

    private void Load()
    {
        if (_loaded)
        {
            return;
        }

        _loaded = true;
        if (_path is null || !File.Exists(_path))
        {
            return;
        }

        try
        {
            _leases = [.. File.ReadAllLines(_path)
                .Select(line => long.TryParse(line.Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var id) ? id : 0)
                .Where(id => id != 0)];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _leases = [];
        }
    }
}
