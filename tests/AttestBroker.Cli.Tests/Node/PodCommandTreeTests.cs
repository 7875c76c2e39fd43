using System.CommandLine;
using AttestBroker.Testing;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Node;

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
        var (exit, stdout, stderr) = await CliRunner.RunPodAsync("model", "decrypt", _model.Encrypted, "--key-file", _model.KeyFile, "--publisher-key", _model.PublisherKey, "--out", dest, "--allow-disk");
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
        PodModel.AssertRefused(await CliRunner.RunPodAsync("model", "decrypt", _model.Tampered(), "--key-file", _model.KeyFile, "--out", dest, "--allow-disk"), dest, "SegmentAuthenticationFailed");
    }

    [Test]
    public async Task Encrypting_is_not_among_its_commands()
    {
        var (exit, _, stderr) = await CliRunner.RunPodAsync("model", "encrypt", _model.Root, "--key-id", "m1", "--key-file", _model.KeyFile, "--out", Path.Combine(_model.Root, "never"));
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain("'encrypt'"));
            Assert.That(Directory.Exists(Path.Combine(_model.Root, "never")), Is.False);
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
