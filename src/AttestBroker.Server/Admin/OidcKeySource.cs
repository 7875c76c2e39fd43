using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using AttestBroker.Protocol;

namespace AttestBroker.Server.Admin;

/// <summary>
/// The signing keys of an OpenID Connect issuer: <c>&lt;issuer&gt;/.well-known/openid-configuration</c> names the
/// <c>jwks_uri</c> (its <c>issuer</c> must equal the configured one, OIDC Discovery §4.3); the JWKS's EC P-256 and
/// RSA (≥ 2048 bits) signature keys are kept for <c>OidcKeysLifetimeSeconds</c> and fetched again early when a token
/// names an unknown <c>kid</c> (at most once per <see cref="MinimumRefreshInterval"/>). Each request has a timeout.
/// </summary>
public sealed class OidcKeySource : IAdminKeySource, IDisposable
{
    public static readonly TimeSpan MinimumRefreshInterval = TimeSpan.FromSeconds(10);
    private const int MaxDocumentBytes = 256 * 1024;

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly TimeProvider _time;
    private readonly TimeSpan _lifetime;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IReadOnlyList<AdminVerificationKey> _keys = [];
    private DateTimeOffset _fetchedAt = DateTimeOffset.MinValue;

    public OidcKeySource(string issuer, TimeSpan timeout, TimeSpan keysLifetime, TimeProvider? time = null, HttpMessageHandler? handler = null)
    {
        if (!IsAcceptableUrl(issuer))
        {
            throw new ArgumentException("the OIDC issuer must be an absolute https URL (http only on a loopback address)", nameof(issuer));
        }

        Issuer = issuer;
        _ownsHttp = true;
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.Timeout = timeout;
        _time = time ?? TimeProvider.System;
        _lifetime = keysLifetime;
    }

    public string Issuer { get; }

    /// <summary>https, or http to a loopback address (a local identity provider in a lab or a test).</summary>
    public static bool IsAcceptableUrl(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var u)
        && (u.Scheme == Uri.UriSchemeHttps || (u.Scheme == Uri.UriSchemeHttp && u.IsLoopback))
        && string.IsNullOrEmpty(u.Fragment) && string.IsNullOrEmpty(u.UserInfo);

    public async ValueTask<IReadOnlyList<AdminVerificationKey>> KeysAsync(string? keyId, bool refresh, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var keys = _keys;
        var stale = now - _fetchedAt >= _lifetime;
        var wantRefresh = refresh && now - _fetchedAt >= MinimumRefreshInterval;
        if (stale || wantRefresh || keys.Count == 0)
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                // Another caller may have fetched while this one waited.
                if (_fetchedAt == DateTimeOffset.MinValue || _time.GetUtcNow() - _fetchedAt >= (stale ? _lifetime : MinimumRefreshInterval))
                {
                    var fresh = await FetchAsync(cancellationToken).ConfigureAwait(false);
                    var old = _keys;
                    _keys = fresh;
                    _fetchedAt = _time.GetUtcNow();
                    _ = old; // old key objects may still be in use by a concurrent validation; they are left to the GC.
                }

                keys = _keys;
            }
            finally
            {
                _gate.Release();
            }
        }

        return keyId is null ? keys : [.. keys.Where(k => k.KeyId == keyId)];
    }

    private async Task<IReadOnlyList<AdminVerificationKey>> FetchAsync(CancellationToken cancellationToken)
    {
        var discoveryUrl = Issuer.TrimEnd('/') + "/.well-known/openid-configuration";
        using var discovery = await GetJsonAsync(discoveryUrl, cancellationToken).ConfigureAwait(false);
        var root = discovery.RootElement;
        if (!root.TryGetProperty("issuer", out var iss) || iss.ValueKind != JsonValueKind.String || iss.GetString() != Issuer)
        {
            throw Unavailable("the OIDC discovery document's \"issuer\" does not equal the configured issuer");
        }

        if (!root.TryGetProperty("jwks_uri", out var jwksUri) || jwksUri.ValueKind != JsonValueKind.String || !IsAcceptableUrl(jwksUri.GetString()!))
        {
            throw Unavailable("the OIDC discovery document has no acceptable \"jwks_uri\"");
        }

        using var jwks = await GetJsonAsync(jwksUri.GetString()!, cancellationToken).ConfigureAwait(false);
        if (!jwks.RootElement.TryGetProperty("keys", out var array) || array.ValueKind != JsonValueKind.Array)
        {
            throw Unavailable("the issuer's JWKS has no \"keys\" array");
        }

        var keys = new List<AdminVerificationKey>();
        foreach (var k in array.EnumerateArray())
        {
            if (TryReadKey(k) is { } key)
            {
                keys.Add(key);
            }
        }

        return keys;
    }

    /// <summary>An EC P-256 or RSA (≥ 2048 bits) signature key, or null for anything else (encryption keys, other curves).</summary>
    internal static AdminVerificationKey? TryReadKey(JsonElement k)
    {
        string? Str(string name) => k.ValueKind == JsonValueKind.Object && k.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        byte[]? Bytes(string name) => Str(name) is { } s && AdminBase64Url.TryDecode(s, out var b) ? b : null;

        if (Str("use") is { } use && use != "sig")
        {
            return null;
        }

        var kid = Str("kid");
        try
        {
            switch (Str("kty"))
            {
                case "EC" when Str("crv") == "P-256" && Str("alg") is null or JoseAlgorithms.Es256:
                    {
                        var x = Bytes("x");
                        var y = Bytes("y");
                        if (x is not { Length: 32 } || y is not { Length: 32 })
                        {
                            return null;
                        }

                        var ec = ECDsa.Create();
                        try
                        {
                            ec.ImportParameters(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = x, Y = y } });
                            return AdminVerificationKey.FromEcdsa(ec, kid);
                        }
                        catch
                        {
                            ec.Dispose();
                            throw;
                        }
                    }

                case "RSA" when Str("alg") is null or AdminTokens.Rs256:
                    {
                        var n = Bytes("n");
                        var e = Bytes("e");
                        if (n is null || e is null || e.Length > 8)
                        {
                            return null;
                        }

                        var rsa = RSA.Create();
                        try
                        {
                            rsa.ImportParameters(new RSAParameters { Modulus = n.AsSpan().TrimStart((byte)0).ToArray(), Exponent = e });
                            return AdminVerificationKey.FromRsa(rsa, kid);
                        }
                        catch
                        {
                            rsa.Dispose();
                            throw;
                        }
                    }

                default:
                    return null;
            }
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    private async Task<JsonDocument> GetJsonAsync(string url, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await _http.GetAsync(new Uri(url), HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw Unavailable($"{url} answered {(int)response.StatusCode}");
            }

            if (response.Content.Headers.ContentLength > MaxDocumentBytes)
            {
                throw Unavailable($"{url} sent more than {MaxDocumentBytes} bytes");
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

                if (total > MaxDocumentBytes)
                {
                    throw Unavailable($"{url} sent more than {MaxDocumentBytes} bytes");
                }

                return JsonDocument.Parse(buffer.AsMemory(0, total));
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException or IOException)
        {
            if (ex is TaskCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw Unavailable($"fetching {url} failed ({ex.GetType().Name})");
        }
    }

    private static AdminTokenException Unavailable(string message) => new(AdminTokenError.SignerUnavailable, message);

    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }

        _gate.Dispose();
        foreach (var k in _keys)
        {
            k.Dispose();
        }
    }
}
