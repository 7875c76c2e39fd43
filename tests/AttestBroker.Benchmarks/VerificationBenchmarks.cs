using AttestBroker.Testing;
using AttestBroker.Verification;
using AttestBroker.Verification.Snp;
using AttestBroker.Verification.Tdx;
using BenchmarkDotNet.Attributes;

namespace AttestBroker.Benchmarks;

/// <summary>
/// Verifications per second of real evidence with collateral cached (loaded once from the shared vectors), beside
/// this machine's raw ECDSA verification rates measured in the same run. The limit: a TDX quote needs two P-256
/// verifications (quote by the attestation key, QE report by the PCK key), an SNP report one P-384 verification.
/// </summary>
[MemoryDiagnoser]
public class VerificationBenchmarks
{
    private EcdsaBaseline _ecdsa = null!;
    private TdxVerifier _tdx = null!;
    private SnpVerifier _snp = null!;
    private byte[] _quote = null!;
    private byte[] _report = null!;
    private VerificationContext _tdxContext = null!;
    private VerificationContext _snpContext = null!;

    [GlobalSetup]
    public void Setup()
    {
        var v = TestPaths.VectorsDir ?? throw new InvalidOperationException("attestation vectors not found: set ATTESTBROKER_VECTORS or put shared/ beside the checkout");
        _ecdsa = new EcdsaBaseline();
        _quote = File.ReadAllBytes(Path.Combine(v, "tdx/go-tdx-guest/quote_v5_sample.dat"));
        _report = File.ReadAllBytes(Path.Combine(v, "snp/go-sev-guest/attestation.bin"));
        _tdx = new TdxVerifier(TdxCollateralSource.FromPaths([Path.Combine(v, "tdx/dcap-qvl/tdx_quote_outdated_collateral.json")]));
        _snp = new SnpVerifier(SnpCertificateSource.FromPaths([], Path.Combine(v, "snp/go-sev-guest/vcek.testcer.der"), Path.Combine(v, "snp/go-sev-guest/trust/ask_ark_milan.pem")));
        _tdxContext = new VerificationContext(DateTimeOffset.Parse("2026-03-20T10:41:14Z", System.Globalization.CultureInfo.InvariantCulture), TrustStore.Production);
        _snpContext = new VerificationContext(DateTimeOffset.Parse("2022-09-24T01:00:00Z", System.Globalization.CultureInfo.InvariantCulture), TrustStore.Production);

        // A benchmark of a failing path would measure nothing useful: both must verify.
        if (!VerifyTdx() || !VerifySnp() || !_ecdsa.VerifyP256() || !_ecdsa.VerifyP384())
        {
            throw new InvalidOperationException("a benchmarked verification did not succeed");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _ecdsa.Dispose();

    [Benchmark(Description = "ECDSA P-256 verify")]
    public bool EcdsaP256() => _ecdsa.VerifyP256();

    [Benchmark(Description = "ECDSA P-384 verify")]
    public bool EcdsaP384() => _ecdsa.VerifyP384();

    [Benchmark(Description = "TDX quote v5 verify")]
    public bool VerifyTdx() => _tdx.VerifyAsync(_quote, _tdxContext).GetAwaiter().GetResult().IsAccepted;

    [Benchmark(Description = "SNP report verify")]
    public bool VerifySnp() => _snp.VerifyAsync(_report, _snpContext).GetAwaiter().GetResult().IsAccepted;
}
