using System.Buffers.Binary;
using AttestBroker.Evidence.Tdx;
using AttestBroker.Testing;
using NUnit.Framework;
using static AttestBroker.Evidence.Tdx.TdxQuoteLayout;

namespace AttestBroker.Evidence.Tests.Tdx;

/// <summary>Malformed quotes are refused with an EvidenceFormatException that names the field and offset.</summary>
[TestFixture]
public sealed class Malformed_quotes_are_rejected_with_a_named_field
{
    private const string Gt1 = "tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat";
    private const string Gt2 = "tdx/go-tdx-guest/quote_v5_sample.dat";

    private static EvidenceFormatException Fails(byte[] bytes) =>
        Assert.Throws<EvidenceFormatException>(() => TdxQuote.Parse(bytes))!;

    private static byte[] With(byte[] source, Action<byte[]> change)
    {
        var copy = (byte[])source.Clone();
        change(copy);
        return copy;
    }

    /// <summary>Every structure boundary of both real quotes, minus one byte (and the boundary itself when it is not the end).</summary>
    private static IEnumerable<TestCaseData> Boundaries()
    {
        foreach (var name in new[] { Gt1, Gt2 })
        {
            yield return new TestCaseData(name).SetArgDisplayNames(Path.GetFileName(name));
        }
    }

    [TestCaseSource(nameof(Boundaries))]
    public void Quote_truncated_at_any_structure_boundary_is_rejected(string vector)
    {
        var full = Vectors.Read(vector);
        var q = TdxQuote.Parse(full);
        var cuts = new SortedSet<int>
        {
            0, 1, VersionOffset + 1, AttestationKeyTypeOffset, TeeTypeOffset, QeVendorIdOffset, UserDataOffset, HeaderSize - 1, HeaderSize,
            q.BodyOffset, q.BodyOffset + 100, q.SignedLength - 1, q.SignedLength, q.SignedLength + 2, q.SignatureDataOffset,
            q.SignatureDataOffset + SigAttestationKeyOffset, q.SignatureDataOffset + SigCertDataTypeOffset, q.SignatureDataOffset + SigCertDataSizeOffset,
            q.CertificationDataOffset, q.QeReportOffset + 200, q.QeReportOffset + QeReportSize, q.QeAuthDataSizeOffset, q.QeAuthDataOffset,
            q.InnerCertificationDataHeaderOffset, q.PckCertChainOffset, q.PckCertChainOffset + 100, q.QuoteEnd - 1,
        };
        if (q.Version == 5)
        {
            cuts.Add(V5BodyTypeOffset);
            cuts.Add(V5BodySizeOffset);
            cuts.Add(V5BodyOffset - 1);
        }

        // A sample of other offsets as well.
        for (var i = 3; i < q.QuoteEnd; i += 97)
        {
            cuts.Add(i);
        }

        Assert.Multiple(() =>
        {
            foreach (var cut in cuts)
            {
                var ex = Assert.Throws<EvidenceFormatException>(() => TdxQuote.Parse(full.AsSpan(0, cut)), $"cut at {cut}");
                Assert.That(ex!.Field, Is.Not.Empty);
                Assert.That(ex.Offset, Is.InRange(0, cut));
            }
        });
    }

    [Test]
    public void Quote_version_3_is_rejected_naming_version()
    {
        var ex = Fails(With(Vectors.Read(Gt1), b => BinaryPrimitives.WriteUInt16LittleEndian(b, 3)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("version", 0L)));
    }

