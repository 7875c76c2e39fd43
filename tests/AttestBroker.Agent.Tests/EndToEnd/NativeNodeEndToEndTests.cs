using System.Diagnostics;
using System.Security.Cryptography;
using AttestBroker.Models;
using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Agent.Tests.EndToEnd;

/// <summary>
/// <c>dotnet publish src/AttestBroker.Node -c Release</c> compiles ahead of time, with every trimming and AOT warning an
/// error, into one native executable that attests, fetches keys, decrypts and refuses exactly like the managed build,
/// here against the real HTTPS broker and the simulator of this namespace's <see cref="AgentBroker"/>. Needs a C
/// linker (clang or gcc; .ci/run installs gcc); without one the fixture is skipped and says so. The in-process tests of
/// the same command tree are in tests/AttestBroker.Cli.Tests/Node.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class Attestbroker_node_publishes_as_a_native_executable
{
    private PodModel _model = null!;
    private string _work = null!;
    private string _exe = null!;

    [OneTimeSetUp]
    public async Task Publish()
    {
        var linker = new[] { "clang", "gcc" }.FirstOrDefault(OnPath);
        if (linker is null)
        {
            Assert.Ignore("no C linker on PATH (clang or gcc): native AOT cannot link here, so the native attestbroker-node is not tested; install gcc (Debian: apt-get install gcc) to run it");
        }

        _model = new PodModel("ab-pod-native-");
        _work = Directory.CreateTempSubdirectory("ab-node-publish-").FullName;
        var output = Path.Combine(_work, "out");
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "publish", Path.Combine(TestPaths.RepoRoot, "src", "AttestBroker.Node"), "-c", "Release", "-o", output, "-nologo" })
        {
            info.ArgumentList.Add(a);
        }

        // Its own build tree, apart from the one these tests run from.
        info.Environment["ATTESTBROKER_ARTIFACTS"] = Path.Combine(_work, "artifacts");
        var (exit, stdout, stderr) = await RunAsync(info, TimeSpan.FromMinutes(10));
        Assert.That(exit, Is.Zero, "dotnet publish src/AttestBroker.Node failed:\n" + stdout + stderr);
        _exe = Path.Combine(output, "attestbroker-node");
    }

    [OneTimeTearDown]
    public void CleanUp()
    {
        _model?.Dispose();
        if (_work is not null)
        {
            Directory.Delete(_work, recursive: true);
        }
    }

    private static bool OnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries).Any(d => File.Exists(Path.Combine(d, name)));

    private static async Task<(int Exit, string Out, string Err)> RunAsync(ProcessStartInfo info, TimeSpan timeout)
    {
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{info.FileName} did not finish within {timeout}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private Task<(int Exit, string Out, string Err)> RunNodeAsync(params string[] args)
    {
        var info = new ProcessStartInfo(_exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        return RunAsync(info, TimeSpan.FromMinutes(2));
    }

    [Test]
    public void The_output_is_one_native_executable_without_managed_assemblies()
    {
        var output = Path.GetDirectoryName(_exe)!;
        var magic = new byte[4];
        using (var file = File.OpenRead(_exe))
        {
            file.ReadExactly(magic);
        }

        Assert.Multiple(() =>
        {
            Assert.That(magic, Is.EqualTo(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }));
            Assert.That(Directory.GetFiles(output, "*.dll"), Is.Empty);
            Assert.That(File.Exists(Path.Combine(output, "attestbroker-node.runtimeconfig.json")), Is.False);
        });
    }

    [Test]
    public async Task It_decrypts_a_signed_model_identically_to_the_managed_build()
    {
        var dest = Path.Combine(_work, "dest-" + Guid.NewGuid().ToString("N"));
        var (exit, stdout, stderr) = await RunNodeAsync("model", "decrypt", _model.Encrypted, "--key-file", _model.KeyFile, "--publisher-key", _model.PublisherKey, "--out", dest, "--allow-disk");
        Assert.That(exit, Is.Zero, stderr);
        Assert.Multiple(() =>
        {
            Assert.That(stdout, Does.Contain("manifest signature verified"));
            Assert.That(File.ReadAllBytes(Path.Combine(dest, "model.safetensors")), Is.EqualTo(_model.Weights));
            Assert.That(File.ReadAllText(Path.Combine(dest, "tokenizer", "tokenizer.json")), Is.EqualTo("{\"version\":\"1.0\"}"));
        });
    }

    [Test]
    public async Task It_refuses_a_tampered_model_and_leaves_nothing()
    {
        var dest = Path.Combine(_work, "dest-" + Guid.NewGuid().ToString("N"));
        PodModel.AssertRefused(await RunNodeAsync("model", "decrypt", _model.Tampered(), "--key-file", _model.KeyFile, "--out", dest, "--allow-disk"), dest, "SegmentAuthenticationFailed");
    }

    [Test]
    public async Task It_refuses_a_manifest_signed_by_another_publisher()
    {
        var other = Path.Combine(_work, "other.pub");
        using (var key = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            await File.WriteAllTextAsync(other, key.ExportSubjectPublicKeyInfoPem());
        }

        var dest = Path.Combine(_work, "dest-" + Guid.NewGuid().ToString("N"));
        PodModel.AssertRefused(await RunNodeAsync("model", "decrypt", _model.Encrypted, "--key-file", _model.KeyFile, "--publisher-key", other, "--out", dest, "--allow-disk"), dest, "ManifestSignatureInvalid");
    }

    [Test]
    public async Task Usage_errors_exit_2_without_a_stack_trace()
    {
        var (exit, _, stderr) = await RunNodeAsync("model", "decrypt", _model.Encrypted, "--out", Path.Combine(_work, "never"), "--workers", "0", "--key-file", _model.KeyFile);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain("--workers"));
            Assert.That(stderr, Does.Not.Contain("   at "));
        });
    }

    [Test]
    public async Task It_attests_and_fetches_a_granted_key_into_a_memory_backed_directory()
    {
        var dest = Path.Combine("/dev/shm", "ab-native-agent-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (exit, stdout, stderr) = await RunNodeAsync("agent", "fetch-key", "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile, "--evidence", "sim:" + AgentBroker.SimUrl, "--out", dest, "--key-id", AgentBroker.TdxKey);
            Assert.That(exit, Is.Zero, stderr);
            var file = Path.Combine(dest, AgentBroker.TdxKey);
            Assert.Multiple(() =>
            {
                Assert.That(File.ReadAllBytes(file), Is.EqualTo(AgentBroker.KeyBytes(AgentBroker.TdxKey)));
                Assert.That(File.GetUnixFileMode(file), Is.EqualTo(UnixFileMode.UserRead));
                Assert.That(stdout, Does.Contain("released " + AgentBroker.TdxKey).And.Contain("SIMULATED"));
            });
        }
        finally
        {
            if (Directory.Exists(dest))
            {
                Directory.Delete(dest, recursive: true);
            }
        }
    }

    [Test]
    public async Task A_denied_key_exits_1_with_the_brokers_reason_and_writes_nothing()
    {
        var dest = Path.Combine("/dev/shm", "ab-native-agent-" + Guid.NewGuid().ToString("N"));
        var (exit, _, stderr) = await RunNodeAsync("agent", "fetch-key", "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile, "--evidence", "sim:" + AgentBroker.SimUrl, "--out", dest, "--key-id", AgentBroker.WrongMrTdKey);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1), stderr);
            Assert.That(stderr, Does.Contain("policy-denied").And.Contain("tdx.mrTd"));
            Assert.That(Directory.Exists(dest) ? Directory.GetFileSystemEntries(dest) : [], Is.Empty);
        });
    }

    [Test]
    public async Task Node_fetch_model_gets_the_key_from_the_broker_and_decrypts_into_tmpfs()
    {
        var plain = Path.Combine(_work, "plain-broker");
        Directory.CreateDirectory(plain);
        var weights = RandomNumberGenerator.GetBytes((2 << 20) + 7);
        await File.WriteAllBytesAsync(Path.Combine(plain, "model.safetensors"), weights);
        var enc = Path.Combine(_work, "enc-broker");
        using (var key = ModelKey.FromBytes(AgentBroker.KeyBytes(AgentBroker.TdxKey)))
        {
            await ModelEncryptor.EncryptDirectoryAsync(plain, enc, key, AgentBroker.TdxKey);
        }

        var dest = Path.Combine("/dev/shm", "ab-native-node-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (exit, _, stderr) = await RunNodeAsync("node", "fetch-model", "--model", enc, "--key-id", AgentBroker.TdxKey, "--out", dest, "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile, "--evidence", "sim:" + AgentBroker.SimUrl, "--progress", "json");
            Assert.That(exit, Is.Zero, stderr);
            Assert.Multiple(() =>
            {
                Assert.That(File.ReadAllBytes(Path.Combine(dest, "model.safetensors")), Is.EqualTo(weights));
                Assert.That(stderr, Does.Contain("\"bytes\":" + weights.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            });
        }
        finally
        {
            if (Directory.Exists(dest))
            {
                Directory.Delete(dest, recursive: true);
            }
        }
    }
}
