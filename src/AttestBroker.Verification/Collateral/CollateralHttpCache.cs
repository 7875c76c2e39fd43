using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;

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
/// Fetches collateral over HTTP through a cache: process memory in front of an <see cref="ICollateralResponseStore"/>
/// (a folder on disk by default, <see cref="CollateralFetchOptions.CacheDirectory"/>; a shared database when several
/// brokers should fetch each response once). An entry is served from the cache while the time now is
/// before the freshness limit that the caller derives from the content (TCB Info and QE Identity nextUpdate, a CRL's
/// nextUpdate, a certificate's notAfter): the cache never decides what collateral means. Transient failures (5xx,
/// timeouts) are retried with exponential back-off; HTTP 429 and 503 Retry-After are honoured (waited out when short,
/// remembered per host so that no request is sent before it has passed). Failures are a
/// <see cref="CollateralUnavailableException"/>; callers turn it into <see cref="ReasonCodes.CollateralUnavailable"/>.
/// A store that cannot be read is a miss and one that cannot be written is skipped: the response is then fetched or
/// served as without a store, so a store failure never grants what a fetch would not.
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
    private readonly ICollateralResponseStore _store;
    private readonly ConcurrentDictionary<string, CachedResponse> _memory = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _notBefore = new(StringComparer.OrdinalIgnoreCase);

    /// <param name="http">The client requests go through.</param>
    /// <param name="options">Base URLs, retries, limits, and the cache folder used when <paramref name="store"/> is null.</param>
    /// <param name="time">The clock that decides freshness (the verification clock).</param>
    /// <param name="store">Where responses are kept beyond memory; null: a <see cref="DiskCollateralResponseStore"/> in <see cref="CollateralFetchOptions.CacheDirectory"/>.</param>
    public CollateralHttpCache(HttpClient http, CollateralFetchOptions options, TimeProvider? time = null, ICollateralResponseStore? store = null)
    {
        _http = http ?? throw new ArgumentNullException(nameof(http));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _time = time ?? TimeProvider.System;
        _store = store ?? new DiskCollateralResponseStore(options.CacheDirectory);
    }

    public CollateralFetchOptions Options => _options;

    /// <summary>Where responses are kept beyond this process's memory.</summary>
    public ICollateralResponseStore Store => _store;

    /// <summary>
    /// The response for <paramref name="uri"/>: from memory or the store while <paramref name="freshUntil"/> of the cached
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

        var stored = await LoadAsync(key, uri, cancellationToken).ConfigureAwait(false);
        if (stored is not null && IsFresh(stored, freshUntil, now))
        {
            _memory[key] = stored;
            return stored;
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
            try
            {
                await _store.SaveAsync(key, fetched, until, cancellationToken).ConfigureAwait(false);
            }
            catch (CollateralStoreException)
            {
                // Not kept beyond memory: the next process fetches it again.
            }
        }

        return fetched;
    }

    /// <summary>The stored entry for <paramref name="key"/> when it is the response of <paramref name="uri"/>; an unreachable store or another URI's entry is a miss.</summary>
    private async Task<CachedResponse?> LoadAsync(string key, Uri uri, CancellationToken cancellationToken)
    {
        CachedResponse? stored;
        try
        {
            stored = await _store.LoadAsync(key, cancellationToken).ConfigureAwait(false);
        }
        catch (CollateralStoreException)
        {
            return null;
        }

        return stored is not null && string.Equals(stored.Uri.AbsoluteUri, uri.AbsoluteUri, StringComparison.Ordinal) ? stored : null;
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
}
