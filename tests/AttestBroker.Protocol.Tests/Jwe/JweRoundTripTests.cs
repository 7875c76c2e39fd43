using System.Security.Cryptography;
using System.Text.Json;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Jwe;

[TestFixture]
public sealed class JweRoundTripTests
{
    private static readonly byte[] ModelKey = Convert.FromHexString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");

    [Test]
    public void Ec_recipient_decrypts_what_the_broker_encrypted([Values("P-256", "P-384")] string crv)
    {
        using var pod = TestSupport.NewEcdh(crv);
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), "model-7");

        var plaintext = JweDecryptor.Decrypt(jwe, pod, out var kid);

        Assert.Multiple(() =>
        {
            Assert.That(plaintext, Is.EqualTo(ModelKey));
            Assert.That(kid, Is.EqualTo("model-7"));
        });
    }

    [Test]
    public void Rsa_recipient_decrypts_what_the_broker_encrypted([Values(3072, 4096)] int bits)
    {
        var pod = bits == 3072 ? TestSupport.Rsa3072 : TestSupport.Rsa4096;
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), null);

        Assert.Multiple(() =>
        {
            Assert.That(JweDecryptor.Decrypt(jwe, pod), Is.EqualTo(ModelKey));
            Assert.That(TestSupport.UnB64(jwe.Split('.')[1]), Has.Length.EqualTo(bits / 8));
        });
    }

    [Test]
    public void Ec_jwe_header_names_ecdh_es_a256kw_a256gcm_and_a_public_epk_on_the_recipient_curve([Values("P-256", "P-384")] string crv)
    {
        using var pod = TestSupport.NewEcdh(crv);
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), "k");
        using var header = JsonDocument.Parse(TestSupport.HeaderJson(jwe));
        var h = header.RootElement;
        var parts = jwe.Split('.');

        Assert.Multiple(() =>
        {
            Assert.That(parts, Has.Length.EqualTo(5));
            Assert.That(h.GetProperty("alg").GetString(), Is.EqualTo("ECDH-ES+A256KW"));
            Assert.That(h.GetProperty("enc").GetString(), Is.EqualTo("A256GCM"));
            Assert.That(h.GetProperty("kid").GetString(), Is.EqualTo("k"));
            Assert.That(h.GetProperty("epk").GetProperty("crv").GetString(), Is.EqualTo(crv));
            Assert.That(h.GetProperty("epk").TryGetProperty("d", out _), Is.False);
            Assert.That(h.TryGetProperty("apu", out _), Is.False);
            Assert.That(h.TryGetProperty("zip", out _), Is.False);
            Assert.That(TestSupport.UnB64(parts[1]), Has.Length.EqualTo(40));
            Assert.That(TestSupport.UnB64(parts[2]), Has.Length.EqualTo(12));
            Assert.That(TestSupport.UnB64(parts[3]), Has.Length.EqualTo(ModelKey.Length));
            Assert.That(TestSupport.UnB64(parts[4]), Has.Length.EqualTo(16));
        });
    }

    [Test]
    public void Rsa_jwe_header_names_rsa_oaep_256_and_a256gcm_without_epk()
    {
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(TestSupport.Rsa3072), null);
        using var header = JsonDocument.Parse(TestSupport.HeaderJson(jwe));

        Assert.That(header.RootElement.EnumerateObject().Select(p => $"{p.Name}={p.Value}"), Is.EqualTo(new[] { "alg=RSA-OAEP-256", "enc=A256GCM" }));
    }

    [Test]
    public void Apu_and_apv_when_given_are_sent_and_used_in_the_kdf()
    {
        using var pod = TestSupport.NewEcdh("P-256");
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), null, "broker"u8, "pod"u8);
        using var header = JsonDocument.Parse(TestSupport.HeaderJson(jwe));

        Assert.Multiple(() =>
        {
            Assert.That(header.RootElement.GetProperty("apu").GetString(), Is.EqualTo(TestSupport.B64("broker"u8)));
            Assert.That(header.RootElement.GetProperty("apv").GetString(), Is.EqualTo(TestSupport.B64("pod"u8)));
            Assert.That(JweDecryptor.Decrypt(jwe, pod), Is.EqualTo(ModelKey));
        });
    }

    [Test]
    public void Each_encryption_uses_a_fresh_ephemeral_key_iv_and_content_key()
    {
        using var pod = TestSupport.NewEcdh("P-256");
        var recipient = Jwk.FromPublicKey(pod);
        var a = JweEncryptor.Encrypt(ModelKey, recipient, null).Split('.');
        var b = JweEncryptor.Encrypt(ModelKey, recipient, null).Split('.');

        Assert.Multiple(() =>
        {
            Assert.That(a[0], Is.Not.EqualTo(b[0]));
            Assert.That(a[1], Is.Not.EqualTo(b[1]));
            Assert.That(a[2], Is.Not.EqualTo(b[2]));
            Assert.That(a[3], Is.Not.EqualTo(b[3]));
        });
    }

    [Test]
    public void Recipient_jwk_whose_alg_names_another_algorithm_is_refused_with_purpose_mismatch()
    {
        using var pod = TestSupport.NewEcdh("P-256");
        var recipient = Jwk.FromPublicKey(pod, alg: "ECDH-ES");
        Assert.That(TestSupport.ErrorOf(() => JweEncryptor.Encrypt(ModelKey, recipient, null)), Is.EqualTo(ProtocolError.JwkPurposeMismatch));
    }

    [Test]
    public void Recipient_jwk_marked_for_signing_is_refused_with_purpose_mismatch()
    {
        var recipient = Jwk.FromPublicKey(TestSupport.Rsa3072, use: "sig");
        Assert.That(TestSupport.ErrorOf(() => JweEncryptor.Encrypt(ModelKey, recipient, null)), Is.EqualTo(ProtocolError.JwkPurposeMismatch));
    }

    [TestCase(0)]
    [TestCase(JweEncryptor.MaximumPlaintextLength + 1)]
    public void Plaintext_of_a_bad_length_is_refused_with_plaintext_length_invalid(int length)
    {
        using var pod = TestSupport.NewEcdh("P-256");
        Assert.That(TestSupport.ErrorOf(() => JweEncryptor.Encrypt(new byte[length], Jwk.FromPublicKey(pod), null)), Is.EqualTo(ProtocolError.PlaintextLengthInvalid));
    }

    [Test]
    public void Ecdh_private_key_on_another_curve_is_refused_with_recipient_key_unsupported()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP521);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt("a.b.c.d.e", pod)), Is.EqualTo(ProtocolError.RecipientKeyUnsupported));
    }

    [Test]
    public void Public_only_ecdh_key_is_refused_with_recipient_key_unsupported()
    {
        using var pod = TestSupport.NewEcdh("P-256");
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), null);
        using var publicOnly = Jwk.FromPublicKey(pod).CreateECDiffieHellman();
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(jwe, publicOnly)), Is.EqualTo(ProtocolError.RecipientKeyUnsupported));
    }

    [Test]
    public void Brainpool_p256_private_key_is_refused_with_recipient_key_unsupported()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.brainpoolP256r1);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt("a.b.c.d.e", pod)), Is.EqualTo(ProtocolError.RecipientKeyUnsupported));
    }

    [Test]
    public void Rsa_2048_private_key_is_refused_with_recipient_key_unsupported()
    {
        using var pod = RSA.Create(2048);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt("a.b.c.d.e", pod)), Is.EqualTo(ProtocolError.RecipientKeyUnsupported));
    }
}
