using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;

namespace AttestBroker.Protocol;

/// <summary>The two NIST curves this protocol accepts, with what is needed to check a point is on the curve.</summary>
internal sealed class EcCurveInfo
{
    // FIPS 186-4 D.1.2.3 / D.1.2.4: the field primes and the b coefficients (a = -3 for both).
    public static readonly EcCurveInfo P256 = new(
        "P-256",
        32,
        ECCurve.NamedCurves.nistP256,
        "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
        "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b");

    public static readonly EcCurveInfo P384 = new(
        "P-384",
        48,
        ECCurve.NamedCurves.nistP384,
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
        "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef");

    private readonly BigInteger _p;
    private readonly BigInteger _b;

    private EcCurveInfo(string name, int coordinateLength, ECCurve curve, string pHex, string bHex)
    {
        Name = name;
        CoordinateLength = coordinateLength;
        Curve = curve;
        _p = BigInteger.Parse("0" + pHex, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        _b = BigInteger.Parse("0" + bHex, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    }

    /// <summary>The JWK "crv" name.</summary>
    public string Name { get; }

    /// <summary>Bytes per coordinate (the field size).</summary>
    public int CoordinateLength { get; }

    public ECCurve Curve { get; }

    public int KeySizeBits => CoordinateLength * 8;

    public static EcCurveInfo? FromName(string crv) => crv switch
    {
        "P-256" => P256,
        "P-384" => P384,
        _ => null,
    };

    /// <summary>True when both coordinates are below p and y^2 = x^3 - 3x + b (mod p). Both curves have cofactor 1.</summary>
    public bool IsOnCurve(ReadOnlySpan<byte> x, ReadOnlySpan<byte> y)
    {
        var bx = new BigInteger(x, isUnsigned: true, isBigEndian: true);
        var by = new BigInteger(y, isUnsigned: true, isBigEndian: true);
        if (bx >= _p || by >= _p)
        {
            return false;
        }

        // Plain products and one reduction each (ModPow is for large exponents; these are 2 and 3).
        var lhs = by * by % _p;
        var rhs = (((bx * bx % _p) - 3) * bx + _b) % _p;
        if (rhs.Sign < 0)
        {
            rhs += _p;
        }

        return lhs == rhs;
    }
}
