namespace AttestBroker.Evidence.Tdx;

/// <summary>
/// Byte layout of Intel TDX DCAP quotes v4 and v5 (Intel "TDX DCAP Quoting Library API", appendix A.3/A.4;
/// docs/reference/tdx-quote.md). Every offset and size the parser uses is here, in one place. Integers are
/// little-endian; measurement registers are opaque byte strings.
/// </summary>
public static class TdxQuoteLayout
{
    // ---- Header (48 bytes, identical in v4 and v5) ----
    public const int HeaderOffset = 0x00;
    public const int HeaderSize = 0x30;
    public const int VersionOffset = 0x00;           // u16
    public const int AttestationKeyTypeOffset = 0x02; // u16
    public const int TeeTypeOffset = 0x04;           // u32
    public const int ReservedOffset = 0x08;          // 4 bytes (go-tdx-guest: PCE SVN, QE SVN)
    public const int ReservedSize = 4;
    public const int QeVendorIdOffset = 0x0C;
    public const int QeVendorIdSize = 16;
    public const int UserDataOffset = 0x1C;
    public const int UserDataSize = 20;

    public const ushort Version4 = 4;
    public const ushort Version5 = 5;
    public const ushort AttestationKeyTypeEcdsaP256 = 2;
    public const uint TeeTypeTdx = 0x81;

    /// <summary>The Intel Quoting Enclave vendor ID.</summary>
    public static ReadOnlySpan<byte> IntelQeVendorId =>
        [0x93, 0x9A, 0x72, 0x33, 0xF7, 0x9C, 0x4C, 0xA9, 0x94, 0x0A, 0x0D, 0xB3, 0x95, 0x7F, 0x06, 0x07];

    // ---- v5 body descriptor (after the header) ----
    public const int V5BodyTypeOffset = 0x30;  // u16
    public const int V5BodySizeOffset = 0x32;  // u32
    public const int V5BodyOffset = 0x36;
    public const ushort BodyTypeSgxEnclave = 1;
    public const ushort BodyTypeTd10 = 2;
    public const ushort BodyTypeTd15 = 3;

    // ---- v4 top level ----
    public const int V4BodyOffset = 0x30;

    // ---- TD quote body (offsets relative to the body) ----
    public const int Td10BodySize = 584;
    public const int Td15BodySize = 648;
    public const int BodyTeeTcbSvnOffset = 0x000;
    public const int TeeTcbSvnSize = 16;
    public const int BodyMrSeamOffset = 0x010;
    public const int BodyMrSignerSeamOffset = 0x040;
    public const int BodySeamAttributesOffset = 0x070;
    public const int BodyTdAttributesOffset = 0x078;
    public const int BodyXfamOffset = 0x080;
    public const int BodyMrTdOffset = 0x088;
    public const int BodyMrConfigIdOffset = 0x0B8;
    public const int BodyMrOwnerOffset = 0x0E8;
    public const int BodyMrOwnerConfigOffset = 0x118;
    public const int BodyRtmr0Offset = 0x148;
    public const int BodyRtmr1Offset = 0x178;
    public const int BodyRtmr2Offset = 0x1A8;
    public const int BodyRtmr3Offset = 0x1D8;
    public const int BodyReportDataOffset = 0x208;
    public const int BodyTeeTcbSvn2Offset = 0x248;  // TD 1.5 only
    public const int BodyMrServiceTdOffset = 0x258; // TD 1.5 only
    public const int MeasurementSize = 48;
    public const int AttributesSize = 8;
    public const int ReportDataSize = 64;

    // ---- Signature data length (u32) follows the body ----
    public const int SignatureDataLengthSize = 4;

    // ---- Signature data (sgx_ecdsa_sig_data_v4_t), offsets relative to its start ----
    public const int SigQuoteSignatureOffset = 0x00;
    public const int EcdsaSignatureSize = 64;
    public const int SigAttestationKeyOffset = 0x40;
    public const int EcdsaPublicKeySize = 64;
    public const int SigCertDataTypeOffset = 0x80;   // u16
    public const int SigCertDataSizeOffset = 0x82;   // u32
    public const int SigCertDataOffset = 0x86;
    public const ushort CertDataTypeQeReport = 6;    // ECDSA_SIG_AUX_DATA
    public const ushort CertDataTypePckCertChain = 5;

    // ---- Certification data type 6, offsets relative to its start ----
    public const int QeCertQeReportOffset = 0x000;
    public const int QeReportSize = 384;
    public const int QeCertQeReportSignatureOffset = 0x180;
    public const int QeCertAuthDataSizeOffset = 0x1C0; // u16
    public const int QeCertAuthDataOffset = 0x1C2;
    /// <summary>Inner certification data header after the auth data: u16 type, u32 size.</summary>
    public const int InnerCertHeaderSize = 6;

    // ---- SGX REPORT body (384 bytes) used for the QE report ----
    public const int ReportCpuSvnOffset = 0x000;
    public const int CpuSvnSize = 16;
    public const int ReportMiscSelectOffset = 0x010; // u32
    public const int ReportAttributesOffset = 0x030;
    public const int ReportAttributesSize = 16;
    public const int ReportMrEnclaveOffset = 0x040;
    public const int ReportMrSignerOffset = 0x080;
    public const int Sha256Size = 32;
    public const int ReportIsvProdIdOffset = 0x100; // u16
    public const int ReportIsvSvnOffset = 0x102;    // u16
    public const int ReportReportDataOffset = 0x140;
}
