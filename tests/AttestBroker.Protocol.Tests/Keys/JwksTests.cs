using System.Security.Cryptography;
using NUnit.Framework;
using Set = AttestBroker.Protocol.Jwks;

namespace AttestBroker.Protocol.Tests.Keys;

[TestFixture]
public sealed class JwksTests
{
    [Test]
    public void Published_set_holds_public_members_only_with_kid_as_thumbprint_alg_es256_and_use_sig()
    {
        using var a = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var b = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var set = Set.FromSigningKeys([a, b]);
        var json = set.ToJson();
        var d = TestSupport.B64(a.ExportParameters(true).D!);

        Assert.Multiple(() =>
        {
            Assert.That(json, Does.Not.Contain("\"d\""));
            Assert.That(json, Does.Not.Contain(d));
            Assert.That(set.Keys, Has.Count.EqualTo(2));
            Assert.That(set.Keys[0].KeyId, Is.EqualTo(Jwk.FromPublicKey(a).Thumbprint()));
            Assert.That(set.Keys[0].Algorithm, Is.EqualTo("ES256"));
            Assert.That(set.Keys[0].Use, Is.EqualTo("sig"));
            Assert.That(json, Does.StartWith("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","));
        });
    }

    [Test]
    public void Published_set_parses_back_to_the_same_keys()
    {
        using var a = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var set = Set.FromSigningKeys([a]);
        var again = Set.Parse(set.ToJson());
        var kid = Jwk.FromPublicKey(a).Thumbprint();
        Assert.Multiple(() =>
        {
            Assert.That(again.Find(kid)!.SameKeyAs(set.Keys[0]), Is.True);
            Assert.That(again.Find("nope"), Is.Null);
        });
    }

    [Test]
    public void Set_with_a_private_member_is_rejected_with_jwks_malformed()
    {
        using var a = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var json = Set.FromSigningKeys([a]).ToJson().Replace("\"use\"", "\"d\":\"AAAA\",\"use\"", StringComparison.Ordinal);
        Assert.That(TestSupport.ErrorOf(() => Set.Parse(json)), Is.EqualTo(ProtocolError.JwksMalformed));
    }

    [Test]
    public void Set_whose_kid_is_not_the_thumbprint_is_rejected_with_jwks_malformed()
    {
        using var a = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var kid = Jwk.FromPublicKey(a).Thumbprint();
        var json = Set.FromSigningKeys([a]).ToJson().Replace(kid, "key-1", StringComparison.Ordinal);
        Assert.That(TestSupport.ErrorOf(() => Set.Parse(json)), Is.EqualTo(ProtocolError.JwksMalformed));
    }

    [Test]
    public void Set_with_a_repeated_key_is_rejected_with_jwks_malformed()
    {
        using var a = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        Assert.That(TestSupport.ErrorOf(() => Set.FromSigningKeys([a, a])), Is.EqualTo(ProtocolError.JwksMalformed));
    }

    [Test]
    public void Set_with_an_rsa_or_p384_key_is_rejected_with_jwks_malformed()
    {
        var rsa = Jwk.FromPublicKey(TestSupport.Rsa3072);
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var ec384 = Jwk.FromPublicKey(p384);
        Assert.Multiple(() =>
        {
            Assert.That(TestSupport.ErrorOf(() => Set.Parse($"{{\"keys\":[{rsa.WithMetadata(rsa.Thumbprint(), null, null).ToJson()}]}}")), Is.EqualTo(ProtocolError.JwksMalformed));
            Assert.That(TestSupport.ErrorOf(() => Set.Parse($"{{\"keys\":[{ec384.WithMetadata(ec384.Thumbprint(), null, null).ToJson()}]}}")), Is.EqualTo(ProtocolError.JwksMalformed));
        });
    }

    [TestCase("{}")]
    [TestCase("{\"keys\":{}}")]
    [TestCase("[]")]
    [TestCase("{\"keys\":[1]}")]
    public void Document_of_the_wrong_shape_is_rejected_with_jwks_malformed(string json) =>
        Assert.That(TestSupport.ErrorOf(() => Set.Parse(json)), Is.EqualTo(ProtocolError.JwksMalformed));

    [Test]
    public void Signing_key_that_is_not_p256_is_refused_with_token_parameters_invalid()
    {
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using var brainpool = ECDsa.Create(ECCurve.NamedCurves.brainpoolP256r1);
        Assert.Multiple(() =>
        {
            Assert.That(TestSupport.ErrorOf(() => Set.FromSigningKeys([p384])), Is.EqualTo(ProtocolError.TokenParametersInvalid));
            Assert.That(TestSupport.ErrorOf(() => Set.FromSigningKeys([brainpool])), Is.EqualTo(ProtocolError.TokenParametersInvalid));
        });
    }
}
