using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace AttestBroker.Verification.Collateral;

/// <summary>A response as fetched (or as cached on disk): body, the headers collateral needs (issuer chains), and when it was fetched.</summary>
public sealed record CachedResponse(Uri Uri, byte[] Body, IReadOnlyDictionary<string, string> Headers, DateTimeOffset FetchedAt)
{
    /// <summary>A header by case-insensitive name, or null.</summary>
    public string? Header(string name) =>
        Headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;
}

/// <summary>Collateral could not be had: the service refused, is rate limiting, is down, or answered garbage.</summary>
public sealed class CollateralUnavailableException : Exception
{
    public CollateralUnavailableException(Uri uri, int? statusCode, TimeSpan? retryAfter, string message, Exception? inner = null)
        : base(message, inner)
    {
        Uri = uri;
        StatusCode = statusCode;
        RetryAfter = retryAfter;
    }

    public CollateralUnavailableException()
    {
        Uri = new Uri("about:blank");
    }

    public CollateralUnavailableException(string message)
        : base(message)
    {
        Uri = new Uri("about:blank");
    }

    public CollateralUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
        Uri = new Uri("about:blank");
    }

    public Uri Uri { get; }

    /// <summary>The HTTP status of the last answer, or null when none came (timeout, connection refused).</summary>
    public int? StatusCode { get; }

    /// <summary>How long the service asked us to wait, when it said (HTTP 429/503 Retry-After).</summary>
    public TimeSpan? RetryAfter { get; }
}

/// <summary>
/// Fetches collateral over HTTP through an on-disk cache. An entry is served from the cache while the time now is
/// before the freshness limit that the caller derives from the content (TCB Info and QE Identity nextUpdate, a CRL's
/// nextUpdate, a certificate's notAfter): the cache never decides what collateral means. Transient failures (5xx,
/// timeouts) are retried with exponential back-off; HTTP 429 and 503 Retry-After are honoured (waited out when short,
/// remembered per host so that no request is sent before it has passed). Failures are a
/// <see cref="CollateralUnavailableException"/>; callers turn it into <see cref="ReasonCodes.CollateralUnavailable"/>.
/// </summary>
public sealed class CollateralHttpCache
{
    private static readonly string[] KeptHeaders =
    [
        "TCB-Info-Issuer-Chain", "SGX-Enclave-Identity-Issuer-Chain", "SGX-PCK-CRL-Issuer-Chain", "TCB-Evaluation-Data-Numbers",
        "SGX-TCB-Info-Issuer-Chain", "Content-Type", "Last-Modified", "Date",
    ];

    private readonly HttpClient _http;
    private readonly CollateralFetchOptions _options;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, CachedResponse> _memory = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _notBefore = new(StringComparer.OrdinalIgnoreCase);

    public CollateralHttpCache(HttpClient http, CollateralFetchOptions options, TimeProvider? time = null)
    {
        _http = http ?? throw new ArgumentNullException(nameof(http));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _time = time ?? TimeProvider.System;
    }

    public CollateralFetchOptions Options => _options;

    /// <summary>
    /// The response for <paramref name="uri"/>: from memory or disk while <paramref name="freshUntil"/> of the cached
    /// entry is after now, else fetched (and cached when <paramref name="freshUntil"/> of the new one accepts it).
    /// <paramref name="freshUntil"/> may throw <see cref="FormatException"/> for content it cannot read; such a
    /// response is never cached and fails the request.
    /// </summary>
    public async Task<CachedResponse> GetAsync(Uri uri, Func<CachedResponse, DateTimeOffset> freshUntil, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(uri);
        ArgumentNullException.ThrowIfNull(freshUntil);
        var key = KeyOf(uri);
        var now = _time.GetUtcNow();

        if (_memory.TryGetValue(key, out var mem) && IsFresh(mem, freshUntil, now))
        {
            return mem;
        }

        var disk = await ReadDiskAsync(key, cancellationToken).ConfigureAwait(false);
        if (disk is not null && IsFresh(disk, freshUntil, now))
        {
            _memory[key] = disk;
            return disk;
        }

        var fetched = await FetchAsync(uri, cancellationToken).ConfigureAwait(false);
        DateTimeOffset until;
        try
        {
            until = freshUntil(fetched);
        }
        catch (FormatException ex)
        {
            throw new CollateralUnavailableException(uri, 200, null, $"{uri.GetLeftPart(UriPartial.Path)} answered content that could not be read: {ex.Message}", ex);
        }

        if (until > _time.GetUtcNow())
        {
            _memory[key] = fetched;
            await WriteDiskAsync(key, fetched, cancellationToken).ConfigureAwait(false);
        }

        return fetched;
    }

    private static bool IsFresh(CachedResponse entry, Func<CachedResponse, DateTimeOffset> freshUntil, DateTimeOffset now)
    {
        try
        {
            return freshUntil(entry) > now;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static string KeyOf(Uri uri) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(uri.AbsoluteUri)));

