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

/// <summary>Admin token signing keys as <see cref="JwsVerificationKey"/>: the local P-256 key, or PEM files.</summary>
public static class AdminVerificationKey
{
    /// <summary>Takes ownership of a P-256 key; its kid is its RFC 7638 thumbprint unless given.</summary>
    public static JwsVerificationKey FromEcdsa(ECDsa key, string? keyId = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        try
        {
            return JwsVerificationKey.FromEcdsa(key, keyId ?? Jwk.FromPublicKey(key).Thumbprint());
        }
        catch (ProtocolException ex)
        {
            throw new CryptographicException(ex.Message, ex);
        }
    }

    /// <summary>
    /// Reads a PEM public key (SubjectPublicKeyInfo, or an X.509 certificate's key): EC P-256 (ES256) or RSA of at
    /// least 2048 bits (RS256). Such keys have no kid, so they are candidates for a token with any kid.
    /// </summary>
    public static JwsVerificationKey FromPemFile(string path)
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

        try
        {
            if (text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal))
            {
                using var cert = X509Certificate2.CreateFromPem(text);
                if (cert.GetECDsaPublicKey() is { } certEc)
                {
                    return JwsVerificationKey.FromEcdsa(certEc, null);
                }

                return cert.GetRSAPublicKey() is { } certRsa ? JwsVerificationKey.FromRsa(certRsa, null) : throw new CryptographicException($"{path}: the certificate's key is neither EC nor RSA");
            }

            var ec = ECDsa.Create();
            try
            {
                ec.ImportFromPem(text);
                return JwsVerificationKey.FromEcdsa(ec, null);
            }
            catch (Exception ex) when (ex is ArgumentException or CryptographicException or ProtocolException)
            {
                ec.Dispose();
            }

            var rsa = RSA.Create();
            try
            {
                rsa.ImportFromPem(text);
                return JwsVerificationKey.FromRsa(rsa, null);
            }
            catch
            {
                rsa.Dispose();
                throw;
            }
        }
        catch (Exception ex) when (ex is ArgumentException or ProtocolException)
        {
            throw new CryptographicException($"{path} holds no PEM EC P-256 or RSA (>= {JwsVerificationKey.MinimumRsaBits} bits) public key", ex);
        }
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
    ValueTask<IReadOnlyList<JwsVerificationKey>> KeysAsync(string? keyId, bool refresh, CancellationToken cancellationToken);
}

/// <summary>A fixed set of keys for one issuer (the local signing key, or PEM files).</summary>
public sealed class StaticAdminKeySource : IAdminKeySource, IDisposable
{
    private readonly IReadOnlyList<JwsVerificationKey> _keys;

    public StaticAdminKeySource(string issuer, IReadOnlyList<JwsVerificationKey> keys)
    {
        ArgumentException.ThrowIfNullOrEmpty(issuer);
        Issuer = issuer;
        _keys = keys;
    }

    public string Issuer { get; }

    // Every key is a candidate; CompactJws.VerifySignature matches kid and alg (keys from files have no kid).
    public ValueTask<IReadOnlyList<JwsVerificationKey>> KeysAsync(string? keyId, bool refresh, CancellationToken cancellationToken) =>
        ValueTask.FromResult(_keys);

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
            w.WriteString("jti", System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(16)));
            w.WriteStartArray("roles");
            foreach (var r in roles)
            {
                w.WriteStringValue(r);
            }

            w.WriteEndArray();
        });
        var input = System.Buffers.Text.Base64Url.EncodeToString(header) + "." + System.Buffers.Text.Base64Url.EncodeToString(payload);
        var signature = key.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return input + "." + System.Buffers.Text.Base64Url.EncodeToString(signature);
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
        CompactJws jws;
        try
        {
            jws = CompactJws.Decode(token, MaximumTokenLength);
        }
        catch (ProtocolException ex)
        {
            throw new AdminTokenException(AdminTokenError.Malformed, ex.Message);
        }

        using (jws)
        {
            return await ValidateAsync(jws, sources, audience, now, clockSkew, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<AdminPrincipal> ValidateAsync(CompactJws jws, IReadOnlyList<IAdminKeySource> sources, string audience, DateTimeOffset now, TimeSpan clockSkew, CancellationToken cancellationToken)
    {
        if (OptionalString(jws.Header, "typ", "header") is ResultToken.TokenType)
        {
            throw new AdminTokenException(AdminTokenError.Malformed, "an attestation-result token is not an admin token");
        }

        if (jws.Algorithm is not (JoseAlgorithms.Es256 or Rs256))
        {
            throw new AdminTokenException(AdminTokenError.UnsupportedAlgorithm, "\"alg\" must be ES256 or RS256");
        }

        var p = jws.Payload;
        var iss = OptionalString(p, "iss", "payload") ?? throw new AdminTokenException(AdminTokenError.UnknownIssuer, "the token has no \"iss\"");
        var source = sources.FirstOrDefault(s => string.Equals(s.Issuer, iss, StringComparison.Ordinal))
            ?? throw new AdminTokenException(AdminTokenError.UnknownIssuer, "the token's issuer is not trusted by this broker");

        // A remote issuer's keys are fetched again once when no key matches the kid (the issuer may have rotated).
        for (var refresh = false; ; refresh = true)
        {
            var keys = await source.KeysAsync(jws.KeyId, refresh, cancellationToken).ConfigureAwait(false);
            try
            {
                jws.VerifySignature(keys);
                break;
            }
            catch (ProtocolException ex) when (ex.Error == ProtocolError.TokenKeyUnknown && !refresh)
            {
            }
            catch (ProtocolException ex)
            {
                throw ex.Error switch
                {
                    ProtocolError.TokenKeyUnknown => new AdminTokenException(AdminTokenError.UnknownKey, $"no {jws.Algorithm} key of the issuer matches the token's kid"),
                    ProtocolError.TokenAlgorithmNotAllowed => new AdminTokenException(AdminTokenError.UnsupportedAlgorithm, "\"alg\" must be ES256 or RS256"),
                    _ => new AdminTokenException(AdminTokenError.BadSignature, "the signature does not verify"),
                };
            }
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
