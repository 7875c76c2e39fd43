using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AttestBroker.Protocol;

/// <summary>What goes into a new attestation-result token.</summary>
public sealed class ResultTokenDescriptor
{
    /// <summary>"iss": the broker's issuer identifier (required, non-empty).</summary>
    public required string Issuer { get; init; }

    /// <summary>"sub": optional subject (e.g. the pod's service account).</summary>
    public string? Subject { get; init; }

    /// <summary>The pod's ephemeral public key; its RFC 7638 thumbprint becomes "cnf.jkt" (RFC 7800).</summary>
    public required Jwk ConfirmationKey { get; init; }

    /// <summary>The verification's claims, copied under "claims". Null means an empty object.</summary>
    public JsonObject? Claims { get; init; }

    /// <summary>exp - iat; 1 second .. 1 hour; 5 minutes by default.</summary>
    public TimeSpan Lifetime { get; init; } = ResultToken.DefaultLifetime;
}

/// <summary>A verified token's contents.</summary>
public sealed class ResultTokenClaims
{
    internal ResultTokenClaims(string keyId, string issuer, string? subject, DateTimeOffset issuedAt, DateTimeOffset notBefore, DateTimeOffset expires, string tokenId, string confirmationThumbprint, JsonObject claims)
    {
        KeyId = keyId;
        Issuer = issuer;
        Subject = subject;
        IssuedAt = issuedAt;
        NotBefore = notBefore;
        Expires = expires;
        TokenId = tokenId;
        ConfirmationThumbprint = confirmationThumbprint;
        Claims = claims;
    }

    /// <summary>The header "kid" of the key that signed it.</summary>
    public string KeyId { get; }

    public string Issuer { get; }

    public string? Subject { get; }

    public DateTimeOffset IssuedAt { get; }

    public DateTimeOffset NotBefore { get; }

    public DateTimeOffset Expires { get; }

    /// <summary>"jti": unique token id (for replay tracking and audit).</summary>
    public string TokenId { get; }

    /// <summary>"cnf.jkt": the thumbprint of the key the token is bound to.</summary>
    public string ConfirmationThumbprint { get; }

    /// <summary>The "claims" object from the verification.</summary>
    public JsonObject Claims { get; }
}

/// <summary>
/// The signed attestation-result token: a JWS compact JWT (RFC 7519) with ES256, header
/// {"alg":"ES256","kid":&lt;signing key thumbprint&gt;,"typ":"attest-result+jwt"} and claims iss, sub?, iat, nbf, exp,
/// jti, cnf.jkt (RFC 7800) and "claims". Verification checks, in order: shape, alg, typ, kid in the JWKS,
/// signature, iss, nbf/exp against the given time with a small skew, and cnf.jkt against the presented key.
/// </summary>
public static class ResultToken
{
    /// <summary>The explicit JWT type (RFC 8725 §3.11), so this token cannot be mistaken for another kind of JWT.</summary>
    public const string TokenType = "attest-result+jwt";

    /// <summary>The longest token accepted, in characters.</summary>
    public const int MaximumTokenLength = 64 * 1024;

    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromMinutes(5);

    public static readonly TimeSpan DefaultClockSkew = TimeSpan.FromSeconds(30);

    /// <summary>The largest clock skew a verifier may allow.</summary>
    public static readonly TimeSpan MaximumClockSkew = TimeSpan.FromMinutes(5);

    private static readonly TimeSpan MaximumLifetime = TimeSpan.FromHours(1);

    private const ProtocolError Bad = ProtocolError.TokenMalformed;

    /// <summary>Signs a new token at <paramref name="now"/> with an ECDSA P-256 key; "kid" is that key's thumbprint.</summary>
    public static string Create(ResultTokenDescriptor descriptor, ECDsa signingKey, DateTimeOffset now) =>
        Create(descriptor, signingKey, Jwks.SigningJwk(signingKey).KeyId!, now);

