using System.Security.Cryptography;
using AttestBroker.Keys;
using AttestBroker.Policy;
using AttestBroker.Storage;

namespace AttestBroker.Server;

/// <summary>
/// The broker's data directory: <c>attestbroker.db</c> (SQLite: replay store, audit log, policies, wrapped keys),
/// <c>kek/</c> (KEK files, 0600), <c>nonce.key</c> (challenge MAC secret, 0600), <c>token-signing.key</c> (0600) and
/// <c>policies/&lt;key-id&gt;.yaml</c> (release policies loaded at start-up). Opened by <c>serve</c> and the local
/// <c>admin</c> commands alike.
/// </summary>
public sealed class BrokerData : IAsyncDisposable
{
    public const string DatabaseFile = "attestbroker.db";
    public const string KekDirectory = "kek";
    public const string NonceSecretFile = "nonce.key";
    public const string PoliciesDirectory = "policies";
    private const long MaxPolicyFileBytes = 1024 * 1024;

    private readonly BrokerSecretsOptions? _secrets;
    private readonly KekRing? _kek;

    private BrokerData(string directory, IBrokerStorage storage, EmbeddedKeyStore keys)
    {
        Directory = directory;
        Storage = storage;
        Keys = keys;
    }

    private BrokerData(string directory, IBrokerStorage storage, EmbeddedKeyStore keys, BrokerSecretsOptions secrets, KekRing kek)
        : this(directory, storage, keys)
    {
        _secrets = secrets;
        _kek = kek;
    }

    public string Directory { get; }

    public IBrokerStorage Storage { get; }

    public EmbeddedKeyStore Keys { get; }

    /// <summary>The KEK the embedded keystore wraps under (opened with Broker:Secrets); other backends may share it.</summary>
    internal KekRing? Kek => _kek;

