using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using AttestBroker.Protocol;

namespace AttestBroker.Server.Admin;

/// <summary>The three admin roles (docs/server.md has the matrix of what each may do).</summary>
public static class AdminRoles
{
    public const string KeyAdmin = "key-admin";
    public const string PolicyAdmin = "policy-admin";
    public const string Auditor = "auditor";

    public static readonly IReadOnlyList<string> All = [KeyAdmin, PolicyAdmin, Auditor];
}

/// <summary>Who made an admin call: the token's <c>sub</c>, its issuer, and the roles it carries.</summary>
public sealed record AdminPrincipal(string Subject, string Issuer, IReadOnlyList<string> Roles)
{
    public bool HasAnyRole(IReadOnlyCollection<string> roles) => Roles.Any(roles.Contains);
}

/// <summary>Why an admin token was refused. Stable names (the <c>error</c> member of the 401 problem).</summary>
public enum AdminTokenError
{
    Malformed,
    UnsupportedAlgorithm,
    UnknownIssuer,
    UnknownKey,
    BadSignature,
    WrongAudience,
    MissingExpiry,
    Expired,
    NotYetValid,
    IssuedInFuture,
    MissingSubject,
    RolesMalformed,
    /// <summary>The issuer's signing keys could not be fetched (503, not 401).</summary>
    SignerUnavailable,
}

/// <summary>An admin token was refused; the message never quotes the token.</summary>
public sealed class AdminTokenException : Exception
{
    public AdminTokenException(AdminTokenError error, string message)
        : base(message)
    {
        Error = error;
    }

    public AdminTokenException()
        : this(AdminTokenError.Malformed, "invalid admin token")
    {
    }

    public AdminTokenException(string message)
        : this(AdminTokenError.Malformed, message)
    {
    }

    public AdminTokenException(string message, Exception innerException)
        : base(message, innerException)
    {
        Error = AdminTokenError.Malformed;
    }

    public AdminTokenError Error { get; }
}

/// <summary>A public key that may sign admin tokens: EC P-256 (ES256) or RSA of at least 2048 bits (RS256).</summary>
public sealed class AdminVerificationKey : IDisposable
{
    public const int MinimumRsaBits = 2048;

    private readonly ECDsa? _ec;
    private readonly RSA? _rsa;

    private AdminVerificationKey(string? keyId, ECDsa? ec, RSA? rsa)
    {
        KeyId = keyId;
        _ec = ec;
        _rsa = rsa;
    }

    /// <summary>The key's <c>kid</c>: the JWKS's, or the RFC 7638 thumbprint for EC keys read from files.</summary>
    public string? KeyId { get; }

    public string Algorithm => _ec is not null ? JoseAlgorithms.Es256 : AdminTokens.Rs256;

    /// <summary>Takes ownership of <paramref name="key"/>; it must be P-256.</summary>
    public static AdminVerificationKey FromEcdsa(ECDsa key, string? keyId = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.KeySize != 256)
        {
            throw new CryptographicException("an ES256 admin signing key must be on P-256");
        }

