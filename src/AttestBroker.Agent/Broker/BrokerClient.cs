using System.Buffers.Text;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using AttestBroker.Evidence;
using AttestBroker.Protocol;

namespace AttestBroker.Agent.Broker;

/// <summary>Settings of a <see cref="BrokerClient"/>.</summary>
public sealed class BrokerClientOptions
{
    /// <summary>The broker's base URL, e.g. https://attest-broker.example:8443/.</summary>
    public required Uri BaseAddress { get; init; }

    /// <summary>
    /// Certificates (a CA or the broker's own certificate) that replace the system trust store: the broker's
    /// certificate is accepted when it is byte-for-byte one of them (pinned), or when it chains to one of them with a
    /// matching host name and valid dates. Null: the system trust store.
    /// </summary>
    public X509Certificate2Collection? TrustedCertificates { get; init; }

    /// <summary>Allow a plain http:// broker URL (the broker must have been started with Broker:AllowInsecureHttp).</summary>
    public bool AllowInsecureHttp { get; init; }

    public RetryOptions Retry { get; init; } = new();

    /// <summary>One attempt's time limit. Default 30 s.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The clock for backoff waits, Retry-After dates and timeouts.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Source of jitter in [0, 1); null: a cryptographic random source.</summary>
    public Func<double>? Jitter { get; init; }

    /// <summary>Replaces the HTTP stack (tests). When set, <see cref="TrustedCertificates"/> is not applied.</summary>
    public HttpMessageHandler? Handler { get; init; }

    /// <summary>Called before each backoff wait with (retry number, delay, reason).</summary>
    public Action<int, TimeSpan, string>? OnRetry { get; init; }
}

/// <summary>A nonce from POST /v1/challenge.</summary>
public sealed record BrokerChallenge(TeeKind Tee, byte[] Nonce, string Challenge, DateTimeOffset ExpiresAt);

/// <summary>One released key as the broker sent it: a compact JWE to the pod's key.</summary>
public sealed record ReleasedKeyJwe(string KeyId, string Jwe);

/// <summary>A 200 answer of /v1/attest or /v1/keys.</summary>
public sealed record BrokerRelease(IReadOnlyList<ReleasedKeyJwe> Keys, string? Token, DateTimeOffset? TokenExpiresAt, string? Tee, bool Simulated);

/// <summary>The broker answered 200 with a body that does not follow the protocol.</summary>
public sealed class BrokerResponseException : Exception
{
    public BrokerResponseException(string message)
        : base(message)
    {
    }

    public BrokerResponseException()
    {
    }

    public BrokerResponseException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// The broker's HTTP API (protocol.md §7): challenge, attest, further keys. Problems become
/// <see cref="BrokerProblemException"/>; connection errors, timeouts, 429 and 503 are retried with backoff (Retry-After
/// honoured) by <see cref="ChallengeAsync"/> and <see cref="KeysAsync"/>; <see cref="AttestOnceAsync"/> makes one
/// attempt, because a challenge is single use: its caller (<see cref="KeyFetcher"/>) retries the whole round.
/// </summary>
public sealed class BrokerClient : IDisposable
{
    /// <summary>The largest response body read.</summary>
    public const int MaximumResponseBytes = 1024 * 1024;

    private readonly HttpClient _http;
    private readonly BrokerClientOptions _options;

