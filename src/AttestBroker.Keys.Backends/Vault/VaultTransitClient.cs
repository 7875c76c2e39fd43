using System.Buffers;
using System.Buffers.Text;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace AttestBroker.Keys.Backends.Vault;

/// <summary>A Transit ciphertext ("vault:v&lt;N&gt;:...") and the Transit key version that made it.</summary>
public sealed record VaultCiphertext(string Ciphertext, int KeyVersion)
{
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("KeyVersion = ").Append(KeyVersion);
        return true;
    }
}

/// <summary>What <c>GET {mount}/keys/{name}</c> says about the Transit key.</summary>
public sealed record VaultTransitKeyInfo(string Name, string Type, int LatestVersion, int MinDecryptionVersion, bool Derived);

/// <summary>
/// HashiCorp Vault's Transit engine over HTTP (REST, no SDK), shaped like an Azure SDK client: an options type,
/// async methods with cancellation, retries and logging in one pipeline. Authenticates with a token or the
/// Kubernetes auth method, renews its token (renew-self) before the lease runs out and logs in again when renewal
/// is refused. Retries 429, 5xx, network errors and attempt timeouts with exponential back-off and jitter, honouring
/// Retry-After. Logs method, path, status and attempt only: never tokens, plaintext or ciphertext.
/// </summary>
public sealed partial class VaultTransitClient : IDisposable
{
    public const string BackendName = "vault-transit";
    private const int MaxResponseBytes = 1 << 20;

    private readonly VaultTransitOptions _options;
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly SemaphoreSlim _auth = new(1, 1);
    private string? _token;
    private DateTimeOffset? _renewAt;
    private DateTimeOffset? _expiresAt;
    private bool _renewable;

    /// <param name="options">Validated here; a bad setting throws <see cref="ArgumentException"/>.</param>
    /// <param name="httpClient">Optional; its BaseAddress and timeout are ignored (each attempt has its own limit).</param>
    public VaultTransitClient(VaultTransitOptions options, HttpClient? httpClient = null, ILogger<VaultTransitClient>? logger = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _ownsHttp = httpClient is null;
        _http = httpClient ?? new HttpClient();
        _http.Timeout = Timeout.InfiniteTimeSpan;
        _log = (ILogger?)logger ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        _pipeline = BuildPipeline();
    }

    public VaultTransitOptions Options => _options;

    /// <summary>POST {mount}/datakey/wrapped/{key}: a new 256-bit data key that only Vault can decrypt.</summary>
    public async Task<VaultCiphertext> GenerateWrappedDataKeyAsync(string? context, CancellationToken cancellationToken = default)
    {
        byte[] body = JsonBody(w =>
        {
            w.WriteNumber("bits", 256);
            WriteContext(w, context);
        });
        using JsonDocument doc = await SendJsonAsync(HttpMethod.Post, $"{_options.Mount}/datakey/wrapped/{_options.KeyName}", body, "datakey", cancellationToken).ConfigureAwait(false);
        return ReadCiphertext(doc, "datakey");
    }

    /// <summary>POST {mount}/encrypt/{key}: encrypts caller-supplied key bytes (the request body is zeroed after sending).</summary>
    public async Task<VaultCiphertext> EncryptAsync(ReadOnlyMemory<byte> plaintext, string? context, CancellationToken cancellationToken = default)
    {
        byte[] body = JsonBody(w =>
        {
            w.WriteBase64String("plaintext", plaintext.Span);
            WriteContext(w, context);
        });
        try
        {
            using JsonDocument doc = await SendJsonAsync(HttpMethod.Post, $"{_options.Mount}/encrypt/{_options.KeyName}", body, "encrypt", cancellationToken).ConfigureAwait(false);
            return ReadCiphertext(doc, "encrypt");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(body);
        }
    }

