using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Org.BouncyCastle.Asn1.X9;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Digests;
using Org.BouncyCastle.Crypto.Generators;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Prng;
using Org.BouncyCastle.Security;
using BcBigInteger = Org.BouncyCastle.Math.BigInteger;

namespace AttestBroker.HardwareSim.Crypto;

/// <summary>
/// The secret every simulated key is derived from. The same seed gives the same keys, serials and signatures, so a
/// PKI made with <c>--seed N</c> can be rebuilt byte for byte. Every derivation is HKDF-SHA-256 with a distinct label.
/// </summary>
public sealed class SeedMaterial : IDisposable
{
    public const int Length = 32;
    private static readonly byte[] Salt = Encoding.ASCII.GetBytes("attestbroker hardware-sim v1");
    private readonly byte[] _seed;

    private SeedMaterial(byte[] seed)
    {
        _seed = seed;
    }

    /// <summary>A seed from a number (deterministic PKI for tests and CI).</summary>
    public static SeedMaterial FromNumber(ulong seed)
    {
        var ikm = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(ikm, seed);
        var bytes = HKDF.Extract(HashAlgorithmName.SHA256, ikm, Salt);
        return new SeedMaterial(bytes);
    }

    /// <summary>A fresh random seed.</summary>
    public static SeedMaterial Random() => new(RandomNumberGenerator.GetBytes(Length));

    /// <summary>A seed read back from its 32 bytes (the PKI directory's seed file). The input is copied.</summary>
    public static SeedMaterial FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length)
        {
            throw new SimulatorException($"seed must be {Length} bytes, found {bytes.Length}");
        }

        return new SeedMaterial(bytes.ToArray());
    }

    /// <summary>A copy of the seed bytes (the caller must zero it).</summary>
    public byte[] ExportBytes() => (byte[])_seed.Clone();

    /// <summary>Derives <paramref name="length"/> bytes for a label. The caller owns (and should zero) the result.</summary>
    public byte[] Derive(string label, int length) =>
        HKDF.Expand(HashAlgorithmName.SHA256, _seed, length, Encoding.UTF8.GetBytes(label));

    /// <summary>A positive certificate serial number of 16 bytes (top bit clear, never zero).</summary>
    public byte[] Serial(string label)
    {
        var s = Derive("serial:" + label, 16);
        s[0] = (byte)((s[0] & 0x7F) | 0x10);
        return s;
    }

    /// <summary>An EC key on P-256 or P-384, derived from the label.</summary>
    public AsymmetricCipherKeyPair EcKey(string label, SimCurve curve)
    {
        var x9 = curve == SimCurve.P256 ? ECNamedCurveTable.GetByName("P-256") : ECNamedCurveTable.GetByName("P-384");
        var oid = curve == SimCurve.P256 ? X9ObjectIdentifiers.Prime256v1 : Org.BouncyCastle.Asn1.Sec.SecObjectIdentifiers.SecP384r1;
        var domain = new ECNamedDomainParameters(oid, x9);
        var raw = Derive("ec:" + label, (x9.N.BitLength / 8) + 16);
        try
        {
            // Reduce 128 extra bits modulo n-1 and add 1: uniform enough, never zero.
            var d = new BcBigInteger(1, raw).Mod(x9.N.Subtract(BcBigInteger.One)).Add(BcBigInteger.One);
            var q = domain.G.Multiply(d).Normalize();
            return new AsymmetricCipherKeyPair(new ECPublicKeyParameters("EC", q, oid), new ECPrivateKeyParameters("EC", d, oid));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(raw);
        }
    }

    /// <summary>When set, <see cref="RsaKey"/> uses the platform's (non-deterministic, fast) generator.</summary>
    public bool FastRsa { get; set; }

    /// <summary>An RSA key (e = 65537) generated from a deterministic random stream seeded by the label (or, with <see cref="FastRsa"/>, by the platform).</summary>
    public AsymmetricCipherKeyPair RsaKey(string label, int bits)
    {
        if (FastRsa)
        {
            using var rsa = RSA.Create(bits);
            var p = rsa.ExportParameters(true);
            try
            {
                return DotNetUtilities.GetRsaKeyPair(p);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(p.D);
                CryptographicOperations.ZeroMemory(p.P);
                CryptographicOperations.ZeroMemory(p.Q);
                CryptographicOperations.ZeroMemory(p.DP);
                CryptographicOperations.ZeroMemory(p.DQ);
                CryptographicOperations.ZeroMemory(p.InverseQ);
            }
        }

        var prngSeed = Derive("rsa:" + label, 64);
        try
        {
            var prng = new DigestRandomGenerator(new Sha512Digest());
            prng.AddSeedMaterial(prngSeed);
            var random = new SecureRandom(prng);
            var gen = new RsaKeyPairGenerator();
            gen.Init(new RsaKeyGenerationParameters(BcBigInteger.ValueOf(65537), random, bits, 80));
            return gen.GenerateKeyPair();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prngSeed);
        }
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(_seed);
}

/// <summary>The elliptic curves the simulated keys use.</summary>
public enum SimCurve
{
    P256,
    P384,
}
