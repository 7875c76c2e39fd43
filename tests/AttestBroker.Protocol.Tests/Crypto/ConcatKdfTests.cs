using System.Security.Cryptography;
using System.Text;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Crypto;

[TestFixture]
public sealed class ConcatKdfTests
{
    // RFC 7518 Appendix C: Alice's ephemeral key and Bob's key (P-256), the shared secret Z and the derived key.
    private const string AliceX = "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0";
    private const string AliceY = "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps";
    private const string AliceD = "0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo";
    private const string BobX = "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ";
    private const string BobY = "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck";
    private const string BobD = "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw";

    private static readonly byte[] RfcZ =
    [
        158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156,
        251, 49, 110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
    ];

    private static ECDiffieHellman Key(string x, string y, string d) => ECDiffieHellman.Create(new ECParameters
    {
        Curve = ECCurve.NamedCurves.nistP256,
        Q = new ECPoint { X = TestSupport.UnB64(x), Y = TestSupport.UnB64(y) },
        D = TestSupport.UnB64(d),
    });

    [Test]
    public void Rfc7518_appendix_c_key_agreement_gives_the_rfc_shared_secret()
    {
        using var alice = Key(AliceX, AliceY, AliceD);
        using var bob = Key(BobX, BobY, BobD);
        Assert.Multiple(() =>
        {
            Assert.That(alice.DeriveRawSecretAgreement(bob.PublicKey), Is.EqualTo(RfcZ));
            Assert.That(bob.DeriveRawSecretAgreement(alice.PublicKey), Is.EqualTo(RfcZ));
        });
    }

    [Test]
    public void Rfc7518_appendix_c_concat_kdf_gives_the_rfc_derived_key()
    {
        var derived = ConcatKdf.Derive(RfcZ, "A128GCM", Encoding.ASCII.GetBytes("Alice"), Encoding.ASCII.GetBytes("Bob"), 128);
        Assert.Multiple(() =>
        {
            Assert.That(TestSupport.B64(derived), Is.EqualTo("VqqN6vgjbSBcIijNcacQGg"));
            Assert.That(derived, Is.EqualTo(new byte[] { 86, 170, 141, 234, 248, 35, 109, 32, 92, 34, 40, 205, 113, 167, 16, 26 }));
        });
    }

    [Test]
    public void Ecdh_es_a256kw_kek_is_one_sha256_round_over_the_rfc7518_other_info()
    {
        var z = RandomNumberGenerator.GetBytes(32);
        var alg = Encoding.ASCII.GetBytes("ECDH-ES+A256KW");
        byte[] input = [0, 0, 0, 1, .. z, 0, 0, 0, (byte)alg.Length, .. alg, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        Assert.That(ConcatKdf.Derive(z, "ECDH-ES+A256KW", default, default, 256), Is.EqualTo(SHA256.HashData(input)));
    }

    [Test]
    public void Key_longer_than_one_hash_uses_successive_counters()
    {
        var z = RandomNumberGenerator.GetBytes(32);
        var longKey = ConcatKdf.Derive(z, "X", default, default, 512);
        var otherInfo = new byte[] { 0, 0, 0, 1, (byte)'X', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0 };
        byte[] round2 = [0, 0, 0, 2, .. z, .. otherInfo];
        Assert.That(longKey[32..], Is.EqualTo(SHA256.HashData(round2)));
    }
}
