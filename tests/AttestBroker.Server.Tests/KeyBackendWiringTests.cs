using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Keys;
using AttestBroker.Keys.Backends.AzureKeyVault;
using AttestBroker.Keys.Backends.Tests;
using AttestBroker.Protocol;
using AttestBroker.Server.Admin;
using AttestBroker.Storage;
using Azure.Core;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

/// <summary>
/// The broker with external key backends configured (Broker:KeyBackends), over real HTTPS on 127.0.0.1 with simulated
/// TDX evidence. Vault, Key Vault and the Kubernetes API are the contract tests' fakes (tests/AttestBroker.Keys.Backends.Tests,
/// linked): CONTRACT tests, not tests against live services. Per backend: an admin creates a key there, a pod attests and
/// gets it (the JWE's bytes equal what the fake unwraps), the backend rotates and the pod still gets the same key, a 403
/// from the service is a 503 backend-denied problem with an audit row, and the service down makes /readyz not ready.
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(180_000)]
public sealed class Broker_with_Vault_KeyVault_and_Kubernetes_Secrets_backends
{
    private const string Vault = "vault";
    private const string KeyVault = "akv";
    private const string Secrets = "secrets";
    private const string SecretsNamespace = "attestbroker";

    private LocalService _vaultService = null!;
    private LocalService _keyVaultService = null!;
    private LocalService _secretsService = null!;
    private FakeVault _vault = null!;
    private FakeKeyVault _keyVault = null!;
    private FakeSecretsApi _secrets = null!;
    private string _dir = null!;
    private RunningBroker _broker = null!;
    private int _serial;

    private static BrokerTestEnvironment Env => Shared.Env;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _vaultService = await LocalService.StartAsync(https: false);
        _vault = new FakeVault(_vaultService);
        _keyVaultService = await LocalService.StartAsync(https: true);
        _keyVault = new FakeKeyVault(_keyVaultService);
        _secretsService = await LocalService.StartAsync(https: false);
        _secrets = new FakeSecretsApi(_secretsService);
        _dir = Directory.CreateTempSubdirectory("ab-backends-wiring-").FullName;
        var tokenFile = Path.Combine(_dir, "vault-token");
        await File.WriteAllTextAsync(tokenFile, FakeVault.RootToken + "\n");
        var caFile = Path.Combine(_dir, "kv-ca.pem");
        await File.WriteAllTextAsync(caFile, LocalService.Certificate.ExportCertificatePem());
        var skrKey = Path.Combine(_dir, "skr-rsa.pem");
        using (var rsa = RSA.Create(2048))
        {
            await File.WriteAllTextAsync(skrKey, rsa.ExportPkcs8PrivateKeyPem());
        }

        var skrPolicy = Path.Combine(_dir, "skr-policy.json");
        await File.WriteAllTextAsync(skrPolicy, """{"version":"1.0.0","anyOf":[{"authority":"https://sharedeus2.eus2.attest.azure.net","allOf":[{"claim":"x-ms-attestation-type","equals":"sevsnpvm"}]}]}""");
        var kubeconfig = Path.Combine(_dir, "kubeconfig");
        await File.WriteAllTextAsync(kubeconfig,
            $"apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{_secretsService.Address.Port}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n" +
            "current-context: fake\nusers:\n- name: fake\n  user:\n    token: broker-token\n");

