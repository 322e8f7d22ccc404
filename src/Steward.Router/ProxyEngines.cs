using Steward.Router.DataPath;

namespace Steward.Router;

/// <summary>Picks the data path: epoll + splice on Linux (the fast one), async socket copies elsewhere.</summary>
public static class ProxyEngines
{
    public static IProxyEngine Create() => OperatingSystem.IsLinux() ? new EpollSpliceEngine() : new SocketCopyEngine();
}