    public BrokerClient(BrokerClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var scheme = options.BaseAddress.Scheme;
        if (!options.BaseAddress.IsAbsoluteUri || (scheme != Uri.UriSchemeHttps && scheme != Uri.UriSchemeHttp))
        {
            throw new ArgumentException($"broker URL {options.BaseAddress} is not an absolute https:// URL", nameof(options));
        }

        if (scheme == Uri.UriSchemeHttp && !options.AllowInsecureHttp)
        {
            throw new ArgumentException($"broker URL {options.BaseAddress} is plain http://: challenges and tokens would travel in clear; use https:// (or allow insecure HTTP explicitly)", nameof(options));
        }

        _options = options;
        Retry = new RetryPolicy(options.Retry, options.TimeProvider, options.Jitter) { OnRetry = options.OnRetry };
        var handler = options.Handler ?? CreateHandler(options.TrustedCertificates);
        var baseAddress = options.BaseAddress.AbsoluteUri.EndsWith('/') ? options.BaseAddress : new Uri(options.BaseAddress.AbsoluteUri + "/");
        _http = new HttpClient(handler, disposeHandler: options.Handler is null) { BaseAddress = baseAddress, Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>The retry policy of this client (shared with <see cref="KeyFetcher"/> for whole rounds).</summary>
    public RetryPolicy Retry { get; }

    /// <summary>Reads PEM certificates (one or more) for <see cref="BrokerClientOptions.TrustedCertificates"/>.</summary>
    public static X509Certificate2Collection LoadTrustedCertificates(string pemFile)
    {
        ArgumentNullException.ThrowIfNull(pemFile);
        var collection = new X509Certificate2Collection();
        try
        {
            collection.ImportFromPemFile(pemFile);
        }
        catch (CryptographicException ex)
        {
            throw new ArgumentException($"{pemFile}: not a PEM certificate file ({ex.Message})", nameof(pemFile), ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{pemFile}: {ex.Message}", nameof(pemFile), ex);
        }

        if (collection.Count == 0)
        {
            throw new ArgumentException($"{pemFile}: no PEM certificate in the file", nameof(pemFile));
        }

        return collection;
    }

    /// <summary>POST /v1/challenge, retried while the broker is unavailable.</summary>
    public Task<BrokerChallenge> ChallengeAsync(TeeKind tee, CancellationToken cancellationToken) =>
        Retry.ExecuteAsync((_, ct) => ChallengeOnceAsync(tee, ct), cancellationToken);

    /// <summary>POST /v1/challenge, one attempt.</summary>
    public async Task<BrokerChallenge> ChallengeOnceAsync(TeeKind tee, CancellationToken cancellationToken)
    {
        var body = Json(w =>
        {
            w.WriteString("tee", tee.ToWireName());
        });
        using var doc = await SendOnceAsync("v1/challenge", body, null, cancellationToken).ConfigureAwait(false);
        var root = doc.RootElement;
        var nonce = Base64UrlMember(root, "nonce");
        if (nonce.Length != ReportDataBinding.NonceLength)
        {
            throw new BrokerResponseException($"challenge: nonce is {nonce.Length} bytes, expected {ReportDataBinding.NonceLength}");
        }

        var challenge = StringMember(root, "challenge");
        var expires = root.TryGetProperty("expires_at", out var e) && e.ValueKind == JsonValueKind.String && e.TryGetDateTimeOffset(out var at) ? at : throw new BrokerResponseException("challenge: expires_at missing or not a date");
        var teeName = StringMember(root, "tee");
        if (!TeeKindNames.TryParse(teeName, out var answeredTee) || answeredTee != tee)
        {
            throw new BrokerResponseException($"challenge: asked for {tee.ToWireName()}, broker answered tee \"{teeName}\"");
        }

        return new BrokerChallenge(tee, nonce, challenge, expires);
    }

    /// <summary>POST /v1/attest, one attempt (a challenge is single use; retry by starting again from a new challenge).</summary>
    public async Task<BrokerRelease> AttestOnceAsync(string challenge, ReadOnlyMemory<byte> evidence, Jwk publicKey, IReadOnlyList<string> keyIds, string? serviceAccountToken, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(challenge);
        ArgumentNullException.ThrowIfNull(publicKey);
        ArgumentNullException.ThrowIfNull(keyIds);
        var body = Json(w =>
        {
            w.WriteString("challenge", challenge);
            w.WriteString("evidence", Base64Url.EncodeToString(evidence.Span));
            w.WritePropertyName("public_key");
            w.WriteRawValue(publicKey.ToJson(), skipInputValidation: false);
            w.WriteStartArray("key_ids");
            foreach (var id in keyIds)
            {
                w.WriteStringValue(id);
            }

            w.WriteEndArray();
            if (serviceAccountToken is not null)
            {
                w.WriteString("service_account_token", serviceAccountToken);
            }
        });
        using var doc = await SendOnceAsync("v1/attest", body, null, cancellationToken).ConfigureAwait(false);
        return ReadRelease(doc.RootElement, expectToken: true);
    }

    /// <summary>POST /v1/keys with the result token, retried while the broker is unavailable.</summary>
    public Task<BrokerRelease> KeysAsync(string token, Jwk publicKey, IReadOnlyList<string> keyIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(token);
        ArgumentNullException.ThrowIfNull(publicKey);
        ArgumentNullException.ThrowIfNull(keyIds);
        var body = Json(w =>
        {
            w.WritePropertyName("public_key");
            w.WriteRawValue(publicKey.ToJson(), skipInputValidation: false);
            w.WriteStartArray("key_ids");
            foreach (var id in keyIds)
            {
                w.WriteStringValue(id);
            }

            w.WriteEndArray();
        });
        return Retry.ExecuteAsync(async (_, ct) =>
        {
            using var doc = await SendOnceAsync("v1/keys", body, token, ct).ConfigureAwait(false);
            return ReadRelease(doc.RootElement, expectToken: false);
        }, cancellationToken);
    }

    public void Dispose() => _http.Dispose();

    private async Task<JsonDocument> SendOnceAsync(string path, byte[] body, string? bearer, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(_options.RequestTimeout, _options.TimeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative));
        request.Content = new ByteArrayContent(body);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/problem+json"));
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        HttpResponseMessage response;
        byte[] content;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.SecureConnectionError)
        {
            // Not retried: an untrusted or mismatched certificate does not fix itself.
            throw new BrokerResponseException($"POST /{path}: TLS with the broker failed ({Describe(ex)}); if the broker uses a private CA or a development certificate, pass it with --ca-cert", ex);
        }
        catch (HttpRequestException ex)
        {
            throw new BrokerTransientException($"POST /{path}: {Describe(ex)}", null, ex);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BrokerTransientException($"POST /{path}: no answer within {_options.RequestTimeout.TotalSeconds:0.#} s", null, ex);
        }

        using (response)
        {
            try
            {
                content = await ReadBoundedAsync(response.Content, linked.Token).ConfigureAwait(false);
            }
            catch (HttpRequestException ex)
            {
                throw new BrokerTransientException($"POST /{path}: the answer was cut off ({Describe(ex)})", null, ex);
            }
            catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
            {
                throw new BrokerTransientException($"POST /{path}: the answer did not finish within {_options.RequestTimeout.TotalSeconds:0.#} s", null, ex);
            }

            var status = (int)response.StatusCode;
            if (status is 429 or 503 or 502 or 504)
            {
                var retryAfter = RetryAfter(response);
                var what = TryProblemSummary(content) ?? response.ReasonPhrase ?? string.Empty;
                throw new BrokerTransientException($"POST /{path}: HTTP {status} {what}".TrimEnd(), retryAfter);
            }

            if (status != 200)
            {
                throw ReadProblem(status, content);
            }

            try
            {
                var doc = JsonDocument.Parse(content, new JsonDocumentOptions { MaxDepth = 32 });
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                {
                    doc.Dispose();
                    throw new BrokerResponseException($"POST /{path}: the answer is not a JSON object");
                }

                return doc;
            }
            catch (JsonException ex)
            {
                throw new BrokerResponseException($"POST /{path}: the answer is not JSON ({ex.Message})", ex);
            }
        }
    }

    private TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta)
        {
            return delta < TimeSpan.Zero ? TimeSpan.Zero : delta;
        }

