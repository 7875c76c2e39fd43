using System.Security.Cryptography;
using System.Text;

namespace AttestBroker.Models;

/// <summary>
/// Publisher signatures over manifest.json in the format of <c>cosign sign-blob --key</c>: base64 of the ASN.1 DER
/// ECDSA P-256 signature over SHA-256 of the manifest bytes. Public keys are PEM SPKI ("PUBLIC KEY", as
/// <c>cosign public-key</c> prints); signing keys are unencrypted PEM PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE KEY").
/// cosign's own encrypted key file ("ENCRYPTED SIGSTORE PRIVATE KEY") is not read: export the key to PKCS#8 first.
/// </summary>
public static class ManifestSigning
{
    /// <summary>Signs manifest bytes; returns the signature file's text (base64, no newline, as cosign writes it).</summary>
    public static string Sign(ReadOnlySpan<byte> manifest, ECDsa key)
    {
        ArgumentNullException.ThrowIfNull(key);
        RequireP256(key);
        var der = key.SignData(manifest, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        return Convert.ToBase64String(der);
    }

    /// <summary>Verifies a signature file's content over manifest bytes; throws <see cref="ModelError.ManifestSignatureInvalid"/> if it does not verify.</summary>
    public static void Verify(ReadOnlySpan<byte> manifest, ReadOnlySpan<byte> signatureFile, ECDsa publisherKey)
    {
        ArgumentNullException.ThrowIfNull(publisherKey);
        var text = Encoding.ASCII.GetString(signatureFile.Trim(" \t\r\n"u8));
        byte[] der;
        try
        {
            der = Convert.FromBase64String(text);
        }
        catch (FormatException ex)
        {
            throw new ModelException(ModelError.ManifestSignatureInvalid, "manifest signature is not base64", ex);
        }

        bool ok;
        try
        {
            ok = der.Length is > 0 and <= 80 && publisherKey.VerifyData(manifest, der, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        }
        catch (CryptographicException)
        {
            ok = false;
        }

        if (!ok)
        {
            throw new ModelException(ModelError.ManifestSignatureInvalid, "manifest signature does not verify under the publisher key");
        }
    }

    /// <summary>Reads a publisher public key (PEM "PUBLIC KEY", SubjectPublicKeyInfo); must be ECDSA P-256.</summary>
    public static ECDsa LoadPublicKeyPem(string pem)
    {
        ArgumentNullException.ThrowIfNull(pem);
        if (!pem.Contains("-----BEGIN PUBLIC KEY-----", StringComparison.Ordinal))
        {
            throw new ModelException(ModelError.PublisherKeyInvalid, "publisher key must be a PEM 'PUBLIC KEY' (SubjectPublicKeyInfo), as cosign public-key prints");
        }

        return Import(pem, "publisher key");
    }

    /// <summary>Reads a signing key (PEM "PRIVATE KEY" PKCS#8 or "EC PRIVATE KEY"); must be ECDSA P-256.</summary>
    public static ECDsa LoadPrivateKeyPem(string pem)
    {
        ArgumentNullException.ThrowIfNull(pem);
        if (pem.Contains("ENCRYPTED SIGSTORE PRIVATE KEY", StringComparison.Ordinal) || pem.Contains("ENCRYPTED COSIGN PRIVATE KEY", StringComparison.Ordinal) || pem.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal))
        {
            throw new ModelException(ModelError.PublisherKeyInvalid, "encrypted signing keys are not supported: give an unencrypted PEM PKCS#8 'PRIVATE KEY' (e.g. openssl pkcs8 -topk8 -nocrypt)");
        }

        if (!pem.Contains("-----BEGIN PRIVATE KEY-----", StringComparison.Ordinal) && !pem.Contains("-----BEGIN EC PRIVATE KEY-----", StringComparison.Ordinal))
        {
            throw new ModelException(ModelError.PublisherKeyInvalid, "signing key must be a PEM 'PRIVATE KEY' (PKCS#8) or 'EC PRIVATE KEY'");
        }

        return Import(pem, "signing key");
    }

    private static ECDsa Import(string pem, string what)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(pem);
            RequireP256(key);
            return key;
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            key.Dispose();
            throw new ModelException(ModelError.PublisherKeyInvalid, $"{what} is not a readable ECDSA P-256 key");
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    private static void RequireP256(ECDsa key)
    {
        var parameters = key.ExportParameters(false);
        var curve = parameters.Curve;
        var isP256 = curve.IsNamed && (curve.Oid.Value == "1.2.840.10045.3.1.7" || curve.Oid.FriendlyName is "nistP256" or "ECDSA_P256");
        if (!isP256)
        {
            throw new ModelException(ModelError.PublisherKeyInvalid, "publisher keys must be ECDSA P-256");
        }
    }
}
