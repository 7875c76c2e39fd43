using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Protocol;

/// <summary>
/// A public key that verifies third-party JWS signatures (tokens this broker did not sign: an identity provider's or
/// a Kubernetes service-account issuer's): ES256 on P-256, or RS256 with RSA of at least 2048 bits.
/// </summary>
public sealed class JwsVerificationKey : IDisposable
{
    /// <summary>RS256 (RFC 7518 §3.3): RSASSA-PKCS1-v1_5 with SHA-256.</summary>
    public const string Rs256 = "RS256";

    public const int MinimumRsaBits = 2048;

    private const int MaximumRsaBits = 8192;

    private readonly ECDsa? _ec;
    private readonly RSA? _rsa;

    private JwsVerificationKey(string? keyId, ECDsa? ec, RSA? rsa)
    {
        KeyId = keyId;
        _ec = ec;
        _rsa = rsa;
    }

    /// <summary>The key's <c>kid</c> (null when its JWK had none).</summary>
    public string? KeyId { get; }

    /// <summary>The one algorithm this key verifies: ES256 or RS256.</summary>
    public string Algorithm => _ec is not null ? JoseAlgorithms.Es256 : Rs256;

    /// <summary>Takes ownership of a P-256 key.</summary>
    public static JwsVerificationKey FromEcdsa(ECDsa key, string? keyId)
    {
        ArgumentNullException.ThrowIfNull(key);
        return key.KeySize == 256
            ? new JwsVerificationKey(keyId, key, null)
            : throw new ProtocolException(ProtocolError.JwkUnsupportedCurve, "an ES256 key must be on P-256");
    }

