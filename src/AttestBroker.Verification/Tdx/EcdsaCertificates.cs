using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace AttestBroker.Verification.Tdx;

/// <summary>
/// Certificate helpers for Intel's ECDSA P-256 PKI. Signatures are checked here, with the issuer's key, over the
/// exact TBS bytes of the certificate; no system store and no X509Chain building is involved.
/// </summary>
internal static class EcdsaCertificates
{
    private const string EcdsaWithSha256Oid = "1.2.840.10045.4.3.2";
    private const string P256CurveOid = "1.2.840.10045.3.1.7";

    // Signature checks over immutable bytes are pure: remembered (keyed by SHA-256 of the inputs) across verifications.
    private static readonly VerificationMemo<bool> CertificateSignatures = new();
    private static readonly VerificationMemo<bool> RawSignatures = new();
    private static readonly ConditionalWeakTable<X509Certificate2, ConditionalWeakTable<X509Certificate2, StrongBox<bool>>> SignaturesByInstance = new();
    private static readonly ConditionalWeakTable<X509Certificate2, StrongBox<ECDsa?>> SharedKeys = new();
    private static readonly VerificationMemo<(IReadOnlyList<X509Certificate2>? Certs, string? Error)> PemChains = new(1024);
    private static readonly VerificationMemo<(IReadOnlyList<X509Certificate2>? Certs, string? Error)> StrictPemChains = new(1024);

    /// <summary>
    /// All certificates in PEM text (CERTIFICATE blocks), in order. Throws <see cref="FormatException"/> when a block
    /// is not a certificate. When <paramref name="strict"/>, the text must consist of CERTIFICATE blocks and whitespace
    /// only: anything else (a damaged block that would otherwise be skipped) is an error.
    /// </summary>
    /// <summary>
    /// <see cref="ParsePemCertificates"/> remembered by the exact PEM text: a platform sends the same chain in every
    /// quote, and loading certificates costs far more than verifying a signature. The certificates are shared and
    /// must not be disposed or changed by callers.
    /// </summary>
    public static IReadOnlyList<X509Certificate2> ParsePemCertificatesCached(string pem, bool strict)
    {
        ArgumentNullException.ThrowIfNull(pem);
        var (certs, error) = (strict ? StrictPemChains : PemChains).GetOrAdd(MemoryMarshal.AsBytes(pem.AsSpan()), () =>
        {
            try
            {
                return ((IReadOnlyList<X509Certificate2>?)ParsePemCertificates(pem, strict), (string?)null);
            }
            catch (FormatException ex)
            {
                return (null, ex.Message);
            }
        });
        return certs ?? throw new FormatException(error);
    }

    public static List<X509Certificate2> ParsePemCertificates(string pem, bool strict = false)
    {
        var result = new List<X509Certificate2>();
        var rest = pem.AsSpan();
        while (true)
        {
            if (!PemEncoding.TryFind(rest, out var fields))
            {
                if (strict && !rest.IsWhiteSpace())
                {
                    throw new FormatException("the PEM text holds something other than certificates (a damaged block?)");
                }

                break;
            }

            var label = rest[fields.Label];
            if (strict && (!rest[..fields.Location.Start].IsWhiteSpace() || !label.SequenceEqual("CERTIFICATE")))
            {
                throw new FormatException("the PEM text holds something other than certificates (a damaged block?)");
            }

            if (label.SequenceEqual("CERTIFICATE"))
            {
                byte[] der;
                try
                {
                    der = Convert.FromBase64String(rest[fields.Base64Data].ToString());
                }
                catch (FormatException ex)
                {
                    throw new FormatException("a PEM certificate block is not valid base64", ex);
                }

                result.Add(LoadDer(der));
            }

            rest = rest[fields.Location.End..];
        }

        return result;
    }

    /// <summary>Loads one DER certificate; throws <see cref="FormatException"/> when it is not one.</summary>
    public static X509Certificate2 LoadDer(byte[] der)
    {
        try
        {
            return X509CertificateLoader.LoadCertificate(der);
        }
        catch (CryptographicException ex)
        {
            throw new FormatException("not a valid X.509 certificate: " + ex.Message, ex);
        }
    }

    /// <summary>Certificates from a file's bytes: PEM (one or more) or a single DER certificate; empty when neither.</summary>
    public static List<X509Certificate2> TryLoadAny(byte[] bytes)
    {
        var text = TryAscii(bytes);
        if (text is not null && text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal))
        {
            try
            {
                return ParsePemCertificates(text);
            }
            catch (FormatException)
            {
                return [];
            }
        }

        if (bytes.Length > 0 && bytes[0] == 0x30)
        {
            try
            {
                return [X509CertificateLoader.LoadCertificate(bytes)];
            }
            catch (CryptographicException)
            {
                return [];
            }
        }

