using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Protocol;

/// <summary>
/// The broker's published token-signing keys (RFC 7517 §5 JWK Set): public EC P-256 keys only, each with
/// "kid" = its RFC 7638 thumbprint, "alg":"ES256", "use":"sig".
/// </summary>
public sealed class Jwks
{
    /// <summary>The longest JWKS document accepted, in bytes.</summary>
    public const int MaximumDocumentLength = 64 * 1024;

    private const ProtocolError Bad = ProtocolError.JwksMalformed;

    private readonly List<Jwk> _keys;

    private Jwks(List<Jwk> keys) => _keys = keys;

    public IReadOnlyList<Jwk> Keys => _keys;

    /// <summary>Publishes the public halves of the given signing keys (ECDSA P-256); the private halves never enter the set.</summary>
    public static Jwks FromSigningKeys(IEnumerable<ECDsa> signingKeys)
    {
        ArgumentNullException.ThrowIfNull(signingKeys);
        var keys = new List<Jwk>();
        foreach (var k in signingKeys)
        {
            keys.Add(SigningJwk(k));
        }

        return FromKeys(keys);
    }

    /// <summary>Parses a published JWKS strictly (the form <see cref="ToJson"/> writes).</summary>
    public static Jwks Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var bytes = Encoding.UTF8.GetBytes(json);
        if (bytes.Length > MaximumDocumentLength)
        {
            throw new ProtocolException(Bad, $"JWKS is longer than {MaximumDocumentLength} bytes");
        }

        using var doc = StrictJson.ParseObject(bytes, Bad, "JWKS");
        if (!doc.RootElement.TryGetProperty("keys", out var arr) || arr.ValueKind != JsonValueKind.Array)
        {
            throw new ProtocolException(Bad, "JWKS has no \"keys\" array");
        }

        var keys = new List<Jwk>();
        foreach (var e in arr.EnumerateArray())
        {
            Jwk k;
            try
            {
                k = Jwk.FromJsonElement(e);
            }
            catch (ProtocolException ex)
            {
                throw new ProtocolException(Bad, $"JWKS key {keys.Count} is not a valid public key ({ex.Error})");
            }

            keys.Add(k);
        }

        return FromKeys(keys);
    }

    /// <summary>The key with this kid, or null.</summary>
    public Jwk? Find(string kid)
    {
        ArgumentNullException.ThrowIfNull(kid);
        return _keys.Find(k => string.Equals(k.KeyId, kid, StringComparison.Ordinal));
    }

    /// <summary>The set as compact JSON: {"keys":[...]}.</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, StrictJson.WriterOptions))
        {
            w.WriteStartObject();
            w.WriteStartArray("keys");
            foreach (var k in _keys)
            {
                k.WriteTo(w, includeMetadata: true);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>The published form of one signing key: public P-256, kid = thumbprint, alg ES256, use sig.</summary>
    internal static Jwk SigningJwk(ECDsa key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.KeySize != 256)
        {
            throw new ProtocolException(ProtocolError.TokenParametersInvalid, "token-signing key must be ECDSA P-256");
        }

        Jwk jwk;
        try
        {
            jwk = Jwk.FromPublicKey(key);
        }
        catch (ProtocolException)
        {
            throw new ProtocolException(ProtocolError.TokenParametersInvalid, "token-signing key must be ECDSA P-256");
        }

        if (jwk.CurveInfo != EcCurveInfo.P256)
        {
            throw new ProtocolException(ProtocolError.TokenParametersInvalid, "token-signing key must be ECDSA P-256");
        }

        return jwk.WithMetadata(jwk.Thumbprint(), JoseAlgorithms.Es256, "sig");
    }

    private static Jwks FromKeys(List<Jwk> keys)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var k in keys)
        {
            if (k.KeyType != JwkKeyType.Ec || k.CurveInfo != EcCurveInfo.P256)
            {
                throw new ProtocolException(Bad, "every JWKS key must be EC P-256");
            }

            if (k.KeyId is null || !string.Equals(k.KeyId, k.Thumbprint(), StringComparison.Ordinal))
            {
                throw new ProtocolException(Bad, "every JWKS key must have \"kid\" equal to its RFC 7638 thumbprint");
            }

            if (!seen.Add(k.KeyId))
            {
                throw new ProtocolException(Bad, "a kid appears twice in the JWKS");
            }

            try
            {
                k.RequirePurpose(JoseAlgorithms.Es256, "sig");
            }
            catch (ProtocolException)
            {
                throw new ProtocolException(Bad, "a JWKS key's \"alg\"/\"use\" is not ES256/sig");
            }
        }

        return new Jwks(keys);
    }
}
