using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Crypto;

[TestFixture]
public sealed class Base64UrlStrictTests
{
    [Test]
    public void Any_bytes_round_trip_through_encode_and_strict_decode() =>
        Gen.Byte.Array[0, 200].Sample(b => Base64UrlStrict.TryDecode(Base64UrlStrict.Encode(b), out var back) && back.AsSpan().SequenceEqual(b), iter: 2000);

    [Test]
    public void Every_accepted_text_is_the_one_canonical_encoding_of_its_bytes() =>
        Gen.String[Gen.Char["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ "], 0, 40].Sample(s =>
            !Base64UrlStrict.TryDecode(s, out var b) || Base64UrlStrict.Encode(b) == s, iter: 5000);

    [TestCase("QQ", ExpectedResult = true)]
    [TestCase("QR", ExpectedResult = false)] // unused bits set
    [TestCase("QQ==", ExpectedResult = false)] // padding
    [TestCase("Q", ExpectedResult = false)] // 4k+1 length
    [TestCase("", ExpectedResult = true)]
    [TestCase("a+b/", ExpectedResult = false)] // standard alphabet
    public bool Strict_decoding_accepts_only_canonical_unpadded_base64url(string text) => Base64UrlStrict.TryDecode(text, out _);
}
