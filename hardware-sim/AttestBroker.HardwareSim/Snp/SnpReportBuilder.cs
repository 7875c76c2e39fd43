using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim.Snp;

/// <summary>What to put into one SEV-SNP report.</summary>
public sealed class SnpEvidenceRequest
{
    public SnpPlatform Platform { get; set; } = new();

    public SnpGuest Guest { get; set; } = new();

    /// <summary>Report version: 2, 3 (or 4, same layout) or 5.</summary>
    public uint Version { get; set; } = 3;

    public SnpSigningKey SigningKey { get; set; } = SnpSigningKey.Vcek;

    /// <summary>Replaces the guest's report data when set (up to 64 bytes, zero-padded).</summary>
    public byte[]? ReportData { get; set; }

    public ISet<SimFault> Faults { get; } = new HashSet<SimFault>();
}

/// <summary>Builds signed SEV-SNP reports, signed by the platform's VCEK or VLEK from the simulated PKI.</summary>
public static class SnpReportBuilder
{
    /// <summary>The report's fields exactly as they will be written (faults applied).</summary>
    public static SnpReportFields Fields(SnpEvidenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var p = request.Platform;
        var g = request.Guest;
        if (p.Product == AmdProduct.Turin && p.ChipId.AsSpan(8).ContainsAnyExcept((byte)0))
        {
            throw new SimulatorException("a Turin CHIP_ID uses only its first 8 bytes; bytes 8..63 must be zero");
        }

        var (family, model, stepping) = p.Product.Cpuid();
        if (request.Faults.Contains(SimFault.ProductMismatch))
        {
            // Claim another generation in CPUID than the chain that signs the report.
            (family, model, stepping) = (p.Product == AmdProduct.Genoa ? AmdProduct.Milan : AmdProduct.Genoa).Cpuid();
        }

        var f = new SnpReportFields
        {
            Version = request.Version,
            GuestSvn = g.GuestSvn,
            Policy = g.Policy,
            FamilyId = g.FamilyId,
            ImageId = g.ImageId,
            Vmpl = g.Vmpl,
            CurrentTcb = (p.CurrentTcb ?? p.ReportedTcb).ToBytes(p.Product),
            PlatformInfo = p.PlatformInfo,
            SignerInfo = (g.AuthorKeyEnabled ? 1u : 0u) | ((uint)request.SigningKey << 2),
            ReportData = request.ReportData is { } rd ? TdxQuoteBuilder.PadReportData(rd) : g.ReportData,
            Measurement = g.Measurement,
            HostData = g.HostData,
            IdKeyDigest = g.IdKeyDigest,
            AuthorKeyDigest = g.AuthorKeyDigest,
            ReportId = g.ReportId,
            ReportIdMa = g.ReportIdMa,
            ReportedTcb = p.ReportedTcb.ToBytes(p.Product),
            CpuidFamilyId = family,
            CpuidModelId = model,
            CpuidStepping = stepping,
            ChipId = p.ChipId,
            CommittedTcb = (p.CommittedTcb ?? p.ReportedTcb).ToBytes(p.Product),
            CurrentMajor = p.FirmwareMajor,
            CurrentMinor = p.FirmwareMinor,
            CurrentBuild = p.FirmwareBuild,
            CommittedMajor = p.FirmwareMajor,
            CommittedMinor = p.FirmwareMinor,
            CommittedBuild = p.FirmwareBuild,
            LaunchTcb = (p.LaunchTcb ?? p.ReportedTcb).ToBytes(p.Product),
        };
        if (request.Faults.Contains(SimFault.Debug))
        {
            f.Policy |= SnpPolicy.Debug;
        }

        if (request.Faults.Contains(SimFault.WrongMeasurement))
        {
            f.Measurement = TdxQuoteBuilder.Flip(f.Measurement);
        }

        if (request.Faults.Contains(SimFault.WrongReportData))
        {
            f.ReportData = TdxQuoteBuilder.Flip(f.ReportData);
        }

        if (request.Faults.Contains(SimFault.Vmpl1))
        {
            f.Vmpl = 1;
        }

        return f;
    }

    public static byte[] Build(SimPki pki, SnpEvidenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(pki);
        ArgumentNullException.ThrowIfNull(request);
        foreach (var fault in request.Faults)
        {
            if (!fault.AppliesTo(TeeKind.SevSnp))
            {
                throw new SimulatorException($"fault '{fault.Name()}' does not apply to SEV-SNP");
            }
        }

        if (request.Version is < 2 or > 5)
        {
            throw new SimulatorException($"SNP report version {request.Version} is not 2..5");
        }

        var report = SnpReportLayout.WriteUnsigned(Fields(request));
        var signer = request.SigningKey == SnpSigningKey.Vlek ? pki.IssueVlek(request.Platform) : pki.IssueVcek(request.Platform);
        var rs = signer.Key.SignEcdsaP1363(report.AsSpan(0, SnpReportLayout.SignedLength));
        SnpReportLayout.WriteSignature(report, rs);
        if (request.Faults.Contains(SimFault.BadReportSignature))
        {
            report[SnpReportLayout.SignedLength + 5] ^= 0x01;
        }

        if (request.Faults.Contains(SimFault.Truncated))
        {
            report = report[..(SnpReportLayout.ReportSize - 100)];
        }

        return report;
    }
}
