using System.Runtime.InteropServices;

namespace Steward.Postgres;

/// <summary>The few libc calls .NET does not expose: effective uid, user lookup, file owner, chown, kill, process group.</summary>
internal static partial class Native
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial uint geteuid();

    [LibraryImport("libc", SetLastError = true)]
    private static partial uint getegid();

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr getpwnam(string name);

    [LibraryImport("libc", SetLastError = true)]
    private static partial IntPtr getpwuid(uint uid);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int chown(string path, uint owner, uint group);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, Span<byte> buffer);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getpgid(int pid);

    public const int SigKill = 9;

    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxBasicStats = 0x7ff;

    public static uint EffectiveUid => geteuid();

    public static uint EffectiveGid => getegid();

    /// <summary>struct passwd on 64-bit Linux: name*, passwd*, uid (offset 16), gid (offset 20), gecos*, dir* (offset 32).</summary>
    public static (string Name, uint Uid, uint Gid, string Home)? LookupUser(string name) => ReadPasswd(getpwnam(name));

    public static (string Name, uint Uid, uint Gid, string Home)? LookupUser(uint uid) => ReadPasswd(getpwuid(uid));

    private static (string Name, uint Uid, uint Gid, string Home)? ReadPasswd(IntPtr entry)
    {
        if (entry == IntPtr.Zero)
        {
            return null;
        }
        var name = Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(entry)) ?? "";
        var uid = unchecked((uint)Marshal.ReadInt32(entry, 16));
        var gid = unchecked((uint)Marshal.ReadInt32(entry, 20));
        var home = Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(entry, 32)) ?? "";
        return (name, uid, gid, home);
    }

    /// <summary>Owner uid and gid of a path (not following a final symlink), null when it does not exist.</summary>
    public static (uint Uid, uint Gid)? Owner(string path)
    {
        // struct statx is the same on every architecture: stx_uid at offset 20, stx_gid at 24.
        Span<byte> buffer = stackalloc byte[256];
        if (statx(AtFdCwd, path, AtSymlinkNoFollow, StatxBasicStats, buffer) != 0)
        {
            return null;
        }
        return (BitConverter.ToUInt32(buffer[20..]), BitConverter.ToUInt32(buffer[24..]));
    }

    /// <summary>Sends <paramref name="signal"/> to a process (a negative pid: a process group); false when it failed (e.g. gone).</summary>
    public static bool Kill(int pid, int signal) => kill(pid, signal) == 0;

    /// <summary>The process group of <paramref name="pid"/>, or -1 when it does not exist.</summary>
    public static int ProcessGroup(int pid) => getpgid(pid);

    public static void Chown(string path, uint uid, uint gid)
    {
        if (chown(path, uid, gid) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"chown {uid}:{gid} {path} failed: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
    }
}
