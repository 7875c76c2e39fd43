using AttestBroker.Evidence;
using AttestBroker.HardwareSim;
using AttestBroker.HardwareSim.Collateral;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.Verification;
using AttestBroker.Verification.Snp;
using AttestBroker.Verification.Tdx;

namespace AttestBroker.HardwareSim.Tests;

/// <summary>
/// One simulated PKI for the whole test run (RSA-4096 generation is the slow part), its public certificates saved to
/// a temporary PKI directory for <see cref="SimulatorTrust"/>, and a fixed verification time.
/// </summary>
internal static class SimTestEnvironment
{
    /// <summary>Collateral is issued at this instant and evidence is verified at it (never the wall clock).</summary>
    public static readonly DateTimeOffset At = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private static readonly Lazy<(SimPki Pki, string Dir)> Shared = new(() =>
    {
        var pki = SimPki.Create(seed: null);
        var dir = Path.Combine(Path.GetTempPath(), "attest-sim-tests-" + Guid.NewGuid().ToString("N"));
        pki.Save(dir);
        return (pki, dir);
    });

    public static SimPki Pki => Shared.Value.Pki;

    public static string PkiDir => Shared.Value.Dir;

    public static TrustStore SimulatedTrust => SimulatorTrust.AddFromPkiDirectory(TrustStore.Production, PkiDir);

    public static VerificationContext Context(bool trustSimulator = true) => new(At, trustSimulator ? SimulatedTrust : TrustStore.Production);

    /// <summary>A fresh temporary directory (removed by <see cref="Cleanup"/> at the end of the run).</summary>
    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "attest-sim-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Writes the collateral to a folder and verifies with the verifier the CLI uses for that TEE (collateral from files, recognised by content).</summary>
    public static async Task<VerificationResult> VerifyAsync(TeeKind tee, byte[] evidence, CollateralBundle collateral, bool trustSimulator = true)
    {
        var dir = TempDir();
        try
        {
            collateral.WriteTo(dir);
            IEvidenceVerifier verifier = tee == TeeKind.Tdx
                ? new TdxVerifier(TdxCollateralSource.FromPaths([dir]))
                : new SnpVerifier(SnpCertificateSource.FromPaths([dir], null, null));
            return await verifier.VerifyAsync(evidence, Context(trustSimulator)).ConfigureAwait(false);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Evidence for a profile and its own collateral (what <c>attest-sim quote --collateral-out</c> writes), verified.</summary>
    public static async Task<(byte[] Evidence, VerificationResult Result)> MakeAndVerifyAsync(TeeKind tee, SimProfile profile, EvidenceOptions options, bool trustSimulator = true)
    {
        var evidence = SimEvidence.Create(Pki, profile, tee, options);
        var collateral = SimEvidence.CollateralForEvidence(Pki, profile, tee, options, At);
        return (evidence, await VerifyAsync(tee, evidence, collateral, trustSimulator).ConfigureAwait(false));
    }

    public static string Describe(VerificationResult r) =>
        string.Join("; ", r.Reasons.Select(x => x.Code + ": " + x.Message));

    public static void Cleanup()
    {
        if (Shared.IsValueCreated)
        {
            Shared.Value.Pki.Dispose();
            Directory.Delete(Shared.Value.Dir, recursive: true);
        }
    }
}

/// <summary>
/// The policy-stage check the broker's policy engine will make, written test-side until that engine exists: each
/// unwanted claim maps to its policy reason code (the codes in <see cref="FaultCatalog"/>).
/// </summary>
internal static class TestPolicy
{
    public static List<string> Evaluate(TeeKind tee, ClaimSet claims, string expectedMeasurementHex, string expectedReportDataHex)
    {
        var codes = new List<string>();
        if (claims["debug"]?.GetValue<bool>() != false)
        {
            codes.Add(FaultCatalog.DebugNotAllowed);
        }

        var measurement = claims[tee == TeeKind.Tdx ? "mr_td" : "measurement"]?.GetValue<string>();
        if (!string.Equals(measurement, expectedMeasurementHex, StringComparison.Ordinal))
        {
            codes.Add(FaultCatalog.MeasurementMismatch);
        }

        if (!string.Equals(claims["report_data"]?.GetValue<string>(), expectedReportDataHex, StringComparison.Ordinal))
        {
            codes.Add(FaultCatalog.ReportDataMismatch);
        }

        if (tee == TeeKind.SevSnp && claims["vmpl"]?.GetValue<long>() != 0)
        {
            codes.Add(FaultCatalog.VmplNotAllowed);
        }

        if (tee == TeeKind.Tdx && claims["tcb_status"]?.GetValue<string>() != "UpToDate")
        {
            codes.Add(FaultCatalog.TcbStatusNotAllowed);
        }

        return codes;
    }
}

[SetUpFixture]
public sealed class SimTestRunCleanup
{
    [OneTimeTearDown]
    public void RemoveTemporaryPki() => SimTestEnvironment.Cleanup();
}
