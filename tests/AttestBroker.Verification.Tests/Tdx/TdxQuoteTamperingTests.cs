using AttestBroker.Evidence.Tdx;
using AttestBroker.Testing;
using NUnit.Framework;
using static AttestBroker.Evidence.Tdx.TdxQuoteLayout;
using static AttestBroker.Verification.Tests.Tdx.TdxVectors;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>A flipped bit anywhere a signature, key or binding covers is caught with the check that covers it, in every real quote.</summary>
[TestFixture]
public sealed class Flipped_bits_in_real_quotes_are_rejected_with_the_covering_check
{
    private static readonly Dictionary<string, Setup> Setups = new();

    private sealed record Setup(Verification.Tdx.ITdxCollateralProvider? Provider, DateTimeOffset At, bool SkipCrl);

    private static Setup SetupFor(string vector)
    {
        lock (Setups)
        {
            if (!Setups.TryGetValue(vector, out var s))
            {
                s = vector switch
                {
                    Gt1 => new(CollateralFrom(GoTdxGuestCollateral), Gt1At, false),
                    Gt2 => new(CollateralFrom(DcapQvlJson), Gt2At, false),
                    _ => new(null, Gt3At, true),
                };
                Setups[vector] = s;
            }

            return s;
        }
    }

    private static VerificationResult VerifyFlipped(string vector, int offset, byte mask)
    {
        var bytes = Vectors.Read(vector);
        bytes[offset] ^= mask;
        var s = SetupFor(vector);
        return TdxVectors.Verify(bytes, s.At, s.Provider, skipCrl: s.SkipCrl);
    }

    /// <summary>(vector, field, absolute offset, size, expected code) for every field of every real quote.</summary>
    private static IEnumerable<TestCaseData> Fields()
    {
        foreach (var vector in new[] { Gt1, Gt2, Gt3 })
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(Path.Combine(AttestBroker.Testing.TestPaths.VectorsDir ?? string.Empty, vector));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                yield break; // the vectors are absent: the fixture's own tests are ignored instead
            }

            var q = TdxQuote.Parse(bytes);
            var tag = vector switch { Gt1 => "GT-1", Gt2 => "GT-2", _ => "GT-3" };
            TestCaseData Case(string field, int offset, int size, string code) =>
                new TestCaseData(vector, offset, size, code).SetArgDisplayNames(tag, field);

            // Header: fields the parser validates are malformed evidence; the rest are covered by the quote signature.
            yield return Case("version", VersionOffset, 2, ReasonCodes.MalformedEvidence);
            yield return Case("att_key_type", AttestationKeyTypeOffset, 2, ReasonCodes.MalformedEvidence);
            yield return Case("tee_type", TeeTypeOffset, 4, ReasonCodes.MalformedEvidence);
            yield return Case("reserved", ReservedOffset, ReservedSize, ReasonCodes.QuoteSignatureInvalid);
            yield return Case("qe_vendor_id", QeVendorIdOffset, QeVendorIdSize, ReasonCodes.QuoteSignatureInvalid);
            yield return Case("user_data", UserDataOffset, UserDataSize, ReasonCodes.QuoteSignatureInvalid);
            if (q.Version == 5)
            {
                yield return Case("body_type", V5BodyTypeOffset, 2, ReasonCodes.MalformedEvidence);
                yield return Case("body_size", V5BodySizeOffset, 4, ReasonCodes.MalformedEvidence);
            }

            var b = q.BodyOffset;
            (string, int, int)[] body =
            [
                ("tee_tcb_svn", BodyTeeTcbSvnOffset, TeeTcbSvnSize), ("mr_seam", BodyMrSeamOffset, MeasurementSize),
                ("mr_signer_seam", BodyMrSignerSeamOffset, MeasurementSize), ("seam_attributes", BodySeamAttributesOffset, AttributesSize),
                ("td_attributes", BodyTdAttributesOffset, AttributesSize), ("xfam", BodyXfamOffset, AttributesSize),
                ("mr_td", BodyMrTdOffset, MeasurementSize), ("mr_config_id", BodyMrConfigIdOffset, MeasurementSize),
                ("mr_owner", BodyMrOwnerOffset, MeasurementSize), ("mr_owner_config", BodyMrOwnerConfigOffset, MeasurementSize),
                ("rtmr0", BodyRtmr0Offset, MeasurementSize), ("rtmr1", BodyRtmr1Offset, MeasurementSize),
                ("rtmr2", BodyRtmr2Offset, MeasurementSize), ("rtmr3", BodyRtmr3Offset, MeasurementSize),
                ("report_data", BodyReportDataOffset, ReportDataSize),
            ];
            foreach (var (name, off, size) in body)
            {
                yield return Case(name, b + off, size, ReasonCodes.QuoteSignatureInvalid);
            }

