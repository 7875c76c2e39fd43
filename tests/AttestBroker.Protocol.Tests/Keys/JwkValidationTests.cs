using System.Security.Cryptography;
using System.Text;
using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Keys;

[TestFixture]
public sealed class JwkValidationTests
{
    private const string X = "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ";
    private const string Y = "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck";

    private static string Ec(string x = X, string y = Y, string crv = "P-256", string extra = "") =>
        $"{{\"kty\":\"EC\",\"crv\":\"{crv}\",\"x\":\"{x}\",\"y\":\"{y}\"{extra}}}";

    private static string Rsa(string n, string e = "AQAB", string extra = "") => $"{{\"kty\":\"RSA\",\"n\":\"{n}\",\"e\":\"{e}\"{extra}}}";

    private static string RsaN() => TestSupport.B64(TestSupport.Rsa3072.ExportParameters(false).Modulus!);

    [Test]
    public void Valid_p256_key_is_accepted() =>
        Assert.That(Jwk.Parse(Ec()).KeySizeBits, Is.EqualTo(256));

    [Test]
    public void Point_off_the_curve_is_rejected_with_point_not_on_curve()
    {
        var y = TestSupport.UnB64(Y);
        y[^1] ^= 1;
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Ec(y: TestSupport.B64(y)))), Is.EqualTo(ProtocolError.JwkPointNotOnCurve));
    }

    [Test]
    public void Curve_check_agrees_with_the_textbook_equation_for_points_with_small_x_and_random_coordinates([Values("P-256", "P-384")] string crv)
    {
        var curve = EcCurveInfo.FromName(crv)!;
        var pHex = crv == "P-256"
            ? "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"
            : "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff";
        var bHex = crv == "P-256"
            ? "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"
            : "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef";
        var p = System.Numerics.BigInteger.Parse("0" + pHex, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
        var b = System.Numerics.BigInteger.Parse("0" + bHex, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
        var n = curve.CoordinateLength;
        byte[] Bytes(System.Numerics.BigInteger v)
        {
            var raw = v.ToByteArray(isUnsigned: true, isBigEndian: true);
            var padded = new byte[n];
            raw.CopyTo(padded, n - raw.Length);
            return padded;
        }

        bool Textbook(byte[] x, byte[] y)
        {
            var bx = new System.Numerics.BigInteger(x, isUnsigned: true, isBigEndian: true);
            var by = new System.Numerics.BigInteger(y, isUnsigned: true, isBigEndian: true);
            return bx < p && by < p && System.Numerics.BigInteger.ModPow(by, 2, p) == (((System.Numerics.BigInteger.ModPow(bx, 3, p) - (3 * bx) + b) % p) + p) % p;
        }

        // x = 0 .. 40, where x^2 - 3 is negative for the first few: y = sqrt(x^3 - 3x + b) (p = 3 mod 4) when it exists.
        var found = 0;
        for (var i = 0; i <= 40; i++)
        {
            var rhs = ((((System.Numerics.BigInteger)i * i * i) - (3 * i) + b) % p + p) % p;
            var y = System.Numerics.BigInteger.ModPow(rhs, (p + 1) / 4, p);
            var onCurve = y * y % p == rhs;
            found += onCurve ? 1 : 0;
            Assert.That(curve.IsOnCurve(Bytes(i), Bytes(y)), Is.EqualTo(onCurve), $"x = {i}");
            Assert.That(curve.IsOnCurve(Bytes(i), Bytes((y + 1) % p)), Is.False, $"x = {i}, y + 1");
        }

        Assert.That(found, Is.GreaterThan(5));
        Gen.Byte.Array[n].Select(Gen.Byte.Array[n]).Sample((x, y) => curve.IsOnCurve(x, y) == Textbook(x, y), iter: 500);
        using var key = ECDiffieHellman.Create(crv == "P-256" ? ECCurve.NamedCurves.nistP256 : ECCurve.NamedCurves.nistP384);
        var q = key.ExportParameters(false).Q;
        Assert.That(curve.IsOnCurve(q.X, q.Y), Is.True);
    }

    [Test]
    public void Coordinate_at_or_above_the_field_prime_is_rejected_with_point_not_on_curve()
    {
        var p = Convert.FromHexString("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Ec(x: TestSupport.B64(p)))), Is.EqualTo(ProtocolError.JwkPointNotOnCurve));
    }

    [Test]
    public void P256_point_declared_as_p384_is_rejected_with_coordinate_length_invalid() =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Ec(crv: "P-384"))), Is.EqualTo(ProtocolError.JwkCoordinateLengthInvalid));

    [Test]
    public void Coordinate_without_its_leading_zero_byte_is_rejected_with_coordinate_length_invalid()
    {
        var shortX = TestSupport.UnB64(X)[1..];
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Ec(x: TestSupport.B64(shortX)))), Is.EqualTo(ProtocolError.JwkCoordinateLengthInvalid));
    }

    [TestCase("d")]
    [TestCase("p")]
    [TestCase("q")]
    [TestCase("dp")]
    [TestCase("dq")]
    [TestCase("qi")]
    [TestCase("oth")]
    [TestCase("k")]
    public void Public_ec_jwk_with_a_private_member_is_rejected(string member) =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Ec(extra: $",\"{member}\":\"AAAA\""))), Is.EqualTo(ProtocolError.JwkContainsPrivateMembers));

    [Test]
    public void Rsa_private_key_jwk_is_rejected_with_contains_private_members()
    {
        var p = TestSupport.Rsa3072.ExportParameters(true);
        var json = Rsa(TestSupport.B64(p.Modulus!), extra: $",\"d\":\"{TestSupport.B64(p.D!)}\",\"p\":\"{TestSupport.B64(p.P!)}\"");
        var e = Assert.Throws<ProtocolException>(() => Jwk.Parse(json))!;
        Assert.Multiple(() =>
        {
            Assert.That(e.Error, Is.EqualTo(ProtocolError.JwkContainsPrivateMembers));
            Assert.That(e.Message, Does.Not.Contain(TestSupport.B64(p.D!)[..16]));
        });
    }

    [Test]
    public void Rsa_2048_key_is_rejected_with_modulus_too_short()
    {
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Rsa(TestSupport.B64(rsa.ExportParameters(false).Modulus!)))), Is.EqualTo(ProtocolError.JwkRsaModulusTooShort));
    }

    [Test]
    public void Rsa_modulus_with_a_leading_zero_byte_is_rejected_with_modulus_invalid()
    {
        var n = TestSupport.Rsa3072.ExportParameters(false).Modulus!;
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Rsa(TestSupport.B64([0, .. n])))), Is.EqualTo(ProtocolError.JwkRsaModulusInvalid));
    }

    [Test]
    public void Even_rsa_modulus_is_rejected_with_modulus_invalid()
    {
        var n = TestSupport.Rsa3072.ExportParameters(false).Modulus!;
        n[^1] &= 0xfe;
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Rsa(TestSupport.B64(n)))), Is.EqualTo(ProtocolError.JwkRsaModulusInvalid));
    }

    [TestCase("Ag")] // 2: even
    [TestCase("AQ")] // 1: too small
    [TestCase("AAEAAQ")] // leading zero
    [TestCase("AQAAAAE")] // 5 bytes
    public void Bad_rsa_exponent_is_rejected_with_exponent_invalid(string e) =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Rsa(RsaN(), e))), Is.EqualTo(ProtocolError.JwkRsaExponentInvalid));

    [TestCase("oct")]
    [TestCase("OKP")]
    [TestCase("ec")]
    public void Unknown_kty_is_rejected_with_unsupported_key_type(string kty) =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse($"{{\"kty\":\"{kty}\",\"crv\":\"P-256\",\"x\":\"{X}\",\"y\":\"{Y}\"}}")), Is.EqualTo(ProtocolError.JwkUnsupportedKeyType));

    [TestCase("P-521")]
    [TestCase("secp256k1")]
    [TestCase("X25519")]
    public void Unknown_crv_is_rejected_with_unsupported_curve(string crv) =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Ec(crv: crv))), Is.EqualTo(ProtocolError.JwkUnsupportedCurve));

    [TestCase("weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ=")] // padding
    [TestCase("weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF/PxMQ")] // standard alphabet
    [TestCase("weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMR")] // non-zero unused bits
    [TestCase("weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_Px MQ")] // whitespace
    public void Coordinate_that_is_not_strict_base64url_is_rejected_with_jwk_malformed(string x) =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Ec(x: x))), Is.EqualTo(ProtocolError.JwkMalformed));

    [TestCase("")]
    [TestCase("[]")]
    [TestCase("\"EC\"")]
    [TestCase("{\"kty\":1}")]
    [TestCase("{\"crv\":\"P-256\"}")]
    [TestCase("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + X + "\"}")]
    [TestCase("{\"kty\":\"EC\",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + X + "\",\"y\":\"" + Y + "\"}")]
    [TestCase("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + X + "\",\"y\":\"" + Y + "\",}")]
    [TestCase("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" + X + "\",\"y\":\"" + Y + "\",\"kid\":7}")]
    public void Json_of_the_wrong_shape_is_rejected_with_jwk_malformed(string json) =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(json)), Is.EqualTo(ProtocolError.JwkMalformed));

    [Test]
    public void Invalid_utf8_is_rejected_with_jwk_malformed() =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(new byte[] { 0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d })), Is.EqualTo(ProtocolError.JwkMalformed));

    [Test]
    public void String_with_an_escaped_lone_surrogate_is_rejected_with_jwk_malformed() =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Ec(extra: ",\"kid\":\"\\ud800\""))), Is.EqualTo(ProtocolError.JwkMalformed));

    [Test]
    public void Jwk_text_over_the_size_limit_is_rejected_with_jwk_malformed() =>
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(Ec(extra: $",\"pad\":\"{new string('a', Jwk.MaximumJsonLength)}\""))), Is.EqualTo(ProtocolError.JwkMalformed));

    [Test]
    public void Ec_key_on_p521_cannot_become_a_jwk_and_is_refused_with_unsupported_curve()
    {
        using var k = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP521);
        Assert.That(TestSupport.ErrorOf(() => Jwk.FromPublicKey(k)), Is.EqualTo(ProtocolError.JwkUnsupportedCurve));
    }

    [Test]
    public void Rsa_2048_key_cannot_become_a_jwk_and_is_refused_with_modulus_too_short()
    {
        using var k = RSA.Create(2048);
        Assert.That(TestSupport.ErrorOf(() => Jwk.FromPublicKey(k)), Is.EqualTo(ProtocolError.JwkRsaModulusTooShort));
    }

    [Test]
    public void Random_text_fails_only_with_protocol_exception() =>
        Gen.String[Gen.Char["{}[]\":,0123456789.-_ ktyECRSAcrvxyneP256\\u"], 0, 200].Sample(s =>
        {
            try
            {
                Jwk.Parse(s);
            }
            catch (ProtocolException)
            {
            }
        }, iter: 5000);

    [Test]
    public void Mutated_valid_jwks_are_refused_or_parsed_never_crash()
    {
        var valid = Ec();
        Gen.Select(Gen.Int[0, valid.Length - 1], Gen.Char).Array[1, 4].Sample(muts =>
        {
            var chars = valid.ToCharArray();
            foreach (var (i, c) in muts)
            {
                chars[i] = c;
            }

            try
            {
                Jwk.Parse(new string(chars));
            }
            catch (ProtocolException)
            {
            }
        }, iter: 5000);
    }

    [Test]
    public void Unknown_members_are_ignored_as_rfc7517_requires() =>
        Assert.That(Jwk.Parse(Ec(extra: ",\"ext\":true,\"key_ops\":[\"deriveKey\"]")).Thumbprint(), Is.EqualTo(Jwk.Parse(Ec()).Thumbprint()));

    [Test]
    public void Deep_json_is_rejected_with_jwk_malformed()
    {
        var deep = new StringBuilder("{\"kty\":\"EC\",\"z\":");
        deep.Append('[', 100).Append(']', 100).Append('}');
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(deep.ToString())), Is.EqualTo(ProtocolError.JwkMalformed));
    }
}
