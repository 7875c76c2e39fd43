using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Org.BouncyCastle.Asn1.Pkcs;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Digests;
using Org.BouncyCastle.Crypto.Engines;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;
using Org.BouncyCastle.Pkcs;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.X509;

namespace AttestBroker.HardwareSim.Crypto;

/// <summary>The kinds of simulated signing keys.</summary>
public enum SimKeyKind
{
    EcP256,
    EcP384,
    Rsa,
}

/// <summary>
/// A simulated private key. Signatures are deterministic (RFC 6979 nonces for ECDSA, a salt derived from the key
/// and the message for RSA-PSS), so a seeded PKI reproduces the same certificates byte for byte.
/// </summary>
public sealed class SimKey
{
    private readonly AsymmetricKeyParameter _private;
    private readonly AsymmetricKeyParameter _public;

    // The last ECDSA signature made (deterministic, RFC 6979), so signing the same message again costs a hash: a
    // platform's PCK key signs the same QE report in every quote.
    private SignedDigest? _lastSignature;

    // When set, ECDSA signatures come from the platform's implementation (OpenSSL; random nonces, about ten times
    // faster than the managed RFC 6979 signer). Only for keys whose signatures need not be reproducible.
    private readonly ECDsa? _platformEcdsa;
    private readonly Lock _platformLock = new();

    private SimKey(AsymmetricKeyParameter priv, AsymmetricKeyParameter pub, ECDsa? platformEcdsa = null)
    {
        _private = priv;
        _public = pub;
        _platformEcdsa = platformEcdsa;
        Kind = priv switch
        {
            ECPrivateKeyParameters ec when ec.Parameters.N.BitLength <= 256 => SimKeyKind.EcP256,
            ECPrivateKeyParameters => SimKeyKind.EcP384,
            RsaKeyParameters => SimKeyKind.Rsa,
            _ => throw new SimulatorException("unsupported key type"),
        };
    }

    public SimKeyKind Kind { get; }

    public static SimKey FromPair(AsymmetricCipherKeyPair pair)
    {
        ArgumentNullException.ThrowIfNull(pair);
        return new SimKey(pair.Private, pair.Public);
    }

    /// <summary>
    /// The same EC key, signing through the platform's ECDSA (random nonces, not reproducible, much faster): for the
    /// per-evidence signatures of an unseeded PKI, where nothing is meant to be reproduced.
    /// </summary>
    public SimKey WithPlatformEcdsa()
    {
        if (_private is not ECPrivateKeyParameters priv || _public is not ECPublicKeyParameters pub)
        {
            throw new SimulatorException("not an EC key");
        }

        var size = Kind == SimKeyKind.EcP256 ? 32 : 48;
        var q = pub.Q.Normalize();
        var parameters = new ECParameters
        {
            Curve = Kind == SimKeyKind.EcP256 ? ECCurve.NamedCurves.nistP256 : ECCurve.NamedCurves.nistP384,
            Q = new ECPoint { X = q.AffineXCoord.GetEncoded(), Y = q.AffineYCoord.GetEncoded() },
            D = priv.D.ToByteArrayUnsigned(),
        };
        if (parameters.D.Length < size)
        {
            parameters.D = [.. new byte[size - parameters.D.Length], .. parameters.D];
        }

        try
        {
            return new SimKey(_private, _public, ECDsa.Create(parameters));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(parameters.D);
        }
    }

