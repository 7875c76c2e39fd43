using System.Text.Json.Nodes;
using NUnit.Framework;
using static AttestBroker.Policy.Tests.Asserts;
using static AttestBroker.Policy.Tests.TestData;

namespace AttestBroker.Policy.Tests;

[TestFixture]
public sealed class Baseline_policies_grant_matching_evidence
{
    [Test]
    public void Tdx_policy_grants_claims_that_match_every_rule() => Granted(Eval(TdxPolicy(), TdxInput()));

    [Test]
    public void Snp_policy_grants_claims_that_match_every_rule() => Granted(Eval(SnpPolicy(), SnpInput()));

    [Test]
    public void Granted_decision_names_the_policy_and_its_version()
    {
        var d = Eval(TdxPolicy(), TdxInput());
        Assert.That(d.ToJson().ToJsonString(), Is.EqualTo("""{"decision":"granted","policy":"model-a","policy_version":3,"explain":true,"failures":[]}"""));
    }
}

[TestFixture]
public sealed class Tee_kind_rule
{
    [Test]
    public void Evidence_from_a_tee_kind_the_policy_does_not_list_is_denied_with_tee_not_allowed() =>
        DeniedBy(Eval(TdxPolicy(), SnpInput()), PolicyCodes.TeeNotAllowed, "tee", "tee", """["tdx"]""", Q("sev-snp"));

    [Test]
    public void A_policy_without_tee_kinds_denies_everything_with_tee_not_allowed()
    {
        var policy = "name: none\nversion: 1\n";
        DeniedBy(Eval(policy, TdxInput()), PolicyCodes.TeeNotAllowed, "tee", "tee", "[]", Q("tdx"));
        DeniedBy(Eval(policy, SnpInput()), PolicyCodes.TeeNotAllowed, "tee", "tee", "[]", Q("sev-snp"));
    }

    [Test]
    public void A_policy_listing_both_kinds_grants_each()
    {
        var both = $"name: both\nversion: 1\ntee: [tdx, sev-snp]\ntdx:\n  mrTd: [{MrTd}]\nsnp:\n  measurement: [{Measurement}]\n";
        Granted(Eval(both, TdxInput()));
        Granted(Eval(both, SnpInput()));
    }
}

[TestFixture]
public sealed class Debug_rule
{
    [Test]
    public void Tdx_debug_td_is_denied_with_debug_not_allowed_by_default()
    {
        var c = TdxClaims();
        c["debug"] = true;
        DeniedBy(Eval(TdxPolicy(), TdxInput(c)), PolicyCodes.DebugNotAllowed, "allowDebug", "debug", "false", "true");
    }

    [Test]
    public void Snp_debug_guest_is_denied_with_debug_not_allowed_by_default()
    {
        var c = SnpClaims();
        c["debug"] = true;
        DeniedBy(Eval(SnpPolicy(), SnpInput(c)), PolicyCodes.DebugNotAllowed, "allowDebug", "debug", "false", "true");
    }

    [Test]
    public void Absent_debug_claim_is_denied_with_debug_not_allowed()
    {
        var c = TdxClaims();
        c.Remove("debug");
        DeniedBy(Eval(TdxPolicy(), TdxInput(c)), PolicyCodes.DebugNotAllowed, "allowDebug", "debug", "false", "null");
    }

    [Test]
    public void Debug_td_is_granted_when_the_policy_sets_allowDebug()
    {
        var c = TdxClaims();
        c["debug"] = true;
        Granted(Eval(TdxPolicy("allowDebug: true"), TdxInput(c)));
    }
}

[TestFixture]
public sealed class Simulated_evidence_rule
{
    [Test]
    public void Simulated_evidence_is_denied_with_simulated_not_allowed_by_default()
    {
        var input = TdxInput() with { Simulated = true, TrustsSimulator = true };
        DeniedBy(Eval(TdxPolicy(), input), PolicyCodes.SimulatedNotAllowed, "allowSimulated", "simulated", "false", "true");
    }

