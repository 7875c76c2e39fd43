using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AttestBroker.Protocol;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AttestBroker.Kubernetes;

/// <summary>Settings shared by both token validators.</summary>
public sealed class TokenValidationOptions
{
    public const string DefaultAudience = "attestbroker";

    /// <summary>The audience the pod's projected token must carry (the <c>audience</c> of its serviceAccountToken volume).</summary>
    public string Audience { get; set; } = DefaultAudience;

    /// <summary>How long a successful TokenReview is remembered (never past the token's <c>exp</c> less <see cref="ExpiryMargin"/>).</summary>
    public TimeSpan CacheLifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>At most this many remembered reviews.</summary>
    public int CacheCapacity { get; set; } = 4096;

    /// <summary>A cached review is dropped this long before the token expires.</summary>
    public TimeSpan ExpiryMargin { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long one TokenReview request may take before the answer is "unavailable".</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The longest token accepted (projected tokens are about 1 KiB).</summary>
    public int MaximumTokenLength { get; set; } = 16 * 1024;

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Audience))
        {
            throw new ArgumentException("the token audience must not be empty", nameof(Audience));
        }

        if (CacheLifetime < TimeSpan.Zero || CacheCapacity < 0 || ExpiryMargin < TimeSpan.Zero || RequestTimeout <= TimeSpan.Zero || MaximumTokenLength < 64)
        {
            throw new ArgumentException("token validation options are out of range");
        }
    }
}

/// <summary>
/// Validates a projected service-account token with the TokenReview API (authentication.k8s.io/v1) and
/// <c>spec.audiences = [audience]</c>: the API server checks signature, expiry, audience and that the bound pod
/// still exists. The answer must say authenticated, list the audience, and name a service-account user; the pod's name
/// and UID come from <c>status.user.extra</c>. API errors give Unavailable (503), a refused token Invalid (401).
/// Successful reviews are cached briefly, keyed by SHA-256 of the token (the token itself is never stored or logged).
/// </summary>
public sealed class TokenReviewValidator : IServiceAccountTokenValidator
{
    private readonly IKubernetes _client;
    private readonly TokenValidationOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ReviewCache _cache;

    public TokenReviewValidator(IKubernetes client, TokenValidationOptions? options = null, TimeProvider? time = null, ILogger<TokenReviewValidator>? logger = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _options = options ?? new TokenValidationOptions();
        _options.Validate();
        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _cache = new ReviewCache(_options.CacheCapacity);
    }

    /// <summary>How many reviews are remembered now (for tests and metrics).</summary>
    public int CachedReviews => _cache.Count;

    public async Task<IdentityResult> ValidateAsync(string token, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(token) || token.Length > _options.MaximumTokenLength || token.Any(c => c is <= ' ' or > '~'))
        {
            return IdentityResult.Invalid(IdentityErrors.Malformed, "the service account token is empty, too long or not printable ASCII");
        }

        var key = SHA256.HashData(Encoding.ASCII.GetBytes(token));
        var now = _time.GetUtcNow();
        if (_cache.TryGet(key, now, out var cached))
        {
            return IdentityResult.Valid(cached);
        }

        V1TokenReview answer;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            timeout.CancelAfter(_options.RequestTimeout);
            try
            {
                var review = new V1TokenReview
                {
                    ApiVersion = "authentication.k8s.io/v1",
                    Kind = "TokenReview",
                    Spec = new V1TokenReviewSpec { Token = token, Audiences = [_options.Audience] },
                };
                answer = await _client.AuthenticationV1.CreateTokenReviewAsync(review, cancellationToken: timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or OperationCanceledException or IOException or JsonException or KubernetesException)
            {
                // HttpOperationException carries the request body (the token): only its status code is used.
                var status = ex is HttpOperationException hoe ? (int?)hoe.Response?.StatusCode : null;
                _logger.LogWarning("TokenReview failed: {Kind} {Status}", ex.GetType().Name, status);
                var what = status is { } s ? $"the API server answered {s} ({(HttpStatusCode)s})" : $"the API server could not be reached ({ex.GetType().Name})";
                return IdentityResult.Unavailable(IdentityErrors.ReviewUnavailable, "TokenReview failed: " + what);
            }
        }

