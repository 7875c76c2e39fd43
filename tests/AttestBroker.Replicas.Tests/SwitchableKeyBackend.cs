using AttestBroker.Keys;

namespace AttestBroker.Replicas.Tests;

/// <summary>
/// The replica's real keystore behind a switch: while <see cref="Down"/>, every call fails the way a remote key
/// backend (Vault, a KMS) that cannot be reached does, with <see cref="KeyError.StorageFailed"/>.
/// </summary>
internal sealed class SwitchableKeyBackend : IKeyBackend
{
    private IKeyBackend? _inner;
    private volatile bool _down;

    /// <summary>The real keystore; set when the broker's service provider makes this backend.</summary>
    public IKeyBackend Inner
    {
        get => _inner ?? throw new InvalidOperationException("the wrapped key backend is not made yet");
        set => _inner = value;
    }

    public bool Down
    {
        get => _down;
        set => _down = value;
    }

    public string Name => Inner.Name;

    public Task<KeyInfo> CreateAsync(string keyId, CancellationToken cancellationToken = default) => Up(() => Inner.CreateAsync(keyId, cancellationToken));

    public Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default) => Up(() => Inner.ImportAsync(keyId, key, cancellationToken));

    public Task<KeyInfo> GetForReleaseAsync(string keyId, Memory<byte> destination, CancellationToken cancellationToken = default) => Up(() => Inner.GetForReleaseAsync(keyId, destination, cancellationToken));

    public Task<KeyInfo> DisableAsync(string keyId, CancellationToken cancellationToken = default) => Up(() => Inner.DisableAsync(keyId, cancellationToken));

    public Task<KeyInfo> EnableAsync(string keyId, CancellationToken cancellationToken = default) => Up(() => Inner.EnableAsync(keyId, cancellationToken));

    public Task<KeyInfo?> GetInfoAsync(string keyId, CancellationToken cancellationToken = default) => Up(() => Inner.GetInfoAsync(keyId, cancellationToken));

    public Task<IReadOnlyList<KeyInfo>> ListAsync(CancellationToken cancellationToken = default) => Up(() => Inner.ListAsync(cancellationToken));

    public Task<KekRotationResult> RotateKekAsync(CancellationToken cancellationToken = default) => Up(() => Inner.RotateKekAsync(cancellationToken));

    private Task<T> Up<T>(Func<Task<T>> call) =>
        _down ? Task.FromException<T>(new KeyStoreException(KeyError.StorageFailed, "the key backend cannot be reached")) : call();
}
