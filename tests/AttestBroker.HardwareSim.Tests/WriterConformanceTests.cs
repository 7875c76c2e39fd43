using System.Buffers.Binary;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;
using AttestBroker.Testing;
using ParsedQuote = AttestBroker.Evidence.Tdx.TdxQuote;
using ParsedReport = AttestBroker.Evidence.Snp.SnpReport;
using SimSgxReportBody = AttestBroker.HardwareSim.Tdx.SgxReportBody;
using SimTdBody = AttestBroker.HardwareSim.Tdx.TdQuoteBody;

namespace AttestBroker.HardwareSim.Tests;

/// <summary>
/// The simulator's own writers reproduce real hardware's bytes: each real quote/report is parsed once with the
/// verifier's parser, its field values are fed to the simulator's writer, and the output must be byte-identical to the
/// real evidence (up to the end of the signed structure). A layout mistake in either the writer or the parser fails here.
/// </summary>
[TestFixture]
public sealed class Simulator_writers_reproduce_real_evidence_byte_for_byte
{
    [TestCase("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat", TestName = "Writer_reproduces_GT1_quote_v4_byte_for_byte")]
    [TestCase("tdx/go-tdx-guest/quote_v5_sample.dat", TestName = "Writer_reproduces_GT2_quote_v5_TD15_byte_for_byte")]
    [TestCase("tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat", TestName = "Writer_reproduces_GT3_quote_v4_byte_for_byte")]
    public void Tdx_quote_is_reproduced(string vector)
    {
        var real = Vectors.Read(vector);
        var q = ParsedQuote.Parse(real);
        var header = new TdxQuoteHeader
        {
            Version = q.Version,
            AttestationKeyType = q.AttestationKeyType,
            TeeType = q.TeeType,
            Reserved = q.Header.Span.Slice(8, 4).ToArray(),
            QeVendorId = q.QeVendorId.ToArray(),
            UserData = q.UserData.ToArray(),
        };
        var b = q.Body;
        var body = new SimTdBody
        {
            TeeTcbSvn = b.TeeTcbSvn.ToArray(),
            MrSeam = b.MrSeam.ToArray(),
            MrSignerSeam = b.MrSignerSeam.ToArray(),
            SeamAttributes = BinaryPrimitives.ReadUInt64LittleEndian(b.SeamAttributes.Span),
            TdAttributes = BinaryPrimitives.ReadUInt64LittleEndian(b.TdAttributes.Span),
            Xfam = BinaryPrimitives.ReadUInt64LittleEndian(b.Xfam.Span),
            MrTd = b.MrTd.ToArray(),
            MrConfigId = b.MrConfigId.ToArray(),
            MrOwner = b.MrOwner.ToArray(),
            MrOwnerConfig = b.MrOwnerConfig.ToArray(),
            Rtmrs = [b.Rtmr0.ToArray(), b.Rtmr1.ToArray(), b.Rtmr2.ToArray(), b.Rtmr3.ToArray()],
            ReportData = b.ReportData.ToArray(),
            TeeTcbSvn2 = b.TeeTcbSvn2?.ToArray() ?? new byte[16],
            MrServiceTd = b.MrServiceTd?.ToArray() ?? new byte[48],
        };
        var kind = b.IsTd15 ? TdBodyKind.Td15 : TdBodyKind.Td10;
        var qe = q.QeReport;
        var qeReport = TdxQuoteLayout.SgxReportBodyBytes(new SimSgxReportBody
        {
            CpuSvn = qe.CpuSvn.ToArray(),
            MiscSelect = qe.MiscSelect,
            Attributes = qe.Attributes.ToArray(),
            MrEnclave = qe.MrEnclave.ToArray(),
            MrSigner = qe.MrSigner.ToArray(),
            IsvProdId = qe.IsvProdId,
            IsvSvn = qe.IsvSvn,
            ReportData = qe.ReportData.ToArray(),
        });
        Assert.That(qeReport, Is.EqualTo(qe.Raw.ToArray()), "QE report (SGX report body) layout");

        var signed = TdxQuoteLayout.SignedRegion(header, body, kind);
        Assert.That(signed, Is.EqualTo(q.SignedBytes.ToArray()), "header and body layout");

        var sig = TdxQuoteLayout.SignatureData(new TdxSignatureData
        {
            QuoteSignature = q.QuoteSignature.ToArray(),
            AttestationKey = q.AttestationKey.ToArray(),
            CertificationDataType = q.CertificationDataType,
            QeReport = qeReport,
            QeReportSignature = q.QeReportSignature.ToArray(),
            QeAuthData = q.QeAuthData.ToArray(),
            InnerCertificationDataType = q.PckCertificationDataType,
            CertificationData = q.PckCertChainData.ToArray(),
        });
        var quote = TdxQuoteLayout.Assemble(signed, sig);
        Assert.That(quote, Is.EqualTo(real.AsSpan(0, q.QuoteEnd).ToArray()), "whole quote up to the end of its signature data");
    }