            if (q.Body.IsTd15)
            {
                yield return Case("tee_tcb_svn2", b + BodyTeeTcbSvn2Offset, TeeTcbSvnSize, ReasonCodes.QuoteSignatureInvalid);
                yield return Case("mr_service_td", b + BodyMrServiceTdOffset, MeasurementSize, ReasonCodes.QuoteSignatureInvalid);
            }

            var sig = q.SignatureDataOffset;
            yield return Case("signature_data_len", q.SignatureDataLengthOffset, 4, ReasonCodes.MalformedEvidence);
            yield return Case("quote_signature.r", sig + SigQuoteSignatureOffset, 32, ReasonCodes.QuoteSignatureInvalid);
            yield return Case("quote_signature.s", sig + SigQuoteSignatureOffset + 32, 32, ReasonCodes.QuoteSignatureInvalid);
            yield return Case("attestation_key.x", sig + SigAttestationKeyOffset, 32, ReasonCodes.AttestationKeyInvalid);
            yield return Case("attestation_key.y", sig + SigAttestationKeyOffset + 32, 32, ReasonCodes.AttestationKeyInvalid);
            yield return Case("cert_data_type", sig + SigCertDataTypeOffset, 2, ReasonCodes.MalformedEvidence);
            yield return Case("cert_data_size", sig + SigCertDataSizeOffset, 4, ReasonCodes.MalformedEvidence);

            var qe = q.QeReportOffset;
            (string, int, int)[] report =
            [
                ("cpusvn", ReportCpuSvnOffset, CpuSvnSize), ("miscselect", ReportMiscSelectOffset, 4), ("reserved1", 0x014, 28),
                ("attributes", ReportAttributesOffset, ReportAttributesSize), ("mrenclave", ReportMrEnclaveOffset, Sha256Size),
                ("reserved2", 0x060, 32), ("mrsigner", ReportMrSignerOffset, Sha256Size), ("reserved3", 0x0A0, 96),
                ("isvprodid", ReportIsvProdIdOffset, 2), ("isvsvn", ReportIsvSvnOffset, 2), ("reserved4", 0x104, 60),
                ("reportdata", ReportReportDataOffset, ReportDataSize),
            ];
            foreach (var (name, off, size) in report)
            {
                yield return Case("qe_report." + name, qe + off, size, ReasonCodes.QeReportSignatureInvalid);
            }

            yield return Case("qe_report_signature.r", q.CertificationDataOffset + QeCertQeReportSignatureOffset, 32, ReasonCodes.QeReportSignatureInvalid);
            yield return Case("qe_report_signature.s", q.CertificationDataOffset + QeCertQeReportSignatureOffset + 32, 32, ReasonCodes.QeReportSignatureInvalid);
            yield return Case("qe_auth_data_size", q.QeAuthDataSizeOffset, 2, ReasonCodes.MalformedEvidence);
            yield return Case("qe_auth_data", q.QeAuthDataOffset, q.QeAuthData.Length, ReasonCodes.QeReportDataMismatch);
            yield return Case("inner_cert_data_type", q.InnerCertificationDataHeaderOffset, 2, ReasonCodes.MalformedEvidence);
            yield return Case("inner_cert_data_size", q.InnerCertificationDataHeaderOffset + 2, 4, ReasonCodes.MalformedEvidence);
        }
    }

    [TestCaseSource(nameof(Fields))]
    public void Flipped_low_bit_of_first_byte_and_high_bit_of_last_byte_are_each_rejected(string vector, int offset, int size, string expected)
    {
        foreach (var (at, mask) in new[] { (offset, (byte)0x01), (offset + size - 1, (byte)0x80), (offset + (size / 2), (byte)0x10) })
        {
            var r = VerifyFlipped(vector, at, mask);
            Assert.That(r.IsAccepted, Is.False, $"flip 0x{mask:x2} at {at}");
            Assert.That(Codes(r), Does.Contain(expected), $"flip 0x{mask:x2} at {at}: {Describe(r)}");
            if (expected == ReasonCodes.MalformedEvidence)
            {
                Assert.That(r.Reasons.Single().Message, Does.Contain("offset 0x"));
            }
        }
    }

    [TestCase(Gt1)]
    [TestCase(Gt2)]
    [TestCase(Gt3)]
    public void Flipped_bit_in_the_pck_leaf_certificate_text_breaks_the_chain(string vector)
    {
        var bytes = Vectors.Read(vector);
        var q = TdxQuote.Parse(bytes);
        var at = q.PckCertChainOffset + 300; // inside the leaf's base64 (TBS part)
        var original = bytes[at];
        bytes[at] = original == (byte)'A' ? (byte)'B' : (byte)'A';
        var s = SetupFor(vector);
        var r = TdxVectors.Verify(bytes, s.At, s.Provider, skipCrl: true);
        Assert.That(r.IsAccepted, Is.False);
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CertChainInvalid).Or.Contain(ReasonCodes.CertificateInvalid), Describe(r));
    }
}