    [Test]
    public void Simulated_evidence_is_denied_when_the_policy_allows_it_but_the_broker_does_not_trust_the_simulator()
    {
        var input = TdxInput() with { Simulated = true, TrustsSimulator = false };
        var f = DeniedBy(Eval(TdxPolicy("allowSimulated: true"), input), PolicyCodes.SimulatedNotAllowed, "allowSimulated", "simulated", "false", "true");
        Assert.That(f.Message, Does.Contain("does not trust the simulator"));
    }

    [Test]
    public void Simulated_evidence_is_granted_when_the_policy_allows_it_and_the_broker_trusts_the_simulator()
    {
        var input = TdxInput() with { Simulated = true, TrustsSimulator = true };
        Granted(Eval(TdxPolicy("allowSimulated: true"), input));
    }
}

[TestFixture]
public sealed class Crl_checked_rule
{
    [Test]
    public void Evidence_verified_without_crls_is_denied_with_crl_not_checked_by_default()
    {
        var input = TdxInput() with { CrlChecked = false };
        DeniedBy(Eval(TdxPolicy(), input), PolicyCodes.CrlNotChecked, "allowUncheckedCrl", "crl_checked", "true", "false");
    }

    [Test]
    public void Evidence_verified_without_crls_is_granted_when_the_policy_sets_allowUncheckedCrl() =>
        Granted(Eval(TdxPolicy("allowUncheckedCrl: true"), TdxInput() with { CrlChecked = false }));
}

[TestFixture]
public sealed class Verification_outcome_rule
{
    [Test]
    public void A_verification_rejection_is_a_denial_with_verification_failed_naming_each_reason()
    {
        var input = TdxInput() with { VerificationFailures = [new("quote_signature_invalid", "bad signature"), new("crl_missing", "no PCK CRL")] };
        var d = Eval(TdxPolicy(), input);
        Assert.That(d.Granted, Is.False);
        Assert.That(d.Failures.Select(f => (f.Code, Json(f.Actual))), Is.EqualTo(new[]
        {
            (PolicyCodes.VerificationFailed, Q("quote_signature_invalid")),
            (PolicyCodes.VerificationFailed, Q("crl_missing")),
        }));
    }
}

[TestFixture]
public sealed class Report_data_rule
{
    [Test]
    public void Report_data_outside_the_pinned_values_is_denied_with_report_data_mismatch()
    {
        var c = TdxClaims();
        c["report_data"] = Hex(64, 0x66);
        DeniedBy(Eval(TdxPolicy($"reportData: [{ReportData}]"), TdxInput(c)), PolicyCodes.ReportDataMismatch, "reportData", "report_data", $"[{Q(ReportData)}]", Q(Hex(64, 0x66)));
    }

    [Test]
    public void Pinned_report_data_grants_when_equal_ignoring_case() =>
        Granted(Eval(TdxPolicy($"reportData: [{ReportData.ToUpperInvariant()}]"), TdxInput()));

    [Test]
    public void Snp_report_data_outside_the_pinned_values_is_denied_with_report_data_mismatch()
    {
        var c = SnpClaims();
        c["report_data"] = Hex(64, 0x00);
        DeniedBy(Eval(SnpPolicy($"reportData: [{ReportData}]"), SnpInput(c)), PolicyCodes.ReportDataMismatch, "reportData", "report_data");
    }
}

[TestFixture]
public sealed class Collateral_age_rule
{
    [Test]
    public void Collateral_issued_before_the_maximum_age_is_denied_with_collateral_too_old()
    {
        var input = TdxInput() with { Collateral = [new("tcb_info", At.AddDays(-31)), new("qe_identity", At.AddDays(-2))] };
        DeniedBy(Eval(TdxPolicy("maxCollateralAge: 30d"), input), PolicyCodes.CollateralTooOld, "maxCollateralAge", "collateral.tcb_info.issued_at",
            Q("at or after 2026-02-18T10:41:14Z"), Q("2026-02-17T10:41:14Z"));
    }

    [Test]
    public void Collateral_within_the_maximum_age_is_granted()
    {
        var input = TdxInput() with { Collateral = [new("tcb_info", At.AddDays(-30)), new("qe_identity", At.AddHours(-1))] };
        Granted(Eval(TdxPolicy("maxCollateralAge: 30d"), input));
    }

