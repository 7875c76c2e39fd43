using System.Security.Cryptography;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Model;

/// <summary><c>model encrypt --digest</c>: the tree hash the manifest pins, and that decrypt follows whichever it finds.</summary>
[TestFixture]
public sealed class Model_encrypt_digest_option
{
    private string _root = null!;
    private string _plain = null!;
    private string _keyFile = null!;
    private byte[] _weights = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Directory.CreateTempSubdirectory("ab-digest-").FullName;
        _plain = Path.Combine(_root, "plain");
        Directory.CreateDirectory(_plain);
        _weights = RandomNumberGenerator.GetBytes((1 << 20) + 17);
        File.WriteAllBytes(Path.Combine(_plain, "model.safetensors"), _weights);
        _keyFile = Path.Combine(_root, "model.key");
        File.WriteAllBytes(_keyFile, RandomNumberGenerator.GetBytes(32));
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    [TestCase(null, "attestbroker.model-manifest/v3", "ciphertextTreeBlake3")]
    [TestCase("blake3", "attestbroker.model-manifest/v3", "ciphertextTreeBlake3")]
    [TestCase("sha256", "attestbroker.model-manifest/v2", "ciphertextTreeSha256")]
    public async Task Encrypt_pins_the_chosen_tree_hash_and_decrypt_follows_it(string? digest, string format, string field)
    {
        var enc = Path.Combine(_root, "enc");
        string[] args = ["model", "encrypt", _plain, "--key-id", "m1", "--key-file", _keyFile, "--out", enc];
        var (exit, _, stderr) = await CliRunner.RunAsync(digest is null ? args : [.. args, "--digest", digest]);
        Assert.That(exit, Is.Zero, stderr);
        var manifest = await File.ReadAllTextAsync(Path.Combine(enc, "manifest.json"));
        Assert.That(manifest, Does.Contain(format).And.Contain(field));

        var dest = Path.Combine(_root, "dest");
        (exit, _, stderr) = await CliRunner.RunAsync("model", "decrypt", enc, "--key-file", _keyFile, "--out", dest, "--allow-disk");
        Assert.That(exit, Is.Zero, stderr);
        Assert.That(await File.ReadAllBytesAsync(Path.Combine(dest, "model.safetensors")), Is.EqualTo(_weights));
    }

    [Test]
    public async Task An_unknown_digest_is_a_usage_error_naming_both_choices_and_writes_nothing()
    {
        var enc = Path.Combine(_root, "enc");
        var (exit, _, stderr) = await CliRunner.RunAsync("model", "encrypt", _plain, "--key-id", "m1", "--key-file", _keyFile, "--out", enc, "--digest", "md5");
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain("blake3").And.Contain("sha256"));
            Assert.That(Directory.Exists(enc), Is.False);
        });
    }
}
