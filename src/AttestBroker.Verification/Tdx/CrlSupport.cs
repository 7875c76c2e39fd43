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
        var sameIssuer = crls.Where(c => EcdsaCertificates.CrlIssuer(c) is { } name && name.AsSpan().SequenceEqual(issuer.SubjectName.RawData)).ToList();
        if (sameIssuer.Count == 0)
        {
            detail = $"no CRL issued by {EcdsaCertificates.Describe(issuer)}";
            return CrlOutcome.Missing;
        }

        using var key = EcdsaCertificates.P256Key(issuer);
        X509Crl? best = null;
        var anySigned = false;
        foreach (var der in sameIssuer)
        {
            if (key is null || !EcdsaCertificates.VerifySigned(der, key))
            {
                continue;
            }

            anySigned = true;
            X509Crl crl;
            try
            {
                crl = new X509CrlParser().ReadCrl(der);
            }
#pragma warning disable CA1031 // as above: a CRL BouncyCastle cannot read is skipped
            catch (Exception)
#pragma warning restore CA1031
            {
                continue;
            }

            var thisUpdate = new DateTimeOffset(DateTime.SpecifyKind(crl.ThisUpdate, DateTimeKind.Utc));
            DateTimeOffset? nextUpdate = crl.NextUpdate is { } n ? new DateTimeOffset(DateTime.SpecifyKind(n, DateTimeKind.Utc)) : null;
            if (thisUpdate <= at && nextUpdate is { } nu && at < nu && (best is null || crl.ThisUpdate > best.ThisUpdate))
            {
                best = crl;
            }
        }

        if (!anySigned)
        {
            detail = $"no CRL issued by {EcdsaCertificates.Describe(issuer)} has a valid signature by it";
            return CrlOutcome.Invalid;
        }

        if (best is null)
        {
            detail = $"no CRL issued by {EcdsaCertificates.Describe(issuer)} is in date at {at:O}";
            return CrlOutcome.Expired;
        }

        var serial = new BigInteger(1, cert.SerialNumberBytes.ToArray());
        X509CrlEntry? entry;
        try
        {
            entry = best.GetRevokedCertificate(serial);
        }
#pragma warning disable CA1031 // a signed CRL whose entries cannot be read is invalid, never an exception
        catch (Exception)
#pragma warning restore CA1031
        {
            detail = $"the CRL issued by {EcdsaCertificates.Describe(issuer)} has unreadable entries";
            return CrlOutcome.Invalid;
        }

        if (entry is not null)
        {
            detail = $"{EcdsaCertificates.Describe(cert)} is listed in the CRL of {EcdsaCertificates.Describe(issuer)} (revoked {entry.RevocationDate:O})";
            return CrlOutcome.Revoked;
        }

        detail = string.Empty;
        return CrlOutcome.NotRevoked;
    }
}
