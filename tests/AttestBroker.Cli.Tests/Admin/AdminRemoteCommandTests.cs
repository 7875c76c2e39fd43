using AttestBroker.Server;
using NUnit.Framework;

namespace AttestBroker.Cli.Tests.Admin;

/// <summary>
/// `attestbroker admin ... --broker URL` against a broker running over HTTPS on 127.0.0.1 (its certificate trusted
/// through --ca-cert), with a token minted by `attestbroker admin token` from the broker's data directory.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class Admin_commands_drive_a_running_broker_over_https
{
    private const string MrTd = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    private string _root = null!;
    private string _dataDir = null!;
    private string _certFile = null!;
    private string _url = null!;
    private BrokerHost _host = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _root = Directory.CreateTempSubdirectory("ab-cli-admin-").FullName;
        _dataDir = Path.Combine(_root, "data");
        Directory.CreateDirectory(_dataDir);
        using var certificate = BrokerHost.CreateDevelopmentCertificate(DateTimeOffset.UtcNow);
        _certFile = Path.Combine(_root, "tls.crt");
        var keyFile = Path.Combine(_root, "tls.key");
        await File.WriteAllTextAsync(_certFile, certificate.ExportCertificatePem());
        using (var key = System.Security.Cryptography.X509Certificates.ECDsaCertificateExtensions.GetECDsaPrivateKey(certificate)!)
        {
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());
        }

        _host = await BrokerHost.CreateAsync([], new Dictionary<string, string?>
        {
            ["Broker:DataDirectory"] = _dataDir,
            ["Broker:Port"] = "0",
            ["Broker:CertificateFile"] = _certFile,
            ["Broker:CertificateKeyFile"] = keyFile,
            ["Logging:LogLevel:Default"] = "Warning",
        });
        await _host.StartAsync();
        _url = _host.Addresses.Single().ToString();
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        await _host.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    private async Task<string> TokenAsync(params string[] roles)
    {
        var args = new List<string> { "admin", "token", "--subject", "cli-test", "--lifetime", "10m", "--data-dir", _dataDir };
        foreach (var r in roles)
        {
            args.AddRange(["--role", r]);
        }

        var (exit, output, error) = await CliRunner.RunAsync([.. args]);
        Assert.That(exit, Is.Zero, error);
        return output.Trim();
    }

    private Task<(int Exit, string Out, string Err)> RemoteAsync(string token, params string[] args) =>
        CliRunner.RunAsync([.. args, "--broker", _url, "--token", token, "--ca-cert", _certFile]);

    private async Task<string> PolicyFileAsync(string name, string body)
    {
        var path = Path.Combine(_root, name);
        await File.WriteAllTextAsync(path, body);
        return path;
    }

    [Test]
    public async Task Token_then_key_create_policy_set_and_audit_verify_succeed_and_are_audited_with_the_subject()
    {
        var token = await TokenAsync("key-admin", "policy-admin", "auditor");
        Assert.That(token.Split('.'), Has.Length.EqualTo(3));

        var create = await RemoteAsync(token, "admin", "key", "create", "--id", "cli-model");
        Assert.That((create.Exit, create.Out.Trim()), Is.EqualTo((0, "created key cli-model in backend embedded (KEK version 1)")), create.Err);

        var policy = await PolicyFileAsync("cli-model.yaml", $"name: cli-model\nversion: 1\ntee: [tdx]\ntdx:\n  mrTd: [{MrTd}]\n");
        var set = await RemoteAsync(token, "admin", "policy", "set", "--key", "cli-model", "--file", policy);
        Assert.That(set.Exit, Is.Zero, set.Err);
        Assert.That(set.Out, Does.StartWith("policy for cli-model: version 1 (sha256 "));

        var list = await RemoteAsync(token, "admin", "key", "list");
        Assert.That(list.Out, Does.Contain("cli-model\tEnabled\tpolicy version 1"));

        var get = await RemoteAsync(token, "admin", "policy", "get", "--key", "cli-model");
        Assert.That(get.Out, Does.Contain(MrTd));

        var verify = await RemoteAsync(token, "admin", "audit", "verify");
        Assert.That(verify.Exit, Is.Zero, verify.Err);
        Assert.That(verify.Out, Does.StartWith("audit chain intact: "));

        var export = await RemoteAsync(token, "admin", "audit", "export");
        Assert.That(export.Out, Does.Contain("\"kind\":\"admin.key.create\",").And.Contain("\"actor\":\"cli-test\""));
        Assert.That(export.Out, Does.Contain("\"kind\":\"admin.policy.set\","));
    }

    [Test]
    public async Task Key_import_over_the_api_stores_exactly_the_key_files_bytes()
    {
        var token = await TokenAsync("key-admin");
        var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var keyFile = Path.Combine(_root, "imported.key");
        await File.WriteAllTextAsync(keyFile, Convert.ToBase64String(key) + "\n");

        var import = await RemoteAsync(token, "admin", "key", "import", "--id", "cli-imported", "--key-file", keyFile);

        Assert.That((import.Exit, import.Out.Trim()), Is.EqualTo((0, "imported key cli-imported in backend embedded (KEK version 1)")), import.Err);
        var held = new byte[32];
        await _host.Data.Keys.GetForReleaseAsync("cli-imported", held);
        Assert.That(held, Is.EqualTo(key), "the broker holds the file's 32 bytes");
        var again = await RemoteAsync(token, "admin", "key", "import", "--id", "cli-imported", "--key-file", keyFile);
        Assert.That(again.Exit, Is.EqualTo(2), "an existing id is refused (a 4xx other than 401/403 is exit 2)");
        Assert.That(again.Err, Does.StartWith("error: 409 "));
        await _host.Data.Keys.GetForReleaseAsync("cli-imported", held);
        Assert.That(held, Is.EqualTo(key), "the first key is still the one held");
    }

    [Test]
    public async Task A_token_without_the_role_exits_1_with_the_problem_title()
    {
        var auditor = await TokenAsync("auditor");
        var (exit, output, error) = await RemoteAsync(auditor, "admin", "key", "create", "--id", "not-allowed");
        Assert.That((exit, output), Is.EqualTo((1, string.Empty)));
        Assert.That(error, Does.StartWith("error: 403 Role required: this operation needs one of the roles: key-admin (forbidden)"));
    }

    [Test]
    public async Task An_invalid_policy_exits_2_naming_the_field()
    {
        var token = await TokenAsync("policy-admin");
        var policy = await PolicyFileAsync("bad.yaml", "name: bad\nversion: 1\ntee: [tdx]\nallowDebugg: true\n");
        var (exit, _, error) = await RemoteAsync(token, "admin", "policy", "set", "--key", "bad-key", "--file", policy);
        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error, Does.Contain("allowDebugg").And.Contain("(invalid-policy)"));
    }

    [Test]
    public async Task A_broker_certificate_that_is_not_trusted_or_an_unreachable_broker_exits_2()
    {
        var token = await TokenAsync("auditor");
        var untrusted = await CliRunner.RunAsync("admin", "audit", "verify", "--broker", _url, "--token", token);
        Assert.That(untrusted.Exit, Is.EqualTo(2));
        Assert.That(untrusted.Err, Does.StartWith("error: --broker: cannot reach"));

        var closed = await CliRunner.RunAsync("admin", "audit", "verify", "--broker", "https://127.0.0.1:1", "--token", token, "--ca-cert", _certFile);
        Assert.That(closed.Exit, Is.EqualTo(2));
        Assert.That(closed.Err, Does.StartWith("error: --broker: cannot reach"));
    }

    [Test]
    public async Task Skipping_tls_verification_works_only_with_a_loud_warning()
    {
        var token = await TokenAsync("auditor");
        var (exit, output, error) = await CliRunner.RunAsync("admin", "audit", "verify", "--broker", _url, "--token", token, "--insecure-skip-tls-verify");
        Assert.That(exit, Is.Zero, error);
        Assert.That(error, Does.StartWith("WARNING: --insecure-skip-tls-verify"));
        Assert.That(output, Does.StartWith("audit chain intact"));
    }

    [Test]
    public async Task An_offline_kek_rotation_refuses_a_kek_that_kubernetes_secrets_backends_share()
    {
        var dir = Directory.CreateTempSubdirectory("ab-cli-kek-shared-").FullName;
        try
        {
            var created = await CliRunner.RunAsync("admin", "key", "create", "--id", "offline-model", "--data-dir", dir);
            Assert.That(created.Exit, Is.Zero, created.Err);
            await File.WriteAllTextAsync(Path.Combine(dir, Server.BrokerData.KekDirectory, Server.BrokerKeyBackends.KekSharedMarkerFile), "model-secrets\n");
            var kekFiles = Directory.GetFiles(Path.Combine(dir, Server.BrokerData.KekDirectory), "kek-v*.bin");

            var (exit, output, error) = await CliRunner.RunAsync("admin", "key", "rotate", "--data-dir", dir);

            Assert.That(exit, Is.EqualTo(2), output);
            Assert.That(error, Does.Contain("kubernetes-secrets backend(s) (model-secrets)").And.Contain("admin key rotate --broker URL"));
            Assert.That(Directory.GetFiles(Path.Combine(dir, Server.BrokerData.KekDirectory), "kek-v*.bin"), Is.EquivalentTo(kekFiles), "no KEK version added or retired");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public async Task Both_or_neither_of_data_dir_and_broker_or_a_missing_token_is_a_usage_error()
    {
        var both = await CliRunner.RunAsync("admin", "key", "list", "--data-dir", _dataDir, "--broker", _url, "--token", "x");
        Assert.That((both.Exit, both.Err), Is.EqualTo((2, "error: give exactly one of --data-dir DIR (local) and --broker URL (admin API)\n")));
        var neither = await CliRunner.RunAsync("admin", "key", "list");
        Assert.That(neither.Exit, Is.EqualTo(2));
        Environment.SetEnvironmentVariable("ATTESTBROKER_ADMIN_TOKEN", null);
        var noToken = await CliRunner.RunAsync("admin", "key", "list", "--broker", _url);
        Assert.That(noToken.Exit, Is.EqualTo(2));
        Assert.That(noToken.Err, Does.Contain("--token TOKEN or $ATTESTBROKER_ADMIN_TOKEN"));
        var badRole = await CliRunner.RunAsync("admin", "token", "--role", "root", "--data-dir", _dataDir);
        Assert.That((badRole.Exit, badRole.Err.Trim()), Is.EqualTo((2, "error: --role: root is not one of key-admin, policy-admin, auditor")));
    }
}
