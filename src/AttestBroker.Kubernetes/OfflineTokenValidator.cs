using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using AttestBroker.Protocol;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AttestBroker.Kubernetes;

/// <summary>Where the offline validator finds the cluster's service-account issuer and its keys.</summary>
public sealed class OfflineTokenOptions
{
    /// <summary>The exact <c>iss</c> of the cluster's tokens (kube-apiserver <c>--service-account-issuer</c>).</summary>
    public string Issuer { get; set; } = string.Empty;

    /// <summary>A JWKS file (e.g. from <c>kubectl get --raw /openid/v1/jwks</c>); when set, nothing is fetched.</summary>
    public string? JwksFile { get; set; }

    /// <summary>The JWKS URL; when unset (and no file), <c>&lt;issuer&gt;/.well-known/openid-configuration</c> names it.</summary>
    public string? JwksUrl { get; set; }

    /// <summary>A bearer token file sent when fetching (the API server serves its issuer endpoints to authenticated callers).</summary>
    public string? BearerTokenFile { get; set; }

    /// <summary>A PEM CA bundle that the fetched URLs' TLS certificates must chain to (e.g. the in-cluster ca.crt).</summary>
    public string? CaCertificateFile { get; set; }

    /// <summary>Fetched keys are fetched again after this long, and early (at most every 10 s) when a token names an unknown kid.</summary>
    public TimeSpan KeysLifetime { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Allowed clock difference for exp/nbf/iat (0 .. 5 minutes).</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(60);

    public TimeSpan FetchTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// Validates a projected service-account token without the API server: its signature (RS256 or ES256) against the
/// service-account issuer's JWKS, <c>iss</c>, <c>aud</c> containing the audience, <c>exp</c>/<c>nbf</c>/<c>iat</c>
/// with a small skew, <c>sub</c> = system:serviceaccount:&lt;ns&gt;:&lt;sa&gt; agreeing with the <c>kubernetes.io</c>
/// claim, whose pod name and UID it reads. Unlike TokenReview it cannot tell that the bound pod was deleted: the
/// token stays valid until it expires (keep projected tokens short-lived).
/// </summary>
public sealed class OfflineTokenValidator : IServiceAccountTokenValidator, IDisposable
{
    public static readonly TimeSpan MinimumRefreshInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MaximumClockSkew = TimeSpan.FromMinutes(5);
    private const int MaxDocumentBytes = 256 * 1024;

    private readonly OfflineTokenOptions _options;
    private readonly TokenValidationOptions _common;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly HttpClient? _http;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IReadOnlyList<JwsVerificationKey> _keys = [];
    private DateTimeOffset _fetchedAt = DateTimeOffset.MinValue;

    public OfflineTokenValidator(OfflineTokenOptions options, TokenValidationOptions? common = null, TimeProvider? time = null, HttpMessageHandler? handler = null, ILogger<OfflineTokenValidator>? logger = null)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _common = common ?? new TokenValidationOptions();
        _common.Validate();
        if (string.IsNullOrWhiteSpace(_options.Issuer))
        {
            throw new ArgumentException("the service-account issuer must be set", nameof(options));
        }

        if (_options.ClockSkew < TimeSpan.Zero || _options.ClockSkew > MaximumClockSkew || _options.KeysLifetime <= TimeSpan.Zero || _options.FetchTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("clock skew must be 0 .. 5 minutes; key lifetime and fetch timeout positive", nameof(options));
        }

        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        if (_options.JwksFile is { } file)
        {
            // Read now, so a bad file stops the broker at start-up rather than refusing every pod later.
            _keys = JwsVerificationKey.ParseSet(File.ReadAllBytes(file));
            if (_keys.Count == 0)
            {
                throw new ArgumentException($"{file} holds no RS256 or ES256 signature key", nameof(options));
            }
        }
        else
        {
            foreach (var url in new[] { _options.JwksUrl, _options.JwksUrl is null ? _options.Issuer : null }.OfType<string>())
            {
                if (!IsAcceptableUrl(url))
                {
                    throw new ArgumentException("the issuer / JWKS URL must be absolute https (http only on a loopback address)", nameof(options));
                }
            }

            _http = handler is not null ? new HttpClient(handler, disposeHandler: false) : new HttpClient(CreateHandler(_options.CaCertificateFile));
            _http.Timeout = _options.FetchTimeout;
        }
    }

    /// <summary>https, or http to a loopback address.</summary>
    public static bool IsAcceptableUrl(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var u)
        && (u.Scheme == Uri.UriSchemeHttps || (u.Scheme == Uri.UriSchemeHttp && u.IsLoopback))
        && string.IsNullOrEmpty(u.Fragment) && string.IsNullOrEmpty(u.UserInfo);

    public async Task<IdentityResult> ValidateAsync(string token, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(token) || token.Length > _common.MaximumTokenLength)
        {
            return IdentityResult.Invalid(IdentityErrors.Malformed, "the service account token is empty or too long");
        }

        CompactJws jws;
        try
        {
            jws = CompactJws.Decode(token, _common.MaximumTokenLength);
        }
        catch (ProtocolException ex)
        {
            return IdentityResult.Invalid(IdentityErrors.Malformed, "the service account token is not a JWS: " + ex.Message);
        }

        using (jws)
        {
            try
            {
                var keys = await KeysAsync(refresh: false, cancellationToken).ConfigureAwait(false);
                try
                {
                    jws.VerifySignature(keys);
                }
                catch (ProtocolException ex) when (ex.Error == ProtocolError.TokenKeyUnknown && _http is not null)
                {
                    // The issuer may have rotated its key: fetch once more (rate-limited) and try again.
                    jws.VerifySignature(await KeysAsync(refresh: true, cancellationToken).ConfigureAwait(false));
                }
            }
            catch (ProtocolException ex)
            {
                return IdentityResult.Invalid(ex.Error switch
                {
                    ProtocolError.TokenAlgorithmNotAllowed => IdentityErrors.AlgorithmNotAllowed,
                    ProtocolError.TokenKeyUnknown => IdentityErrors.KeyUnknown,
                    _ => IdentityErrors.SignatureInvalid,
                }, ex.Message);
            }
            catch (IssuerKeysUnavailableException ex)
            {
                return IdentityResult.Unavailable(IdentityErrors.IssuerKeysUnavailable, ex.Message);
            }

            try
            {
                return CheckClaims(jws.Payload, _options.Issuer, _common.Audience, _time.GetUtcNow(), _options.ClockSkew);
            }
            catch (InvalidOperationException)
            {
                return IdentityResult.Invalid(IdentityErrors.ClaimsInvalid, "a claim holds a string that is not valid text");
            }
        }
    }

