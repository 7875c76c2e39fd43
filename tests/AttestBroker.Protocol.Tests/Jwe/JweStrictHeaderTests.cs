using System.Text;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Jwe;

/// <summary>Headers and segment sizes the decryptor must refuse before any key is used.</summary>
[TestFixture]
public sealed class JweStrictHeaderTests
{
    private static readonly byte[] ModelKey = new byte[32];

    private static (string Jwe, string Epk, System.Security.Cryptography.ECDiffieHellman Pod) Valid()
    {
        var pod = TestSupport.NewEcdh("P-256");
        var jwe = JweEncryptor.Encrypt(ModelKey, Jwk.FromPublicKey(pod), null);
        var epk = TestSupport.HeaderJson(jwe);
        epk = epk[(epk.IndexOf("\"epk\":", StringComparison.Ordinal) + 6)..epk.LastIndexOf('}')];
        return (jwe, epk, pod);
    }

    private static ProtocolError WithHeader(Func<string, string> header)
    {
        var (jwe, epk, pod) = Valid();
        using (pod)
        {
            var forged = TestSupport.ReplaceSegment(jwe, 0, Encoding.UTF8.GetBytes(header(epk)));
            return TestSupport.ErrorOf(() => JweDecryptor.Decrypt(forged, pod));
        }
    }

    [Test]
    public void Header_with_zip_is_rejected_with_compression_not_allowed() =>
        Assert.That(WithHeader(epk => $"{{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"zip\":\"DEF\",\"epk\":{epk}}}"), Is.EqualTo(ProtocolError.JweCompressionNotAllowed));

    [Test]
    public void Header_with_crit_is_rejected_with_critical_header_unsupported() =>
        Assert.That(WithHeader(epk => $"{{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"crit\":[\"exp\"],\"exp\":1,\"epk\":{epk}}}"), Is.EqualTo(ProtocolError.JweCriticalHeaderUnsupported));

    [TestCase("A128GCM")]
    [TestCase("A256CBC-HS512")]
    [TestCase("a256gcm")]
    public void Header_with_another_enc_is_rejected_with_encryption_unsupported(string enc) =>
        Assert.That(WithHeader(epk => $"{{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"{enc}\",\"epk\":{epk}}}"), Is.EqualTo(ProtocolError.JweEncryptionUnsupported));

    [TestCase("ECDH-ES")]
    [TestCase("ECDH-ES+A128KW")]
    [TestCase("dir")]
    [TestCase("none")]
    [TestCase("RSA1_5")]
    public void Header_with_another_alg_is_rejected_with_algorithm_unsupported(string alg) =>
        Assert.That(WithHeader(epk => $"{{\"alg\":\"{alg}\",\"enc\":\"A256GCM\",\"epk\":{epk}}}"), Is.EqualTo(ProtocolError.JweAlgorithmUnsupported));

    [Test]
    public void Header_without_epk_is_rejected_with_ephemeral_key_invalid() =>
        Assert.That(WithHeader(_ => "{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\"}"), Is.EqualTo(ProtocolError.JweEphemeralKeyInvalid));

    [Test]
    public void Epk_off_the_curve_is_rejected_with_ephemeral_key_invalid()
    {
        Assert.That(
            WithHeader(epk =>
            {
                var k = Jwk.Parse(epk);
                var y = k.Y;
                y[^1] ^= 1;
                return $"{{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"epk\":{{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"{TestSupport.B64(k.X)}\",\"y\":\"{TestSupport.B64(y)}\"}}}}";
            }),
            Is.EqualTo(ProtocolError.JweEphemeralKeyInvalid));
    }

    [Test]
    public void Epk_carrying_a_private_member_is_rejected_with_ephemeral_key_invalid() =>
        Assert.That(WithHeader(epk => $"{{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"epk\":{epk.TrimEnd('}')},\"d\":\"AAAA\"}}}}"), Is.EqualTo(ProtocolError.JweEphemeralKeyInvalid));

