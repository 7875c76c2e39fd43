using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.Keys.Backends.AzureKeyVault;
using AttestBroker.Storage;
using Azure.Core.Pipeline;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>
/// Azure Key Vault backends (envelope and Secure Key Release) against <see cref="FakeKeyVault"/> over HTTPS, through
/// Azure.Core's pipeline with a bearer-token policy. Contract tests: the documented shapes, not a live vault.
/// </summary>
public sealed class KeyVaultContractTests : StorageFixture
{
    private const string Policy = """{"version":"1.0.0","anyOf":[{"authority":"https://sharedeus2.eus2.attest.azure.net","allOf":[{"claim":"x-ms-attestation-type","equals":"sevsnpvm"},{"claim":"x-ms-sevsnpvm-is-debuggable","equals":false}]}]}""";
    private LocalService _service = null!;
    private FakeKeyVault _vault = null!;
    private RSA _brokerKey = null!;
    private StaticTokenCredential _credential = null!;

    [SetUp]
    public async Task StartVault()
    {
        _service = await LocalService.StartAsync(https: true);
        _vault = new FakeKeyVault(_service);
        _brokerKey = RSA.Create(2048);
        _vault.ReleaseTarget = _brokerKey;
        _credential = new StaticTokenCredential();
    }

    [TearDown]
    public async Task StopVault()
    {
        _vault.Dispose();
        _brokerKey.Dispose();
        await _service.DisposeAsync();
    }

    private KeyVaultKeyClient Client(int maxRetries = 2)
    {
        var options = new KeyVaultKeyClientOptions
        {
            VaultUri = _service.Address,
            Transport = new HttpClientTransport(LocalService.TrustingHandler()),
        };
        options.Retry.MaxRetries = maxRetries;
        options.Retry.Delay = TimeSpan.FromMilliseconds(10);
        options.Retry.MaxDelay = TimeSpan.FromSeconds(2);
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(3);
        return new KeyVaultKeyClient(options, _credential);
    }

    private KeyVaultEnvelopeKeyBackend Envelope(int maxRetries = 2) => new(Client(maxRetries), Storage.Keys, _vault.RsaKeyName);

    private KeyVaultSecureKeyReleaseBackend Skr(Func<CancellationToken, Task<string>>? source = null, X509Certificate2Collection? roots = null) =>
        new(Client(), Storage.Keys, _brokerKey, Policy, source, new SecureKeyReleaseOptions
        {
            TrustedRoots = roots ?? [_vault.Root],
            RevocationMode = X509RevocationMode.NoCheck,
        });

    [Test]
    public async Task Envelope_key_is_wrapped_with_rsa_oaep_256_and_released_by_unwrapkey()
    {
        KeyVaultEnvelopeKeyBackend backend = Envelope();
        byte[] key = RandomNumberGenerator.GetBytes(32);
        await backend.ImportAsync("model-a", key);

        KeyRecord record = (await Storage.Keys.GetAsync("model-a"))!;
        SeenRequest wrap = _service.Requests.Last(r => r.Path.EndsWith("/wrapkey", StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(record.Backend, Is.EqualTo("azure-keyvault"));
            Assert.That(record.WrappingKeyId, Is.EqualTo(_vault.Kid("model-kek", _vault.LatestVersion)));
            Assert.That(record.Wrapped, Has.Length.EqualTo(256));
            Assert.That(FakeVault.ParseBody(wrap.Body).GetProperty("alg").GetString(), Is.EqualTo("RSA-OAEP-256"));
            Assert.That(wrap.Query, Does.Contain("api-version=7.4"));
            Assert.That(wrap.Headers["Authorization"], Is.EqualTo("Bearer " + StaticTokenCredential.Token));
            Assert.That(_credential.Scopes, Does.Contain("https://vault.azure.net/.default"));
        });
        Assert.That(await ReleaseAsync(backend, "model-a"), Is.EqualTo(key));
    }

