using System.Security.Cryptography;

namespace AttestBroker.Server.Admin;

/// <summary>The admin API's P-256 private keys in the data directory (<c>admin-signing.key</c>, <c>audit-head.key</c>).</summary>
internal static class AdminKeyFiles
{
    private const int MaxPkcs8Length = 4096;

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
        var key = ECDsa.Create();
        try
        {
            key.ImportPkcs8PrivateKey(der, out var read);
            if (read != der.Length || key.KeySize != 256)
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
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }
}