    private async Task<CachedResponse> FetchAsync(Uri uri, CancellationToken cancellationToken)
    {
        var host = uri.Authority;
        CollateralUnavailableException? last = null;
        var backoff = _options.InitialBackoff;
        for (var attempt = 1; attempt <= Math.Max(1, _options.MaxAttempts); attempt++)
        {
            if (_notBefore.TryGetValue(host, out var notBefore))
            {
                var wait = notBefore - _time.GetUtcNow();
                if (wait > _options.MaxRetryAfter)
                {
                    throw new CollateralUnavailableException(uri, 429, wait, $"{host} asked us to wait until {notBefore:O} (rate limited); not retrying before then");
                }

                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
                }
            }

            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(_options.RequestTimeout);
                using var response = await _http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
                var status = (int)response.StatusCode;
                if (response.IsSuccessStatusCode)
                {
                    var body = await ReadBoundedAsync(response, uri, timeout.Token).ConfigureAwait(false);
                    return new CachedResponse(uri, body, CollectHeaders(response), _time.GetUtcNow());
                }

                var retryAfter = RetryAfterOf(response);
                if (retryAfter is { } ra)
                {
                    _notBefore[host] = _time.GetUtcNow() + ra;
                }

                last = new CollateralUnavailableException(uri, status, retryAfter, $"{uri.GetLeftPart(UriPartial.Path)} answered HTTP {status} {response.ReasonPhrase}" + (retryAfter is { } r ? $" (Retry-After {r.TotalSeconds:0}s)" : string.Empty));
                var transient = response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout || status >= 500;
                if (!transient)
                {
                    throw last;
                }

                if (retryAfter is { } longWait && longWait > _options.MaxRetryAfter)
                {
                    throw last;
                }
            }
            catch (HttpRequestException ex)
            {
                last = new CollateralUnavailableException(uri, null, null, $"{uri.GetLeftPart(UriPartial.Path)} could not be reached: {ex.Message}", ex);
            }
            catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                last = new CollateralUnavailableException(uri, null, null, $"{uri.GetLeftPart(UriPartial.Path)} did not answer within {_options.RequestTimeout.TotalSeconds:0}s", ex);
            }

            if (attempt < _options.MaxAttempts && !_notBefore.ContainsKey(host))
            {
                await Task.Delay(backoff, _time, cancellationToken).ConfigureAwait(false);
                backoff *= 2;
            }
        }

        throw last ?? new CollateralUnavailableException(uri, null, null, $"{uri} could not be fetched");
    }

    private async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, Uri uri, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength is long declared && declared > _options.MaxResponseBytes)
        {
            throw new CollateralUnavailableException(uri, (int)response.StatusCode, null, $"{uri.GetLeftPart(UriPartial.Path)} answered {declared} bytes, more than the {_options.MaxResponseBytes} allowed");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int n;
        while ((n = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > _options.MaxResponseBytes)
            {
                throw new CollateralUnavailableException(uri, (int)response.StatusCode, null, $"{uri.GetLeftPart(UriPartial.Path)} answered more than the {_options.MaxResponseBytes} bytes allowed");
            }

            buffer.Write(chunk, 0, n);
        }

        return buffer.ToArray();
    }

    private static Dictionary<string, string> CollectHeaders(HttpResponseMessage response)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in KeptHeaders)
        {
            if (response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values))
            {
                headers[name] = string.Join(",", values);
            }
        }

        return headers;
    }

    private TimeSpan? RetryAfterOf(HttpResponseMessage response)
    {
        var ra = response.Headers.RetryAfter;
        if (ra?.Delta is { } delta)
        {
            return delta < TimeSpan.Zero ? TimeSpan.Zero : delta;
        }

        if (ra?.Date is { } date)
        {
            var d = date - _time.GetUtcNow();
            return d < TimeSpan.Zero ? TimeSpan.Zero : d;
        }

        return null;
    }

    private async Task<CachedResponse?> ReadDiskAsync(string key, CancellationToken cancellationToken)
    {
        var meta = Path.Combine(_options.CacheDirectory, key + ".json");
        var body = Path.Combine(_options.CacheDirectory, key + ".bin");
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

    private async Task WriteDiskAsync(string key, CachedResponse response, CancellationToken cancellationToken)
    {
        try
        {
            Directory.CreateDirectory(_options.CacheDirectory);
            var meta = new CacheMeta
            {
                Uri = response.Uri.AbsoluteUri,
                FetchedAt = response.FetchedAt,
                Headers = new Dictionary<string, string>(response.Headers, StringComparer.OrdinalIgnoreCase),
                BodySha256 = Convert.ToHexStringLower(SHA256.HashData(response.Body)),
            };
            var bodyPath = Path.Combine(_options.CacheDirectory, key + ".bin");
            var metaPath = Path.Combine(_options.CacheDirectory, key + ".json");
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

[JsonSerializable(typeof(CollateralHttpCache.CacheMeta))]
internal sealed partial class CacheJsonContext : JsonSerializerContext
{
}