    [Test]
    public async Task Envelope_rotation_rewraps_every_key_under_the_newest_key_version()
    {
        KeyVaultEnvelopeKeyBackend backend = Envelope();
        await backend.CreateAsync("k1");
        await backend.CreateAsync("k2");
        byte[] k1 = await ReleaseAsync(backend, "k1");
        byte[] k2 = await ReleaseAsync(backend, "k2");
        string oldKid = (await Storage.Keys.GetAsync("k1"))!.WrappingKeyId;

        string newVersion = _vault.AddRsaVersion(); // Key Vault's rotation policy made a new version
        KekRotationResult result = await backend.RotateKekAsync();

        KeyRecord r1 = (await Storage.Keys.GetAsync("k1"))!;
        Assert.Multiple(async () =>
        {
            Assert.That(result.Rewrapped, Is.EqualTo(2));
            Assert.That(result.KekVersion, Is.EqualTo(2));
            Assert.That(r1.WrappingKeyId, Is.EqualTo(_vault.Kid("model-kek", newVersion)));
            Assert.That(r1.WrappingKeyId, Is.Not.EqualTo(oldKid));
            Assert.That(await ReleaseAsync(backend, "k1"), Is.EqualTo(k1));
            Assert.That(await ReleaseAsync(backend, "k2"), Is.EqualTo(k2));
        });
        Assert.That((await backend.RotateKekAsync()).Rewrapped, Is.Zero);
    }

    [Test]
    public async Task Envelope_rotation_can_rotate_the_key_in_key_vault_first()
    {
        var backend = new KeyVaultEnvelopeKeyBackend(Client(), Storage.Keys, _vault.RsaKeyName, rotateInVault: true);
        await backend.CreateAsync("k1");
        byte[] k1 = await ReleaseAsync(backend, "k1");
        KekRotationResult result = await backend.RotateKekAsync();
        Assert.That(_service.Count("POST", "/keys/model-kek/rotate"), Is.EqualTo(1));
        Assert.That(result.Rewrapped, Is.EqualTo(1));
        Assert.That((await Storage.Keys.GetAsync("k1"))!.WrappingKeyId, Is.EqualTo(_vault.Kid("model-kek", _vault.LatestVersion)));
        Assert.That(await ReleaseAsync(backend, "k1"), Is.EqualTo(k1));
    }

