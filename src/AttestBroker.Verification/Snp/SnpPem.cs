using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace AttestBroker.Verification.Snp;

/// <summary>PEM/DER helpers for AMD certificates and CRLs.</summary>
internal static class SnpPem
{
    /// <summary>True when the bytes look like PEM text (after optional leading whitespace).</summary>
    public static bool LooksLikePem(ReadOnlySpan<byte> data)
    {
        var trimmed = data.TrimStart(" \t\r\n"u8);
        return trimmed.StartsWith("-----BEGIN "u8);
    }

    /// <summary>The DER of the first PEM block with this label, or null when the bytes are not such PEM.</summary>
    public static byte[]? TryUnwrap(ReadOnlySpan<byte> data, string label)
    {
        if (!LooksLikePem(data))
        {
            return null;
        }

        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(data);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }

        var rest = text.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            if (rest[fields.Label].SequenceEqual(label))
            {
                try
                {
                    return Convert.FromBase64String(rest[fields.Base64Data].ToString());
                }
                catch (FormatException)
                {
                    return null;
                }
            }

            rest = rest[fields.Location.End..];
        }

        return null;
    }

    /// <summary>
    /// All certificates in the bytes: every CERTIFICATE block of a PEM text, or the single DER certificate. Throws
    /// <see cref="CryptographicException"/> when the bytes hold no certificate at all.
    /// </summary>
    public static List<X509Certificate2> ReadCertificates(ReadOnlySpan<byte> data)
    {
        var result = new List<X509Certificate2>();
        if (!LooksLikePem(data))
        {
            result.Add(X509CertificateLoader.LoadCertificate(data));
            return result;
        }

        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(data);
        }
        catch (DecoderFallbackException e)
        {
            throw new CryptographicException("PEM text is not valid UTF-8", e);
        }

        var rest = text.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            if (rest[fields.Label].SequenceEqual("CERTIFICATE"))
            {
                byte[] der;
                try
                {
                    der = Convert.FromBase64String(rest[fields.Base64Data].ToString());
                }
                catch (FormatException e)
                {
                    throw new CryptographicException("a CERTIFICATE block is not valid base64", e);
                }

                result.Add(X509CertificateLoader.LoadCertificate(der));
            }

            rest = rest[fields.Location.End..];
        }

        if (result.Count == 0)
        {
            throw new CryptographicException("no CERTIFICATE block in the PEM text");
        }

        return result;
    }
}
