using System.Text;
using AttestBroker.Keys.Backends.Vault;
using AttestBroker.Storage;
using Microsoft.Extensions.Time.Testing;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>
/// Vault Transit backend against <see cref="FakeVault"/> (contract tests: the documented request and response
/// shapes, not a live Vault; see VaultTransitLiveTests for the same journey against a real dev server).
/// </summary>
public sealed class VaultTransitContractTests : StorageFixture
{
    private LocalService _service = null!;
    private FakeVault _vault = null!;
    private readonly List<IDisposable> _disposables = [];

    [SetUp]
    public async Task StartVault()
    {
        _service = await LocalService.StartAsync(https: false);
        _vault = new FakeVault(_service);
    }

    [TearDown]
    public async Task StopVault()
    {
        foreach (IDisposable d in _disposables)
        {
            d.Dispose();
        }

        await _service.DisposeAsync();
    }

    private VaultTransitOptions Options(Action<VaultTransitOptions>? change = null)
    {
        var o = new VaultTransitOptions
        {
            Address = new Uri($"http://127.0.0.1:{_service.Address.Port}/"),
            KeyName = _vault.KeyName,
            Token = FakeVault.RootToken,
            RetryBaseDelay = TimeSpan.FromMilliseconds(10),
            MaxRetryDelay = TimeSpan.FromSeconds(2),
            AttemptTimeout = TimeSpan.FromSeconds(5),
        };
        change?.Invoke(o);
        return o;
    }

    private (VaultTransitKeyBackend Backend, VaultTransitClient Client, ListLogger<VaultTransitClient> Log) Open(Action<VaultTransitOptions>? change = null, TimeProvider? time = null)
    {
        var log = new ListLogger<VaultTransitClient>();
        var client = new VaultTransitClient(Options(change), null, log, time);
        _disposables.Add(client);
        return (new VaultTransitKeyBackend(client, Storage.Keys, time), client, log);
    }

    [Test]
    public async Task Created_key_is_a_wrapped_data_key_whose_release_is_what_vault_decrypts_it_to()
    {
        var (backend, _, _) = Open();
        KeyInfo info = await backend.CreateAsync("model-a");

        KeyRecord record = (await Storage.Keys.GetAsync("model-a"))!;
        string ciphertext = Encoding.ASCII.GetString(record.Wrapped);
        Assert.Multiple(() =>
        {
            Assert.That(info.Backend, Is.EqualTo("vault-transit"));
            Assert.That(record.WrappingKeyId, Is.EqualTo("vault-transit:transit/model-keys"));
            Assert.That(record.WrappingKeyVersion, Is.EqualTo(1));
            Assert.That(ciphertext, Does.StartWith("vault:v1:"));
            Assert.That(_service.Count("POST", "/v1/transit/datakey/wrapped/model-keys"), Is.EqualTo(1));
        });
        byte[] released = await ReleaseAsync(backend, "model-a");
        Assert.That(released, Is.EqualTo(_vault.Open(ciphertext)));
        Assert.That(released.Any(b => b != 0), Is.True);
    }

    [Test]
    public async Task Imported_key_is_encrypted_by_vault_and_released_unchanged()
    {
        var (backend, _, _) = Open();
        byte[] key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        await backend.ImportAsync("model-b", key);

        SeenRequest encrypt = _service.Requests.Single(r => r.Path == "/v1/transit/encrypt/model-keys");
        Assert.That(FakeVault.ParseBody(encrypt.Body).GetProperty("plaintext").GetString(), Is.EqualTo(Convert.ToBase64String(key)));
        Assert.That(await ReleaseAsync(backend, "model-b"), Is.EqualTo(key));
    }

    [Test]
    public async Task Rotation_rotates_the_transit_key_and_rewraps_every_ciphertext_to_the_new_version()
    {
        var (backend, _, _) = Open();
        await backend.CreateAsync("k1");
        await backend.CreateAsync("k2");
        byte[] before1 = await ReleaseAsync(backend, "k1");
        byte[] before2 = await ReleaseAsync(backend, "k2");

        KekRotationResult result = await backend.RotateKekAsync();

        Assert.Multiple(async () =>
        {
            Assert.That(result.KekVersion, Is.EqualTo(2));
            Assert.That(result.Rewrapped, Is.EqualTo(2));
            Assert.That(_service.Count("POST", "/v1/transit/keys/model-keys/rotate"), Is.EqualTo(1));
            Assert.That(_service.Count("POST", "/v1/transit/rewrap/model-keys"), Is.EqualTo(2));
            Assert.That((await Storage.Keys.GetAsync("k1"))!.WrappingKeyVersion, Is.EqualTo(2));
            Assert.That(Encoding.ASCII.GetString((await Storage.Keys.GetAsync("k2"))!.Wrapped), Does.StartWith("vault:v2:"));
            Assert.That(await ReleaseAsync(backend, "k1"), Is.EqualTo(before1));
            Assert.That(await ReleaseAsync(backend, "k2"), Is.EqualTo(before2));
        });
    }

