using System.Security.Cryptography;
using AttestBroker.Cli;
using AttestBroker.Models;
using AttestBroker.Server.Admin;
using NUnit.Framework;

namespace AttestBroker.Agent.Tests.EndToEnd;

/// <summary>
/// <c>attestbroker model encrypt --broker</c> against the real HTTPS broker: a fresh key made in memory encrypts the
/// model and is imported through the admin API; a pod with simulated evidence then gets it released and decrypts.
/// Refusals (a bad token, a role without import rights, a taken key id, no broker) leave nothing at --out and no
/// staging directory beside it.
/// </summary>
[NonParallelizable]
public sealed class ModelEncryptBrokerEndToEndTests
{
    private string _root = null!;
    private string _plain = null!;
    private string _enc = null!;
    private string _shm = null!;
    private Dictionary<string, byte[]> _files = null!;

    [SetUp]
    public void Model()
    {
        if (!Directory.Exists("/dev/shm") || !MemoryVolume.IsMemoryBacked("/dev/shm"))
        {
            Assert.Ignore("/dev/shm is not a tmpfs on this machine");
        }

        _root = Directory.CreateTempSubdirectory("ab-model-import-").FullName;
        _plain = Path.Combine(_root, "plain");
        _enc = Path.Combine(_root, "published", "enc");
        _shm = Path.Combine("/dev/shm", "ab-model-import-" + Guid.NewGuid().ToString("N"));
        _files = new Dictionary<string, byte[]>(StringComparer.Ordinal)
        {
            ["model.safetensors"] = RandomNumberGenerator.GetBytes((2 * ModelFileHeader.MinSegmentSize) + 77),
            ["tokenizer/tokenizer.json"] = RandomNumberGenerator.GetBytes(1234),
            ["config.json"] = [],
        };
        foreach (var (path, data) in _files)
        {
            var full = Path.Combine(_plain, path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllBytes(full, data);
        }
    }

    [TearDown]
    public void Remove()
    {
        foreach (var d in new[] { _root, _shm })
        {
            if (d is not null && Directory.Exists(d))
            {
                Directory.Delete(d, recursive: true);
            }
        }
    }

    private static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await CliApp.RunAsync(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private static string Token(params string[] roles)
    {
        using var key = AdminTokens.LoadOrCreateLocalKey(AgentBroker.Broker.DataDir);
        return AdminTokens.Mint(key, "model-owner", roles, AgentBroker.Broker.Time.GetUtcNow(), TimeSpan.FromMinutes(10));
    }

    private string TokenFile(string token)
    {
        var path = Path.Combine(_root, "token-" + Guid.NewGuid().ToString("N"));
        File.WriteAllText(path, token + "\n");
        return path;
    }

    private static string NewKeyId() => "import-" + Guid.NewGuid().ToString("N")[..12];

    private string[] EncryptArgs(string keyId, string tokenFile, params string[] extra) =>
        ["model", "encrypt", _plain, "--key-id", keyId, "--out", _enc, "--broker", AgentBroker.BrokerUrl, "--token-file", tokenFile, "--ca-cert", AgentBroker.CaFile, .. extra];

    /// <summary>Nothing at --out and nothing else beside it (no staging directory left behind).</summary>
    private void AssertNothingPublished()
    {
        var published = Path.GetDirectoryName(_enc)!;
        var left = Directory.Exists(published) ? Directory.GetFileSystemEntries(published, "*", SearchOption.AllDirectories) : [];
        Assert.That(left, Is.Empty, "nothing may be written at or beside --out");
    }

    [Test]
    public async Task A_model_encrypted_with_broker_is_released_to_a_simulated_pod_and_decrypts_to_the_same_files()
    {
        var keyId = NewKeyId();
        var token = Token(AdminRoles.KeyAdmin, AdminRoles.PolicyAdmin, AdminRoles.Auditor);
        var encrypt = await RunAsync(EncryptArgs(keyId, TokenFile(token)));
        Assert.That(encrypt.Exit, Is.EqualTo(0), encrypt.Err);
        Assert.Multiple(() =>
        {
            Assert.That(encrypt.Out, Does.StartWith($"encrypted 3 files ({_files.Values.Sum(d => d.Length)} bytes) under key id '{keyId}', manifest not signed; imported the key into the broker at "));
            Assert.That(encrypt.Out, Does.Contain("backend embedded, KEK version 1"));
            Assert.That(Directory.GetFileSystemEntries(Path.GetDirectoryName(_enc)!).Select(Path.GetFileName), Is.EqualTo(new[] { "enc" }), "the staging directory was renamed to --out");
            Assert.That(Directory.GetFiles(_enc, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(_enc, f)).Order(StringComparer.Ordinal),
                Is.EqualTo(new[] { "config.json.menc", "manifest.json", "model.safetensors.menc", "tokenizer/tokenizer.json.menc" }), "ciphertext and manifest only: the key is never written");
        });

        var policy = Path.Combine(_root, "policy.yaml");
        await File.WriteAllTextAsync(policy, AgentBroker.Env.TdxPolicy("imported-model"));
        var set = await RunAsync("admin", "policy", "set", "--key", keyId, "--file", policy, "--broker", AgentBroker.BrokerUrl, "--token", token, "--ca-cert", AgentBroker.CaFile);
        Assert.That(set.Exit, Is.EqualTo(0), set.Err);

        var decrypt = await RunAsync("model", "decrypt", _enc, "--key-id", keyId, "--out", _shm, "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile, "--evidence", "sim:" + AgentBroker.SimUrl);
        Assert.That(decrypt.Exit, Is.EqualTo(0), decrypt.Err);
        foreach (var (path, data) in _files)
        {
            Assert.That(File.ReadAllBytes(Path.Combine(_shm, path)), Is.EqualTo(data), path);
        }

        var audit = await RunAsync("admin", "audit", "export", "--broker", AgentBroker.BrokerUrl, "--token", token, "--ca-cert", AgentBroker.CaFile);
        Assert.That(audit.Out, Does.Contain("\"kind\":\"admin.key.import\"").And.Contain(keyId).And.Contain("\"actor\":\"model-owner\""));
    }

    [Test]
    public async Task The_token_can_come_from_ATTESTBROKER_ADMIN_TOKEN()
    {
        var keyId = NewKeyId();
        Environment.SetEnvironmentVariable("ATTESTBROKER_ADMIN_TOKEN", Token(AdminRoles.KeyAdmin));
        try
        {
            var (exit, _, stderr) = await RunAsync("model", "encrypt", _plain, "--key-id", keyId, "--out", _enc, "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile);
            Assert.That(exit, Is.EqualTo(0), stderr);
            Assert.That(File.Exists(Path.Combine(_enc, ModelManifest.FileName)), Is.True);
        }
        finally
        {
            Environment.SetEnvironmentVariable("ATTESTBROKER_ADMIN_TOKEN", null);
        }
    }

    [Test]
    public async Task A_token_the_broker_does_not_trust_exits_1_with_the_problem_and_nothing_is_written()
    {
        using var stranger = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var token = AdminTokens.Mint(stranger, "mallory", [AdminRoles.KeyAdmin], AgentBroker.Broker.Time.GetUtcNow(), TimeSpan.FromMinutes(5));
        var (exit, stdout, stderr) = await RunAsync(EncryptArgs(NewKeyId(), TokenFile(token)));
        Assert.Multiple(() =>
        {
            Assert.That((exit, stdout), Is.EqualTo((1, string.Empty)));
            Assert.That(stderr, Does.StartWith("error: 401 ").And.Contain("(token-invalid)"));
        });
        AssertNothingPublished();
    }

    [Test]
    public async Task A_token_that_may_read_but_not_import_keys_exits_1_with_403_after_encrypting_and_the_ciphertext_is_deleted()
    {
        // An auditor may GET the key (the pre-flight passes), so the model is encrypted; the import is refused.
        var keyId = NewKeyId();
        var (exit, _, stderr) = await RunAsync(EncryptArgs(keyId, TokenFile(Token(AdminRoles.Auditor))));
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.StartWith("error: 403 Role required: this operation needs one of the roles: key-admin (forbidden)"));
        });
        AssertNothingPublished();

        var list = await RunAsync("admin", "key", "list", "--broker", AgentBroker.BrokerUrl, "--token", Token(AdminRoles.Auditor), "--ca-cert", AgentBroker.CaFile);
        Assert.That(list.Exit, Is.EqualTo(0), list.Err);
        Assert.That(list.Out, Does.Contain(AgentBroker.TdxKey).And.Not.Contain(keyId), "no key was imported");
    }

    [Test]
    public async Task An_existing_key_id_is_refused_with_exit_1_the_key_is_not_overwritten_and_nothing_is_written()
    {
        var (exit, stdout, stderr) = await RunAsync(EncryptArgs(AgentBroker.TdxKey, TokenFile(Token(AdminRoles.KeyAdmin))));
        Assert.Multiple(() =>
        {
            Assert.That((exit, stdout), Is.EqualTo((1, string.Empty)));
            Assert.That(stderr, Does.StartWith($"error: key id '{AgentBroker.TdxKey}' already exists in the broker").And.Contain("a new model key needs a new id"));
        });
        AssertNothingPublished();

        // The broker still releases the original key bytes under that id.
        var fetch = await RunAsync("agent", "fetch-key", "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile, "--evidence", "sim:" + AgentBroker.SimUrl, "--out", _shm, "--key-id", AgentBroker.TdxKey);
        Assert.That(fetch.Exit, Is.EqualTo(0), fetch.Err);
        Assert.That(File.ReadAllBytes(Path.Combine(_shm, AgentBroker.TdxKey)), Is.EqualTo(AgentBroker.KeyBytes(AgentBroker.TdxKey)));
    }

    [Test]
    public async Task An_unreachable_broker_exits_2_with_the_message_and_nothing_is_written()
    {
        var (exit, _, stderr) = await RunAsync("model", "encrypt", _plain, "--key-id", NewKeyId(), "--out", _enc, "--broker", "https://127.0.0.1:1", "--token-file", TokenFile(Token(AdminRoles.KeyAdmin)), "--ca-cert", AgentBroker.CaFile);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.StartWith("error: --broker: cannot reach https://127.0.0.1:1/"));
        });
        AssertNothingPublished();
    }

    [Test]
    public async Task A_broker_certificate_that_is_not_trusted_exits_2_before_anything_is_encrypted()
    {
        var (exit, _, stderr) = await RunAsync("model", "encrypt", _plain, "--key-id", NewKeyId(), "--out", _enc, "--broker", AgentBroker.BrokerUrl, "--token-file", TokenFile(Token(AdminRoles.KeyAdmin)));
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.StartWith("error: --broker: cannot reach"));
        });
        AssertNothingPublished();
    }

    private string NonEmptyDirectory()
    {
        var dir = Path.Combine(_root, "full");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "readme"), "x");
        return dir;
    }

    [TestCase("plain-http", "give an https:// URL")]
    [TestCase("no-token", "--token-file FILE or $ATTESTBROKER_ADMIN_TOKEN")]
    [TestCase("empty-token", "does not hold one token")]
    [TestCase("both-sources", "not both")]
    [TestCase("token-without-broker", "--token-file applies to --broker only")]
    [TestCase("bad-broker-key-id", "with --broker the id must be a broker key id")]
    [TestCase("out-not-empty", "exists and is not an empty directory")]
    [TestCase("ca-and-insecure", "--ca-cert and --insecure-skip-tls-verify exclude each other")]
    public async Task A_usage_error_exits_2_with_a_message_and_writes_nothing(string which, string message)
    {
        Environment.SetEnvironmentVariable("ATTESTBROKER_ADMIN_TOKEN", null);
        var tokenFile = TokenFile(Token(AdminRoles.KeyAdmin));
        var keyFile = Path.Combine(_root, "model.key");
        await File.WriteAllTextAsync(keyFile, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        string[] args = which switch
        {
            "plain-http" => ["model", "encrypt", _plain, "--key-id", "k1", "--out", _enc, "--broker", "http://127.0.0.1:1", "--token-file", tokenFile],
            "no-token" => ["model", "encrypt", _plain, "--key-id", "k1", "--out", _enc, "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile],
            "empty-token" => ["model", "encrypt", _plain, "--key-id", "k1", "--out", _enc, "--broker", AgentBroker.BrokerUrl, "--token-file", TokenFile("  "), "--ca-cert", AgentBroker.CaFile],
            "both-sources" => ["model", "encrypt", _plain, "--key-id", "k1", "--out", _enc, "--broker", AgentBroker.BrokerUrl, "--key-file", keyFile],
            "token-without-broker" => ["model", "encrypt", _plain, "--key-id", "k1", "--out", _enc, "--key-file", keyFile, "--token-file", tokenFile],
            "bad-broker-key-id" => ["model", "encrypt", _plain, "--key-id", "models/llama:v1", "--out", _enc, "--broker", AgentBroker.BrokerUrl, "--token-file", tokenFile, "--ca-cert", AgentBroker.CaFile],
            "out-not-empty" => ["model", "encrypt", _plain, "--key-id", "k1", "--out", NonEmptyDirectory(), "--broker", AgentBroker.BrokerUrl, "--token-file", tokenFile, "--ca-cert", AgentBroker.CaFile],
            _ => ["model", "encrypt", _plain, "--key-id", "k1", "--out", _enc, "--broker", AgentBroker.BrokerUrl, "--token-file", tokenFile, "--ca-cert", AgentBroker.CaFile, "--insecure-skip-tls-verify"],
        };
        var (exit, _, stderr) = await RunAsync(args);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain(message));
        });
        AssertNothingPublished();
    }
}