    [Test]
    public async Task Key_vault_403_is_backend_denied_with_its_error_code()
    {
        KeyVaultEnvelopeKeyBackend backend = Envelope();
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/unwrapkey", 403, null, """{"error":{"code":"Forbidden","message":"The user does not have keys unwrapKey permission"}}"""));

        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Code, Is.EqualTo("backend-denied"));
        Assert.That(e.HttpStatus, Is.EqualTo(503));
        Assert.That(e.Message, Does.Contain("Forbidden: The user does not have keys unwrapKey permission"));
    }

    [Test]
    public void Key_vault_404_is_backend_key_not_found()
    {
        var backend = new KeyVaultEnvelopeKeyBackend(Client(), Storage.Keys, "no-such-key");
        var e = Assert.ThrowsAsync<KeyBackendException>(() => backend.CreateAsync("k"));
        Assert.That(e!.Code, Is.EqualTo("backend-key-not-found"));
        Assert.That(e.Message, Does.Contain("KeyNotFound"));
    }

    [Test]
    public async Task Key_vault_429_with_retry_after_is_retried_by_the_pipeline()
    {
        KeyVaultEnvelopeKeyBackend backend = Envelope();
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/unwrapkey", 429, "1", """{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}"""));

        Assert.That(await ReleaseAsync(backend, "k"), Has.Length.EqualTo(32));
        Assert.That(_service.Count("POST", "/unwrapkey"), Is.EqualTo(2));
    }

    [Test]
    public async Task Key_vault_500_after_the_last_retry_is_backend_unavailable()
    {
        KeyVaultEnvelopeKeyBackend backend = Envelope(maxRetries: 1);
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/unwrapkey", 500, null, """{"error":{"code":"InternalServerError","message":"oops"}}"""));
        _vault.Faults.Enqueue(("/unwrapkey", 500, null, """{"error":{"code":"InternalServerError","message":"oops"}}"""));

        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Code, Is.EqualTo("backend-unavailable"));
        Assert.That(e.ServiceStatus, Is.EqualTo(500));
        Assert.That(_service.Count("POST", "/unwrapkey"), Is.EqualTo(2));
    }

    [Test]
    public async Task Malformed_json_and_timeouts_are_typed_errors()
    {
        KeyVaultEnvelopeKeyBackend backend = Envelope(maxRetries: 0);
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/unwrapkey", 200, null, """{"kid":"x","value":"""));
        var bad = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(bad!.Code, Is.EqualTo("backend-bad-response"));

        _vault.Faults.Enqueue(("/unwrapkey", 0, null, string.Empty));
        var slow = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(slow!.Code, Is.EqualTo("backend-unavailable"));
    }

    [Test]
    public async Task Envelope_health_check_reads_the_wrapping_key()
    {
        BackendHealth ok = await Envelope().CheckHealthAsync();
        Assert.That(ok.Healthy, Is.True, ok.Detail);
        _vault.Faults.Enqueue(("/keys/model-kek", 401, null, """{"error":{"code":"Unauthorized","message":"no"}}"""));
        BackendHealth bad = await Envelope().CheckHealthAsync();
        Assert.That(bad.Healthy, Is.False);
        Assert.That(bad.Detail, Does.StartWith("backend-denied"));
    }

    [Test]
    public async Task Secure_key_release_creates_an_exportable_oct_hsm_key_and_releases_it_against_the_token()
    {
        KeyVaultSecureKeyReleaseBackend backend = Skr(_ => Task.FromResult(_vault.AcceptedToken));
        await backend.CreateAsync("model-skr");
        string name = backend.VaultKeyName("model-skr");

        SeenRequest create = _service.Requests.Single(r => r.Path.EndsWith("/create", StringComparison.Ordinal));
        var body = FakeVault.ParseBody(create.Body);
        Assert.Multiple(() =>
        {
            Assert.That(name, Does.StartWith("attestbroker-model-skr-"));
            Assert.That(body.GetProperty("kty").GetString(), Is.EqualTo("oct-HSM"));
            Assert.That(body.GetProperty("attributes").GetProperty("exportable").GetBoolean(), Is.True);
            Assert.That(body.GetProperty("release_policy").GetProperty("data").GetString(), Is.Not.Empty);
        });

        byte[] released = await ReleaseAsync(backend, "model-skr");
        Assert.That(released, Is.EqualTo(_vault.OctKeyBytes(name)));
        SeenRequest release = _service.Requests.Single(r => r.Path.EndsWith("/release", StringComparison.Ordinal));
        Assert.That(FakeVault.ParseBody(release.Body).GetProperty("target").GetString(), Is.EqualTo(_vault.AcceptedToken));
        Assert.That(FakeVault.ParseBody(release.Body).GetProperty("enc").GetString(), Is.EqualTo("RSA_AES_KEY_WRAP_256"));
    }

    [Test]
    public async Task Secure_key_release_of_an_imported_key_with_a_pods_token_gives_the_same_bytes()
    {
        KeyVaultSecureKeyReleaseBackend backend = Skr();
        byte[] key = RandomNumberGenerator.GetBytes(32);
        await backend.ImportAsync("imported", key);
        byte[] buffer = new byte[32];
        await backend.GetForReleaseAsync("imported", _vault.AcceptedToken, buffer);
        Assert.That(buffer, Is.EqualTo(key));

        var e = Assert.ThrowsAsync<KeyBackendException>(() => backend.GetForReleaseAsync("imported", new byte[32]));
        Assert.That(e!.Code, Is.EqualTo("backend-unsupported"));
    }

    [Test]
    public async Task Key_vaults_release_policy_refusing_the_token_is_backend_denied()
    {
        KeyVaultSecureKeyReleaseBackend backend = Skr(_ => Task.FromResult("eyJ.other-token.sig"));
        await backend.CreateAsync("k");
        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Code, Is.EqualTo("backend-denied"));
        Assert.That(e.Message, Does.Contain("attestation statement cannot be verified"));
    }

    [Test]
    public async Task Release_signed_by_another_key_than_its_x5c_leaf_is_refused()
    {
        KeyVaultSecureKeyReleaseBackend backend = Skr(_ => Task.FromResult(_vault.AcceptedToken));
        await backend.CreateAsync("k");
        using var other = RSA.Create(2048);
        _vault.SigningKeyOverride = other;
        byte[] buffer = Enumerable.Repeat((byte)0x55, 32).ToArray();
        var e = Assert.ThrowsAsync<KeyBackendException>(() => backend.GetForReleaseAsync("k", buffer));
        Assert.That(e!.Code, Is.EqualTo("backend-release-invalid"));
        Assert.That(e.Message, Does.Contain("signature does not verify"));
        Assert.That(buffer, Is.All.EqualTo((byte)0x55), "nothing was written");
    }

    [Test]
    public async Task Release_chained_to_an_untrusted_root_is_refused()
    {
        using var otherCaKey = RSA.Create(2048);
        var req = new CertificateRequest("CN=Other Root", otherCaKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using X509Certificate2 otherRoot = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
        KeyVaultSecureKeyReleaseBackend backend = Skr(_ => Task.FromResult(_vault.AcceptedToken), [otherRoot]);
        await backend.CreateAsync("k");
        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Code, Is.EqualTo("backend-release-invalid"));
        Assert.That(e.Message, Does.Contain("does not verify to a trusted root"));
    }

    [Test]
    public async Task Release_signed_for_another_host_is_refused()
    {
        _vault.Leaf = _vault.IssueLeaf("othervault.vault.azure.net", _vault.Root, _vault.RootKey);
        KeyVaultSecureKeyReleaseBackend backend = Skr(_ => Task.FromResult(_vault.AcceptedToken));
        await backend.CreateAsync("k");
        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Message, Does.Contain("does not name localhost"));
    }

    [Test]
    public async Task Release_wrapped_to_another_rsa_key_does_not_unwrap()
    {
        using var other = RSA.Create(2048);
        _vault.ReleaseTarget = other;
        KeyVaultSecureKeyReleaseBackend backend = Skr(_ => Task.FromResult(_vault.AcceptedToken));
        await backend.CreateAsync("k");
        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Message, Does.Contain("does not decrypt under the broker's RSA wrapping key"));
    }

    [Test]
    public async Task Secure_key_release_refuses_kek_rotation_and_disabled_keys()
    {
        KeyVaultSecureKeyReleaseBackend backend = Skr(_ => Task.FromResult(_vault.AcceptedToken));
        await backend.CreateAsync("k");
        var rot = Assert.ThrowsAsync<KeyStoreException>(() => backend.RotateKekAsync());
        Assert.That(rot!.Error, Is.EqualTo(KeyError.RotationUnsupported));

        await backend.DisableAsync("k");
        var dis = Assert.ThrowsAsync<KeyStoreException>(() => ReleaseAsync(backend, "k"));
        Assert.That(dis!.Error, Is.EqualTo(KeyError.Disabled));
        Assert.That(_service.Count("POST", "/release"), Is.Zero);
    }

    [Test]
    public void Release_policy_must_be_key_vault_grammar()
    {
        var e = Assert.Throws<ArgumentException>(() => new KeyVaultSecureKeyReleaseBackend(Client(), Storage.Keys, _brokerKey, """{"anyOf":[]}"""));
        Assert.That(e!.Message, Does.Contain("release policy"));
    }

    [TestCase("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", "c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a")]
    [TestCase("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", "466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f")]
    public void Aes_key_wrap_with_padding_matches_rfc_5649_examples(string kek, string key, string wrapped)
    {
        byte[] k = Convert.FromHexString(kek);
        Assert.That(Convert.ToHexStringLower(AesKeyWrapWithPadding.Wrap(k, Convert.FromHexString(key))), Is.EqualTo(wrapped));
        Assert.That(AesKeyWrapWithPadding.TryUnwrap(k, Convert.FromHexString(wrapped), out byte[] back), Is.True);
        Assert.That(Convert.ToHexStringLower(back), Is.EqualTo(key));

        byte[] tampered = Convert.FromHexString(wrapped);
        tampered[^1] ^= 1;
        Assert.That(AesKeyWrapWithPadding.TryUnwrap(k, tampered, out _), Is.False);
    }
}
