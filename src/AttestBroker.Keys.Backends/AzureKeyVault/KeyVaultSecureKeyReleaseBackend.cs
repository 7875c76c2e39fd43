using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AttestBroker.Storage;

namespace AttestBroker.Keys.Backends.AzureKeyVault;

/// <summary>A backend whose release needs an attestation token the service appraises itself (Key Vault SKR).</summary>
public interface IAttestationTokenKeyBackend : IKeyBackend
{
    /// <summary>
    /// Releases the key against <paramref name="attestationToken"/> (an Azure Attestation JWT whose runtime claims
    /// carry the broker's RSA wrapping key) into <paramref name="destination"/>; the caller zeroes it after use.
    /// </summary>
    Task<KeyInfo> GetForReleaseAsync(string keyId, string attestationToken, Memory<byte> destination, CancellationToken cancellationToken = default);
}

/// <summary>
/// Secure Key Release mode: each model key is an exportable 256-bit <c>oct-HSM</c> key in Managed HSM (or a
/// Premium vault that offers it) with a release policy; the broker's key record holds only the Key Vault kid
/// (backend "azure-skr"). Release posts an Azure Attestation token as <c>target</c>; Key Vault evaluates its own
/// release policy over that token (Key Vault stays the source of truth: the broker's policy is checked first, and
/// Key Vault may still refuse), and answers with a JWS whose key_hsm is wrapped to the broker's RSA key, which
/// <see cref="SecureKeyRelease"/> verifies and unwraps. The default token comes from
/// <c>brokerTokenSource</c> (the broker's own attestation, when the broker runs in a confidential VM);
/// <see cref="GetForReleaseAsync(string, string, Memory{byte}, CancellationToken)"/> takes a pod's token instead.
/// </summary>
public sealed class KeyVaultSecureKeyReleaseBackend : IAttestationTokenKeyBackend, IKeyBackendHealth
{
    public const string DefaultName = "azure-skr";

    private readonly KeyVaultKeyClient _vault;
    private readonly IKeyRecordStore _records;
    private readonly RSA _wrappingKey;
    private readonly Func<CancellationToken, Task<string>>? _brokerTokenSource;
    private readonly string _releasePolicy;
    private readonly string _keyNamePrefix;
    private readonly SecureKeyReleaseOptions _release;
    private readonly TimeProvider _time;

    /// <param name="wrappingKey">The broker's RSA private key (2048+ bits) whose public half the attestation token's runtime claims carry. Not disposed here.</param>
    /// <param name="releasePolicyJson">The release policy set on keys this backend creates or imports (Key Vault's grammar, version 1.0.0).</param>
    /// <param name="brokerTokenSource">Gives the attestation token used when a release names none; null: every release must bring one.</param>
    public KeyVaultSecureKeyReleaseBackend(KeyVaultKeyClient vault, IKeyRecordStore records, RSA wrappingKey, string releasePolicyJson,
        Func<CancellationToken, Task<string>>? brokerTokenSource = null, SecureKeyReleaseOptions? releaseOptions = null, string keyNamePrefix = "attestbroker",
        TimeProvider? time = null, string name = DefaultName)
    {
        _vault = vault ?? throw new ArgumentNullException(nameof(vault));
        _records = records ?? throw new ArgumentNullException(nameof(records));
        _wrappingKey = wrappingKey ?? throw new ArgumentNullException(nameof(wrappingKey));
        if (wrappingKey.KeySize < 2048)
        {
            throw new ArgumentException("the broker's RSA wrapping key must have at least 2048 bits", nameof(wrappingKey));
        }

        _releasePolicy = ValidatePolicy(releasePolicyJson);
        if (!KeyVaultKeyClient.IsName(keyNamePrefix) || keyNamePrefix.Length > 32)
        {
            throw new ArgumentException("the key name prefix is 1..32 letters, digits and -", nameof(keyNamePrefix));
        }

        _keyNamePrefix = keyNamePrefix;
        _brokerTokenSource = brokerTokenSource;
        _release = releaseOptions ?? new SecureKeyReleaseOptions();
        _ = SecureKeyRelease.PaddingFor(_release.Encryption);
        _time = time ?? TimeProvider.System;
        Name = name;
    }

