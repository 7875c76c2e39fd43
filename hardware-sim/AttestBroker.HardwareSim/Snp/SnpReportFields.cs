using AttestBroker.HardwareSim.Pki;

namespace AttestBroker.HardwareSim.Snp;

/// <summary>
/// A TCB_VERSION's components. Its 8-byte encoding depends on the product: Milan/Genoa put the bootloader in byte 0,
/// TEE in 1, SNP in 6 and microcode in 7; Turin puts FMC in byte 0, bootloader in 1, TEE in 2, SNP in 3, microcode in 7.
/// </summary>
public sealed record SnpTcb(byte Bootloader, byte Tee, byte Snp, byte Microcode, byte Fmc = 0)
{
    public byte[] ToBytes(AmdProduct product)
    {
        var b = new byte[8];
        if (product == AmdProduct.Turin)
        {
            b[0] = Fmc;
            b[1] = Bootloader;
            b[2] = Tee;
            b[3] = Snp;
        }
        else
        {
            b[0] = Bootloader;
            b[1] = Tee;
            b[6] = Snp;
        }

        b[7] = Microcode;
        return b;
    }

    public string ToHex(AmdProduct product) => Convert.ToHexStringLower(ToBytes(product));
}

/// <summary>Which key signs the report (signer info bits 4:2).</summary>
public enum SnpSigningKey
{
    Vcek = 0,
    Vlek = 1,
}

/// <summary>Every field of an SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP ABI, table "ATTESTATION_REPORT Structure").</summary>
public sealed class SnpReportFields
{
    public uint Version { get; set; } = 3;

    public uint GuestSvn { get; set; }

    public ulong Policy { get; set; } = SnpPolicy.Default;

    public byte[] FamilyId { get; set; } = new byte[16];

    public byte[] ImageId { get; set; } = new byte[16];

    public uint Vmpl { get; set; }

    public uint SignatureAlgorithm { get; set; } = 1;

    public byte[] CurrentTcb { get; set; } = new byte[8];

    public ulong PlatformInfo { get; set; }

    /// <summary>The signer-info word at 0x48 (bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY).</summary>
    public uint SignerInfo { get; set; }

    public byte[] ReportData { get; set; } = new byte[64];

    public byte[] Measurement { get; set; } = new byte[48];

    public byte[] HostData { get; set; } = new byte[32];

    public byte[] IdKeyDigest { get; set; } = new byte[48];

    public byte[] AuthorKeyDigest { get; set; } = new byte[48];

    public byte[] ReportId { get; set; } = new byte[32];

    public byte[] ReportIdMa { get; set; } = Enumerable.Repeat((byte)0xFF, 32).ToArray();

    public byte[] ReportedTcb { get; set; } = new byte[8];

    /// <summary>v3+ only (zero in v2).</summary>
    public byte CpuidFamilyId { get; set; }

    public byte CpuidModelId { get; set; }

    public byte CpuidStepping { get; set; }

    public byte[] ChipId { get; set; } = new byte[64];

    public byte[] CommittedTcb { get; set; } = new byte[8];

    public byte CurrentBuild { get; set; }

    public byte CurrentMinor { get; set; }

    public byte CurrentMajor { get; set; }

    public byte CommittedBuild { get; set; }

    public byte CommittedMinor { get; set; }

    public byte CommittedMajor { get; set; }

    public byte[] LaunchTcb { get; set; } = new byte[8];

    /// <summary>v5 only.</summary>
    public ulong LaunchMitVector { get; set; }

    /// <summary>v5 only.</summary>
    public ulong CurrentMitVector { get; set; }
}

/// <summary>Guest policy bits (SNP ABI, POLICY).</summary>
public static class SnpPolicy
{
    public const ulong Smt = 1UL << 16;
    public const ulong ReservedMustBeOne = 1UL << 17;
    public const ulong MigrateMa = 1UL << 18;
    public const ulong Debug = 1UL << 19;
    public const ulong SingleSocket = 1UL << 20;

    /// <summary>ABI 0.31 (minor 0x1F), SMT allowed, reserved bit 17 set.</summary>
    public const ulong Default = 0x1FUL | Smt | ReservedMustBeOne;
}
