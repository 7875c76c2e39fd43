using System.Buffers.Binary;

namespace AttestBroker.HardwareSim.Tdx;

/// <summary>
/// Writes the TDX quote v4/v5 binary layout (Intel "TDX DCAP Quoting Library API", appendix A.3/A.4). This is the
/// simulator's own writer: it shares no code with the verifier's parser, so a layout mistake cannot hide by being
/// made twice. No cryptography here: signatures come in as bytes.
/// </summary>
public static class TdxQuoteLayout
{
    public const int HeaderSize = 0x30;
    public const int Td10BodySize = 0x248;
    public const int Td15BodySize = 0x288;
    public const int SgxReportBodySize = 0x180;

    // Header offsets.
    private const int HdrVersion = 0x00;
    private const int HdrAttKeyType = 0x02;
    private const int HdrTeeType = 0x04;
    private const int HdrReserved = 0x08;
    private const int HdrQeVendorId = 0x0C;
    private const int HdrUserData = 0x1C;

    // TD body offsets (relative to the body).
    private const int BodyTeeTcbSvn = 0x000;
    private const int BodyMrSeam = 0x010;
    private const int BodyMrSignerSeam = 0x040;
    private const int BodySeamAttributes = 0x070;
    private const int BodyTdAttributes = 0x078;
    private const int BodyXfam = 0x080;
    private const int BodyMrTd = 0x088;
    private const int BodyMrConfigId = 0x0B8;
    private const int BodyMrOwner = 0x0E8;
    private const int BodyMrOwnerConfig = 0x118;
    private const int BodyRtmr0 = 0x148;
    private const int BodyReportData = 0x208;
    private const int BodyTeeTcbSvn2 = 0x248;
    private const int BodyMrServiceTd = 0x258;

    // v5 body descriptor (absolute).
    private const int V5BodyType = 0x30;
    private const int V5BodySize = 0x32;
    private const int V5Body = 0x36;

    // SGX report body offsets.
    private const int RepCpuSvn = 0x000;
    private const int RepMiscSelect = 0x010;
    private const int RepAttributes = 0x030;
    private const int RepMrEnclave = 0x040;
    private const int RepMrSigner = 0x080;
    private const int RepIsvProdId = 0x100;
    private const int RepIsvSvn = 0x102;
    private const int RepReportData = 0x140;

    // Signature data offsets (relative to the signature data).
    private const int SigQuoteSignature = 0x00;
    private const int SigAttestationKey = 0x40;
    private const int SigCertDataType = 0x80;
    private const int SigCertDataSize = 0x82;
    private const int SigCertData = 0x86;

    // QE report certification data (relative to the certification data).
    private const int QeReport = 0x000;
    private const int QeReportSignature = 0x180;
    private const int QeAuthDataSize = 0x1C0;
    private const int QeAuthData = 0x1C2;

    public static int BodySize(TdBodyKind kind) => kind == TdBodyKind.Td15 ? Td15BodySize : Td10BodySize;

    /// <summary>Length of the signed region: header ‖ body (v4), header ‖ type ‖ size ‖ body (v5).</summary>
    public static int SignedLength(ushort version, TdBodyKind kind) =>
        version == 4 ? HeaderSize + Td10BodySize : V5Body + BodySize(kind);

    public static void WriteHeader(Span<byte> dest, TdxQuoteHeader header)
    {
        ArgumentNullException.ThrowIfNull(header);
        Require(dest, HeaderSize, "header");
        dest[..HeaderSize].Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(dest[HdrVersion..], header.Version);
        BinaryPrimitives.WriteUInt16LittleEndian(dest[HdrAttKeyType..], header.AttestationKeyType);
        BinaryPrimitives.WriteUInt32LittleEndian(dest[HdrTeeType..], header.TeeType);
        Put(dest, HdrReserved, header.Reserved, 4, "reserved");
        Put(dest, HdrQeVendorId, header.QeVendorId, 16, "qe_vendor_id");
        Put(dest, HdrUserData, header.UserData, 20, "user_data");
    }

    public static void WriteTdBody(Span<byte> dest, TdQuoteBody body, TdBodyKind kind)
    {
        ArgumentNullException.ThrowIfNull(body);
        var size = BodySize(kind);
        Require(dest, size, "td body");
        dest[..size].Clear();
        Put(dest, BodyTeeTcbSvn, body.TeeTcbSvn, 16, "tee_tcb_svn");
        Put(dest, BodyMrSeam, body.MrSeam, 48, "mrseam");
        Put(dest, BodyMrSignerSeam, body.MrSignerSeam, 48, "mrsignerseam");
        BinaryPrimitives.WriteUInt64LittleEndian(dest[BodySeamAttributes..], body.SeamAttributes);
        BinaryPrimitives.WriteUInt64LittleEndian(dest[BodyTdAttributes..], body.TdAttributes);
        BinaryPrimitives.WriteUInt64LittleEndian(dest[BodyXfam..], body.Xfam);
        Put(dest, BodyMrTd, body.MrTd, 48, "mrtd");
        Put(dest, BodyMrConfigId, body.MrConfigId, 48, "mrconfigid");
        Put(dest, BodyMrOwner, body.MrOwner, 48, "mrowner");
        Put(dest, BodyMrOwnerConfig, body.MrOwnerConfig, 48, "mrownerconfig");
        if (body.Rtmrs.Length != 4)
        {
            throw new SimulatorException("a TD body has exactly 4 RTMRs");
        }

        for (var i = 0; i < 4; i++)
        {
            Put(dest, BodyRtmr0 + (48 * i), body.Rtmrs[i], 48, "rtmr" + i);
        }

        Put(dest, BodyReportData, body.ReportData, 64, "report_data");
        if (kind == TdBodyKind.Td15)
        {
            Put(dest, BodyTeeTcbSvn2, body.TeeTcbSvn2, 16, "tee_tcb_svn2");
            Put(dest, BodyMrServiceTd, body.MrServiceTd, 48, "mrservicetd");
        }
    }

