using System.Numerics;
using System.Security.Cryptography;

namespace AttestBroker.Verification.Tdx;

/// <summary>Raw P-256 keys and signatures as TDX quotes carry them (X ‖ Y, r ‖ s, 32-byte big-endian each).</summary>
internal static class P256
{
    private static readonly BigInteger Prime = BigInteger.Parse("0FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF", System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
    private static readonly BigInteger B = BigInteger.Parse("05AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B", System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Imported attestation keys by their 64 bytes (a Quoting Enclave keeps its key across quotes).</summary>
    private static readonly VerificationMemo<ECDsa?> SharedKeys = new(1024);

    /// <summary>
    /// <see cref="ImportRawPublicKey"/>, remembered: importing a key costs more than verifying with it. The key is
    /// shared between verifications (public-key verification only, which OpenSSL runs on a context of its own per
    /// call); callers must not dispose it.
    /// </summary>
    public static ECDsa? SharedPublicKey(ReadOnlySpan<byte> xy)
    {
        var copy = xy.ToArray();
        return SharedKeys.GetOrAdd(xy, () => ImportRawPublicKey(copy));
    }

    /// <summary>The key, or null when the 64 bytes are not a point on P-256 (checked here, not left to the platform).</summary>
    public static ECDsa? ImportRawPublicKey(ReadOnlySpan<byte> xy)
    {
        if (xy.Length != 64)
        {
            return null;
        }

        var x = new BigInteger(xy[..32], isUnsigned: true, isBigEndian: true);
        var y = new BigInteger(xy[32..], isUnsigned: true, isBigEndian: true);
        if (x >= Prime || y >= Prime)
        {
            return null;
        }

        var lhs = BigInteger.ModPow(y, 2, Prime);
        var rhs = (BigInteger.ModPow(x, 3, Prime) - (3 * x) + B) % Prime;
        if (rhs < 0)
        {
            rhs += Prime;
        }

        if (lhs != rhs)
        {
            return null;
        }

        try
        {
            return ECDsa.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = xy[..32].ToArray(), Y = xy[32..].ToArray() },
            });
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    /// <summary>Verifies a raw r ‖ s ECDSA-P256/SHA-256 signature; false for any malformed input.</summary>
    public static bool Verify(ECDsa key, ReadOnlySpan<byte> data, ReadOnlySpan<byte> rs)
    {
        if (rs.Length != 64)
        {
            return false;
        }

        try
        {
            return key.VerifyData(data, rs, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }
}
