using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace AttestBroker.Verification.Snp;

/// <summary>
/// AMD signs every certificate (ARK, ASK, ASVK, VCEK, VLEK) and its CRLs with RSASSA-PSS, SHA-384, MGF1-SHA-384,
/// salt 48, trailer 1. This checks the algorithm identifier is exactly that and verifies the signature with .NET's
/// RSA, independent of what the platform's chain engine supports.
/// </summary>
internal static class AmdRsaPss
{
    public const string RsassaPssOid = "1.2.840.113549.1.1.10";
    private const string Mgf1Oid = "1.2.840.113549.1.1.8";
    private const string Sha384Oid = "2.16.840.1.101.3.4.2.2";
    private const int SaltLength = 48;

    private static readonly Asn1Tag Tag0 = new(TagClass.ContextSpecific, 0, isConstructed: true);
    private static readonly Asn1Tag Tag1 = new(TagClass.ContextSpecific, 1, isConstructed: true);
    private static readonly Asn1Tag Tag2 = new(TagClass.ContextSpecific, 2, isConstructed: true);
    private static readonly Asn1Tag Tag3 = new(TagClass.ContextSpecific, 3, isConstructed: true);

    /// <summary>The three parts of a signed X.509 structure (certificate or CRL).</summary>
    public sealed record SignedParts(ReadOnlyMemory<byte> ToBeSigned, string AlgorithmOid, ReadOnlyMemory<byte>? AlgorithmParameters, byte[] Signature);

    /// <summary>Splits DER SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }; null when it is not that shape.</summary>
    public static SignedParts? Split(ReadOnlyMemory<byte> der)
    {
        try
        {
            var outer = new AsnReader(der, AsnEncodingRules.DER);
            var seq = outer.ReadSequence();
            if (outer.HasData)
            {
                return null;
            }

            var tbs = seq.ReadEncodedValue();
            var alg = seq.ReadSequence();
            var oid = alg.ReadObjectIdentifier();
            ReadOnlyMemory<byte>? parameters = alg.HasData ? alg.ReadEncodedValue() : null;
            if (alg.HasData)
            {
                return null;
            }

            var sig = seq.ReadBitString(out var unused);
            if (unused != 0 || seq.HasData)
            {
                return null;
            }

            return new SignedParts(tbs, oid, parameters, sig);
        }
        catch (AsnContentException)
        {
            return null;
        }
    }

    /// <summary>Null when the algorithm is RSASSA-PSS with SHA-384/MGF1-SHA-384/salt 48/trailer 1; otherwise what differs.</summary>
    public static string? CheckAlgorithm(string oid, ReadOnlyMemory<byte>? parameters)
    {
        if (oid != RsassaPssOid)
        {
            return $"signature algorithm {oid} is not RSASSA-PSS";
        }

        if (parameters is not { } p)
        {
            return "RSASSA-PSS parameters are absent (defaults would mean SHA-1)";
        }

        try
        {
            var outer = new AsnReader(p, AsnEncodingRules.DER);
            var seq = outer.ReadSequence();
            string hash = "1.3.14.3.2.26";
            string mgfHash = "1.3.14.3.2.26";
            System.Numerics.BigInteger salt = 20;
            System.Numerics.BigInteger trailer = 1;
            if (seq.HasData && seq.PeekTag().HasSameClassAndValue(Tag0))
            {
                var h = seq.ReadSequence(Tag0).ReadSequence();
                hash = h.ReadObjectIdentifier();
            }

            if (seq.HasData && seq.PeekTag().HasSameClassAndValue(Tag1))
            {
                var m = seq.ReadSequence(Tag1).ReadSequence();
                if (m.ReadObjectIdentifier() != Mgf1Oid)
                {
                    return "mask generation function is not MGF1";
                }

                mgfHash = m.ReadSequence().ReadObjectIdentifier();
            }

            if (seq.HasData && seq.PeekTag().HasSameClassAndValue(Tag2))
            {
                salt = seq.ReadSequence(Tag2).ReadInteger();
            }

            if (seq.HasData && seq.PeekTag().HasSameClassAndValue(Tag3))
            {
                trailer = seq.ReadSequence(Tag3).ReadInteger();
            }

            if (seq.HasData || outer.HasData)
            {
                return "unexpected data in RSASSA-PSS parameters";
            }

            if (hash != Sha384Oid || mgfHash != Sha384Oid)
            {
                return $"RSASSA-PSS hash {hash} / MGF1 hash {mgfHash}, expected SHA-384";
            }

            if (salt != SaltLength || trailer != 1)
            {
                return $"RSASSA-PSS salt {salt} / trailer {trailer}, expected 48 / 1";
            }

            return null;
        }
        catch (AsnContentException e)
        {
            return "RSASSA-PSS parameters are not valid DER: " + e.Message;
        }
    }

    /// <summary>Verifies a signed structure with the issuer's RSA key. Null when valid; otherwise why not.</summary>
    public static string? Verify(SignedParts parts, X509Certificate2 issuer)
    {
        var problem = CheckAlgorithm(parts.AlgorithmOid, parts.AlgorithmParameters);
        if (problem is not null)
        {
            return problem;
        }

        using var rsa = issuer.GetRSAPublicKey();
        if (rsa is null)
        {
            return $"issuer {issuer.Subject} has no RSA public key";
        }

        try
        {
            return rsa.VerifyData(parts.ToBeSigned.Span, parts.Signature, HashAlgorithmName.SHA384, RSASignaturePadding.Pss)
                ? null
                : $"RSASSA-PSS signature does not verify under {issuer.Subject}";
        }
        catch (CryptographicException e)
        {
            return "RSASSA-PSS verification failed: " + e.Message;
        }
    }

    /// <summary>Results of certificate signature checks, by the exact bytes of subject and issuer (a pure function of both).</summary>
    private static readonly VerificationMemo<string?> CertificateSignatures = new();

    /// <summary>Verifies that <paramref name="subject"/> is signed by <paramref name="issuer"/>. Null when valid.</summary>
    public static string? VerifyCertificate(X509Certificate2 subject, X509Certificate2 issuer)
    {
        ArgumentNullException.ThrowIfNull(subject);
        ArgumentNullException.ThrowIfNull(issuer);
        return CertificateSignatures.GetOrAdd(subject.RawDataMemory.Span, issuer.RawDataMemory.Span, () =>
        {
            var parts = Split(subject.RawDataMemory);
            return parts is null ? $"certificate {subject.Subject} is not a well-formed signed structure" : Verify(parts, issuer);
        });
    }
}
