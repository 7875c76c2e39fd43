using System.Buffers.Binary;
using AttestBroker.Evidence.Snp;
using AttestBroker.Testing;

namespace AttestBroker.Evidence.Tests.Snp;

/// <summary>SG-1 and structurally valid variants of it (v3, v5) for parser tests; signatures are not valid on variants.</summary>
internal static class SnpTestReports
{
    public const string Sg1 = "snp/go-sev-guest/attestation.bin";

    public static byte[] ReadSg1() => Vectors.Read(Sg1);

    /// <summary>SG-1 turned into a version-3 (or 4) report with the given CPUID family/model/stepping.</summary>
    public static byte[] AsV3(byte[] v2, byte family, byte model, byte stepping, uint version = 3)
    {
        var r = (byte[])v2.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(r.AsSpan(SnpReportLayout.Version), version);
        r[SnpReportLayout.CpuidFamId] = family;
        r[SnpReportLayout.CpuidModId] = model;
        r[SnpReportLayout.CpuidStep] = stepping;
        return r;
    }

    /// <summary>SG-1 turned into a version-5 Genoa report with mitigation vectors.</summary>
    public static byte[] AsV5(byte[] v2, ulong launchMit, ulong currentMit)
    {
        var r = AsV3(v2, 0x19, 0x11, 0x01, 5);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(SnpReportLayout.LaunchMitVector), launchMit);
        BinaryPrimitives.WriteUInt64LittleEndian(r.AsSpan(SnpReportLayout.CurrentMitVector), currentMit);
        return r;
    }
}
