using System.Buffers.Binary;
using System.Runtime.InteropServices;
using AttestBroker.Agent.Providers;
using NUnit.Framework;

namespace AttestBroker.Agent.Tests;

/// <summary>The ioctl request numbers and struct layouts of /dev/tdx_guest and /dev/sev-guest, checked against the uapi headers' definitions.</summary>
public sealed class IoctlAbiTests
{
    // C layouts of the uapi structs with natural x86-64 alignment, to cross-check the sizes the encoders use.
    [StructLayout(LayoutKind.Sequential)]
    private struct SnpGuestRequestIoctl
    {
        public byte MsgVersion;
        public ulong ReqData;
        public ulong RespData;
        public ulong ExitInfo2;
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct SnpExtReportReq
    {
        public fixed byte UserData[64];
        public uint Vmpl;
        public fixed byte Reserved[28];
        public ulong CertsAddress;
        public uint CertsLen;
    }

    [Test]
    public void Ioctl_numbers_are_those_of_the_uapi_headers()
    {
        Assert.Multiple(() =>
        {
            Assert.That(TdxGuestAbi.GetReport0, Is.EqualTo(0xC4405401u), "TDX_CMD_GET_REPORT0 = _IOWR('T', 1, 1088 bytes)");
            Assert.That(TdxGuestAbi.GetQuote, Is.EqualTo(0x80105402u), "TDX_CMD_GET_QUOTE = _IOR('T', 2, 16 bytes)");
            Assert.That(SevGuestAbi.GetReport, Is.EqualTo(0xC0205300u), "SNP_GET_REPORT = _IOWR('S', 0, 32 bytes)");
            Assert.That(SevGuestAbi.GetExtReport, Is.EqualTo(0xC0205302u), "SNP_GET_EXT_REPORT = _IOWR('S', 2, 32 bytes)");
        });
    }

