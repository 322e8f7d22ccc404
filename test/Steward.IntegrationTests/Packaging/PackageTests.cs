using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Steward.Core.Configuration;
using Steward.IntegrationTests.Cluster;
using Steward.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace Steward.IntegrationTests.Packaging;

/// <summary>
/// The Debian package that scripts/package.sh builds: its files, its control data, the example configurations (they
/// must load), the man page, the installed program, and <c>systemd-analyze verify</c> on its units. The package is
/// built once for the class, framework-dependent (<c>--jit</c>, seconds; the native AOT publish takes minutes on two
/// cores and is measured in bench/footprint); <c>STEWARD_TEST_DEB</c> names a .deb to check instead (e.g. the AOT one).
/// Missing tools (dpkg-deb, systemd-analyze, man) fail the tests: scripts/install-deps.sh installs them. In the second
/// cluster collection: one test runs a 3-node cluster from the installed program.
/// </summary>
[Collection(ClusterCollectionB.Name)]
public sealed class PackageTests(PackageFixture package, ITestOutputHelper output) : IClassFixture<PackageFixture>
{
    [Fact]
    public async Task Package_holds_the_binary_the_example_configs_the_units_and_the_man_page()
    {
        var (_, listing) = await Run("dpkg-deb", ["--contents", package.Deb]);
        foreach (var path in new[]
        {
            "./usr/bin/steward", "./etc/steward/node.yml", "./etc/steward/router.yml",
            "./lib/systemd/system/steward@.service", "./lib/systemd/system/steward-router.service",
            "./usr/share/man/man1/steward.1.gz",
        })
        {
            Assert.Matches($@"(?m)^\S+ root/root .* {System.Text.RegularExpressions.Regex.Escape(path)}$", listing);
        }

        var (_, control) = await Run("dpkg-deb", ["--field", package.Deb, "Package", "Version", "Architecture", "Depends"]);
        Assert.Contains("Package: steward", control, StringComparison.Ordinal);
        Assert.Contains("Architecture: amd64", control, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^Version: \d+\.\d+\.\d+", control);
        Assert.Contains("libc6", control, StringComparison.Ordinal);

        // The examples are conffiles: an upgrade never overwrites what the operator edited.
        var conffiles = await File.ReadAllTextAsync(Path.Combine(package.Control, "conffiles"));
        Assert.Contains("/etc/steward/node.yml", conffiles, StringComparison.Ordinal);
        Assert.Contains("/etc/steward/router.yml", conffiles, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Postinst_creates_nothing_destructive_and_enables_nothing()
    {
        var postinst = await File.ReadAllTextAsync(Path.Combine(package.Control, "postinst"));
        Assert.DoesNotContain("systemctl enable", postinst, StringComparison.Ordinal);
        Assert.DoesNotContain("systemctl start", postinst, StringComparison.Ordinal);
        Assert.DoesNotContain("rm ", postinst, StringComparison.Ordinal);
        Assert.Contains("[ ! -e /var/lib/steward ]", postinst, StringComparison.Ordinal);
        var (_, syntax) = await Run("sh", ["-n", Path.Combine(package.Control, "postinst")]);
        Assert.Equal("", syntax);
    }

    [Fact]
    public async Task Installed_steward_runs_from_the_unpacked_package()
    {
        var steward = Path.Combine(package.Root, "usr/bin/steward");
        var (_, version) = await Run(steward, ["version"]);
        Assert.Matches(@"^steward \d+\.\d+\.\d+", version);
        var (_, dashVersion) = await Run(steward, ["--version"]);
        Assert.StartsWith(version.Split(' ')[1].Trim(), dashVersion.Trim(), StringComparison.Ordinal); // --version adds +commit
        var (_, help) = await Run(steward, ["--help"]);
        Assert.Contains("switchover", help, StringComparison.Ordinal);
        Assert.Contains("router", help, StringComparison.Ordinal);

        // The native package's router-only executable (what `steward router` hands over to): its version, and a clear
        // usage error for arguments it does not take.
        var routerOnly = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(steward)!, Steward.RouterExec.RelativePath));
        if (File.Exists(routerOnly))
        {
            var (_, routerVersion) = await Run(routerOnly, ["--version"]);
            Assert.Equal($"steward-router {version.Split(' ')[1].Trim()}", routerVersion.Trim());
            foreach (var bad in new[] { Array.Empty<string>(), ["--config"], ["-x", "router.yml"], ["--config", "a.yml", "extra"] })
            {
                var (exit, usage) = await Run(routerOnly, bad, check: false);
                Assert.Equal(2, exit);
                Assert.Contains("usage: steward-router --config ROUTER.YML", usage, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task Installed_steward_runs_a_three_node_cluster_from_the_example_config_and_switches_over()
    {
        // /etc/steward/node.yml as an operator adjusts it (the lines marked CHANGE, and this host's ports and paths),
        // each agent and the CLI being the installed /usr/bin/steward.
        var steward = Path.Combine(package.Root, "usr/bin/steward");
        var example = await File.ReadAllTextAsync(Path.Combine(package.Root, "etc/steward/node.yml"));
        var options = new ClusterOptions { Binary = steward, NodeConfig = slot => AdjustExample(example, slot) };
        var (cluster, leader) = await TestCluster.StartHealthyAsync(output, 3, options);
        await using var _ = cluster;
        var candidate = cluster.Nodes.First(n => n != leader);

        var (switched, text) = await Run(steward, ["switchover", "-c", candidate.ConfigPath, "--leader", leader.Name, "--candidate", candidate.Name, "--force"]);
        Assert.Equal(0, switched);
        Assert.Matches($@"\| {candidate.Name} +\| [^|]+\| Leader ", text);
        Assert.Equal(candidate.Name, (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30))).Name);
        await cluster.WaitForStreamingAsync(leader, TimeSpan.FromSeconds(60));
    }

    /// <summary>
    /// The example with this node's name, ports, etcd, data directory, socket directory and networks; each line must be
    /// found exactly once, so that a changed example fails here instead of running something else.
    /// </summary>
    private static string AdjustExample(string example, NodeSlot slot)
    {
        var text = example;
        void Replace(string pattern, string replacement)
        {
            var matches = System.Text.RegularExpressions.Regex.Matches(text, pattern, System.Text.RegularExpressions.RegexOptions.Multiline);
            Assert.True(matches.Count == 1, $"the example node.yml has {matches.Count} lines matching {pattern}, expected one");
            text = System.Text.RegularExpressions.Regex.Replace(text, pattern, replacement, System.Text.RegularExpressions.RegexOptions.Multiline);
        }

        Replace(@"^scope: main\b", $"scope: {slot.Scope}");
        Replace(@"^name: db1\b", $"name: {slot.Name}");
        Replace(@"^(  )listen: 0\.0\.0\.0:8008", $"$1listen: 127.0.0.1:{slot.RestPort}");
        Replace(@"^(  )connect_address: 192\.0\.2\.11:8008", $"$1connect_address: 127.0.0.1:{slot.RestPort}");
        Replace(@"^(  )hosts: 192\.0\.2\.11:2379,192\.0\.2\.12:2379,192\.0\.2\.13:2379", $"$1hosts: {slot.Etcd}");
        Replace(@"^(  )listen: 0\.0\.0\.0:5432", $"$1listen: 127.0.0.1:{slot.PgPort}");
        Replace(@"^(  )connect_address: 192\.0\.2\.11:5432", $"$1connect_address: 127.0.0.1:{slot.PgPort}");
        Replace(@"^(  )data_dir: /var/lib/steward/data", $"$1data_dir: {slot.Dir}/data\n$1pgpass: {slot.Dir}/pgpass");
        Replace(@"^(      )username: postgres$", $"$1username: {TestCluster.Superuser}\n$1password: {TestCluster.SuperPassword}");
        Replace(@"^(    - host replication replicator )192\.0\.2\.0/24", "${1}127.0.0.1/32");
        Replace(@"^(    - host all all )192\.0\.2\.0/24", "${1}127.0.0.1/32");
        Replace(@"^(    )unix_socket_directories: /var/run/postgresql", $"$1unix_socket_directories: {slot.Dir}");
        Replace(@"^(    )shared_buffers: 128MB", "${1}shared_buffers: 32MB");
        return text;
    }

    [Fact]
    public void Example_configurations_load_without_errors()
    {
        // Loaded as the installed program loads them: an unknown or wrong key would stop start-up.
        var node = ConfigLoader.Load(Path.Combine(package.Root, "etc/steward/node.yml"), new Dictionary<string, string?>());
        Assert.Equal("db1", node.Name);
        Assert.Equal("main", node.Scope);
        var router = RouterConfigLoader.Load(Path.Combine(package.Root, "etc/steward/router.yml"), new Dictionary<string, string?>());
        Assert.Equal("main", router.Scope);
    }

    [Fact]
    public async Task Man_page_renders_and_lists_the_commands()
    {
        var page = Path.Combine(package.Root, "usr/share/man/man1/steward.1.gz");
        await using (var gz = new GZipStream(File.OpenRead(page), CompressionMode.Decompress))
        using (var reader = new StreamReader(gz, Encoding.UTF8))
        {
            var roff = await reader.ReadToEndAsync();
            Assert.StartsWith(".TH STEWARD 1", roff, StringComparison.Ordinal);
            Assert.DoesNotContain("@HELP@", roff, StringComparison.Ordinal);
        }

        var (_, text) = await Run("man", ["--warnings", "-l", page], environment: new() { ["MANWIDTH"] = "100", ["MAN_KEEP_FORMATTING"] = "" });
        Assert.Contains("steward node", text, StringComparison.Ordinal);
        Assert.Contains("switchover", text, StringComparison.Ordinal);
        Assert.Contains("/etc/steward/NAME.yml", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Units_pass_systemd_analyze_verify_and_run_the_agent_as_postgres_from_the_instance_config()
    {
        var units = Path.Combine(package.Root, "lib/systemd/system");
        var agent = await File.ReadAllTextAsync(Path.Combine(units, "steward@.service"));
        Assert.Contains("\nUser=postgres\n", agent, StringComparison.Ordinal);
        Assert.Contains("\nRestart=always\n", agent, StringComparison.Ordinal);
        Assert.Contains("\nExecStart=/usr/bin/steward node -c /etc/steward/%i.yml\n", agent, StringComparison.Ordinal);
        var router = await File.ReadAllTextAsync(Path.Combine(units, "steward-router.service"));
        Assert.Contains("\nExecStart=/usr/bin/steward router -c /etc/steward/router.yml\n", router, StringComparison.Ordinal);

        var (exit, text) = await Verify(package.Root, ["steward@db1.service", "steward-router.service"]);
        Assert.True(exit == 0 && text.Length == 0, $"systemd-analyze verify: exit {exit}\n{text}");
    }

    [Fact]
    public async Task Systemd_analyze_verify_fails_on_a_broken_unit()
    {
        // The check above can fail: a unit with a wrong directive value, in a copy of the installed tree.
        using var copy = new TempDir("badunit");
        await Run("cp", ["-a", package.Root + "/.", copy.Path]);
        var unit = Path.Combine(copy.Path, "lib/systemd/system/steward@.service");
        await File.WriteAllTextAsync(unit, (await File.ReadAllTextAsync(unit)).Replace("Restart=always", "Restart=sometimes", StringComparison.Ordinal));

        // verify exits 0 on a value it ignores, but says so: the check above wants no output at all.
        var (exit, text) = await Verify(copy.Path, ["steward@db1.service"]);
        Assert.False(exit == 0 && text.Length == 0, "systemd-analyze verify found nothing wrong with Restart=sometimes");
        Assert.Contains("sometimes", text, StringComparison.Ordinal);
    }

    /// <summary>
    /// <c>systemd-analyze verify --root</c> on the unpacked package, with the host's own units copied beside ours (the
    /// targets they name) and the package's man page on MANPATH (verify checks <c>Documentation=man:</c> too).
    /// </summary>
    private async Task<(int Exit, string Output)> Verify(string root, string[] unitNames)
    {
        var units = Path.Combine(root, "lib/systemd/system");
        await Run("sh", ["-c", $"cp -rn /lib/systemd/system/. '{units}/'"]);
        return await Run("systemd-analyze", ["verify", "--root=" + root, .. unitNames.Select(u => Path.Combine(units, u))],
            check: false, environment: new() { ["MANPATH"] = Path.Combine(root, "usr/share/man") });
    }

    private async Task<(int Exit, string Output)> Run(string program, IReadOnlyList<string> args, bool check = true, Dictionary<string, string>? environment = null)
    {
        var result = await PackageFixture.RunAsync(program, args, environment);
        output.WriteLine($"$ {program} {string.Join(' ', args)} → {result.Exit}\n{result.Output}");
        if (check && result.Exit != 0)
        {
            Assert.Fail($"{program} {string.Join(' ', args)} exited {result.Exit}:\n{result.Output}");
        }

        return result;
    }
}

/// <summary>Builds the package once (scripts/package.sh --jit) and unpacks it: dpkg -x for the files, -e for the control files.</summary>
public sealed class PackageFixture : IAsyncLifetime
{
    private readonly TempDir _dir = new("package");

    public string Deb { get; private set; } = "";
    public string Root => _dir.Sub("root");
    public string Control => _dir.Sub("control");

    public async Task InitializeAsync()
    {
        if (Environment.GetEnvironmentVariable("STEWARD_TEST_DEB") is { Length: > 0 } given)
        {
            Deb = given;
        }
        else
        {
            // The Release build the tests run next to (scripts/test.sh builds it), packaged as it is: no second publish.
            var root = RepoRoot();
            var build = Path.Combine(root, "src", "Steward", "bin", "Release", "net10.0");
            string[] from = File.Exists(Path.Combine(build, "steward.dll")) ? ["--from", build] : [];
            var (exit, text) = await RunAsync(Path.Combine(root, "scripts", "package.sh"), ["--jit", .. from, "--out", _dir.Sub("dist")], null, TimeSpan.FromMinutes(8));
            if (exit != 0)
            {
                throw new InvalidOperationException($"scripts/package.sh --jit exited {exit}:\n{text}");
            }

            // The .deb's path is the last line of standard output (progress goes to standard error).
            Deb = text.Split('\n').Last(l => l.StartsWith('/') && l.EndsWith(".deb", StringComparison.Ordinal));
        }

        foreach (var (args, what) in new[] { (new[] { "-x", Deb, Root }, "dpkg -x"), (new[] { "-e", Deb, Control }, "dpkg -e") })
        {
            var (exit, text) = await RunAsync("dpkg", args, null);
            if (exit != 0)
            {
                throw new InvalidOperationException($"{what} exited {exit}:\n{text}");
            }
        }
    }

    public Task DisposeAsync()
    {
        _dir.Dispose();
        return Task.CompletedTask;
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Steward.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no Steward.slnx above {AppContext.BaseDirectory}");
    }

    /// <summary>Runs a program to its end; a missing program is a failure (Win32Exception), never a skip.</summary>
    internal static async Task<(int Exit, string Output)> RunAsync(string program, IReadOnlyList<string> args, Dictionary<string, string>? environment, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment ?? [])
        {
            psi.Environment[k] = v;
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in time");
        }

        return (p.ExitCode, await stdout + await stderr);
    }
}
