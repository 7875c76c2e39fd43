using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using AttestBroker.Protocol;

namespace AttestBroker.Keys.Backends.AzureKeyVault;

/// <summary>How a Secure Key Release answer is checked.</summary>
public sealed class SecureKeyReleaseOptions
{
    /// <summary>The <c>enc</c> asked for: RSA_AES_KEY_WRAP_256 (default), RSA_AES_KEY_WRAP_384 or CKM_RSA_AES_KEY_WRAP (RSA-OAEP with SHA-1).</summary>
    public string Encryption { get; set; } = SecureKeyRelease.RsaAesKeyWrap256;

    /// <summary>
    /// Roots the release JWS's x5c chain must end in; null means the operating system's public roots (Key Vault
    /// signs releases with a certificate from a public CA naming the vault's host).
    /// </summary>
    public X509Certificate2Collection? TrustedRoots { get; set; }

    /// <summary>Revocation checking of the x5c chain; Online by default (fail closed when the CRL cannot be fetched).</summary>
    public X509RevocationMode RevocationMode { get; set; } = X509RevocationMode.Online;
}

/// <summary>
/// Opens a Key Vault Secure Key Release answer: verifies the compact JWS (RS256) with the leaf of its x5c chain,
/// the chain to a trusted root at the given time, the leaf naming the vault's host and the x5t#S256 thumbprint;
/// then takes <c>response.key.key.key_hsm</c>, whose ciphertext is RSA-OAEP (SHA-256, SHA-384 or SHA-1 by
/// <c>enc</c>) of an ephemeral AES key followed by AES Key Wrap with Padding (RFC 5649) of the target key, and
/// unwraps it with the broker's RSA private key. Every failure is <see cref="BackendError.ReleaseInvalid"/>.
/// </summary>
public static class SecureKeyRelease
{
    public const string RsaAesKeyWrap256 = "RSA_AES_KEY_WRAP_256";
    public const string RsaAesKeyWrap384 = "RSA_AES_KEY_WRAP_384";
    public const string CkmRsaAesKeyWrap = "CKM_RSA_AES_KEY_WRAP";
    private const int MaxTokenLength = 256 * 1024;

    public static RSAEncryptionPadding PaddingFor(string enc) => enc switch
    {
        RsaAesKeyWrap256 => RSAEncryptionPadding.OaepSHA256,
        RsaAesKeyWrap384 => RSAEncryptionPadding.OaepSHA384,
        CkmRsaAesKeyWrap => RSAEncryptionPadding.OaepSHA1,
        _ => throw new ArgumentException($"unknown release encryption '{enc}'", nameof(enc)),
    };

    /// <summary>
    /// Verifies <paramref name="jws"/> and returns the released key's bytes (the caller zeroes them). The released
    /// key must be <paramref name="expectedKid"/> (name and version) of the vault at <paramref name="vaultUri"/>.
    /// </summary>
    public static byte[] Open(string jws, Uri vaultUri, string expectedKid, RSA wrappingKey, SecureKeyReleaseOptions options, DateTimeOffset now, string backend = "azure-skr")
    {
        ArgumentNullException.ThrowIfNull(jws);
        ArgumentNullException.ThrowIfNull(vaultUri);
        ArgumentNullException.ThrowIfNull(wrappingKey);
        ArgumentNullException.ThrowIfNull(options);
        KeyBackendException Invalid(string what, Exception? inner = null) => new(BackendError.ReleaseInvalid, backend, $"Key Vault release of {expectedKid}: {what}", inner);

        CompactJws token;
        try
        {
            token = CompactJws.Decode(jws, MaxTokenLength);
        }
        catch (ProtocolException e)
        {
            throw Invalid($"the answer is not a compact JWS ({e.Message})", e);
        }

        using (token)
        {
            if (token.Algorithm != JwsVerificationKey.Rs256)
            {
                throw Invalid($"the JWS is signed with {token.Algorithm}, not RS256");
            }

            List<X509Certificate2> certs = ReadX5c(token.Header, Invalid);
            try
            {
                X509Certificate2 leaf = certs[0];
                VerifyChain(leaf, certs, options, now, Invalid);
                if (!leaf.MatchesHostname(vaultUri.Host))
                {
                    throw Invalid($"the signing certificate ({leaf.Subject}) does not name {vaultUri.Host}");
                }

                if (KeyVaultKeyClient.Str(token.Header, "x5t#S256") is { } x5t
                    && (!KeyVaultKeyClient.TryB64Url(x5t, out byte[] thumb) || !CryptographicOperations.FixedTimeEquals(thumb, SHA256.HashData(leaf.RawData))))
                {
                    throw Invalid("x5t#S256 is not the SHA-256 of the signing certificate");
                }

                using RSA? rsa = leaf.GetRSAPublicKey();
                if (rsa is null)
                {
                    throw Invalid("the signing certificate holds no RSA key");
                }

                try
                {
                    using JwsVerificationKey key = JwsVerificationKey.FromRsa(RSA.Create(rsa.ExportParameters(false)), null);
                    token.VerifySignature([key]);
                }
                catch (ProtocolException e)
                {
                    throw Invalid($"the JWS signature does not verify under its x5c leaf ({e.Message})", e);
                }
            }
            finally
            {
                foreach (X509Certificate2 c in certs)
                {
                    c.Dispose();
                }
            }

            return Unwrap(token.Payload, expectedKid, wrappingKey, options.Encryption, Invalid);
        }
    }