    [Test]
    public void Attestation_key_type_p384_is_rejected_naming_att_key_type()
    {
        var ex = Fails(With(Vectors.Read(Gt1), b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(AttestationKeyTypeOffset), 3)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("att_key_type", (long)AttestationKeyTypeOffset)));
    }

    [Test]
    public void Sgx_tee_type_is_rejected_naming_tee_type()
    {
        var ex = Fails(With(Vectors.Read(Gt1), b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(TeeTypeOffset), 0)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("tee_type", (long)TeeTypeOffset)));
    }

    [TestCase((ushort)0)]
    [TestCase((ushort)1)]
    [TestCase((ushort)4)]
    [TestCase((ushort)0xFFFF)]
    public void V5_quote_with_unknown_or_sgx_body_type_is_rejected_naming_body_type(ushort type)
    {
        var ex = Fails(With(Vectors.Read(Gt2), b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(V5BodyTypeOffset), type)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("body_type", (long)V5BodyTypeOffset)));
    }

    [TestCase(584u)]
    [TestCase(0u)]
    [TestCase(649u)]
    [TestCase(uint.MaxValue)]
    public void V5_quote_whose_body_size_does_not_match_its_type_is_rejected_naming_body_size(uint size)
    {
        var ex = Fails(With(Vectors.Read(Gt2), b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(V5BodySizeOffset), size)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("body_size", (long)V5BodySizeOffset)));
    }

    [TestCase(uint.MaxValue)]
    [TestCase(0x7FFFFFFFu)]
    [TestCase(100000u)]
    [TestCase(10u)]
    public void Absurd_signature_data_len_is_rejected_naming_signature_data_len(uint len)
    {
        var gt1 = Vectors.Read(Gt1);
        var q = TdxQuote.Parse(gt1);
        var ex = Fails(With(gt1, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(q.SignatureDataLengthOffset), len)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("signature_data_len", (long)q.SignatureDataLengthOffset)));
    }

    [Test]
    public void Signature_data_len_claiming_the_trailing_bytes_breaks_the_inner_lengths()
    {
        var gt1 = Vectors.Read(Gt1);
        var q = TdxQuote.Parse(gt1);
        var ex = Fails(With(gt1, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(q.SignatureDataLengthOffset), (uint)(q.SignatureDataLength + 39))));
        Assert.That(ex.Field, Is.EqualTo("cert_data_size"));
    }

    [TestCase((ushort)5)]
    [TestCase((ushort)1)]
    [TestCase((ushort)0)]
    public void Outer_cert_data_type_other_than_6_is_rejected_naming_cert_data_type(ushort type)
    {
        var gt1 = Vectors.Read(Gt1);
        var q = TdxQuote.Parse(gt1);
        var at = q.SignatureDataOffset + SigCertDataTypeOffset;
        var ex = Fails(With(gt1, b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(at), type)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("cert_data_type", (long)at)));
    }

    [TestCase(uint.MaxValue)]
    [TestCase(0u)]
    [TestCase(4166u)]
    public void Absurd_cert_data_size_is_rejected_naming_cert_data_size(uint size)
    {
        var gt1 = Vectors.Read(Gt1);
        var q = TdxQuote.Parse(gt1);
        var at = q.SignatureDataOffset + SigCertDataSizeOffset;
        var ex = Fails(With(gt1, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), size)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("cert_data_size", (long)at)));
    }

    [TestCase((ushort)0xFFFF)]
    [TestCase((ushort)4000)]
    public void Absurd_qe_auth_data_size_is_rejected_naming_qe_auth_data_size(ushort size)
    {
        var gt1 = Vectors.Read(Gt1);
        var q = TdxQuote.Parse(gt1);
        var ex = Fails(With(gt1, b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(q.QeAuthDataSizeOffset), size)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("qe_auth_data_size", (long)q.QeAuthDataSizeOffset)));
    }

    [Test]
    public void Qe_auth_data_size_off_by_some_bytes_lands_on_a_wrong_inner_type()
    {
        var gt1 = Vectors.Read(Gt1);
        var q = TdxQuote.Parse(gt1);
        var ex = Fails(With(gt1, b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(q.QeAuthDataSizeOffset), 33)));
        Assert.That(ex.Field, Is.AnyOf("inner_cert_data_type", "inner_cert_data_size"));
    }

    [TestCase((ushort)4)]
    [TestCase((ushort)6)]
    public void Inner_cert_data_type_other_than_5_is_rejected_naming_inner_cert_data_type(ushort type)
    {
        var gt2 = Vectors.Read(Gt2);
        var q = TdxQuote.Parse(gt2);
        var ex = Fails(With(gt2, b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(q.InnerCertificationDataHeaderOffset), type)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("inner_cert_data_type", (long)q.InnerCertificationDataHeaderOffset)));
    }

    [TestCase(uint.MaxValue)]
    [TestCase(0u)]
    [TestCase(3677u)]
    public void Absurd_inner_cert_data_size_is_rejected_naming_inner_cert_data_size(uint size)
    {
        var gt2 = Vectors.Read(Gt2);
        var q = TdxQuote.Parse(gt2);
        var at = q.InnerCertificationDataHeaderOffset + 2;
        var ex = Fails(With(gt2, b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), size)));
        Assert.That((ex.Field, ex.Offset), Is.EqualTo(("inner_cert_data_size", (long)at)));
    }

    [Test]
    public void Empty_input_is_rejected_naming_header()
    {
        var ex = Fails([]);
        Assert.That(ex.Field, Is.EqualTo("header"));
    }
}
