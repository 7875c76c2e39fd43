using System.Security.Cryptography;

namespace AttestBroker.Server.Admin;

/// <summary>The admin API's P-256 private keys (<c>admin-signing.key</c>, <c>audit-head.key</c>): in the data directory, or files the operator shares with every replica.</summary>
internal static class AdminKeyFiles
{
    private const int MaxPkcs8Length = 4096;
    private const string P256Oid = "1.2.840.10045.3.1.7";

    /// <summary>
    /// Loads a PKCS#8 P-256 private key, creating the file (0600) on first use. Group/other-accessible files and
    /// symbolic links are refused (<see cref="BrokerStartupException"/>, naming the file, never its contents).
    /// </summary>
    public static ECDsa LoadOrCreateP256(string path)
    {
        var der = SecretFiles.ReadOrCreate(path, MaxPkcs8Length, () =>
        {
            using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            return fresh.ExportPkcs8PrivateKey();
        });
        try
        {
            return FromPkcs8(der, path);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }

    /// <summary>
    /// Loads a P-256 private key from a file the operator made and shares with every replica (named by
    /// <paramref name="setting"/>); never creates it. PKCS#8 DER (what <c>openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256 -outform DER</c> writes with OpenSSL 1.1), SEC 1 ECPrivateKey DER (what OpenSSL 3 writes),
    /// or a PEM "PRIVATE KEY" / "EC PRIVATE KEY" block. The file is refused when it
    /// does not exist, is a symbolic link or is readable by group or others.
    /// </summary>
    public static ECDsa LoadExistingP256(string path, string setting)
    {
        var bytes = SecretFiles.ReadOrCreate(path, MaxPkcs8Length, () => throw new BrokerStartupException(
            $"{setting} {path} does not exist; create it once (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -outform DER, mode 0600) and share it with every replica"));
        byte[] der = [];
        try
        {
            der = IsPem(bytes) ? PemPkcs8(bytes, path) : bytes;
            return FromPkcs8(der, path, allowSec1: true);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private static bool IsPem(ReadOnlySpan<byte> bytes)
    {
        var trimmed = bytes.TrimStart(" \t\r\n"u8);
        return trimmed.StartsWith("-----BEGIN"u8);
    }

    private static byte[] PemPkcs8(byte[] bytes, string path)
    {
        var chars = new char[bytes.Length];
        try
        {
            for (var i = 0; i < bytes.Length; i++)
            {
                chars[i] = bytes[i] < 0x80 ? (char)bytes[i] : '\0';
            }

            if (!PemEncoding.TryFind(chars, out var fields)
                || !(chars.AsSpan(fields.Label).SequenceEqual("PRIVATE KEY") || chars.AsSpan(fields.Label).SequenceEqual("EC PRIVATE KEY")))
            {
                throw new BrokerStartupException($"{path} must hold a \"PRIVATE KEY\" or \"EC PRIVATE KEY\" PEM block, or the DER of one");
            }

            var der = new byte[fields.DecodedDataLength];
            return Convert.TryFromBase64Chars(chars.AsSpan(fields.Base64Data), der, out var written) && written == der.Length
                ? der
                : throw new BrokerStartupException($"{path} holds a PEM block that is not valid base64");
        }
        finally
        {
            Array.Clear(chars);
        }
    }

    private static ECDsa FromPkcs8(ReadOnlySpan<byte> der, string path, bool allowSec1 = false)
    {
        var key = ECDsa.Create();
        try
        {
            int read;
            try
            {
                key.ImportPkcs8PrivateKey(der, out read);
            }
            catch (CryptographicException) when (allowSec1)
            {
                // OpenSSL 3's genpkey -outform DER writes the EC key as SEC 1 ECPrivateKey (RFC 5915), not PKCS#8.
                key.ImportECPrivateKey(der, out read);
            }

            if (read != der.Length || key.KeySize != 256 || key.ExportParameters(false).Curve.Oid?.Value != P256Oid)
            {
                throw new BrokerStartupException($"{path} must hold exactly one PKCS#8 ECDSA P-256 private key");
            }

            return key;
        }
        catch (CryptographicException)
        {
            key.Dispose();
            throw new BrokerStartupException($"{path} is not a PKCS#8 ECDSA P-256 private key");
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }
}
