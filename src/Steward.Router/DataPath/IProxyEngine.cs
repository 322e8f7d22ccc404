using System.Net.Sockets;

namespace Steward.Router.DataPath;

/// <summary>
/// The router's data path: moves bytes both ways between an accepted client socket and a connected backend socket
/// until either side closes, or the control plane cuts the session. Accepting and connecting happen outside (in the
/// control plane); the engine owns both sockets from <see cref="Start"/> on and closes them when the session ends.
/// </summary>
public interface IProxyEngine : IDisposable
{
    /// <summary>Starts forwarding. Never blocks on I/O. The returned session completes when both sockets are closed.</summary>
    ProxySession Start(Socket client, Socket backend);
}

/// <summary>One forwarded client connection.</summary>
public abstract class ProxySession
{
    /// <summary>Bytes received from the client and sent to the backend so far.</summary>
    public abstract long BytesIn { get; }

    /// <summary>Bytes received from the backend and sent to the client so far.</summary>
    public abstract long BytesOut { get; }

    /// <summary>Completes (never faults) when the session has ended and both sockets are closed.</summary>
    public abstract Task Completion { get; }

    /// <summary>Ends the session now: both sockets are shut down and closed (the client sees the connection drop). Idempotent, thread-safe.</summary>
    public abstract void Close();
}
