using System.Security.Cryptography;
using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Jwe;

[TestFixture]
public sealed class JwePropertyTests
{
    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\"";

    [Test]
    public void Any_plaintext_round_trips_to_a_fresh_ec_key()
    {
        Gen.Select(Gen.Bool, Gen.Byte.Array[1, 4096]).Sample(t =>
        {
            var (p384, plaintext) = t;
            using var pod = TestSupport.NewEcdh(p384 ? "P-384" : "P-256");
            var jwe = JweEncryptor.Encrypt(plaintext, Jwk.FromPublicKey(pod), null);
            return JweDecryptor.Decrypt(jwe, pod).AsSpan().SequenceEqual(plaintext);
        }, iter: 200);
    }

    [Test]
    public void Any_plaintext_round_trips_to_an_rsa_key()
    {
        var recipient = Jwk.FromPublicKey(TestSupport.Rsa3072);
        Gen.Byte.Array[1, 4096].Sample(plaintext =>
            JweDecryptor.Decrypt(JweEncryptor.Encrypt(plaintext, recipient, "k"), TestSupport.Rsa3072).AsSpan().SequenceEqual(plaintext), iter: 50);
    }

    [Test]
    public void Random_compact_strings_fail_only_with_protocol_exception()
    {
        using var ec = TestSupport.NewEcdh("P-256");
        Gen.String[Gen.Char[Alphabet], 0, 400].Sample(s =>
        {
            DecryptOrProtocolError(s, ec);
            DecryptOrProtocolError(s, TestSupport.Rsa3072);
        }, iter: 3000);
    }

    [Test]
    public void Five_random_base64url_segments_fail_only_with_protocol_exception()
    {
        using var ec = TestSupport.NewEcdh("P-256");
        var segment = Gen.Byte.Array[0, 64].Select(b => TestSupport.B64(b));
        segment.Array[5].Sample(parts =>
        {
            var s = string.Join('.', parts);
            DecryptOrProtocolError(s, ec);
            DecryptOrProtocolError(s, TestSupport.Rsa3072);
        }, iter: 2000);
    }

    [Test]
    public void Mutated_valid_jwes_fail_only_with_protocol_exception()
    {
        using var ec = TestSupport.NewEcdh("P-256");
        var original = JweEncryptor.Encrypt(new byte[32], Jwk.FromPublicKey(ec), "k");
        var mutation = Gen.Select(Gen.Int[0, original.Length - 1], Gen.Char[Alphabet]).Array[1, 4];
        mutation.Sample(muts =>
        {
            var chars = original.ToCharArray();
            foreach (var (i, c) in muts)
            {
                chars[i] = c;
            }

            var s = new string(chars);
            if (s == original)
            {
                return;
            }

            // A mutation may land on a base64url character that decodes to the same bytes only if it is identical,
            // which is excluded above, so every changed JWE must be refused.
            var e = Assert.Throws<ProtocolException>(() => JweDecryptor.Decrypt(s, ec));
            Assert.That(e, Is.Not.Null);
        }, iter: 2000);
    }

    [Test]
    public void Random_json_headers_fail_only_with_protocol_exception()
    {
        using var ec = TestSupport.NewEcdh("P-256");
        var valid = JweEncryptor.Encrypt(new byte[32], Jwk.FromPublicKey(ec), null);
        var names = Gen.OneOfConst("alg", "enc", "epk", "zip", "crit", "kid", "apu", "apv", "x");
        var values = Gen.OneOfConst("\"ECDH-ES+A256KW\"", "\"A256GCM\"", "1", "null", "[]", "{}", "\"\"", "{\"kty\":\"EC\",\"crv\":\"P-256\"}", "\"QUJD\"", "true");
        Gen.Select(names, values).Array[0, 8].Sample(members =>
        {
            var header = "{" + string.Join(',', members.Select(m => $"\"{m.Item1}\":{m.Item2}")) + "}";
            var forged = TestSupport.ReplaceSegment(valid, 0, System.Text.Encoding.UTF8.GetBytes(header));
            Assert.Throws<ProtocolException>(() => JweDecryptor.Decrypt(forged, ec));
        }, iter: 2000);
    }

    private static void DecryptOrProtocolError(string s, ECDiffieHellman key)
    {
        try
        {
            JweDecryptor.Decrypt(s, key);
            Assert.Fail("random input decrypted");
        }
        catch (ProtocolException)
        {
        }
    }

    private static void DecryptOrProtocolError(string s, RSA key)
    {
        try
        {
            JweDecryptor.Decrypt(s, key);
            Assert.Fail("random input decrypted");
        }
        catch (ProtocolException)
        {
        }
    }
}
