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

    private BrokerData(string directory, IBrokerStorage storage, EmbeddedKeyStore keys)
    {
        Directory = directory;
        Storage = storage;
        Keys = keys;
    }

    public string Directory { get; }

    public IBrokerStorage Storage { get; }

    public EmbeddedKeyStore Keys { get; }

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

    /// <summary>The challenge MAC secret (32 bytes; created on first use). The caller zeroes it.</summary>
    public byte[] ReadNonceSecret() =>
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

    public ValueTask DisposeAsync() => Storage.DisposeAsync();
}