        _broker = await RunningBroker.StartAsync(Env, _ => Task.CompletedTask, new Dictionary<string, string?>
        {
            ["Broker:Kubernetes:Kubeconfig"] = kubeconfig,
            ["Broker:KeyBackends:vault:Type"] = "vault-transit",
            ["Broker:KeyBackends:vault:Address"] = _vaultService.Address.ToString(),
            ["Broker:KeyBackends:vault:Key"] = _vault.KeyName,
            ["Broker:KeyBackends:vault:TokenFile"] = tokenFile,
            ["Broker:KeyBackends:vault:RotateInVault"] = "true",
            ["Broker:KeyBackends:vault:MaxRetries"] = "1",
            ["Broker:KeyBackends:vault:RetryDelayMilliseconds"] = "10",
            ["Broker:KeyBackends:vault:AttemptTimeoutSeconds"] = "3",
            ["Broker:KeyBackends:akv:Type"] = "azure-keyvault",
            ["Broker:KeyBackends:akv:VaultUri"] = _keyVaultService.Address.ToString(),
            ["Broker:KeyBackends:akv:WrappingKey"] = _keyVault.RsaKeyName,
            ["Broker:KeyBackends:akv:CaCertificateFile"] = caFile,
            ["Broker:KeyBackends:akv:MaxRetries"] = "1",
            ["Broker:KeyBackends:akv:RetryDelayMilliseconds"] = "10",
            ["Broker:KeyBackends:akv:AttemptTimeoutSeconds"] = "3",
            ["Broker:KeyBackends:skr:Type"] = "azure-skr",
            ["Broker:KeyBackends:skr:VaultUri"] = _keyVaultService.Address.ToString(),
            ["Broker:KeyBackends:skr:CaCertificateFile"] = caFile,
            ["Broker:KeyBackends:skr:WrappingKeyFile"] = skrKey,
            ["Broker:KeyBackends:skr:ReleasePolicyFile"] = skrPolicy,
            ["Broker:KeyBackends:secrets:Type"] = "kubernetes-secrets",
            ["Broker:KeyBackends:secrets:Namespace"] = SecretsNamespace,
            ["Broker:KeyBackends:secrets:MaxRetries"] = "1",
            ["Broker:KeyBackends:secrets:RetryDelayMilliseconds"] = "10",
        }, configure: b => b.Services.AddSingleton<IAzureCredentialFactory>(new TestCredentials()));
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        await _broker.DisposeAsync();
        await _vaultService.DisposeAsync();
        await _keyVaultService.DisposeAsync();
        await _secretsService.DisposeAsync();
        _keyVault.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Test]
    public void A_kek_shared_with_kubernetes_secrets_is_marked_in_its_directory_so_an_offline_rotation_refuses()
    {
        var marker = Path.Combine(_broker.Host.Data.Directory, BrokerData.KekDirectory, BrokerKeyBackends.KekSharedMarkerFile);
        Assert.That(File.Exists(marker), Is.True, "the broker marks the KEK directory it shares with Secrets backends");
        Assert.That(File.ReadAllLines(marker), Is.EqualTo(new[] { Secrets }), "the marker names the sharing backends");
    }

    [TestCase(Vault)]
    [TestCase(KeyVault)]
    [TestCase(Secrets)]
    public async Task An_admin_creates_a_key_in_the_backend_a_pod_gets_it_and_after_the_backends_rotation_still_gets_the_same_key(string backend)
    {
        var keyId = $"{backend}-model-{Interlocked.Increment(ref _serial)}";
        var before = await LastAuditAsync();
        var created = await AdminAsync("POST", "/v1/admin/keys", $"{{\"id\":\"{keyId}\",\"backend\":\"{backend}\"}}");
        Assert.That(created.Status, Is.EqualTo(201), created.Text);
        Assert.That((string?)created.Body!["backend"], Is.EqualTo(backend));
        var createRow = (await AuditRowsAfterAsync(before)).Single(r => (string?)r["kind"] == "admin.key.create");
        Assert.That((string?)createRow["details"]!["backend"], Is.EqualTo(backend), "the audit row names the backend");
        await _broker.Host.Data.SetPolicyAsync(keyId, Env.TdxPolicy("backend-" + backend), "test", _broker.Time.GetUtcNow());

        var held = await HeldKeyAsync(backend, keyId);
        Assert.That(await ReleaseAsync(keyId), Is.EqualTo(held), "the pod gets the bytes the backend holds");

        var listed = await AdminAsync("GET", "/v1/admin/keys/" + keyId, null, AdminRoles.Auditor);
        Assert.That((string?)listed.Body!["backend"], Is.EqualTo(backend));

        // Rotate: Vault rotates its Transit key and rewraps (RotateInVault); Key Vault gets a new RSA key version and
        // the broker rewraps under it; Kubernetes Secrets are rewrapped by a KEK rotation (a new KEK version).
        JsonNode rotation;
        if (backend == KeyVault)
        {
            _keyVault.AddRsaVersion();
        }

        var rotated = backend == Secrets
            ? await AdminAsync("POST", "/v1/admin/kek/rotate", null)
            : await AdminAsync("POST", "/v1/admin/kek/rotate", $"{{\"backend\":\"{backend}\"}}");
        Assert.That(rotated.Status, Is.EqualTo(200), rotated.Text);
        rotation = rotated.Body!;
        Assert.That((int)rotation["rewrapped"]!, Is.GreaterThanOrEqualTo(1));

        switch (backend)
        {
            case Vault:
                var record = (await _broker.Host.Data.Storage.Keys.GetAsync(keyId))!;
                Assert.That(Encoding.ASCII.GetString(record.Wrapped), Does.StartWith($"vault:v{_vault.LatestVersion}:"));
                Assert.That(_vault.LatestVersion, Is.GreaterThanOrEqualTo(2));
                break;
            case KeyVault:
                var kv = (await _broker.Host.Data.Storage.Keys.GetAsync(keyId))!;
                Assert.That(kv.WrappingKeyId, Does.EndWith("/" + _keyVault.LatestVersion));
                break;
            default:
                var secret = SecretOf(keyId);
                Assert.That(Encoding.ASCII.GetString(Convert.FromBase64String((string)secret["data"]!["kek-version"]!)), Is.EqualTo(((int)rotation["kek_version"]!).ToString(System.Globalization.CultureInfo.InvariantCulture)));
                break;
        }

        Assert.That(await HeldKeyAsync(backend, keyId), Is.EqualTo(held), "the rewrapped ciphertext holds the same key");
        Assert.That(await ReleaseAsync(keyId), Is.EqualTo(held), "the pod still gets the same key after the rotation");
    }

    [TestCase(Vault, "decrypt", """{"errors":["permission denied"]}""")]
    [TestCase(KeyVault, "unwrapkey", """{"error":{"code":"Forbidden","message":"The user does not have keys unwrapKey permission"}}""")]
    [TestCase(Secrets, "/secrets", """{}""")]
    public async Task A_403_from_the_backend_at_release_is_a_503_backend_denied_problem_with_an_audit_row(string backend, string path, string answer)
    {
        var keyId = $"{backend}-denied-{Interlocked.Increment(ref _serial)}";
        var created = await AdminAsync("POST", "/v1/admin/keys", $"{{\"id\":\"{keyId}\",\"backend\":\"{backend}\"}}");
        Assert.That(created.Status, Is.EqualTo(201), created.Text);
        await _broker.Host.Data.SetPolicyAsync(keyId, Env.TdxPolicy("denied-" + backend), "test", _broker.Time.GetUtcNow());
        switch (backend)
        {
            case Vault:
                _vault.Faults.Enqueue((path, 403, null, answer));
                break;
            case KeyVault:
                _keyVault.Faults.Enqueue((path, 403, null, answer));
                break;
            default:
                _secrets.Faults.Enqueue((path, 403, null));
                break;
        }

        var before = await LastAuditAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await AttestAsync(Jwk.FromPublicKey(pod), keyId);

        Assert.That((status, Shared.Code(body)), Is.EqualTo((503, "backend-denied")), body?.ToJsonString());
        Assert.That((string?)body!["type"], Is.EqualTo("urn:attestbroker:problem:backend-denied"));
        Assert.That((string?)body["backend"], Is.EqualTo(backend));
        Assert.That((string?)body["cause"], Is.EqualTo("Denied"));
        Assert.That(body.ToJsonString(), Does.Not.Contain("\"jwe\"").And.Not.Contain(FakeVault.RootToken).And.Not.Contain(StaticTokenCredential.Token));
        var row = (await AuditRowsAfterAsync(before)).Last(r => (string?)r["kind"] == BrokerService.AuditKindRelease);
        Assert.That((string?)row["decision"], Is.EqualTo(BrokerService.Denied));
        Assert.That(row["reasons"]!.AsArray().Select(r => (string?)r), Does.Contain("backend-denied"));
        Assert.That((string?)row["details"]!["backend"], Is.EqualTo(backend));
        Assert.That((string?)row["key_id"], Is.EqualTo(keyId));
    }

    [TestCase(Vault)]
    [TestCase(KeyVault)]
    [TestCase(Secrets)]
    public async Task The_backend_down_makes_readyz_not_ready_naming_it_and_the_answer_is_cached_between_probes(string backend)
    {
        _broker.Time.Advance(TimeSpan.FromSeconds(30));
        var (okStatus, okBody) = await ReadyAsync();
        Assert.That(okStatus, Is.EqualTo(200), okBody?.ToJsonString());
        Assert.That((bool?)okBody!["checks"]!["key_backends"]![backend]!["healthy"], Is.True);

        _broker.Time.Advance(TimeSpan.FromSeconds(30));
        for (var i = 0; i < 4; i++)
        {
            switch (backend)
            {
                case Vault:
                    _vault.Faults.Enqueue(("keys/" + _vault.KeyName, 503, null, """{"errors":["Vault is sealed"]}"""));
                    break;
                case KeyVault:
                    _keyVault.Faults.Enqueue(("keys/" + _keyVault.RsaKeyName, 503, null, """{"error":{"code":"ServiceUnavailable","message":"down"}}"""));
                    break;
                default:
                    _secrets.Faults.Enqueue(("/secrets", 503, null));
                    break;
            }
        }

        var (downStatus, downBody) = await ReadyAsync();
        Assert.That(downStatus, Is.EqualTo(503), downBody?.ToJsonString());
        Assert.That(Shared.Code(downBody), Is.EqualTo(ProblemCodes.BackendUnavailable));
        Assert.That((bool?)downBody!["checks"]!["key_backends"]![backend]!["healthy"], Is.False);
        Assert.That((string?)downBody["checks"]!["key_backend:" + backend], Does.StartWith("unavailable"));
        Assert.That(downBody.ToJsonString(), Does.Not.Contain(FakeVault.RootToken).And.Not.Contain(StaticTokenCredential.Token));

        // Within HealthCacheSeconds the same answer is served without asking the backends again.
        var requests = _vaultService.Requests.Count + _keyVaultService.Requests.Count + _secretsService.Requests.Count;
        var (againStatus, _) = await ReadyAsync();
        Assert.That(againStatus, Is.EqualTo(503));
        Assert.That(_vaultService.Requests.Count + _keyVaultService.Requests.Count + _secretsService.Requests.Count, Is.EqualTo(requests));

        DrainFaults();
        _broker.Time.Advance(TimeSpan.FromSeconds(30));
        var (backStatus, backBody) = await ReadyAsync();
        Assert.That(backStatus, Is.EqualTo(200), backBody?.ToJsonString());
    }

    [Test]
    public async Task A_key_whose_record_names_an_unconfigured_backend_is_a_503_backend_unavailable_naming_it()
    {
        const string KeyId = "orphan-model";
        await _broker.Host.Data.Storage.Keys.InsertAsync(new KeyRecord(KeyId, Encoding.ASCII.GetBytes("vault:v1:AAAA"), "vault-transit:transit/old", 1, KeyState.Enabled, "old-vault",
            _broker.Time.GetUtcNow(), null, null));
        await _broker.Host.Data.SetPolicyAsync(KeyId, Env.TdxPolicy("orphan"), "test", _broker.Time.GetUtcNow());
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

        var (status, body) = await AttestAsync(Jwk.FromPublicKey(pod), KeyId);

        Assert.That((status, Shared.Code(body)), Is.EqualTo((503, ProblemCodes.BackendUnavailable)), body?.ToJsonString());
        Assert.That((string?)body!["backend"], Is.EqualTo("old-vault"));
        Assert.That((string?)body["detail"], Does.Contain("old-vault").And.Contain("not have configured"));

        var list = await AdminAsync("GET", "/v1/admin/keys", null, AdminRoles.Auditor);
        Assert.That(list.Body!["keys"]!.AsArray().Single(k => (string?)k!["id"] == KeyId)!["backend"]!.GetValue<string>(), Is.EqualTo("old-vault"));
    }

    [Test]
    public async Task Creating_a_key_in_an_unknown_backend_is_400_unknown_backend_and_a_duplicate_id_across_backends_is_409()
    {
        var unknown = await AdminAsync("POST", "/v1/admin/keys", """{"id":"nowhere-model","backend":"no-such-backend"}""");
        Assert.That((unknown.Status, Shared.Code(unknown.Body)), Is.EqualTo((400, "unknown-backend")), unknown.Text);
        Assert.That(unknown.Text, Does.Contain("vault").And.Contain("akv").And.Contain("skr").And.Contain("secrets").And.Contain("embedded"));

        var first = await AdminAsync("POST", "/v1/admin/keys", """{"id":"twice-model","backend":"secrets"}""");
        Assert.That(first.Status, Is.EqualTo(201), first.Text);
        var second = await AdminAsync("POST", "/v1/admin/keys", """{"id":"twice-model","backend":"vault"}""");
        Assert.That((second.Status, Shared.Code(second.Body)), Is.EqualTo((409, AdminProblems.KeyExists)), second.Text);
        Assert.That(second.Text, Does.Contain("secrets"));
    }

    [Test]
    public async Task Import_into_a_backend_and_the_default_backend_is_embedded_when_none_is_named()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var imported = await AdminAsync("POST", "/v1/admin/keys/imported-akv/import", $"{{\"key\":\"{Convert.ToBase64String(key)}\",\"backend\":\"akv\"}}");
        Assert.That(imported.Status, Is.EqualTo(201), imported.Text);
        Assert.That((string?)imported.Body!["backend"], Is.EqualTo(KeyVault));
        await _broker.Host.Data.SetPolicyAsync("imported-akv", Env.TdxPolicy("imported"), "test", _broker.Time.GetUtcNow());
        Assert.That(await ReleaseAsync("imported-akv"), Is.EqualTo(key));

        var plain = await AdminAsync("POST", "/v1/admin/keys", """{"id":"default-model"}""");
        Assert.That((string?)plain.Body!["backend"], Is.EqualTo(EmbeddedKeyStore.DefaultBackendName));
    }

    [Test]
    public async Task Vault_rate_limiting_past_the_retries_is_a_503_backend_unavailable_with_its_Retry_After()
    {
        var keyId = $"vault-busy-{Interlocked.Increment(ref _serial)}";
        var created = await AdminAsync("POST", "/v1/admin/keys", $"{{\"id\":\"{keyId}\",\"backend\":\"vault\"}}");
        Assert.That(created.Status, Is.EqualTo(201), created.Text);
        await _broker.Host.Data.SetPolicyAsync(keyId, Env.TdxPolicy("busy"), "test", _broker.Time.GetUtcNow());
        _vault.Faults.Enqueue(("decrypt", 429, "1", """{"errors":["rate limit quota exceeded"]}"""));
        _vault.Faults.Enqueue(("decrypt", 429, "1", """{"errors":["rate limit quota exceeded"]}"""));
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await _broker.ChallengeAsync(TeeKind.Tdx);
        using var content = new StringContent(RunningBroker.AttestJson(challenge, Env.Evidence(TeeKind.Tdx, nonce, jwk), jwk, keyId), Encoding.UTF8, "application/json");

        using var response = await _broker.Client.PostAsync(new Uri("/v1/attest", UriKind.Relative), content);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync());

        Assert.That(((int)response.StatusCode, Shared.Code(body)), Is.EqualTo((503, ProblemCodes.BackendUnavailable)), body?.ToJsonString());
        Assert.That(response.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)));
        Assert.That(((string?)body!["backend"], (int?)body["retry_after_seconds"], (int?)body["service_status"]), Is.EqualTo(("vault", 1, 429)));
        Assert.That(await ReleaseAsync(keyId), Has.Length.EqualTo(32), "released once Vault answers again");
    }

    [Test]
    public async Task The_admin_cli_creates_lists_and_rotates_by_backend_through_the_broker()
    {
        string token;
        using (var key = AdminTokens.LoadOrCreateLocalKey(_broker.DataDir))
        {
            token = AdminTokens.Mint(key, "cli-admin", [AdminRoles.KeyAdmin], _broker.Time.GetUtcNow(), TimeSpan.FromMinutes(10), AdminTokens.DefaultAudience);
        }

        var url = _broker.Host.Addresses.Single().ToString();
        var ca = Path.Combine(_broker.DataDir, "tls.crt");
        string[] remote = ["--broker", url, "--token", token, "--ca-cert", ca];
        var create = await CliAsync(["admin", "key", "create", "--id", "cli-vault-model", "--backend", Vault, .. remote]);
        Assert.That(create.Exit, Is.EqualTo(0), create.Err);
        Assert.That(create.Out, Does.Contain("created key cli-vault-model in backend vault"));

        var list = await CliAsync(["admin", "key", "list", .. remote]);
        Assert.That(list.Out, Does.Contain("cli-vault-model\tEnabled\tno policy (never released)\tbackend vault"), list.Err);

        var rotate = await CliAsync(["admin", "key", "rotate", "--backend", Vault, .. remote]);
        Assert.That(rotate.Exit, Is.EqualTo(0), rotate.Err);
        Assert.That(rotate.Out, Does.Contain("backend vault rotated"));

        var unknown = await CliAsync(["admin", "key", "create", "--id", "cli-x", "--backend", "nope", .. remote]);
        Assert.That(unknown.Exit, Is.Not.EqualTo(0));
        Assert.That(unknown.Err, Does.Contain("unknown-backend"));

        var local = await CliAsync(["admin", "key", "create", "--id", "cli-y", "--backend", Vault, "--data-dir", Path.Combine(_dir, "local-data")]);
        Assert.That(local.Exit, Is.EqualTo(Cli.ExitCodes.Usage));
        Assert.That(local.Err, Does.Contain("--backend goes with --broker"));
    }

    [Test]
    public async Task Disable_and_enable_go_to_the_keys_backend_and_their_audit_rows_name_it_and_skr_rotation_is_409()
    {
        var keyId = $"secrets-state-{Interlocked.Increment(ref _serial)}";
        Assert.That((await AdminAsync("POST", "/v1/admin/keys", $"{{\"id\":\"{keyId}\",\"backend\":\"secrets\"}}")).Status, Is.EqualTo(201));
        var before = await LastAuditAsync();
        var disabled = await AdminAsync("POST", $"/v1/admin/keys/{keyId}/disable", null);
        Assert.That((disabled.Status, (string?)disabled.Body!["state"], (string?)disabled.Body["backend"]), Is.EqualTo((200, "disabled", Secrets)), disabled.Text);
        Assert.That((string?)SecretOf(keyId)["metadata"]!["annotations"]!["attestbroker.io/state"], Is.EqualTo("disabled"), "the state lives in the Secret");
        var enabled = await AdminAsync("POST", $"/v1/admin/keys/{keyId}/enable", null);
        Assert.That((string?)enabled.Body!["state"], Is.EqualTo("enabled"));
        var rows = (await AuditRowsAfterAsync(before)).Where(r => ((string?)r["kind"])!.StartsWith("admin.key.", StringComparison.Ordinal)).ToList();
        Assert.That(rows.Select(r => ((string?)r["kind"], (string?)r["details"]!["backend"])), Is.EqualTo(new[] { ("admin.key.disable", Secrets), ("admin.key.enable", Secrets) }));

        var skr = await AdminAsync("POST", "/v1/admin/kek/rotate", """{"backend":"skr"}""");
        Assert.That((skr.Status, Shared.Code(skr.Body)), Is.EqualTo((409, "rotation-unsupported")), skr.Text);
    }

    [Test]
    public async Task Listing_keys_while_a_backend_is_down_is_a_503_problem_naming_it()
    {
        _secrets.Faults.Enqueue(("/secrets", 503, null));
        _secrets.Faults.Enqueue(("/secrets", 503, null));
        var list = await AdminAsync("GET", "/v1/admin/keys", null, AdminRoles.Auditor);
        DrainFaults();
        Assert.That((list.Status, Shared.Code(list.Body), (string?)list.Body!["backend"]), Is.EqualTo((503, ProblemCodes.BackendUnavailable, Secrets)), list.Text);
    }

    private static async Task<(int Exit, string Out, string Err)> CliAsync(string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await Cli.CliApp.RunAsync(args, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    private void DrainFaults()
    {
        while (_vault.Faults.TryDequeue(out _) || _keyVault.Faults.TryDequeue(out _) || _secrets.Faults.TryDequeue(out _))
        {
        }
    }

    private JsonObject SecretOf(string keyId)
    {
        var name = "attestbroker-key-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(keyId)).AsSpan(0, 16));
        return _secrets.Get(SecretsNamespace, name) ?? throw new AssertionException("no Secret for " + keyId);
    }

    /// <summary>The key bytes as the backend itself would unwrap them (independently of the broker's release path).</summary>
    private async Task<byte[]> HeldKeyAsync(string backend, string keyId)
    {
        switch (backend)
        {
            case Vault:
                var record = (await _broker.Host.Data.Storage.Keys.GetAsync(keyId))!;
                return _vault.Open(Encoding.ASCII.GetString(record.Wrapped));
            case KeyVault:
                var kv = (await _broker.Host.Data.Storage.Keys.GetAsync(keyId))!;
                return _keyVault.Unwrap(kv.WrappingKeyId.Split('/')[^1], kv.Wrapped);
            default:
                var secret = SecretOf(keyId);
                var data = secret["data"]!;
                var wrapped = new WrappedKey(Convert.FromBase64String((string)data["wrapped"]!), Encoding.ASCII.GetString(Convert.FromBase64String((string)data["kek-id"]!)),
                    int.Parse(Encoding.ASCII.GetString(Convert.FromBase64String((string)data["kek-version"]!)), System.Globalization.CultureInfo.InvariantCulture));
                using (var kek = new FileKekSource(Path.Combine(_broker.DataDir, BrokerData.KekDirectory)))
                {
                    var plain = new byte[32];
                    await new AesGcmKeyWrapper(kek).UnwrapAsync(keyId, wrapped, plain);
                    return plain;
                }
        }
    }

    private async Task<byte[]> ReleaseAsync(string keyId)
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await AttestAsync(Jwk.FromPublicKey(pod), keyId);
        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
        return JweDecryptor.Decrypt((string)body!["keys"]![0]!["jwe"]!, pod);
    }

    private async Task<(int Status, JsonNode? Body)> AttestAsync(Jwk jwk, params string[] keyIds)
    {
        var (nonce, challenge) = await _broker.ChallengeAsync(TeeKind.Tdx);
        var evidence = Env.Evidence(TeeKind.Tdx, nonce, jwk);
        var (status, body, _) = await _broker.PostAsync("/v1/attest", RunningBroker.AttestJson(challenge, evidence, jwk, keyIds));
        return (status, body);
    }

    private async Task<(int Status, JsonNode? Body)> ReadyAsync()
    {
        using var response = await _broker.Client.GetAsync(new Uri("/readyz", UriKind.Relative));
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonNode.Parse(text));
    }

    private async Task<AdminClient.Response> AdminAsync(string method, string path, string? body, string role = AdminRoles.KeyAdmin)
    {
        string token;
        using (var key = AdminTokens.LoadOrCreateLocalKey(_broker.DataDir))
        {
            token = AdminTokens.Mint(key, "backend-admin", [role], _broker.Time.GetUtcNow(), TimeSpan.FromMinutes(10), AdminTokens.DefaultAudience);
        }

        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        using var response = await _broker.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return new AdminClient.Response((int)response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null, response.Content.Headers.ContentType?.MediaType, text, null);
    }

    private async Task<long> LastAuditAsync() => (await _broker.Host.Data.Storage.Audit.GetLastAsync())?.Sequence ?? 0;

    private async Task<List<JsonObject>> AuditRowsAfterAsync(long after) =>
        [.. (await _broker.Host.Data.Storage.Audit.ReadAsync(after + 1, 10_000)).Select(r => JsonNode.Parse(r.EventJson)!.AsObject())];

    /// <summary>Key Vault's Entra ID token in these tests (no Entra ID here): the fake vault's expected bearer token.</summary>
    private sealed class TestCredentials : IAzureCredentialFactory
    {
        public TokenCredential Create(string backend, KeyVaultKeyClientOptions options) => new StaticTokenCredential();
    }
}
