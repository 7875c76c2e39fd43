using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text.Json;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Identity;

namespace AttestBroker.Keys.Backends.AzureKeyVault;

/// <summary>The parts of a Key Vault key bundle this broker uses (never key material).</summary>
public sealed record KeyVaultKeyProperties(string Kid, string Name, string Version, string KeyType, bool Enabled, bool Exportable, IReadOnlyList<string> KeyOps);

/// <summary>
/// Azure Key Vault / Managed HSM keys over REST through Azure.Core's HttpPipeline (bearer token from an Azure.Identity
/// credential, Azure.Core's retry policy honouring Retry-After, its logging policy, which never logs bodies or the
/// Authorization header). Shaped like Azure.Security.KeyVault.Keys' KeyClient/CryptographyClient so that replacing
/// it with the SDK is one class. Errors are <see cref="KeyBackendException"/>s carrying Key Vault's error code.
/// </summary>
public sealed class KeyVaultKeyClient
{
    public const string WrapAlgorithm = "RSA-OAEP-256";
    private const int MaxResponseBytes = 1 << 20;

    private readonly KeyVaultKeyClientOptions _options;
    private readonly HttpPipeline _pipeline;
    private readonly string _backend;

    /// <summary>A client with the credential <paramref name="options"/> names.</summary>
    public KeyVaultKeyClient(KeyVaultKeyClientOptions options, string backendName = "azure-keyvault")
        : this(options, (options ?? throw new ArgumentNullException(nameof(options))).CreateCredential(), backendName)
    {
    }