    [Test]
    public void Epk_that_is_rsa_is_rejected_with_ephemeral_key_invalid()
    {
        var rsa = Jwk.FromPublicKey(TestSupport.Rsa3072).ToJson();
        Assert.That(WithHeader(_ => $"{{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"epk\":{rsa}}}"), Is.EqualTo(ProtocolError.JweEphemeralKeyInvalid));
    }

    [TestCase("[]")]
    [TestCase("{\"enc\":\"A256GCM\"}")]
    [TestCase("{\"alg\":7,\"enc\":\"A256GCM\"}")]
    [TestCase("{\"alg\":\"ECDH-ES+A256KW\",\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\"}")]
    [TestCase("not json")]
    public void Header_of_the_wrong_shape_is_rejected_with_jwe_malformed(string header) =>
        Assert.That(WithHeader(_ => header), Is.EqualTo(ProtocolError.JweMalformed));

    [Test]
    public void Header_with_an_escaped_lone_surrogate_is_rejected_with_jwe_malformed() =>
        Assert.That(WithHeader(epk => $"{{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"kid\":\"\\udc00\",\"epk\":{epk}}}"), Is.EqualTo(ProtocolError.JweMalformed));

    [Test]
    public void Header_that_is_not_utf8_is_rejected_with_jwe_malformed()
    {
        var (jwe, _, pod) = Valid();
        using (pod)
        {
            var forged = TestSupport.ReplaceSegment(jwe, 0, [0x7b, 0x22, 0x61, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]);
            Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(forged, pod)), Is.EqualTo(ProtocolError.JweMalformed));
        }
    }

    [Test]
    public void Encrypted_key_of_the_wrong_length_is_rejected_with_encrypted_key_length_invalid()
    {
        var (jwe, _, pod) = Valid();
        using (pod)
        {
            var forged = TestSupport.ReplaceSegment(jwe, 1, new byte[32]);
            Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(forged, pod)), Is.EqualTo(ProtocolError.JweEncryptedKeyLengthInvalid));
        }
    }

    [TestCase(0)]
    [TestCase(11)]
    [TestCase(16)]
    public void Iv_of_the_wrong_length_is_rejected_with_iv_length_invalid(int length)
    {
        var (jwe, _, pod) = Valid();
        using (pod)
        {
            var forged = TestSupport.ReplaceSegment(jwe, 2, new byte[length]);
            Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(forged, pod)), Is.EqualTo(ProtocolError.JweIvLengthInvalid));
        }
    }

    [TestCase(0)]
    [TestCase(12)]
    [TestCase(17)]
    public void Tag_of_the_wrong_length_is_rejected_with_tag_length_invalid(int length)
    {
        var (jwe, _, pod) = Valid();
        using (pod)
        {
            var forged = TestSupport.ReplaceSegment(jwe, 4, new byte[length]);
            Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(forged, pod)), Is.EqualTo(ProtocolError.JweTagLengthInvalid));
        }
    }

    [TestCase("")]
    [TestCase("a.b.c.d")]
    [TestCase("a.b.c.d.e.f")]
    [TestCase("....")]
    public void Compact_string_without_five_segments_or_with_bad_base64url_is_rejected_with_jwe_malformed(string compact)
    {
        using var pod = TestSupport.NewEcdh("P-256");
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(compact, pod)), Is.EqualTo(ProtocolError.JweMalformed));
    }

    [Test]
    public void Segment_with_padding_is_rejected_with_jwe_malformed()
    {
        var (jwe, _, pod) = Valid();
        using (pod)
        {
            var parts = jwe.Split('.');
            parts[2] += "=";
            Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(string.Join('.', parts), pod)), Is.EqualTo(ProtocolError.JweMalformed));
        }
    }

    [Test]
    public void Compact_string_over_the_size_limit_is_rejected_with_jwe_malformed()
    {
        using var pod = TestSupport.NewEcdh("P-256");
        var huge = new string('A', JweDecryptor.MaximumCompactLength + 1);
        Assert.That(TestSupport.ErrorOf(() => JweDecryptor.Decrypt(huge, pod)), Is.EqualTo(ProtocolError.JweMalformed));
    }
}
