using System.Numerics;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim.Collateral;

/// <summary>What collateral to make: for which platforms, at what time, with which collateral faults.</summary>
public sealed class CollateralRequest
{
    public IList<TdxPlatform> TdxPlatforms { get; } = [];

    public IList<SnpPlatform> SnpPlatforms { get; } = [];

    public ISet<SimFault> Faults { get; } = new HashSet<SimFault>();

    /// <summary>The time the collateral is issued at (it is valid for <see cref="Validity"/> from then).</summary>
    public DateTimeOffset Now { get; set; } = DateTimeOffset.UtcNow;

    public TimeSpan Validity { get; set; } = TimeSpan.FromDays(30);

    /// <summary>The default TDX platform and one default SNP platform per AMD product.</summary>
    public static CollateralRequest ForDefaults(DateTimeOffset now)
    {
        var r = new CollateralRequest { Now = now };
        r.TdxPlatforms.Add(new TdxPlatform());
        foreach (var p in AmdProducts.All)
        {
            r.SnpPlatforms.Add(new SnpPlatform { Product = p, ChipId = SnpPlatform.DefaultChipId(p), Name = "snp-" + p.CliName() });
        }

        return r;
    }
}

/// <summary>One AMD product's collateral.</summary>
public sealed record AmdProductCollateral(AmdProduct Product, string AskArkPem, string AsvkArkPem, byte[] VcekCrl, byte[] VlekCrl);

/// <summary>
/// Everything a verifier needs for the simulated PKI's evidence: Intel PCS responses and CRLs, AMD certificates and
/// CRLs. Kept as files (relative path → bytes) for <c>attest-sim collateral</c>, and in structured form for the server.
/// </summary>
public sealed class CollateralBundle
{
    public SortedDictionary<string, byte[]> Files { get; } = new(StringComparer.Ordinal);

    /// <summary>TCB Info responses by lower-case FMSPC hex.</summary>
    public Dictionary<string, SignedJson> TcbInfo { get; } = new(StringComparer.OrdinalIgnoreCase);

    public SignedJson? QeIdentity { get; set; }

    public string TcbInfoIssuerChain { get; set; } = string.Empty;

    public string QeIdentityIssuerChain { get; set; } = string.Empty;

    public byte[] PckCrl { get; set; } = [];

    public string PckCrlIssuerChain { get; set; } = string.Empty;

    public byte[] RootCaCrl { get; set; } = [];

    public Dictionary<AmdProduct, AmdProductCollateral> Amd { get; } = [];

    /// <summary>Writes every file under <paramref name="dir"/> (created if missing). Collateral is public; nothing secret is written.</summary>
    public void WriteTo(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        foreach (var (rel, bytes) in Files)
        {
            var path = Path.Combine(dir, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, bytes);
        }
    }
}

