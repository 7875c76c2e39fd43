namespace AttestBroker.Evidence.Snp;

/// <summary>The guest POLICY (u64 at 0x008), with its bits decoded. Bit 17 is reserved and must be one; bits 63:26 must be zero.</summary>
public readonly record struct SnpPolicy(ulong Raw)
{
    public const int SmtBit = 16;
    public const int ReservedMustBeOneBit = 17;
    public const int MigrateMaBit = 18;
    public const int DebugBit = 19;
    public const int SingleSocketBit = 20;
    public const int CxlAllowBit = 21;
    public const int MemAes256XtsBit = 22;
    public const int RaplDisBit = 23;
    public const int CiphertextHidingBit = 24;
    public const int PageSwapDisableBit = 25;

    /// <summary>Bits 63:26, reserved, must be zero.</summary>
    public const ulong ReservedMask = ~((1UL << 26) - 1);

    private bool Bit(int n) => ((Raw >> n) & 1) != 0;

    public byte AbiMinor => (byte)Raw;

    public byte AbiMajor => (byte)(Raw >> 8);

    public bool SmtAllowed => Bit(SmtBit);

    public bool ReservedBit17 => Bit(ReservedMustBeOneBit);

    public bool MigrateMa => Bit(MigrateMaBit);

    public bool Debug => Bit(DebugBit);

    public bool SingleSocket => Bit(SingleSocketBit);

    public bool CxlAllow => Bit(CxlAllowBit);

    public bool MemAes256Xts => Bit(MemAes256XtsBit);

    public bool RaplDis => Bit(RaplDisBit);

    public bool CiphertextHiding => Bit(CiphertextHidingBit);

    /// <summary>Defined from report version 5.</summary>
    public bool PageSwapDisable => Bit(PageSwapDisableBit);
}

/// <summary>PLATFORM_INFO (u64 at 0x040), with its bits decoded.</summary>
public readonly record struct SnpPlatformInfo(ulong Raw)
{
    private bool Bit(int n) => ((Raw >> n) & 1) != 0;

    public bool SmtEnabled => Bit(0);

    public bool TsmeEnabled => Bit(1);

    public bool EccEnabled => Bit(2);

    public bool RaplDisabled => Bit(3);

    public bool CiphertextHidingEnabled => Bit(4);

    public bool AliasCheckComplete => Bit(5);

    /// <summary>Defined from report version 5.</summary>
    public bool TioEnabled => Bit(7);
}

/// <summary>Which key signed the report (SIGNING_KEY, bits 4:2 of the signer info at 0x048).</summary>
public enum SnpSigningKey
{
    /// <summary>Versioned Chip Endorsement Key, endorsed by the ASK.</summary>
    Vcek = 0,

    /// <summary>Versioned Loaded Endorsement Key, endorsed by the ASVK.</summary>
    Vlek = 1,

    /// <summary>The report is not signed.</summary>
    None = 7,
}
