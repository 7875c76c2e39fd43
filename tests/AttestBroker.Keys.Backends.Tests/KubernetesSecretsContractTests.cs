using System.Text.Json.Nodes;
using AttestBroker.Keys.Backends.KubernetesSecrets;
using k8s;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>Kubernetes Secrets backend through KubernetesClient against <see cref="FakeSecretsApi"/> (contract tests).</summary>
public sealed class KubernetesSecretsContractTests
{
    private LocalService _service = null!;
    private FakeSecretsApi _api = null!;
    private string _dir = null!;
    private FileKekSource _kek = null!;
    private k8s.Kubernetes _client = null!;

    [SetUp]
    public async Task Start()
    {
        _service = await LocalService.StartAsync(https: false);
        _api = new FakeSecretsApi(_service);
        _dir = Directory.CreateTempSubdirectory("ab-k8s-secrets-").FullName;
        _kek = new FileKekSource(Path.Combine(_dir, "kek"));
        _client = new k8s.Kubernetes(new KubernetesClientConfiguration { Host = $"http://127.0.0.1:{_service.Address.Port}", DisableHttp2 = true });
    }

    [TearDown]
    public async Task Stop()
    {
        _client.Dispose();
        _kek.Dispose();
        await _service.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private KubernetesSecretsKeyBackend Backend() =>
        new(_client, new AesGcmKeyWrapper(_kek), new KubernetesSecretsOptions { Namespace = "attestbroker", RetryBaseDelay = TimeSpan.FromMilliseconds(10) });

    private static async Task<byte[]> ReleaseAsync(IKeyBackend b, string id)
    {
        byte[] buffer = new byte[32];
        await b.GetForReleaseAsync(id, buffer);
        return buffer;
    }

    [Test]
    public async Task Key_is_kept_wrapped_in_a_labelled_secret_and_released_unchanged()
    {
        KubernetesSecretsKeyBackend backend = Backend();
        byte[] key = Enumerable.Range(7, 32).Select(i => (byte)i).ToArray();
        KeyInfo info = await backend.ImportAsync("llama:v1", key);

        JsonObject secret = _api.Get("attestbroker", backend.SecretName("llama:v1"))!;
        byte[] wrapped = Convert.FromBase64String((string)secret["data"]!["wrapped"]!);
        Assert.Multiple(() =>
        {
            Assert.That(backend.SecretName("llama:v1"), Does.Match("^attestbroker-key-[0-9a-f]{32}$"));
            Assert.That((string?)secret["type"], Is.EqualTo("attestbroker.io/wrapped-key"));
            Assert.That((string?)secret["metadata"]!["labels"]!["app.kubernetes.io/managed-by"], Is.EqualTo("attestbroker"));
            Assert.That((string?)secret["metadata"]!["annotations"]!["attestbroker.io/key-id"], Is.EqualTo("llama:v1"));
            Assert.That((string?)secret["metadata"]!["annotations"]!["attestbroker.io/state"], Is.EqualTo("enabled"));
            Assert.That(wrapped, Has.Length.EqualTo(AesGcmKeyWrapper.WrappedLength));
            Assert.That(secret.ToJsonString(), Does.Not.Contain(Convert.ToBase64String(key)), "the key never reaches etcd in the clear");
            Assert.That(info.Backend, Is.EqualTo("kubernetes-secrets"));
            Assert.That(info.WrappingKeyVersion, Is.EqualTo(1));
        });
        Assert.That(await ReleaseAsync(backend, "llama:v1"), Is.EqualTo(key));
        Assert.That((await backend.ListAsync()).Select(k => k.KeyId), Is.EqualTo(new[] { "llama:v1" }));
    }

    [Test]
    public async Task Created_key_cannot_be_created_twice()
    {
        KubernetesSecretsKeyBackend backend = Backend();
        await backend.CreateAsync("k");
        var e = Assert.ThrowsAsync<KeyStoreException>(() => backend.CreateAsync("k"));
        Assert.That(e!.Error, Is.EqualTo(KeyError.AlreadyExists));
    }

    [Test]
    public async Task Disable_is_an_annotation_that_stops_release_until_enabled()
    {
        KubernetesSecretsKeyBackend backend = Backend();
        await backend.CreateAsync("k");
        KeyInfo disabled = await backend.DisableAsync("k");
        Assert.That(disabled.State, Is.EqualTo(AttestBroker.Storage.KeyState.Disabled));
        Assert.That((string?)_api.Get("attestbroker", backend.SecretName("k"))!["metadata"]!["annotations"]!["attestbroker.io/state"], Is.EqualTo("disabled"));
        var e = Assert.ThrowsAsync<KeyStoreException>(() => ReleaseAsync(backend, "k"));
        Assert.That(e!.Error, Is.EqualTo(KeyError.Disabled));

        await backend.EnableAsync("k");
        Assert.That(await ReleaseAsync(backend, "k"), Has.Length.EqualTo(32));
    }

    [Test]
    public async Task Rotation_rewraps_every_secret_under_a_new_kek_version_and_retires_the_old_one()
    {
        KubernetesSecretsKeyBackend backend = Backend();
        await backend.CreateAsync("a");
        await backend.CreateAsync("b");
        byte[] a = await ReleaseAsync(backend, "a");
        byte[] b = await ReleaseAsync(backend, "b");

        KekRotationResult result = await backend.RotateKekAsync();

        Assert.Multiple(async () =>
        {
            Assert.That(result.KekVersion, Is.EqualTo(2));
            Assert.That(result.Rewrapped, Is.EqualTo(2));
            Assert.That(result.RetiredVersions, Is.EqualTo(new[] { 1 }));
            Assert.That(Convert.FromBase64String((string)_api.Get("attestbroker", backend.SecretName("a"))!["data"]!["kek-version"]!), Is.EqualTo("2"u8.ToArray()));
            Assert.That(await ReleaseAsync(backend, "a"), Is.EqualTo(a));
            Assert.That(await ReleaseAsync(backend, "b"), Is.EqualTo(b));
        });
    }

    [Test]
    public async Task A_conflicting_writer_makes_the_update_read_again_and_succeed_once_and_fail_typed_twice()
    {
        KubernetesSecretsKeyBackend backend = Backend();
        await backend.CreateAsync("k");
        string name = backend.SecretName("k");
        _api.ConcurrentWriters.Enqueue(name);
        await backend.DisableAsync("k");
        Assert.That(_service.Count("PUT", name), Is.EqualTo(2));
        Assert.That((await backend.GetInfoAsync("k"))!.State, Is.EqualTo(AttestBroker.Storage.KeyState.Disabled));

        _api.ConcurrentWriters.Enqueue(name);
        _api.ConcurrentWriters.Enqueue(name);
        var e = Assert.ThrowsAsync<KeyBackendException>(() => backend.EnableAsync("k"));
        Assert.That(e!.Code, Is.EqualTo("backend-conflict"));
    }

    [Test]
    public async Task Api_errors_map_to_typed_backend_errors_and_transient_ones_are_retried()
    {
        KubernetesSecretsKeyBackend backend = Backend();
        await backend.CreateAsync("k");
        string name = backend.SecretName("k");

        _api.Faults.Enqueue((name, 403, null));
        var denied = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(denied!.Code, Is.EqualTo("backend-denied"));

        _api.Faults.Enqueue((name, 429, "1"));
        _api.Faults.Enqueue((name, 500, null));
        Assert.That(await ReleaseAsync(backend, "k"), Has.Length.EqualTo(32));
        Assert.That(_service.Count("GET", name), Is.EqualTo(1 + 3), "the 403 is not retried; the 429 and the 500 are");

        for (int i = 0; i < 4; i++)
        {
            _api.Faults.Enqueue((name, 503, null));
        }

        var down = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(backend, "k"));
        Assert.That(down!.Code, Is.EqualTo("backend-unavailable"));

        var missing = Assert.ThrowsAsync<KeyStoreException>(() => ReleaseAsync(backend, "nope"));
        Assert.That(missing!.Error, Is.EqualTo(KeyError.NotFound));
    }

    [Test]
    public async Task Health_check_lists_the_secrets_or_reports_the_denial()
    {
        KubernetesSecretsKeyBackend backend = Backend();
        await backend.CreateAsync("k");
        BackendHealth ok = await backend.CheckHealthAsync();
        Assert.That(ok.Healthy, Is.True);
        Assert.That(ok.Detail, Does.Contain("1 key secret(s)"));

        _api.Faults.Enqueue(("/secrets", 403, null));
        BackendHealth bad = await backend.CheckHealthAsync();
        Assert.That(bad.Healthy, Is.False);
        Assert.That(bad.Detail, Does.StartWith("backend-denied"));
    }
}
