using System.Security.Cryptography;
using AttestBroker.Cli;
using AttestBroker.Models;
using NUnit.Framework;

namespace AttestBroker.Agent.Tests.EndToEnd;

/// <summary>
/// <c>attestbroker node fetch-model --broker</c> against the real HTTPS broker with simulated evidence: the model key is
/// released to the attested helper and used in memory; a denial leaves nothing behind. (Tests of the node helper itself
/// are in tests/AttestBroker.Cli.Tests/Node; this file only adds the broker path.)
/// </summary>
[NonParallelizable]
public sealed class NodeFetchModelEndToEndTests
{
    private string _root = null!;
    private string _out = null!;
    private byte[] _plain = null!;

    [SetUp]
    public void Model()
    {
        if (!Directory.Exists("/dev/shm") || !MemoryVolume.IsMemoryBacked("/dev/shm"))
        {
            Assert.Ignore("/dev/shm is not a tmpfs on this machine");
        }

        _root = Directory.CreateTempSubdirectory("ab-node-e2e-").FullName;
        _out = Path.Combine("/dev/shm", "ab-node-e2e-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(_root, "plain"));
        _plain = RandomNumberGenerator.GetBytes((2 * ModelFileHeader.MinSegmentSize) + 99);
        File.WriteAllBytes(Path.Combine(_root, "plain", "model.safetensors"), _plain);
    }

    [TearDown]
    public void Remove()
    {
        foreach (var d in new[] { _root, _out })
        {
            if (d is not null && Directory.Exists(d))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    private string Encrypt(string keyId)
    {
        var enc = Path.Combine(_root, "enc-" + keyId);
        using var key = ModelKey.FromBytes(AgentBroker.KeyBytes(keyId));
        ModelEncryptor.EncryptDirectoryAsync(Path.Combine(_root, "plain"), enc, key, keyId).GetAwaiter().GetResult();
        return enc;
    }

    private static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await CliApp.RunAsync(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private string[] FetchArgs(string model, string keyId) =>
        ["node", "fetch-model", "--model", model, "--key-id", keyId, "--out", _out, "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile, "--evidence", "sim:" + AgentBroker.SimUrl, "--progress", "none"];

    [Test]
    public async Task A_released_key_decrypts_the_model_into_tmpfs_without_a_key_file()
    {
        var enc = Encrypt(AgentBroker.TdxKey);
        var (exit, stdout, stderr) = await RunAsync(FetchArgs(enc, AgentBroker.TdxKey));
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllBytes(Path.Combine(_out, "model.safetensors")), Is.EqualTo(_plain));
            Assert.That(Directory.GetFiles(_out), Has.Length.EqualTo(1), "only the model file: the key is never written");
            Assert.That(stdout, Does.Contain("fetched 1 files"));
        });
    }

    [Test]
    public async Task Model_decrypt_with_broker_gets_the_key_the_same_way()
    {
        var enc = Encrypt(AgentBroker.TdxKey);
        var (exit, _, stderr) = await RunAsync("model", "decrypt", enc, "--key-id", AgentBroker.TdxKey, "--out", _out, "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile, "--evidence", "sim:" + AgentBroker.SimUrl);
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(File.ReadAllBytes(Path.Combine(_out, "model.safetensors")), Is.EqualTo(_plain));
    }

    [Test]
    public async Task A_denied_key_exits_1_with_the_failing_rule_and_nothing_is_written()
    {
        var enc = Encrypt(AgentBroker.WrongMrTdKey);
        var (exit, _, stderr) = await RunAsync(FetchArgs(enc, AgentBroker.WrongMrTdKey));
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("denied").And.Contain("tdx.mrTd"));
            Assert.That(Directory.Exists(_out) ? Directory.GetFileSystemEntries(_out) : [], Is.Empty);
        });
    }

    [Test]
    public async Task A_model_under_another_key_than_the_released_one_is_refused_with_exit_1_and_nothing_left()
    {
        // The broker releases agent-tdx-2's key for a model whose files name agent-tdx: the key id check refuses it.
        var enc = Encrypt(AgentBroker.TdxKey);
        var (exit, _, stderr) = await RunAsync(FetchArgs(enc, AgentBroker.TdxKey2));
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1), stderr);
            Assert.That(stderr, Does.Contain("[KeyIdMismatch]"));
            Assert.That(Directory.Exists(_out) ? Directory.GetFileSystemEntries(_out) : [], Is.Empty);
        });
    }
}
