using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using NUnit.Framework;

namespace AttestBroker.Policy.Tests;

/// <summary>
/// End to end through <c>attestbroker policy test --trust-simulator</c>: evidence from the simulator's default profile
/// is granted by a policy pinning that profile, and every fault of the simulator's catalog is denied with the code the
/// catalog names (policy-stage faults by the policy rule, verify-stage faults as verification_failed).
/// </summary>
[TestFixture]
public sealed class Simulator_faults_are_denied_with_their_catalogued_codes
{
    private static readonly DateTimeOffset Issued = new(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);
    private const string At = "2026-03-01T01:00:00Z";
    private string _tmp = null!;
    private string _pkiDir = null!;
    private SimPki _pki = null!;
    private readonly Dictionary<TeeKind, string> _policies = [];

    /// <summary>The clean evidence's collateral, reused for faults that change only the evidence (making collateral is the slow part).</summary>
    private readonly Dictionary<TeeKind, string> _cleanCollateral = [];

    [OneTimeSetUp]
    public async Task OneTimeSetUp()
    {
        _tmp = Directory.CreateTempSubdirectory("ab-policy-sim-").FullName;
        _pkiDir = Path.Combine(_tmp, "pki");
        _pki = SimPki.Create(7);
        _pki.Save(_pkiDir);

        // Pin the clean evidence's measurements and REPORT_DATA, as a key admin would from a known-good TD or guest.
        foreach (var tee in new[] { TeeKind.Tdx, TeeKind.SevSnp })
        {
            var (evidence, collateral) = Make(tee, "clean", null);
            _cleanCollateral[tee] = collateral;
            var (_, output, _) = await PolicyCli.RunAsync("verify", "--json", "--trust-simulator", _pkiDir, "--collateral", collateral, "--at", At, evidence);
            var claims = JsonNode.Parse(output)!["claims"]!;
            var text = tee == TeeKind.Tdx
                ? $"name: sim-tdx\nversion: 1\ntee: [tdx]\nallowSimulated: true\nreportData: [{claims["report_data"]}]\ntdx:\n  mrTd: [{claims["mr_td"]}]\n  rtmr0: [{claims["rtmr0"]}]\n"
                : $"name: sim-snp\nversion: 1\ntee: [sev-snp]\nallowSimulated: true\nreportData: [{claims["report_data"]}]\nsnp:\n  measurement: [{claims["measurement"]}]\n";
            _policies[tee] = Path.Combine(_tmp, tee.ToWireName() + ".yaml");
            await File.WriteAllTextAsync(_policies[tee], text);
        }
    }

    [OneTimeTearDown]
    public void OneTimeTearDown()
    {
        _pki.Dispose();
        Directory.Delete(_tmp, recursive: true);
    }

    private (string Evidence, string Collateral) Make(TeeKind tee, string name, SimFault? fault, bool reuseCollateral = false)
    {
        var options = new EvidenceOptions();
        if (fault is { } f)
        {
            options.Faults.Add(f);
        }

        var profile = SimProfile.Default();
        var evidence = Path.Combine(_tmp, $"{name}-{tee.ToWireName()}.bin");
        File.WriteAllBytes(evidence, SimEvidence.Create(_pki, profile, tee, options));
        if (reuseCollateral)
        {
            return (evidence, _cleanCollateral[tee]);
        }

        var collateral = Path.Combine(_tmp, $"{name}-{tee.ToWireName()}-collateral");
        SimEvidence.CollateralForEvidence(_pki, profile, tee, options, Issued).WriteTo(collateral);
        return (evidence, collateral);
    }

    private async Task<(int Exit, JsonNode Decision)> TestAsync(TeeKind tee, string name, SimFault? fault, string? policy = null, bool trust = true)
    {
        var onlyEvidence = fault is null || FaultCatalog.Info(fault.Value, tee).Target == FaultTarget.Evidence;
        var (evidence, collateral) = Make(tee, name, fault, reuseCollateral: onlyEvidence);
        string[] args = ["policy", "test", "--json", "--policy", policy ?? _policies[tee], "--evidence", evidence, "--collateral", collateral, "--at", At];
        if (trust)
        {
            args = [.. args, "--trust-simulator", _pkiDir];
        }

        var (exit, output, err) = await PolicyCli.RunAsync(args);
        Assert.That(output, Is.Not.Empty, err);
        return (exit, JsonNode.Parse(output)!);
    }

    private static List<(string Code, string? Actual)> Failures(JsonNode decision) =>
        decision["failures"]!.AsArray().Select(f => ((string)f!["code"]!, f["actual"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null)).ToList();

    [TestCase(TeeKind.Tdx)]
    [TestCase(TeeKind.SevSnp)]
    public async Task Clean_simulated_evidence_is_granted_when_the_policy_allows_simulated_evidence(TeeKind tee)
    {
        var (exit, decision) = await TestAsync(tee, "granted", null);
        Assert.That(Failures(decision), Is.Empty);
        Assert.That(((string?)decision["decision"], exit), Is.EqualTo(("granted", 0)));
    }

    [TestCase(TeeKind.Tdx)]
    [TestCase(TeeKind.SevSnp)]
    public async Task Clean_simulated_evidence_is_denied_with_simulated_not_allowed_by_a_policy_without_allowSimulated(TeeKind tee)
    {
        var text = (await File.ReadAllTextAsync(_policies[tee])).Replace("allowSimulated: true\n", string.Empty, StringComparison.Ordinal);
        var policy = Path.Combine(_tmp, "nosim-" + tee.ToWireName() + ".yaml");
        await File.WriteAllTextAsync(policy, text);
        var (exit, decision) = await TestAsync(tee, "nosim", null, policy);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(Failures(decision).Select(f => f.Code), Is.EqualTo(new[] { PolicyCodes.SimulatedNotAllowed }));
    }

    [TestCase(TeeKind.Tdx)]
    [TestCase(TeeKind.SevSnp)]
    public async Task Simulated_evidence_without_trusting_the_simulator_is_denied_as_an_untrusted_root(TeeKind tee)
    {
        var (exit, decision) = await TestAsync(tee, "untrusted", null, trust: false);
        Assert.That(exit, Is.EqualTo(1));
        Assert.That(Failures(decision), Does.Contain((PolicyCodes.VerificationFailed, (string?)"untrusted_root")));
    }

    private static IEnumerable<TestCaseData> Faults() =>
        FaultCatalog.All.Select(f => new TestCaseData(f.Fault, f.Tee, f.Stage, f.ReasonCode).SetName($"Fault_{f.Name}_on_{f.Tee.ToWireName()}_is_denied_with_{f.ReasonCode}"));

    [TestCaseSource(nameof(Faults))]
    public async Task Fault_is_denied_with_its_catalogued_code(SimFault fault, TeeKind tee, FaultStage stage, string code)
    {
        var (exit, decision) = await TestAsync(tee, fault.Name(), fault);
        var failures = Failures(decision);
        Assert.That(exit, Is.EqualTo(1));
        if (stage == FaultStage.Policy)
        {
            // A TCB level below UpToDate also carries the advisories that explain it, which the policy does not accept either.
            Assert.That(failures.Select(f => f.Code).First(), Is.EqualTo(code), "verification: " + decision["verification"]!["reasons"]!.ToJsonString());
            Assert.That(failures.Skip(1).Select(f => f.Code), Is.All.EqualTo(PolicyCodes.AdvisoryNotAllowed));
        }
        else
        {
            Assert.That(failures, Does.Contain((PolicyCodes.VerificationFailed, (string?)code)));
        }
    }
}