    public static void WriteSgxReportBody(Span<byte> dest, SgxReportBody report)
    {
        ArgumentNullException.ThrowIfNull(report);
        Require(dest, SgxReportBodySize, "sgx report body");
        dest[..SgxReportBodySize].Clear();
        Put(dest, RepCpuSvn, report.CpuSvn, 16, "cpusvn");
        BinaryPrimitives.WriteUInt32LittleEndian(dest[RepMiscSelect..], report.MiscSelect);
        Put(dest, RepAttributes, report.Attributes, 16, "attributes");
        Put(dest, RepMrEnclave, report.MrEnclave, 32, "mrenclave");
        Put(dest, RepMrSigner, report.MrSigner, 32, "mrsigner");
        BinaryPrimitives.WriteUInt16LittleEndian(dest[RepIsvProdId..], report.IsvProdId);
        BinaryPrimitives.WriteUInt16LittleEndian(dest[RepIsvSvn..], report.IsvSvn);
        Put(dest, RepReportData, report.ReportData, 64, "report_data");
    }

    public static byte[] SgxReportBodyBytes(SgxReportBody report)
    {
        var b = new byte[SgxReportBodySize];
        WriteSgxReportBody(b, report);
        return b;
    }

    /// <summary>The signed region (header, v5 descriptor and body) of a quote.</summary>
    public static byte[] SignedRegion(TdxQuoteHeader header, TdQuoteBody body, TdBodyKind kind)
    {
        ArgumentNullException.ThrowIfNull(header);
        if (header.Version == 4 && kind != TdBodyKind.Td10)
        {
            throw new SimulatorException("quote v4 carries only a TDX 1.0 body; use quote version 5 for TDX 1.5");
        }

        if (header.Version is not (4 or 5))
        {
            throw new SimulatorException($"quote version {header.Version} is not 4 or 5");
        }

        var output = new byte[SignedLength(header.Version, kind)];
        WriteHeader(output, header);
        if (header.Version == 4)
        {
            WriteTdBody(output.AsSpan(HeaderSize), body, kind);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(V5BodyType), (ushort)kind);
            BinaryPrimitives.WriteUInt32LittleEndian(output.AsSpan(V5BodySize), (uint)BodySize(kind));
            WriteTdBody(output.AsSpan(V5Body), body, kind);
        }

        return output;
    }

    /// <summary>The signature data structure (quote signature, attestation key, certification data type 6 wrapping type 5).</summary>
    public static byte[] SignatureData(TdxSignatureData sig)
    {
        ArgumentNullException.ThrowIfNull(sig);
        var authLen = sig.QeAuthData.Length;
        if (authLen > ushort.MaxValue)
        {
            throw new SimulatorException("QE auth data is longer than 65535 bytes");
        }

        var innerStart = QeAuthData + authLen;
        var certDataSize = innerStart + 2 + 4 + sig.CertificationData.Length;
        var output = new byte[SigCertData + certDataSize];
        Put(output, SigQuoteSignature, sig.QuoteSignature, 64, "quote_signature");
        Put(output, SigAttestationKey, sig.AttestationKey, 64, "attest_pub_key");
        BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(SigCertDataType), sig.CertificationDataType);
        BinaryPrimitives.WriteUInt32LittleEndian(output.AsSpan(SigCertDataSize), (uint)certDataSize);
        var cd = output.AsSpan(SigCertData);
        Put(cd, QeReport, sig.QeReport, SgxReportBodySize, "qe_report");
        Put(cd, QeReportSignature, sig.QeReportSignature, 64, "qe_report_signature");
        BinaryPrimitives.WriteUInt16LittleEndian(cd[QeAuthDataSize..], (ushort)authLen);
        sig.QeAuthData.CopyTo(cd[QeAuthData..]);
        BinaryPrimitives.WriteUInt16LittleEndian(cd[innerStart..], sig.InnerCertificationDataType);
        BinaryPrimitives.WriteUInt32LittleEndian(cd[(innerStart + 2)..], (uint)sig.CertificationData.Length);
        sig.CertificationData.CopyTo(cd[(innerStart + 6)..]);
        return output;
    }

    /// <summary>A whole quote: signed region ‖ u32 signature_data_len ‖ signature data.</summary>
    public static byte[] Assemble(ReadOnlySpan<byte> signedRegion, ReadOnlySpan<byte> signatureData)
    {
        var output = new byte[signedRegion.Length + 4 + signatureData.Length];
        signedRegion.CopyTo(output);
        BinaryPrimitives.WriteUInt32LittleEndian(output.AsSpan(signedRegion.Length), (uint)signatureData.Length);
        signatureData.CopyTo(output.AsSpan(signedRegion.Length + 4));
        return output;
    }

    private static void Put(Span<byte> dest, int offset, byte[] value, int size, string field)
    {
        if (value is null || value.Length != size)
        {
            throw new SimulatorException($"{field} must be {size} bytes, got {value?.Length ?? 0}");
        }

        value.CopyTo(dest[offset..]);
    }

    private static void Require(Span<byte> dest, int size, string what)
    {
        if (dest.Length < size)
        {
            throw new ArgumentException($"{what} needs {size} bytes, destination has {dest.Length}", nameof(dest));
        }
    }
}
