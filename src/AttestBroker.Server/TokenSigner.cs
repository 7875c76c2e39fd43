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
            var key = ECDsa.Create();
            try
            {
                key.ImportPkcs8PrivateKey(der, out var read);
                if (read != der.Length)
                {
                    throw new BrokerStartupException($"{path} has trailing bytes after the PKCS#8 key");
                }
            }
            catch (CryptographicException)
            {
                key.Dispose();
                throw new BrokerStartupException($"{path} is not a PKCS#8 ECDSA key");
            }

            return new TokenSigner(key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }

    public string CreateToken(ResultTokenDescriptor descriptor, DateTimeOffset now) => ResultToken.Create(descriptor, _key, now);

    public void Dispose() => _key.Dispose();
}
