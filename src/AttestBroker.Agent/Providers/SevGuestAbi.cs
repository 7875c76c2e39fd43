using System.Buffers.Binary;

namespace AttestBroker.Agent.Providers;

/// <summary>
/// Byte layouts of /dev/sev-guest (include/uapi/linux/sev-guest.h) and of the GHCB certificate table. Encoding and
/// decoding only; <see cref="SevGuestIoctlProvider"/> does the system calls.
/// </summary>
public static class SevGuestAbi
{
    public const int UserDataLength = 64;

    /// <summary>struct snp_guest_request_ioctl: u8 msg_version @0 (7 bytes padding), u64 req_data @8, u64 resp_data @16, u64 exitinfo2 @24 (fw_error low 32 bits, vmm_error high 32 bits).</summary>
    public const int GuestRequestSize = 32;

    /// <summary>struct snp_report_req: u8 user_data[64] @0, u32 vmpl @64, u8 rsvd[28] @68.</summary>
    public const int ReportRequestSize = 96;

    /// <summary>struct snp_ext_report_req: snp_report_req @0, u64 certs_address @96, u32 certs_len @104, padded to 112 (8-byte alignment).</summary>
    public const int ExtReportRequestSize = 112;

    /// <summary>struct snp_report_resp: u8 data[4000] holding MSG_REPORT_RSP.</summary>
    public const int ReportResponseSize = 4000;

    /// <summary>MSG_REPORT_RSP: u32 status @0, u32 report_size @4, reserved to 0x20, report @0x20.</summary>
    public const int ReportOffset = 0x20;

    /// <summary>An ATTESTATION_REPORT is 0x4A0 bytes.</summary>
    public const int AttestationReportLength = 0x4A0;

    /// <summary>Certificate buffers are whole pages.</summary>
    public const int PageSize = 4096;

    /// <summary>SNP_GUEST_VMM_ERR_INVALID_LEN: the certificate buffer is too small; certs_len holds the size needed.</summary>
    public const uint VmmErrorInvalidLength = 1;

    /// <summary>SNP_GUEST_VMM_ERR_BUSY.</summary>
    public const uint VmmErrorBusy = 2;

    /// <summary>SNP_GET_REPORT = _IOWR('S', 0, struct snp_guest_request_ioctl) = 0xC0205300.</summary>
    public static readonly uint GetReport = LinuxIoctl.ReadWrite('S', 0, GuestRequestSize);

    /// <summary>SNP_GET_EXT_REPORT = _IOWR('S', 2, struct snp_guest_request_ioctl) = 0xC0205302.</summary>
    public static readonly uint GetExtReport = LinuxIoctl.ReadWrite('S', 2, GuestRequestSize);

    /// <summary>struct snp_guest_request_ioctl with msg_version 1.</summary>
    public static byte[] EncodeGuestRequest(ulong requestAddress, ulong responseAddress)
    {
        var request = new byte[GuestRequestSize];
        request[0] = 1;
        BinaryPrimitives.WriteUInt64LittleEndian(request.AsSpan(8), requestAddress);
        BinaryPrimitives.WriteUInt64LittleEndian(request.AsSpan(16), responseAddress);
        return request;
    }

    /// <summary>The firmware and VMM error codes the kernel wrote into exitinfo2.</summary>
    public static (uint FirmwareError, uint VmmError) DecodeExitInfo2(ReadOnlySpan<byte> guestRequest)
    {
        if (guestRequest.Length != GuestRequestSize)
        {
            throw new ArgumentException($"struct snp_guest_request_ioctl is {GuestRequestSize} bytes, got {guestRequest.Length}", nameof(guestRequest));
        }

        var exitInfo2 = BinaryPrimitives.ReadUInt64LittleEndian(guestRequest[24..]);
        return ((uint)exitInfo2, (uint)(exitInfo2 >> 32));
    }

    /// <summary>struct snp_report_req: the user data (REPORT_DATA) and the VMPL, reserved bytes zero.</summary>
    public static byte[] EncodeReportRequest(ReadOnlySpan<byte> userData, uint vmpl = 0)
    {
        if (userData.Length != UserDataLength)
        {
            throw new ArgumentException($"user data must be {UserDataLength} bytes, got {userData.Length}", nameof(userData));
        }

        if (vmpl > 3)
        {
            throw new ArgumentOutOfRangeException(nameof(vmpl), "VMPL is 0 .. 3");
        }

        var request = new byte[ReportRequestSize];
        userData.CopyTo(request);
        BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(64), vmpl);
        return request;
    }

    /// <summary>struct snp_ext_report_req: the report request, then the page-aligned certificate buffer's address and length.</summary>
    public static byte[] EncodeExtReportRequest(ReadOnlySpan<byte> userData, uint vmpl, ulong certificatesAddress, uint certificatesLength)
    {
        if (certificatesLength % PageSize != 0)
        {
            throw new ArgumentException($"the certificate buffer length must be a multiple of {PageSize}", nameof(certificatesLength));
        }

        var request = new byte[ExtReportRequestSize];
        EncodeReportRequest(userData, vmpl).CopyTo(request, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(request.AsSpan(96), certificatesAddress);
        BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(104), certificatesLength);
        return request;
    }

    /// <summary>certs_len of a struct snp_ext_report_req (the kernel sets it to the size needed after INVALID_LEN).</summary>
    public static uint ExtReportCertificatesLength(ReadOnlySpan<byte> extRequest) =>
        extRequest.Length == ExtReportRequestSize ? BinaryPrimitives.ReadUInt32LittleEndian(extRequest[104..]) : throw new ArgumentException($"struct snp_ext_report_req is {ExtReportRequestSize} bytes", nameof(extRequest));

    /// <summary>The ATTESTATION_REPORT from struct snp_report_resp, after checking the firmware status and the size.</summary>
    public static byte[] DecodeReportResponse(ReadOnlySpan<byte> response)
    {
        if (response.Length != ReportResponseSize)
        {
            throw new ArgumentException($"struct snp_report_resp is {ReportResponseSize} bytes, got {response.Length}", nameof(response));
        }

        var status = BinaryPrimitives.ReadUInt32LittleEndian(response);
        if (status != 0)
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"SNP firmware answered MSG_REPORT_RSP status 0x{status:x} (0x16 = invalid parameters)");
        }

        var size = BinaryPrimitives.ReadUInt32LittleEndian(response[4..]);
        if (size < AttestationReportLength || size > ReportResponseSize - ReportOffset)
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"SNP firmware answered report_size {size}, expected 0x{AttestationReportLength:x}");
        }

        return response.Slice(ReportOffset, (int)size).ToArray();
    }
}

/// <summary>Checks a host certificate table (auxblob, SNP_GET_EXT_REPORT) with the evidence parser's reader.</summary>
internal static class CertificateTableCheck
{
    public static void Validate(byte[] table, string provider)
    {
        try
        {
            _ = AttestBroker.Evidence.Snp.SnpCertificateTable.Parse(table);
        }
        catch (AttestBroker.Evidence.EvidenceFormatException ex)
        {
            throw new EvidenceProviderException(EvidenceProviderError.InvalidResponse, $"{provider}: the host's certificate table is malformed: {ex.Message}", ex);
        }
    }
}
