using System.Buffers.Binary;
using L = AttestBroker.Evidence.Snp.SnpReportLayout;

namespace AttestBroker.Evidence.Snp;

/// <summary>
/// A parsed SEV-SNP ATTESTATION_REPORT (versions 2, 3, 4 and 5; 0x4A0 bytes). Parsing checks structure only (sizes,
/// versions, reserved-must-be-zero ranges, the signature algorithm); it does no cryptography and no I/O.
/// </summary>
/// <remarks>
/// Trailing bytes are rejected: an ATTESTATION_REPORT is a fixed-size structure (configfs outblob and the
/// SNP_GET_REPORT ioctl return exactly 0x4A0 bytes), so anything longer is not a raw report, and accepting unsigned
/// extra bytes would only widen what an attacker may append unnoticed.
/// The high bytes (48-71) of the R and S fields are not checked here: they belong to the signature, and the verifier
/// reports them as an invalid signature.
/// </remarks>
public sealed class SnpReport
{
    private readonly byte[] _raw;

    private SnpReport(byte[] raw)
    {
        _raw = raw;
        ReadOnlySpan<byte> r = raw;
        Version = BinaryPrimitives.ReadUInt32LittleEndian(r[L.Version..]);
        GuestSvn = BinaryPrimitives.ReadUInt32LittleEndian(r[L.GuestSvn..]);
        Policy = new SnpPolicy(BinaryPrimitives.ReadUInt64LittleEndian(r[L.Policy..]));
        Vmpl = BinaryPrimitives.ReadUInt32LittleEndian(r[L.Vmpl..]);
        SignatureAlgo = BinaryPrimitives.ReadUInt32LittleEndian(r[L.SignatureAlgo..]);
        CurrentTcb = SnpTcbVersion.Read(r[L.CurrentTcb..]);
        PlatformInfo = new SnpPlatformInfo(BinaryPrimitives.ReadUInt64LittleEndian(r[L.PlatformInfo..]));
        SignerInfo = BinaryPrimitives.ReadUInt32LittleEndian(r[L.SignerInfo..]);
        ReportedTcb = SnpTcbVersion.Read(r[L.ReportedTcb..]);
        if (Version >= 3)
        {
            CpuidFamilyId = r[L.CpuidFamId];
            CpuidModelId = r[L.CpuidModId];
            CpuidStepping = r[L.CpuidStep];
        }

        CommittedTcb = SnpTcbVersion.Read(r[L.CommittedTcb..]);
        CurrentBuild = r[L.CurrentBuild];
        CurrentMinor = r[L.CurrentMinor];
        CurrentMajor = r[L.CurrentMajor];
        CommittedBuild = r[L.CommittedBuild];
        CommittedMinor = r[L.CommittedMinor];
        CommittedMajor = r[L.CommittedMajor];
        LaunchTcb = SnpTcbVersion.Read(r[L.LaunchTcb..]);
        if (Version >= 5)
        {
            LaunchMitVector = BinaryPrimitives.ReadUInt64LittleEndian(r[L.LaunchMitVector..]);
            CurrentMitVector = BinaryPrimitives.ReadUInt64LittleEndian(r[L.CurrentMitVector..]);
        }
    }

    /// <summary>The report exactly as parsed (0x4A0 bytes).</summary>
    public ReadOnlyMemory<byte> Raw => _raw;

    /// <summary>The bytes the signature covers: [0, 0x2A0).</summary>
    public ReadOnlyMemory<byte> SignedBytes => _raw.AsMemory(0, L.SignedLength);

    public uint Version { get; }

    public uint GuestSvn { get; }

    public SnpPolicy Policy { get; }

    public ReadOnlyMemory<byte> FamilyId => Slice(L.FamilyId, L.FamilyIdSize);

    public ReadOnlyMemory<byte> ImageId => Slice(L.ImageId, L.ImageIdSize);

    public uint Vmpl { get; }

    /// <summary>Always 1 (ECDSA P-384 with SHA-384) in a parsed report.</summary>
    public uint SignatureAlgo { get; }

    public SnpTcbVersion CurrentTcb { get; }

    public SnpPlatformInfo PlatformInfo { get; }

    /// <summary>The raw signer-info word at 0x048.</summary>
    public uint SignerInfo { get; }

    /// <summary>AUTHOR_KEY_EN (bit 0): AUTHOR_KEY_DIGEST is present.</summary>
    public bool AuthorKeyEnabled => (SignerInfo & 1) != 0;

    /// <summary>MASK_CHIP_KEY (bit 1): CHIP_ID is masked (zero) and the report may be unsigned.</summary>
    public bool MaskChipKey => (SignerInfo & 2) != 0;

    /// <summary>SIGNING_KEY (bits 4:2).</summary>
    public SnpSigningKey SigningKey => (SnpSigningKey)((SignerInfo >> 2) & 7);

