namespace AttestBroker.Evidence.Snp;

/// <summary>
/// Byte offsets and sizes of the SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP firmware ABI, "ATTESTATION_REPORT
/// Structure"). Every integer is little-endian, including the ECDSA signature scalars.
/// </summary>
public static class SnpReportLayout
{
    /// <summary>The size of a report, every version: 0x4A0 bytes.</summary>
    public const int ReportSize = 0x4A0;

    /// <summary>The signed bytes are [0, SignedLength).</summary>
    public const int SignedLength = 0x2A0;

    public const int Version = 0x000;
    public const int GuestSvn = 0x004;
    public const int Policy = 0x008;
    public const int FamilyId = 0x010;
    public const int FamilyIdSize = 16;
    public const int ImageId = 0x020;
    public const int ImageIdSize = 16;
    public const int Vmpl = 0x030;
    public const int SignatureAlgo = 0x034;
    public const int CurrentTcb = 0x038;
    public const int PlatformInfo = 0x040;
    public const int SignerInfo = 0x048;
    public const int Reserved04C = 0x04C;
    public const int Reserved04CSize = 4;
    public const int ReportData = 0x050;
    public const int ReportDataSize = 64;
    public const int Measurement = 0x090;
    public const int MeasurementSize = 48;
    public const int HostData = 0x0C0;
    public const int HostDataSize = 32;
    public const int IdKeyDigest = 0x0E0;
    public const int IdKeyDigestSize = 48;
    public const int AuthorKeyDigest = 0x110;
    public const int AuthorKeyDigestSize = 48;
    public const int ReportId = 0x140;
    public const int ReportIdSize = 32;
    public const int ReportIdMa = 0x160;
    public const int ReportIdMaSize = 32;
    public const int ReportedTcb = 0x180;
    public const int CpuidFamId = 0x188;
    public const int CpuidModId = 0x189;
    public const int CpuidStep = 0x18A;

    /// <summary>Reserved after the CPUID bytes (v3+): [0x18B, 0x1A0).</summary>
    public const int Reserved18B = 0x18B;

    /// <summary>Reserved in v2, where there are no CPUID bytes: [0x188, 0x1A0).</summary>
    public const int Reserved188 = 0x188;
    public const int ChipId = 0x1A0;
    public const int ChipIdSize = 64;
    public const int CommittedTcb = 0x1E0;
    public const int CurrentBuild = 0x1E8;
    public const int CurrentMinor = 0x1E9;
    public const int CurrentMajor = 0x1EA;
    public const int Reserved1EB = 0x1EB;
    public const int CommittedBuild = 0x1EC;
    public const int CommittedMinor = 0x1ED;
    public const int CommittedMajor = 0x1EE;
    public const int Reserved1EF = 0x1EF;
    public const int LaunchTcb = 0x1F0;

    /// <summary>v5 only; reserved (zero) before.</summary>
    public const int LaunchMitVector = 0x1F8;

    /// <summary>v5 only; reserved (zero) before.</summary>
    public const int CurrentMitVector = 0x200;

    /// <summary>Reserved tail of the signed area in v5: [0x208, 0x2A0).</summary>
    public const int Reserved208 = 0x208;

    /// <summary>Reserved tail of the signed area in v2-v4: [0x1F8, 0x2A0).</summary>
    public const int Reserved1F8 = 0x1F8;

    public const int Signature = 0x2A0;
    public const int SignatureR = 0x2A0;
    public const int SignatureS = 0x2E8;

    /// <summary>Each scalar field is 72 bytes, little-endian, zero-extended.</summary>
    public const int SignatureScalarFieldSize = 72;

    /// <summary>Only the low 48 bytes of a scalar field are significant for P-384.</summary>
    public const int SignatureScalarSize = 48;

    /// <summary>Reserved remainder of the signature: [0x330, 0x4A0).</summary>
    public const int SignatureReserved = 0x330;

    /// <summary>The only defined SIGNATURE_ALGO: ECDSA P-384 with SHA-384.</summary>
    public const uint SignatureAlgoEcdsaP384Sha384 = 1;
}
