namespace Steward.IntegrationTests.Infrastructure;

/// <summary>
/// A fresh directory under /tmp that the unprivileged PostgreSQL user can traverse (mode 0755), removed on dispose.
/// Tests run as root in CI; PostgreSQL's programs run as <see cref="PgUser"/>.
/// </summary>
internal sealed class TempDir : IDisposable
{
    public const string PgUser = "postgres";

    public string Path { get; }

    public TempDir(string label)
    {
        Path = System.IO.Path.Combine("/tmp", $"steward-test-{label}-{Guid.NewGuid():N}"[..40]);
        Directory.CreateDirectory(Path);
        File.SetUnixFileMode(Path, (UnixFileMode)0b111_101_101);
    }

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // a process we started may still hold a file for a moment; the directory is under /tmp
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