    [Test]
    public void Unknown_collateral_dates_are_denied_with_collateral_too_old_when_a_maximum_age_is_set() =>
        DeniedBy(Eval(TdxPolicy("maxCollateralAge: 12h"), TdxInput()), PolicyCodes.CollateralTooOld, "maxCollateralAge", "collateral", actual: "null");
}

[TestFixture]
public sealed class Requester_identity_rule
{
    private const string Requester = "requester:\n  namespaces: [ml-serving]\n  serviceAccounts: [llm-runner]";

    [Test]
    public void Requester_from_another_namespace_is_denied_with_identity_mismatch()
    {
        var input = TdxInput() with { Requester = new("default", "llm-runner") };
        DeniedBy(Eval(TdxPolicy(Requester), input), PolicyCodes.IdentityMismatch, "requester.namespaces", "requester.namespace", """["ml-serving"]""", Q("default"));
    }

    [Test]
    public void Requester_with_another_service_account_is_denied_with_identity_mismatch()
    {
        var input = TdxInput() with { Requester = new("ml-serving", "default") };
        DeniedBy(Eval(TdxPolicy(Requester), input), PolicyCodes.IdentityMismatch, "requester.serviceAccounts", "requester.serviceAccount", """["llm-runner"]""", Q("default"));
    }

    [Test]
    public void Unknown_requester_is_denied_with_identity_mismatch_for_each_constraint()
    {
        var d = Eval(TdxPolicy(Requester), TdxInput());
        Assert.That(d.Failures.Select(f => (f.Code, f.Rule)), Is.EqualTo(new[]
        {
            (PolicyCodes.IdentityMismatch, "requester.namespaces"),
            (PolicyCodes.IdentityMismatch, "requester.serviceAccounts"),
        }));
    }

    [Test]
    public void Matching_requester_is_granted() =>
        Granted(Eval(TdxPolicy(Requester), TdxInput() with { Requester = new("ml-serving", "llm-runner") }));
}

[TestFixture]
public sealed class Every_failing_rule_is_reported
{
    [Test]
    public void A_decision_lists_every_failing_rule_not_only_the_first()
    {
        var c = TdxClaims();
        c["debug"] = true;
        c["mr_td"] = Hex(48, 0xee);
        c["rtmr1"] = Hex(48, 0xef);
        c["tcb_status"] = "OutOfDate";
        var policy = TdxPolicy(tdx: $"rtmr1: [{Rtmr1}]");
        var d = Eval(policy, TdxInput(c) with { CrlChecked = false });
        Assert.That(d.Failures.Select(f => f.Code + "@" + f.Rule), Is.EqualTo(new[]
        {
            "crl_not_checked@allowUncheckedCrl",
            "debug_not_allowed@allowDebug",
            "measurement_mismatch@tdx.mrTd",
            "measurement_mismatch@tdx.rtmr1",
            "tcb_status_not_allowed@tdx.tcbStatus",
        }));
    }

    [Test]
    public void Explain_false_hides_the_failures_from_the_requester_but_the_decision_keeps_them()
    {
        var c = TdxClaims();
        c["debug"] = true;
        var d = Eval(TdxPolicy("explain: false"), TdxInput(c));
        Assert.Multiple(() =>
        {
            Assert.That(d.Explain, Is.False);
            Assert.That(d.Failures.Select(f => f.Code), Is.EqualTo(new[] { PolicyCodes.DebugNotAllowed }));
            Assert.That(d.ToRequesterJson().ToJsonString(), Is.EqualTo("""{"decision":"denied","policy":"model-a","policy_version":3}"""));
            Assert.That(d.ToJson()["failures"]!.AsArray(), Has.Count.EqualTo(1));
        });
    }

    [Test]
    public void Same_input_gives_the_same_decision()
    {
        var c = TdxClaims();
        c["tcb_status"] = "OutOfDate";
        var policy = ReleasePolicy.Parse(TdxPolicy());
        var a = PolicyEvaluator.Evaluate(policy, TdxInput(c)).ToJson().ToJsonString();
        var b = PolicyEvaluator.Evaluate(policy, TdxInput((JsonObject)c.DeepClone())).ToJson().ToJsonString();
        Assert.That(b, Is.EqualTo(a));
    }
}
