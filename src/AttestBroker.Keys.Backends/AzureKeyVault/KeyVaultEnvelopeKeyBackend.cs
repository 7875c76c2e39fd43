using System.Security.Cryptography;
using AttestBroker.Storage;

namespace AttestBroker.Keys.Backends.AzureKeyVault;

/// <summary>
/// Envelope mode: each model key is 32 random bytes wrapped by a Key Vault RSA key with RSA-OAEP-256 (wrapkey) and
/// kept in the broker's key records (backend "azure-keyvault"; wrapping key id = the full Key Vault kid including
/// its version; wrapping key version = how many times the record was wrapped, 1 at creation). Release unwraps
/// (unwrapkey) under the version the record names. Rotation rewraps every key under the RSA key's newest version
/// (after the operator or Key Vault's rotation policy rotated it; optionally rotates it first).
/// </summary>
public sealed class KeyVaultEnvelopeKeyBackend : IKeyBackend, IKeyBackendHealth
{
    public const string DefaultName = "azure-keyvault";

    private readonly KeyVaultKeyClient _vault;
    private readonly IKeyRecordStore _records;
    private readonly string _keyName;
    private readonly bool _rotateInVault;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _rotation = new(1, 1);

    /// <param name="wrappingKeyName">The Key Vault RSA key (RSA or RSA-HSM, key_ops wrapKey/unwrapKey).</param>
    /// <param name="rotateInVault">Call keys/{name}/rotate before rewrapping (needs the rotate permission).</param>
    public KeyVaultEnvelopeKeyBackend(KeyVaultKeyClient vault, IKeyRecordStore records, string wrappingKeyName, bool rotateInVault = false, TimeProvider? time = null, string name = DefaultName)
    {
        _vault = vault ?? throw new ArgumentNullException(nameof(vault));
        _records = records ?? throw new ArgumentNullException(nameof(records));
        if (!KeyVaultKeyClient.IsName(wrappingKeyName))
        {
            throw new ArgumentException("a Key Vault key name is 1..127 letters, digits and -", nameof(wrappingKeyName));
        }

        _keyName = wrappingKeyName;
        _rotateInVault = rotateInVault;
        _time = time ?? TimeProvider.System;
        Name = name;
    }

    public string Name { get; }

    public async Task<KeyInfo> CreateAsync(string keyId, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        return await KeyRecords.WithRandomKeyAsync(key => StoreAsync(keyId, key, cancellationToken)).ConfigureAwait(false);
    }