    /// <summary>
    /// As <see cref="Create(ResultTokenDescriptor, ECDsa, DateTimeOffset)"/> with the signing key's "kid" already known:
    /// its RFC 7638 thumbprint as <see cref="Jwks.FromSigningKeys"/> publishes it (a signer that keeps its key saves
    /// exporting it again for every token). Another value makes tokens no verifier of that JWKS accepts.
    /// </summary>
    public static string Create(ResultTokenDescriptor descriptor, ECDsa signingKey, string signingKeyId, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentNullException.ThrowIfNull(descriptor.ConfirmationKey);
        ArgumentNullException.ThrowIfNull(signingKey);
        ArgumentException.ThrowIfNullOrEmpty(signingKeyId);
        if (signingKey.KeySize != 256)
        {
            throw new ProtocolException(ProtocolError.TokenParametersInvalid, "token-signing key must be ECDSA P-256");
        }

        if (string.IsNullOrEmpty(descriptor.Issuer))
        {
            throw new ProtocolException(ProtocolError.TokenParametersInvalid, "issuer is empty");
        }

        if (descriptor.Lifetime < TimeSpan.FromSeconds(1) || descriptor.Lifetime > MaximumLifetime)
        {
            throw new ProtocolException(ProtocolError.TokenParametersInvalid, "lifetime must be 1 second .. 1 hour");
        }

        var iat = now.ToUnixTimeSeconds();
        var exp = iat + (long)descriptor.Lifetime.TotalSeconds;
        var jti = Base64UrlStrict.Encode(RandomNumberGenerator.GetBytes(16));

        var header = Json(w =>
        {
            w.WriteString("alg", JoseAlgorithms.Es256);
            w.WriteString("kid", signingKeyId);
            w.WriteString("typ", TokenType);
        });
        var payload = Json(w =>
        {
            w.WriteString("iss", descriptor.Issuer);
            if (descriptor.Subject is not null)
            {
                w.WriteString("sub", descriptor.Subject);
            }

            w.WriteNumber("iat", iat);
            w.WriteNumber("nbf", iat);
            w.WriteNumber("exp", exp);
            w.WriteString("jti", jti);
            w.WriteStartObject("cnf");
            w.WriteString("jkt", descriptor.ConfirmationKey.Thumbprint());
            w.WriteEndObject();
            w.WritePropertyName("claims");
            (descriptor.Claims ?? []).WriteTo(w);
        });

        var signingInput = Base64UrlStrict.Encode(header) + "." + Base64UrlStrict.Encode(payload);
        var signature = signingKey.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return signingInput + "." + Base64UrlStrict.Encode(signature);
    }

    /// <summary>
    /// Verifies a token for the pod presenting <paramref name="presentedKey"/> at time <paramref name="now"/>.
    /// Returns its contents or throws <see cref="ProtocolException"/> with the first failed check.
    /// </summary>
    public static ResultTokenClaims Verify(string token, Jwks keys, string expectedIssuer, Jwk presentedKey, DateTimeOffset now, TimeSpan? clockSkew = null)
    {
        ArgumentNullException.ThrowIfNull(token);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(expectedIssuer);
        ArgumentNullException.ThrowIfNull(presentedKey);
        var skew = clockSkew ?? DefaultClockSkew;
        if (skew < TimeSpan.Zero || skew > MaximumClockSkew)
        {
            throw new ArgumentOutOfRangeException(nameof(clockSkew), "clock skew must be 0 .. 5 minutes");
        }

        return StrictJson.Read(() => VerifyCore(token, keys, expectedIssuer, presentedKey, now, skew), Bad, "token");
    }