        return [];
    }

    public static string? TryAscii(byte[] bytes)
    {
        foreach (var b in bytes.AsSpan(0, Math.Min(bytes.Length, 4096)))
        {
            if (b == 0 || b > 0x7E && b < 0xA0)
            {
                return null;
            }
        }

        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    /// <summary>
    /// <see cref="P256Key"/> remembered per certificate object: the key is shared between verifications (verification
    /// only) and must not be disposed by callers.
    /// </summary>
    public static ECDsa? SharedP256Key(X509Certificate2 cert) =>
        SharedKeys.GetValue(cert, c => new StrongBox<ECDsa?>(P256Key(c))).Value;

    /// <summary>The P-256 public key of a certificate, or null when the key is not ECDSA P-256.</summary>
    public static ECDsa? P256Key(X509Certificate2 cert)
    {
        try
        {
            var key = cert.GetECDsaPublicKey();
            if (key is null)
            {
                return null;
            }

            var p = key.ExportParameters(false);
            if (p.Curve.Oid?.Value != P256CurveOid && p.Curve.Oid?.FriendlyName is not ("nistP256" or "ECDSA_P256"))
            {
                key.Dispose();
                return null;
            }

            return key;
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    /// <summary>True when <paramref name="cert"/> names <paramref name="issuer"/> as its issuer and carries a valid ecdsa-with-SHA256 signature by its P-256 key.</summary>
    /// <remarks>
    /// Remembered twice: by the two certificate objects (collateral and quote chains are loaded once and shared, so the
    /// common case costs two table look-ups) and by their exact bytes (for certificates loaded again).
    /// </remarks>
    public static bool IsSignedBy(X509Certificate2 cert, X509Certificate2 issuer)
    {
        if (!cert.IssuerName.RawData.AsSpan().SequenceEqual(issuer.SubjectName.RawData))
        {
            return false;
        }

        var byIssuer = SignaturesByInstance.GetOrCreateValue(cert);
        if (byIssuer.TryGetValue(issuer, out var known))
        {
            return known.Value;
        }

        var result = CertificateSignatures.GetOrAdd(cert.RawDataMemory.Span, issuer.RawDataMemory.Span, () =>
        {
            using var key = P256Key(issuer);
            return key is not null && VerifySigned(cert.RawData, key);
        });
        byIssuer.AddOrUpdate(issuer, new StrongBox<bool>(result));
        return result;
    }

    /// <summary>Verifies a raw r ‖ s signature over <paramref name="message"/> with a certificate's P-256 key (remembered per message, signature and certificate).</summary>
    public static bool VerifiesRaw(X509Certificate2 signer, ReadOnlySpan<byte> message, byte[] signature)
    {
        var input = new byte[message.Length + signature.Length];
        message.CopyTo(input);
        signature.CopyTo(input, message.Length);
        var bytes = input;
        return RawSignatures.GetOrAdd(input, signer.RawDataMemory.Span, () =>
        {
            using var key = P256Key(signer);
            return key is not null && P256.Verify(key, bytes.AsSpan(0, bytes.Length - signature.Length), signature);
        });
    }

    /// <summary>Verifies a signed X.509 structure (certificate or CRL: SEQUENCE { tbs, algorithm, BIT STRING }) with ecdsa-with-SHA256.</summary>
    public static bool VerifySigned(ReadOnlyMemory<byte> der, ECDsa key)
    {
        try
        {
            var outer = new AsnReader(der, AsnEncodingRules.DER);
            var seq = outer.ReadSequence();
            outer.ThrowIfNotEmpty();
            var tbs = seq.ReadEncodedValue();
            var alg = seq.ReadSequence();
            var oid = alg.ReadObjectIdentifier();
            if (alg.HasData)
            {
                // ecdsa-with-SHA256 has absent parameters (RFC 5758).
                return false;
            }

            var signature = seq.ReadBitString(out var unused);
            seq.ThrowIfNotEmpty();
            return oid == EcdsaWithSha256Oid && unused == 0
                && key.VerifyData(tbs.Span, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        }
        catch (AsnContentException)
        {
            return false;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    /// <summary>The raw DER of the issuer Name inside a CRL's TBSCertList, or null when the CRL is not well-formed.</summary>
    public static byte[]? CrlIssuer(ReadOnlyMemory<byte> crlDer)
    {
        try
        {
            var outer = new AsnReader(crlDer, AsnEncodingRules.DER);
            var seq = outer.ReadSequence();
            var tbs = seq.ReadSequence();
            if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
            {
                tbs.ReadInteger();
            }

            tbs.ReadSequence();
            return tbs.ReadEncodedValue().ToArray();
        }
        catch (AsnContentException)
        {
            return null;
        }
    }

    public static bool IsValidAt(X509Certificate2 cert, DateTimeOffset at) =>
        at.UtcDateTime >= cert.NotBefore.ToUniversalTime() && at.UtcDateTime <= cert.NotAfter.ToUniversalTime();

    public static bool IsCa(X509Certificate2 cert) =>
        cert.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is { CertificateAuthority: true };

    /// <summary>A CA may sign certificates and CRLs when it has no key usage extension or one that allows certificate signing.</summary>
    public static bool MaySignCertificates(X509Certificate2 cert) =>
        IsCa(cert) && (cert.Extensions.OfType<X509KeyUsageExtension>().FirstOrDefault() is not { } ku || ku.KeyUsages.HasFlag(X509KeyUsageFlags.KeyCertSign));

    public static string Describe(X509Certificate2 cert) =>
        $"'{cert.GetNameInfo(X509NameType.SimpleName, false)}' (serial {cert.SerialNumber.ToLowerInvariant()})";
}