    private static List<X509Certificate2> ReadX5c(JsonElement header, Func<string, Exception?, KeyBackendException> invalid)
    {
        if (!header.TryGetProperty("x5c", out var x5c) || x5c.ValueKind != JsonValueKind.Array || x5c.GetArrayLength() is 0 or > 10)
        {
            throw invalid("the JWS header has no x5c chain", null);
        }

        var certs = new List<X509Certificate2>();
        try
        {
            foreach (JsonElement c in x5c.EnumerateArray())
            {
                // x5c members are standard base64 (RFC 7515 §4.1.6), not base64url.
                byte[] der = c.ValueKind == JsonValueKind.String ? Convert.FromBase64String(c.GetString()!) : throw new FormatException("not a string");
                certs.Add(X509CertificateLoader.LoadCertificate(der));
            }
        }
        catch (Exception e) when (e is FormatException or CryptographicException)
        {
            foreach (X509Certificate2 c in certs)
            {
                c.Dispose();
            }

            throw invalid("an x5c member is not a base64 DER certificate", e);
        }

        return certs;
    }

    private static void VerifyChain(X509Certificate2 leaf, List<X509Certificate2> certs, SecureKeyReleaseOptions options, DateTimeOffset now, Func<string, Exception?, KeyBackendException> invalid)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.RevocationMode = options.RevocationMode;
        chain.ChainPolicy.RevocationFlag = X509RevocationFlag.ExcludeRoot;
        chain.ChainPolicy.ExtraStore.AddRange(certs.Skip(1).ToArray());
        if (options.TrustedRoots is { Count: > 0 } roots)
        {
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        }

        if (!chain.Build(leaf))
        {
            string status = string.Join("; ", chain.ChainStatus.Select(s => s.Status.ToString()).Distinct());
            throw invalid($"the x5c chain does not verify to a trusted root ({status})", null);
        }
    }

    private static byte[] Unwrap(JsonElement payload, string expectedKid, RSA wrappingKey, string enc, Func<string, Exception?, KeyBackendException> invalid)
    {
        JsonElement key = payload;
        foreach (string step in (string[])["response", "key", "key"])
        {
            if (key.ValueKind != JsonValueKind.Object || !key.TryGetProperty(step, out key))
            {
                throw invalid("the JWS payload has no response.key.key", null);
            }
        }

        if (KeyVaultKeyClient.Str(key, "kid") is not { } kid || !string.Equals(kid, expectedKid, StringComparison.Ordinal))
        {
            throw invalid("the released key is not the key asked for", null);
        }

        if (KeyVaultKeyClient.Str(key, "key_hsm") is not { } keyHsm || !KeyVaultKeyClient.TryB64Url(keyHsm, out byte[] blobJson))
        {
            throw invalid("the released key has no base64url key_hsm", null);
        }

        byte[] ciphertext;
        try
        {
            using JsonDocument blob = JsonDocument.Parse(blobJson);
            JsonElement header = blob.RootElement.ValueKind == JsonValueKind.Object && blob.RootElement.TryGetProperty("header", out var h) ? h : default;
            string? blobEnc = header.ValueKind == JsonValueKind.Object ? KeyVaultKeyClient.Str(header, "enc") : null;
            if (blobEnc != enc)
            {
                throw invalid($"key_hsm is wrapped with {blobEnc ?? "no enc"}, not the {enc} asked for", null);
            }

            if (KeyVaultKeyClient.Str(blob.RootElement, "ciphertext") is not { } ct || !KeyVaultKeyClient.TryB64Url(ct, out ciphertext))
            {
                throw invalid("key_hsm has no base64url ciphertext", null);
            }
        }
        catch (JsonException e)
        {
            throw invalid("key_hsm is not JSON", e);
        }

        int modulus = wrappingKey.KeySize / 8;
        if (ciphertext.Length <= modulus + 8)
        {
            throw invalid($"key_hsm's ciphertext ({ciphertext.Length} bytes) is too short for RSA-{wrappingKey.KeySize} then RFC 5649", null);
        }

        byte[] aesKey;
        try
        {
            aesKey = wrappingKey.Decrypt(ciphertext.AsSpan(0, modulus).ToArray(), PaddingFor(enc));
        }
        catch (CryptographicException e)
        {
            throw invalid("the ephemeral AES key does not decrypt under the broker's RSA wrapping key", e);
        }

        try
        {
            if (aesKey.Length is not (16 or 24 or 32))
            {
                throw invalid($"the ephemeral AES key is {aesKey.Length} bytes", null);
            }

            return AesKeyWrapWithPadding.TryUnwrap(aesKey, ciphertext.AsSpan(modulus), out byte[] target)
                ? target
                : throw invalid("the RFC 5649 key wrap does not authenticate", null);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(aesKey);
        }
    }
}
