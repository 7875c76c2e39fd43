using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace AttestBroker.Verification.Collateral;

/// <summary>
/// Where <see cref="CollateralHttpCache"/> keeps fetched responses beyond its own memory: a folder on disk by default
/// (<see cref="DiskCollateralResponseStore"/>), or a database that several processes share. The store never decides
/// freshness: the cache asks the content each time (TCB Info nextUpdate, a CRL's nextUpdate, a certificate's notAfter).
/// </summary>
public interface ICollateralResponseStore
{
    /// <summary>
    /// The stored response under <paramref name="key"/> (fresh or not), or null when there is none or it is damaged.
    /// A store that cannot be reached throws <see cref="CollateralStoreException"/>: the cache then treats it as a miss
    /// and fetches.
    /// </summary>
    Task<CachedResponse?> LoadAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stores <paramref name="response"/> under <paramref name="key"/>, replacing what was there;
    /// <paramref name="freshUntil"/> is the limit the cache derived from the content (for purging). A store that cannot
    /// be written throws <see cref="CollateralStoreException"/>: the cache still serves the response it fetched.
    /// </summary>
    Task SaveAsync(string key, CachedResponse response, DateTimeOffset freshUntil, CancellationToken cancellationToken = default);
}

/// <summary>A collateral response store could not be read or written. The message names the store, never a secret.</summary>
public sealed class CollateralStoreException : Exception
{
    public CollateralStoreException()
    {
    }

    public CollateralStoreException(string message)
        : base(message)
    {
    }

    public CollateralStoreException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Responses in a folder: <c>&lt;key&gt;.bin</c> (the body) and <c>&lt;key&gt;.json</c> (URI, fetch time, headers and
/// the body's SHA-256), each written to a temporary file and moved into place. A torn, edited or unreadable entry is a
/// miss; a folder that cannot be written (read-only, full) is ignored, because the cache is an optimisation.
/// </summary>
public sealed class DiskCollateralResponseStore : ICollateralResponseStore
{
    public DiskCollateralResponseStore(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory = directory;
    }

    public string Directory { get; }

    public async Task<CachedResponse?> LoadAsync(string key, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var meta = Path.Combine(Directory, key + ".json");
        var body = Path.Combine(Directory, key + ".bin");
        if (!File.Exists(meta) || !File.Exists(body))
        {
            return null;
        }

        try
        {
            await using var metaStream = File.OpenRead(meta);
            var m = await JsonSerializer.DeserializeAsync(metaStream, CacheJsonContext.Default.CacheMeta, cancellationToken).ConfigureAwait(false);
            if (m?.Uri is null)
            {
                return null;
            }

            var bytes = await File.ReadAllBytesAsync(body, cancellationToken).ConfigureAwait(false);
            if (!CryptographicOperations.FixedTimeEquals(SHA256.HashData(bytes), Convert.FromHexString(m.BodySha256 ?? string.Empty)))
            {
                return null; // torn or edited entry: fetch again
            }

            return new CachedResponse(new Uri(m.Uri), bytes, m.Headers ?? [], m.FetchedAt);
        }
        catch (Exception ex) when (ex is IOException or JsonException or FormatException or UriFormatException or UnauthorizedAccessException)
        {
            return null; // a damaged cache entry is a miss, never an error
        }
    }

    public async Task SaveAsync(string key, CachedResponse response, DateTimeOffset freshUntil, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(response);
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            var meta = new CacheMeta
            {
                Uri = response.Uri.AbsoluteUri,
                FetchedAt = response.FetchedAt,
                Headers = new Dictionary<string, string>(response.Headers, StringComparer.OrdinalIgnoreCase),
                BodySha256 = Convert.ToHexStringLower(SHA256.HashData(response.Body)),
            };
            var bodyPath = Path.Combine(Directory, key + ".bin");
            var metaPath = Path.Combine(Directory, key + ".json");
            var tmpBody = bodyPath + "." + Guid.NewGuid().ToString("N") + ".tmp";
            var tmpMeta = metaPath + "." + Guid.NewGuid().ToString("N") + ".tmp";
            await File.WriteAllBytesAsync(tmpBody, response.Body, cancellationToken).ConfigureAwait(false);
            await File.WriteAllTextAsync(tmpMeta, JsonSerializer.Serialize(meta, CacheJsonContext.Default.CacheMeta), cancellationToken).ConfigureAwait(false);
            File.Move(tmpBody, bodyPath, overwrite: true);
            File.Move(tmpMeta, metaPath, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The cache is an optimisation: a read-only or full disk must not fail verification.
        }
    }

    internal sealed class CacheMeta
    {
        public string? Uri { get; set; }

        public DateTimeOffset FetchedAt { get; set; }

        public Dictionary<string, string>? Headers { get; set; }

        public string? BodySha256 { get; set; }
    }
}

[JsonSerializable(typeof(DiskCollateralResponseStore.CacheMeta))]
internal sealed partial class CacheJsonContext : JsonSerializerContext
{
}