    /// <summary>Takes ownership of an RSA key of 2048 .. 8192 bits.</summary>
    public static JwsVerificationKey FromRsa(RSA key, string? keyId)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.KeySize < MinimumRsaBits)
        {
            throw new ProtocolException(ProtocolError.JwkRsaModulusTooShort, $"an RS256 key must have at least {MinimumRsaBits} bits");
        }

        return key.KeySize <= MaximumRsaBits
            ? new JwsVerificationKey(keyId, null, key)
            : throw new ProtocolException(ProtocolError.JwkRsaModulusInvalid, $"an RS256 key may have at most {MaximumRsaBits} bits");
    }

    /// <summary>
    /// A signature key from one member of a JWKS "keys" array: EC P-256 (alg absent or ES256) or RSA (alg absent or
    /// RS256), "use" absent or "sig". Null for anything else (encryption keys, other curves and algorithms, malformed
    /// members): a published set may hold keys this verifier does not use.
    /// </summary>
    public static JwsVerificationKey? TryFromJwk(JsonElement jwk)
    {
        if (jwk.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        string? Str(string name) => jwk.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        byte[]? Bytes(string name) => Str(name) is { } s && Base64UrlStrict.TryDecode(s, out var b) ? b : null;

        if (Str("use") is { } use && use != "sig")
        {
            return null;
        }

        if (jwk.TryGetProperty("d", out _))
        {
            return null; // a private key has no business in a published set
        }

        var kid = Str("kid");
        var alg = Str("alg");
        try
        {
            switch (Str("kty"))
            {
                case "EC" when Str("crv") == "P-256" && alg is null or JoseAlgorithms.Es256:
                    {
                        if (Bytes("x") is not { Length: 32 } x || Bytes("y") is not { Length: 32 } y)
                        {
                            return null;
                        }

                        var ec = ECDsa.Create();
                        try
                        {
                            // ImportParameters validates that the point lies on the curve.
                            ec.ImportParameters(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = x, Y = y } });
                            return FromEcdsa(ec, kid);
                        }
                        catch
                        {
                            ec.Dispose();
                            throw;
                        }
                    }

                case "RSA" when alg is null or Rs256:
                    {
                        if (Bytes("n") is not { Length: > 0 } n || Bytes("e") is not { Length: > 0 and <= 8 } e)
                        {
                            return null;
                        }

                        var rsa = RSA.Create();
                        try
                        {
                            rsa.ImportParameters(new RSAParameters { Modulus = n.AsSpan().TrimStart((byte)0).ToArray(), Exponent = e });
                            return FromRsa(rsa, kid);
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
        catch (Exception ex) when (ex is CryptographicException or ProtocolException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>
    /// The signature keys of a JWKS document ({"keys":[...]}); keys this verifier cannot use are skipped. Throws
    /// <see cref="ProtocolException"/> (<see cref="ProtocolError.JwksMalformed"/>) when the document is not a JWKS.
    /// The caller disposes the keys.
    /// </summary>
    public static IReadOnlyList<JwsVerificationKey> ParseSet(ReadOnlyMemory<byte> utf8Json)
    {
        if (utf8Json.Length > Jwks.MaximumDocumentLength * 4)
        {
            throw new ProtocolException(ProtocolError.JwksMalformed, $"JWKS is longer than {Jwks.MaximumDocumentLength * 4} bytes");
        }

        using var doc = StrictJson.ParseObject(utf8Json, ProtocolError.JwksMalformed, "JWKS");
        if (!doc.RootElement.TryGetProperty("keys", out var array) || array.ValueKind != JsonValueKind.Array)
        {
            throw new ProtocolException(ProtocolError.JwksMalformed, "JWKS has no \"keys\" array");
        }

        var keys = new List<JwsVerificationKey>();
        foreach (var k in array.EnumerateArray())
        {
            if (TryFromJwk(k) is { } key)
            {
                keys.Add(key);
            }
        }

        return keys;
    }

    /// <summary>Whether <paramref name="signature"/> is this key's signature over <paramref name="signingInput"/>.</summary>
    public bool Verify(ReadOnlySpan<byte> signingInput, ReadOnlySpan<byte> signature) =>
        _ec is not null
            ? signature.Length == 64 && _ec.VerifyData(signingInput, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation)
            : signature.Length == _rsa!.KeySize / 8 && _rsa.VerifyData(signingInput, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);

    public void Dispose()
    {
        _ec?.Dispose();
        _rsa?.Dispose();
    }
}

/// <summary>
/// A compact JWS (RFC 7515 §7.1) split and decoded strictly, before any signature check: three segments of strict
/// base64url, a header and a payload that are JSON objects without repeated members, no "crit" header.
/// Its messages never quote the token.
/// </summary>
public sealed class CompactJws : IDisposable
{
    private readonly JsonDocument _header;
    private readonly JsonDocument _payload;

    private CompactJws(JsonDocument header, JsonDocument payload, byte[] signingInput, byte[] signature, string algorithm, string? keyId)
    {
        _header = header;
        _payload = payload;
        SigningInput = signingInput;
        Signature = signature;
        Algorithm = algorithm;
        KeyId = keyId;
    }

    /// <summary>The header's "alg".</summary>
    public string Algorithm { get; }

    /// <summary>The header's "kid", or null.</summary>
    public string? KeyId { get; }

    public JsonElement Header => _header.RootElement;

    /// <summary>The payload as a JSON object (not yet trusted: check the signature first).</summary>
    public JsonElement Payload => _payload.RootElement;

    /// <summary>ASCII(header segment '.' payload segment).</summary>
    public byte[] SigningInput { get; }

    public byte[] Signature { get; }

    /// <summary>Decodes a token of at most <paramref name="maximumLength"/> characters; throws <see cref="ProtocolException"/> (TokenMalformed).</summary>
    public static CompactJws Decode(string token, int maximumLength)
    {
        ArgumentNullException.ThrowIfNull(token);
        const ProtocolError Bad = ProtocolError.TokenMalformed;
        if (token.Length > maximumLength)
        {
            throw new ProtocolException(Bad, $"token is longer than {maximumLength} characters");
        }

        var parts = token.Split('.');
        if (parts.Length != 3)
        {
            throw new ProtocolException(Bad, $"token must have 3 segments, has {parts.Length}");
        }

        var header = StrictJson.ParseObject(Base64UrlStrict.Decode(parts[0], Bad, "token header"), Bad, "token header");
        JsonDocument? payload = null;
        try
        {
            var h = header.RootElement;
            var alg = StrictJson.Read(() => StrictJson.RequiredString(h, "alg", Bad, "token header"), Bad, "token header");
            var kid = StrictJson.Read(() => StrictJson.OptionalString(h, "kid", Bad, "token header"), Bad, "token header");
            if (h.TryGetProperty("crit", out _))
            {
                throw new ProtocolException(Bad, "no critical header extension is understood");
            }

            payload = StrictJson.ParseObject(Base64UrlStrict.Decode(parts[1], Bad, "token payload"), Bad, "token payload");
            var signature = Base64UrlStrict.Decode(parts[2], Bad, "token signature");
            var signingInput = Encoding.ASCII.GetBytes(token[..(parts[0].Length + 1 + parts[1].Length)]);
            return new CompactJws(header, payload, signingInput, signature, alg, kid);
        }
        catch
        {
            header.Dispose();
            payload?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Verifies the signature with the candidate keys whose algorithm equals the header's "alg" (and whose kid equals
    /// the header's, when both have one). Throws <see cref="ProtocolException"/>: TokenAlgorithmNotAllowed,
    /// TokenKeyUnknown (no candidate) or TokenSignatureInvalid.
    /// </summary>
    public void VerifySignature(IReadOnlyList<JwsVerificationKey> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (Algorithm is not (JoseAlgorithms.Es256 or JwsVerificationKey.Rs256))
        {
            throw new ProtocolException(ProtocolError.TokenAlgorithmNotAllowed, "\"alg\" must be ES256 or RS256");
        }

        var candidates = keys.Where(k => k.Algorithm == Algorithm && (KeyId is null || k.KeyId is null || k.KeyId == KeyId)).ToList();
        if (candidates.Count == 0)
        {
            throw new ProtocolException(ProtocolError.TokenKeyUnknown, "no key of the issuer matches the token's \"kid\" and \"alg\"");
        }

        if (!candidates.Any(k => k.Verify(SigningInput, Signature)))
        {
            throw new ProtocolException(ProtocolError.TokenSignatureInvalid, "signature does not verify");
        }
    }

    public void Dispose()
    {
        _header.Dispose();
        _payload.Dispose();
    }
}