    [Test]
    public void Writer_reproduces_SG1_snp_report_v2_byte_for_byte()
    {
        var real = Vectors.Read("snp/go-sev-guest/attestation.bin");
        var r = ParsedReport.Parse(real);
        var fields = new SnpReportFields
        {
            Version = r.Version,
            GuestSvn = r.GuestSvn,
            Policy = r.Policy.Raw,
            FamilyId = r.FamilyId.ToArray(),
            ImageId = r.ImageId.ToArray(),
            Vmpl = r.Vmpl,
            SignatureAlgorithm = r.SignatureAlgo,
            CurrentTcb = Le(r.CurrentTcb.Raw),
            PlatformInfo = r.PlatformInfo.Raw,
            SignerInfo = r.SignerInfo,
            ReportData = r.ReportData.ToArray(),
            Measurement = r.Measurement.ToArray(),
            HostData = r.HostData.ToArray(),
            IdKeyDigest = r.IdKeyDigest.ToArray(),
            AuthorKeyDigest = r.AuthorKeyDigest.ToArray(),
            ReportId = r.ReportId.ToArray(),
            ReportIdMa = r.ReportIdMa.ToArray(),
            ReportedTcb = Le(r.ReportedTcb.Raw),
            CpuidFamilyId = r.CpuidFamilyId ?? 0,
            CpuidModelId = r.CpuidModelId ?? 0,
            CpuidStepping = r.CpuidStepping ?? 0,
            ChipId = r.ChipId.ToArray(),
            CommittedTcb = Le(r.CommittedTcb.Raw),
            CurrentBuild = r.CurrentBuild,
            CurrentMinor = r.CurrentMinor,
            CurrentMajor = r.CurrentMajor,
            CommittedBuild = r.CommittedBuild,
            CommittedMinor = r.CommittedMinor,
            CommittedMajor = r.CommittedMajor,
            LaunchTcb = Le(r.LaunchTcb.Raw),
            LaunchMitVector = r.LaunchMitVector ?? 0,
            CurrentMitVector = r.CurrentMitVector ?? 0,
        };
        var written = SnpReportLayout.WriteUnsigned(fields);
        var rs = new byte[96];
        r.SignatureR.Span[..48].CopyTo(rs);
        r.SignatureS.Span[..48].CopyTo(rs.AsSpan(48));
        rs.AsSpan(0, 48).Reverse();
        rs.AsSpan(48).Reverse();
        SnpReportLayout.WriteSignature(written, rs);
        Assert.That(written, Is.EqualTo(real));
    }

    [Test]
    public void Td_body_sizes_and_signed_lengths_match_the_reference()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(TdxQuoteLayout.BodySize(TdBodyKind.Td10), Is.EqualTo(584));
            Assert.That(TdxQuoteLayout.BodySize(TdBodyKind.Td15), Is.EqualTo(648));
            Assert.That(TdxQuoteLayout.SignedLength(4, TdBodyKind.Td10), Is.EqualTo(632));
            Assert.That(TdxQuoteLayout.SignedLength(5, TdBodyKind.Td15), Is.EqualTo(702));
            Assert.That(SnpReportLayout.ReportSize, Is.EqualTo(1184));
            Assert.That(SnpReportLayout.SignedLength, Is.EqualTo(0x2A0));
        }
    }

    [Test]
    public void A_field_of_the_wrong_size_is_refused_with_its_name()
    {
        var body = new SimTdBody { MrTd = new byte[47] };
        var ex = Assert.Throws<SimulatorException>(() => TdxQuoteLayout.SignedRegion(new TdxQuoteHeader(), body, TdBodyKind.Td10));
        Assert.That(ex!.Message, Does.Contain("mrtd"));
    }

    [Test]
    public void A_v4_quote_with_a_TD15_body_is_refused()
    {
        Assert.Throws<SimulatorException>(() => TdxQuoteLayout.SignedRegion(new TdxQuoteHeader { Version = 4 }, new SimTdBody(), TdBodyKind.Td15));
    }

    private static byte[] Le(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }
}
