using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace AttestBroker.Keys;

/// <summary>
/// Wraps 32-byte model keys with AES-256-GCM under a <see cref="KekRing"/> version. Wrapped layout (61 bytes):
/// <c>format(1) = 0x01 || nonce(12) || ciphertext(32) || tag(16)</c>. Associated data:
/// <c>"attestbroker-key-wrap-v1" 0x00 || u32be(kekVersion) || utf8(keyId)</c>, so a wrapped key copied to another
/// key id or relabelled with another KEK version fails authentication.
/// </summary>
public sealed class AesGcmKeyWrapper : IKeyWrapper
{
    public const byte FormatVersion = 1;
    public const int FormatOffset = 0;
    public const int NonceOffset = FormatOffset + 1;
    public const int NonceLength = 12;
    public const int CiphertextOffset = NonceOffset + NonceLength;
    public const int TagOffset = CiphertextOffset + IKeyBackend.KeyLength;
    public const int TagLength = 16;
    public const int WrappedLength = TagOffset + TagLength;

    private static readonly byte[] AadDomain = "attestbroker-key-wrap-v1\0"u8.ToArray();

    private readonly KekRing _ring;

    public AesGcmKeyWrapper(KekRing ring)
    {
        _ring = ring ?? throw new ArgumentNullException(nameof(ring));
    }

    public int CurrentVersion => _ring.CurrentVersion;

    public bool CanAddVersion => _ring.CanAddVersion;

    public IReadOnlyList<int> Versions => _ring.Versions;

    public Task<WrappedKey> WrapAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        if (key.Length != IKeyBackend.KeyLength)
        {
            throw new KeyStoreException(KeyError.InvalidKeyMaterial, $"a model key must be {IKeyBackend.KeyLength} bytes (AES-256); got {key.Length}");
        }

        _ring.Refresh();
        int version = _ring.CurrentVersion;
        byte[] aad = Aad(keyId, version);
        byte[] wrapped = new byte[WrappedLength];
        wrapped[FormatOffset] = FormatVersion;
        RandomNumberGenerator.Fill(wrapped.AsSpan(NonceOffset, NonceLength));
        string kekId = string.Empty;
        bool found = _ring.TryUse(version, (kek, fingerprint) =>
        {
            using var gcm = new AesGcm(kek, TagLength);
            gcm.Encrypt(
                wrapped.AsSpan(NonceOffset, NonceLength),
                key.Span,
                wrapped.AsSpan(CiphertextOffset, IKeyBackend.KeyLength),
                wrapped.AsSpan(TagOffset, TagLength),
                aad);
            kekId = fingerprint;
        });
        if (!found)
        {
            throw new KeyStoreException(KeyError.KekUnavailable, $"no KEK is loaded from the {_ring.Origin}");
        }

        return Task.FromResult(new WrappedKey(wrapped, kekId, version));
    }

    public Task UnwrapAsync(string keyId, WrappedKey wrapped, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        ArgumentNullException.ThrowIfNull(wrapped);
        if (destination.Length < IKeyBackend.KeyLength)
        {
            throw new ArgumentException($"the destination must hold {IKeyBackend.KeyLength} bytes", nameof(destination));
        }

        byte[] blob = wrapped.Ciphertext;
        if (blob.Length != WrappedLength || blob[FormatOffset] != FormatVersion)
        {
            throw new KeyStoreException(KeyError.UnwrapFailed, $"the wrapped form of key '{keyId}' is malformed ({blob.Length} bytes, expected {WrappedLength} in format {FormatVersion})");
        }

        byte[] aad = Aad(keyId, wrapped.KekVersion);
        bool found = _ring.TryUse(wrapped.KekVersion, (kek, fingerprint) =>
        {
            if (!string.Equals(fingerprint, wrapped.KekId, StringComparison.Ordinal))
            {
                throw new KeyStoreException(KeyError.WrongKek,
                    $"key '{keyId}' is wrapped under KEK {wrapped.KekId} version {wrapped.KekVersion}, but version {wrapped.KekVersion} loaded from the {_ring.Origin} is KEK {fingerprint}");
            }

            Span<byte> plain = destination.Span[..IKeyBackend.KeyLength];
            try
            {
                using var gcm = new AesGcm(kek, TagLength);
                gcm.Decrypt(
                    blob.AsSpan(NonceOffset, NonceLength),
                    blob.AsSpan(CiphertextOffset, IKeyBackend.KeyLength),
                    blob.AsSpan(TagOffset, TagLength),
                    plain,
                    aad);
            }
            catch (AuthenticationTagMismatchException e)
            {
                CryptographicOperations.ZeroMemory(plain);
                throw new KeyStoreException(KeyError.UnwrapFailed,
                    $"key '{keyId}' failed authenticated unwrapping under KEK version {wrapped.KekVersion}: the wrapped bytes were altered or belong to another key id", e);
            }
        });
        if (!found)
        {
            throw new KeyStoreException(KeyError.KekUnavailable,
                $"key '{keyId}' is wrapped under KEK version {wrapped.KekVersion}, which is not loaded from the {_ring.Origin} (loaded: {string.Join(", ", _ring.Versions)})");
        }

        return Task.CompletedTask;
    }

    public Task<int> AddVersionAsync(CancellationToken cancellationToken = default) => Task.FromResult(_ring.AddVersion());

    public Task RetireVersionAsync(int version, CancellationToken cancellationToken = default)
    {
        _ring.Retire(version);
        return Task.CompletedTask;
    }

    private static byte[] Aad(string keyId, int version)
    {
        byte[] id = Encoding.UTF8.GetBytes(keyId);
        byte[] aad = new byte[AadDomain.Length + sizeof(uint) + id.Length];
        AadDomain.CopyTo(aad, 0);
        BinaryPrimitives.WriteUInt32BigEndian(aad.AsSpan(AadDomain.Length), (uint)version);
        id.CopyTo(aad, AadDomain.Length + sizeof(uint));
        return aad;
    }
}
