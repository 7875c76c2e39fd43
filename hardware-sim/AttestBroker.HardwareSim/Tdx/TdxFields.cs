namespace AttestBroker.HardwareSim.Tdx;

/// <summary>The 48-byte quote header (Intel "TDX DCAP Quoting Library API", A.3).</summary>
public sealed class TdxQuoteHeader
{
    /// <summary>Intel's TD Quoting Enclave vendor ID.</summary>
    public static readonly byte[] IntelQeVendorId = Convert.FromHexString("939A7233F79C4CA9940A0DB3957F0607");

    public ushort Version { get; set; } = 4;

    /// <summary>2 = ECDSA-256-with-P-256.</summary>
    public ushort AttestationKeyType { get; set; } = 2;

    /// <summary>0x81 = TDX.</summary>
    public uint TeeType { get; set; } = 0x81;

    /// <summary>Bytes 0x08..0x0C (reserved; some implementations call them QE SVN / PCE SVN).</summary>
    public byte[] Reserved { get; set; } = new byte[4];

    public byte[] QeVendorId { get; set; } = (byte[])IntelQeVendorId.Clone();

    public byte[] UserData { get; set; } = new byte[20];
}

/// <summary>The TD quote body's kinds: TDX 1.0 (584 bytes; quote v4 or v5 type 2) and TDX 1.5 (648 bytes; v5 type 3).</summary>
public enum TdBodyKind
{
    Td10 = 2,
    Td15 = 3,
}

/// <summary>Every field of a TD quote body (TD report body). Byte arrays are copied into the quote as they are.</summary>
public sealed class TdQuoteBody
{
    public byte[] TeeTcbSvn { get; set; } = new byte[16];

    public byte[] MrSeam { get; set; } = new byte[48];

    public byte[] MrSignerSeam { get; set; } = new byte[48];

    public ulong SeamAttributes { get; set; }

    public ulong TdAttributes { get; set; }

    public ulong Xfam { get; set; }

    public byte[] MrTd { get; set; } = new byte[48];

    public byte[] MrConfigId { get; set; } = new byte[48];

    public byte[] MrOwner { get; set; } = new byte[48];

    public byte[] MrOwnerConfig { get; set; } = new byte[48];

    /// <summary>RTMR0..RTMR3, 48 bytes each.</summary>
    public byte[][] Rtmrs { get; set; } = [new byte[48], new byte[48], new byte[48], new byte[48]];

    public byte[] ReportData { get; set; } = new byte[64];

    /// <summary>TDX 1.5 only.</summary>
    public byte[] TeeTcbSvn2 { get; set; } = new byte[16];

    /// <summary>TDX 1.5 only.</summary>
    public byte[] MrServiceTd { get; set; } = new byte[48];

    public TdQuoteBody Clone()
    {
        var c = (TdQuoteBody)MemberwiseClone();
        c.TeeTcbSvn = (byte[])TeeTcbSvn.Clone();
        c.MrSeam = (byte[])MrSeam.Clone();
        c.MrSignerSeam = (byte[])MrSignerSeam.Clone();
        c.MrTd = (byte[])MrTd.Clone();
        c.MrConfigId = (byte[])MrConfigId.Clone();
        c.MrOwner = (byte[])MrOwner.Clone();
        c.MrOwnerConfig = (byte[])MrOwnerConfig.Clone();
        c.Rtmrs = [.. Rtmrs.Select(r => (byte[])r.Clone())];
        c.ReportData = (byte[])ReportData.Clone();
        c.TeeTcbSvn2 = (byte[])TeeTcbSvn2.Clone();
        c.MrServiceTd = (byte[])MrServiceTd.Clone();
        return c;
    }
}

/// <summary>The 384-byte SGX REPORT body of the quoting enclave (the QE report).</summary>
public sealed class SgxReportBody
{
    public byte[] CpuSvn { get; set; } = new byte[16];

    public uint MiscSelect { get; set; }

    /// <summary>Flags (u64) ‖ XFRM (u64), 16 bytes.</summary>
    public byte[] Attributes { get; set; } = new byte[16];

    public byte[] MrEnclave { get; set; } = new byte[32];

    public byte[] MrSigner { get; set; } = new byte[32];

    public ushort IsvProdId { get; set; }

    public ushort IsvSvn { get; set; }

    public byte[] ReportData { get; set; } = new byte[64];
}

/// <summary>The signature-data part of a quote, with every piece given (signatures already made).</summary>
public sealed class TdxSignatureData
{
    /// <summary>ECDSA-P256 r ‖ s over the signed region.</summary>
    public byte[] QuoteSignature { get; set; } = new byte[64];

    /// <summary>Attestation public key X ‖ Y.</summary>
    public byte[] AttestationKey { get; set; } = new byte[64];

    /// <summary>Outer certification data type (6 = QE report certification data).</summary>
    public ushort CertificationDataType { get; set; } = 6;

    public byte[] QeReport { get; set; } = new byte[384];

    /// <summary>ECDSA-P256 r ‖ s by the PCK over the QE report.</summary>
    public byte[] QeReportSignature { get; set; } = new byte[64];

    public byte[] QeAuthData { get; set; } = new byte[32];

    /// <summary>Inner certification data type (5 = PCK certificate chain).</summary>
    public ushort InnerCertificationDataType { get; set; } = 5;

    /// <summary>The PCK chain, PEM (leaf, intermediate, root), possibly NUL-terminated.</summary>
    public byte[] CertificationData { get; set; } = [];
}
