using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Crypto;

[TestFixture]
public sealed class AesKeyWrapTests
{
    private static readonly byte[] Kek256 = Convert.FromHexString("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");

    // RFC 3394 §4.6: 256 bits of key data with a 256-bit KEK.
    private static readonly byte[] KeyData256 = Convert.FromHexString("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
    private static readonly byte[] Wrapped256 = Convert.FromHexString("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21");

    // RFC 3394 §4.5: 192 bits of key data with a 256-bit KEK.
    private static readonly byte[] KeyData192 = Convert.FromHexString("00112233445566778899AABBCCDDEEFF0001020304050607");
    private static readonly byte[] Wrapped192 = Convert.FromHexString("A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1");

    [Test]
    public void Rfc3394_4_6_wrap_gives_the_rfc_ciphertext() =>
        Assert.That(AesKeyWrap.Wrap(Kek256, KeyData256), Is.EqualTo(Wrapped256));

    [Test]
    public void Rfc3394_4_6_unwrap_gives_the_rfc_key_data() =>
        Assert.That(AesKeyWrap.Unwrap(Kek256, Wrapped256), Is.EqualTo(KeyData256));

    [Test]
    public void Rfc3394_4_5_wrap_and_unwrap_match_the_rfc()
    {
        Assert.Multiple(() =>
        {
            Assert.That(AesKeyWrap.Wrap(Kek256, KeyData192), Is.EqualTo(Wrapped192));
            Assert.That(AesKeyWrap.Unwrap(Kek256, Wrapped192), Is.EqualTo(KeyData192));
        });
    }

    [Test]
    public void Unwrap_of_altered_data_is_rejected_with_key_unwrap_failed([Range(0, 39, 7)] int index)
    {
        var w = (byte[])Wrapped256.Clone();
        w[index] ^= 0x80;
        Assert.That(TestSupport.ErrorOf(() => AesKeyWrap.Unwrap(Kek256, w)), Is.EqualTo(ProtocolError.KeyUnwrapFailed));
    }

    [Test]
    public void Unwrap_with_the_wrong_kek_is_rejected_with_key_unwrap_failed()
    {
        var kek = (byte[])Kek256.Clone();
        kek[0] ^= 1;
        Assert.That(TestSupport.ErrorOf(() => AesKeyWrap.Unwrap(kek, Wrapped256)), Is.EqualTo(ProtocolError.KeyUnwrapFailed));
    }

    [TestCase(0)]
    [TestCase(8)]
    [TestCase(17)]
    public void Wrap_of_key_data_with_a_bad_length_is_rejected_with_key_wrap_length_invalid(int length) =>
        Assert.That(TestSupport.ErrorOf(() => AesKeyWrap.Wrap(Kek256, new byte[length])), Is.EqualTo(ProtocolError.KeyWrapLengthInvalid));

    [TestCase(16)]
    [TestCase(39)]
    public void Unwrap_of_input_with_a_bad_length_is_rejected_with_key_wrap_length_invalid(int length) =>
        Assert.That(TestSupport.ErrorOf(() => AesKeyWrap.Unwrap(Kek256, new byte[length])), Is.EqualTo(ProtocolError.KeyWrapLengthInvalid));

    [Test]
    public void Kek_of_a_bad_length_is_rejected_with_key_wrap_length_invalid() =>
        Assert.That(TestSupport.ErrorOf(() => AesKeyWrap.Wrap(new byte[31], KeyData256)), Is.EqualTo(ProtocolError.KeyWrapLengthInvalid));
}