    [Test]
    public void Struct_sizes_match_the_C_layouts_with_natural_alignment()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Marshal.SizeOf<SnpGuestRequestIoctl>(), Is.EqualTo(SevGuestAbi.GuestRequestSize));
            Assert.That(Marshal.OffsetOf<SnpGuestRequestIoctl>(nameof(SnpGuestRequestIoctl.ReqData)).ToInt32(), Is.EqualTo(8));
            Assert.That(Marshal.OffsetOf<SnpGuestRequestIoctl>(nameof(SnpGuestRequestIoctl.ExitInfo2)).ToInt32(), Is.EqualTo(24));
            Assert.That(Marshal.SizeOf<SnpExtReportReq>(), Is.EqualTo(SevGuestAbi.ExtReportRequestSize));
            Assert.That(Marshal.OffsetOf<SnpExtReportReq>(nameof(SnpExtReportReq.CertsAddress)).ToInt32(), Is.EqualTo(96));
            Assert.That(Marshal.OffsetOf<SnpExtReportReq>(nameof(SnpExtReportReq.CertsLen)).ToInt32(), Is.EqualTo(104));
        });
    }

    [Test]
    public void Tdx_report_request_carries_the_report_data_first_and_a_zero_report_area()
    {
        var reportData = Enumerable.Range(1, 64).Select(i => (byte)i).ToArray();
        var request = TdxGuestAbi.EncodeReportRequest(reportData);
        Assert.Multiple(() =>
        {
            Assert.That(request, Has.Length.EqualTo(1088));
            Assert.That(request[..64], Is.EqualTo(reportData));
            Assert.That(request[64..].All(b => b == 0), Is.True);
        });

        request[64] = 0x81;
        request[1087] = 0x7f;
        var tdReport = TdxGuestAbi.DecodeReportResponse(request);
        Assert.That(tdReport, Has.Length.EqualTo(1024));
        Assert.That((tdReport[0], tdReport[1023]), Is.EqualTo(((byte)0x81, (byte)0x7f)));
    }

    [Test]
    public void Tdx_report_request_refuses_report_data_that_is_not_64_bytes()
    {
        Assert.That(() => TdxGuestAbi.EncodeReportRequest(new byte[32]), Throws.ArgumentException.With.Message.Contains("64 bytes"));
    }

    [Test]
    public void Tdx_all_zero_tdreport_is_refused()
    {
        var ex = Assert.Throws<EvidenceProviderException>(() => TdxGuestAbi.DecodeReportResponse(new byte[1088]))!;
        Assert.That(ex.Error, Is.EqualTo(EvidenceProviderError.InvalidResponse));
    }

    [Test]
    public void Tdx_quote_buffer_holds_the_ghci_header_and_the_qgs_get_quote_request()
    {
        var tdReport = Enumerable.Range(0, 1024).Select(i => (byte)(i * 7)).ToArray();
        var buffer = TdxGuestAbi.EncodeQuoteBuffer(tdReport);
        Assert.Multiple(() =>
        {
            Assert.That(buffer, Has.Length.EqualTo(16384));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(buffer), Is.EqualTo(1UL), "version");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(8)), Is.EqualTo(0UL), "status");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(16)), Is.EqualTo(4u + 1048), "in_len: length prefix + message");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(20)), Is.EqualTo(0u), "out_len");
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(24)), Is.EqualTo(1048u), "message length, big-endian");
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(28)), Is.EqualTo((ushort)1), "QGS major");
            Assert.That(BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(30)), Is.EqualTo((ushort)0), "QGS minor");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(32)), Is.EqualTo(0u), "GET_QUOTE_REQ");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(36)), Is.EqualTo(1048u), "message size");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(40)), Is.EqualTo(0u), "error code");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(44)), Is.EqualTo(1024u), "report size");
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(48)), Is.EqualTo(0u), "id list size");
            Assert.That(buffer[52..1076], Is.EqualTo(tdReport));
        });
    }

    [Test]
    public void Tdx_quote_request_points_at_the_buffer()
    {
        var request = TdxGuestAbi.EncodeQuoteRequest(0x1122334455667788, 16384);
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(request), Is.EqualTo(0x1122334455667788UL));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(request.AsSpan(8)), Is.EqualTo(16384UL));
    }

    /// <summary>A GetQuote buffer as a host fills it: GET_QUOTE_RESP with an id and the quote.</summary>
    private static byte[] QuoteResponse(byte[] quote, ulong status = 0, uint error = 0, uint type = 1, int selectedId = 16, int? declaredQuoteSize = null)
    {
        var buffer = new byte[16384];
        var s = buffer.AsSpan();
        var messageLength = 16 + 8 + selectedId + quote.Length;
        BinaryPrimitives.WriteUInt64LittleEndian(s, 1);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], status);
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], 1052);
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], (uint)(4 + messageLength));
        BinaryPrimitives.WriteUInt32BigEndian(s[24..], (uint)messageLength);
        var m = s[28..];
        BinaryPrimitives.WriteUInt16LittleEndian(m, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(m[4..], type);
        BinaryPrimitives.WriteUInt32LittleEndian(m[8..], (uint)messageLength);
        BinaryPrimitives.WriteUInt32LittleEndian(m[12..], error);
        BinaryPrimitives.WriteUInt32LittleEndian(m[16..], (uint)selectedId);
        BinaryPrimitives.WriteUInt32LittleEndian(m[20..], (uint)(declaredQuoteSize ?? quote.Length));
        m.Slice(24, selectedId).Fill(0xAA);
        quote.CopyTo(m[(24 + selectedId)..]);
        return buffer;
    }

    [Test]
    public void Tdx_quote_is_read_from_a_successful_get_quote_response_after_the_selected_id()
    {
        var quote = Enumerable.Range(0, 5000).Select(i => (byte)(i % 251)).ToArray();
        Assert.That(TdxGuestAbi.DecodeQuoteBuffer(QuoteResponse(quote)), Is.EqualTo(quote));
    }

    [TestCase(0xFFFFFFFFFFFFFFFFUL, EvidenceProviderError.Busy, "in flight")]
    [TestCase(0x8000000000000001UL, EvidenceProviderError.Busy, "unavailable")]
    [TestCase(0x8000000000000000UL, EvidenceProviderError.InvalidResponse, "0x8000000000000000")]
    public void Tdx_get_quote_status_other_than_success_is_refused_with_its_meaning(ulong status, EvidenceProviderError expected, string message)
    {
        var ex = Assert.Throws<EvidenceProviderException>(() => TdxGuestAbi.DecodeQuoteBuffer(QuoteResponse([1, 2, 3], status)))!;
        Assert.That(ex.Error, Is.EqualTo(expected));
        Assert.That(ex.Message, Does.Contain(message));
    }

    [Test]
    public void Tdx_get_quote_response_with_a_qgs_error_code_is_refused()
    {
        var ex = Assert.Throws<EvidenceProviderException>(() => TdxGuestAbi.DecodeQuoteBuffer(QuoteResponse([1, 2, 3], error: 0x12)))!;
        Assert.That(ex.Message, Does.Contain("error code 0x12"));
    }

    [Test]
    public void Tdx_get_quote_response_of_the_wrong_message_type_is_refused()
    {
        var ex = Assert.Throws<EvidenceProviderException>(() => TdxGuestAbi.DecodeQuoteBuffer(QuoteResponse([1, 2, 3], type: 0)))!;
        Assert.That(ex.Message, Does.Contain("GET_QUOTE_RESP"));
    }

    [Test]
    public void Tdx_get_quote_response_whose_quote_size_overruns_the_message_is_refused()
    {
        var ex = Assert.Throws<EvidenceProviderException>(() => TdxGuestAbi.DecodeQuoteBuffer(QuoteResponse([1, 2, 3], declaredQuoteSize: 4)))!;
        Assert.That(ex.Message, Does.Contain("do not fit"));
    }

    [Test]
    public void Tdx_get_quote_response_whose_out_len_exceeds_the_buffer_is_refused()
    {
        var buffer = QuoteResponse([1, 2, 3]);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(20), 20000);
        var ex = Assert.Throws<EvidenceProviderException>(() => TdxGuestAbi.DecodeQuoteBuffer(buffer))!;
        Assert.That(ex.Message, Does.Contain("out_len 20000"));
    }

    [Test]
    public void Snp_guest_request_has_message_version_1_and_the_two_pointers()
    {
        var request = SevGuestAbi.EncodeGuestRequest(0xAAAA_0000_1000, 0xBBBB_0000_2000);
        Assert.Multiple(() =>
        {
            Assert.That(request, Has.Length.EqualTo(32));
            Assert.That(request[0], Is.EqualTo(1));
            Assert.That(request[1..8].All(b => b == 0), Is.True, "padding");
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(request.AsSpan(8)), Is.EqualTo(0xAAAA_0000_1000UL));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(request.AsSpan(16)), Is.EqualTo(0xBBBB_0000_2000UL));
        });
    }

    [Test]
    public void Snp_exitinfo2_splits_into_firmware_error_low_and_vmm_error_high()
    {
        var request = new byte[32];
        BinaryPrimitives.WriteUInt64LittleEndian(request.AsSpan(24), (1UL << 32) | 0x16);
        Assert.That(SevGuestAbi.DecodeExitInfo2(request), Is.EqualTo((0x16u, 1u)));
    }

    [Test]
    public void Snp_report_request_holds_user_data_then_vmpl_then_zero_reserved_bytes()
    {
        var userData = Enumerable.Range(100, 64).Select(i => (byte)i).ToArray();
        var request = SevGuestAbi.EncodeReportRequest(userData, vmpl: 2);
        Assert.Multiple(() =>
        {
            Assert.That(request, Has.Length.EqualTo(96));
            Assert.That(request[..64], Is.EqualTo(userData));
            Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(request.AsSpan(64)), Is.EqualTo(2u));
            Assert.That(request[68..].All(b => b == 0), Is.True);
        });
        Assert.That(() => SevGuestAbi.EncodeReportRequest(userData, vmpl: 4), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void Snp_ext_report_request_adds_the_certificate_buffer_and_reads_back_the_length_the_kernel_asks_for()
    {
        var request = SevGuestAbi.EncodeExtReportRequest(new byte[64], 0, 0x7f00_0000_0000, 16384);
        Assert.Multiple(() =>
        {
            Assert.That(request, Has.Length.EqualTo(112));
            Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(request.AsSpan(96)), Is.EqualTo(0x7f00_0000_0000UL));
            Assert.That(SevGuestAbi.ExtReportCertificatesLength(request), Is.EqualTo(16384u));
        });
        BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(104), 20480);
        Assert.That(SevGuestAbi.ExtReportCertificatesLength(request), Is.EqualTo(20480u));
        Assert.That(() => SevGuestAbi.EncodeExtReportRequest(new byte[64], 0, 0, 1000), Throws.ArgumentException.With.Message.Contains("multiple of 4096"));
    }

    [Test]
    public void Snp_report_is_read_at_0x20_of_a_successful_msg_report_rsp()
    {
        var response = new byte[4000];
        BinaryPrimitives.WriteUInt32LittleEndian(response.AsSpan(4), 0x4A0);
        response[0x20] = 3;
        response[0x20 + 0x49F] = 0xEE;
        var report = SevGuestAbi.DecodeReportResponse(response);
        Assert.That(report, Has.Length.EqualTo(0x4A0));
        Assert.That((report[0], report[^1]), Is.EqualTo(((byte)3, (byte)0xEE)));
    }

    [Test]
    public void Snp_firmware_status_other_than_zero_is_refused_with_the_status()
    {
        var response = new byte[4000];
        BinaryPrimitives.WriteUInt32LittleEndian(response, 0x16);
        BinaryPrimitives.WriteUInt32LittleEndian(response.AsSpan(4), 0x4A0);
        var ex = Assert.Throws<EvidenceProviderException>(() => SevGuestAbi.DecodeReportResponse(response))!;
        Assert.That(ex.Message, Does.Contain("status 0x16"));
    }

    [Test]
    public void Snp_report_size_other_than_an_attestation_report_is_refused()
    {
        var response = new byte[4000];
        BinaryPrimitives.WriteUInt32LittleEndian(response.AsSpan(4), 0x100);
        var ex = Assert.Throws<EvidenceProviderException>(() => SevGuestAbi.DecodeReportResponse(response))!;
        Assert.That(ex.Message, Does.Contain("report_size 256"));
    }
}