    public ReadOnlyMemory<byte> ReportData => Slice(L.ReportData, L.ReportDataSize);

    public ReadOnlyMemory<byte> Measurement => Slice(L.Measurement, L.MeasurementSize);

    public ReadOnlyMemory<byte> HostData => Slice(L.HostData, L.HostDataSize);

    public ReadOnlyMemory<byte> IdKeyDigest => Slice(L.IdKeyDigest, L.IdKeyDigestSize);

    public ReadOnlyMemory<byte> AuthorKeyDigest => Slice(L.AuthorKeyDigest, L.AuthorKeyDigestSize);

    public ReadOnlyMemory<byte> ReportId => Slice(L.ReportId, L.ReportIdSize);

    public ReadOnlyMemory<byte> ReportIdMa => Slice(L.ReportIdMa, L.ReportIdMaSize);

    /// <summary>The TCB the VCEK was derived from: the one to fetch the VCEK for and to compare with its SPL extensions.</summary>
    public SnpTcbVersion ReportedTcb { get; }

    /// <summary>CPUID extended family + family (v3+), else null.</summary>
    public byte? CpuidFamilyId { get; }

    /// <summary>CPUID extended model + model (v3+), else null.</summary>
    public byte? CpuidModelId { get; }

    /// <summary>CPUID stepping (v3+), else null.</summary>
    public byte? CpuidStepping { get; }

    /// <summary>The product from CPUID (v3+); <see cref="SnpProduct.Unknown"/> for v2 or an unlisted family/model.</summary>
    public SnpProduct ProductFromCpuid => CpuidFamilyId is { } f && CpuidModelId is { } m ? SnpProducts.FromCpuid(f, m) : SnpProduct.Unknown;

    public ReadOnlyMemory<byte> ChipId => Slice(L.ChipId, L.ChipIdSize);

    /// <summary>True when CHIP_ID is all zero (the chip id was masked).</summary>
    public bool ChipIdIsZero => !ChipId.Span.ContainsAnyExcept((byte)0);

    public SnpTcbVersion CommittedTcb { get; }

    public byte CurrentBuild { get; }

    public byte CurrentMinor { get; }

    public byte CurrentMajor { get; }

    public byte CommittedBuild { get; }

    public byte CommittedMinor { get; }

    public byte CommittedMajor { get; }

    public SnpTcbVersion LaunchTcb { get; }

    /// <summary>LAUNCH_MIT_VECTOR (v5), else null.</summary>
    public ulong? LaunchMitVector { get; }

    /// <summary>CURRENT_MIT_VECTOR (v5), else null.</summary>
    public ulong? CurrentMitVector { get; }

    /// <summary>The 72-byte little-endian R field of the signature (only the low 48 bytes are significant).</summary>
    public ReadOnlyMemory<byte> SignatureR => Slice(L.SignatureR, L.SignatureScalarFieldSize);

    /// <summary>The 72-byte little-endian S field of the signature.</summary>
    public ReadOnlyMemory<byte> SignatureS => Slice(L.SignatureS, L.SignatureScalarFieldSize);

    /// <summary>True when bytes 48-71 of both R and S are zero, as P-384 scalars require.</summary>
    public bool SignatureHighBytesZero =>
        !SignatureR.Span[L.SignatureScalarSize..].ContainsAnyExcept((byte)0)
        && !SignatureS.Span[L.SignatureScalarSize..].ContainsAnyExcept((byte)0);

    private ReadOnlyMemory<byte> Slice(int offset, int size) => _raw.AsMemory(offset, size);

