using System.Collections.Concurrent;
using AttestBroker.Storage;

namespace AttestBroker.Keys.Backends;

/// <summary>One backend the router serves, with how the router treats it.</summary>
/// <param name="Backend">The backend; its <see cref="IKeyBackend.Name"/> is the name recorded with its keys.</param>
/// <param name="KeepsRecords">
/// True when the backend keeps its keys in the broker's key records (embedded, vault-transit, azure-keyvault,
/// azure-skr): the record names the backend. False when the backend is its own record (kubernetes-secrets): the router
/// asks it whether it holds a key id.
/// </param>
/// <param name="SharesKek">
/// True when the backend wraps under the broker's KEK beside the embedded store (kubernetes-secrets): a KEK rotation
/// rewraps its keys too, and a KEK version is retired only when neither it nor the embedded store uses it.
/// </param>
/// <param name="Rotate">What a rotation of this backend does (admin "rotate --backend NAME"); null: its RotateKekAsync.</param>
public sealed record RoutedBackend(IKeyBackend Backend, bool KeepsRecords = true, bool SharesKek = false, Func<CancellationToken, Task<KekRotationResult>>? Rotate = null);

/// <summary>
/// The broker's keystore over several named backends. Create and import go to the backend named (the default when
/// none is); release, disable, enable and info go to the backend holding the key: the one its key record names, or
/// for backends that keep no record (Kubernetes Secrets) the one that answers for it. A key id is unique across all
/// backends. A record naming a backend that is not configured is a <see cref="BackendError.Unavailable"/> failure
/// naming that backend, never a crash. KEK rotation is the embedded store's, extended to every backend that shares
/// the KEK; <see cref="RotateBackendAsync"/> rotates one backend.
/// </summary>
public sealed class KeyBackendRouter : IKeyBackend
{
    public const string RouterName = "router";

    private readonly IKeyRecordStore _records;
    private readonly Dictionary<string, RoutedBackend> _backends;
    private readonly RoutedBackend _kekOwner;
    private readonly IKeyWrapper? _sharedKek;

    // Key id -> backend name. A key never moves between backends and is never deleted, so a binding once seen stays true.
    private readonly ConcurrentDictionary<string, string> _locations = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _kekRotation = new(1, 1);

    /// <param name="records">The broker's key records (where record-keeping backends store theirs).</param>
    /// <param name="backends">Every configured backend; names must be distinct.</param>
    /// <param name="defaultBackend">Where create and import go when no backend is named.</param>
    /// <param name="kekBackend">The backend whose RotateKekAsync adds a KEK version (the embedded store).</param>
    /// <param name="sharedKek">
    /// The KEK wrapper itself, used to retire versions after a KEK rotation when backends share the KEK (their own
    /// wrappers must then neither add nor retire versions, and the KEK backend's must not retire: see <see cref="KekWrapperView"/>).
    /// </param>
    public KeyBackendRouter(IKeyRecordStore records, IEnumerable<RoutedBackend> backends, string defaultBackend, string kekBackend = EmbeddedKeyStore.DefaultBackendName, IKeyWrapper? sharedKek = null)
    {
        _records = records ?? throw new ArgumentNullException(nameof(records));
        ArgumentNullException.ThrowIfNull(backends);
        _backends = new Dictionary<string, RoutedBackend>(StringComparer.Ordinal);
        foreach (RoutedBackend b in backends)
        {
            if (!_backends.TryAdd(b.Backend.Name, b))
            {
                throw new ArgumentException($"two backends are named '{b.Backend.Name}'", nameof(backends));
            }
        }

        if (!_backends.TryGetValue(defaultBackend, out RoutedBackend? d))
        {
            throw new ArgumentException($"the default backend '{defaultBackend}' is not configured", nameof(defaultBackend));
        }

        if (!_backends.TryGetValue(kekBackend, out RoutedBackend? k))
        {
            throw new ArgumentException($"the KEK backend '{kekBackend}' is not configured", nameof(kekBackend));
        }

        Default = d.Backend;
        _kekOwner = k;
        _sharedKek = sharedKek;
    }

    public string Name => RouterName;

    /// <summary>Where create and import go when no backend is named.</summary>
    public IKeyBackend Default { get; }

