using System.Security.Cryptography;
using AttestBroker.Protocol;

namespace AttestBroker.Server;

/// <summary>
/// The broker's ES256 token-signing key, kept as PKCS#8 in <c>token-signing.key</c> (0600) in the data directory, made
/// on the first start. Its public half is published as the JWKS.
/// </summary>
public sealed class TokenSigner : IDisposable
{
    public const string FileName = "token-signing.key";

    private readonly ECDsa _key;
    private readonly string _keyId;

    public TokenSigner(ECDsa key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.KeySize != 256)
        {
            throw new BrokerStartupException("the token-signing key must be ECDSA P-256");
        }

        _key = key;
        Jwks = Jwks.FromSigningKeys([key]);
        JwksJson = Jwks.ToJson();
        _keyId = Jwks.Keys[0].KeyId!;
    }

    public Jwks Jwks { get; }

    public string JwksJson { get; }

    /// <summary>Loads the key from the data directory, creating it on first use.</summary>
    public static TokenSigner LoadOrCreate(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, FileName);
        var der = SecretFiles.ReadOrCreate(path, 4096, () =>
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

    /// <summary>Loads the key from a file the operator made (shared by replicas); never creates it.</summary>
    public static TokenSigner LoadExisting(string path)
    {
        var der = SecretFiles.ReadOrCreate(path, 4096, () => throw new BrokerStartupException($"Broker:Secrets:TokenSigningKeyFile {path} does not exist; create it once (PKCS#8 ECDSA P-256, mode 0600) and share it with every replica"));
        try
        {
            return FromPkcs8(der, path);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }

    /// <summary>An ES256 signer from PKCS#8 DER (the caller zeroes <paramref name="der"/>); <paramref name="origin"/> names where it came from in errors.</summary>
    public static TokenSigner FromPkcs8(ReadOnlySpan<byte> der, string origin)
    {
        var key = ECDsa.Create();
        try
        {
            int read;
            try
            {
                key.ImportPkcs8PrivateKey(der, out read);
            }
            catch (CryptographicException)
            {
                // OpenSSL 3's genpkey -outform DER (docs/deploy.md) writes SEC 1 ECPrivateKey (RFC 5915), not PKCS#8.
                key.ImportECPrivateKey(der, out read);
            }

            if (read != der.Length)
            {
                throw new BrokerStartupException($"{origin} has trailing bytes after the PKCS#8 key");
            }
        }
        catch (CryptographicException)
        {
            key.Dispose();
            throw new BrokerStartupException($"{origin} is not a PKCS#8 ECDSA key");
        }
        catch
        {
            key.Dispose();
            throw;
        }

        try
        {
            return new TokenSigner(key);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    public string CreateToken(ResultTokenDescriptor descriptor, DateTimeOffset now) => ResultToken.Create(descriptor, _key, _keyId, now);

    public void Dispose() => _key.Dispose();
}
