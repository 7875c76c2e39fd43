using System.Security.Cryptography;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Crypto;

[TestFixture]
public sealed class EcdhAgreementTests
{
    private static readonly byte[] ModelKey = RandomNumberGenerator.GetBytes(32);

    private static ECCurve Curve(string crv) => crv == "P-384" ? ECCurve.NamedCurves.nistP384 : ECCurve.NamedCurves.nistP256;

    [Test]
    public void On_linux_with_openssl_3_agreements_go_to_openssl_directly()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Ignore("the direct path exists on Linux only");
            return;
        }

        if (Environment.GetEnvironmentVariable("ATTESTBROKER_ECDH_DOTNET_ONLY") == "1")
        {
            Assert.Ignore("ATTESTBROKER_ECDH_DOTNET_ONLY=1 turns the direct path off");
        }

        if ((SafeEvpPKeyHandle.OpenSslVersion >> 28) != 3)
        {
            Assert.Ignore($".NET uses OpenSSL {SafeEvpPKeyHandle.OpenSslVersion:x}, not 3.x");
        }

        Assert.Multiple(() =>
        {
            Assert.That(EcdhAgreement.UsesOpenSslDirectly, Is.True);
            using var key = EcdhAgreement.CreateKey(ECCurve.NamedCurves.nistP256);
            Assert.That(key, Is.InstanceOf<ECDiffieHellmanOpenSsl>());
        });
    }

    [Test]
    public void Direct_agreement_gives_the_same_secret_as_dotnet_for_fresh_keys([Values("P-256", "P-384")] string crv)
    {
        for (var i = 0; i < 50; i++)
        {
            using var own = EcdhAgreement.CreateKey(Curve(crv));
            using var other = ECDiffieHellman.Create(Curve(crv));
            var peer = Jwk.FromPublicKey(other);

            var z = EcdhAgreement.DeriveRawSecret(own, peer);
            var expected = EcdhAgreement.DeriveThroughDotNet(own, peer);
            var reverse = EcdhAgreement.DeriveRawSecret(other, Jwk.FromPublicKey(own));

            Assert.That(z, Is.EqualTo(expected));
            Assert.That(reverse, Is.EqualTo(expected));
            Assert.That(z, Has.Length.EqualTo(crv == "P-384" ? 48 : 32));
        }
    }

    [Test]
    public void The_direct_import_takes_a_point_on_the_curve_and_refuses_one_off_it_or_of_the_wrong_length([Values("P-256", "P-384")] string crv)
    {
        if (!OperatingSystem.IsLinux() || !EcdhAgreement.UsesOpenSslDirectly)
        {
            Assert.Ignore("the direct path is not in use here");
        }

        using var key = ECDiffieHellman.Create(Curve(crv));
        var q = key.ExportParameters(false).Q;
        byte[] point = [0x04, .. q.X!, .. q.Y!];
        var group = crv == "P-384" ? "secp384r1" : "prime256v1";
        var offCurve = (byte[])point.Clone();
        offCurve[^1] ^= 1;

        var good = EcdhAgreement.ImportPeerPoint(group, point);
        var bad = EcdhAgreement.ImportPeerPoint(group, offCurve);
        var shortPoint = EcdhAgreement.ImportPeerPoint(group, point.AsSpan(0, point.Length - 1));
        var otherCurve = EcdhAgreement.ImportPeerPoint(crv == "P-384" ? "prime256v1" : "secp384r1", point);
        try
        {
            Assert.Multiple(() =>
            {
                Assert.That(good, Is.Not.EqualTo(nint.Zero), "a valid point imports");
                Assert.That(bad, Is.EqualTo(nint.Zero), "a point off the curve (last bit of Y flipped) is refused");
                Assert.That(shortPoint, Is.EqualTo(nint.Zero), "a point one byte short is refused");
                Assert.That(otherCurve, Is.EqualTo(nint.Zero), "a point of another curve's size is refused");
            });
        }
        finally
        {
            EcdhAgreement.FreeKey(good);
            EcdhAgreement.FreeKey(bad);
            EcdhAgreement.FreeKey(shortPoint);
            EcdhAgreement.FreeKey(otherCurve);
        }
    }

    [Test]
    public void New_keys_are_on_the_requested_curve_distinct_and_export_both_halves([Values("P-256", "P-384", "P-521")] string crv)
    {
        var curve = crv == "P-521" ? ECCurve.NamedCurves.nistP521 : Curve(crv);
        using var a = EcdhAgreement.CreateKey(curve);
        using var b = EcdhAgreement.CreateKey(curve);
        var pa = a.ExportParameters(includePrivateParameters: true);
        var pb = b.ExportParameters(includePrivateParameters: true);
        using var reimported = ECDiffieHellman.Create(pa);

        Assert.Multiple(() =>
        {
            Assert.That(a.KeySize, Is.EqualTo(int.Parse(crv[2..], System.Globalization.CultureInfo.InvariantCulture)));
            Assert.That(pa.Curve.Oid.Value, Is.EqualTo(curve.Oid.Value));
            Assert.That(pa.D, Is.Not.EqualTo(pb.D), "two generations give two keys");
            Assert.That(reimported.ExportParameters(false).Q.X, Is.EqualTo(pa.Q.X), "the private half re-imports to the same point (.NET checks it)");
        });
    }

    [Test]
    public void An_own_key_without_its_private_half_cannot_agree([Values("P-256", "P-384")] string crv)
    {
        using var full = EcdhAgreement.CreateKey(Curve(crv));
        using var publicOnly = EcdhAgreement.CreateKey(Curve(crv));
        publicOnly.ImportParameters(full.ExportParameters(includePrivateParameters: false));
        using var other = ECDiffieHellman.Create(Curve(crv));

        Assert.That(() => EcdhAgreement.DeriveRawSecret(publicOnly, Jwk.FromPublicKey(other)), Throws.InstanceOf<CryptographicException>());
    }

    [Test]
    public void A_peer_on_another_curve_cannot_agree()
    {
        using var own = EcdhAgreement.CreateKey(ECCurve.NamedCurves.nistP256);
        using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP384);

        Assert.That(() => EcdhAgreement.DeriveRawSecret(own, Jwk.FromPublicKey(other)), Throws.InstanceOf<CryptographicException>());
    }

    [Test]
    public void Jwe_to_a_directly_held_pod_key_decrypts_and_a_wrong_key_is_refused([Values("P-256", "P-384")] string crv)
    {
        using var pod = EcdhAgreement.CreateKey(Curve(crv));
        using var stranger = EcdhAgreement.CreateKey(Curve(crv));
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), "k");

        Assert.Multiple(() =>
        {
            Assert.That(JweDecryptor.Decrypt(jwe, pod), Is.EqualTo(ModelKey));
            var ex = Assert.Throws<ProtocolException>(() => JweDecryptor.Decrypt(jwe, stranger));
            Assert.That(ex!.Error, Is.EqualTo(ProtocolError.JweDecryptionFailed));
        });
    }
}
