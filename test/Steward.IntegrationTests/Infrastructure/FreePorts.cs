using System.Net;
using System.Net.Sockets;

namespace Steward.IntegrationTests.Infrastructure;

/// <summary>Hands out loopback TCP ports that are free now and not handed out before in this test run.</summary>
internal static class FreePorts
{
    private static readonly HashSet<int> Given = [];
    private static readonly Lock Gate = new();

    public static int Next()
    {
        lock (Gate)
        {
            for (var attempt = 0; attempt < 100; attempt++)
            {
                using var probe = new TcpListener(IPAddress.Loopback, 0);
                probe.Start();
                var port = ((IPEndPoint)probe.LocalEndpoint).Port;
                probe.Stop();
                if (Given.Add(port))
                {
                    return port;
                }
            }
            throw new InvalidOperationException("no free loopback port after 100 attempts");
        }
    }
}
