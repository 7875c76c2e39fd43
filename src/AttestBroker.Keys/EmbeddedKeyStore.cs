using System.Security.Cryptography;
using System.Text.RegularExpressions;
using AttestBroker.Storage;

namespace AttestBroker.Keys;

/// <summary>
/// The embedded keystore: model keys wrapped by an <see cref="IKeyWrapper"/> (AES-256-GCM under a local KEK by
/// default) and kept in the broker's database through <see cref="IKeyRecordStore"/>. Every release reads the
/// record afresh, so disabling a key takes effect at once on every replica.
/// </summary>
public sealed partial class EmbeddedKeyStore : IKeyBackend
{
    public const string DefaultBackendName = "embedded";
    private const int MaxRewrapAttempts = 5;

    private readonly IKeyRecordStore _records;
    private readonly IKeyWrapper _wrapper;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _rotation = new(1, 1);

    public EmbeddedKeyStore(IKeyRecordStore records, IKeyWrapper wrapper, TimeProvider? time = null, string name = DefaultBackendName)
    {
        _records = records ?? throw new ArgumentNullException(nameof(records));
        _wrapper = wrapper ?? throw new ArgumentNullException(nameof(wrapper));
        _time = time ?? TimeProvider.System;
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
    }

    /// <summary>The usual set-up: AES-256-GCM wrapping under the given KEK ring.</summary>
    public EmbeddedKeyStore(IKeyRecordStore records, KekRing kek, TimeProvider? time = null)
        : this(records, new AesGcmKeyWrapper(kek), time)
    {
    }

    public string Name { get; }

