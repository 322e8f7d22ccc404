using Steward.Core.Postgres;

namespace Steward.Postgres;

/// <summary>
/// The OS user PostgreSQL's programs run as and its files belong to: the configured user when the agent is root
/// (programs are then started through setpriv), otherwise the agent's own user.
/// </summary>
internal sealed class PgOsUser
{
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public string Name { get; }
    public uint Uid { get; }
    public uint Gid { get; }
    /// <summary>The agent is root: programs must switch to <see cref="Name"/> and files must be chowned.</summary>
    public bool Switch { get; }
    /// <summary>The user's home directory (libpq looks for ~/.postgresql/postgresql.crt there); empty when unknown.</summary>
    public string Home { get; }

    internal PgOsUser(string name, uint uid, uint gid, bool @switch, string home = "")
    {
        Home = home;
        Name = name;
        Uid = uid;
        Gid = gid;
        Switch = @switch;
    }

    public static PgOsUser Resolve(string configuredUser)
    {
        if (Native.EffectiveUid == 0)
        {
            var user = Native.LookupUser(configuredUser)
                ?? throw new PostgresException($"the agent runs as root, so PostgreSQL must run as postgresql.os_user '{configuredUser}', but no such OS user exists");
            if (user.Uid == 0)
            {
                throw new PostgresException($"postgresql.os_user '{configuredUser}' is root; PostgreSQL refuses to run as root: name an unprivileged user");
            }
            return new PgOsUser(user.Name, user.Uid, user.Gid, @switch: true, user.Home);
        }
        var uid = Native.EffectiveUid;
        var name = Native.LookupUser(uid)?.Name ?? uid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new PgOsUser(name, uid, Native.EffectiveGid, @switch: false);
    }

    /// <summary>"uid N (name)" for messages.</summary>
    public static string Describe(uint uid) =>
        Native.LookupUser(uid) is { } user ? $"uid {uid} ({user.Name})" : $"uid {uid}";

    /// <summary>Gives <paramref name="path"/> to this user when the agent is root.</summary>
    public void Own(string path)
    {
        if (Switch)
        {
            Native.Chown(path, Uid, Gid);
        }
    }

    /// <summary>Creates the directory (and missing parents, which stay the agent's) owned by this user with the given mode.</summary>
    public void CreateDirectory(string path, UnixFileMode mode)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(parent))
        {
            Directory.CreateDirectory(parent);
        }
        if (!Directory.Exists(path))
        {
            Directory.CreateDirectory(path, mode);
        }
        File.SetUnixFileMode(path, mode);
        Own(path);
    }

    /// <summary>Writes the whole file atomically (temp file + rename), owned by this user, mode 0600.</summary>
    public void WriteFile(string path, string content)
    {
        var temp = path + ".steward-tmp";
        using (var stream = new FileStream(temp, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = OwnerReadWrite,
        }))
        using (var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false)))
        {
            writer.Write(content);
            writer.Flush();
            stream.Flush(flushToDisk: true);
        }
        File.SetUnixFileMode(temp, OwnerReadWrite);
        Own(temp);
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Whether this user may create files in <paramref name="directory"/> (owner, group or other write bit).</summary>
    public bool CanWriteTo(string directory)
    {
        if (!Directory.Exists(directory) || Native.Owner(directory) is not { } owner)
        {
            return false;
        }
        var mode = File.GetUnixFileMode(directory);
        return (owner.Uid == Uid && mode.HasFlag(UnixFileMode.UserWrite | UnixFileMode.UserExecute))
            || (owner.Gid == Gid && mode.HasFlag(UnixFileMode.GroupWrite | UnixFileMode.GroupExecute))
            || mode.HasFlag(UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);
    }
}
