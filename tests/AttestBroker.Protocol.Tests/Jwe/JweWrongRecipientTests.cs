using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Jwe;

[TestFixture]
public sealed class JweWrongRecipientTests
{
    private static readonly byte[] ModelKey = new byte[32];

    [Test]
    public void Other_ec_key_on_the_same_curve_is_rejected_with_decryption_failed([Values("P-256", "P-384")] string crv)
    {
        using var pod = TestSupport.NewEcdh(crv);
        using var thief = TestSupport.NewEcdh(crv);
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), null);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(jwe, thief)), Is.EqualTo(ProtocolError.JweDecryptionFailed));
    }

    [Test]
    public void Ec_key_on_another_curve_is_rejected_with_ephemeral_key_invalid()
    {
        using var pod = TestSupport.NewEcdh("P-256");
        using var thief = TestSupport.NewEcdh("P-384");
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), null);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(jwe, thief)), Is.EqualTo(ProtocolError.JweEphemeralKeyInvalid));
    }

    [Test]
    public void Other_rsa_key_is_rejected_with_decryption_failed()
    {
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(TestSupport.Rsa3072), null);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(jwe, TestSupport.OtherRsa3072)), Is.EqualTo(ProtocolError.JweDecryptionFailed));
    }

    [Test]
    public void Rsa_key_given_an_ecdh_jwe_is_rejected_with_algorithm_unsupported()
    {
        using var pod = TestSupport.NewEcdh("P-256");
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), null);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(jwe, TestSupport.Rsa3072)), Is.EqualTo(ProtocolError.JweAlgorithmUnsupported));
    }

    [Test]
    public void Ec_key_given_an_rsa_jwe_is_rejected_with_algorithm_unsupported()
    {
        using var pod = TestSupport.NewEcdh("P-256");
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(TestSupport.Rsa3072), null);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(jwe, pod)), Is.EqualTo(ProtocolError.JweAlgorithmUnsupported));
    }

    [Test]
    public void Rsa_4096_key_given_a_jwe_for_3072_is_rejected_with_encrypted_key_length_invalid()
    {
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(TestSupport.Rsa3072), null);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(jwe, TestSupport.Rsa4096)), Is.EqualTo(ProtocolError.JweEncryptedKeyLengthInvalid));
    }
}