    private static ResultTokenClaims VerifyCore(string token, Jwks keys, string expectedIssuer, Jwk presentedKey, DateTimeOffset now, TimeSpan skew)
    {
        if (token.Length > MaximumTokenLength)
        {
            throw new ProtocolException(Bad, $"token is longer than {MaximumTokenLength} characters");
        }

        var parts = token.Split('.');
        if (parts.Length != 3)
        {
            throw new ProtocolException(Bad, $"token must have 3 segments, has {parts.Length}");
        }

        // Header: alg, typ, kid.
        string kid;
        using (var hdoc = StrictJson.ParseObject(Base64UrlStrict.Decode(parts[0], Bad, "token header"), Bad, "token header"))
        {
            var h = hdoc.RootElement;
            var alg = StrictJson.RequiredString(h, "alg", Bad, "token header");
            if (!string.Equals(alg, JoseAlgorithms.Es256, StringComparison.Ordinal))
            {
                throw new ProtocolException(ProtocolError.TokenAlgorithmNotAllowed, "\"alg\" must be ES256");
            }

            var typ = StrictJson.OptionalString(h, "typ", Bad, "token header");
            if (!string.Equals(typ, TokenType, StringComparison.Ordinal))
            {
                throw new ProtocolException(ProtocolError.TokenTypeInvalid, $"\"typ\" must be {TokenType}");
            }

            if (h.TryGetProperty("crit", out _))
            {
                throw new ProtocolException(Bad, "no critical header extension is understood");
            }

            kid = StrictJson.OptionalString(h, "kid", Bad, "token header")
                ?? throw new ProtocolException(ProtocolError.TokenKeyUnknown, "header has no \"kid\"");
        }

        var signingKey = keys.Find(kid) ?? throw new ProtocolException(ProtocolError.TokenKeyUnknown, "\"kid\" names no key in the JWKS");
        var payloadBytes = Base64UrlStrict.Decode(parts[1], Bad, "token payload");
        var signature = Base64UrlStrict.Decode(parts[2], Bad, "token signature");
        if (signature.Length != 64)
        {
            throw new ProtocolException(ProtocolError.TokenSignatureInvalid, "ES256 signature must be 64 bytes");
        }

        var signingInput = Encoding.ASCII.GetBytes(token[..(parts[0].Length + 1 + parts[1].Length)]);
        using (var ecdsa = signingKey.CreateECDsa())
        {
            if (!ecdsa.VerifyData(signingInput, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
            {
                throw new ProtocolException(ProtocolError.TokenSignatureInvalid, "signature does not verify");
            }
        }

        using var pdoc = StrictJson.ParseObject(payloadBytes, Bad, "token payload");
        var p = pdoc.RootElement;
        var iss = StrictJson.RequiredString(p, "iss", Bad, "token payload");
        if (!string.Equals(iss, expectedIssuer, StringComparison.Ordinal))
        {
            throw new ProtocolException(ProtocolError.TokenIssuerMismatch, "\"iss\" is not the expected issuer");
        }

        var sub = StrictJson.OptionalString(p, "sub", Bad, "token payload");
        var iat = StrictJson.RequiredInteger(p, "iat", Bad, "token payload");
        var nbf = StrictJson.RequiredInteger(p, "nbf", Bad, "token payload");
        var exp = StrictJson.RequiredInteger(p, "exp", Bad, "token payload");
        var jti = StrictJson.RequiredString(p, "jti", Bad, "token payload");
        if (jti.Length == 0)
        {
            throw new ProtocolException(Bad, "\"jti\" is empty");
        }

        const long MinTime = 0;
        const long MaxTime = 253402300799; // 9999-12-31T23:59:59Z
        if (iat is < MinTime or > MaxTime || nbf is < MinTime or > MaxTime || exp is < MinTime or > MaxTime || exp <= nbf)
        {
            throw new ProtocolException(Bad, "iat/nbf/exp are out of range or exp is not after nbf");
        }

        var t = now.ToUnixTimeSeconds();
        var s = (long)skew.TotalSeconds;
        if (t >= exp + s)
        {
            throw new ProtocolException(ProtocolError.TokenExpired, "the token has expired");
        }

        if (t + s < nbf)
        {
            throw new ProtocolException(ProtocolError.TokenNotYetValid, "the token is not valid yet");
        }

        if (!p.TryGetProperty("cnf", out var cnf) || cnf.ValueKind != JsonValueKind.Object)
        {
            throw new ProtocolException(Bad, "token payload has no \"cnf\" object");
        }

        var jkt = StrictJson.RequiredString(cnf, "jkt", Bad, "token \"cnf\"");
        var presented = Encoding.ASCII.GetBytes(presentedKey.Thumbprint());
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(jkt), presented))
        {
            throw new ProtocolException(ProtocolError.TokenConfirmationMismatch, "\"cnf.jkt\" is not the presented key's thumbprint");
        }

        if (!p.TryGetProperty("claims", out var claimsElement) || claimsElement.ValueKind != JsonValueKind.Object)
        {
            throw new ProtocolException(Bad, "token payload has no \"claims\" object");
        }

        var claims = JsonObject.Create(claimsElement.Clone()) ?? [];
        return new ResultTokenClaims(
            kid,
            iss,
            sub,
            DateTimeOffset.FromUnixTimeSeconds(iat),
            DateTimeOffset.FromUnixTimeSeconds(nbf),
            DateTimeOffset.FromUnixTimeSeconds(exp),
            jti,
            jkt,
            claims);
    }

    private static byte[] Json(Action<Utf8JsonWriter> body)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, StrictJson.WriterOptions))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return ms.ToArray();
    }
}
