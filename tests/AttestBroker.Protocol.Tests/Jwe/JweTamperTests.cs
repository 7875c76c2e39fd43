using System.Text;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Jwe;

[TestFixture]
public sealed class JweTamperTests
{
    private static readonly byte[] ModelKey = Encoding.ASCII.GetBytes("0123456789abcdef0123456789abcdef");

    private static IEnumerable<TestCaseData> Recipients()
    {
        yield return new TestCaseData("P-256").SetArgDisplayNames("P-256");
        yield return new TestCaseData("P-384").SetArgDisplayNames("P-384");
        yield return new TestCaseData("RSA").SetArgDisplayNames("RSA-3072");
    }

    private static (string Jwe, Func<string, byte[]> Decrypt) Make(string kind)
    {
        if (kind == "RSA")
        {
            var rsa = TestSupport.Rsa3072;
            return (JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(rsa), "k"), s => JweDecryptor.Decrypt(s, rsa));
        }

        var ec = TestSupport.NewEcdh(kind);
        return (JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(ec), "k"), s => JweDecryptor.Decrypt(s, ec));
    }

    [TestCaseSource(nameof(Recipients))]
    public void Changed_protected_header_is_rejected_with_decryption_failed(string kind)
    {
        var (jwe, decrypt) = Make(kind);
        var header = TestSupport.HeaderJson(jwe).Replace("\"kid\":\"k\"", "\"kid\":\"j\"", StringComparison.Ordinal);
        var tampered = TestSupport.ReplaceSegment(jwe, 0, Encoding.UTF8.GetBytes(header));
        Assert.That(TestSupport.ErrorOf(() => decrypt(tampered)), Is.EqualTo(ProtocolError.JweDecryptionFailed));
    }

    [TestCaseSource(nameof(Recipients))]
    public void Protected_header_with_an_added_member_is_rejected_with_decryption_failed(string kind)
    {
        var (jwe, decrypt) = Make(kind);
        var header = TestSupport.HeaderJson(jwe)[..^1] + ",\"x\":1}";
        var tampered = TestSupport.ReplaceSegment(jwe, 0, Encoding.UTF8.GetBytes(header));
        Assert.That(TestSupport.ErrorOf(() => decrypt(tampered)), Is.EqualTo(ProtocolError.JweDecryptionFailed));
    }

    [Test]
    public void Changed_epk_is_rejected_with_decryption_failed()
    {
        using var pod = TestSupport.NewEcdh("P-256");
        using var other = TestSupport.NewEcdh("P-256");
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), null);
        var otherEpk = Jwk.FromPublicKey(other).ToJson();
        var header = $"{{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"epk\":{otherEpk}}}";
        var tampered = TestSupport.ReplaceSegment(jwe, 0, Encoding.UTF8.GetBytes(header));
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(tampered, pod)), Is.EqualTo(ProtocolError.JweDecryptionFailed));
    }

    [TestCaseSource(nameof(Recipients))]
    public void Flipped_bit_in_the_encrypted_key_is_rejected_with_decryption_failed(string kind)
    {
        var (jwe, decrypt) = Make(kind);
        foreach (var i in new[] { 0, 17, 39 })
        {
            var tampered = TestSupport.FlipBitInSegment(jwe, 1, i, i % 8);
            Assert.That(TestSupport.ErrorOf(() => decrypt(tampered)), Is.EqualTo(ProtocolError.JweDecryptionFailed), $"byte {i}");
        }
    }

    [TestCaseSource(nameof(Recipients))]
    public void Flipped_bit_in_the_iv_is_rejected_with_decryption_failed(string kind)
    {
        var (jwe, decrypt) = Make(kind);
        Assert.That(TestSupport.ErrorOf(() => decrypt(TestSupport.FlipBitInSegment(jwe, 2, 11, 7))), Is.EqualTo(ProtocolError.JweDecryptionFailed));
    }

    [TestCaseSource(nameof(Recipients))]
    public void Flipped_bit_in_the_ciphertext_is_rejected_with_decryption_failed(string kind)
    {
        var (jwe, decrypt) = Make(kind);
        Assert.That(TestSupport.ErrorOf(() => decrypt(TestSupport.FlipBitInSegment(jwe, 3, 5, 3))), Is.EqualTo(ProtocolError.JweDecryptionFailed));
    }

    [TestCaseSource(nameof(Recipients))]
    public void Flipped_bit_in_the_tag_is_rejected_with_decryption_failed(string kind)
    {
        var (jwe, decrypt) = Make(kind);
        Assert.That(TestSupport.ErrorOf(() => decrypt(TestSupport.FlipBitInSegment(jwe, 4, 15, 0))), Is.EqualTo(ProtocolError.JweDecryptionFailed));
    }

    [TestCaseSource(nameof(Recipients))]
    public void Truncated_ciphertext_is_rejected_with_decryption_failed(string kind)
    {
        var (jwe, decrypt) = Make(kind);
        var ct = TestSupport.UnB64(jwe.Split('.')[3]);
        Assert.That(TestSupport.ErrorOf(() => decrypt(TestSupport.ReplaceSegment(jwe, 3, ct[..^1]))), Is.EqualTo(ProtocolError.JweDecryptionFailed));
    }

    [TestCaseSource(nameof(Recipients))]
    public void Untouched_jwe_still_decrypts(string kind)
    {
        var (jwe, decrypt) = Make(kind);
        Assert.That(decrypt(jwe), Is.EqualTo(ModelKey));
    }
}