    /// <summary>
    /// POST {mount}/decrypt/{key}: decodes the plaintext straight from the response bytes into
    /// <paramref name="destination"/> (exactly 32 bytes expected) and zeroes the response buffer; no string ever holds it.
    /// </summary>
    public async Task DecryptAsync(string ciphertext, string? context, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(ciphertext);
        byte[] body = JsonBody(w =>
        {
            w.WriteString("ciphertext", ciphertext);
            WriteContext(w, context);
        });
        byte[] response = await SendAsync(HttpMethod.Post, $"{_options.Mount}/decrypt/{_options.KeyName}", body, "decrypt", cancellationToken).ConfigureAwait(false);
        try
        {
            if (!TryDecodePlaintext(response, destination.Span, out string? problem))
            {
                CryptographicOperations.ZeroMemory(destination.Span[..Math.Min(destination.Length, IKeyBackend.KeyLength)]);
                throw new KeyBackendException(BackendError.BadResponse, BackendName, $"Vault decrypt answered with {problem}");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(response);
        }
    }

    /// <summary>POST {mount}/rewrap/{key}: re-encrypts a ciphertext under the newest Transit key version inside Vault.</summary>
    public async Task<VaultCiphertext> RewrapAsync(string ciphertext, string? context, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(ciphertext);
        byte[] body = JsonBody(w =>
        {
            w.WriteString("ciphertext", ciphertext);
            WriteContext(w, context);
        });
        using JsonDocument doc = await SendJsonAsync(HttpMethod.Post, $"{_options.Mount}/rewrap/{_options.KeyName}", body, "rewrap", cancellationToken).ConfigureAwait(false);
        return ReadCiphertext(doc, "rewrap");
    }

    /// <summary>POST {mount}/keys/{key}/rotate, then reads the key: returns its newest version.</summary>
    public async Task<int> RotateKeyAsync(CancellationToken cancellationToken = default)
    {
        _ = await SendAsync(HttpMethod.Post, $"{_options.Mount}/keys/{_options.KeyName}/rotate", [], "rotate", cancellationToken).ConfigureAwait(false);
        return (await ReadKeyAsync(cancellationToken).ConfigureAwait(false)).LatestVersion;
    }

    /// <summary>GET {mount}/keys/{key}.</summary>
    public async Task<VaultTransitKeyInfo> ReadKeyAsync(CancellationToken cancellationToken = default)
    {
        using JsonDocument doc = await SendJsonAsync(HttpMethod.Get, $"{_options.Mount}/keys/{_options.KeyName}", null, "read key", cancellationToken).ConfigureAwait(false);
        JsonElement data = Data(doc, "read key");
        try
        {
            return new VaultTransitKeyInfo(
                data.GetProperty("name").GetString() ?? string.Empty,
                data.GetProperty("type").GetString() ?? string.Empty,
                data.GetProperty("latest_version").GetInt32(),
                data.TryGetProperty("min_decryption_version", out var m) && m.ValueKind == JsonValueKind.Number ? m.GetInt32() : 1,
                data.TryGetProperty("derived", out var d) && d.ValueKind == JsonValueKind.True);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new KeyBackendException(BackendError.BadResponse, BackendName, "Vault read key answered without name, type and latest_version", e);
        }
    }

    /// <summary>Readiness: the token works (authenticating or renewing if needed) and the Transit key can be read.</summary>
    public async Task<BackendHealth> CheckHealthAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            VaultTransitKeyInfo key = await ReadKeyAsync(cancellationToken).ConfigureAwait(false);
            return BackendHealth.Ok(BackendName, $"transit key {_options.Mount}/{key.Name} ({key.Type}) at version {key.LatestVersion}");
        }
        catch (KeyBackendException e)
        {
            return BackendHealth.Failed(BackendName, $"{e.Code}: {e.Message}");
        }
    }

    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }

        _auth.Dispose();
    }

    public override string ToString() => $"VaultTransitClient {{ {_options} }}";

    private void WriteContext(Utf8JsonWriter w, string? context)
    {
        if (context is not null)
        {
            w.WriteBase64String("context", Encoding.UTF8.GetBytes(context));
        }
    }

    private static byte[] JsonBody(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            write(w);
            w.WriteEndObject();
        }

        byte[] bytes = buffer.WrittenSpan.ToArray();
        buffer.Clear(); // the writer's buffer held the same bytes
        return bytes;
    }

    private static JsonElement Data(JsonDocument doc, string operation) =>
        doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object
            ? data
            : throw new KeyBackendException(BackendError.BadResponse, BackendName, $"Vault {operation} answered without a \"data\" object");

    private static VaultCiphertext ReadCiphertext(JsonDocument doc, string operation)
    {
        JsonElement data = Data(doc, operation);
        if (!data.TryGetProperty("ciphertext", out var c) || c.ValueKind != JsonValueKind.String || c.GetString() is not { } text || !TryParseVersion(text, out int version))
        {
            throw new KeyBackendException(BackendError.BadResponse, BackendName, $"Vault {operation} answered without a \"vault:v<N>:...\" ciphertext");
        }

        if (data.TryGetProperty("plaintext", out _))
        {
            // datakey/plaintext was called by mistake, or a proxy changed the path: refuse to handle it.
            throw new KeyBackendException(BackendError.BadResponse, BackendName, $"Vault {operation} answered with a plaintext; only wrapped data keys are accepted");
        }

        return new VaultCiphertext(text, version);
    }

    /// <summary>Parses the key version out of "vault:v&lt;N&gt;:&lt;base64&gt;".</summary>
    public static bool TryParseVersion(string ciphertext, out int version)
    {
        version = 0;
        if (!ciphertext.StartsWith("vault:v", StringComparison.Ordinal))
        {
            return false;
        }

        int colon = ciphertext.IndexOf(':', 7);
        return colon > 7 && colon < ciphertext.Length - 1
            && int.TryParse(ciphertext.AsSpan(7, colon - 7), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out version)
            && version > 0;
    }

    private static bool TryDecodePlaintext(byte[] response, Span<byte> destination, out string? problem)
    {
        problem = null;
        try
        {
            var reader = new Utf8JsonReader(response, new JsonReaderOptions { MaxDepth = 16 });
            int depth = 0;
            bool inData = false;
            Span<byte> tmp = stackalloc byte[48];
            Span<char> chars = stackalloc char[6 * 48];
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        depth++;
                        break;
                    case JsonTokenType.EndObject:
                        depth--;
                        if (inData && depth == 1)
                        {
                            inData = false;
                        }

                        break;
                    case JsonTokenType.PropertyName when depth == 1 && reader.ValueTextEquals("data"):
                        inData = true;
                        break;
                    case JsonTokenType.PropertyName when inData && depth == 2 && reader.ValueTextEquals("plaintext"):
                        if (!reader.Read() || reader.TokenType != JsonTokenType.String || reader.HasValueSequence || reader.ValueSpan.Length > 6 * 48)
                        {
                            problem = "a \"plaintext\" that is not a base64 string of a 32-byte key";
                            return false;
                        }

                        try
                        {
                            // JSON encoders may escape '+' and '/' (\u002B); unescape into a stack buffer, never a string.
                            int charCount = reader.CopyString(chars);
                            if (!Convert.TryFromBase64Chars(chars[..charCount], tmp, out int written))
                            {
                                problem = "a \"plaintext\" that is not base64 of at most 48 bytes";
                                return false;
                            }

                            if (written != IKeyBackend.KeyLength)
                            {
                                problem = $"a plaintext of {written} bytes, not a 32-byte key";
                                return false;
                            }

                            tmp[..written].CopyTo(destination);
                            return true;
                        }
                        finally
                        {
                            CryptographicOperations.ZeroMemory(tmp);
                            CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(chars));
                        }
                }
            }

            problem = "no data.plaintext";
            return false;
        }
        catch (JsonException)
        {
            problem = "malformed JSON";
            return false;
        }
    }

    private async Task<JsonDocument> SendJsonAsync(HttpMethod method, string path, byte[]? body, string operation, CancellationToken cancellationToken)
    {
        byte[] response = await SendAsync(method, path, body, operation, cancellationToken).ConfigureAwait(false);
        try
        {
            return JsonDocument.Parse(response, new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw new KeyBackendException(BackendError.BadResponse, BackendName, $"Vault {operation} answered with malformed JSON", e);
        }
    }

    /// <summary>Sends with the token (authenticating or renewing first); a 403 under Kubernetes auth logs in again once.</summary>
    private async Task<byte[]> SendAsync(HttpMethod method, string path, byte[]? body, string operation, CancellationToken cancellationToken)
    {
        for (int attempt = 0; ; attempt++)
        {
            string token = await EnsureTokenAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                return await SendRawAsync(method, path, body, token, operation, cancellationToken).ConfigureAwait(false);
            }
            catch (KeyBackendException e) when (e.ServiceStatus == 403 && attempt == 0 && _options.AuthMethod == VaultAuthMethod.Kubernetes)
            {
                // The token may have been revoked; a fresh login tells a revoked token from a missing permission.
                LogReauthenticating(_log, operation);
                await InvalidateTokenAsync(token).ConfigureAwait(false);
            }
        }
    }

    private async Task<byte[]> SendRawAsync(HttpMethod method, string path, byte[]? body, string? token, string operation, CancellationToken cancellationToken)
    {
        var uri = new Uri(_options.Address!, "v1/" + path);
        HttpResponseMessage response;
        try
        {
            response = await _pipeline.ExecuteAsync(
                async ct =>
                {
                    using var request = new HttpRequestMessage(method, uri);
                    if (token is not null)
                    {
                        request.Headers.TryAddWithoutValidation("X-Vault-Token", token);
                    }

                    if (_options.Namespace is { Length: > 0 } ns)
                    {
                        request.Headers.TryAddWithoutValidation("X-Vault-Namespace", ns);
                    }

                    request.Headers.TryAddWithoutValidation("X-Vault-Request", "true");
                    if (body is not null)
                    {
                        request.Content = new ByteArrayContent(body);
                        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                    }

                    return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutRejectedException or OperationCanceledException or IOException)
        {
            LogUnavailable(_log, operation, e.GetType().Name);
            throw new KeyBackendException(BackendError.Unavailable, BackendName,
                $"Vault {operation} failed: {(e is TimeoutRejectedException or OperationCanceledException ? $"no answer within {_options.AttemptTimeout.TotalSeconds:0.#} s" : KeyRecords.Cause(e.Message))} after {_options.MaxRetries + 1} attempts", e);
        }

        using (response)
        {
            byte[] bytes;
            try
            {
                bytes = await ReadBoundedAsync(response, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                throw new KeyBackendException(BackendError.Unavailable, BackendName, $"Vault {operation}: the answer broke off", e);
            }

            int status = (int)response.StatusCode;
            LogResponse(_log, method.Method, path, status);
            if (response.IsSuccessStatusCode)
            {
                return bytes;
            }

            string cause = ErrorsOf(bytes);
            BackendError error = KeyBackendException.FromStatus(status);
            string what = error switch
            {
                BackendError.Denied => "denied the broker",
                BackendError.KeyNotFound => "found no such key or path",
                BackendError.Unavailable => "is unavailable",
                _ => "rejected the request",
            };
            throw new KeyBackendException(error, BackendName, $"Vault {operation} {what} (HTTP {status}): {cause}", null, status) { RetryAfter = RetryAfter(response) };
        }
    }

    private static async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > MaxResponseBytes)
        {
            throw new HttpRequestException($"answer of {response.Content.Headers.ContentLength} bytes is larger than {MaxResponseBytes}");
        }

        await using Stream s = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var ms = new MemoryStream();
        byte[] chunk = ArrayPool<byte>.Shared.Rent(16384);
        try
        {
            int n;
            while ((n = await s.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (ms.Length + n > MaxResponseBytes)
                {
                    throw new HttpRequestException($"answer is larger than {MaxResponseBytes} bytes");
                }

                ms.Write(chunk, 0, n);
            }

            byte[] result = ms.ToArray();
            CryptographicOperations.ZeroMemory(ms.GetBuffer());
            return result;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk, clearArray: true);
        }
    }

    private static string ErrorsOf(byte[] body)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array)
            {
                return KeyRecords.Cause(string.Join("; ", errors.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString())));
            }
        }
        catch (JsonException)
        {
        }

        return "no Vault error list in the answer";
    }

    private ResiliencePipeline<HttpResponseMessage> BuildPipeline()
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = _time };
        if (_options.MaxRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = _options.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = _options.RetryBaseDelay,
                MaxDelay = _options.MaxRetryDelay,
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>()
                    .HandleResult(r => IsTransient(r.StatusCode)),
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Result)),
                OnRetry = args =>
                {
                    LogRetrying(_log, args.AttemptNumber + 1, args.Outcome.Result is { } r ? ((int)r.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture) : args.Outcome.Exception?.GetType().Name ?? "?", args.RetryDelay);
                    args.Outcome.Result?.Dispose();
                    return default;
                },
            });
        }

        builder.AddTimeout(_options.AttemptTimeout);
        return builder.Build();
    }

    private static bool IsTransient(HttpStatusCode status) => status is HttpStatusCode.TooManyRequests || ((int)status >= 500 && status != HttpStatusCode.NotImplemented);

    private TimeSpan? RetryAfter(HttpResponseMessage? response)
    {
        RetryConditionHeaderValue? ra = response?.Headers.RetryAfter;
        TimeSpan? wait = ra?.Delta ?? (ra?.Date is { } date ? date - _time.GetUtcNow() : null);
        if (wait is null)
        {
            return null; // the strategy's exponential back-off
        }

        return wait < TimeSpan.Zero ? TimeSpan.Zero : wait > _options.MaxRetryDelay ? _options.MaxRetryDelay : wait;
    }

    // --- authentication -------------------------------------------------------------------------------------

    private async Task<string> EnsureTokenAsync(CancellationToken cancellationToken)
    {
        await _auth.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            DateTimeOffset now = _time.GetUtcNow();
            if (_token is not null && _expiresAt is { } exp && now >= exp)
            {
                LogTokenExpired(_log);
                _token = null;
            }

            if (_token is null)
            {
                await AuthenticateAsync(cancellationToken).ConfigureAwait(false);
            }
            else if (_renewable && _renewAt is { } renewAt && now >= renewAt)
            {
                await RenewAsync(cancellationToken).ConfigureAwait(false);
            }

            return _token!;
        }
        finally
        {
            _auth.Release();
        }
    }

    private async Task InvalidateTokenAsync(string token)
    {
        await _auth.WaitAsync().ConfigureAwait(false);
        try
        {
            if (ReferenceEquals(_token, token))
            {
                _token = null;
            }
        }
        finally
        {
            _auth.Release();
        }
    }

    private async Task AuthenticateAsync(CancellationToken cancellationToken)
    {
        if (_options.AuthMethod == VaultAuthMethod.Kubernetes)
        {
            string jwt;
            try
            {
                jwt = (await File.ReadAllTextAsync(_options.ServiceAccountTokenPath, cancellationToken).ConfigureAwait(false)).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new KeyBackendException(BackendError.Denied, BackendName, $"Vault login: the service-account token at {_options.ServiceAccountTokenPath} cannot be read ({e.GetType().Name})", e);
            }

            byte[] body = JsonBody(w =>
            {
                w.WriteString("role", _options.KubernetesRole);
                w.WriteString("jwt", jwt);
            });
            try
            {
                byte[] response = await SendRawAsync(HttpMethod.Post, $"auth/{_options.KubernetesAuthMount}/login", body, null, "kubernetes login", cancellationToken).ConfigureAwait(false);
                ReadAuth(response, "kubernetes login", requireToken: true, current: null);
                LogLoggedIn(_log, _options.KubernetesRole!, _expiresAt);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(body);
            }
        }
        else
        {
            string token = _options.Token is { Length: > 0 } t ? t : await ReadTokenFileAsync(cancellationToken).ConfigureAwait(false);
            byte[] response = await SendRawAsync(HttpMethod.Get, "auth/token/lookup-self", null, token, "token lookup", cancellationToken).ConfigureAwait(false);
            ReadLookup(response, token);
        }
    }

    private async Task<string> ReadTokenFileAsync(CancellationToken cancellationToken)
    {
        try
        {
            return (await File.ReadAllTextAsync(_options.TokenFile!, cancellationToken).ConfigureAwait(false)).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeyBackendException(BackendError.Denied, BackendName, $"Vault: the token file {_options.TokenFile} cannot be read ({e.GetType().Name})", e);
        }
    }

    private async Task RenewAsync(CancellationToken cancellationToken)
    {
        byte[] body = JsonBody(_ => { });
        try
        {
            byte[] response = await SendRawAsync(HttpMethod.Post, "auth/token/renew-self", body, _token, "token renewal", cancellationToken).ConfigureAwait(false);
            ReadAuth(response, "token renewal", requireToken: false, current: _token);
            LogRenewed(_log, _expiresAt);
        }
        catch (KeyBackendException e) when (e.Error is BackendError.Denied or BackendError.Rejected)
        {
            // Renewal refused (max TTL reached, token revoked): log in again where we can, else keep the token until it expires.
            LogRenewalRefused(_log, e.ServiceStatus ?? 0);
            if (_options.AuthMethod == VaultAuthMethod.Kubernetes || _options.TokenFile is not null)
            {
                _token = null;
                await AuthenticateAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                _renewable = false;
            }
        }
    }

    private void ReadAuth(byte[] response, string operation, bool requireToken, string? current)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(response);
            if (!doc.RootElement.TryGetProperty("auth", out var auth) || auth.ValueKind != JsonValueKind.Object)
            {
                throw new KeyBackendException(BackendError.BadResponse, BackendName, $"Vault {operation} answered without an \"auth\" object");
            }

            string? token = auth.TryGetProperty("client_token", out var ct) && ct.ValueKind == JsonValueKind.String ? ct.GetString() : null;
            if (string.IsNullOrEmpty(token) && requireToken)
            {
                throw new KeyBackendException(BackendError.BadResponse, BackendName, $"Vault {operation} answered without auth.client_token");
            }

            long lease = auth.TryGetProperty("lease_duration", out var ld) && ld.ValueKind == JsonValueKind.Number ? ld.GetInt64() : 0;
            bool renewable = auth.TryGetProperty("renewable", out var rn) && rn.ValueKind == JsonValueKind.True;
            SetLease(string.IsNullOrEmpty(token) ? current! : token, lease, renewable);
        }
        catch (JsonException e)
        {
            throw new KeyBackendException(BackendError.BadResponse, BackendName, $"Vault {operation} answered with malformed JSON", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(response);
        }
    }

    private void ReadLookup(byte[] response, string token)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(response);
            if (!doc.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object)
            {
                throw new KeyBackendException(BackendError.BadResponse, BackendName, "Vault token lookup answered without a \"data\" object");
            }

            long ttl = data.TryGetProperty("ttl", out var t) && t.ValueKind == JsonValueKind.Number ? t.GetInt64() : 0;
            bool renewable = data.TryGetProperty("renewable", out var r) && r.ValueKind == JsonValueKind.True;
            SetLease(token, ttl, renewable);
            LogTokenChecked(_log, _expiresAt);
        }
        catch (JsonException e)
        {
            throw new KeyBackendException(BackendError.BadResponse, BackendName, "Vault token lookup answered with malformed JSON", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(response);
        }
    }

    private void SetLease(string token, long leaseSeconds, bool renewable)
    {
        DateTimeOffset now = _time.GetUtcNow();
        _token = token;
        _renewable = renewable && leaseSeconds > 0;
        if (leaseSeconds > 0)
        {
            _expiresAt = now.AddSeconds(leaseSeconds);
            _renewAt = now.AddSeconds(leaseSeconds * _options.RenewAtFractionOfLease);
        }
        else
        {
            _expiresAt = null; // a root or periodic token without TTL
            _renewAt = null;
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Vault {Method} {Path} answered {Status}")]
    private static partial void LogResponse(ILogger logger, string method, string path, int status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Vault request failed ({Cause}); retry {Attempt} in {Delay}")]
    private static partial void LogRetrying(ILogger logger, int attempt, string cause, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Error, Message = "Vault {Operation} unavailable after the retries ({Cause})")]
    private static partial void LogUnavailable(ILogger logger, string operation, string cause);

    [LoggerMessage(Level = LogLevel.Information, Message = "Vault: logged in with the Kubernetes auth method as role {Role}; token valid until {ExpiresAt}")]
    private static partial void LogLoggedIn(ILogger logger, string role, DateTimeOffset? expiresAt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Vault: token checked; valid until {ExpiresAt}")]
    private static partial void LogTokenChecked(ILogger logger, DateTimeOffset? expiresAt);

    [LoggerMessage(Level = LogLevel.Information, Message = "Vault: token renewed; valid until {ExpiresAt}")]
    private static partial void LogRenewed(ILogger logger, DateTimeOffset? expiresAt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Vault: token renewal refused (HTTP {Status})")]
    private static partial void LogRenewalRefused(ILogger logger, int status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Vault: token expired; authenticating again")]
    private static partial void LogTokenExpired(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Vault {Operation} denied; logging in again once in case the token was revoked")]
    private static partial void LogReauthenticating(ILogger logger, string operation);
}
