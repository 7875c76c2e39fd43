using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Protocol;

/// <summary>
/// The agent's side: decrypts a compact JWE made by <see cref="JweEncryptor"/>, strictly. Only ECDH-ES+A256KW
/// (for an EC private key) or RSA-OAEP-256 (for an RSA private key) with A256GCM; "zip" and any "crit" are refused;
/// every segment must have its exact size; "epk" must be a valid point on the recipient key's curve.
/// Any failure to recover the content key or to verify the tag is reported as one code,
/// <see cref="ProtocolError.JweDecryptionFailed"/>, so the errors do not tell an attacker which step failed.
/// The caller owns the returned plaintext and should zero it after use.
/// </summary>
public static class JweDecryptor
{
    /// <summary>The longest compact JWE accepted, in characters.</summary>
    public const int MaximumCompactLength = 64 * 1024;

    private const ProtocolError Bad = ProtocolError.JweMalformed;

    /// <summary>Decrypts a JWE encrypted to an EC key with ECDH-ES+A256KW.</summary>
    public static byte[] Decrypt(string compact, ECDiffieHellman privateKey) => Decrypt(compact, privateKey, out _);

    /// <summary>Decrypts a JWE encrypted to an EC key with ECDH-ES+A256KW, returning the header's "kid" (or null).</summary>
    public static byte[] Decrypt(string compact, ECDiffieHellman privateKey, out string? keyId)
    {
        ArgumentNullException.ThrowIfNull(privateKey);
        var curve = RecipientCurve(privateKey);
        var parts = Split(compact);
        var h = ReadHeader(parts[0], JoseAlgorithms.EcdhEsA256Kw);
        keyId = h.Kid;
        if (h.Epk is null)
        {
            throw new ProtocolException(ProtocolError.JweEphemeralKeyInvalid, "header has no \"epk\"");
        }

        if (h.Epk.CurveInfo != curve)
        {
            throw new ProtocolException(ProtocolError.JweEphemeralKeyInvalid, $"\"epk\" is not on {curve.Name}, the recipient key's curve");
        }

        var encryptedKey = Segment(parts[1], "encrypted key");
        if (encryptedKey.Length != JweEncryptor.WrappedCekLength)
        {
            throw new ProtocolException(ProtocolError.JweEncryptedKeyLengthInvalid, $"encrypted key must be {JweEncryptor.WrappedCekLength} bytes, got {encryptedKey.Length}");
        }

        var (iv, ciphertext, tag) = ContentSegments(parts);

        byte[]? z = null;
        byte[]? kek = null;
        byte[]? cek = null;
        try
        {
            try
            {
                // "epk" was validated as a point on the recipient's curve when the header was read.
                z = EcdhAgreement.DeriveRawSecret(privateKey, h.Epk);
            }
            catch (CryptographicException)
            {
                throw new ProtocolException(ProtocolError.RecipientKeyUnsupported, "the recipient EC key cannot do key agreement (it has no private key?)");
            }

            kek = ConcatKdf.Derive(z, JoseAlgorithms.EcdhEsA256Kw, h.Apu, h.Apv, 256);
            try
            {
                cek = AesKeyWrap.Unwrap(kek, encryptedKey);
            }
            catch (ProtocolException)
            {
                throw Failed();
            }

            return OpenContent(cek, iv, ciphertext, tag, parts[0]);
        }
        finally
        {
            Zero(z);
            Zero(kek);
            Zero(cek);
        }
    }

    /// <summary>Decrypts a JWE encrypted to an RSA key with RSA-OAEP-256.</summary>
    public static byte[] Decrypt(string compact, RSA privateKey) => Decrypt(compact, privateKey, out _);

    /// <summary>Decrypts a JWE encrypted to an RSA key with RSA-OAEP-256, returning the header's "kid" (or null).</summary>
    public static byte[] Decrypt(string compact, RSA privateKey, out string? keyId)
    {
        ArgumentNullException.ThrowIfNull(privateKey);
        if (privateKey.KeySize < Jwk.MinimumRsaModulusBits || privateKey.KeySize > Jwk.MaximumRsaModulusBits)
        {
            throw new ProtocolException(ProtocolError.RecipientKeyUnsupported, "recipient RSA key must have 3072 .. 8192 bits");
        }

        var parts = Split(compact);
        var h = ReadHeader(parts[0], JoseAlgorithms.RsaOaep256);
        keyId = h.Kid;
        var encryptedKey = Segment(parts[1], "encrypted key");
        var modulusBytes = (privateKey.KeySize + 7) / 8;
        if (encryptedKey.Length != modulusBytes)
        {
            throw new ProtocolException(ProtocolError.JweEncryptedKeyLengthInvalid, $"encrypted key must be {modulusBytes} bytes, got {encryptedKey.Length}");
        }

        var (iv, ciphertext, tag) = ContentSegments(parts);

        // RFC 7516 §11.5: on an OAEP failure continue with a random key, so the outcome (and the error) is the
        // same as for a bad tag and the recipient is no padding oracle.
        byte[] cek;
        try
        {
            cek = privateKey.Decrypt(encryptedKey, RSAEncryptionPadding.OaepSHA256);
            if (cek.Length != JweEncryptor.CekLength)
            {
                Zero(cek);
                cek = RandomNumberGenerator.GetBytes(JweEncryptor.CekLength);
            }
        }
        catch (CryptographicException)
        {
            cek = RandomNumberGenerator.GetBytes(JweEncryptor.CekLength);
        }

        try
        {
            return OpenContent(cek, iv, ciphertext, tag, parts[0]);
        }
        finally
        {
            Zero(cek);
        }
    }

