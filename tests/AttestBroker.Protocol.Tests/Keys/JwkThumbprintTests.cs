using System.Security.Cryptography;
using System.Text;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Keys;

[TestFixture]
public sealed class JwkThumbprintTests
{
    // RFC 7638 §3.1: the RSA key of the example and its SHA-256 thumbprint.
    private const string RfcN =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    private const string RfcJwk = "{\"kty\":\"RSA\",\"n\":\"" + RfcN + "\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}";

    [Test]
    public void Rfc7638_example_rsa_key_has_the_rfc_thumbprint()
    {
        // The RFC's key is 2048 bits, below the protocol minimum, so it is read with the internal lower bound.
        var jwk = Jwk.Parse(Encoding.UTF8.GetBytes(RfcJwk), minimumRsaBits: 2048);

        Assert.Multiple(() =>
        {
            Assert.That(jwk.ThumbprintInput(), Is.EqualTo("{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"" + RfcN + "\"}"));
            Assert.That(jwk.Thumbprint(), Is.EqualTo("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
            Assert.That(jwk.KeyId, Is.EqualTo("2011-04-29"));
        });
    }

    [Test]
    public void Rfc7638_example_rsa_key_is_rejected_by_the_public_parser_as_too_short()
    {
        Assert.That(TestSupport.ErrorOf(() => Jwk.Parse(RfcJwk)), Is.EqualTo(ProtocolError.JwkRsaModulusTooShort));
    }

    [Test]
    public void Ec_thumbprint_uses_crv_kty_x_y_in_that_order_and_ignores_metadata()
    {
        const string X = "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ";
        const string Y = "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck";
        var plain = Jwk.Parse($"{{\"y\":\"{Y}\",\"x\":\"{X}\",\"kty\":\"EC\",\"crv\":\"P-256\"}}");
        var decorated = Jwk.Parse($"{{\"kty\":\"EC\",\"kid\":\"k1\",\"use\":\"enc\",\"crv\":\"P-256\",\"x\":\"{X}\",\"y\":\"{Y}\",\"alg\":\"ECDH-ES+A256KW\"}}");
        var expectedInput = $"{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{X}\",\"y\":\"{Y}\"}}";

        Assert.Multiple(() =>
        {
            Assert.That(plain.ThumbprintInput(), Is.EqualTo(expectedInput));
            Assert.That(plain.ThumbprintBytes(), Is.EqualTo(SHA256.HashData(Encoding.UTF8.GetBytes(expectedInput))));
            Assert.That(decorated.Thumbprint(), Is.EqualTo(plain.Thumbprint()));
            Assert.That(plain.Thumbprint(), Has.Length.EqualTo(43));
        });
    }

    [Test]
    public void Thumbprint_of_a_generated_key_survives_a_json_round_trip([Values("P-256", "P-384")] string crv)
    {
        using var k = TestSupport.NewEcdh(crv);
        var jwk = Jwk.FromPublicKey(k, kid: "a");
        var again = Jwk.Parse(jwk.ToJson());

        Assert.Multiple(() =>
        {
            Assert.That(again.Thumbprint(), Is.EqualTo(jwk.Thumbprint()));
            Assert.That(again.SameKeyAs(jwk), Is.True);
            Assert.That(again.Crv, Is.EqualTo(crv));
        });
    }

    [Test]
    public void Rsa_key_exported_by_dotnet_round_trips_with_the_same_thumbprint()
    {
        var jwk = Jwk.FromPublicKey(TestSupport.Rsa3072);
        var again = Jwk.Parse(jwk.ToJson());

        Assert.Multiple(() =>
        {
            Assert.That(again.Thumbprint(), Is.EqualTo(jwk.Thumbprint()));
            Assert.That(again.KeySizeBits, Is.EqualTo(3072));
            Assert.That(jwk.ToJson(), Does.Contain("\"e\":\"AQAB\""));
        });
    }
}
