using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Protocol;

/// <summary>The two key types the protocol accepts.</summary>
public enum JwkKeyType
{
    /// <summary>"kty":"EC" on P-256 or P-384.</summary>
    Ec,

    /// <summary>"kty":"RSA" with a modulus of 3072 .. 8192 bits.</summary>
    Rsa,
}

/// <summary>
/// A public JSON Web Key (RFC 7517/7518), validated strictly: EC P-256/P-384 with coordinates of the exact field
/// size that lie on the curve, or RSA with a modulus of at least 3072 bits (at most 8192) and an odd exponent
/// 3 .. 2^32-1; base64url strict and minimal; no private members. Optional "kid", "alg" and "use" are kept;
/// other members are ignored, as RFC 7517 §4 requires.
/// </summary>
public sealed class Jwk
{
    /// <summary>The smallest RSA modulus accepted, in bits.</summary>
    public const int MinimumRsaModulusBits = 3072;

    /// <summary>The largest RSA modulus accepted, in bits (bounds the cost of an RSA operation on attacker input).</summary>
    public const int MaximumRsaModulusBits = 8192;

    /// <summary>The longest JWK text accepted by <see cref="Parse(string)"/>, in bytes (an RSA-8192 JWK is about 1.4 KiB).</summary>
    public const int MaximumJsonLength = 16 * 1024;

    private static readonly string[] PrivateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

    private readonly byte[] _a; // EC: x, RSA: n
    private readonly byte[] _b; // EC: y, RSA: e

    private Jwk(JwkKeyType type, EcCurveInfo? curve, byte[] a, byte[] b, string? kid, string? alg, string? use)
    {
        KeyType = type;
        CurveInfo = curve;
        _a = a;
        _b = b;
        KeyId = kid;
        Algorithm = alg;
        Use = use;
    }

    public JwkKeyType KeyType { get; }

    /// <summary>"EC" or "RSA".</summary>
    public string Kty => KeyType == JwkKeyType.Ec ? "EC" : "RSA";

    /// <summary>"P-256" or "P-384" for EC keys, null for RSA.</summary>
    public string? Crv => CurveInfo?.Name;

    /// <summary>EC curve size or RSA modulus size, in bits.</summary>
    public int KeySizeBits => KeyType == JwkKeyType.Ec ? CurveInfo!.KeySizeBits : BitLength(_a);

    public string? KeyId { get; }

    public string? Algorithm { get; }

    public string? Use { get; }

    internal EcCurveInfo? CurveInfo { get; }