    public string Name { get; }

    /// <summary>
    /// The public half of the broker's RSA wrapping key (modulus and exponent; nothing secret): a pod's Azure
    /// Attestation token must carry it in x-ms-runtime.keys, since Key Vault wraps the released key to it.
    /// </summary>
    public RSAParameters WrappingPublicKey => _wrappingKey.ExportParameters(includePrivateParameters: false);

    /// <summary>The Key Vault key name for a broker key id: prefix-sanitised-id-8 hex of SHA-256(id).</summary>
    public string VaultKeyName(string keyId)
    {
        var sb = new StringBuilder(_keyNamePrefix).Append('-');
        foreach (char c in keyId.Length > 80 ? keyId[..80] : keyId)
        {
            sb.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        }

        return sb.Append('-').Append(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(keyId)).AsSpan(0, 4))).ToString();
    }

    /// <summary>Creates an exportable oct-HSM 256-bit key with the release policy: its bytes never exist outside the HSM until released.</summary>
    public async Task<KeyInfo> CreateAsync(string keyId, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        await RequireAbsentAsync(keyId, cancellationToken).ConfigureAwait(false);
        byte[] body = Body(w =>
        {
            w.WriteString("kty", "oct-HSM");
            w.WriteNumber("key_size", 256);
            WriteCommon(w);
        });
        KeyVaultKeyProperties p = await _vault.CreateKeyAsync(VaultKeyName(keyId), body, cancellationToken).ConfigureAwait(false);
        return await StoreAsync(keyId, p, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Imports the bytes as an exportable oct-HSM key with the release policy (the request body is zeroed after).</summary>
    public async Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        KeyRecords.RequireKeyMaterial(key.Span);
        await RequireAbsentAsync(keyId, cancellationToken).ConfigureAwait(false);
        byte[] body = Body(w =>
        {
            w.WriteStartObject("key");
            w.WriteString("kty", "oct-HSM");
            Span<byte> k = stackalloc byte[64];
            int n = Base64Url.EncodeToUtf8(key.Span, k);
            w.WriteString("k", k[..n]); // base64url from a stack buffer, zeroed below: no string holds the key
            CryptographicOperations.ZeroMemory(k);
            w.WriteEndObject();
            w.WriteBoolean("hsm", true);
            WriteCommon(w);
        });
        try
        {
            KeyVaultKeyProperties p = await _vault.ImportKeyAsync(VaultKeyName(keyId), body, cancellationToken).ConfigureAwait(false);
            return await StoreAsync(keyId, p, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(body);
        }
    }

    public async Task<KeyInfo> GetForReleaseAsync(string keyId, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (_brokerTokenSource is null)
        {
            throw new KeyBackendException(BackendError.Unsupported, Name, $"key '{keyId}' is released by Key Vault only against an attestation token, and no broker token source is configured");
        }

        string token = await _brokerTokenSource(cancellationToken).ConfigureAwait(false);
        return await GetForReleaseAsync(keyId, token, destination, cancellationToken).ConfigureAwait(false);
    }

    public async Task<KeyInfo> GetForReleaseAsync(string keyId, string attestationToken, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        KeyRecords.RequireDestination(destination);
        ArgumentException.ThrowIfNullOrEmpty(attestationToken);
        KeyRecord record = await KeyRecords.GetEnabledAsync(_records, Name, keyId, cancellationToken).ConfigureAwait(false);
        (string name, string version) = _vault.ParseKid(record.WrappingKeyId);
        string jws = await _vault.ReleaseAsync(name, version, attestationToken, _release.Encryption, null, cancellationToken).ConfigureAwait(false);
        byte[] released = SecureKeyRelease.Open(jws, _vault.VaultUri, record.WrappingKeyId, _wrappingKey, _release, _time.GetUtcNow(), Name);
        try
        {
            if (released.Length != IKeyBackend.KeyLength)
            {
                throw new KeyBackendException(BackendError.ReleaseInvalid, Name, $"Key Vault released {released.Length} bytes for key '{keyId}'; a model key is an oct-HSM key of 32 bytes");
            }

            released.CopyTo(destination.Span);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(released);
        }

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
    /// Refused: in SKR mode the released key is the model key itself, not a key-encryption key; rotating it in Key
    /// Vault would make a different model key. Create a new key and re-encrypt the model instead.
    /// </summary>
    public Task<KekRotationResult> RotateKekAsync(CancellationToken cancellationToken = default) =>
        throw new KeyStoreException(KeyError.RotationUnsupported,
            "in Secure Key Release mode the Key Vault key is the model key itself, not a key-encryption key: create a new key and re-encrypt the model to rotate");

    /// <summary>Readiness: the vault answers and lists a key this backend made (or, with none yet, the credential works).</summary>
    public async Task<BackendHealth> CheckHealthAsync(CancellationToken cancellationToken = default)
    {
        IReadOnlyList<KeyInfo> keys = await ListAsync(cancellationToken).ConfigureAwait(false);
        if (keys.Count == 0)
        {
            return BackendHealth.Ok(Name, $"no keys yet in {_vault.VaultUri.Host}");
        }

        (string name, _) = _vault.ParseKid(keys[0].WrappingKeyId);
        return await _vault.CheckHealthAsync(name, cancellationToken).ConfigureAwait(false);
    }

    public override string ToString() => $"KeyVaultSecureKeyReleaseBackend {{ Name = {Name}, Vault = {_vault.VaultUri.Host}, Encryption = {_release.Encryption} }}";

    private void WriteCommon(Utf8JsonWriter w)
    {
        w.WriteStartObject("attributes");
        w.WriteBoolean("enabled", true);
        w.WriteBoolean("exportable", true);
        w.WriteEndObject();
        w.WriteStartObject("release_policy");
        w.WriteString("contentType", "application/json; charset=utf-8");
        w.WriteString("data", Base64Url.EncodeToString(Encoding.UTF8.GetBytes(_releasePolicy)));
        w.WriteBoolean("immutable", false);
        w.WriteEndObject();
    }

    private static byte[] Body(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            write(w);
            w.WriteEndObject();
        }

        byte[] bytes = buffer.WrittenSpan.ToArray();
        buffer.Clear();
        return bytes;
    }

    private static string ValidatePolicy(string json)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(json);
        try
        {
            using JsonDocument doc = JsonDocument.Parse(json);
            JsonElement r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object || KeyVaultKeyClient.Str(r, "version") is null
                || !r.TryGetProperty("anyOf", out var any) || any.ValueKind != JsonValueKind.Array || any.GetArrayLength() == 0
                || any.EnumerateArray().Any(a => KeyVaultKeyClient.Str(a, "authority") is null))
            {
                throw new ArgumentException("a Key Vault release policy is {\"version\": \"1.0.0\", \"anyOf\": [{\"authority\": ..., \"allOf\"|\"anyOf\": [...]}]}", nameof(json));
            }

            return JsonSerializer.Serialize(r);
        }
        catch (JsonException e)
        {
            throw new ArgumentException("the release policy is not JSON", nameof(json), e);
        }
    }

    private async Task RequireAbsentAsync(string keyId, CancellationToken cancellationToken)
    {
        if (await KeyRecords.Storage(() => _records.GetAsync(keyId, cancellationToken)).ConfigureAwait(false) is not null)
        {
            throw new KeyStoreException(KeyError.AlreadyExists, $"key '{keyId}' already exists");
        }
    }

    private Task<KeyInfo> StoreAsync(string keyId, KeyVaultKeyProperties p, CancellationToken cancellationToken)
    {
        if (!p.Exportable)
        {
            throw new KeyBackendException(BackendError.BadResponse, Name, $"Key Vault made {p.Name} without exportable=true; it could never be released");
        }

        var record = new KeyRecord(keyId, Encoding.ASCII.GetBytes(p.Kid), p.Kid, 1, KeyState.Enabled, Name, KeyRecords.Now(_time), null, null);
        return KeyRecords.InsertAsync(_records, record, cancellationToken);
    }
}
