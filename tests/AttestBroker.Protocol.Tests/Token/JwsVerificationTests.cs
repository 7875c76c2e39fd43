using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Token;

[TestFixture]
public sealed class JwsVerificationTests : IDisposable
{
    private readonly ECDsa _ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public void Dispose() => _ec.Dispose();

    private static string B64(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private JsonObject EcJwk(string? kid = "k1")
    {
        var p = _ec.ExportParameters(false);
        var jwk = new JsonObject { ["kty"] = "EC", ["crv"] = "P-256", ["x"] = B64(p.Q.X!), ["y"] = B64(p.Q.Y!) };
        if (kid is not null)
        {
            jwk["kid"] = kid;
        }

        return jwk;
    }

    private string Es256(JsonObject header, string payload = "{\"sub\":\"x\"}")
    {
        var input = B64(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." + B64(Encoding.UTF8.GetBytes(payload));
        return input + "." + B64(_ec.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
    }

    private static IReadOnlyList<JwsVerificationKey> Set(params JsonObject[] keys) =>
        JwsVerificationKey.ParseSet(Encoding.UTF8.GetBytes(new JsonObject { ["keys"] = new JsonArray(keys) }.ToJsonString()));

    [Test]
    public void A_set_keeps_signature_keys_and_skips_encryption_private_small_and_other_curve_keys()
    {
        using var rsaSmall = RSA.Create(1024);
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var small = rsaSmall.ExportParameters(false);
        var q = p384.ExportParameters(false).Q;
        var enc = EcJwk("enc");
        enc["use"] = "enc";
        var priv = EcJwk("priv");
        priv["d"] = B64(new byte[32]);

        var keys = Set(
            EcJwk("good"),
            enc,
            priv,
            new JsonObject { ["kty"] = "RSA", ["kid"] = "small", ["n"] = B64(small.Modulus!), ["e"] = B64(small.Exponent!) },
            new JsonObject { ["kty"] = "EC", ["crv"] = "P-384", ["kid"] = "p384", ["x"] = B64(q.X!), ["y"] = B64(q.Y!) },
            new JsonObject { ["kty"] = "oct", ["k"] = "AAAA" });

        Assert.That(keys.Select(k => k.KeyId), Is.EqualTo(new[] { "good" }));
    }

    [Test]
    public void A_document_without_keys_is_not_a_JWKS() =>
        Assert.That(() => JwsVerificationKey.ParseSet(Encoding.UTF8.GetBytes("{\"keyz\":[]}")),
            Throws.TypeOf<ProtocolException>().With.Property(nameof(ProtocolException.Error)).EqualTo(ProtocolError.JwksMalformed));

    [Test]
    public void A_token_signed_by_a_key_of_the_set_verifies_and_a_changed_one_does_not()
    {
        var keys = Set(EcJwk());
        var token = Es256(new JsonObject { ["alg"] = "ES256", ["kid"] = "k1" });
        using (var jws = CompactJws.Decode(token, 4096))
        {
            Assert.That(() => jws.VerifySignature(keys), Throws.Nothing);
            Assert.That(jws.Payload.GetProperty("sub").GetString(), Is.EqualTo("x"));
        }

        var parts = token.Split('.');
        using var forged = CompactJws.Decode(parts[0] + "." + B64(Encoding.UTF8.GetBytes("{\"sub\":\"y\"}")) + "." + parts[2], 4096);
        Assert.That(() => forged.VerifySignature(keys), Throws.TypeOf<ProtocolException>().With.Property(nameof(ProtocolException.Error)).EqualTo(ProtocolError.TokenSignatureInvalid));
    }

    [TestCase("none", ProtocolError.TokenAlgorithmNotAllowed)]
    [TestCase("HS256", ProtocolError.TokenAlgorithmNotAllowed)]
    [TestCase("RS256", ProtocolError.TokenKeyUnknown)]
    public void A_token_whose_alg_no_key_of_the_set_has_is_refused(string alg, ProtocolError expected)
    {
        using var jws = CompactJws.Decode(Es256(new JsonObject { ["alg"] = alg, ["kid"] = "k1" }), 4096);
        Assert.That(() => jws.VerifySignature(Set(EcJwk())), Throws.TypeOf<ProtocolException>().With.Property(nameof(ProtocolException.Error)).EqualTo(expected));
    }

    [Test]
    public void A_token_naming_an_unknown_kid_is_refused_as_key_unknown()
    {
        using var jws = CompactJws.Decode(Es256(new JsonObject { ["alg"] = "ES256", ["kid"] = "other" }), 4096);
        Assert.That(() => jws.VerifySignature(Set(EcJwk())), Throws.TypeOf<ProtocolException>().With.Property(nameof(ProtocolException.Error)).EqualTo(ProtocolError.TokenKeyUnknown));
    }

    [TestCase("a.b", TestName = "two segments")]
    [TestCase("a.b.c.d", TestName = "four segments")]
    [TestCase("e30.e30.", TestName = "header without alg")]
    [TestCase("eyJhbGciOiJFUzI1NiJ9.W10.", TestName = "payload not an object")]
    [TestCase("eyJhbGciOiJFUzI1NiIsImNyaXQiOlsieCJdfQ.e30.", TestName = "crit header")]
    [TestCase("eyJhbGciOiJFUzI1NiJ9=.e30.", TestName = "padded base64url")]
    public void Malformed_tokens_are_refused_before_any_signature_check(string token) =>
        Assert.That(() => CompactJws.Decode(token, 4096), Throws.TypeOf<ProtocolException>().With.Property(nameof(ProtocolException.Error)).EqualTo(ProtocolError.TokenMalformed));

    [Test]
    public void An_overlong_token_is_refused() =>
        Assert.That(() => CompactJws.Decode(new string('a', 100) + ".e30.", 64), Throws.TypeOf<ProtocolException>().With.Message.Contains("longer"));

    [Test]
    public void A_JWK_that_is_not_an_object_gives_no_key() =>
        Assert.That(JwsVerificationKey.TryFromJwk(JsonDocument.Parse("[1]").RootElement), Is.Null);
}
