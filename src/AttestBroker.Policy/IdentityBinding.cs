using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace AttestBroker.Policy;

/// <summary>
/// Binds a Kubernetes identity (namespace and service account) into a TEE's measured launch data, so that a policy
/// need not trust the control plane's word alone (docs/identity.md). The init-data document is the exact UTF-8 text
/// <c>{"version":1,"namespace":"NS","serviceAccount":"SA"}</c> (no whitespace, members in this order; both names are
/// DNS labels / subdomains, so nothing needs escaping). Its SHA-256 digest is the launch value:
/// SEV-SNP HOST_DATA (32 bytes) is the digest; TDX MRCONFIGID (48 bytes) is the digest followed by 16 zero bytes.
/// Pure: no I/O.
/// </summary>
public static partial class IdentityBinding
{
    public const int DigestLength = 32;
    public const int HostDataLength = 32;
    public const int MrConfigIdLength = 48;

    /// <summary>The init-data document for an identity; throws <see cref="ArgumentException"/> for names Kubernetes would not accept.</summary>
    public static byte[] Document(string @namespace, string serviceAccount)
    {
        if (@namespace is null || @namespace.Length > 63 || !Label().IsMatch(@namespace))
        {
            throw new ArgumentException("not a Kubernetes namespace name (a DNS label of at most 63 characters)", nameof(@namespace));
        }

        if (serviceAccount is null || serviceAccount.Length > 253 || !Subdomain().IsMatch(serviceAccount))
        {
            throw new ArgumentException("not a Kubernetes service account name (a DNS subdomain of at most 253 characters)", nameof(serviceAccount));
        }

        return Encoding.UTF8.GetBytes("{\"version\":1,\"namespace\":\"" + @namespace + "\",\"serviceAccount\":\"" + serviceAccount + "\"}");
    }

    /// <summary>SHA-256 of <see cref="Document"/>.</summary>
    public static byte[] Digest(string @namespace, string serviceAccount) => SHA256.HashData(Document(@namespace, serviceAccount));

    /// <summary>The SEV-SNP HOST_DATA value (32 bytes) that binds this identity.</summary>
    public static byte[] HostData(string @namespace, string serviceAccount) => Digest(@namespace, serviceAccount);

    /// <summary>The TDX MRCONFIGID value (48 bytes: the digest, then 16 zero bytes) that binds this identity.</summary>
    public static byte[] MrConfigId(string @namespace, string serviceAccount)
    {
        var value = new byte[MrConfigIdLength];
        Digest(@namespace, serviceAccount).CopyTo(value, 0);
        return value;
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex Label();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 1000)]
    private static partial Regex Subdomain();
}