    public async Task<KeyInfo> CreateAsync(string keyId, CancellationToken cancellationToken = default)
    {
        RequireKeyId(keyId);
        byte[] key = GC.AllocateArray<byte>(IKeyBackend.KeyLength, pinned: true);
        try
        {
            RandomNumberGenerator.Fill(key);
            return await StoreAsync(keyId, key, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    public Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        RequireKeyId(keyId);
        if (key.Length != IKeyBackend.KeyLength)
        {
            throw new KeyStoreException(KeyError.InvalidKeyMaterial, $"a model key must be {IKeyBackend.KeyLength} bytes (AES-256); got {key.Length}");
        }

        if (!HasNonZeroByte(key.Span))
        {
            throw new KeyStoreException(KeyError.InvalidKeyMaterial, "an all-zero key is not a key");
        }

        return StoreAsync(keyId, key, cancellationToken);
    }

    public async Task<KeyInfo> GetForReleaseAsync(string keyId, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        RequireKeyId(keyId);
        if (destination.Length < IKeyBackend.KeyLength)
        {
            throw new ArgumentException($"the destination must hold {IKeyBackend.KeyLength} bytes", nameof(destination));
        }

        KeyRecord record = await GetRecordAsync(keyId, cancellationToken).ConfigureAwait(false);
        if (record.State != KeyState.Enabled)
        {
            throw new KeyStoreException(KeyError.Disabled, $"key '{keyId}' is disabled");
        }

        for (int attempt = 0; ; attempt++)
        {
            try
            {
                await _wrapper.UnwrapAsync(keyId, new WrappedKey(record.Wrapped, record.WrappingKeyId, record.WrappingKeyVersion), destination, cancellationToken).ConfigureAwait(false);
                return KeyInfo.From(record);
            }
            catch (KeyStoreException e) when (e.Error == KeyError.KekUnavailable && attempt < MaxRewrapAttempts)
            {
                // A rotation re-wrapped the key and retired its old KEK version after the record was read:
                // read it again; it now names a loaded version. Any other outcome keeps the error.
                KeyRecord again = await GetRecordAsync(keyId, cancellationToken).ConfigureAwait(false);
                if (again.WrappingKeyVersion == record.WrappingKeyVersion && again.WrappingKeyId == record.WrappingKeyId)
                {
                    CryptographicOperations.ZeroMemory(destination.Span[..IKeyBackend.KeyLength]);
                    throw;
                }

                if (again.State != KeyState.Enabled)
                {
                    CryptographicOperations.ZeroMemory(destination.Span[..IKeyBackend.KeyLength]);
                    throw new KeyStoreException(KeyError.Disabled, $"key '{keyId}' is disabled");
                }

                record = again;
            }
            catch
            {
                CryptographicOperations.ZeroMemory(destination.Span[..IKeyBackend.KeyLength]);
                throw;
            }
        }
    }

    public Task<KeyInfo> DisableAsync(string keyId, CancellationToken cancellationToken = default) => SetStateAsync(keyId, KeyState.Disabled, cancellationToken);

    public Task<KeyInfo> EnableAsync(string keyId, CancellationToken cancellationToken = default) => SetStateAsync(keyId, KeyState.Enabled, cancellationToken);

    public async Task<KeyInfo?> GetInfoAsync(string keyId, CancellationToken cancellationToken = default)
    {
        RequireKeyId(keyId);
        KeyRecord? r = await Storage(() => _records.GetAsync(keyId, cancellationToken)).ConfigureAwait(false);
        return r is null || r.Backend != Name ? null : KeyInfo.From(r);
    }

    public async Task<IReadOnlyList<KeyInfo>> ListAsync(CancellationToken cancellationToken = default)
    {
        IReadOnlyList<KeyRecord> all = await Storage(() => _records.ListAsync(cancellationToken)).ConfigureAwait(false);
        return [.. all.Where(r => r.Backend == Name).Select(KeyInfo.From)];
    }

    /// <summary>
    /// Adds a KEK version (when the source can), re-wraps every key of this backend under it with a
    /// compare-and-swap per key, and only then retires KEK versions no key refers to. Releases keep working
    /// throughout: a key is always readable under the version its record names.
    /// </summary>
    public async Task<KekRotationResult> RotateKekAsync(CancellationToken cancellationToken = default)
    {
        await _rotation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int target = _wrapper.CanAddVersion
                ? await _wrapper.AddVersionAsync(cancellationToken).ConfigureAwait(false)
                : _wrapper.CurrentVersion;

            int rewrapped = 0;
            byte[] plain = GC.AllocateArray<byte>(IKeyBackend.KeyLength, pinned: true);
            try
            {
                foreach (KeyRecord listed in await Storage(() => _records.ListAsync(cancellationToken)).ConfigureAwait(false))
                {
                    KeyRecord? record = listed;
                    for (int attempt = 0; record is not null && record.Backend == Name && record.WrappingKeyVersion != target; attempt++)
                    {
                        if (attempt == MaxRewrapAttempts)
                        {
                            throw new KeyStoreException(KeyError.StorageFailed, $"key '{record.KeyId}' kept changing during KEK rotation; rotation stopped, old KEK versions kept");
                        }

                        await _wrapper.UnwrapAsync(record.KeyId, new WrappedKey(record.Wrapped, record.WrappingKeyId, record.WrappingKeyVersion), plain, cancellationToken).ConfigureAwait(false);
                        WrappedKey next;
                        try
                        {
                            next = await _wrapper.WrapAsync(record.KeyId, plain, cancellationToken).ConfigureAwait(false);
                        }
                        finally
                        {
                            CryptographicOperations.ZeroMemory(plain);
                        }

                        KeyRecord current = record;
                        bool swapped = await Storage(() => _records.ReplaceWrappingAsync(current.KeyId, current.WrappingKeyId, current.WrappingKeyVersion,
                            next.Ciphertext, next.KekId, next.KekVersion, _time.GetUtcNow(), cancellationToken)).ConfigureAwait(false);
                        if (swapped)
                        {
                            rewrapped++;
                            break;
                        }

                        record = await Storage(() => _records.GetAsync(current.KeyId, cancellationToken)).ConfigureAwait(false);
                    }
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(plain);
            }

            // Retire only what nothing refers to any more (another process may have created keys meanwhile).
            var inUse = (await Storage(() => _records.ListAsync(cancellationToken)).ConfigureAwait(false))
                .Where(r => r.Backend == Name)
                .Select(r => r.WrappingKeyVersion)
                .ToHashSet();
            var retired = await _wrapper.RetireUnusedAsync(target, inUse, cancellationToken).ConfigureAwait(false);
            return new KekRotationResult(target, rewrapped, retired);
        }
        finally
        {
            _rotation.Release();
        }
    }

    // Constant time over the key: no early exit that depends on its bytes.
    private static bool HasNonZeroByte(ReadOnlySpan<byte> key)
    {
        int acc = 0;
        foreach (byte b in key)
        {
            acc |= b;
        }

        return acc != 0;
    }

    public override string ToString() => $"EmbeddedKeyStore {{ Name = {Name} }}";

    private async Task<KeyInfo> StoreAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken)
    {
        WrappedKey wrapped = await _wrapper.WrapAsync(keyId, key, cancellationToken).ConfigureAwait(false);
        var record = new KeyRecord(keyId, wrapped.Ciphertext, wrapped.KekId, wrapped.KekVersion, KeyState.Enabled, Name,
            DateTimeOffset.FromUnixTimeMilliseconds(_time.GetUtcNow().ToUnixTimeMilliseconds()), null, null);
        try
        {
            await _records.InsertAsync(record, cancellationToken).ConfigureAwait(false);
        }
        catch (StorageException e) when (e.Error == StorageError.AlreadyExists)
        {
            throw new KeyStoreException(KeyError.AlreadyExists, $"key '{keyId}' already exists", e);
        }
        catch (StorageException e)
        {
            throw new KeyStoreException(KeyError.StorageFailed, $"storing key '{keyId}' failed: {e.Message}", e);
        }

        return KeyInfo.From(record);
    }

    private async Task<KeyInfo> SetStateAsync(string keyId, KeyState state, CancellationToken cancellationToken)
    {
        RequireKeyId(keyId);
        _ = await GetRecordAsync(keyId, cancellationToken).ConfigureAwait(false);
        if (!await Storage(() => _records.SetStateAsync(keyId, state, _time.GetUtcNow(), cancellationToken)).ConfigureAwait(false))
        {
            throw new KeyStoreException(KeyError.NotFound, $"key '{keyId}' does not exist");
        }

        return KeyInfo.From(await GetRecordAsync(keyId, cancellationToken).ConfigureAwait(false));
    }

    private async Task<KeyRecord> GetRecordAsync(string keyId, CancellationToken cancellationToken)
    {
        KeyRecord? record = await Storage(() => _records.GetAsync(keyId, cancellationToken)).ConfigureAwait(false);
        if (record is null || record.Backend != Name)
        {
            throw new KeyStoreException(KeyError.NotFound, $"key '{keyId}' does not exist");
        }

        return record;
    }

    private static async Task<T> Storage<T>(Func<Task<T>> operation)
    {
        try
        {
            return await operation().ConfigureAwait(false);
        }
        catch (StorageException e)
        {
            throw new KeyStoreException(KeyError.StorageFailed, $"keystore storage failed: {e.Message}", e);
        }
    }

    /// <summary>Key ids: 1..128 characters of letters, digits and . _ : - , starting with a letter or digit.</summary>
    public static bool IsValidKeyId(string? keyId) => keyId is not null && KeyIdPattern().IsMatch(keyId);

    private static void RequireKeyId(string keyId)
    {
        if (!IsValidKeyId(keyId))
        {
            throw new KeyStoreException(KeyError.InvalidKeyId, "a key id is 1..128 characters of letters, digits and . _ : - starting with a letter or digit");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", RegexOptions.CultureInvariant)]
    private static partial Regex KeyIdPattern();
}
