using System.Net;
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
    private IReadOnlyList<JwsVerificationKey> _keys = [];
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

    public async ValueTask<IReadOnlyList<JwsVerificationKey>> KeysAsync(string? keyId, bool refresh, CancellationToken cancellationToken)
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

        return keys;
    }

    private async Task<IReadOnlyList<JwsVerificationKey>> FetchAsync(CancellationToken cancellationToken)
    {
        var discoveryUrl = Issuer.TrimEnd('/') + "/.well-known/openid-configuration";
        string jwksUrl;
        try
        {
            using var discovery = JsonDocument.Parse(await GetAsync(discoveryUrl, cancellationToken).ConfigureAwait(false));
            var root = discovery.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("issuer", out var iss) || iss.ValueKind != JsonValueKind.String || iss.GetString() != Issuer)
            {
                throw Unavailable("the OIDC discovery document's \"issuer\" does not equal the configured issuer");
            }

            if (!root.TryGetProperty("jwks_uri", out var jwksUri) || jwksUri.ValueKind != JsonValueKind.String || !IsAcceptableUrl(jwksUri.GetString()!))
            {
                throw Unavailable("the OIDC discovery document has no acceptable \"jwks_uri\"");
            }

            jwksUrl = jwksUri.GetString()!;
        }
        catch (JsonException)
        {
            throw Unavailable("the OIDC discovery document is not JSON");
        }

        try
        {
            // Keys this broker cannot use (encryption keys, other curves) are skipped.
            return JwsVerificationKey.ParseSet(await GetAsync(jwksUrl, cancellationToken).ConfigureAwait(false));
        }
        catch (ProtocolException ex)
        {
            throw Unavailable($"the issuer's JWKS is not usable ({ex.Error})");
        }
    }

    private async Task<ReadOnlyMemory<byte>> GetAsync(string url, CancellationToken cancellationToken)
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

                return buffer.AsMemory(0, total);
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
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
