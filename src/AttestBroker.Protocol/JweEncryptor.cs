using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Protocol;

/// <summary>
/// Encrypts a released key to the pod's public key as an RFC 7516 compact JWE:
/// ECDH-ES+A256KW (EC P-256/P-384; epk in the protected header; Concat KDF with AlgorithmID "ECDH-ES+A256KW",
/// keydatalen 256, apu/apv empty unless given) or RSA-OAEP-256 (RSA ≥ 3072 bits), and A256GCM with the ASCII of
/// the protected header's base64url as AAD.
/// </summary>
public static class JweEncryptor
{
    /// <summary>The largest plaintext accepted (the payload is a key, not a document).</summary>
    public const int MaximumPlaintextLength = 16 * 1024;

    internal const int CekLength = 32;
    internal const int IvLength = 12;
    internal const int TagLength = 16;
    internal const int WrappedCekLength = CekLength + 8;

    /// <summary>Encrypts <paramref name="plaintextKey"/> to <paramref name="recipient"/>; <paramref name="kid"/> goes into the header when not null.</summary>
    public static string Encrypt(ReadOnlySpan<byte> plaintextKey, Jwk recipient, string? kid) =>
        Encrypt(plaintextKey, recipient, kid, default, default);

    /// <summary>As <see cref="Encrypt(ReadOnlySpan{byte}, Jwk, string?)"/>, with agreement PartyUInfo/PartyVInfo (EC only; sent as "apu"/"apv" when not empty).</summary>
    public static string Encrypt(ReadOnlySpan<byte> plaintextKey, Jwk recipient, string? kid, ReadOnlySpan<byte> partyUInfo, ReadOnlySpan<byte> partyVInfo)
    {
        ArgumentNullException.ThrowIfNull(recipient);
        if (plaintextKey.IsEmpty || plaintextKey.Length > MaximumPlaintextLength)
        {
            throw new ProtocolException(ProtocolError.PlaintextLengthInvalid, $"plaintext must be 1 .. {MaximumPlaintextLength} bytes");
        }

        var cek = RandomNumberGenerator.GetBytes(CekLength);
        byte[] encryptedKey;
        string header;
        try
        {
            if (recipient.KeyType == JwkKeyType.Ec)
            {
                recipient.RequirePurpose(JoseAlgorithms.EcdhEsA256Kw, "enc");
                (encryptedKey, header) = WrapEcdh(cek, recipient, kid, partyUInfo, partyVInfo);
            }
            else
            {
                if (!partyUInfo.IsEmpty || !partyVInfo.IsEmpty)
                {
                    throw new ArgumentException("apu/apv apply to ECDH-ES only");
                }

                recipient.RequirePurpose(JoseAlgorithms.RsaOaep256, "enc");
                using var rsa = recipient.CreateRsa();
                encryptedKey = rsa.Encrypt(cek, RSAEncryptionPadding.OaepSHA256);
                header = Header(JoseAlgorithms.RsaOaep256, kid, null, default, default);
            }

            var protectedB64 = Base64UrlStrict.Encode(Encoding.UTF8.GetBytes(header));
            var aad = Encoding.ASCII.GetBytes(protectedB64);
            var iv = RandomNumberGenerator.GetBytes(IvLength);
            var ciphertext = new byte[plaintextKey.Length];
            var tag = new byte[TagLength];
            using (var gcm = new AesGcm(cek, TagLength))
            {
                gcm.Encrypt(iv, plaintextKey, ciphertext, tag, aad);
            }

            return string.Join(
                '.',
                protectedB64,
                Base64UrlStrict.Encode(encryptedKey),
                Base64UrlStrict.Encode(iv),
                Base64UrlStrict.Encode(ciphertext),
                Base64UrlStrict.Encode(tag));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(cek);
        }
    }

    private static (byte[] EncryptedKey, string Header) WrapEcdh(byte[] cek, Jwk recipient, string? kid, ReadOnlySpan<byte> apu, ReadOnlySpan<byte> apv)
    {
        // A fresh ephemeral key per message (ECDH-ES). The recipient's point was validated when its JWK was read;
        // EcdhAgreement does not have OpenSSL check it twice more (see there).
        using var ephemeral = EcdhAgreement.CreateKey(recipient.CurveInfo!.Curve);
        var z = EcdhAgreement.DeriveRawSecret(ephemeral, recipient);
        byte[]? kek = null;
        try
        {
            kek = ConcatKdf.Derive(z, JoseAlgorithms.EcdhEsA256Kw, apu, apv, 256);
            var wrapped = AesKeyWrap.Wrap(kek, cek);
            var epk = Jwk.FromPublicKey(ephemeral);
            return (wrapped, Header(JoseAlgorithms.EcdhEsA256Kw, kid, epk, apu, apv));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(z);
            if (kek is not null)
            {
                CryptographicOperations.ZeroMemory(kek);
            }
        }
    }

    private static string Header(string alg, string? kid, Jwk? epk, ReadOnlySpan<byte> apu, ReadOnlySpan<byte> apv)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, StrictJson.WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("alg", alg);
            w.WriteString("enc", JoseAlgorithms.A256Gcm);
            if (kid is not null)
            {
                w.WriteString("kid", kid);
            }

            if (epk is not null)
            {
                w.WritePropertyName("epk");
                epk.WriteTo(w, includeMetadata: false);
            }

            if (!apu.IsEmpty)
            {
                w.WriteString("apu", Base64UrlStrict.Encode(apu));
            }

            if (!apv.IsEmpty)
            {
                w.WriteString("apv", Base64UrlStrict.Encode(apv));
            }

            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