    /// <summary>The claims of a token whose signature verified.</summary>
    internal static IdentityResult CheckClaims(JsonElement p, string issuer, string audience, DateTimeOffset now, TimeSpan skew)
    {
        static string? Str(JsonElement o, string name) => o.ValueKind == JsonValueKind.Object && o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        static long? Num(JsonElement o, string name, out bool bad)
        {
            bad = false;
            if (!o.TryGetProperty(name, out var v))
            {
                return null;
            }

            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) && n is >= 0 and <= 253402300799)
            {
                return n;
            }

            bad = true;
            return null;
        }

        if (Str(p, "iss") != issuer)
        {
            return IdentityResult.Invalid(IdentityErrors.IssuerMismatch, "\"iss\" is not the cluster's service-account issuer");
        }

        var audOk = p.TryGetProperty("aud", out var aud) && aud.ValueKind switch
        {
            JsonValueKind.String => aud.GetString() == audience,
            JsonValueKind.Array => aud.EnumerateArray().Any(a => a.ValueKind == JsonValueKind.String && a.GetString() == audience),
            _ => false,
        };
        if (!audOk)
        {
            return IdentityResult.Invalid(IdentityErrors.AudienceMismatch, $"the token is not for the audience \"{audience}\"");
        }

        var exp = Num(p, "exp", out var badExp);
        var nbf = Num(p, "nbf", out var badNbf);
        var iat = Num(p, "iat", out var badIat);
        if (exp is null || badExp || badNbf || badIat)
        {
            return IdentityResult.Invalid(IdentityErrors.ClaimsInvalid, "\"exp\" is required and exp/nbf/iat must be NumericDates");
        }

        var t = now.ToUnixTimeSeconds();
        var s = (long)skew.TotalSeconds;
        if (t >= exp + s)
        {
            return IdentityResult.Invalid(IdentityErrors.Expired, "the token has expired");
        }

        if ((nbf is { } nb && t + s < nb) || (iat is { } ia && t + s < ia))
        {
            return IdentityResult.Invalid(IdentityErrors.NotYetValid, "the token is not valid yet (nbf/iat in the future)");
        }

        var sub = Str(p, "sub");
        if (!RequesterIdentity.TryParseUsername(sub, out var ns, out var sa))
        {
            return IdentityResult.Invalid(IdentityErrors.NotServiceAccount, "\"sub\" is not system:serviceaccount:<namespace>:<name>");
        }

        if (!p.TryGetProperty("kubernetes.io", out var k8s) || k8s.ValueKind != JsonValueKind.Object
            || Str(k8s, "namespace") != ns
            || !k8s.TryGetProperty("serviceaccount", out var saClaim) || Str(saClaim, "name") != sa)
        {
            return IdentityResult.Invalid(IdentityErrors.ClaimsInvalid, "the \"kubernetes.io\" claim is missing or does not name the namespace and service account of \"sub\"");
        }

        string? podName = null, podUid = null;
        if (k8s.TryGetProperty("pod", out var pod))
        {
            podName = Str(pod, "name");
            podUid = Str(pod, "uid");
            if (podName is null || podUid is null || !KubernetesNames.IsDnsSubdomain(podName))
            {
                return IdentityResult.Invalid(IdentityErrors.ClaimsInvalid, "the \"kubernetes.io\".pod claim needs a name and a uid");
            }
        }

        return IdentityResult.Valid(new RequesterIdentity(ns, sa, podName, podUid, sub!));
    }

    private async ValueTask<IReadOnlyList<JwsVerificationKey>> KeysAsync(bool refresh, CancellationToken cancellationToken)
    {
        if (_http is null)
        {
            return _keys;
        }

        var now = _time.GetUtcNow();
        var due = _keys.Count == 0 || now - _fetchedAt >= _options.KeysLifetime || (refresh && now - _fetchedAt >= MinimumRefreshInterval);
        if (!due)
        {
            return _keys;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            now = _time.GetUtcNow();
            if (_keys.Count == 0 || now - _fetchedAt >= (refresh ? MinimumRefreshInterval : _options.KeysLifetime))
            {
                IReadOnlyList<JwsVerificationKey> fresh;
                try
                {
                    fresh = await FetchAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (IssuerKeysUnavailableException) when (_keys.Count > 0 && now - _fetchedAt < _options.KeysLifetime * 3)
                {
                    // Keep serving the last keys for a while when the issuer is briefly unreachable.
                    _logger.LogWarning("service-account issuer keys could not be refreshed; using the last ones");
                    return _keys;
                }

                _keys = fresh; // old key objects may still be in use by a concurrent check; the GC takes them.
                _fetchedAt = now;
            }

            return _keys;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<IReadOnlyList<JwsVerificationKey>> FetchAsync(CancellationToken cancellationToken)
    {
        var jwksUrl = _options.JwksUrl;
        if (jwksUrl is null)
        {
            var discovery = await GetAsync(_options.Issuer.TrimEnd('/') + "/.well-known/openid-configuration", cancellationToken).ConfigureAwait(false);
            try
            {
                using var doc = JsonDocument.Parse(discovery);
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("issuer", out var iss) || iss.ValueKind != JsonValueKind.String || iss.GetString() != _options.Issuer)
                {
                    throw new IssuerKeysUnavailableException("the discovery document's \"issuer\" is not the configured issuer");
                }

                if (!root.TryGetProperty("jwks_uri", out var uri) || uri.ValueKind != JsonValueKind.String || !IsAcceptableUrl(uri.GetString()!))
                {
                    throw new IssuerKeysUnavailableException("the discovery document has no acceptable \"jwks_uri\"");
                }

                jwksUrl = uri.GetString()!;
            }
            catch (JsonException)
            {
                throw new IssuerKeysUnavailableException("the discovery document is not JSON");
            }
        }

        var body = await GetAsync(jwksUrl, cancellationToken).ConfigureAwait(false);
        try
        {
            var keys = JwsVerificationKey.ParseSet(body);
            return keys.Count > 0 ? keys : throw new IssuerKeysUnavailableException("the issuer's JWKS holds no RS256 or ES256 signature key");
        }
        catch (ProtocolException ex)
        {
            throw new IssuerKeysUnavailableException("the issuer's JWKS is malformed: " + ex.Message);
        }
    }

    private async Task<byte[]> GetAsync(string url, CancellationToken cancellationToken)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(url));
            if (_options.BearerTokenFile is { } tokenFile)
            {
                // Read on every fetch: the kubelet rotates the projected token file.
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", (await File.ReadAllTextAsync(tokenFile, cancellationToken).ConfigureAwait(false)).Trim());
            }

            using var response = await _http!.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new IssuerKeysUnavailableException($"{url} answered {(int)response.StatusCode}");
            }

            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                var buffer = new byte[MaxDocumentBytes + 1];
                var total = 0;
                int read;
                while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    total += read;
                }

                return total <= MaxDocumentBytes ? buffer[..total] : throw new IssuerKeysUnavailableException($"{url} sent more than {MaxDocumentBytes} bytes");
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException && !cancellationToken.IsCancellationRequested)
        {
            throw new IssuerKeysUnavailableException($"fetching {url} failed ({ex.GetType().Name})");
        }
    }

    private static HttpClientHandler CreateHandler(string? caFile)
    {
        var handler = new HttpClientHandler();
        if (caFile is not null)
        {
            var roots = new X509Certificate2Collection();
            roots.ImportFromPemFile(caFile);
            handler.ServerCertificateCustomValidationCallback = (_, cert, _, errors) =>
            {
                if (cert is null || (errors & ~System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors) != 0)
                {
                    return false; // name mismatch or no certificate: never overridden
                }

                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(cert);
            };
        }

        return handler;
    }

    public void Dispose()
    {
        _http?.Dispose();
        _gate.Dispose();
    }

    private sealed class IssuerKeysUnavailableException(string message) : Exception(message);
}