    /// <summary>Parses a report; throws <see cref="EvidenceFormatException"/> naming the field and offset when it is malformed.</summary>
    public static SnpReport Parse(ReadOnlySpan<byte> report)
    {
        if (report.Length < L.ReportSize)
        {
            var (name, offset) = FirstIncompleteField(report.Length);
            throw new EvidenceFormatException(name, offset, $"report truncated: {report.Length} bytes, an ATTESTATION_REPORT is {L.ReportSize} bytes");
        }

        if (report.Length > L.ReportSize)
        {
            throw new EvidenceFormatException("ATTESTATION_REPORT", L.ReportSize, $"{report.Length - L.ReportSize} bytes after the end of the {L.ReportSize}-byte report");
        }

        var version = BinaryPrimitives.ReadUInt32LittleEndian(report[L.Version..]);
        if (version is < 2 or > 5)
        {
            throw new EvidenceFormatException("VERSION", L.Version, $"unsupported report version {version} (supported: 2, 3, 4, 5)");
        }

        var algo = BinaryPrimitives.ReadUInt32LittleEndian(report[L.SignatureAlgo..]);
        if (algo != L.SignatureAlgoEcdsaP384Sha384)
        {
            throw new EvidenceFormatException("SIGNATURE_ALGO", L.SignatureAlgo, $"unsupported signature algorithm {algo} (only 1, ECDSA P-384 with SHA-384, is defined)");
        }

        var policy = BinaryPrimitives.ReadUInt64LittleEndian(report[L.Policy..]);
        if (((policy >> SnpPolicy.ReservedMustBeOneBit) & 1) == 0)
        {
            throw new EvidenceFormatException("POLICY", L.Policy, "reserved policy bit 17 must be 1");
        }

        if ((policy & SnpPolicy.ReservedMask) != 0)
        {
            throw new EvidenceFormatException("POLICY", L.Policy, $"reserved policy bits 63:26 must be zero (policy 0x{policy:x})");
        }

        var signer = BinaryPrimitives.ReadUInt32LittleEndian(report[L.SignerInfo..]);
        if ((signer & ~0x1Fu) != 0)
        {
            throw new EvidenceFormatException("SIGNER_INFO", L.SignerInfo, $"reserved bits 31:5 must be zero (0x{signer:x})");
        }

        var signingKey = (signer >> 2) & 7;
        if (signingKey is not (0 or 1 or 7))
        {
            throw new EvidenceFormatException("SIGNING_KEY", L.SignerInfo, $"reserved signing key value {signingKey} (0 = VCEK, 1 = VLEK, 7 = none)");
        }

        RequireZero(report, "RESERVED", L.Reserved04C, L.Reserved04CSize);
        if (version >= 3)
        {
            RequireZero(report, "RESERVED", L.Reserved18B, L.ChipId - L.Reserved18B);
        }
        else
        {
            RequireZero(report, "RESERVED", L.Reserved188, L.ChipId - L.Reserved188);
        }

        RequireZero(report, "RESERVED", L.Reserved1EB, 1);
        RequireZero(report, "RESERVED", L.Reserved1EF, 1);
        if (version >= 5)
        {
            RequireZero(report, "RESERVED", L.Reserved208, L.SignedLength - L.Reserved208);
        }
        else
        {
            RequireZero(report, "RESERVED", L.Reserved1F8, L.SignedLength - L.Reserved1F8);
        }

        RequireZero(report, "SIGNATURE", L.SignatureReserved, L.ReportSize - L.SignatureReserved);
        return new SnpReport(report.ToArray());
    }

    private static void RequireZero(ReadOnlySpan<byte> report, string field, int offset, int size)
    {
        var i = report.Slice(offset, size).IndexOfAnyExcept((byte)0);
        if (i >= 0)
        {
            throw new EvidenceFormatException(field, offset + i, $"reserved byte at 0x{offset + i:x} must be zero");
        }
    }

    /// <summary>The fields in order, to name the one a truncated input cuts.</summary>
    private static readonly (string Name, int Offset)[] Fields =
    [
        ("VERSION", L.Version), ("GUEST_SVN", L.GuestSvn), ("POLICY", L.Policy), ("FAMILY_ID", L.FamilyId),
        ("IMAGE_ID", L.ImageId), ("VMPL", L.Vmpl), ("SIGNATURE_ALGO", L.SignatureAlgo), ("CURRENT_TCB", L.CurrentTcb),
        ("PLATFORM_INFO", L.PlatformInfo), ("SIGNER_INFO", L.SignerInfo), ("RESERVED", L.Reserved04C),
        ("REPORT_DATA", L.ReportData), ("MEASUREMENT", L.Measurement), ("HOST_DATA", L.HostData),
        ("ID_KEY_DIGEST", L.IdKeyDigest), ("AUTHOR_KEY_DIGEST", L.AuthorKeyDigest), ("REPORT_ID", L.ReportId),
        ("REPORT_ID_MA", L.ReportIdMa), ("REPORTED_TCB", L.ReportedTcb), ("CPUID_FAM_ID", L.CpuidFamId),
        ("CHIP_ID", L.ChipId), ("COMMITTED_TCB", L.CommittedTcb), ("CURRENT_VERSION", L.CurrentBuild),
        ("COMMITTED_VERSION", L.CommittedBuild), ("LAUNCH_TCB", L.LaunchTcb), ("LAUNCH_MIT_VECTOR", L.LaunchMitVector),
        ("CURRENT_MIT_VECTOR", L.CurrentMitVector), ("RESERVED", L.Reserved208), ("SIGNATURE_R", L.SignatureR),
        ("SIGNATURE_S", L.SignatureS), ("SIGNATURE", L.SignatureReserved),
    ];

    private static (string Name, int Offset) FirstIncompleteField(int length)
    {
        // The last field starting at or before the cut is the first one that is not complete.
        for (var i = Fields.Length - 1; i >= 0; i--)
        {
            if (Fields[i].Offset <= length)
            {
                return Fields[i];
            }
        }

        return Fields[0];
    }
}