    /// <summary>Every configured backend by name.</summary>
    public IReadOnlyCollection<IKeyBackend> Backends => [.. _backends.Values.Select(b => b.Backend)];

    public bool TryGetBackend(string name, out IKeyBackend backend)
    {
        if (name is not null && _backends.TryGetValue(name, out RoutedBackend? b))
        {
            backend = b.Backend;
            return true;
        }

        backend = null!;
        return false;
    }

    /// <summary>
    /// The backend holding <paramref name="keyId"/>, or null when no backend has it. Throws
    /// <see cref="KeyBackendException"/> (Unavailable, naming the backend) when its record names a backend that is not
    /// configured, and whatever the asked backends throw when they cannot answer.
    /// </summary>
    public async Task<IKeyBackend?> BackendForAsync(string keyId, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        if (_locations.TryGetValue(keyId, out string? known))
        {
            return _backends[known].Backend;
        }

        (IKeyBackend? backend, _) = await LocateAsync(keyId, cancellationToken).ConfigureAwait(false);
        return backend;
    }

    public Task<KeyInfo> CreateAsync(string keyId, CancellationToken cancellationToken = default) => CreateAsync(keyId, null, cancellationToken);

    /// <summary>Creates a key in the backend named <paramref name="backend"/> (the default when null).</summary>
    public async Task<KeyInfo> CreateAsync(string keyId, string? backend, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        IKeyBackend target = Resolve(backend);
        await RequireAbsentAsync(keyId, cancellationToken).ConfigureAwait(false);
        KeyInfo info = await CallAsync(target, () => target.CreateAsync(keyId, cancellationToken)).ConfigureAwait(false);
        _locations[keyId] = target.Name;
        return info;
    }