    /// <summary>Reads a PKCS#8 "PRIVATE KEY" PEM.</summary>
    public static SimKey FromPkcs8Pem(string pem)
    {
        ArgumentNullException.ThrowIfNull(pem);
        byte[] der;
        try
        {
            var fields = PemEncoding.Find(pem);
            if (!pem.AsSpan()[fields.Label].SequenceEqual("PRIVATE KEY"))
            {
                throw new SimulatorException("expected a PKCS#8 PRIVATE KEY PEM");
            }

            der = Convert.FromBase64String(pem[fields.Base64Data]);
        }
        catch (ArgumentException ex)
        {
            throw new SimulatorException("the key file is not PEM", ex);
        }
        catch (FormatException ex)
        {
            throw new SimulatorException("the key file is not PEM", ex);
        }

        try
        {
            var priv = PrivateKeyFactory.CreateKey(der);
            AsymmetricKeyParameter pub = priv switch
            {
                ECPrivateKeyParameters ec => new ECPublicKeyParameters("EC", ec.Parameters.G.Multiply(ec.D).Normalize(), ec.PublicKeyParamSet),
                RsaPrivateCrtKeyParameters rsa => new RsaKeyParameters(false, rsa.Modulus, rsa.PublicExponent),
                _ => throw new SimulatorException("unsupported private key type"),
            };
            return new SimKey(priv, pub);
        }
        catch (Exception ex) when (ex is not SimulatorException)
        {
            throw new SimulatorException("the private key could not be read", ex);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }

    /// <summary>The private key as PKCS#8 PEM (only for writing the PKI directory's 0600 key files).</summary>
    public string ExportPkcs8Pem()
    {
        var der = PrivateKeyInfoFactory.CreatePrivateKeyInfo(_private).GetDerEncoded();
        try
        {
            return PemEncoding.WriteString("PRIVATE KEY", der);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }

    /// <summary>DER SubjectPublicKeyInfo.</summary>
    public byte[] SubjectPublicKeyInfo() => SubjectPublicKeyInfoFactory.CreateSubjectPublicKeyInfo(_public).GetDerEncoded();

    public PublicKey PublicKey() => System.Security.Cryptography.X509Certificates.PublicKey.CreateFromSubjectPublicKeyInfo(SubjectPublicKeyInfo(), out _);

    /// <summary>Raw uncompressed EC point X ‖ Y without the 0x04 prefix (TDX attestation key form).</summary>
    public byte[] EcPublicPointRaw()
    {
        if (_public is not ECPublicKeyParameters ec)
        {
            throw new SimulatorException("not an EC key");
        }

        var encoded = ec.Q.GetEncoded(false);
        return encoded[1..];
    }

    /// <summary>ECDSA over the message with the curve's hash (SHA-256 for P-256, SHA-384 for P-384); raw r ‖ s, big-endian.</summary>
    public byte[] SignEcdsaP1363(ReadOnlySpan<byte> message)
    {
        if (_private is not ECPrivateKeyParameters ec)
        {
            throw new SimulatorException("not an EC key");
        }

        var p256 = Kind == SimKeyKind.EcP256;
        if (_platformEcdsa is not null)
        {
            lock (_platformLock)
            {
                return _platformEcdsa.SignData(message, p256 ? HashAlgorithmName.SHA256 : HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            }
        }

        var hash = p256 ? SHA256.HashData(message) : SHA384.HashData(message);
        if (_lastSignature is { } last && last.Digest.AsSpan().SequenceEqual(hash))
        {
            return (byte[])last.Signature.Clone();
        }

        IDigest kDigest = p256 ? new Sha256Digest() : new Sha384Digest();
        var signer = new ECDsaSigner(new HMacDsaKCalculator(kDigest));
        signer.Init(true, ec);
        var rs = signer.GenerateSignature(hash);
        var size = p256 ? 32 : 48;
        var output = new byte[2 * size];
        rs[0].ToByteArrayUnsigned().CopyTo(output.AsSpan(size - rs[0].ToByteArrayUnsigned().Length));
        rs[1].ToByteArrayUnsigned().CopyTo(output.AsSpan((2 * size) - rs[1].ToByteArrayUnsigned().Length));
        _lastSignature = new SignedDigest(hash, (byte[])output.Clone());
        return output;
    }

    private sealed record SignedDigest(byte[] Digest, byte[] Signature);

    /// <summary>RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt (AMD's certificate signature scheme).</summary>
    public byte[] SignRsaPssSha384(ReadOnlySpan<byte> message)
    {
        if (_private is not RsaPrivateCrtKeyParameters rsa)
        {
            throw new SimulatorException("not an RSA key");
        }

        // Deterministic salt: HMAC-SHA-384 keyed by a digest of the private exponent.
        var saltKey = SHA384.HashData(rsa.Exponent.ToByteArrayUnsigned());
        var salt = HMACSHA384.HashData(saltKey, message);
        CryptographicOperations.ZeroMemory(saltKey);
        var signer = new PssSigner(new RsaBlindedEngine(), new Sha384Digest(), salt);
        signer.Init(true, rsa);
        var data = message.ToArray();
        signer.BlockUpdate(data, 0, data.Length);
        return signer.GenerateSignature();
    }

    /// <summary>An X.509 signature generator: ecdsa-with-SHA256/384 for EC keys, AMD-style RSASSA-PSS for RSA keys.</summary>
    public X509SignatureGenerator SignatureGenerator() => new Generator(this);

    /// <summary>The DER AlgorithmIdentifier this key signs certificates and CRLs with.</summary>
    public byte[] SignatureAlgorithmIdentifier()
    {
        var w = new AsnWriter(AsnEncodingRules.DER);
        using (w.PushSequence())
        {
            switch (Kind)
            {
                case SimKeyKind.EcP256:
                    w.WriteObjectIdentifier("1.2.840.10045.4.3.2");
                    break;
                case SimKeyKind.EcP384:
                    w.WriteObjectIdentifier("1.2.840.10045.4.3.3");
                    break;
                default:
                    w.WriteObjectIdentifier(PkcsObjectIdentifiers.IdRsassaPss.Id);
                    using (w.PushSequence())
                    {
                        using (w.PushSequence(new Asn1Tag(TagClass.ContextSpecific, 0)))
                        {
                            WriteSha384AlgId(w);
                        }

                        using (w.PushSequence(new Asn1Tag(TagClass.ContextSpecific, 1)))
                        using (w.PushSequence())
                        {
                            w.WriteObjectIdentifier(PkcsObjectIdentifiers.IdMgf1.Id);
                            WriteSha384AlgId(w);
                        }

                        using (w.PushSequence(new Asn1Tag(TagClass.ContextSpecific, 2)))
                        {
                            w.WriteInteger(48);
                        }

                        using (w.PushSequence(new Asn1Tag(TagClass.ContextSpecific, 3)))
                        {
                            w.WriteInteger(1);
                        }
                    }

                    break;
            }
        }

        return w.Encode();

        static void WriteSha384AlgId(AsnWriter w)
        {
            using (w.PushSequence())
            {
                w.WriteObjectIdentifier("2.16.840.1.101.3.4.2.2");
                w.WriteNull();
            }
        }
    }

    /// <summary>A certificate/CRL signature: DER ECDSA-Sig-Value for EC keys, PSS bytes for RSA.</summary>
    public byte[] SignForX509(ReadOnlySpan<byte> tbs)
    {
        if (Kind == SimKeyKind.Rsa)
        {
            return SignRsaPssSha384(tbs);
        }

        var raw = SignEcdsaP1363(tbs);
        var half = raw.Length / 2;
        var w = new AsnWriter(AsnEncodingRules.DER);
        using (w.PushSequence())
        {
            w.WriteIntegerUnsigned(TrimZeros(raw.AsSpan(0, half)));
            w.WriteIntegerUnsigned(TrimZeros(raw.AsSpan(half)));
        }

        return w.Encode();
    }

    private static ReadOnlySpan<byte> TrimZeros(ReadOnlySpan<byte> v)
    {
        var i = 0;
        while (i < v.Length - 1 && v[i] == 0)
        {
            i++;
        }

        return v[i..];
    }

    private sealed class Generator(SimKey key) : X509SignatureGenerator
    {
        public override byte[] GetSignatureAlgorithmIdentifier(HashAlgorithmName hashAlgorithm) => key.SignatureAlgorithmIdentifier();

        public override byte[] SignData(byte[] data, HashAlgorithmName hashAlgorithm) => key.SignForX509(data);

        protected override PublicKey BuildPublicKey() => key.PublicKey();
    }
}