        if (header?.Date is { } date)
        {
            var wait = date - _options.TimeProvider.GetUtcNow();
            return wait < TimeSpan.Zero ? TimeSpan.Zero : wait;
        }

        return null;
    }

    private static async Task<byte[]> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            int n;
            while ((n = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + n > MaximumResponseBytes)
                {
                    throw new BrokerResponseException($"the broker's answer is larger than {MaximumResponseBytes} bytes");
                }

                buffer.Write(chunk, 0, n);
            }

            return buffer.ToArray();
        }
    }

    internal static BrokerProblemException ReadProblem(int status, byte[] content)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(content, new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException)
        {
            return new BrokerProblemException(status, null, null, null, "the answer is not a problem document", null, []);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return new BrokerProblemException(status, null, null, null, "the answer is not a problem document", null, []);
            }

            var keys = new List<BrokerKeyDecision>();
            if (root.TryGetProperty("keys", out var array) && array.ValueKind == JsonValueKind.Array)
            {
                foreach (var k in array.EnumerateArray().Where(k => k.ValueKind == JsonValueKind.Object))
                {
                    var failures = new List<BrokerRuleFailure>();
                    if (k.TryGetProperty("failures", out var fs) && fs.ValueKind == JsonValueKind.Array)
                    {
                        failures.AddRange(fs.EnumerateArray().Where(f => f.ValueKind == JsonValueKind.Object)
                            .Select(f => new BrokerRuleFailure(Optional(f, "code") ?? "?", Optional(f, "rule"), Optional(f, "claim"), Optional(f, "message"))));
                    }

                    long? version = k.TryGetProperty("policy_version", out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var pv) ? pv : null;
                    keys.Add(new BrokerKeyDecision(Optional(k, "key_id") ?? "?", Optional(k, "decision") ?? "?", Optional(k, "reason"), Optional(k, "policy"), version, failures));
                }
            }

            return new BrokerProblemException(status, Optional(root, "type"), Optional(root, "code"), Optional(root, "title"), Optional(root, "detail"), Optional(root, "error"), keys);
        }
    }

    private static string? TryProblemSummary(byte[] content)
    {
        var problem = ReadProblem(0, content);
        return problem.Code is null ? null : problem.Detail is null ? problem.Code : $"{problem.Code}: {problem.Detail}";
    }

    private static BrokerRelease ReadRelease(JsonElement root, bool expectToken)
    {
        if (!root.TryGetProperty("keys", out var keys) || keys.ValueKind != JsonValueKind.Array)
        {
            throw new BrokerResponseException("release: \"keys\" missing or not an array");
        }

        var released = new List<ReleasedKeyJwe>();
        foreach (var k in keys.EnumerateArray())
        {
            if (k.ValueKind != JsonValueKind.Object)
            {
                throw new BrokerResponseException("release: an entry of \"keys\" is not an object");
            }

            released.Add(new ReleasedKeyJwe(StringMember(k, "key_id"), StringMember(k, "jwe")));
        }

        string? token = null;
        DateTimeOffset? tokenExpires = null;
        if (expectToken)
        {
            token = StringMember(root, "token");
            tokenExpires = root.TryGetProperty("token_expires_at", out var te) && te.ValueKind == JsonValueKind.String && te.TryGetDateTimeOffset(out var at) ? at : null;
        }

        var simulated = root.TryGetProperty("simulated", out var s) && s.ValueKind == JsonValueKind.True;
        return new BrokerRelease(released, token, tokenExpires, Optional(root, "tee"), simulated);
    }

    private static string StringMember(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new BrokerResponseException($"\"{name}\" missing or not a string");

    private static string? Optional(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static byte[] Base64UrlMember(JsonElement obj, string name)
    {
        var text = StringMember(obj, name);
        try
        {
            return Base64Url.DecodeFromChars(text);
        }
        catch (FormatException ex)
        {
            throw new BrokerResponseException($"\"{name}\" is not base64url", ex);
        }
    }

    private static byte[] Json(Action<Utf8JsonWriter> members)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            members(writer);
            writer.WriteEndObject();
        }

        return stream.ToArray();
    }

    private static string Describe(HttpRequestException ex)
    {
        var inner = ex.InnerException is { } i && !ex.Message.Contains(i.Message, StringComparison.Ordinal) ? $" ({i.Message})" : string.Empty;
        return ex.HttpRequestError == HttpRequestError.Unknown ? ex.Message + inner : $"{ex.HttpRequestError}: {ex.Message}{inner}";
    }

    private static SocketsHttpHandler CreateHandler(X509Certificate2Collection? trusted)
    {
        var handler = new SocketsHttpHandler
        {
            AutomaticDecompression = DecompressionMethods.None,
            AllowAutoRedirect = false,
            ConnectTimeout = TimeSpan.FromSeconds(10),
        };
        if (trusted is not null)
        {
            var pins = trusted.Select(c => c.RawData).ToList();
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, errors) => Validate(certificate as X509Certificate2, errors, trusted, pins),
            };
        }

        return handler;
    }

    private static bool Validate(X509Certificate2? certificate, SslPolicyErrors errors, X509Certificate2Collection trusted, List<byte[]> pins)
    {
        if (certificate is null)
        {
            return false;
        }

        // Pinned: the broker presents exactly one of the given certificates (e.g. its self-signed development certificate).
        if (pins.Any(p => p.AsSpan().SequenceEqual(certificate.RawData)))
        {
            return true;
        }

        // Otherwise a chain to one of the given certificates as the only roots, with the host name checked by the TLS layer.
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}