    public Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default) => ImportAsync(keyId, key, null, cancellationToken);

    /// <summary>Imports a key into the backend named <paramref name="backend"/> (the default when null).</summary>
    public async Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, string? backend, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        KeyRecords.RequireKeyMaterial(key.Span);
        IKeyBackend target = Resolve(backend);
        await RequireAbsentAsync(keyId, cancellationToken).ConfigureAwait(false);
        KeyInfo info = await CallAsync(target, () => target.ImportAsync(keyId, key, cancellationToken)).ConfigureAwait(false);
        _locations[keyId] = target.Name;
        return info;
    }

    public async Task<KeyInfo> GetForReleaseAsync(string keyId, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        IKeyBackend backend = await RequireBackendAsync(keyId, cancellationToken).ConfigureAwait(false);
        return await CallAsync(backend, () => backend.GetForReleaseAsync(keyId, destination, cancellationToken)).ConfigureAwait(false);
    }

    public async Task<KeyInfo> DisableAsync(string keyId, CancellationToken cancellationToken = default)
    {
        IKeyBackend backend = await RequireBackendAsync(keyId, cancellationToken).ConfigureAwait(false);
        return await CallAsync(backend, () => backend.DisableAsync(keyId, cancellationToken)).ConfigureAwait(false);
    }

    public async Task<KeyInfo> EnableAsync(string keyId, CancellationToken cancellationToken = default)
    {
        IKeyBackend backend = await RequireBackendAsync(keyId, cancellationToken).ConfigureAwait(false);
        return await CallAsync(backend, () => backend.EnableAsync(keyId, cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// The key's metadata, or null when no backend holds it. For keys with a record this is one read of the record
    /// (the same metadata the backend would give); otherwise the backends that keep no records are asked.
    /// </summary>
    public async Task<KeyInfo?> GetInfoAsync(string keyId, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        if (_locations.TryGetValue(keyId, out string? known) && !_backends[known].KeepsRecords)
        {
            IKeyBackend b = _backends[known].Backend;
            return await CallAsync(b, () => b.GetInfoAsync(keyId, cancellationToken)).ConfigureAwait(false);
        }

        (IKeyBackend? backend, KeyInfo? info) = await LocateAsync(keyId, cancellationToken).ConfigureAwait(false);
        return backend is null ? null : info;
    }

    /// <summary>
    /// Every key of every backend, plus keys whose record names a backend that is not configured (listed with that
    /// backend's name, so an operator sees them). Fails when a backend cannot list.
    /// </summary>
    public async Task<IReadOnlyList<KeyInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        var all = new List<KeyInfo>();
        foreach (RoutedBackend b in _backends.Values)
        {
            all.AddRange(await CallAsync(b.Backend, () => b.Backend.ListAsync(cancellationToken)).ConfigureAwait(false));
        }

        foreach (KeyRecord r in await KeyRecords.Storage(() => _records.ListAsync(cancellationToken)).ConfigureAwait(false))
        {
            if (!_backends.ContainsKey(r.Backend))
            {
                all.Add(KeyRecords.Info(r));
            }
        }

        return [.. all.OrderBy(k => k.KeyId, StringComparer.Ordinal)];
    }

    /// <summary>
    /// KEK rotation: the embedded store adds a KEK version and rewraps its keys; every backend sharing the KEK
    /// rewraps its keys under the new version; only then are KEK versions that no key of any of them names retired.
    /// </summary>
    public async Task<KekRotationResult> RotateKekAsync(CancellationToken cancellationToken = default)
    {
        await _kekRotation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            IKeyBackend owner = _kekOwner.Backend;
            KekRotationResult first = await CallAsync(owner, () => owner.RotateKekAsync(cancellationToken)).ConfigureAwait(false);
            List<RoutedBackend> sharing = [.. _backends.Values.Where(b => b.SharesKek && b != _kekOwner)];
            if (sharing.Count == 0 || _sharedKek is null)
            {
                return first;
            }

            int rewrapped = first.Rewrapped;
            foreach (RoutedBackend b in sharing)
            {
                KekRotationResult r = await CallAsync(b.Backend, () => b.Backend.RotateKekAsync(cancellationToken)).ConfigureAwait(false);
                rewrapped += r.Rewrapped;
            }

            IReadOnlyList<int> retired = [];
            if (_sharedKek.CanAddVersion)
            {
                var inUse = new HashSet<int>();
                foreach (RoutedBackend b in sharing.Append(_kekOwner))
                {
                    foreach (KeyInfo k in await CallAsync(b.Backend, () => b.Backend.ListAsync(cancellationToken)).ConfigureAwait(false))
                    {
                        inUse.Add(k.WrappingKeyVersion);
                    }
                }

                retired = await _sharedKek.RetireUnusedAsync(first.KekVersion, inUse, cancellationToken).ConfigureAwait(false);
            }

            return new KekRotationResult(first.KekVersion, rewrapped, retired);
        }
        finally
        {
            _kekRotation.Release();
        }
    }

    /// <summary>
    /// Rotates one backend: for the KEK backend a KEK rotation (<see cref="RotateKekAsync"/>); otherwise what the
    /// backend was configured to do (Vault: rotate the Transit key and rewrap, or rewrap to its newest version; Key
    /// Vault: rewrap under the newest key version; Kubernetes Secrets: rewrap under the current KEK).
    /// </summary>
    public async Task<KekRotationResult> RotateBackendAsync(string backend, CancellationToken cancellationToken = default)
    {
        IKeyBackend target = Resolve(backend);
        if (ReferenceEquals(target, _kekOwner.Backend))
        {
            return await RotateKekAsync(cancellationToken).ConfigureAwait(false);
        }

        RoutedBackend routed = _backends[target.Name];
        return await CallAsync(target, () => routed.Rotate is { } rotate ? rotate(cancellationToken) : target.RotateKekAsync(cancellationToken)).ConfigureAwait(false);
    }

    public override string ToString() => $"KeyBackendRouter {{ Default = {Default.Name}, Backends = {string.Join(", ", _backends.Keys)} }}";

    private IKeyBackend Resolve(string? name)
    {
        if (name is null)
        {
            return Default;
        }

        return _backends.TryGetValue(name, out RoutedBackend? b)
            ? b.Backend
            : throw new KeyBackendException(BackendError.Unsupported, name, $"no key backend named '{name}' is configured (configured: {string.Join(", ", _backends.Keys.Order(StringComparer.Ordinal))})");
    }

    private async Task RequireAbsentAsync(string keyId, CancellationToken cancellationToken)
    {
        KeyRecord? record = await KeyRecords.Storage(() => _records.GetAsync(keyId, cancellationToken)).ConfigureAwait(false);
        if (record is not null)
        {
            throw new KeyStoreException(KeyError.AlreadyExists, $"key '{keyId}' already exists (in backend {record.Backend})");
        }

        foreach (RoutedBackend b in _backends.Values.Where(b => !b.KeepsRecords))
        {
            if (await CallAsync(b.Backend, () => b.Backend.GetInfoAsync(keyId, cancellationToken)).ConfigureAwait(false) is not null)
            {
                throw new KeyStoreException(KeyError.AlreadyExists, $"key '{keyId}' already exists (in backend {b.Backend.Name})");
            }
        }
    }

    private async Task<IKeyBackend> RequireBackendAsync(string keyId, CancellationToken cancellationToken) =>
        await BackendForAsync(keyId, cancellationToken).ConfigureAwait(false)
        ?? throw new KeyStoreException(KeyError.NotFound, $"key '{keyId}' does not exist");

    private async Task<(IKeyBackend? Backend, KeyInfo? Info)> LocateAsync(string keyId, CancellationToken cancellationToken)
    {
        KeyRecord? record = await KeyRecords.Storage(() => _records.GetAsync(keyId, cancellationToken)).ConfigureAwait(false);
        if (record is not null)
        {
            if (!_backends.TryGetValue(record.Backend, out RoutedBackend? owner) || !owner.KeepsRecords)
            {
                throw new KeyBackendException(BackendError.Unavailable, record.Backend,
                    $"key '{keyId}' is kept in key backend '{record.Backend}', which this broker does not have configured (Broker:KeyBackends)");
            }

            _locations[keyId] = record.Backend;
            return (owner.Backend, KeyRecords.Info(record));
        }

        foreach (RoutedBackend b in _backends.Values.Where(b => !b.KeepsRecords))
        {
            if (await CallAsync(b.Backend, () => b.Backend.GetInfoAsync(keyId, cancellationToken)).ConfigureAwait(false) is { } info)
            {
                _locations[keyId] = b.Backend.Name;
                return (b.Backend, info);
            }
        }

        return (null, null);
    }

    /// <summary>Runs a backend call; a backend failure that names the backend by its kind is relabelled with its configured name.</summary>
    private static async Task<T> CallAsync<T>(IKeyBackend backend, Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (KeyBackendException e) when (e.Backend != backend.Name)
        {
            throw new KeyBackendException(e.Error, backend.Name, e.Message, e, e.ServiceStatus) { RetryAfter = e.RetryAfter };
        }
    }
}

