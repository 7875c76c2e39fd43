using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using Org.BouncyCastle.Math;
using Org.BouncyCastle.X509;

namespace AttestBroker.Verification.Tdx;

/// <summary>The outcome of checking one certificate against the CRLs its issuer publishes.</summary>
internal enum CrlOutcome
{
    NotRevoked,
    Revoked,
    Missing,
    Expired,
    Invalid,
}

/// <summary>
/// CRL checks for Intel's PKI: a CRL applies to a certificate when its issuer Name is the certificate's issuer and its
/// ecdsa-with-SHA256 signature verifies with the issuing CA's key; it must be in date (thisUpdate ≤ t ≤ nextUpdate).
/// BouncyCastle parses the CRL; the signature is checked with .NET over the exact TBS bytes.
/// </summary>
internal static class CrlSupport
{
    /// <summary>True when the bytes parse as an X.509 CRL.</summary>
    public static bool LooksLikeCrl(byte[] der)
    {
        try
        {
            return new X509CrlParser().ReadCrl(der) is not null && EcdsaCertificates.CrlIssuer(der) is not null;
        }
#pragma warning disable CA1031 // BouncyCastle throws many exception types for malformed DER; any of them means "not a CRL".
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }

    /// <summary>
    /// Checks <paramref name="cert"/> (issued by <paramref name="issuer"/>) against the applicable CRLs among
    /// <paramref name="crls"/>. The newest in-date CRL with a valid signature decides. <paramref name="detail"/>
    /// says what was found.
    /// </summary>
    public static CrlOutcome Check(X509Certificate2 cert, X509Certificate2 issuer, IEnumerable<byte[]> crls, DateTimeOffset at, out string detail)
    {
        var issuerName = issuer.SubjectName.RawData;
        var sameIssuer = crls.Where(c => IssuerOf(c) is { } name && name.AsSpan().SequenceEqual(issuerName)).ToList();
        if (sameIssuer.Count == 0)
        {
            detail = $"no CRL issued by {EcdsaCertificates.Describe(issuer)}";
            return CrlOutcome.Missing;
        }

        ParsedCrl? best = null;
        var anySigned = false;
        foreach (var der in sameIssuer)
        {
            var crl = Parse(der, issuer);
            if (crl is null)
            {
                continue;
            }

            anySigned = true;
            if (crl.ThisUpdate <= at && crl.NextUpdate is { } nu && at < nu && (best is null || crl.ThisUpdate > best.ThisUpdate))
            {
                best = crl;
            }
        }

        if (!anySigned)
        {
            detail = $"no CRL issued by {EcdsaCertificates.Describe(issuer)} has a valid signature by it (or is readable)";
            return CrlOutcome.Invalid;
        }

        if (best is null)
        {
            detail = $"no CRL issued by {EcdsaCertificates.Describe(issuer)} is in date at {at.UtcDateTime:O}";
            return CrlOutcome.Expired;
        }

        var serial = new BigInteger(1, cert.SerialNumberBytes.ToArray()).ToString(16);
        if (best.Revoked.TryGetValue(serial, out var when))
        {
            detail = $"{EcdsaCertificates.Describe(cert)} is listed in the CRL of {EcdsaCertificates.Describe(issuer)} (revoked {when:O})";
            return CrlOutcome.Revoked;
        }

        detail = string.Empty;
        return CrlOutcome.NotRevoked;
    }

    /// <summary>
    /// The CRL's window and revoked serials when its ecdsa-with-SHA256 signature verifies with the issuer's key, else
    /// null. Pure in (CRL bytes, issuer certificate bytes), so remembered across verifications.
    /// </summary>
    /// <summary>The CRL's issuer name, read once per CRL array (collateral CRLs are loaded once and never changed).</summary>
    private static byte[]? IssuerOf(byte[] der) =>
        Issuers.GetValue(der, d => new StrongBox<byte[]?>(EcdsaCertificates.CrlIssuer(d))).Value;

    /// <summary><see cref="ParseVerified"/> remembered per (CRL array, issuer certificate object) before falling back to content.</summary>
    private static ParsedCrl? Parse(byte[] der, X509Certificate2 issuer) =>
        ByInstance.GetOrCreateValue(der).GetValue(issuer, i => new StrongBox<ParsedCrl?>(ParseVerified(der, i))).Value;

    private static ParsedCrl? ParseVerified(byte[] der, X509Certificate2 issuer) =>
        Parsed.GetOrAdd(der, issuer.RawDataMemory.Span, () =>
        {
            using var key = EcdsaCertificates.P256Key(issuer);
            if (key is null || !EcdsaCertificates.VerifySigned(der, key))
            {
                return null;
            }

            try
            {
                var crl = new X509CrlParser().ReadCrl(der);
                if (crl is null)
                {
                    return null;
                }

                var revoked = new Dictionary<string, DateTime>(StringComparer.Ordinal);
                foreach (var entry in crl.GetRevokedCertificates() ?? (IEnumerable<X509CrlEntry>)[])
                {
                    revoked[entry.SerialNumber.ToString(16)] = entry.RevocationDate;
                }

                return new ParsedCrl(
                    new DateTimeOffset(DateTime.SpecifyKind(crl.ThisUpdate, DateTimeKind.Utc)),
                    crl.NextUpdate is { } n ? new DateTimeOffset(DateTime.SpecifyKind(n, DateTimeKind.Utc)) : null,
                    revoked);
            }
#pragma warning disable CA1031 // BouncyCastle throws many exception types for malformed DER; a CRL it cannot read is unusable
            catch (Exception)
#pragma warning restore CA1031
            {
                return null;
            }
        });

    private static readonly VerificationMemo<ParsedCrl?> Parsed = new(256);
    private static readonly ConditionalWeakTable<byte[], StrongBox<byte[]?>> Issuers = new();
    private static readonly ConditionalWeakTable<byte[], ConditionalWeakTable<X509Certificate2, StrongBox<ParsedCrl?>>> ByInstance = new();

    private sealed record ParsedCrl(DateTimeOffset ThisUpdate, DateTimeOffset? NextUpdate, IReadOnlyDictionary<string, DateTime> Revoked);
}
