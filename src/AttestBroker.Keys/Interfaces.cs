using AttestBroker.Storage;

namespace AttestBroker.Keys;

/// <summary>Metadata of a model key. Never holds key bytes, wrapped or not.</summary>
public sealed record KeyInfo(
    string KeyId,
    KeyState State,
    string Backend,
    string WrappingKeyId,
    int WrappingKeyVersion,
    DateTimeOffset CreatedAt,
    DateTimeOffset? RotatedAt,
    DateTimeOffset? DisabledAt)
{
    internal static KeyInfo From(KeyRecord r) =>
        new(r.KeyId, r.State, r.Backend, r.WrappingKeyId, r.WrappingKeyVersion, r.CreatedAt, r.RotatedAt, r.DisabledAt);
}

/// <summary>Result of a KEK rotation.</summary>
/// <param name="KekVersion">The version every key is now wrapped under.</param>
/// <param name="Rewrapped">How many keys were re-wrapped.</param>
/// <param name="RetiredVersions">Old KEK versions removed once no key referred to them.</param>
public sealed record KekRotationResult(int KekVersion, int Rewrapped, IReadOnlyList<int> RetiredVersions);

/// <summary>
/// A keystore for model data-encryption keys (AES-256, 32 bytes). The embedded keystore implements it over the
/// broker's database and a local KEK; Vault, Azure Key Vault and Kubernetes Secrets backends implement it too.
/// </summary>
public interface IKeyBackend
{
    /// <summary>Model keys are AES-256 keys.</summary>
    public const int KeyLength = 32;

    /// <summary>Backend name recorded with each key, e.g. "embedded".</summary>
    string Name { get; }

    /// <summary>Generates 32 random bytes, wraps and stores them under <paramref name="keyId"/>.</summary>
    Task<KeyInfo> CreateAsync(string keyId, CancellationToken cancellationToken = default);

    /// <summary>Wraps and stores caller-supplied key bytes (exactly 32). The caller still owns and zeroes its buffer.</summary>
    Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Unwraps the key into <paramref name="destination"/> (at least 32 bytes; the caller zeroes it after use).
    /// Refuses disabled keys with <see cref="KeyError.Disabled"/>.
    /// </summary>
    Task<KeyInfo> GetForReleaseAsync(string keyId, Memory<byte> destination, CancellationToken cancellationToken = default);

    /// <summary>Stops release of the key at once.</summary>
    Task<KeyInfo> DisableAsync(string keyId, CancellationToken cancellationToken = default);

    Task<KeyInfo> EnableAsync(string keyId, CancellationToken cancellationToken = default);

    Task<KeyInfo?> GetInfoAsync(string keyId, CancellationToken cancellationToken = default);

    /// <summary>Metadata of every key of this backend; never bytes.</summary>
    Task<IReadOnlyList<KeyInfo>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>Re-wraps every key under a new KEK version; keys stay readable throughout.</summary>
    Task<KekRotationResult> RotateKekAsync(CancellationToken cancellationToken = default);
}

/// <summary>A key wrapped under one version of a key-encryption key.</summary>
public sealed record WrappedKey(byte[] Ciphertext, string KekId, int KekVersion)
{
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append("KekId = ").Append(KekId).Append(", KekVersion = ").Append(KekVersion)
            .Append(", Ciphertext = ").Append(Ciphertext.Length).Append(" bytes");
        return true;
    }
}

/// <summary>Wraps and unwraps model keys under a versioned key-encryption key, binding each to its key id.</summary>
public interface IKeyWrapper
{
    /// <summary>The version new keys are wrapped under.</summary>
    int CurrentVersion { get; }

    /// <summary>Whether <see cref="AddVersionAsync"/> can create a new KEK version.</summary>
    bool CanAddVersion { get; }

    Task<WrappedKey> WrapAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default);

    /// <summary>Unwraps into destination[..32]; typed errors for a wrong KEK or a failed authentication.</summary>
    Task UnwrapAsync(string keyId, WrappedKey wrapped, Memory<byte> destination, CancellationToken cancellationToken = default);

    /// <summary>Creates a new KEK version and makes it current; older versions stay usable until retired.</summary>
    Task<int> AddVersionAsync(CancellationToken cancellationToken = default);

    /// <summary>Removes a KEK version nothing refers to any more.</summary>
    Task RetireVersionAsync(int version, CancellationToken cancellationToken = default);

    /// <summary>Versions currently available, ascending.</summary>
    IReadOnlyList<int> Versions { get; }
}

/// <summary>What every KEK rotation ends with.</summary>
public static class KeyWrapperRetirement
{
    /// <summary>
    /// Retires every version below <paramref name="current"/> that no key in <paramref name="inUse"/> names, when the
    /// wrapper manages its own versions (<see cref="IKeyWrapper.CanAddVersion"/>); returns the versions retired.
    /// </summary>
    public static async Task<IReadOnlyList<int>> RetireUnusedAsync(this IKeyWrapper wrapper, int current, IReadOnlySet<int> inUse, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(wrapper);
        ArgumentNullException.ThrowIfNull(inUse);
        var retired = new List<int>();
        if (!wrapper.CanAddVersion)
        {
            return retired;
        }

        foreach (int v in wrapper.Versions.Where(v => v < current && !inUse.Contains(v)).ToList())
        {
            await wrapper.RetireVersionAsync(v, cancellationToken).ConfigureAwait(false);
            retired.Add(v);
        }

        return retired;
    }
}
