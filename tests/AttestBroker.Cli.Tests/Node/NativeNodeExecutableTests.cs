using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Node;

/// <summary>Encrypted models for the attestbroker-node tests, made with <c>attestbroker model encrypt</c>.</summary>
internal sealed class PodModel : IDisposable
{
    public PodModel(string prefix)
    {
        Root = Directory.CreateTempSubdirectory(prefix).FullName;
        var plain = Path.Combine(Root, "plain");
        Directory.CreateDirectory(Path.Combine(plain, "tokenizer"));
        Weights = RandomNumberGenerator.GetBytes((3 << 20) + 1);
        File.WriteAllBytes(Path.Combine(plain, "model.safetensors"), Weights);
        File.WriteAllText(Path.Combine(plain, "tokenizer", "tokenizer.json"), "{\"version\":\"1.0\"}");
        KeyFile = Path.Combine(Root, "model.key");
        File.WriteAllBytes(KeyFile, RandomNumberGenerator.GetBytes(32));
        using var publisher = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var signKey = Path.Combine(Root, "publisher.key");
        File.WriteAllText(signKey, publisher.ExportPkcs8PrivateKeyPem());
        PublisherKey = Path.Combine(Root, "publisher.pub");
        File.WriteAllText(PublisherKey, publisher.ExportSubjectPublicKeyInfoPem());
        Encrypted = Path.Combine(Root, "enc");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = CliApp.RunAsync(["model", "encrypt", plain, "--key-id", "m1", "--key-file", KeyFile, "--out", Encrypted, "--sign-key", signKey], stdout, stderr).GetAwaiter().GetResult();
        if (exit != 0)
        {
            throw new InvalidOperationException("attestbroker model encrypt failed: " + stderr);
        }
    }

    public string Root { get; }

    public byte[] Weights { get; }

    public string KeyFile { get; }

    public string PublisherKey { get; }

    public string Encrypted { get; }

    /// <summary>A copy of the encrypted model with one ciphertext byte of the weights flipped, past the header.</summary>
    public string Tampered()
    {
        var copy = Path.Combine(Root, "tampered");
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(Encrypted))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        var weights = Path.Combine(copy, "model.safetensors.menc");
        var bytes = File.ReadAllBytes(weights);
        bytes[(2 << 20) + 5] ^= 0x01;
        File.WriteAllBytes(weights, bytes);
        return copy;
    }

    /// <summary>A refusal: exit 1, the reason code in the message, and nothing left at the destination.</summary>
    public static void AssertRefused((int Exit, string Out, string Err) result, string destination, string reason)
    {
        Assert.Multiple(() =>
        {
            Assert.That(result.Exit, Is.EqualTo(1), result.Err);
            Assert.That(result.Err, Does.Contain(reason));
            Assert.That(Directory.Exists(destination) ? Directory.GetFileSystemEntries(destination, "*", SearchOption.AllDirectories) : [], Is.Empty);
        });
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}

/// <summary>
/// The command tree of <c>attestbroker-node</c> (src/AttestBroker.Node), run in-process: exactly the pod-side commands,
/// the same options as in <c>attestbroker</c>, and a working decrypt.
/// </summary>
[TestFixture]
public sealed class Attestbroker_node_command_tree
{
    private PodModel _model = null!;

    [OneTimeSetUp]
    public void MakeModel() => _model = new PodModel("ab-pod-tree-");

    [OneTimeTearDown]
    public void RemoveModel() => _model.Dispose();

