using System.Security.Cryptography;
using System.Text.RegularExpressions;
using AttestBroker.Storage;

namespace AttestBroker.Keys.Backends;

/// <summary>Shared handling of the broker's key records for the backends that keep their ciphertext there.</summary>
internal static partial class KeyRecords
{
    /// <summary>Makes a random 32-byte key in a pinned buffer, hands it to <paramref name="store"/>, and zeroes it afterwards.</summary>
    public static async Task<KeyInfo> WithRandomKeyAsync(Func<ReadOnlyMemory<byte>, Task<KeyInfo>> store)
    {
        byte[] key = GC.AllocateArray<byte>(IKeyBackend.KeyLength, pinned: true);
        try
        {
            RandomNumberGenerator.Fill(key);
            return await store(key).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>Runs <paramref name="unwrap"/> into <paramref name="destination"/>; on any failure the key bytes written so far are zeroed.</summary>
    public static async Task UnwrapIntoAsync(Memory<byte> destination, Func<Task> unwrap)
    {
        try
        {
            await unwrap().ConfigureAwait(false);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(destination.Span[..IKeyBackend.KeyLength]);
            throw;
        }
    }

    public static KeyInfo Info(KeyRecord r) =>
        new(r.KeyId, r.State, r.Backend, r.WrappingKeyId, r.WrappingKeyVersion, r.CreatedAt, r.RotatedAt, r.DisabledAt);

    public static void RequireKeyId(string keyId)
    {
        if (!EmbeddedKeyStore.IsValidKeyId(keyId))
        {
            throw new KeyStoreException(KeyError.InvalidKeyId, "a key id is 1..128 characters of letters, digits and . _ : - starting with a letter or digit");
        }
    }

    public static void RequireKeyMaterial(ReadOnlySpan<byte> key)
    {
        if (key.Length != IKeyBackend.KeyLength)
        {
            throw new KeyStoreException(KeyError.InvalidKeyMaterial, $"a model key must be {IKeyBackend.KeyLength} bytes (AES-256); got {key.Length}");
        }

        int acc = 0;
        foreach (byte b in key)
        {
            acc |= b;
        }

        if (acc == 0)
        {
            throw new KeyStoreException(KeyError.InvalidKeyMaterial, "an all-zero key is not a key");
        }
    }

    public static void RequireDestination(Memory<byte> destination)
    {
        if (destination.Length < IKeyBackend.KeyLength)
        {
            throw new ArgumentException($"the destination must hold {IKeyBackend.KeyLength} bytes", nameof(destination));
        }
    }

    public static async Task<T> Storage<T>(Func<Task<T>> operation)
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

    public static async Task<KeyRecord> GetAsync(IKeyRecordStore records, string backend, string keyId, CancellationToken cancellationToken)
    {
        KeyRecord? record = await Storage(() => records.GetAsync(keyId, cancellationToken)).ConfigureAwait(false);
        if (record is null || record.Backend != backend)
        {
            throw new KeyStoreException(KeyError.NotFound, $"key '{keyId}' does not exist");
        }

        return record;
    }

    public static async Task<KeyInfo?> GetInfoAsync(IKeyRecordStore records, string backend, string keyId, CancellationToken cancellationToken)
    {
        RequireKeyId(keyId);
        KeyRecord? r = await Storage(() => records.GetAsync(keyId, cancellationToken)).ConfigureAwait(false);
        return r is null || r.Backend != backend ? null : Info(r);
    }

    public static async Task<IReadOnlyList<KeyInfo>> ListAsync(IKeyRecordStore records, string backend, CancellationToken cancellationToken)
    {
        IReadOnlyList<KeyRecord> all = await Storage(() => records.ListAsync(cancellationToken)).ConfigureAwait(false);
        return [.. all.Where(r => r.Backend == backend).Select(Info)];
    }

    public static async Task<KeyInfo> InsertAsync(IKeyRecordStore records, KeyRecord record, CancellationToken cancellationToken)
    {
        try
        {
            await records.InsertAsync(record, cancellationToken).ConfigureAwait(false);
        }
        catch (StorageException e) when (e.Error == StorageError.AlreadyExists)
        {
            throw new KeyStoreException(KeyError.AlreadyExists, $"key '{record.KeyId}' already exists", e);
        }
        catch (StorageException e)
        {
            throw new KeyStoreException(KeyError.StorageFailed, $"storing key '{record.KeyId}' failed: {e.Message}", e);
        }

        return Info(record);
    }

    public static async Task<KeyInfo> SetStateAsync(IKeyRecordStore records, string backend, string keyId, KeyState state, TimeProvider time, CancellationToken cancellationToken)
    {
        RequireKeyId(keyId);
        _ = await GetAsync(records, backend, keyId, cancellationToken).ConfigureAwait(false);
        if (!await Storage(() => records.SetStateAsync(keyId, state, time.GetUtcNow(), cancellationToken)).ConfigureAwait(false))
        {
            throw new KeyStoreException(KeyError.NotFound, $"key '{keyId}' does not exist");
        }

        return Info(await GetAsync(records, backend, keyId, cancellationToken).ConfigureAwait(false));
    }

    public static async Task<KeyRecord> GetEnabledAsync(IKeyRecordStore records, string backend, string keyId, CancellationToken cancellationToken)
    {
        KeyRecord record = await GetAsync(records, backend, keyId, cancellationToken).ConfigureAwait(false);
        return record.State == KeyState.Enabled
            ? record
            : throw new KeyStoreException(KeyError.Disabled, $"key '{keyId}' is disabled");
    }

    public static DateTimeOffset Now(TimeProvider time) => DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());

    /// <summary>Shortens a service's error text for a message: one line, at most 300 characters, no control characters.</summary>
    public static string Cause(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return "no detail";
        }

        string one = ControlChars().Replace(text, " ").Trim();
        return one.Length <= 300 ? one : one[..300] + "...";
    }

    [GeneratedRegex(@"[\p{Cc}]+", RegexOptions.CultureInvariant)]
    private static partial Regex ControlChars();
}
