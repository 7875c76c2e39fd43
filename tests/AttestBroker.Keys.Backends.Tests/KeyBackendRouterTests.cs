using AttestBroker.Keys.Backends.KubernetesSecrets;
using AttestBroker.Storage;
using k8s;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>
/// <see cref="KeyBackendRouter"/> over the embedded keystore and a Kubernetes Secrets backend sharing one KEK (the
/// Secrets against <see cref="FakeSecretsApi"/>, a contract fake): routing by record or by asking, unique ids, a
/// record naming an unconfigured backend, and a KEK rotation that never retires a version a Secret still uses.
/// </summary>
public sealed class KeyBackendRouterTests : StorageFixture
{
    private LocalService _service = null!;
    private FakeSecretsApi _api = null!;
    private FileKekSource _kek = null!;
    private k8s.Kubernetes _client = null!;
    private AesGcmKeyWrapper _shared = null!;
    private EmbeddedKeyStore _embedded = null!;
    private KubernetesSecretsKeyBackend _secrets = null!;
    private KeyBackendRouter _router = null!;

    [SetUp]
    public async Task Start()
    {
        _service = await LocalService.StartAsync(https: false);
        _api = new FakeSecretsApi(_service);
        _kek = new FileKekSource(Path.Combine(Directory, "kek"));
        _client = new k8s.Kubernetes(new KubernetesClientConfiguration { Host = $"http://127.0.0.1:{_service.Address.Port}", DisableHttp2 = true });
        _shared = new AesGcmKeyWrapper(_kek);
        _embedded = new EmbeddedKeyStore(Storage.Keys, new KekWrapperView(_shared, mayAdd: true, mayRetire: false));
        _secrets = new KubernetesSecretsKeyBackend(_client, new KekWrapperView(_shared, mayAdd: false, mayRetire: false),
            new KubernetesSecretsOptions { Namespace = "attestbroker", MaxRetries = 0 }, name: "k8s");
        _router = new KeyBackendRouter(Storage.Keys, [new RoutedBackend(_embedded, SharesKek: true), new RoutedBackend(_secrets, KeepsRecords: false, SharesKek: true)],
            EmbeddedKeyStore.DefaultBackendName, EmbeddedKeyStore.DefaultBackendName, _shared);
    }

    [TearDown]
    public async Task Stop()
    {
        _client.Dispose();
        _kek.Dispose();
        await _service.DisposeAsync();
    }

    [Test]
    public async Task Keys_go_to_the_named_backend_and_are_found_there_by_record_or_by_asking()
    {
        byte[] a = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        byte[] b = Enumerable.Range(40, 32).Select(i => (byte)i).ToArray();
        await _router.ImportAsync("in-embedded", a);
        await _router.ImportAsync("in-secrets", b, "k8s");

        // A fresh router (another replica) has no memory of where keys are.
        var replica = new KeyBackendRouter(Storage.Keys, [new RoutedBackend(_embedded, SharesKek: true), new RoutedBackend(_secrets, KeepsRecords: false, SharesKek: true)],
            EmbeddedKeyStore.DefaultBackendName, EmbeddedKeyStore.DefaultBackendName, _shared);
        Assert.That((await replica.BackendForAsync("in-secrets"))!.Name, Is.EqualTo("k8s"));
        Assert.That((await replica.BackendForAsync("in-embedded"))!.Name, Is.EqualTo("embedded"));
        Assert.That(await replica.BackendForAsync("nowhere"), Is.Null);
        Assert.That(await ReleaseAsync(replica, "in-secrets"), Is.EqualTo(b));
        Assert.That(await ReleaseAsync(replica, "in-embedded"), Is.EqualTo(a));
        Assert.That((await replica.ListAsync()).Select(k => (k.KeyId, k.Backend)), Is.EqualTo(new[] { ("in-embedded", "embedded"), ("in-secrets", "k8s") }));

        var dup = Assert.ThrowsAsync<KeyStoreException>(() => replica.CreateAsync("in-secrets", "embedded"));
        Assert.That((dup!.Error, dup.Message), Is.EqualTo((KeyError.AlreadyExists, "key 'in-secrets' already exists (in backend k8s)")));
        var unknown = Assert.ThrowsAsync<KeyBackendException>(() => replica.CreateAsync("x", "vault"));
        Assert.That((unknown!.Error, unknown.Backend), Is.EqualTo((BackendError.Unsupported, "vault")));
    }

