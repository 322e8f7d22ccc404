using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Steward;

/// <summary>
/// <c>steward router</c> in the native package replaces itself (execv, same PID: systemd, a test or an operator that
/// started it keeps the process it knows) with the router-only executable installed next to it: 27 MB resident instead
/// of 35 MB (bench/footprint). Not in a JIT build, not when the file is missing, and not with
/// <c>STEWARD_ROUTER_EXEC=0</c>: then the router runs in this process, the same code.
/// </summary>
internal static partial class RouterExec
{
    /// <summary>Where the package puts it, relative to <c>/usr/bin/steward</c>.</summary>
    public const string RelativePath = "../lib/steward/steward-router";

    /// <summary>Returns only when the hand-over is not possible or failed (said on stderr); the caller then runs the router itself.</summary>
    public static void TryHandOver(string configPath)
    {
        if (RuntimeFeature.IsDynamicCodeSupported || Environment.GetEnvironmentVariable("STEWARD_ROUTER_EXEC") == "0"
            || Environment.ProcessPath is not { } self)
        {
            return;
        }

        var target = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(self)!, RelativePath));
        if (!File.Exists(target))
        {
            return;
        }

        string?[] argv = [target, "--config", configPath, null];
        Execv(target, argv);
        Console.Error.WriteLine($"steward router: could not start {target} (errno {Marshal.GetLastPInvokeError()}); running the router in this process");
    }

    [LibraryImport("libc", EntryPoint = "execv", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Execv(string path, string?[] argv);
}