    private static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await PodCliApp.RunAsync(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static Command Find(Command root, params string[] path)
    {
        var command = root;
        foreach (var name in path)
        {
            command = command.Subcommands.Single(c => c.Name == name);
        }

        return command;
    }

    private static List<string> OptionNames(Command command) =>
        [.. command.Options.SelectMany(o => o.Aliases.Append(o.Name)).Order(StringComparer.Ordinal)];

    [Test]
    public void It_has_exactly_the_pod_side_commands()
    {
        var root = PodCliApp.BuildRoot();
        Assert.Multiple(() =>
        {
            Assert.That(root.Subcommands.Select(c => c.Name), Is.EquivalentTo(new[] { "model", "node", "agent" }));
            Assert.That(Find(root, "model").Subcommands.Select(c => c.Name), Is.EqualTo(new[] { "decrypt" }));
            Assert.That(Find(root, "node").Subcommands.Select(c => c.Name), Is.EqualTo(new[] { "fetch-model" }));
            Assert.That(Find(root, "agent").Subcommands.Select(c => c.Name), Is.EqualTo(new[] { "fetch-key" }));
        });
    }

    [TestCase("model", "decrypt")]
    [TestCase("node", "fetch-model")]
    [TestCase("agent", "fetch-key")]
    public void Each_command_takes_the_same_arguments_and_options_as_in_attestbroker(string group, string name)
    {
        var pod = Find(PodCliApp.BuildRoot(), group, name);
        var full = Find(CliApp.BuildRoot(), group, name);
        Assert.Multiple(() =>
        {
            Assert.That(pod.Description, Is.EqualTo(full.Description));
            Assert.That(pod.Arguments.Select(a => a.Name), Is.EqualTo(full.Arguments.Select(a => a.Name)));
            Assert.That(OptionNames(pod), Is.EqualTo(OptionNames(full)));
            Assert.That(OptionNames(pod), Is.Not.Empty);
        });
    }

    [Test]
    public async Task Decrypts_a_signed_model_as_attestbroker_does()
    {
        var dest = Path.Combine(_model.Root, "dest-" + Guid.NewGuid().ToString("N"));
        var (exit, stdout, stderr) = await RunAsync("model", "decrypt", _model.Encrypted, "--key-file", _model.KeyFile, "--publisher-key", _model.PublisherKey, "--out", dest, "--allow-disk");
        Assert.That(exit, Is.Zero, stderr);
        Assert.Multiple(() =>
        {
            Assert.That(stdout, Does.Contain("decrypted 2 files").And.Contain("manifest signature verified"));
            Assert.That(File.ReadAllBytes(Path.Combine(dest, "model.safetensors")), Is.EqualTo(_model.Weights));
        });
    }

    [Test]
    public async Task Refuses_a_tampered_model_and_leaves_nothing()
    {
        var dest = Path.Combine(_model.Root, "dest-" + Guid.NewGuid().ToString("N"));
        PodModel.AssertRefused(await RunAsync("model", "decrypt", _model.Tampered(), "--key-file", _model.KeyFile, "--out", dest, "--allow-disk"), dest, "SegmentAuthenticationFailed");
    }

    [Test]
    public async Task Encrypting_is_not_among_its_commands()
    {
        var (exit, _, stderr) = await RunAsync("model", "encrypt", _model.Root, "--key-id", "m1", "--key-file", _model.KeyFile, "--out", Path.Combine(_model.Root, "never"));
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain("'encrypt'"));
            Assert.That(Directory.Exists(Path.Combine(_model.Root, "never")), Is.False);
        });
    }
}

/// <summary>
/// <c>dotnet publish src/AttestBroker.Node -c Release</c> compiles ahead of time, with every trimming and AOT warning an
/// error, into one native executable that decrypts and refuses exactly like the managed build. Needs a C linker
/// (clang or gcc; .ci/run installs gcc); without one the fixture is skipped and says so.
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
}

/// <summary><c>model bench --decryptor</c>: a path that is not a file is a usage error before anything is created.</summary>
[TestFixture]
public sealed class Model_bench_decryptor_option
{
    [Test]
    public async Task A_missing_decryptor_exits_2_naming_the_option_and_creates_nothing()
    {
        var cipherDir = Directory.CreateTempSubdirectory("ab-bench-decryptor-").FullName;
        try
        {
            var missing = Path.Combine(cipherDir, "no-such-attestbroker-node");
            var (exit, _, stderr) = await CliRunner.RunAsync("model", "bench", "--size", "1048576", "--runs", "1", "--cipher-dir", cipherDir, "--decryptor", missing);
            Assert.Multiple(() =>
            {
                Assert.That(exit, Is.EqualTo(2));
                Assert.That(stderr, Does.Contain("--decryptor").And.Contain(missing));
                Assert.That(Directory.GetFileSystemEntries(cipherDir), Is.Empty);
            });
        }
        finally
        {
            Directory.Delete(cipherDir, recursive: true);
        }
    }
}
