using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Collateral;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim;

/// <summary>Options that override a profile for one piece of evidence (what <c>attest-sim quote</c> takes on its command line).</summary>
public sealed class EvidenceOptions
{
    /// <summary>REPORTDATA / REPORT_DATA (up to 64 bytes, zero-padded). Null keeps the profile's.</summary>
    public byte[]? ReportData { get; set; }

    public AmdProduct? Product { get; set; }

    /// <summary>TDX quote version 4 or 5.</summary>
    public ushort? QuoteVersion { get; set; }

    /// <summary>TD body for v5 quotes (TDX 1.0 or 1.5).</summary>
    public TdBodyKind? TdBodyKind { get; set; }

    public SnpSigningKey? SigningKey { get; set; }

    /// <summary>SNP report version (2, 3 or 5).</summary>
    public uint? SnpReportVersion { get; set; }

    public ISet<SimFault> Faults { get; } = new HashSet<SimFault>();
}

/// <summary>One entry point for evidence and its collateral: profile + options in, bytes out.</summary>
public static class SimEvidence
{
    public static TdxEvidenceRequest TdxRequest(SimProfile profile, EvidenceOptions options)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(options);
        var version = options.QuoteVersion ?? profile.QuoteVersion;
        var kind = options.TdBodyKind ?? (options.QuoteVersion is 5 && profile.QuoteVersion == 4 ? TdBodyKind.Td15 : profile.TdBodyKind);
        var request = new TdxEvidenceRequest
        {
            Platform = profile.TdxPlatform.Clone(),
            Td = profile.Td.Clone(),
            QuoteVersion = version,
            BodyKind = version == 4 ? TdBodyKind.Td10 : kind,
            ReportData = options.ReportData,
        };
        foreach (var f in options.Faults.Where(f => f.AppliesTo(TeeKind.Tdx)))
        {
            request.Faults.Add(f);
        }

        return request;
    }

    public static SnpEvidenceRequest SnpRequest(SimProfile profile, EvidenceOptions options)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(options);
        var platform = profile.SnpPlatform.Clone();
        if (options.Product is { } product && product != platform.Product)
        {
            platform.Product = product;
            platform.ChipId = SnpPlatform.DefaultChipId(product);
        }

        var request = new SnpEvidenceRequest
        {
            Platform = platform,
            Guest = profile.SnpGuest.Clone(),
            Version = options.SnpReportVersion ?? profile.SnpReportVersion,
            SigningKey = options.SigningKey ?? profile.SnpSigningKey,
            ReportData = options.ReportData,
        };
        foreach (var f in options.Faults.Where(f => f.AppliesTo(TeeKind.SevSnp)))
        {
            request.Faults.Add(f);
        }

        return request;
    }

    /// <summary>Evidence for the TEE; faults that do not apply to it are an error.</summary>
    public static byte[] Create(SimPki pki, SimProfile profile, TeeKind tee, EvidenceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var f in options.Faults)
        {
            if (!f.AppliesTo(tee))
            {
                throw new SimulatorException($"fault '{f.Name()}' does not apply to {tee.ToWireName()}");
            }
        }

        return tee == TeeKind.Tdx
            ? TdxQuoteBuilder.Build(pki, TdxRequest(profile, options))
            : SnpReportBuilder.Build(pki, SnpRequest(profile, options));
    }

    /// <summary>Collateral for exactly the platform of one piece of evidence (what <c>quote --collateral-out</c> writes), collateral faults applied.</summary>
    public static CollateralBundle CollateralForEvidence(SimPki pki, SimProfile profile, TeeKind tee, EvidenceOptions options, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(pki);
        ArgumentNullException.ThrowIfNull(options);
        var request = new CollateralRequest { Now = now };
        if (tee == TeeKind.Tdx)
        {
            request.TdxPlatforms.Add(TdxRequest(profile, options).Platform);
        }
        else
        {
            request.SnpPlatforms.Add(SnpRequest(profile, options).Platform);
        }

        foreach (var f in options.Faults.Where(f => FaultCatalog.All.Any(e => e.Fault == f && e.Target == FaultTarget.Collateral)))
        {
            request.Faults.Add(f);
        }

        return CollateralBuilder.Build(pki, request);
    }

    /// <summary>Collateral covering the profile's platform (and the defaults), with the options' collateral faults applied.</summary>
    public static CollateralBundle Collateral(SimPki pki, IEnumerable<SimProfile> profiles, EvidenceOptions options, DateTimeOffset now, TimeSpan? validity = null)
    {
        ArgumentNullException.ThrowIfNull(profiles);
        ArgumentNullException.ThrowIfNull(options);
        var request = CollateralRequest.ForDefaults(now);
        if (validity is { } v)
        {
            request.Validity = v > TimeSpan.Zero ? v : throw new SimulatorException("collateral validity must be positive");
        }

        foreach (var profile in profiles)
        {
            request.TdxPlatforms.Insert(0, TdxRequest(profile, options).Platform);
            request.SnpPlatforms.Add(SnpRequest(profile, options).Platform);
        }

        foreach (var f in options.Faults.Where(f => FaultCatalog.All.Any(e => e.Fault == f && e.Target == FaultTarget.Collateral)))
        {
            request.Faults.Add(f);
        }

        return CollateralBuilder.Build(pki, request);
    }
}
