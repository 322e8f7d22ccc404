using System.Runtime.Versioning;

// The integration tests drive Linux processes (etcd, PostgreSQL) and POSIX signals.
[assembly: SupportedOSPlatform("linux")]
