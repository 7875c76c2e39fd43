using System.Security.Cryptography;
using System.Text;
using AttestBroker.Storage;

namespace AttestBroker.Keys.Backends.Vault;

/// <summary>
/// Model keys wrapped by a Vault Transit key. Create asks Vault for a wrapped data key (datakey/wrapped: the
/// plaintext never leaves Vault at creation); import encrypts the given bytes; release decrypts into the caller's
/// buffer; rotation rotates the Transit key and rewraps every stored ciphertext inside Vault. The ciphertexts
/// ("vault:vN:...") live in the broker's key records (backend "vault-transit", wrapping key
/// "vault-transit:&lt;mount&gt;/&lt;key&gt;", version N); enable/disable is the record's state, read afresh on every
/// release.
/// </summary>
public sealed class VaultTransitKeyBackend : IKeyBackend, IKeyBackendHealth
{
    private readonly VaultTransitClient _vault;
    private readonly IKeyRecordStore _records;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _rotation = new(1, 1);

    public VaultTransitKeyBackend(VaultTransitClient vault, IKeyRecordStore records, TimeProvider? time = null, string name = VaultTransitClient.BackendName)
    {
        _vault = vault ?? throw new ArgumentNullException(nameof(vault));
        _records = records ?? throw new ArgumentNullException(nameof(records));
        _time = time ?? TimeProvider.System;
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
    }

    public string Name { get; }

    /// <summary>The wrapping-key id recorded with each key.</summary>
    public string WrappingKeyId => $"vault-transit:{_vault.Options.Mount}/{_vault.Options.KeyName}";

    public async Task<KeyInfo> CreateAsync(string keyId, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        await RequireAbsentAsync(keyId, cancellationToken).ConfigureAwait(false);
        VaultCiphertext c = await _vault.GenerateWrappedDataKeyAsync(Context(keyId), cancellationToken).ConfigureAwait(false);
        return await StoreAsync(keyId, c, cancellationToken).ConfigureAwait(false);
    }

    public async Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        KeyRecords.RequireKeyMaterial(key.Span);
        await RequireAbsentAsync(keyId, cancellationToken).ConfigureAwait(false);
        VaultCiphertext c = await _vault.EncryptAsync(key, Context(keyId), cancellationToken).ConfigureAwait(false);
        return await StoreAsync(keyId, c, cancellationToken).ConfigureAwait(false);
    }

    public async Task<KeyInfo> GetForReleaseAsync(string keyId, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        KeyRecords.RequireDestination(destination);
        KeyRecord record = await KeyRecords.GetEnabledAsync(_records, Name, keyId, cancellationToken).ConfigureAwait(false);
        await KeyRecords.UnwrapIntoAsync(destination, () => _vault.DecryptAsync(Encoding.ASCII.GetString(record.Wrapped), Context(keyId), destination, cancellationToken)).ConfigureAwait(false);

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
    /// Rotates the Transit key (keys/&lt;key&gt;/rotate) and rewraps every ciphertext of this backend whose version is
    /// older, with a compare-and-swap per record. Old Transit versions stay decryptable in Vault until the operator
    /// raises min_decryption_version; nothing is retired here.
    /// </summary>
    public async Task<KekRotationResult> RotateKekAsync(CancellationToken cancellationToken = default)
    {
        await _rotation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int target = await _vault.RotateKeyAsync(cancellationToken).ConfigureAwait(false);
            int rewrapped = await RewrapAllAsync(target, cancellationToken).ConfigureAwait(false);
            return new KekRotationResult(target, rewrapped, []);
        }
        finally
        {
            _rotation.Release();
        }
    }

    /// <summary>Rewraps every ciphertext older than the Transit key's newest version (after a rotation done in Vault).</summary>
    public async Task<KekRotationResult> RewrapToLatestAsync(CancellationToken cancellationToken = default)
    {
        await _rotation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int target = (await _vault.ReadKeyAsync(cancellationToken).ConfigureAwait(false)).LatestVersion;
            return new KekRotationResult(target, await RewrapAllAsync(target, cancellationToken).ConfigureAwait(false), []);
        }
        finally
        {
            _rotation.Release();
        }
    }

    public Task<BackendHealth> CheckHealthAsync(CancellationToken cancellationToken = default) => _vault.CheckHealthAsync(cancellationToken);

    public override string ToString() => $"VaultTransitKeyBackend {{ Name = {Name}, WrappingKey = {WrappingKeyId} }}";

    private async Task<int> RewrapAllAsync(int target, CancellationToken cancellationToken)
    {
        int rewrapped = 0;
        foreach (KeyRecord listed in await KeyRecords.Storage(() => _records.ListAsync(cancellationToken)).ConfigureAwait(false))
        {
            KeyRecord? record = listed;
            for (int attempt = 0; record is not null && record.Backend == Name && record.WrappingKeyVersion < target; attempt++)
            {
                if (attempt == 5)
                {
                    throw new KeyBackendException(BackendError.Conflict, Name, $"key '{record.KeyId}' kept changing during the rewrap; rotation stopped (the keys rewrapped so far stay valid)");
                }

                VaultCiphertext next = await _vault.RewrapAsync(Encoding.ASCII.GetString(record.Wrapped), Context(record.KeyId), cancellationToken).ConfigureAwait(false);
                KeyRecord current = record;
                bool swapped = await KeyRecords.Storage(() => _records.ReplaceWrappingAsync(current.KeyId, current.WrappingKeyId, current.WrappingKeyVersion,
                    Encoding.ASCII.GetBytes(next.Ciphertext), WrappingKeyId, next.KeyVersion, _time.GetUtcNow(), cancellationToken)).ConfigureAwait(false);
                if (swapped)
                {
                    rewrapped++;
                    break;
                }

                record = await KeyRecords.Storage(() => _records.GetAsync(current.KeyId, cancellationToken)).ConfigureAwait(false);
            }
        }

        return rewrapped;
    }

    private string? Context(string keyId) => _vault.Options.BindKeyIdAsContext ? keyId : null;

    private async Task RequireAbsentAsync(string keyId, CancellationToken cancellationToken)
    {
        if (await KeyRecords.Storage(() => _records.GetAsync(keyId, cancellationToken)).ConfigureAwait(false) is not null)
        {
            throw new KeyStoreException(KeyError.AlreadyExists, $"key '{keyId}' already exists");
        }
    }

    private Task<KeyInfo> StoreAsync(string keyId, VaultCiphertext c, CancellationToken cancellationToken)
    {
        var record = new KeyRecord(keyId, Encoding.ASCII.GetBytes(c.Ciphertext), WrappingKeyId, c.KeyVersion, KeyState.Enabled, Name,
            KeyRecords.Now(_time), null, null);
        return KeyRecords.InsertAsync(_records, record, cancellationToken);
    }
}