        var result = Interpret(answer, _options.Audience);
        if (result.IsValid && _options.CacheLifetime > TimeSpan.Zero && ReadExpiry(token) is { } exp)
        {
            var until = Min(now + _options.CacheLifetime, exp - _options.ExpiryMargin);
            if (until > now)
            {
                _cache.Put(key, result.Identity!, until, now);
            }
        }

        return result;
    }

    /// <summary>What a TokenReview answer means for the broker.</summary>
    internal static IdentityResult Interpret(V1TokenReview? answer, string audience)
    {
        var status = answer?.Status;
        if (status is null || status.Authenticated != true)
        {
            // status.error is the API server's text; it is not echoed (it may describe the token).
            return IdentityResult.Invalid(IdentityErrors.NotAuthenticated, "the API server did not authenticate the token");
        }

        if (status.Audiences is null || !status.Audiences.Contains(audience, StringComparer.Ordinal))
        {
            return IdentityResult.Invalid(IdentityErrors.AudienceMismatch, $"the token is not for the audience \"{audience}\"");
        }

        var username = status.User?.Username;
        if (!RequesterIdentity.TryParseUsername(username, out var ns, out var sa))
        {
            return IdentityResult.Invalid(IdentityErrors.NotServiceAccount, "the token does not belong to a service account (system:serviceaccount:<namespace>:<name>)");
        }

        string? One(string key) =>
            status.User?.Extra is { } extra && extra.TryGetValue(key, out var values) && values is { Count: 1 } && !string.IsNullOrEmpty(values[0]) ? values[0] : null;

        return IdentityResult.Valid(new RequesterIdentity(ns, sa, One(ServiceAccountExtra.PodName), One(ServiceAccountExtra.PodUid), username!));
    }

    /// <summary>The token's <c>exp</c>, read without verifying (only to bound the cache; the API server verified it).</summary>
    internal static DateTimeOffset? ReadExpiry(string token)
    {
        try
        {
            using var jws = CompactJws.Decode(token, 64 * 1024);
            return jws.Payload.TryGetProperty("exp", out var exp) && exp.ValueKind == JsonValueKind.Number && exp.TryGetInt64(out var seconds)
                && seconds is > 0 and < 253402300799
                ? DateTimeOffset.FromUnixTimeSeconds(seconds)
                : null;
        }
        catch (ProtocolException)
        {
            return null;
        }
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    /// <summary>Successful reviews by token digest, bounded: expired entries go first, then the soonest to expire.</summary>
    private sealed class ReviewCache(int capacity)
    {
        private readonly Dictionary<string, (RequesterIdentity Identity, DateTimeOffset Until)> _entries = new(StringComparer.Ordinal);
        private readonly Lock _lock = new();

        public int Count
        {
            get
            {
                lock (_lock)
                {
                    return _entries.Count;
                }
            }
        }

        public bool TryGet(byte[] key, DateTimeOffset now, out RequesterIdentity identity)
        {
            var k = Convert.ToHexString(key);
            lock (_lock)
            {
                if (_entries.TryGetValue(k, out var e))
                {
                    if (e.Until > now)
                    {
                        identity = e.Identity;
                        return true;
                    }

                    _entries.Remove(k);
                }
            }

            identity = null!;
            return false;
        }

        public void Put(byte[] key, RequesterIdentity identity, DateTimeOffset until, DateTimeOffset now)
        {
            if (capacity == 0)
            {
                return;
            }

            var k = Convert.ToHexString(key);
            lock (_lock)
            {
                if (_entries.Count >= capacity && !_entries.ContainsKey(k))
                {
                    foreach (var stale in _entries.Where(e => e.Value.Until <= now).Select(e => e.Key).ToList())
                    {
                        _entries.Remove(stale);
                    }

                    if (_entries.Count >= capacity)
                    {
                        _entries.Remove(_entries.MinBy(e => e.Value.Until).Key);
                    }
                }

                _entries[k] = (identity, until);
            }
        }
    }
}
