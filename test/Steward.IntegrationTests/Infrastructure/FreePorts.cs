using System.Net;
using System.Net.Sockets;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// Hands out loopback TCP ports that are free now and not handed out before in this test run, from 10000–19999 (the
/// demo tests take their port blocks from 20000–30000). They come from below the
/// kernel's ephemeral range (32768–60999): a port the kernel picked for us there can be given again as the source port
/// of an outgoing connection before the process we started binds it (seen once in CI).
/// </summary>
internal static class FreePorts
{
    private const int Low = 10000;
    private const int High = 19999;
    private static readonly HashSet<int> Given = [];
    private static readonly Lock Gate = new();
    private static readonly Random Pick = new(Environment.ProcessId);

    public static int Next()
    {
        lock (Gate)
        {
            for (var attempt = 0; attempt < 1000; attempt++)
            {
                var port = Pick.Next(Low, High);
                if (!Given.Contains(port) && IsFree(port))
                {
                    Given.Add(port);
                    return port;
                }
            }

            throw new InvalidOperationException($"no free loopback port in {Low}-{High} after 1000 attempts");
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var probe = new TcpListener(IPAddress.Loopback, port);
            probe.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
