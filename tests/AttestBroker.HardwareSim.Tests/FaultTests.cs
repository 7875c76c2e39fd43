using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim.Tests;

/// <summary>
/// Every line of the fault catalog: evidence (and collateral) with the fault is rejected at the stated stage with the
/// stated reason code. Verify-stage faults by the real verifiers; policy-stage faults pass verification (the evidence
/// is authentic) and are rejected by the test-side policy check with the policy engine's code.
/// </summary>
[TestFixture]
public sealed class Each_named_fault_is_rejected_at_its_stage_with_its_reason_code
{
    private static readonly byte[] Nonce = [.. Enumerable.Range(0, 64).Select(i => (byte)(i * 3))];

    private static IEnumerable<TestCaseData> Catalog() =>
        FaultCatalog.All.Select(f => new TestCaseData(f).SetName($"Fault_{f.Name.Replace('-', '_')}_on_{f.Tee.ToWireName().Replace('-', '_')}_is_rejected_at_{f.Stage}_with_{f.ReasonCode}"));

    [TestCaseSource(nameof(Catalog))]
    public async Task Fault_is_rejected(FaultInfo fault)
    {
        var profile = SimProfile.Default();
        var options = new EvidenceOptions { ReportData = Nonce };
        options.Faults.Add(fault.Fault);
        var (_, result) = await SimTestEnvironment.MakeAndVerifyAsync(fault.Tee, profile, options);

        if (fault.Stage == FaultStage.Verify)
        {
            Assert.That(result.IsAccepted, Is.False, "a verify-stage fault must be rejected by the verifier");
            Assert.That(result.HasReason(fault.ReasonCode), Is.True, SimTestEnvironment.Describe(result));
        }
        else
        {
            Assert.That(result.IsAccepted, Is.True, "a policy-stage fault is authentic evidence: " + SimTestEnvironment.Describe(result));
            var codes = TestPolicy.Evaluate(fault.Tee, result.Claims, ExpectedMeasurement(fault.Tee, profile), Convert.ToHexStringLower(Nonce));
            Assert.That(codes, Is.EqualTo(new[] { fault.ReasonCode }));
        }
    }

    [TestCase(TeeKind.Tdx)]
    [TestCase(TeeKind.SevSnp)]
    public async Task Evidence_without_faults_passes_verification_and_the_policy_check(TeeKind tee)
    {
        var profile = SimProfile.Default();
        var (_, result) = await SimTestEnvironment.MakeAndVerifyAsync(tee, profile, new EvidenceOptions { ReportData = Nonce });
        Assert.That(result.IsAccepted, Is.True, SimTestEnvironment.Describe(result));
        Assert.That(TestPolicy.Evaluate(tee, result.Claims, ExpectedMeasurement(tee, profile), Convert.ToHexStringLower(Nonce)), Is.Empty);
    }

    [Test]
    public void A_fault_for_the_other_tee_is_refused_with_a_clear_error()
    {
        var options = new EvidenceOptions();
        options.Faults.Add(SimFault.Vmpl1);
        var ex = Assert.Throws<SimulatorException>(() => SimEvidence.Create(SimTestEnvironment.Pki, SimProfile.Default(), TeeKind.Tdx, options));
        Assert.That(ex!.Message, Does.Contain("vmpl1"));
    }

    [Test]
    public void Every_fault_name_parses_back_and_unknown_names_are_refused()
    {
        foreach (var f in FaultCatalog.All)
        {
            Assert.That(FaultCatalog.Parse(f.Name), Is.EqualTo(f.Fault));
        }

        Assert.Throws<SimulatorException>(() => FaultCatalog.Parse("no-such-fault"));
    }

    [Test]
    public void The_catalog_lines_are_name_tee_stage_reason()
    {
        var lines = FaultCatalog.All.Select(f => f.ToLine()).ToList();
        Assert.That(lines, Does.Contain("debug tdx policy debug_not_allowed"));
        Assert.That(lines, Does.Contain("debug sev-snp policy debug_not_allowed"));
        Assert.That(lines, Does.Contain("revoked-pck tdx verify certificate_revoked"));
        Assert.That(lines.All(l => l.Split(' ').Length == 4), Is.True);
    }

    private static string ExpectedMeasurement(TeeKind tee, SimProfile profile) =>
        tee == TeeKind.Tdx ? Convert.ToHexStringLower(profile.Td.MrTd) : Convert.ToHexStringLower(profile.SnpGuest.Measurement);
}
