using System.Net;
using System.Net.Sockets;
using AttestBroker.Agent.Broker;
using AttestBroker.Agent.Providers;
using AttestBroker.Cli;
using AttestBroker.Evidence;
using NUnit.Framework;

namespace AttestBroker.Agent.Tests.EndToEnd;

/// <summary><c>attestbroker agent fetch-key</c> and <see cref="KeyFetcher"/> against a real broker over HTTPS, with simulated evidence.</summary>
[NonParallelizable]
public sealed class FetchKeyEndToEndTests
{
    private string _out = null!;

    [SetUp]
    public void OutDir()
    {
        if (!Directory.Exists("/dev/shm") || !Models.MemoryVolume.IsMemoryBacked("/dev/shm"))
        {
            Assert.Ignore("/dev/shm is not a tmpfs on this machine; the memory-backed destination tests need one");
        }

        _out = Path.Combine("/dev/shm", "ab-agent-test-" + Guid.NewGuid().ToString("N"));
    }

    [TearDown]
    public void RemoveOut()
    {
        if (_out is not null && Directory.Exists(_out))
        {
            Directory.Delete(_out, recursive: true);
        }
    }

    private static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await CliApp.RunAsync(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private string[] FetchArgs(params string[] extra) =>
        ["agent", "fetch-key", "--broker", AgentBroker.BrokerUrl, "--ca-cert", AgentBroker.CaFile, "--evidence", "sim:" + AgentBroker.SimUrl, "--out", _out, .. extra];

    [Test]
    public async Task Granted_tdx_keys_are_written_mode_0400_with_the_key_bytes()
    {
        var (exit, stdout, stderr) = await RunAsync(FetchArgs("--key-id", AgentBroker.TdxKey, "--key-id", AgentBroker.TdxKey2));

        Assert.That(exit, Is.EqualTo(0), stderr);
        foreach (var id in new[] { AgentBroker.TdxKey, AgentBroker.TdxKey2 })
        {
            var file = Path.Combine(_out, id);
            Assert.Multiple(() =>
            {
                Assert.That(File.ReadAllBytes(file), Is.EqualTo(AgentBroker.KeyBytes(id)));
                Assert.That(File.GetUnixFileMode(file), Is.EqualTo(UnixFileMode.UserRead));
            });
        }

        Assert.That(Directory.GetFiles(_out).Select(Path.GetFileName), Is.EquivalentTo(new[] { AgentBroker.TdxKey, AgentBroker.TdxKey2 }), "no temporary file is left");
        Assert.That(stdout, Does.Contain("released " + AgentBroker.TdxKey).And.Contain("SIMULATED"));
    }

    [Test]
    public async Task Granted_snp_key_with_a_p384_ephemeral_key()
    {
        var (exit, _, stderr) = await RunAsync(FetchArgs("--key-id", AgentBroker.SnpKey, "--tee", "sev-snp", "--key-type", "p384"));
        Assert.That(exit, Is.EqualTo(0), stderr);
        Assert.That(File.ReadAllBytes(Path.Combine(_out, AgentBroker.SnpKey)), Is.EqualTo(AgentBroker.KeyBytes(AgentBroker.SnpKey)));
    }

    [Test]
    public async Task Denied_key_exits_1_with_the_brokers_reason_and_failing_rules_and_writes_nothing()
    {
        var (exit, _, stderr) = await RunAsync(FetchArgs("--key-id", AgentBroker.WrongMrTdKey));
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("denied").And.Contain("policy-denied"));
            Assert.That(stderr, Does.Contain("measurement_mismatch").And.Contain("tdx.mrTd"));
            Assert.That(Directory.Exists(_out) ? Directory.GetFiles(_out) : [], Is.Empty);
        });
    }

    [Test]
    public async Task Unknown_key_exits_1_naming_the_problem()
    {
        var (exit, _, stderr) = await RunAsync(FetchArgs("--key-id", "no-such-key"));
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("unknown-key"));
    }

    [Test]
    public async Task Broker_down_is_retried_then_exits_3()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var (exit, _, stderr) = await RunAsync("agent", "fetch-key", "--broker", $"https://127.0.0.1:{port}/", "--ca-cert", AgentBroker.CaFile, "--evidence", "sim:" + AgentBroker.SimUrl, "--out", _out, "--key-id", AgentBroker.TdxKey, "--retries", "2");
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(3));
            Assert.That(stderr, Does.Contain("retry 1/2").And.Contain("retry 2/2"));
            Assert.That(stderr, Does.Contain("unavailable after 3 attempt(s)"));
        });
    }

    [Test]
    public async Task Broker_certificate_not_pinned_is_refused_without_retrying()
    {
        var (exit, _, stderr) = await RunAsync("agent", "fetch-key", "--broker", AgentBroker.BrokerUrl, "--evidence", "sim:" + AgentBroker.SimUrl, "--out", _out, "--key-id", AgentBroker.TdxKey);
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.EqualTo(1));
            Assert.That(stderr, Does.Contain("TLS").And.Contain("--ca-cert"));
            Assert.That(stderr, Does.Not.Contain("retry"));
        });
    }

    [Test]
    public async Task Disk_backed_destination_is_refused_before_contacting_the_broker()
    {
        var disk = Directory.CreateTempSubdirectory("ab-agent-disk-").FullName;
        try
        {
            if (Models.MemoryVolume.IsMemoryBacked(disk))
            {
                Assert.Ignore("the temporary directory is memory-backed here");
            }

            var (exit, _, stderr) = await RunAsync("agent", "fetch-key", "--broker", "https://127.0.0.1:1/", "--out", disk, "--key-id", AgentBroker.TdxKey, "--evidence", "sim:" + AgentBroker.SimUrl);
            Assert.That(exit, Is.EqualTo(2));
            Assert.That(stderr, Does.Contain("not tmpfs or ramfs").And.Contain("--allow-disk"));
            Assert.That(Directory.GetFiles(disk), Is.Empty);
        }
        finally
        {
            Directory.Delete(disk, recursive: true);
        }
    }

    [TestCase("--retries", "101", "--retries")]
    [TestCase("--evidence", "tpm", "not one of")]
    [TestCase("--tee", "sev-snp", "--tee applies to --evidence sim:URL only")]
    [TestCase("--ca-cert", "/no/such/file.pem", "--ca-cert")]
    public async Task Usage_errors_exit_2(string option, string value, string message)
    {
        var args = new List<string> { "agent", "fetch-key", "--broker", AgentBroker.BrokerUrl, "--out", _out, "--key-id", AgentBroker.TdxKey, option, value };
        if (option == "--tee")
        {
            args.AddRange(["--evidence", "configfs"]);
        }

        var (exit, _, stderr) = await RunAsync([.. args]);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain(message));
    }

    [Test]
    public async Task Out_path_that_is_a_file_is_refused_before_contacting_the_broker()
    {
        Directory.CreateDirectory(_out);
        var file = Path.Combine(_out, "not-a-dir");
        await File.WriteAllTextAsync(file, "x");
        var (exit, _, stderr) = await RunAsync("agent", "fetch-key", "--broker", "https://127.0.0.1:1/", "--out", file, "--key-id", AgentBroker.TdxKey, "--evidence", "sim:" + AgentBroker.SimUrl);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("is a file, not a directory"));
    }

    [Test]
    public async Task Key_ids_that_would_share_a_file_name_are_refused()
    {
        var (exit, _, stderr) = await RunAsync(FetchArgs("--key-id", "a/b", "--key-id", "a:b"));
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("would both be written as a_b"));
    }

    [Test]
    public async Task Configfs_provider_with_the_test_kernel_gets_a_key_from_the_broker()
    {
        var root = Directory.CreateTempSubdirectory("ab-tsm-e2e-").FullName;
        try
        {
            using var kernel = new TsmKernelEmulator(AgentBroker.Env.Pki, TeeKind.Tdx);
            var provider = new ConfigfsTsmProvider(root) { Kernel = kernel };
            using var client = new BrokerClient(new BrokerClientOptions
            {
                BaseAddress = new Uri(AgentBroker.BrokerUrl),
                TrustedCertificates = BrokerClient.LoadTrustedCertificates(AgentBroker.CaFile),
            });

            using var keys = await new KeyFetcher(client, provider).FetchAsync(new KeyFetchRequest { KeyIds = [AgentBroker.TdxKey] }, CancellationToken.None);

            Assert.Multiple(() =>
            {
                Assert.That(keys.GetKey(AgentBroker.TdxKey).ToArray(), Is.EqualTo(AgentBroker.KeyBytes(AgentBroker.TdxKey)));
                Assert.That(keys.Provider, Is.EqualTo("configfs-tsm"));
                Assert.That(keys.Tee, Is.EqualTo(TeeKind.Tdx));
                Assert.That(keys.Token, Is.Not.Null.And.Not.Empty);
            });
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Test]
    public async Task Broker_client_gets_further_keys_with_the_result_token_and_the_same_key()
    {
        using var client = new BrokerClient(new BrokerClientOptions
        {
            BaseAddress = new Uri(AgentBroker.BrokerUrl),
            TrustedCertificates = BrokerClient.LoadTrustedCertificates(AgentBroker.CaFile),
        });
        using var provider = new SimulatorProvider(new Uri(AgentBroker.SimUrl), TeeKind.Tdx);
        using var podKey = System.Security.Cryptography.ECDiffieHellman.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var jwk = Protocol.Jwk.FromPublicKey(podKey);

        var challenge = await client.ChallengeAsync(TeeKind.Tdx, CancellationToken.None);
        var evidence = await provider.GetEvidenceAsync(Protocol.ReportDataBinding.Compute(challenge.Nonce, jwk), CancellationToken.None);
        var first = await client.AttestOnceAsync(challenge.Challenge, evidence.Bytes, jwk, [AgentBroker.TdxKey], null, CancellationToken.None);
        var more = await client.KeysAsync(first.Token!, jwk, [AgentBroker.TdxKey2], CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(first.Simulated, Is.True);
            Assert.That(first.TokenExpiresAt, Is.Not.Null);
            Assert.That(more.Token, Is.Null, "no new token from /v1/keys");
            Assert.That(Protocol.JweDecryptor.Decrypt(more.Keys.Single().Jwe, podKey), Is.EqualTo(AgentBroker.KeyBytes(AgentBroker.TdxKey2)));
        });

        using var otherKey = System.Security.Cryptography.ECDiffieHellman.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var refused = Assert.ThrowsAsync<BrokerProblemException>(() => client.KeysAsync(first.Token!, Protocol.Jwk.FromPublicKey(otherKey), [AgentBroker.TdxKey2], CancellationToken.None))!;
        Assert.That((refused.Status, refused.Code, refused.ProtocolError), Is.EqualTo((401, "token-invalid", "TokenConfirmationMismatch")));
    }

    [Test]
    public async Task Rsa3072_ephemeral_key_through_the_simulator_provider()
    {
        using var client = new BrokerClient(new BrokerClientOptions
        {
            BaseAddress = new Uri(AgentBroker.BrokerUrl),
            TrustedCertificates = BrokerClient.LoadTrustedCertificates(AgentBroker.CaFile),
        });
        using var provider = new SimulatorProvider(new Uri(AgentBroker.SimUrl), TeeKind.Tdx);
        using var keys = await new KeyFetcher(client, provider).FetchAsync(new KeyFetchRequest { KeyIds = [AgentBroker.TdxKey], KeyAlgorithm = EphemeralKeyAlgorithm.Rsa3072 }, CancellationToken.None);
        Assert.That(keys.GetKey(AgentBroker.TdxKey).ToArray(), Is.EqualTo(AgentBroker.KeyBytes(AgentBroker.TdxKey)));
    }
}