/// <summary>Quotes cut short at structure boundaries are malformed evidence, not exceptions.</summary>
[TestFixture]
public sealed class Truncated_quotes_are_rejected_as_malformed_evidence
{
    [TestCase(Gt1)]
    [TestCase(Gt2)]
    public void Truncation_at_each_structure_boundary_gives_malformed_evidence_naming_an_offset(string vector)
    {
        var full = Vectors.Read(vector);
        var q = TdxQuote.Parse(full);
        int[] cuts = [0, HeaderSize - 1, q.BodyOffset + 1, q.SignedLength, q.SignatureDataOffset + 10, q.CertificationDataOffset, q.QeAuthDataOffset, q.PckCertChainOffset, q.QuoteEnd - 1];
        Assert.Multiple(() =>
        {
            foreach (var cut in cuts)
            {
                var r = TdxVectors.Verify(full[..cut], Gt2At, null);
                Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.MalformedEvidence }), $"cut at {cut}");
                Assert.That(r.Reasons[0].Message, Does.Match("at offset 0x[0-9a-f]+"), $"cut at {cut}");
                Assert.That(r.Claims.Count, Is.Zero);
            }
        });
    }
}

/// <summary>Length fields that claim absurd sizes are malformed evidence naming the field, never a crash or an over-read.</summary>
[TestFixture]
public sealed class Absurd_length_fields_are_rejected_as_malformed_evidence
{
    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var vector in new[] { Gt1, Gt2, Gt3 })
        {
            foreach (var (field, value) in new (string, uint)[] { ("signature_data_len", uint.MaxValue), ("signature_data_len", 0x7FFFFFFF), ("cert_data_size", uint.MaxValue), ("cert_data_size", 1), ("qe_auth_data_size", 0xFFFF), ("inner_cert_data_size", uint.MaxValue), ("inner_cert_data_size", 0) })
            {
                yield return new TestCaseData(vector, field, value).SetArgDisplayNames(Path.GetFileName(vector), field, value.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        yield return new TestCaseData(Gt2, "body_size", uint.MaxValue).SetArgDisplayNames("quote_v5_sample.dat", "body_size", "max");
        yield return new TestCaseData(Gt2, "body_size", 584u).SetArgDisplayNames("quote_v5_sample.dat", "body_size", "584");
    }

    [TestCaseSource(nameof(Cases))]
    public void Absurd_length_gives_malformed_evidence_naming_the_field(string vector, string field, uint value)
    {
        var bytes = Vectors.Read(vector);
        var q = TdxQuote.Parse(bytes);
        var (offset, width) = field switch
        {
            "signature_data_len" => (q.SignatureDataLengthOffset, 4),
            "cert_data_size" => (q.SignatureDataOffset + SigCertDataSizeOffset, 4),
            "qe_auth_data_size" => (q.QeAuthDataSizeOffset, 2),
            "inner_cert_data_size" => (q.InnerCertificationDataHeaderOffset + 2, 4),
            _ => (V5BodySizeOffset, 4),
        };
        if (width == 2)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(offset), (ushort)value);
        }
        else
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(offset), value);
        }

        var r = TdxVectors.Verify(bytes, Gt2At, null);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.MalformedEvidence }), Describe(r));
        Assert.That(r.Reasons[0].Message, Does.StartWith(field + " at offset 0x"));
    }
}
