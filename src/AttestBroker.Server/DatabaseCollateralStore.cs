using AttestBroker.Storage;
using AttestBroker.Verification.Collateral;

namespace AttestBroker.Server;

/// <summary>
/// The collateral fetch cache in the broker's database (<see cref="IBrokerStorage.Collateral"/>), so that every replica
/// on one PostgreSQL schema serves what any of them fetched from Intel PCS / AMD KDS, and a restarted pod does not fetch
/// again. The request URI travels in the stored headers under a pseudo-header name (<c>:uri</c>, which no HTTP header can
/// have). A database that cannot be reached is a <see cref="CollateralStoreException"/>: a miss for the cache, which
/// then fetches; the database's own digest check makes a damaged row a miss.
/// </summary>
public sealed class DatabaseCollateralStore : ICollateralResponseStore
{
    public const string UriHeader = ":uri";

    private readonly ICollateralStore _store;

    public DatabaseCollateralStore(ICollateralStore store)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
    }

    public async Task<CachedResponse?> LoadAsync(string key, CancellationToken cancellationToken = default)
    {
        CollateralEntry? entry;
        try
        {
            entry = await _store.GetAsync(key, cancellationToken).ConfigureAwait(false);
        }
        catch (StorageException ex)
        {
            throw new CollateralStoreException($"the collateral cache in the database cannot be read ({ex.Error})", ex);
        }

        if (entry is null
            || !entry.Headers.TryGetValue(UriHeader, out var uriText)
            || !Uri.TryCreate(uriText, UriKind.Absolute, out var uri))
        {
            return null;
        }

        var headers = entry.Headers
            .Where(h => !string.Equals(h.Key, UriHeader, StringComparison.Ordinal))
            .ToDictionary(h => h.Key, h => h.Value, StringComparer.OrdinalIgnoreCase);
        return new CachedResponse(uri, entry.Body, headers, entry.FetchedAt);
    }

    public async Task SaveAsync(string key, CachedResponse response, DateTimeOffset freshUntil, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        var headers = new Dictionary<string, string>(response.Headers, StringComparer.OrdinalIgnoreCase)
        {
            [UriHeader] = response.Uri.AbsoluteUri,
        };
        try
        {
            await _store.PutAsync(new CollateralEntry(key, response.Body, headers, response.FetchedAt, freshUntil), cancellationToken).ConfigureAwait(false);
        }
        catch (StorageException ex)
        {
            throw new CollateralStoreException($"the collateral cache in the database cannot be written ({ex.Error})", ex);
        }
        catch (ArgumentException ex)
        {
            // Larger than the database keeps (SqlStorage.MaxCollateralBytes) or a key it refuses: not cached.
            throw new CollateralStoreException("the response cannot be kept in the database's collateral cache", ex);
        }
    }
}