        return new AdminVerificationKey(keyId ?? Jwk.FromPublicKey(key).Thumbprint(), key, null);
    }

    /// <summary>Takes ownership of <paramref name="key"/>; it must have at least 2048 bits.</summary>
    public static AdminVerificationKey FromRsa(RSA key, string? keyId = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.KeySize < MinimumRsaBits)
        {
            throw new CryptographicException($"an RS256 admin signing key must have at least {MinimumRsaBits} bits");
        }

        return new AdminVerificationKey(keyId, null, key);
    }

    /// <summary>Reads a PEM public key (SubjectPublicKeyInfo, or an X.509 certificate's key).</summary>
    public static AdminVerificationKey FromPemFile(string path)
    {
        var text = File.ReadAllText(path);
        if (text.Length > 64 * 1024)
        {
            throw new CryptographicException($"{path} is too large for a public key");
        }

        if (text.Contains("PRIVATE KEY", StringComparison.Ordinal))
        {
            throw new CryptographicException($"{path} holds a private key; give only the public key");
        }

        if (text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal))
        {
            using var cert = X509Certificate2.CreateFromPem(text);
            if (cert.GetECDsaPublicKey() is { } certEc)
            {
                return FromEcdsa(certEc);
            }

            return cert.GetRSAPublicKey() is { } certRsa ? FromRsa(certRsa) : throw new CryptographicException($"{path}: the certificate's key is neither EC nor RSA");
        }

        var ec = ECDsa.Create();
        try
        {
            ec.ImportFromPem(text);
            return FromEcdsa(ec);
        }
        catch (Exception ex) when (ex is ArgumentException or CryptographicException)
        {
            ec.Dispose();
        }

        var rsa = RSA.Create();
        try
        {
            rsa.ImportFromPem(text);
            return FromRsa(rsa);
        }
        catch (Exception ex) when (ex is ArgumentException or CryptographicException)
        {
            rsa.Dispose();
            throw new CryptographicException($"{path} holds no PEM EC P-256 or RSA (>= {MinimumRsaBits} bits) public key", ex);
        }
    }

    internal bool Verify(ReadOnlySpan<byte> signingInput, ReadOnlySpan<byte> signature) =>
        _ec is not null
            ? signature.Length == 64 && _ec.VerifyData(signingInput, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation)
            : signature.Length == _rsa!.KeySize / 8 && _rsa.VerifyData(signingInput, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);

    public void Dispose()
    {
        _ec?.Dispose();
        _rsa?.Dispose();
    }
}

/// <summary>Where the keys of one token issuer come from (the local key, PEM files, or an OIDC issuer's JWKS).</summary>
public interface IAdminKeySource
{
    /// <summary>The exact <c>iss</c> its tokens carry.</summary>
    string Issuer { get; }

    /// <summary>
    /// Candidate keys for a token with this <c>kid</c> (null when the header has none). <paramref name="refresh"/>
    /// asks a remote source to fetch its keys again (after an unknown <c>kid</c>); sources may rate-limit that.
    /// Throws <see cref="AdminTokenException"/> with <see cref="AdminTokenError.SignerUnavailable"/> when it cannot tell.
    /// </summary>
    ValueTask<IReadOnlyList<AdminVerificationKey>> KeysAsync(string? keyId, bool refresh, CancellationToken cancellationToken);
}

/// <summary>A fixed set of keys for one issuer (the local signing key, or PEM files).</summary>
public sealed class StaticAdminKeySource : IAdminKeySource, IDisposable
{
    private readonly IReadOnlyList<AdminVerificationKey> _keys;

    public StaticAdminKeySource(string issuer, IReadOnlyList<AdminVerificationKey> keys)
    {
        ArgumentException.ThrowIfNullOrEmpty(issuer);
        Issuer = issuer;
        _keys = keys;
    }

    public string Issuer { get; }

    public ValueTask<IReadOnlyList<AdminVerificationKey>> KeysAsync(string? keyId, bool refresh, CancellationToken cancellationToken)
    {
        // A kid that names a key selects it; files carry no kid, so otherwise every key of the issuer is a candidate.
        var named = keyId is null ? [] : _keys.Where(k => k.KeyId == keyId).ToList();
        return ValueTask.FromResult<IReadOnlyList<AdminVerificationKey>>(named.Count > 0 ? named : _keys);
    }

    public void Dispose()
    {
        foreach (var k in _keys)
        {
            k.Dispose();
        }
    }
}

/// <summary>
/// Admin bearer tokens: compact JWS JWTs signed ES256 (or RS256 for OIDC issuers and RSA key files), with
/// <c>iss</c>, <c>aud</c>, <c>exp</c> (required), <c>nbf</c>/<c>iat</c> (honoured with a clock skew), <c>sub</c>
/// (the audit actor) and the roles in <c>roles</c> (array of strings) or <c>role</c> (one string).
/// </summary>
public static class AdminTokens
{
    public const string DefaultAudience = "attestbroker-admin";