    [Test]
    public async Task Disabled_key_is_refused_without_asking_vault_and_released_again_once_enabled()
    {
        var (backend, _, _) = Open();
        await backend.CreateAsync("k");
        await backend.DisableAsync("k");

        var e = Assert.ThrowsAsync<KeyStoreException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Error, Is.EqualTo(KeyError.Disabled));
        Assert.That(_service.Count("POST", "/decrypt/"), Is.Zero);

        await backend.EnableAsync("k");
        Assert.That(await ReleaseAsync(backend, "k"), Has.Length.EqualTo(32));
    }

    [Test]
    public async Task Vault_403_is_backend_denied_503_with_vaults_cause()
    {
        var (backend, _, _) = Open();
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/decrypt/", 403, null, """{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"""));

        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.Multiple(() =>
        {
            Assert.That(e!.Code, Is.EqualTo("backend-denied"));
            Assert.That(e.HttpStatus, Is.EqualTo(503));
            Assert.That(e.ServiceStatus, Is.EqualTo(403));
            Assert.That(e.Message, Does.Contain("permission denied"));
        });
    }

    [Test]
    public async Task Vault_404_is_backend_key_not_found()
    {
        var (backend, _, _) = Open();
        _vault.Faults.Enqueue(("/datakey/", 404, null, """{"errors":["encryption key not found"]}"""));

        var e = Assert.ThrowsAsync<KeyBackendException>(() => backend.CreateAsync("k"));
        Assert.That(e!.Code, Is.EqualTo("backend-key-not-found"));
        Assert.That(e.Message, Does.Contain("encryption key not found"));
        Assert.That(await Storage.Keys.GetAsync("k"), Is.Null);
    }

    [Test]
    public async Task Vault_429_is_retried_after_the_retry_after_it_names()
    {
        var (backend, _, log) = Open();
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/decrypt/", 429, "1", """{"errors":["rate limit quota exceeded"]}"""));

        Assert.That(await ReleaseAsync(backend, "k"), Has.Length.EqualTo(32));
        Assert.That(_service.Count("POST", "/decrypt/"), Is.EqualTo(2));
        Assert.That(log.Lines, Has.Some.Contains("(429); retry 1 in 00:00:01"));
    }

    [Test]
    public async Task Vault_500_is_retried_and_after_the_last_retry_is_backend_unavailable()
    {
        var (backend, _, _) = Open(o => o.MaxRetries = 2);
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/decrypt/", 500, null, """{"errors":["internal error"]}"""));
        Assert.That(await ReleaseAsync(backend, "k"), Has.Length.EqualTo(32));

        for (int i = 0; i < 3; i++)
        {
            _vault.Faults.Enqueue(("/decrypt/", 503, null, """{"errors":["Vault is sealed"]}"""));
        }

        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Code, Is.EqualTo("backend-unavailable"));
        Assert.That(e.Message, Does.Contain("Vault is sealed"));
        Assert.That(_service.Count("POST", "/decrypt/"), Is.EqualTo(2 + 3));
    }

    [Test]
    public async Task Malformed_json_from_vault_is_backend_bad_response_and_zeroes_the_destination()
    {
        var (backend, _, _) = Open();
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/decrypt/", 200, null, """{"data":{"plaintext":"AAAA"""));
        byte[] buffer = Enumerable.Repeat((byte)0xAA, 32).ToArray();

        var e = Assert.ThrowsAsync<KeyBackendException>(() => backend.GetForReleaseAsync("k", buffer));
        Assert.That(e!.Code, Is.EqualTo("backend-bad-response"));
        Assert.That(buffer, Is.All.EqualTo((byte)0));
    }

    [Test]
    public async Task Plaintext_of_the_wrong_length_is_refused()
    {
        var (backend, _, _) = Open();
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/decrypt/", 200, null, """{"data":{"plaintext":"AAECAwQFBgcICQoLDA0ODw=="}}"""));

        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Message, Does.Contain("16 bytes, not a 32-byte key"));
    }

    [Test]
    public async Task A_vault_that_does_not_answer_is_backend_unavailable_after_the_attempt_timeouts()
    {
        var (backend, _, _) = Open(o =>
        {
            o.AttemptTimeout = TimeSpan.FromSeconds(1.5);
            o.MaxRetries = 1;
        });
        await backend.CreateAsync("k");
        _vault.Faults.Enqueue(("/decrypt/", 0, null, string.Empty));
        _vault.Faults.Enqueue(("/decrypt/", 0, null, string.Empty));

        var e = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Code, Is.EqualTo("backend-unavailable"));
        Assert.That(e.Message, Does.Contain("no answer within 1.5 s after 2 attempts"));
    }

    [Test]
    public async Task Kubernetes_login_uses_the_service_account_jwt_and_renews_before_the_lease_ends()
    {
        string jwtFile = Path.Combine(Directory, "sa-token");
        await File.WriteAllTextAsync(jwtFile, "eyJ.sa-jwt.sig\n");
        _vault.ExpectedJwt = "eyJ.sa-jwt.sig";
        _vault.TokenTtlSeconds = 600;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var (backend, _, log) = Open(o =>
        {
            o.AuthMethod = VaultAuthMethod.Kubernetes;
            o.Token = null;
            o.KubernetesRole = "attestbroker";
            o.ServiceAccountTokenPath = jwtFile;
            o.MaxRetries = 0;
        }, time);

        await backend.CreateAsync("k");
        Assert.That(_service.Count("POST", "/v1/auth/kubernetes/login"), Is.EqualTo(1));
        SeenRequest create = _service.Requests.Single(r => r.Path.Contains("/datakey/", StringComparison.Ordinal));
        Assert.That(create.Headers["X-Vault-Token"], Is.EqualTo(FakeVault.K8sToken));

        time.Advance(TimeSpan.FromSeconds(300));
        await ReleaseAsync(backend, "k");
        Assert.That(_service.Count("POST", "/v1/auth/token/renew-self"), Is.Zero);

        time.Advance(TimeSpan.FromSeconds(120)); // past 2/3 of the 600 s lease
        await ReleaseAsync(backend, "k");
        Assert.That(_service.Count("POST", "/v1/auth/token/renew-self"), Is.EqualTo(1));

        // A revoked token: the 403 makes the client log in again once, and the call succeeds.
        _vault.Revoke(FakeVault.K8sToken);
        Assert.That(await ReleaseAsync(backend, "k"), Has.Length.EqualTo(32));
        Assert.That(_service.Count("POST", "/v1/auth/kubernetes/login"), Is.EqualTo(2));
        Assert.That(log.Lines, Has.None.Contains("never-logged"));
        Assert.That(log.Lines, Has.None.Contains("sa-jwt"));
    }

    [Test]
    public async Task Namespace_header_is_sent_when_configured()
    {
        var (backend, _, _) = Open(o => o.Namespace = "team-ml");
        await backend.CreateAsync("k");
        Assert.That(_service.Requests.All(r => r.Headers.TryGetValue("X-Vault-Namespace", out string? ns) && ns == "team-ml"), Is.True);
    }

    [Test]
    public async Task Logs_hold_neither_the_token_nor_key_bytes_nor_ciphertext()
    {
        var (backend, _, log) = Open();
        byte[] key = Enumerable.Range(100, 32).Select(i => (byte)i).ToArray();
        await backend.ImportAsync("k", key);
        await ReleaseAsync(backend, "k");
        _vault.Faults.Enqueue(("/decrypt/", 500, null, """{"errors":["x"]}"""));
        await ReleaseAsync(backend, "k");
        string ciphertext = Encoding.ASCII.GetString((await Storage.Keys.GetAsync("k"))!.Wrapped);

        Assert.That(log.Lines, Is.Not.Empty);
        Assert.That(log.Lines, Has.None.Contains(FakeVault.RootToken));
        Assert.That(log.Lines, Has.None.Contains(Convert.ToBase64String(key)));
        Assert.That(log.Lines, Has.None.Contains(ciphertext.Split(':')[2]));
    }

    [Test]
    public async Task Health_check_reports_the_transit_key_or_the_denial()
    {
        var (backend, _, _) = Open();
        BackendHealth ok = await backend.CheckHealthAsync();
        Assert.That(ok.Healthy, Is.True);
        Assert.That(ok.Detail, Does.Contain("aes256-gcm96"));

        _vault.Faults.Enqueue(("/keys/", 403, null, """{"errors":["permission denied"]}"""));
        BackendHealth denied = await backend.CheckHealthAsync();
        Assert.That(denied.Healthy, Is.False);
        Assert.That(denied.Detail, Does.StartWith("backend-denied"));
    }

    [Test]
    public void Options_without_a_token_or_role_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new VaultTransitOptions { Address = new Uri("http://v:8200"), KeyName = "k" }.Validate());
        var e = Assert.Throws<ArgumentException>(() => new VaultTransitOptions { Address = new Uri("http://v:8200"), KeyName = "k", AuthMethod = VaultAuthMethod.Kubernetes }.Validate());
        Assert.That(e!.Message, Does.Contain("KubernetesRole"));
        Assert.Throws<ArgumentException>(() => new VaultTransitOptions { Address = new Uri("http://v:8200"), KeyName = "../sys", Token = "t" }.Validate());
    }
}