    /// <summary>Creates the directory (0700) if needed, opens and migrates the database and loads the KEK.</summary>
    public static async Task<BrokerData> OpenAsync(string directory, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var full = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full))
        {
            if (OperatingSystem.IsWindows())
            {
                System.IO.Directory.CreateDirectory(full);
            }
            else
            {
                System.IO.Directory.CreateDirectory(full, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        var storage = BrokerStorage.Create(new StorageOptions { Provider = "sqlite", SqlitePath = Path.Combine(full, DatabaseFile) }, time);
        try
        {
            await storage.MigrateAsync(cancellationToken);
            var kek = new FileKekSource(Path.Combine(full, KekDirectory));
            return new BrokerData(full, storage, new EmbeddedKeyStore(storage.Keys, kek, time));
        }
        catch
        {
            await storage.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Opens the data directory with the storage and secrets of <paramref name="options"/> ("Broker:Storage",
    /// "Broker:Secrets"): SQLite in the directory or PostgreSQL (migrated at open; replicas starting together
    /// serialise on an advisory lock), and the KEK from the directory or environment the operator names. A
    /// PostgreSQL-backed broker whose secrets would be made locally is refused unless Secrets:AllowGeneratedSecrets.
    /// Failures are <see cref="BrokerStartupException"/>s naming the setting, never a secret or the connection string.
    /// </summary>
    public static async Task<BrokerData> OpenAsync(BrokerOptions options, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.DataDirectory);
        var storageOptions = options.Storage ?? new BrokerStorageOptions();
        var secrets = options.Secrets ?? new BrokerSecretsOptions();
        if (storageOptions.IsPostgres && !secrets.AllowGeneratedSecrets)
        {
            var missing = new List<string>();
            if (string.IsNullOrWhiteSpace(secrets.KekEnvironmentVariable) && string.IsNullOrWhiteSpace(secrets.KekDirectory))
            {
                missing.Add("the KEK (Broker:Secrets:KekEnvironmentVariable or Broker:Secrets:KekDirectory)");
            }

            if (string.IsNullOrWhiteSpace(secrets.NonceSecretEnvironmentVariable) && string.IsNullOrWhiteSpace(secrets.NonceSecretFile))
            {
                missing.Add("the challenge MAC secret (Broker:Secrets:NonceSecretEnvironmentVariable or Broker:Secrets:NonceSecretFile)");
            }

            if (string.IsNullOrWhiteSpace(secrets.TokenSigningKeyEnvironmentVariable) && string.IsNullOrWhiteSpace(secrets.TokenSigningKeyFile))
            {
                missing.Add("the token-signing key (Broker:Secrets:TokenSigningKeyEnvironmentVariable or Broker:Secrets:TokenSigningKeyFile)");
            }

            if (missing.Count > 0)
            {
                throw new BrokerStartupException(
                    "a PostgreSQL-backed broker must use secrets shared by every replica, but these would be generated locally: " + string.Join("; ", missing) +
                    ". Give them (see docs/server.md, Replicas), or set Broker:Secrets:AllowGeneratedSecrets=true for a single replica");
            }
        }

        var full = Path.GetFullPath(options.DataDirectory);
        if (!System.IO.Directory.Exists(full))
        {
            if (OperatingSystem.IsWindows())
            {
                System.IO.Directory.CreateDirectory(full);
            }
            else
            {
                System.IO.Directory.CreateDirectory(full, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        KekRing kek = OpenKek(full, secrets);
        IBrokerStorage? storage = null;
        try
        {
            storage = storageOptions.IsPostgres
                ? BrokerStorage.Create(new StorageOptions { Provider = "postgres", PostgresConnectionString = storageOptions.ResolveConnectionString(), PostgresSchema = storageOptions.Schema }, time)
                : BrokerStorage.Create(new StorageOptions { Provider = "sqlite", SqlitePath = Path.Combine(full, DatabaseFile) }, time);
            await storage.MigrateAsync(cancellationToken);
            return new BrokerData(full, storage, new EmbeddedKeyStore(storage.Keys, kek, time), secrets, kek);
        }
        catch (StorageException ex)
        {
            await DisposeAsync(storage, kek);
            throw new BrokerStartupException($"Broker:Storage ({storageOptions.Provider}): {ex.Message}", ex);
        }
        catch
        {
            await DisposeAsync(storage, kek);
            throw;
        }

        static async Task DisposeAsync(IBrokerStorage? storage, KekRing kek)
        {
            if (storage is not null)
            {
                await storage.DisposeAsync();
            }

            kek.Dispose();
        }
    }

    private static KekRing OpenKek(string dataDirectory, BrokerSecretsOptions secrets)
    {
        try
        {
            if (!string.IsNullOrWhiteSpace(secrets.KekEnvironmentVariable))
            {
                return new EnvironmentKekSource(secrets.KekEnvironmentVariable);
            }

            if (!string.IsNullOrWhiteSpace(secrets.KekDirectory))
            {
                // Given by the operator: it must already hold a KEK (never made here, or replicas would diverge).
                if (!System.IO.Directory.Exists(secrets.KekDirectory) || !System.IO.Directory.EnumerateFiles(secrets.KekDirectory, "kek-v*.bin").Any())
                {
                    throw new BrokerStartupException($"Broker:Secrets:KekDirectory {secrets.KekDirectory} holds no KEK (kek-v1.bin); create it once and share it with every replica");
                }

                return new FileKekSource(secrets.KekDirectory);
            }

            return new FileKekSource(Path.Combine(dataDirectory, KekDirectory));
        }
        catch (KeyStoreException ex)
        {
            throw new BrokerStartupException("Broker:Secrets (KEK): " + ex.Message, ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new BrokerStartupException($"Broker:Secrets:KekDirectory cannot be read ({ex.GetType().Name})", ex);
        }
    }

    /// <summary>The token-signing key: from the environment variable or file named in Broker:Secrets, else the data directory's (made on first use).</summary>
    public TokenSigner LoadTokenSigner()
    {
        if (_secrets?.TokenSigningKeyEnvironmentVariable is { Length: > 0 } variable)
        {
            var value = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrWhiteSpace(value))
            {
                throw new BrokerStartupException($"the environment variable {variable} (Broker:Secrets:TokenSigningKeyEnvironmentVariable) is not set");
            }

            byte[] der = [];
            try
            {
                der = value.Contains("-----BEGIN", StringComparison.Ordinal) ? PemToDer(value, variable) : Convert.FromBase64String(value.Trim());
                return TokenSigner.FromPkcs8(der, "the environment variable " + variable);
            }
            catch (FormatException)
            {
                throw new BrokerStartupException($"the environment variable {variable} is neither a PKCS#8 PEM nor base64 DER");
            }
            finally
            {
                CryptographicOperations.ZeroMemory(der);
            }
        }

        return _secrets?.TokenSigningKeyFile is { Length: > 0 } file
            ? TokenSigner.LoadExisting(file)
            : TokenSigner.LoadOrCreate(Directory);
    }

    private static byte[] PemToDer(string pem, string origin)
    {
        var fields = System.Security.Cryptography.PemEncoding.TryFind(pem, out var f) ? f : throw new BrokerStartupException($"{origin} holds no PEM block");
        if (pem[fields.Label] != "PRIVATE KEY")
        {
            throw new BrokerStartupException($"{origin} must hold a \"PRIVATE KEY\" (PKCS#8) PEM block");
        }

        return Convert.FromBase64String(pem[fields.Base64Data]);
    }

    /// <summary>The challenge MAC secret (32 bytes; created on first use). The caller zeroes it.</summary>
    public byte[] ReadNonceSecret()
    {
        if (_secrets?.NonceSecretEnvironmentVariable is { Length: > 0 } variable)
        {
            var value = Environment.GetEnvironmentVariable(variable);
            var secret = new byte[NonceService.SecretLength + 3];
            if (string.IsNullOrWhiteSpace(value) || !Convert.TryFromBase64String(value.Trim(), secret, out var written) || written != NonceService.SecretLength)
            {
                CryptographicOperations.ZeroMemory(secret);
                throw new BrokerStartupException($"the environment variable {variable} (Broker:Secrets:NonceSecretEnvironmentVariable) must hold the base64 of exactly {NonceService.SecretLength} bytes");
            }

            var exact = secret[..NonceService.SecretLength];
            CryptographicOperations.ZeroMemory(secret);
            return exact;
        }

        if (_secrets?.NonceSecretFile is { Length: > 0 } file)
        {
            var bytes = SecretFiles.ReadOrCreate(file, NonceService.SecretLength, () => throw new BrokerStartupException($"Broker:Secrets:NonceSecretFile {file} does not exist; create it once (32 random bytes, mode 0600) and share it with every replica"));
            if (bytes.Length != NonceService.SecretLength)
            {
                CryptographicOperations.ZeroMemory(bytes);
                throw new BrokerStartupException($"Broker:Secrets:NonceSecretFile must hold exactly {NonceService.SecretLength} bytes");
            }

            return bytes;
        }

        return ReadDefaultNonceSecret();
    }

    private byte[] ReadDefaultNonceSecret() =>
        SecretFiles.ReadOrCreate(Path.Combine(Directory, NonceSecretFile), NonceService.SecretLength, () => RandomNumberGenerator.GetBytes(NonceService.SecretLength)) is { Length: NonceService.SecretLength } secret
            ? secret
            : throw new BrokerStartupException($"{NonceSecretFile} must hold exactly {NonceService.SecretLength} bytes");

    /// <summary>
    /// Stores <paramref name="document"/> as the release policy of key <paramref name="keyId"/> (a new version when
    /// it differs from the current one) and audits the change. Returns the stored version.
    /// </summary>
    public async Task<PolicyVersion> SetPolicyAsync(string keyId, string document, string author, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        if (!EmbeddedKeyStore.IsValidKeyId(keyId))
        {
            throw new BrokerStartupException($"\"{keyId}\" is not a valid key id");
        }

        var policy = ReleasePolicy.Parse(document);
        var current = await Storage.Policies.GetCurrentAsync(keyId, cancellationToken);
        if (current is not null && current.Document == document)
        {
            return current;
        }

        var stored = await Storage.Policies.SetAsync(keyId, document, author, $"policy {policy.Name} version {policy.Version}", cancellationToken);
        await Storage.Audit.AppendAsync(new AuditEvent("policy.set", now, author, PolicyVersion: stored.Version, KeyId: keyId,
            Details: new Dictionary<string, string>(StringComparer.Ordinal) { ["sha256"] = stored.Sha256Hex, ["policy"] = policy.Name }), cancellationToken);
        return stored;
    }

    /// <summary>Loads every <c>policies/&lt;key-id&gt;.yaml|.yml|.json</c>; an invalid file stops the start with its name and the problem.</summary>
    public async Task<int> LoadPolicyDirectoryAsync(DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var dir = Path.Combine(Directory, PoliciesDirectory);
        if (!System.IO.Directory.Exists(dir))
        {
            return 0;
        }

        var count = 0;
        foreach (var file in System.IO.Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal))
        {
            var ext = Path.GetExtension(file);
            if (ext is not (".yaml" or ".yml" or ".json"))
            {
                continue;
            }

            if (new FileInfo(file).Length > MaxPolicyFileBytes)
            {
                throw new BrokerStartupException($"{file} is larger than {MaxPolicyFileBytes} bytes");
            }

            var keyId = Path.GetFileNameWithoutExtension(file);
            try
            {
                await SetPolicyAsync(keyId, await File.ReadAllTextAsync(file, cancellationToken), "serve:" + PoliciesDirectory, now, cancellationToken);
            }
            catch (PolicyFormatException ex)
            {
                throw new BrokerStartupException($"{file}: {ex.Message}", ex);
            }

            count++;
        }

        return count;
    }

    public ValueTask DisposeAsync()
    {
        _kek?.Dispose();
        return Storage.DisposeAsync();
    }
}