    [Test]
    public async Task Routing_adds_no_storage_read_to_a_release_info_then_release_reads_the_record_twice_as_the_embedded_store_alone_does()
    {
        var counting = new CountingRecords(Storage.Keys);
        var embedded = new EmbeddedKeyStore(counting, _shared);
        var router = new KeyBackendRouter(counting, [new RoutedBackend(embedded)], EmbeddedKeyStore.DefaultBackendName);
        byte[] key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        await router.ImportAsync("counted", key);

        foreach (IKeyBackend target in new IKeyBackend[] { embedded, router })
        {
            counting.Reads = 0;
            Assert.That(await target.GetInfoAsync("counted"), Is.Not.Null);
            Assert.That(await ReleaseAsync(target, "counted"), Is.EqualTo(key));
            Assert.That(counting.Reads, Is.EqualTo(2), target.Name);
        }
    }

    [Test]
    public async Task A_record_naming_a_backend_that_is_not_configured_is_unavailable_naming_it()
    {
        await Storage.Keys.InsertAsync(new KeyRecord("orphan", [1, 2, 3], "vault-transit:transit/k", 1, KeyState.Enabled, "old-vault", DateTimeOffset.UtcNow, null, null));

        var ex = Assert.ThrowsAsync<KeyBackendException>(() => ReleaseAsync(_router, "orphan"));
        Assert.That((ex!.Error, ex.Backend, ex.Code), Is.EqualTo((BackendError.Unavailable, "old-vault", "backend-unavailable")));
        Assert.That(ex.Message, Does.Contain("old-vault").And.Contain("not have configured"));
        Assert.That((await _router.ListAsync()).Single(k => k.KeyId == "orphan").Backend, Is.EqualTo("old-vault"));
    }

    [Test]
    public async Task A_kek_rotation_rewraps_both_backends_and_retires_the_old_version_only_when_neither_uses_it()
    {
        byte[] a = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        byte[] b = Enumerable.Range(40, 32).Select(i => (byte)i).ToArray();
        await _router.ImportAsync("in-embedded", a);
        await _router.ImportAsync("in-secrets", b, "k8s");

        // The Secrets' rewrap fails half-way: the embedded store has moved to version 2, the Secret is still at 1.
        _api.Faults.Enqueue((_secrets.SecretName("in-secrets"), 503, null));
        var failed = Assert.ThrowsAsync<KeyBackendException>(() => _router.RotateKekAsync());
        Assert.That(failed!.Error, Is.EqualTo(BackendError.Unavailable));
        Assert.That(_kek.Versions, Is.EqualTo(new[] { 1, 2 }), "version 1 is kept while a Secret is wrapped under it");
        Assert.That((await _router.GetInfoAsync("in-secrets"))!.WrappingKeyVersion, Is.EqualTo(1));
        Assert.That(await ReleaseAsync(_router, "in-secrets"), Is.EqualTo(b));

        KekRotationResult done = await _router.RotateKekAsync();
        Assert.That(done.KekVersion, Is.EqualTo(3));
        Assert.That(done.RetiredVersions, Is.EqualTo(new[] { 1, 2 }));
        Assert.That(_kek.Versions, Is.EqualTo(new[] { 3 }));
        Assert.That((await _router.ListAsync()).Select(k => k.WrappingKeyVersion), Is.All.EqualTo(3));
        Assert.That(await ReleaseAsync(_router, "in-secrets"), Is.EqualTo(b));
        Assert.That(await ReleaseAsync(_router, "in-embedded"), Is.EqualTo(a));

        // Rotating the Secrets backend alone rewraps under the current KEK and adds no version.
        KekRotationResult own = await _router.RotateBackendAsync("k8s");
        Assert.That((own.KekVersion, own.Rewrapped, _kek.Versions.Count), Is.EqualTo((3, 0, 1)));
    }

    /// <summary>Counts record reads (GetAsync) on the way to the real store.</summary>
    private sealed class CountingRecords(IKeyRecordStore inner) : IKeyRecordStore
    {
        public int Reads { get; set; }

        public Task InsertAsync(KeyRecord record, CancellationToken cancellationToken = default) => inner.InsertAsync(record, cancellationToken);

        public Task<KeyRecord?> GetAsync(string keyId, CancellationToken cancellationToken = default)
        {
            Reads++;
            return inner.GetAsync(keyId, cancellationToken);
        }

        public Task<IReadOnlyList<KeyRecord>> ListAsync(CancellationToken cancellationToken = default) => inner.ListAsync(cancellationToken);

        public Task<bool> SetStateAsync(string keyId, KeyState state, DateTimeOffset at, CancellationToken cancellationToken = default) => inner.SetStateAsync(keyId, state, at, cancellationToken);

        public Task<bool> ReplaceWrappingAsync(string keyId, string expectedKekId, int expectedKekVersion, byte[] wrapped, string kekId, int kekVersion, DateTimeOffset rotatedAt, CancellationToken cancellationToken = default) =>
            inner.ReplaceWrappingAsync(keyId, expectedKekId, expectedKekVersion, wrapped, kekId, kekVersion, rotatedAt, cancellationToken);
    }
}