    public KeyVaultKeyClient(KeyVaultKeyClientOptions options, TokenCredential credential, string backendName = "azure-keyvault")
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(credential);
        options.Validate();
        _options = options;
        _backend = backendName;
        _pipeline = HttpPipelineBuilder.Build(options, new BearerTokenAuthenticationPolicy(credential, options.EffectiveScope));
    }

    public Uri VaultUri => _options.VaultUri!;

    /// <summary>GET {vault}/keys/{name}[/{version}].</summary>
    public async Task<KeyVaultKeyProperties> GetKeyAsync(string name, string? version = null, CancellationToken cancellationToken = default)
    {
        byte[] body = await SendAsync(RequestMethod.Get, KeyPath(name, version), null, "get key", cancellationToken).ConfigureAwait(false);
        return ParseBundle(body, "get key");
    }

    /// <summary>POST {vault}/keys/{name}/create with a caller-built body (kty, key_size, attributes, release_policy).</summary>
    public async Task<KeyVaultKeyProperties> CreateKeyAsync(string name, ReadOnlyMemory<byte> jsonBody, CancellationToken cancellationToken = default)
    {
        byte[] body = await SendAsync(RequestMethod.Post, KeyPath(name, null) + "/create", jsonBody, "create key", cancellationToken).ConfigureAwait(false);
        return ParseBundle(body, "create key");
    }

    /// <summary>PUT {vault}/keys/{name}: imports a key (the body holds key material: the caller zeroes it after).</summary>
    public async Task<KeyVaultKeyProperties> ImportKeyAsync(string name, ReadOnlyMemory<byte> jsonBody, CancellationToken cancellationToken = default)
    {
        byte[] body = await SendAsync(RequestMethod.Put, KeyPath(name, null), jsonBody, "import key", cancellationToken).ConfigureAwait(false);
        return ParseBundle(body, "import key");
    }

    /// <summary>POST {vault}/keys/{name}/rotate (needs the rotate permission, which Key Vault Crypto User lacks).</summary>
    public async Task<KeyVaultKeyProperties> RotateKeyAsync(string name, CancellationToken cancellationToken = default)
    {
        byte[] body = await SendAsync(RequestMethod.Post, KeyPath(name, null) + "/rotate", null, "rotate key", cancellationToken).ConfigureAwait(false);
        return ParseBundle(body, "rotate key");
    }

    /// <summary>POST {vault}/keys/{name}/{version}/wrapkey with RSA-OAEP-256; version null wraps under the newest.</summary>
    public async Task<(string Kid, byte[] Wrapped)> WrapKeyAsync(string name, string? version, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        byte[] request = KeyOperationBody(key.Span);
        try
        {
            byte[] body = await SendAsync(RequestMethod.Post, KeyPath(name, version) + "/wrapkey", request, "wrap key", cancellationToken).ConfigureAwait(false);
            using JsonDocument doc = Parse(body, "wrap key");
            string? kid = Str(doc.RootElement, "kid");
            string? value = Str(doc.RootElement, "value");
            if (kid is null || value is null || !TryB64Url(value, out byte[] wrapped) || wrapped.Length == 0)
            {
                throw Bad("wrap key", "no kid and base64url value");
            }

            return (kid, wrapped);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(request);
        }
    }

    /// <summary>
    /// POST {vault}/keys/{name}/{version}/unwrapkey with RSA-OAEP-256. The plaintext is decoded from the response
    /// bytes straight into <paramref name="destination"/> (exactly 32 bytes expected); the response buffer is zeroed.
    /// </summary>
    public async Task UnwrapKeyAsync(string name, string version, ReadOnlyMemory<byte> wrapped, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(version);
        byte[] request = KeyOperationBody(wrapped.Span);
        byte[] body = await SendAsync(RequestMethod.Post, KeyPath(name, version) + "/unwrapkey", request, "unwrap key", cancellationToken).ConfigureAwait(false);
        try
        {
            if (!TryDecodeValue(body, destination.Span, out string problem))
            {
                CryptographicOperations.ZeroMemory(destination.Span[..Math.Min(destination.Length, IKeyBackend.KeyLength)]);
                throw Bad("unwrap key", problem);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(body);
        }
    }

    /// <summary>
    /// POST {vault}/keys/{name}/{version}/release (Secure Key Release): returns the compact JWS in the answer's
    /// "value" (verify it with <see cref="SecureKeyRelease"/> before use).
    /// </summary>
    public async Task<string> ReleaseAsync(string name, string version, string targetToken, string encryption, string? nonce, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(version);
        ArgumentException.ThrowIfNullOrEmpty(targetToken);
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("target", targetToken);
            if (nonce is not null)
            {
                w.WriteString("nonce", nonce);
            }

            w.WriteString("enc", encryption);
            w.WriteEndObject();
        }

        byte[] body = await SendAsync(RequestMethod.Post, KeyPath(name, version) + "/release", buffer.WrittenMemory, "release key", cancellationToken).ConfigureAwait(false);
        try
        {
            using JsonDocument doc = Parse(body, "release key");
            return Str(doc.RootElement, "value") ?? throw Bad("release key", "no \"value\" string");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(body);
        }
    }

    /// <summary>Readiness: the credential gets a token and the key can be read.</summary>
    public async Task<BackendHealth> CheckHealthAsync(string keyName, CancellationToken cancellationToken = default)
    {
        try
        {
            KeyVaultKeyProperties p = await GetKeyAsync(keyName, null, cancellationToken).ConfigureAwait(false);
            return p.Enabled
                ? BackendHealth.Ok(_backend, $"key {p.Name} ({p.KeyType}) version {p.Version} in {VaultUri.Host}")
                : BackendHealth.Failed(_backend, $"key {p.Name} in {VaultUri.Host} is disabled in Key Vault");
        }
        catch (KeyBackendException e)
        {
            return BackendHealth.Failed(_backend, $"{e.Code}: {e.Message}");
        }
    }

    /// <summary>Splits a key identifier https://{vault}/keys/{name}/{version}; it must name this vault.</summary>
    public (string Name, string Version) ParseKid(string kid)
    {
        if (!Uri.TryCreate(kid, UriKind.Absolute, out Uri? u) || !string.Equals(u.Host, VaultUri.Host, StringComparison.OrdinalIgnoreCase) || u.Scheme != Uri.UriSchemeHttps)
        {
            throw Bad("key identifier", $"a kid that does not name {VaultUri.Host}");
        }

        string[] segments = u.AbsolutePath.Trim('/').Split('/');
        return segments.Length == 3 && segments[0] == "keys" && IsName(segments[1]) && IsVersion(segments[2])
            ? (segments[1], segments[2])
            : throw Bad("key identifier", "a kid that is not /keys/{name}/{version}");
    }

    internal static bool IsName(string s) => s.Length is > 0 and <= 127 && s.All(c => char.IsAsciiLetterOrDigit(c) || c == '-');

    private static bool IsVersion(string s) => s.Length is > 0 and <= 64 && s.All(char.IsAsciiLetterOrDigit);

    private static string KeyPath(string name, string? version)
    {
        if (!IsName(name) || (version is not null && !IsVersion(version)))
        {
            throw new ArgumentException("a Key Vault key name is 1..127 letters, digits and -; a version letters and digits");
        }

        return version is null ? $"/keys/{name}" : $"/keys/{name}/{version}";
    }

    private static byte[] KeyOperationBody(ReadOnlySpan<byte> value)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("alg", WrapAlgorithm);
            w.WriteString("value", Base64Url.EncodeToString(value));
            w.WriteEndObject();
        }

        byte[] bytes = buffer.WrittenSpan.ToArray();
        buffer.Clear();
        return bytes;
    }

    private async Task<byte[]> SendAsync(RequestMethod method, string path, ReadOnlyMemory<byte>? body, string operation, CancellationToken cancellationToken)
    {
        using HttpMessage message = _pipeline.CreateMessage();
        Request request = message.Request;
        request.Method = method;
        request.Uri.Reset(VaultUri);
        request.Uri.AppendPath(path, escape: false);
        request.Uri.AppendQuery("api-version", _options.ApiVersion);
        request.Headers.Add("Accept", "application/json");
        if (body is { } b)
        {
            request.Headers.Add("Content-Type", "application/json");
            request.Content = RequestContent.Create(b);
        }

        message.BufferResponse = true;
        try
        {
            await _pipeline.SendAsync(message, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (AuthenticationFailedException e)
        {
            throw new KeyBackendException(BackendError.Denied, _backend, $"Key Vault {operation}: the credential got no token ({KeyRecords.Cause(e.Message)})", e);
        }
        catch (Exception e) when (e is RequestFailedException or OperationCanceledException or HttpRequestException or IOException or AggregateException)
        {
            string cause = e is OperationCanceledException ? $"no answer within {_options.Retry.NetworkTimeout.TotalSeconds:0.#} s" : KeyRecords.Cause(e.Message);
            throw new KeyBackendException(BackendError.Unavailable, _backend, $"Key Vault {operation} failed after {_options.Retry.MaxRetries + 1} attempts: {cause}", e);
        }

        Response response = message.Response;
        BinaryData content = response.Content;
        if (content.ToMemory().Length > MaxResponseBytes)
        {
            throw Bad(operation, $"an answer larger than {MaxResponseBytes} bytes");
        }

        byte[] bytes = content.ToArray();
        if (response.Status is >= 200 and < 300)
        {
            return bytes;
        }

        string cause2 = ErrorOf(bytes);
        BackendError error = KeyBackendException.FromStatus(response.Status);
        TimeSpan? retryAfter = response.Headers.TryGetValue("Retry-After", out string? ra) && int.TryParse(ra, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int seconds)
            ? TimeSpan.FromSeconds(seconds)
            : null;
        throw new KeyBackendException(error, _backend, $"Key Vault {operation} on {path} answered HTTP {response.Status}: {cause2}", null, response.Status) { RetryAfter = retryAfter };
    }

    private static string ErrorOf(byte[] body)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object)
            {
                return KeyRecords.Cause($"{Str(e, "code") ?? "?"}: {Str(e, "message") ?? string.Empty}");
            }
        }
        catch (JsonException)
        {
        }

        return "no Key Vault error object in the answer";
    }

    private KeyVaultKeyProperties ParseBundle(byte[] body, string operation)
    {
        using JsonDocument doc = Parse(body, operation);
        JsonElement root = doc.RootElement;
        if (!root.TryGetProperty("key", out var key) || key.ValueKind != JsonValueKind.Object || Str(key, "kid") is not { } kid || Str(key, "kty") is not { } kty)
        {
            throw Bad(operation, "no key bundle with kid and kty");
        }

        (string name, string version) = ParseKid(kid);
        bool enabled = true;
        bool exportable = false;
        if (root.TryGetProperty("attributes", out var attrs) && attrs.ValueKind == JsonValueKind.Object)
        {
            enabled = !(attrs.TryGetProperty("enabled", out var en) && en.ValueKind == JsonValueKind.False);
            exportable = attrs.TryGetProperty("exportable", out var ex) && ex.ValueKind == JsonValueKind.True;
        }

        var ops = key.TryGetProperty("key_ops", out var o) && o.ValueKind == JsonValueKind.Array
            ? o.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()!).ToList()
            : [];
        return new KeyVaultKeyProperties(kid, name, version, kty, enabled, exportable, ops);
    }

    private JsonDocument Parse(byte[] body, string operation)
    {
        try
        {
            JsonDocument doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 32 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw Bad(operation, "JSON that is not an object");
            }

            return doc;
        }
        catch (JsonException e)
        {
            throw new KeyBackendException(BackendError.BadResponse, _backend, $"Key Vault {operation} answered with malformed JSON", e);
        }
    }

    private static bool TryDecodeValue(byte[] body, Span<byte> destination, out string problem)
    {
        problem = "no \"value\"";
        Span<byte> tmp = stackalloc byte[48];
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 8 });
            int depth = 0;
            while (reader.Read())
            {
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                {
                    depth++;
                }
                else if (reader.TokenType is JsonTokenType.EndObject or JsonTokenType.EndArray)
                {
                    depth--;
                }
                else if (reader.TokenType == JsonTokenType.PropertyName && depth == 1 && reader.ValueTextEquals("value"))
                {
                    if (!reader.Read() || reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped || reader.HasValueSequence || reader.ValueSpan.Length > 64)
                    {
                        problem = "a \"value\" that is not a 32-byte base64url string";
                        return false;
                    }

                    if (Base64Url.DecodeFromUtf8(reader.ValueSpan, tmp, out _, out int written) != OperationStatus.Done || written != IKeyBackend.KeyLength)
                    {
                        problem = "a \"value\" that is not a 32-byte base64url string";
                        return false;
                    }

                    tmp[..IKeyBackend.KeyLength].CopyTo(destination);
                    return true;
                }
            }

            return false;
        }
        catch (JsonException)
        {
            problem = "malformed JSON";
            return false;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(tmp);
        }
    }

    internal static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    internal static bool TryB64Url(string s, out byte[] bytes)
    {
        try
        {
            bytes = Base64Url.DecodeFromChars(s);
            return true;
        }
        catch (FormatException)
        {
            bytes = [];
            return false;
        }
    }

    private KeyBackendException Bad(string operation, string what) =>
        new(BackendError.BadResponse, _backend, $"Key Vault {operation} answered with {what}");

    public override string ToString() => $"KeyVaultKeyClient {{ {_options} }}";
}