    /// <summary>The <c>iss</c> of tokens minted with a data directory's <c>admin-signing.key</c>.</summary>
    public const string LocalIssuer = "urn:attestbroker:admin:local";

    public const string SigningKeyFile = "admin-signing.key";

    public const string Rs256 = "RS256";

    public const int MaximumTokenLength = 16 * 1024;

    public static readonly TimeSpan MaximumLocalLifetime = TimeSpan.FromDays(1);

    /// <summary>The data directory's admin signing key (PKCS#8 P-256, 0600), created on first use. The caller disposes it.</summary>
    public static ECDsa LoadOrCreateLocalKey(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, SigningKeyFile);
        return AdminKeyFiles.LoadOrCreateP256(path);
    }

    /// <summary>Mints a token with the local key: ES256, kid = RFC 7638 thumbprint, iss = <see cref="LocalIssuer"/>.</summary>
    public static string Mint(ECDsa key, string subject, IReadOnlyList<string> roles, DateTimeOffset now, TimeSpan lifetime, string audience = DefaultAudience)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentException.ThrowIfNullOrEmpty(subject);
        ArgumentNullException.ThrowIfNull(roles);
        if (lifetime <= TimeSpan.Zero || lifetime > MaximumLocalLifetime)
        {
            throw new ArgumentOutOfRangeException(nameof(lifetime), "an admin token lives 1 second .. 24 hours");
        }

        var kid = Jwk.FromPublicKey(key).Thumbprint();
        var iat = now.ToUnixTimeSeconds();
        var header = Json(w =>
        {
            w.WriteString("alg", JoseAlgorithms.Es256);
            w.WriteString("kid", kid);
            w.WriteString("typ", "JWT");
        });
        var payload = Json(w =>
        {
            w.WriteString("iss", LocalIssuer);
            w.WriteString("sub", subject);
            w.WriteString("aud", audience);
            w.WriteNumber("iat", iat);
            w.WriteNumber("nbf", iat);
            w.WriteNumber("exp", iat + (long)Math.Ceiling(lifetime.TotalSeconds));
            w.WriteString("jti", AdminBase64Url.Encode(RandomNumberGenerator.GetBytes(16)));
            w.WriteStartArray("roles");
            foreach (var r in roles)
            {
                w.WriteStringValue(r);
            }

            w.WriteEndArray();
        });
        var input = AdminBase64Url.Encode(header) + "." + AdminBase64Url.Encode(payload);
        var signature = key.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return input + "." + AdminBase64Url.Encode(signature);
    }

    /// <summary>
    /// Validates a token against the sources (chosen by its <c>iss</c>) at <paramref name="now"/>. Checks, in order:
    /// shape, <c>alg</c> (ES256/RS256 only), <c>iss</c> is a trusted issuer, a key of that issuer (refreshing a
    /// remote issuer's keys once on an unknown <c>kid</c>), the signature, <c>aud</c>, <c>exp</c>/<c>nbf</c>/<c>iat</c>,
    /// <c>sub</c>, the roles. Unknown role names carry no rights and are dropped.
    /// </summary>
    public static async Task<AdminPrincipal> ValidateAsync(string token, IReadOnlyList<IAdminKeySource> sources, string audience, DateTimeOffset now, TimeSpan clockSkew, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(token);
        ArgumentNullException.ThrowIfNull(sources);
        if (token.Length > MaximumTokenLength)
        {
            throw new AdminTokenException(AdminTokenError.Malformed, $"the token is longer than {MaximumTokenLength} characters");
        }

        var parts = token.Split('.');
        if (parts.Length != 3)
        {
            throw new AdminTokenException(AdminTokenError.Malformed, "not a compact JWS (three base64url parts)");
        }

        var headerBytes = Decode(parts[0], "header");
        var payloadBytes = Decode(parts[1], "payload");
        var signature = Decode(parts[2], "signature");

        string alg;
        string? kid;
        using (var header = ParseObject(headerBytes, "header"))
        {
            var h = header.RootElement;
            alg = OptionalString(h, "alg", "header") ?? throw new AdminTokenException(AdminTokenError.Malformed, "the header has no \"alg\"");
            kid = OptionalString(h, "kid", "header");
            if (h.TryGetProperty("crit", out _))
            {
                throw new AdminTokenException(AdminTokenError.Malformed, "the header has \"crit\" extensions this broker does not understand");
            }

            if (OptionalString(h, "typ", "header") is { } typ && typ == ResultToken.TokenType)
            {
                throw new AdminTokenException(AdminTokenError.Malformed, "an attestation-result token is not an admin token");
            }
        }

        if (alg is not (JoseAlgorithms.Es256 or Rs256))
        {
            throw new AdminTokenException(AdminTokenError.UnsupportedAlgorithm, "\"alg\" must be ES256 or RS256");
        }

        using var payload = ParseObject(payloadBytes, "payload");
        var p = payload.RootElement;
        var iss = OptionalString(p, "iss", "payload") ?? throw new AdminTokenException(AdminTokenError.UnknownIssuer, "the token has no \"iss\"");
        var source = sources.FirstOrDefault(s => string.Equals(s.Issuer, iss, StringComparison.Ordinal))
            ?? throw new AdminTokenException(AdminTokenError.UnknownIssuer, "the token's issuer is not trusted by this broker");

        var signingInput = Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]);
        var verified = false;
        var sawKey = false;
        foreach (var refresh in new[] { false, true })
        {
            var keys = await source.KeysAsync(kid, refresh, cancellationToken).ConfigureAwait(false);
            foreach (var key in keys.Where(k => k.Algorithm == alg))
            {
                sawKey = true;
                if (key.Verify(signingInput, signature))
                {
                    verified = true;
                    break;
                }
            }

            // Fetch a remote issuer's keys again only when no key matched the kid (the issuer may have rotated).
            if (verified || sawKey)
            {
                break;
            }
        }

        if (!sawKey)
        {
            throw new AdminTokenException(AdminTokenError.UnknownKey, $"no {alg} key of the issuer matches the token's kid");
        }

        if (!verified)
        {
            throw new AdminTokenException(AdminTokenError.BadSignature, "the signature does not verify");
        }

        if (!AudienceContains(p, audience))
        {
            throw new AdminTokenException(AdminTokenError.WrongAudience, $"the token's \"aud\" does not include {audience}");
        }

        var exp = OptionalNumber(p, "exp") ?? throw new AdminTokenException(AdminTokenError.MissingExpiry, "the token has no \"exp\"");
        var skew = (long)clockSkew.TotalSeconds;
        var t = now.ToUnixTimeSeconds();
        if (t >= exp + skew)
        {
            throw new AdminTokenException(AdminTokenError.Expired, "the token has expired");
        }

        if (OptionalNumber(p, "nbf") is { } nbf && t + skew < nbf)
        {
            throw new AdminTokenException(AdminTokenError.NotYetValid, "the token is not valid yet (nbf)");
        }

        if (OptionalNumber(p, "iat") is { } iat && t + skew < iat)
        {
            throw new AdminTokenException(AdminTokenError.IssuedInFuture, "the token was issued in the future (iat)");
        }

        var sub = OptionalString(p, "sub", "payload");
        if (string.IsNullOrWhiteSpace(sub) || sub.Length > 256)
        {
            throw new AdminTokenException(AdminTokenError.MissingSubject, "the token needs a \"sub\" of 1 .. 256 characters (the audit actor)");
        }

        return new AdminPrincipal(sub, iss, ReadRoles(p));
    }

    private static List<string> ReadRoles(JsonElement p)
    {
        var roles = new List<string>();
        if (p.TryGetProperty("roles", out var array))
        {
            if (array.ValueKind != JsonValueKind.Array)
            {
                throw new AdminTokenException(AdminTokenError.RolesMalformed, "\"roles\" must be an array of strings");
            }

            foreach (var r in array.EnumerateArray())
            {
                roles.Add(r.ValueKind == JsonValueKind.String ? r.GetString()! : throw new AdminTokenException(AdminTokenError.RolesMalformed, "\"roles\" must be an array of strings"));
            }
        }

        if (p.TryGetProperty("role", out var single))
        {
            roles.Add(single.ValueKind == JsonValueKind.String ? single.GetString()! : throw new AdminTokenException(AdminTokenError.RolesMalformed, "\"role\" must be a string"));
        }

        return [.. roles.Where(AdminRoles.All.Contains).Distinct(StringComparer.Ordinal)];
    }

    private static bool AudienceContains(JsonElement p, string audience)
    {
        if (!p.TryGetProperty("aud", out var aud))
        {
            return false;
        }

        return aud.ValueKind switch
        {
            JsonValueKind.String => aud.GetString() == audience,
            JsonValueKind.Array => aud.EnumerateArray().Any(a => a.ValueKind == JsonValueKind.String && a.GetString() == audience),
            _ => false,
        };
    }

    private static byte[] Decode(string part, string what) =>
        AdminBase64Url.TryDecode(part, out var bytes) && (bytes.Length > 0 || what == "signature")
            ? bytes
            : throw new AdminTokenException(AdminTokenError.Malformed, $"the token's {what} is not base64url");

    private static JsonDocument ParseObject(byte[] utf8, string what)
    {
        try
        {
            var doc = JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = 8 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw new AdminTokenException(AdminTokenError.Malformed, $"the token's {what} is not a JSON object");
            }

            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var m in doc.RootElement.EnumerateObject())
            {
                if (!names.Add(m.Name))
                {
                    doc.Dispose();
                    throw new AdminTokenException(AdminTokenError.Malformed, $"the token's {what} repeats a member");
                }
            }

            return doc;
        }
        catch (JsonException)
        {
            throw new AdminTokenException(AdminTokenError.Malformed, $"the token's {what} is not JSON");
        }
    }

    private static string? OptionalString(JsonElement o, string name, string what)
    {
        if (!o.TryGetProperty(name, out var v))
        {
            return null;
        }

        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new AdminTokenException(AdminTokenError.Malformed, $"\"{name}\" in the token's {what} is not a string");
    }

    private static long? OptionalNumber(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v))
        {
            return null;
        }

        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && double.IsFinite(d))
        {
            return (long)Math.Floor(Math.Clamp(d, -1e15, 1e15));
        }

        throw new AdminTokenException(AdminTokenError.Malformed, $"\"{name}\" is not a NumericDate");
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            write(w);
            w.WriteEndObject();
        }

        return ms.ToArray();
    }
}

/// <summary>base64url without padding (RFC 4648 §5), decoded strictly: only the canonical encoding is accepted.</summary>
internal static class AdminBase64Url
{
    public static string Encode(ReadOnlySpan<byte> data) => System.Buffers.Text.Base64Url.EncodeToString(data);

    public static bool TryDecode(string text, out byte[] data)
    {
        data = [];
        if (text.Length % 4 == 1 || !text.All(c => c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_'))
        {
            return false;
        }

        var buffer = new byte[System.Buffers.Text.Base64Url.GetMaxDecodedLength(text.Length)];
        int written;
        try
        {
            if (!System.Buffers.Text.Base64Url.TryDecodeFromChars(text, buffer, out written))
            {
                return false;
            }
        }
        catch (FormatException)
        {
            return false;
        }

        data = buffer[..written];
        return Encode(data) == text;
    }
}
