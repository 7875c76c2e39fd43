using System.Security.Cryptography;
using System.Text;
using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests.Binding;

[TestFixture]
public sealed class ReportDataBindingTests
{
    // The worked example of docs/protocol.md: RFC 7518 Appendix C's "Bob" P-256 key and the nonce 00 01 .. 1f.
    private const string ExampleJwk = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ\",\"y\":\"e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck\"}";
    private const string ExampleThumbprintHex = "572e7b5eb02b52b5b435ba48d76b44cc31c0071330ad387a1c75d17a74a99c2a";
    private const string ExampleThumbprint = "Vy57XrArUrW0NbpI12tEzDHABxMwrTh6HHXRenSpnCo";
    private const string ExampleReportDataHex =
        "eda93b433ea55e0ac23c5ed4246cd35c88ba8e532c3d0c660c778321ff383c8dbb14ed8f74ca3b54055c1d431bc65443bd8d48b15e13623db6af81a335bf57ff";

    // What REPORT_DATA would be if the thumbprint entered as its 43 base64url characters: the wrong reading.
    private const string NotTheReportDataHex =
        "aacc2e5f2bc8a2c9e4859e701ffe795afbb47014b1a914e639990a98f2ff3709aa40990e1b0b75f800f250488e01213833e9c0157bbf49209c548d3c99c64fec";

    private static readonly byte[] ExampleNonce = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();

    [Test]
    public void Worked_example_of_the_protocol_document_gives_its_numbers()
    {
        var jwk = Jwk.Parse(ExampleJwk);
        Assert.Multiple(() =>
        {
            Assert.That(Convert.ToHexStringLower(jwk.ThumbprintBytes()), Is.EqualTo(ExampleThumbprintHex));
            Assert.That(jwk.Thumbprint(), Is.EqualTo(ExampleThumbprint));
            Assert.That(Convert.ToHexStringLower(ReportDataBinding.Compute(ExampleNonce, jwk)), Is.EqualTo(ExampleReportDataHex));
        });
    }

    [Test]
    public void Report_data_is_sha512_of_nonce_then_the_raw_32_byte_thumbprint_not_its_text()
    {
        var jwk = Jwk.Parse(ExampleJwk);
        var raw = SHA512.HashData([.. ExampleNonce, .. jwk.ThumbprintBytes()]);
        var text = SHA512.HashData([.. ExampleNonce, .. Encoding.ASCII.GetBytes(jwk.Thumbprint())]);
        var computed = ReportDataBinding.Compute(ExampleNonce, jwk);
        Assert.Multiple(() =>
        {
            Assert.That(computed, Is.EqualTo(raw));
            Assert.That(computed, Is.Not.EqualTo(text));
            Assert.That(Convert.ToHexStringLower(text), Is.EqualTo(NotTheReportDataHex));
            Assert.That(computed, Has.Length.EqualTo(64));
        });
    }

    [Test]
    public void Matching_report_data_is_accepted() =>
        Assert.That(ReportDataBinding.Matches(Convert.FromHexString(ExampleReportDataHex), ExampleNonce, Jwk.Parse(ExampleJwk)), Is.True);

    [Test]
    public void Report_data_for_another_nonce_or_key_or_with_any_bit_flipped_does_not_match()
    {
        using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.Parse(ExampleJwk);
        var rd = Convert.FromHexString(ExampleReportDataHex);
        var nonce2 = (byte[])ExampleNonce.Clone();
        nonce2[31] ^= 1;
        Assert.Multiple(() =>
        {
            Assert.That(ReportDataBinding.Matches(rd, nonce2, jwk), Is.False);
            Assert.That(ReportDataBinding.Matches(rd, ExampleNonce, Jwk.FromPublicKey(other)), Is.False);
        });

        Gen.Int[0, 511].Sample(bit =>
        {
            var changed = (byte[])rd.Clone();
            changed[bit / 8] ^= (byte)(1 << (bit % 8));
            return !ReportDataBinding.Matches(changed, ExampleNonce, jwk);
        }, iter: 512);
    }

    [TestCase(0)]
    [TestCase(31)]
    [TestCase(33)]
    [TestCase(64)]
    public void Nonce_that_is_not_32_bytes_is_rejected_with_nonce_length_invalid(int length) =>
        Assert.That(TestSupport.ErrorOf(() => ReportDataBinding.Compute(new byte[length], Jwk.Parse(ExampleJwk))), Is.EqualTo(ProtocolError.NonceLengthInvalid));

    [TestCase(0)]
    [TestCase(32)]
    [TestCase(48)]
    [TestCase(65)]
    public void Report_data_that_is_not_64_bytes_is_rejected_with_report_data_length_invalid(int length) =>
        Assert.That(TestSupport.ErrorOf(() => ReportDataBinding.Matches(new byte[length], ExampleNonce, Jwk.Parse(ExampleJwk))), Is.EqualTo(ProtocolError.ReportDataLengthInvalid));
}
