using AttestBroker.Keys;

namespace AttestBroker.Replicas.Tests;

/// <summary>
/// The replica's real keystore behind a switch: while <see cref="Down"/>, every call fails the way a remote key
/// backend (Vault, a KMS) that cannot be reached does, with <see cref="KeyError.StorageFailed"/>.
/// </summary>
internal sealed class SwitchableKeyBackend : IKeyBackend
{
    private readonly IKeyBackend _inner;
    private volatile bool _down;

    public SwitchableKeyBackend(IKeyBackend inner) => _inner = inner;

    public bool Down
    {
        get => _down;
        set => _down = value;
    }

    public string Name => _inner.Name;

    public Task<KeyInfo> CreateAsync(string keyId, CancellationToken cancellationToken = default) => Up(() => _inner.CreateAsync(keyId, cancellationToken));

    public Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default) => Up(() => _inner.ImportAsync(keyId, key, cancellationToken));

    public Task<KeyInfo> GetForReleaseAsync(string keyId, Memory<byte> destination, CancellationToken cancellationToken = default) => Up(() => _inner.GetForReleaseAsync(keyId, destination, cancellationToken));

    public Task<KeyInfo> DisableAsync(string keyId, CancellationToken cancellationToken = default) => Up(() => _inner.DisableAsync(keyId, cancellationToken));

    public Task<KeyInfo> EnableAsync(string keyId, CancellationToken cancellationToken = default) => Up(() => _inner.EnableAsync(keyId, cancellationToken));

    public Task<KeyInfo?> GetInfoAsync(string keyId, CancellationToken cancellationToken = default) => Up(() => _inner.GetInfoAsync(keyId, cancellationToken));

    public Task<IReadOnlyList<KeyInfo>> ListAsync(CancellationToken cancellationToken = default) => Up(() => _inner.ListAsync(cancellationToken));

    public Task<KekRotationResult> RotateKekAsync(CancellationToken cancellationToken = default) => Up(() => _inner.RotateKekAsync(cancellationToken));

    private Task<T> Up<T>(Func<Task<T>> call) =>
        _down ? Task.FromException<T>(new KeyStoreException(KeyError.StorageFailed, "the key backend cannot be reached")) : call();
}