    public Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        KeyRecords.RequireKeyMaterial(key.Span);
        return StoreAsync(keyId, key, cancellationToken);
    }

    public async Task<KeyInfo> GetForReleaseAsync(string keyId, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        KeyRecords.RequireDestination(destination);
        KeyRecord record = await KeyRecords.GetEnabledAsync(_records, Name, keyId, cancellationToken).ConfigureAwait(false);
        (string name, string version) = _vault.ParseKid(record.WrappingKeyId);
        await KeyRecords.UnwrapIntoAsync(destination, () => _vault.UnwrapKeyAsync(name, version, record.Wrapped, destination, cancellationToken)).ConfigureAwait(false);

        return KeyRecords.Info(record);
    }

    public Task<KeyInfo> DisableAsync(string keyId, CancellationToken cancellationToken = default) =>
        KeyRecords.SetStateAsync(_records, Name, keyId, KeyState.Disabled, _time, cancellationToken);

    public Task<KeyInfo> EnableAsync(string keyId, CancellationToken cancellationToken = default) =>
        KeyRecords.SetStateAsync(_records, Name, keyId, KeyState.Enabled, _time, cancellationToken);

    public Task<KeyInfo?> GetInfoAsync(string keyId, CancellationToken cancellationToken = default) =>
        KeyRecords.GetInfoAsync(_records, Name, keyId, cancellationToken);

    public Task<IReadOnlyList<KeyInfo>> ListAsync(CancellationToken cancellationToken = default) =>
        KeyRecords.ListAsync(_records, Name, cancellationToken);

    /// <summary>
    /// Rewraps every key of this backend not yet wrapped under the RSA key's newest version: unwrap under the old
    /// version, wrap under the newest, compare-and-swap the record (its wrap count goes up by one). The result's
    /// KekVersion is the highest wrap count among the keys, Rewrapped how many keys moved; nothing is retired (old
    /// Key Vault versions stay usable until the operator disables them).
    /// </summary>
    public async Task<KekRotationResult> RotateKekAsync(CancellationToken cancellationToken = default)
    {
        await _rotation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            KeyVaultKeyProperties newest = _rotateInVault
                ? await _vault.RotateKeyAsync(_keyName, cancellationToken).ConfigureAwait(false)
                : await _vault.GetKeyAsync(_keyName, null, cancellationToken).ConfigureAwait(false);
            int rewrapped = 0;
            int highest = 0;
            byte[] plain = GC.AllocateArray<byte>(IKeyBackend.KeyLength, pinned: true);
            try
            {
                foreach (KeyRecord listed in await KeyRecords.Storage(() => _records.ListAsync(cancellationToken)).ConfigureAwait(false))
                {
                    KeyRecord? record = listed;
                    for (int attempt = 0; record is not null && record.Backend == Name; attempt++)
                    {
                        if (record.WrappingKeyId == newest.Kid)
                        {
                            highest = Math.Max(highest, record.WrappingKeyVersion);
                            break;
                        }

                        if (attempt == 5)
                        {
                            throw new KeyBackendException(BackendError.Conflict, Name, $"key '{record.KeyId}' kept changing during the rewrap; rotation stopped (the keys rewrapped so far stay valid)");
                        }

                        (string oldName, string oldVersion) = _vault.ParseKid(record.WrappingKeyId);
                        await _vault.UnwrapKeyAsync(oldName, oldVersion, record.Wrapped, plain, cancellationToken).ConfigureAwait(false);
                        (string kid, byte[] wrapped) next;
                        try
                        {
                            next = await _vault.WrapKeyAsync(newest.Name, newest.Version, plain, cancellationToken).ConfigureAwait(false);
                        }
                        finally
                        {
                            CryptographicOperations.ZeroMemory(plain);
                        }

                        if (next.kid != newest.Kid)
                        {
                            throw new KeyBackendException(BackendError.BadResponse, Name, $"Key Vault wrapped under {next.kid}, not the requested {newest.Kid}");
                        }

                        KeyRecord current = record;
                        bool swapped = await KeyRecords.Storage(() => _records.ReplaceWrappingAsync(current.KeyId, current.WrappingKeyId, current.WrappingKeyVersion,
                            next.wrapped, next.kid, current.WrappingKeyVersion + 1, _time.GetUtcNow(), cancellationToken)).ConfigureAwait(false);
                        if (swapped)
                        {
                            rewrapped++;
                            highest = Math.Max(highest, current.WrappingKeyVersion + 1);
                            break;
                        }

                        record = await KeyRecords.Storage(() => _records.GetAsync(current.KeyId, cancellationToken)).ConfigureAwait(false);
                    }
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(plain);
            }

            return new KekRotationResult(highest, rewrapped, []);
        }
        finally
        {
            _rotation.Release();
        }
    }

    public Task<BackendHealth> CheckHealthAsync(CancellationToken cancellationToken = default) => _vault.CheckHealthAsync(_keyName, cancellationToken);

    public override string ToString() => $"KeyVaultEnvelopeKeyBackend {{ Name = {Name}, Vault = {_vault.VaultUri.Host}, WrappingKey = {_keyName} }}";

    private async Task<KeyInfo> StoreAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken)
    {
        if (await KeyRecords.Storage(() => _records.GetAsync(keyId, cancellationToken)).ConfigureAwait(false) is not null)
        {
            throw new KeyStoreException(KeyError.AlreadyExists, $"key '{keyId}' already exists");
        }

        (string kid, byte[] wrapped) = await _vault.WrapKeyAsync(_keyName, null, key, cancellationToken).ConfigureAwait(false);
        (string name, _) = _vault.ParseKid(kid);
        if (name != _keyName)
        {
            throw new KeyBackendException(BackendError.BadResponse, Name, $"Key Vault wrapped under key {name}, not {_keyName}");
        }

        var record = new KeyRecord(keyId, wrapped, kid, 1, KeyState.Enabled, Name, KeyRecords.Now(_time), null, null);
        return await KeyRecords.InsertAsync(_records, record, cancellationToken).ConfigureAwait(false);
    }
}