/// <summary>
/// A view of the broker's KEK wrapper for one of several backends that share it: it wraps and unwraps as the
/// wrapper does, but may be barred from adding versions (a backend that only rewraps under the current KEK) or from
/// retiring them (the embedded store, whose retirement the router does once every sharing backend has rewrapped).
/// </summary>
public sealed class KekWrapperView : IKeyWrapper
{
    private readonly IKeyWrapper _inner;
    private readonly bool _mayAdd;
    private readonly bool _mayRetire;

    public KekWrapperView(IKeyWrapper inner, bool mayAdd, bool mayRetire)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        _mayAdd = mayAdd;
        _mayRetire = mayRetire;
    }

    public int CurrentVersion => _inner.CurrentVersion;

    public bool CanAddVersion => _mayAdd && _inner.CanAddVersion;

    public IReadOnlyList<int> Versions => _inner.Versions;

    public Task<WrappedKey> WrapAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default) => _inner.WrapAsync(keyId, key, cancellationToken);

    public Task UnwrapAsync(string keyId, WrappedKey wrapped, Memory<byte> destination, CancellationToken cancellationToken = default) => _inner.UnwrapAsync(keyId, wrapped, destination, cancellationToken);

    public Task<int> AddVersionAsync(CancellationToken cancellationToken = default) =>
        CanAddVersion ? _inner.AddVersionAsync(cancellationToken) : throw new KeyStoreException(KeyError.RotationUnsupported, "this backend rewraps under the current KEK; the KEK itself is rotated by 'kek rotate'");

    /// <summary>Retires when allowed; otherwise leaves the version in place (the router retires it when nothing uses it).</summary>
    public Task RetireVersionAsync(int version, CancellationToken cancellationToken = default) =>
        _mayRetire ? _inner.RetireVersionAsync(version, cancellationToken) : Task.CompletedTask;
}