/// <summary>Makes the collateral for a simulated PKI, applying collateral faults.</summary>
public static class CollateralBuilder
{
    public static CollateralBundle Build(SimPki pki, CollateralRequest request)
    {
        ArgumentNullException.ThrowIfNull(pki);
        ArgumentNullException.ThrowIfNull(request);
        var faults = request.Faults;
        var issue = TruncateToSeconds(request.Now - TimeSpan.FromHours(1));
        var next = issue + request.Validity;
        if (faults.Contains(SimFault.ExpiredCollateral))
        {
            next = TruncateToSeconds(request.Now - TimeSpan.FromDays(1));
            issue = next - request.Validity;
        }

        var bundle = new CollateralBundle();
        var status = TcbStatus.UpToDate;
        if (faults.Contains(SimFault.TcbOutOfDate))
        {
            status = TcbStatus.OutOfDate;
        }

        if (faults.Contains(SimFault.TcbConfigurationNeeded))
        {
            status = TcbStatus.ConfigurationNeeded;
        }

        if (faults.Contains(SimFault.TcbRevoked))
        {
            status = TcbStatus.Revoked;
        }

        // ---- Intel
        var tcbSigner = pki.TcbSigning;
        var tcbChain = IntelCollateral.IssuerChainPem(pki.TcbSigning, pki.IntelRoot);
        if (faults.Contains(SimFault.TcbInfoForeignSigner))
        {
            var (foreign, foreignRoot) = pki.ForeignTcbSigner();
            tcbSigner = foreign;
            tcbChain = IntelCollateral.IssuerChainPem(foreign, foreignRoot);
        }

        foreach (var platform in request.TdxPlatforms.DistinctBy(p => Convert.ToHexString(p.Fmspc)))
        {
            var fmspc = Convert.ToHexStringLower(platform.Fmspc);
            var tcb = IntelCollateral.TdxTcbInfo(platform, status, issue, next, tcbSigner);
            bundle.TcbInfo[fmspc] = tcb;
            bundle.Files[$"tdx/tcb-info-{fmspc}.json"] = tcb.Body;
        }

        bundle.TcbInfoIssuerChain = tcbChain;
        bundle.Files["tdx/tcb-info-issuer-chain.pem"] = Encoding.ASCII.GetBytes(tcbChain);
        // With the foreign-signer fault both signed documents come from the foreign signer, so that no genuine
        // TCB Signing certificate is in the folder for a verifier to try (the reason is then signer_untrusted).
        if (request.TdxPlatforms.Count > 0)
        {
            bundle.QeIdentity = IntelCollateral.TdQeIdentity(request.TdxPlatforms[0], issue, next, tcbSigner);
            bundle.Files["tdx/qe-identity.json"] = bundle.QeIdentity.Body;
        }

        bundle.QeIdentityIssuerChain = tcbChain;

        var revokedPcks = faults.Contains(SimFault.RevokedPck)
            ? request.TdxPlatforms.Select(p => pki.IssuePck(p).Certificate).ToList()
            : [];
        bundle.PckCrl = IntelCollateral.Crl(pki.PckPlatformCa, revokedPcks, issue, next, CrlNumber(issue));
        bundle.PckCrlIssuerChain = IntelCollateral.IssuerChainPem(pki.PckPlatformCa, pki.IntelRoot);
        bundle.RootCaCrl = IntelCollateral.Crl(pki.IntelRoot, [], issue, next, CrlNumber(issue));
        bundle.Files["tdx/pck-crl-platform.der"] = bundle.PckCrl;
        bundle.Files["tdx/pck-crl-issuer-chain.pem"] = Encoding.ASCII.GetBytes(bundle.PckCrlIssuerChain);
        bundle.Files["tdx/root-ca-crl.der"] = bundle.RootCaCrl;
        bundle.Files["tdx/root-ca.pem"] = Encoding.ASCII.GetBytes(pki.IntelRoot.CertificatePem + "\n");

        // ---- AMD
        foreach (var (product, chain) in pki.Amd)
        {
            var revokeAsk = faults.Contains(SimFault.RevokedVcek);
            var vcekCrl = IntelCollateral.Crl(chain.Ark, revokeAsk ? [chain.Ask.Certificate] : Array.Empty<X509Certificate2>(), issue, next, CrlNumber(issue));
            var vlekCrl = IntelCollateral.Crl(chain.Ark, revokeAsk ? [chain.Asvk.Certificate] : Array.Empty<X509Certificate2>(), issue, next, CrlNumber(issue));
            var askArk = chain.Ask.CertificatePem + "\n" + chain.Ark.CertificatePem + "\n";
            var asvkArk = chain.Asvk.CertificatePem + "\n" + chain.Ark.CertificatePem + "\n";
            bundle.Amd[product] = new AmdProductCollateral(product, askArk, asvkArk, vcekCrl, vlekCrl);
            var dir = "amd/" + product.CliName();
            bundle.Files[$"{dir}/ask-ark.pem"] = Encoding.ASCII.GetBytes(askArk);
            bundle.Files[$"{dir}/asvk-ark.pem"] = Encoding.ASCII.GetBytes(asvkArk);
            bundle.Files[$"{dir}/vcek-crl.der"] = vcekCrl;
            bundle.Files[$"{dir}/vlek-crl.der"] = vlekCrl;
        }

        foreach (var platform in request.SnpPlatforms)
        {
            var dir = "amd/" + platform.Product.CliName();
            var tcbHex = platform.ReportedTcb.ToHex(platform.Product);
            var hwid = Convert.ToHexStringLower(platform.ChipId.AsSpan(0, platform.Product.HwIdLength()));
            bundle.Files[$"{dir}/vcek-{hwid[..16]}-{tcbHex}.der"] = pki.IssueVcek(platform).Certificate.RawData;
            bundle.Files[$"{dir}/vlek-{platform.CspId}-{tcbHex}.der"] = pki.IssueVlek(platform).Certificate.RawData;
        }

        return bundle;
    }

    private static BigInteger CrlNumber(DateTimeOffset issue) => new(issue.ToUnixTimeSeconds());

    private static DateTimeOffset TruncateToSeconds(DateTimeOffset t) => DateTimeOffset.FromUnixTimeSeconds(t.ToUnixTimeSeconds());
}