    private static EcCurveInfo RecipientCurve(ECDiffieHellman privateKey)
    {
        try
        {
            // By the curve's identity, not its size: brainpoolP256r1 is 256 bits too.
            return Jwk.FromPublicKey(privateKey).CurveInfo!;
        }
        catch (ProtocolException)
        {
            throw new ProtocolException(ProtocolError.RecipientKeyUnsupported, "recipient EC key is not P-256 or P-384");
        }
    }

    private static string[] Split(string compact)
    {
        ArgumentNullException.ThrowIfNull(compact);
        if (compact.Length > MaximumCompactLength)
        {
            throw new ProtocolException(Bad, $"compact JWE is longer than {MaximumCompactLength} characters");
        }

        var parts = compact.Split('.');
        if (parts.Length != 5)
        {
            throw new ProtocolException(Bad, $"compact JWE must have 5 segments, has {parts.Length}");
        }

        return parts;
    }

    private static byte[] Segment(string text, string name) => Base64UrlStrict.Decode(text, Bad, name);

    private static (byte[] Iv, byte[] Ciphertext, byte[] Tag) ContentSegments(string[] parts)
    {
        var iv = Segment(parts[2], "IV");
        if (iv.Length != JweEncryptor.IvLength)
        {
            throw new ProtocolException(ProtocolError.JweIvLengthInvalid, $"IV must be {JweEncryptor.IvLength} bytes, got {iv.Length}");
        }

        var ciphertext = Segment(parts[3], "ciphertext");
        var tag = Segment(parts[4], "tag");
        if (tag.Length != JweEncryptor.TagLength)
        {
            throw new ProtocolException(ProtocolError.JweTagLengthInvalid, $"tag must be {JweEncryptor.TagLength} bytes, got {tag.Length}");
        }

        return (iv, ciphertext, tag);
    }

    private static byte[] OpenContent(byte[] cek, byte[] iv, byte[] ciphertext, byte[] tag, string protectedB64)
    {
        // AAD is the protected header exactly as received (its base64url characters, ASCII).
        var aad = Encoding.ASCII.GetBytes(protectedB64);
        var plaintext = new byte[ciphertext.Length];
        try
        {
            using var gcm = new AesGcm(cek, JweEncryptor.TagLength);
            gcm.Decrypt(iv, ciphertext, tag, plaintext, aad);
            return plaintext;
        }
        catch (CryptographicException)
        {
            Zero(plaintext);
            throw Failed();
        }
    }

    private static Header ReadHeader(string protectedB64, string expectedAlg)
    {
        if (protectedB64.Length == 0)
        {
            throw new ProtocolException(Bad, "protected header is empty");
        }

        var json = Segment(protectedB64, "protected header");
        using var doc = StrictJson.ParseObject(json, Bad, "protected header");
        var o = doc.RootElement;
        return StrictJson.Read(() => ReadHeaderCore(o, expectedAlg), Bad, "protected header");
    }

    private static Header ReadHeaderCore(JsonElement o, string expectedAlg)
    {
        var alg = StrictJson.RequiredString(o, "alg", Bad, "protected header");
        if (!string.Equals(alg, expectedAlg, StringComparison.Ordinal))
        {
            throw new ProtocolException(ProtocolError.JweAlgorithmUnsupported, $"\"alg\" must be {expectedAlg} for this recipient key");
        }

        var enc = StrictJson.RequiredString(o, "enc", Bad, "protected header");
        if (!string.Equals(enc, JoseAlgorithms.A256Gcm, StringComparison.Ordinal))
        {
            throw new ProtocolException(ProtocolError.JweEncryptionUnsupported, "\"enc\" must be A256GCM");
        }

        if (o.TryGetProperty("zip", out _))
        {
            throw new ProtocolException(ProtocolError.JweCompressionNotAllowed, "\"zip\" is not allowed");
        }

        if (o.TryGetProperty("crit", out _))
        {
            throw new ProtocolException(ProtocolError.JweCriticalHeaderUnsupported, "no critical header extension is understood");
        }

        var kid = StrictJson.OptionalString(o, "kid", Bad, "protected header");
        Jwk? epk = null;
        byte[] apu = [];
        byte[] apv = [];
        if (string.Equals(expectedAlg, JoseAlgorithms.EcdhEsA256Kw, StringComparison.Ordinal))
        {
            if (o.TryGetProperty("epk", out var epkElement))
            {
                try
                {
                    epk = Jwk.FromJsonElement(epkElement);
                }
                catch (ProtocolException e)
                {
                    throw new ProtocolException(ProtocolError.JweEphemeralKeyInvalid, $"\"epk\" is not a valid public key ({e.Error})");
                }

                if (epk.KeyType != JwkKeyType.Ec)
                {
                    throw new ProtocolException(ProtocolError.JweEphemeralKeyInvalid, "\"epk\" is not an EC key");
                }
            }

            var apuText = StrictJson.OptionalString(o, "apu", Bad, "protected header");
            var apvText = StrictJson.OptionalString(o, "apv", Bad, "protected header");
            apu = apuText is null ? [] : Segment(apuText, "apu");
            apv = apvText is null ? [] : Segment(apvText, "apv");
        }

        return new Header(kid, epk, apu, apv);
    }

    private static ProtocolException Failed() =>
        new(ProtocolError.JweDecryptionFailed, "the JWE could not be decrypted with this key (wrong key or altered JWE)");

    private static void Zero(byte[]? b)
    {
        if (b is not null)
        {
            CryptographicOperations.ZeroMemory(b);
        }
    }

    private sealed record Header(string? Kid, Jwk? Epk, byte[] Apu, byte[] Apv);
}