    /// <summary>Parses a public JWK from JSON text.</summary>
    public static Jwk Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        return Parse(Encoding.UTF8.GetBytes(json));
    }

    /// <summary>Parses a public JWK from UTF-8 JSON.</summary>
    public static Jwk Parse(ReadOnlySpan<byte> utf8Json) => Parse(utf8Json, MinimumRsaModulusBits);

    /// <summary>Reads a public JWK from an already parsed JSON element (e.g. a member of a request body).</summary>
    public static Jwk FromJsonElement(JsonElement element) => FromJsonElement(element, MinimumRsaModulusBits);

    /// <summary>The public half of an EC key (ECDH or ECDSA), on P-256 or P-384.</summary>
    public static Jwk FromPublicKey(ECAlgorithm key, string? kid = null, string? alg = null, string? use = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        var p = key.ExportParameters(includePrivateParameters: false);
        var curve = (p.Curve.IsNamed ? CurveFromOid(p.Curve.Oid) : null)
            ?? throw new ProtocolException(ProtocolError.JwkUnsupportedCurve, "the key is not on P-256 or P-384");
        return FromEcCoordinates(curve, p.Q.X!, p.Q.Y!, kid, alg, use);
    }

    /// <summary>The public half of an RSA key of 3072 .. 8192 bits.</summary>
    public static Jwk FromPublicKey(RSA key, string? kid = null, string? alg = null, string? use = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        var p = key.ExportParameters(includePrivateParameters: false);
        return FromRsaMembers(TrimLeadingZeros(p.Modulus!), TrimLeadingZeros(p.Exponent!), kid, alg, use, MinimumRsaModulusBits);
    }

    /// <summary>A copy of this key with the given metadata (the key itself, and so its thumbprint, is unchanged).</summary>
    public Jwk WithMetadata(string? kid, string? alg, string? use) => new(KeyType, CurveInfo, _a, _b, kid, alg, use);

    /// <summary>EC x coordinate (copy).</summary>
    public byte[] X => KeyType == JwkKeyType.Ec ? (byte[])_a.Clone() : throw new InvalidOperationException("not an EC key");

    /// <summary>EC y coordinate (copy).</summary>
    public byte[] Y => KeyType == JwkKeyType.Ec ? (byte[])_b.Clone() : throw new InvalidOperationException("not an EC key");

    /// <summary>EC x coordinate, without a copy (EC only).</summary>
    internal ReadOnlySpan<byte> EcX => KeyType == JwkKeyType.Ec ? _a : throw new InvalidOperationException("not an EC key");

    /// <summary>EC y coordinate, without a copy (EC only).</summary>
    internal ReadOnlySpan<byte> EcY => KeyType == JwkKeyType.Ec ? _b : throw new InvalidOperationException("not an EC key");

    /// <summary>RSA modulus, big-endian, minimal (copy).</summary>
    public byte[] N => KeyType == JwkKeyType.Rsa ? (byte[])_a.Clone() : throw new InvalidOperationException("not an RSA key");

    /// <summary>RSA public exponent, big-endian, minimal (copy).</summary>
    public byte[] E => KeyType == JwkKeyType.Rsa ? (byte[])_b.Clone() : throw new InvalidOperationException("not an RSA key");

    /// <summary>
    /// RFC 7638 thumbprint input: the required members only, in lexicographic order, no whitespace.
    /// EC: {"crv","kty","x","y"}; RSA: {"e","kty","n"}.
    /// </summary>
    public string ThumbprintInput() => KeyType == JwkKeyType.Ec
        ? $"{{\"crv\":\"{CurveInfo!.Name}\",\"kty\":\"EC\",\"x\":\"{Base64UrlStrict.Encode(_a)}\",\"y\":\"{Base64UrlStrict.Encode(_b)}\"}}"
        : $"{{\"e\":\"{Base64UrlStrict.Encode(_b)}\",\"kty\":\"RSA\",\"n\":\"{Base64UrlStrict.Encode(_a)}\"}}";

    /// <summary>The RFC 7638 SHA-256 thumbprint as its 32 raw bytes.</summary>
    public byte[] ThumbprintBytes() => SHA256.HashData(Encoding.UTF8.GetBytes(ThumbprintInput()));

    /// <summary>The RFC 7638 SHA-256 thumbprint, base64url (43 characters).</summary>
    public string Thumbprint() => Base64UrlStrict.Encode(ThumbprintBytes());

    /// <summary>True when both describe the same public key (metadata ignored).</summary>
    public bool SameKeyAs(Jwk other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return KeyType == other.KeyType && CurveInfo == other.CurveInfo
            && _a.AsSpan().SequenceEqual(other._a) && _b.AsSpan().SequenceEqual(other._b);
    }

    /// <summary>The JWK as compact JSON: the public members, then "kid", "alg", "use" when set.</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, StrictJson.WriterOptions))
        {
            WriteTo(w, includeMetadata: true);
        }

        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>A new ECDH key object holding this public key (EC only).</summary>
    public ECDiffieHellman CreateECDiffieHellman() => WithEcPublicKey(ECDiffieHellman.Create());

    /// <summary>A new ECDSA key object holding this public key (EC only).</summary>
    public ECDsa CreateECDsa() => WithEcPublicKey(ECDsa.Create());

    /// <summary>Imports this public key into <paramref name="key"/>, disposing it when the import fails.</summary>
    private T WithEcPublicKey<T>(T key)
        where T : ECAlgorithm
    {
        try
        {
            key.ImportParameters(EcParameters());
            return key;
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>A new RSA key object holding this public key (RSA only).</summary>
    public RSA CreateRsa()
    {
        if (KeyType != JwkKeyType.Rsa)
        {
            throw new InvalidOperationException("not an RSA key");
        }

        var k = RSA.Create();
        try
        {
            k.ImportParameters(new RSAParameters { Modulus = _a, Exponent = _b });
            return k;
        }
        catch
        {
            k.Dispose();
            throw;
        }
    }

    internal void WriteTo(Utf8JsonWriter w, bool includeMetadata)
    {
        w.WriteStartObject();
        w.WriteString("kty", Kty);
        if (KeyType == JwkKeyType.Ec)
        {
            w.WriteString("crv", CurveInfo!.Name);
            w.WriteString("x", Base64UrlStrict.Encode(_a));
            w.WriteString("y", Base64UrlStrict.Encode(_b));
        }
        else
        {
            w.WriteString("n", Base64UrlStrict.Encode(_a));
            w.WriteString("e", Base64UrlStrict.Encode(_b));
        }

        if (includeMetadata)
        {
            if (KeyId is not null)
            {
                w.WriteString("kid", KeyId);
            }

            if (Algorithm is not null)
            {
                w.WriteString("alg", Algorithm);
            }

            if (Use is not null)
            {
                w.WriteString("use", Use);
            }
        }

        w.WriteEndObject();
    }

    /// <summary>Fails with <see cref="ProtocolError.JwkPurposeMismatch"/> unless "alg"/"use" are absent or equal the given ones.</summary>
    internal void RequirePurpose(string alg, string use)
    {
        if (Algorithm is not null && !string.Equals(Algorithm, alg, StringComparison.Ordinal))
        {
            throw new ProtocolException(ProtocolError.JwkPurposeMismatch, $"the key's \"alg\" is not {alg}");
        }

        if (Use is not null && !string.Equals(Use, use, StringComparison.Ordinal))
        {
            throw new ProtocolException(ProtocolError.JwkPurposeMismatch, $"the key's \"use\" is not \"{use}\"");
        }
    }

    internal static Jwk Parse(ReadOnlySpan<byte> utf8Json, int minimumRsaBits)
    {
        if (utf8Json.Length > MaximumJsonLength)
        {
            throw new ProtocolException(ProtocolError.JwkMalformed, $"JWK is longer than {MaximumJsonLength} bytes");
        }

        using var doc = StrictJson.ParseObject(utf8Json.ToArray(), ProtocolError.JwkMalformed, "JWK");
        return FromJsonElement(doc.RootElement, minimumRsaBits);
    }

    internal static Jwk FromJsonElement(JsonElement o, int minimumRsaBits) =>
        StrictJson.Read(() => FromJsonElementCore(o, minimumRsaBits), ProtocolError.JwkMalformed, "JWK");

    private static Jwk FromJsonElementCore(JsonElement o, int minimumRsaBits)
    {
        const ProtocolError Bad = ProtocolError.JwkMalformed;
        if (o.ValueKind != JsonValueKind.Object)
        {
            throw new ProtocolException(Bad, "JWK is not a JSON object");
        }

        foreach (var m in PrivateMembers)
        {
            if (o.TryGetProperty(m, out _))
            {
                throw new ProtocolException(ProtocolError.JwkContainsPrivateMembers, $"public JWK carries private member \"{m}\"");
            }
        }

        var kty = StrictJson.RequiredString(o, "kty", Bad, "JWK");
        var kid = StrictJson.OptionalString(o, "kid", Bad, "JWK");
        var alg = StrictJson.OptionalString(o, "alg", Bad, "JWK");
        var use = StrictJson.OptionalString(o, "use", Bad, "JWK");
        switch (kty)
        {
            case "EC":
                {
                    var crv = StrictJson.RequiredString(o, "crv", Bad, "JWK");
                    var curve = EcCurveInfo.FromName(crv)
                        ?? throw new ProtocolException(ProtocolError.JwkUnsupportedCurve, "\"crv\" is not P-256 or P-384");
                    var x = Base64UrlStrict.Decode(StrictJson.RequiredString(o, "x", Bad, "JWK"), Bad, "JWK \"x\"");
                    var y = Base64UrlStrict.Decode(StrictJson.RequiredString(o, "y", Bad, "JWK"), Bad, "JWK \"y\"");
                    return FromEcCoordinates(curve, x, y, kid, alg, use);
                }

            case "RSA":
                {
                    var n = Base64UrlStrict.Decode(StrictJson.RequiredString(o, "n", Bad, "JWK"), Bad, "JWK \"n\"");
                    var e = Base64UrlStrict.Decode(StrictJson.RequiredString(o, "e", Bad, "JWK"), Bad, "JWK \"e\"");
                    return FromRsaMembers(n, e, kid, alg, use, minimumRsaBits);
                }

            default:
                throw new ProtocolException(ProtocolError.JwkUnsupportedKeyType, "\"kty\" is not EC or RSA");
        }
    }

    private static Jwk FromEcCoordinates(EcCurveInfo curve, byte[] x, byte[] y, string? kid, string? alg, string? use)
    {
        if (x.Length != curve.CoordinateLength || y.Length != curve.CoordinateLength)
        {
            throw new ProtocolException(
                ProtocolError.JwkCoordinateLengthInvalid,
                $"{curve.Name} coordinates must be {curve.CoordinateLength} bytes each (x has {x.Length}, y has {y.Length})");
        }

        if (!curve.IsOnCurve(x, y))
        {
            throw new ProtocolException(ProtocolError.JwkPointNotOnCurve, $"(x, y) is not a point on {curve.Name}");
        }

        return new Jwk(JwkKeyType.Ec, curve, (byte[])x.Clone(), (byte[])y.Clone(), kid, alg, use);
    }

    private static Jwk FromRsaMembers(byte[] n, byte[] e, string? kid, string? alg, string? use, int minimumBits)
    {
        if (n.Length == 0 || n[0] == 0 || (n[^1] & 1) == 0)
        {
            throw new ProtocolException(ProtocolError.JwkRsaModulusInvalid, "\"n\" must be a minimal odd positive integer");
        }

        var bits = BitLength(n);
        if (bits < minimumBits)
        {
            throw new ProtocolException(ProtocolError.JwkRsaModulusTooShort, $"RSA modulus has {bits} bits; at least {minimumBits} required");
        }

        if (bits > MaximumRsaModulusBits)
        {
            throw new ProtocolException(ProtocolError.JwkRsaModulusInvalid, $"RSA modulus has {bits} bits; at most {MaximumRsaModulusBits} accepted");
        }

        if (e.Length == 0 || e.Length > 4 || e[0] == 0)
        {
            throw new ProtocolException(ProtocolError.JwkRsaExponentInvalid, "\"e\" must be a minimal integer of at most 4 bytes");
        }

        Span<byte> e4 = stackalloc byte[4];
        e.CopyTo(e4[(4 - e.Length)..]);
        var ev = BinaryPrimitives.ReadUInt32BigEndian(e4);
        if (ev < 3 || (ev & 1) == 0)
        {
            throw new ProtocolException(ProtocolError.JwkRsaExponentInvalid, "\"e\" must be odd and at least 3");
        }

        return new Jwk(JwkKeyType.Rsa, null, (byte[])n.Clone(), (byte[])e.Clone(), kid, alg, use);
    }

    private ECParameters EcParameters()
    {
        if (KeyType != JwkKeyType.Ec)
        {
            throw new InvalidOperationException("not an EC key");
        }

        return new ECParameters { Curve = CurveInfo!.Curve, Q = new ECPoint { X = _a, Y = _b } };
    }

    private static EcCurveInfo? CurveFromOid(Oid oid) => oid.Value switch
    {
        "1.2.840.10045.3.1.7" => EcCurveInfo.P256,
        "1.3.132.0.34" => EcCurveInfo.P384,
        _ => oid.FriendlyName switch
        {
            "nistP256" or "ECDSA_P256" or "ECDH_P256" or "prime256v1" or "secp256r1" => EcCurveInfo.P256,
            "nistP384" or "ECDSA_P384" or "ECDH_P384" or "secp384r1" => EcCurveInfo.P384,
            _ => null,
        },
    };

    private static byte[] TrimLeadingZeros(byte[] v)
    {
        var i = 0;
        while (i < v.Length - 1 && v[i] == 0)
        {
            i++;
        }

        return i == 0 ? v : v[i..];
    }

    private static int BitLength(byte[] v)
    {
        var i = 0;
        while (i < v.Length && v[i] == 0)
        {
            i++;
        }

        if (i == v.Length)
        {
            return 0;
        }

        return ((v.Length - i - 1) * 8) + (32 - System.Numerics.BitOperations.LeadingZeroCount((uint)v[i]));
    }
}
