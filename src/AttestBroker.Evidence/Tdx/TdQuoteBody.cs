using static AttestBroker.Evidence.Tdx.TdxQuoteLayout;

namespace AttestBroker.Evidence.Tdx;

/// <summary>
/// The TD quote body (TD report as seen by the verifier): 584 bytes for TDX 1.0, 648 bytes for TDX 1.5
/// (which adds TEE_TCB_SVN2 and MRSERVICETD). Every field is a slice of the quote's own copy of the bytes.
/// </summary>
public sealed class TdQuoteBody
{
    internal TdQuoteBody(ReadOnlyMemory<byte> body, ushort bodyType)
    {
        Raw = body;
        BodyType = bodyType;
        TeeTcbSvn = body.Slice(BodyTeeTcbSvnOffset, TeeTcbSvnSize);
        MrSeam = body.Slice(BodyMrSeamOffset, MeasurementSize);
        MrSignerSeam = body.Slice(BodyMrSignerSeamOffset, MeasurementSize);
        SeamAttributes = body.Slice(BodySeamAttributesOffset, AttributesSize);
        TdAttributes = body.Slice(BodyTdAttributesOffset, AttributesSize);
        Xfam = body.Slice(BodyXfamOffset, AttributesSize);
        MrTd = body.Slice(BodyMrTdOffset, MeasurementSize);
        MrConfigId = body.Slice(BodyMrConfigIdOffset, MeasurementSize);
        MrOwner = body.Slice(BodyMrOwnerOffset, MeasurementSize);
        MrOwnerConfig = body.Slice(BodyMrOwnerConfigOffset, MeasurementSize);
        Rtmr0 = body.Slice(BodyRtmr0Offset, MeasurementSize);
        Rtmr1 = body.Slice(BodyRtmr1Offset, MeasurementSize);
        Rtmr2 = body.Slice(BodyRtmr2Offset, MeasurementSize);
        Rtmr3 = body.Slice(BodyRtmr3Offset, MeasurementSize);
        ReportData = body.Slice(BodyReportDataOffset, ReportDataSize);
        if (bodyType == BodyTypeTd15)
        {
            TeeTcbSvn2 = body.Slice(BodyTeeTcbSvn2Offset, TeeTcbSvnSize);
            MrServiceTd = body.Slice(BodyMrServiceTdOffset, MeasurementSize);
        }
    }

    /// <summary>The whole body.</summary>
    public ReadOnlyMemory<byte> Raw { get; }

    /// <summary>2 for a TDX 1.0 body (always for v4 quotes), 3 for a TDX 1.5 body.</summary>
    public ushort BodyType { get; }

    public bool IsTd15 => BodyType == BodyTypeTd15;

    public ReadOnlyMemory<byte> TeeTcbSvn { get; }

    public ReadOnlyMemory<byte> MrSeam { get; }

    public ReadOnlyMemory<byte> MrSignerSeam { get; }

    public ReadOnlyMemory<byte> SeamAttributes { get; }

    public ReadOnlyMemory<byte> TdAttributes { get; }

    public ReadOnlyMemory<byte> Xfam { get; }

    public ReadOnlyMemory<byte> MrTd { get; }

    public ReadOnlyMemory<byte> MrConfigId { get; }

    public ReadOnlyMemory<byte> MrOwner { get; }

    public ReadOnlyMemory<byte> MrOwnerConfig { get; }

    public ReadOnlyMemory<byte> Rtmr0 { get; }

    public ReadOnlyMemory<byte> Rtmr1 { get; }

    public ReadOnlyMemory<byte> Rtmr2 { get; }

    public ReadOnlyMemory<byte> Rtmr3 { get; }

    public ReadOnlyMemory<byte> ReportData { get; }

    /// <summary>TDX 1.5 only: the module SVN after TD-preserving updates; null for TDX 1.0 bodies.</summary>
    public ReadOnlyMemory<byte>? TeeTcbSvn2 { get; }

    /// <summary>TDX 1.5 only: SHA-384 over the bound service TDs' TDINFO; null for TDX 1.0 bodies.</summary>
    public ReadOnlyMemory<byte>? MrServiceTd { get; }

    /// <summary>TD_ATTRIBUTES bit 0: the TD is a debug TD.</summary>
    public bool Debug => (TdAttributes.Span[0] & 1) != 0;
}

/// <summary>The SGX REPORT body (384 bytes) of the TD Quoting Enclave, carried in certification data type 6.</summary>
public sealed class SgxReportBody
{
    internal SgxReportBody(ReadOnlyMemory<byte> raw)
    {
        var s = raw.Span;
        Raw = raw;
        CpuSvn = raw.Slice(ReportCpuSvnOffset, CpuSvnSize);
        MiscSelect = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(s[ReportMiscSelectOffset..]);
        Attributes = raw.Slice(ReportAttributesOffset, ReportAttributesSize);
        MrEnclave = raw.Slice(ReportMrEnclaveOffset, Sha256Size);
        MrSigner = raw.Slice(ReportMrSignerOffset, Sha256Size);
        IsvProdId = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(s[ReportIsvProdIdOffset..]);
        IsvSvn = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(s[ReportIsvSvnOffset..]);
        ReportData = raw.Slice(ReportReportDataOffset, ReportDataSize);
    }

    /// <summary>The exact 384 bytes the PCK key signs.</summary>
    public ReadOnlyMemory<byte> Raw { get; }

    public ReadOnlyMemory<byte> CpuSvn { get; }

    public uint MiscSelect { get; }

    /// <summary>16 bytes: flags (u64) then XFRM (u64).</summary>
    public ReadOnlyMemory<byte> Attributes { get; }

    public ReadOnlyMemory<byte> MrEnclave { get; }

    public ReadOnlyMemory<byte> MrSigner { get; }

    public ushort IsvProdId { get; }

    public ushort IsvSvn { get; }

    public ReadOnlyMemory<byte> ReportData { get; }
}
