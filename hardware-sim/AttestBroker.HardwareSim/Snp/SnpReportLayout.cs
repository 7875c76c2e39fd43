using System.Buffers.Binary;

namespace AttestBroker.HardwareSim.Snp;

/// <summary>
/// Writes the 1184-byte SEV-SNP ATTESTATION_REPORT. The simulator's own writer (shares nothing with the verifier's
/// parser). Integers are little-endian; the P-384 signature's r and s are little-endian, zero-padded to 72 bytes.
/// </summary>
public static class SnpReportLayout
{
    public const int ReportSize = 0x4A0;
    public const int SignedLength = 0x2A0;

    private const int OffVersion = 0x000;
    private const int OffGuestSvn = 0x004;
    private const int OffPolicy = 0x008;
    private const int OffFamilyId = 0x010;
    private const int OffImageId = 0x020;
    private const int OffVmpl = 0x030;
    private const int OffSignatureAlgo = 0x034;
    private const int OffCurrentTcb = 0x038;
    private const int OffPlatformInfo = 0x040;
    private const int OffSignerInfo = 0x048;
    private const int OffReportData = 0x050;
    private const int OffMeasurement = 0x090;
    private const int OffHostData = 0x0C0;
    private const int OffIdKeyDigest = 0x0E0;
    private const int OffAuthorKeyDigest = 0x110;
    private const int OffReportId = 0x140;
    private const int OffReportIdMa = 0x160;
    private const int OffReportedTcb = 0x180;
    private const int OffCpuidFamId = 0x188;
    private const int OffCpuidModId = 0x189;
    private const int OffCpuidStep = 0x18A;
    private const int OffChipId = 0x1A0;
    private const int OffCommittedTcb = 0x1E0;
    private const int OffCurrentBuild = 0x1E8;
    private const int OffCurrentMinor = 0x1E9;
    private const int OffCurrentMajor = 0x1EA;
    private const int OffCommittedBuild = 0x1EC;
    private const int OffCommittedMinor = 0x1ED;
    private const int OffCommittedMajor = 0x1EE;
    private const int OffLaunchTcb = 0x1F0;
    private const int OffLaunchMitVector = 0x1F8;
    private const int OffCurrentMitVector = 0x200;
    private const int OffSignatureR = 0x2A0;
    private const int OffSignatureS = 0x2E8;
    private const int SignatureComponentSize = 72;
    private const int P384ScalarSize = 48;

    /// <summary>The report with its signature area zero.</summary>
    public static byte[] WriteUnsigned(SnpReportFields r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var b = new byte[ReportSize];
        var s = b.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s[OffVersion..], r.Version);
        BinaryPrimitives.WriteUInt32LittleEndian(s[OffGuestSvn..], r.GuestSvn);
        BinaryPrimitives.WriteUInt64LittleEndian(s[OffPolicy..], r.Policy);
        Put(s, OffFamilyId, r.FamilyId, 16, "family_id");
        Put(s, OffImageId, r.ImageId, 16, "image_id");
        BinaryPrimitives.WriteUInt32LittleEndian(s[OffVmpl..], r.Vmpl);
        BinaryPrimitives.WriteUInt32LittleEndian(s[OffSignatureAlgo..], r.SignatureAlgorithm);
        Put(s, OffCurrentTcb, r.CurrentTcb, 8, "current_tcb");
        BinaryPrimitives.WriteUInt64LittleEndian(s[OffPlatformInfo..], r.PlatformInfo);
        BinaryPrimitives.WriteUInt32LittleEndian(s[OffSignerInfo..], r.SignerInfo);
        Put(s, OffReportData, r.ReportData, 64, "report_data");
        Put(s, OffMeasurement, r.Measurement, 48, "measurement");
        Put(s, OffHostData, r.HostData, 32, "host_data");
        Put(s, OffIdKeyDigest, r.IdKeyDigest, 48, "id_key_digest");
        Put(s, OffAuthorKeyDigest, r.AuthorKeyDigest, 48, "author_key_digest");
        Put(s, OffReportId, r.ReportId, 32, "report_id");
        Put(s, OffReportIdMa, r.ReportIdMa, 32, "report_id_ma");
        Put(s, OffReportedTcb, r.ReportedTcb, 8, "reported_tcb");
        if (r.Version >= 3)
        {
            s[OffCpuidFamId] = r.CpuidFamilyId;
            s[OffCpuidModId] = r.CpuidModelId;
            s[OffCpuidStep] = r.CpuidStepping;
        }

        Put(s, OffChipId, r.ChipId, 64, "chip_id");
        Put(s, OffCommittedTcb, r.CommittedTcb, 8, "committed_tcb");
        s[OffCurrentBuild] = r.CurrentBuild;
        s[OffCurrentMinor] = r.CurrentMinor;
        s[OffCurrentMajor] = r.CurrentMajor;
        s[OffCommittedBuild] = r.CommittedBuild;
        s[OffCommittedMinor] = r.CommittedMinor;
        s[OffCommittedMajor] = r.CommittedMajor;
        Put(s, OffLaunchTcb, r.LaunchTcb, 8, "launch_tcb");
        if (r.Version >= 5)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(s[OffLaunchMitVector..], r.LaunchMitVector);
            BinaryPrimitives.WriteUInt64LittleEndian(s[OffCurrentMitVector..], r.CurrentMitVector);
        }

        return b;
    }

    /// <summary>Places a P-384 signature given as big-endian r ‖ s (96 bytes) into the report's signature area.</summary>
    public static void WriteSignature(Span<byte> report, ReadOnlySpan<byte> rsBigEndian)
    {
        if (report.Length != ReportSize)
        {
            throw new ArgumentException($"a report is {ReportSize} bytes", nameof(report));
        }

        if (rsBigEndian.Length != 2 * P384ScalarSize)
        {
            throw new ArgumentException("a P-384 signature is 96 bytes (r ‖ s)", nameof(rsBigEndian));
        }

        report[OffSignatureR..].Slice(0, SignatureComponentSize).Clear();
        report[OffSignatureS..].Slice(0, SignatureComponentSize).Clear();
        for (var i = 0; i < P384ScalarSize; i++)
        {
            report[OffSignatureR + i] = rsBigEndian[P384ScalarSize - 1 - i];
            report[OffSignatureS + i] = rsBigEndian[(2 * P384ScalarSize) - 1 - i];
        }
    }

    private static void Put(Span<byte> dest, int offset, byte[] value, int size, string field)
    {
        if (value is null || value.Length != size)
        {
            throw new SimulatorException($"{field} must be {size} bytes, got {value?.Length ?? 0}");
        }

        value.CopyTo(dest[offset..]);
    }
}
