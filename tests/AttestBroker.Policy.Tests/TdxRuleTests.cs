using System.Text.Json.Nodes;
using NUnit.Framework;
using static AttestBroker.Policy.Tests.Asserts;
using static AttestBroker.Policy.Tests.TestData;

namespace AttestBroker.Policy.Tests;

[TestFixture]
public sealed class Tdx_reference_value_allowlists
{
    private static IEnumerable<TestCaseData> Fields()
    {
        yield return new TestCaseData("mrTd", "mr_td", MrTd);
        yield return new TestCaseData("rtmr0", "rtmr0", Rtmr0);
        yield return new TestCaseData("rtmr1", "rtmr1", Rtmr1);
        yield return new TestCaseData("rtmr2", "rtmr2", Rtmr2);
        yield return new TestCaseData("rtmr3", "rtmr3", Rtmr3);
        yield return new TestCaseData("mrConfigId", "mr_config_id", MrConfigId);
        yield return new TestCaseData("mrOwner", "mr_owner", MrOwner);
        yield return new TestCaseData("mrOwnerConfig", "mr_owner_config", MrOwnerConfig);
        yield return new TestCaseData("mrSeam", "mr_seam", MrSeam);
    }

    private static string Policy(string field, string value) => field == "mrTd"
        ? $"name: p\nversion: 1\ntee: [tdx]\ntdx:\n  mrTd: [{value}]\n"
        : $"name: p\nversion: 1\ntee: [tdx]\ntdx:\n  mrTd: [{MrTd}]\n  {field}: [{value}]\n";

    [TestCaseSource(nameof(Fields))]
    public void Listed_value_is_granted(string field, string claim, string value) => Granted(Eval(Policy(field, value), TdxInput()));

    [TestCaseSource(nameof(Fields))]
    public void Unlisted_value_is_denied_with_measurement_mismatch_naming_claim_expected_and_actual(string field, string claim, string value)
    {
        var c = TdxClaims();
        var other = Hex(48, 0xfe);
        c[claim] = other;
        DeniedBy(Eval(Policy(field, value), TdxInput(c)), PolicyCodes.MeasurementMismatch, "tdx." + field, claim, $"[{Q(value)}]", Q(other));
    }

    [TestCaseSource(nameof(Fields))]
    public void Absent_claim_is_denied_with_measurement_mismatch_and_null_actual(string field, string claim, string value)
    {
        var c = TdxClaims();
        c.Remove(claim);
        DeniedBy(Eval(Policy(field, value), TdxInput(c)), PolicyCodes.MeasurementMismatch, "tdx." + field, claim, actual: "null");
    }

    [Test]
    public void Claim_of_the_wrong_type_is_denied_with_measurement_mismatch()
    {
        var c = TdxClaims();
        c["mr_td"] = 17;
        DeniedBy(Eval(Policy("mrTd", MrTd), TdxInput(c)), PolicyCodes.MeasurementMismatch, "tdx.mrTd", "mr_td", actual: "17");
    }
}

[TestFixture]
public sealed class Tdx_tcb_status_rule
{
    [Test]
    public void Default_accepts_UpToDate() => Granted(Eval(TdxPolicy(), TdxInput()));

    [TestCase("SWHardeningNeeded")]
    [TestCase("OutOfDate")]
    [TestCase("ConfigurationNeeded")]
    public void Default_denies_any_other_status_with_tcb_status_not_allowed(string status)
    {
        var c = TdxClaims();
        c["tcb_status"] = status;
        DeniedBy(Eval(TdxPolicy(), TdxInput(c)), PolicyCodes.TcbStatusNotAllowed, "tdx.tcbStatus", "tcb_status", """["UpToDate"]""", Q(status));
    }

    [Test]
    public void Listed_statuses_are_granted()
    {
        var c = TdxClaims();
        c["tcb_status"] = "SWHardeningNeeded";
        Granted(Eval(TdxPolicy(tdx: "tcbStatus: [UpToDate, SWHardeningNeeded]"), TdxInput(c)));
    }

    [Test]
    public void Absent_status_is_denied_with_tcb_status_not_allowed()
    {
        var c = TdxClaims();
        c.Remove("tcb_status");
        DeniedBy(Eval(TdxPolicy(), TdxInput(c)), PolicyCodes.TcbStatusNotAllowed, "tdx.tcbStatus", "tcb_status", actual: "null");
    }

    [Test]
    public void Qe_tcb_status_outside_the_list_is_denied_with_qe_tcb_status_not_allowed()
    {
        var c = TdxClaims();
        c["qe_tcb_status"] = "OutOfDate";
        DeniedBy(Eval(TdxPolicy(tdx: "qeTcbStatus: [UpToDate]"), TdxInput(c)), PolicyCodes.QeTcbStatusNotAllowed, "tdx.qeTcbStatus", "qe_tcb_status", """["UpToDate"]""", Q("OutOfDate"));
    }
}

[TestFixture]
public sealed class Tdx_advisory_rule
{
    [Test]
    public void Advisories_not_listed_are_denied_with_advisory_not_allowed_naming_them()
    {
        var c = TdxClaims();
        c["advisory_ids"] = new JsonArray("INTEL-SA-00837", "INTEL-SA-00960");
        DeniedBy(Eval(TdxPolicy(tdx: "allowedAdvisories: [INTEL-SA-00837]"), TdxInput(c)), PolicyCodes.AdvisoryNotAllowed, "tdx.allowedAdvisories", "advisory_ids",
            """["INTEL-SA-00837"]""", """["INTEL-SA-00960"]""");
    }

    [Test]
    public void By_default_any_advisory_is_denied_with_advisory_not_allowed()
    {
        var c = TdxClaims();
        c["advisory_ids"] = new JsonArray("INTEL-SA-00837");
        DeniedBy(Eval(TdxPolicy(), TdxInput(c)), PolicyCodes.AdvisoryNotAllowed, "tdx.allowedAdvisories", "advisory_ids", "[]", """["INTEL-SA-00837"]""");
    }

    [Test]
    public void Listed_advisories_are_granted()
    {
        var c = TdxClaims();
        c["advisory_ids"] = new JsonArray("INTEL-SA-00837", "INTEL-SA-00960");
        Granted(Eval(TdxPolicy(tdx: "allowedAdvisories: [INTEL-SA-00837, INTEL-SA-00960]"), TdxInput(c)));
    }

    [Test]
    public void Absent_advisory_claim_is_denied_with_advisory_not_allowed()
    {
        var c = TdxClaims();
        c.Remove("advisory_ids");
        DeniedBy(Eval(TdxPolicy(), TdxInput(c)), PolicyCodes.AdvisoryNotAllowed, "tdx.allowedAdvisories", "advisory_ids", actual: "null");
    }
}

[TestFixture]
public sealed class Tdx_minimum_tee_tcb_svn_rule
{
    [Test]
    public void Svn_at_the_minimum_is_granted() => Granted(Eval(TdxPolicy(tdx: $"minTeeTcbSvn: {TeeTcbSvn}"), TdxInput()));

    [Test]
    public void Svn_above_the_minimum_in_every_component_is_granted() =>
        Granted(Eval(TdxPolicy(tdx: "minTeeTcbSvn: 0a010200000000000000000000000000"), TdxInput()));

    [Test]
    public void Svn_with_one_component_below_the_minimum_is_denied_with_tcb_below_minimum()
    {
        var f = DeniedBy(Eval(TdxPolicy(tdx: "minTeeTcbSvn: 0b020000000000000000000000000000"), TdxInput()), PolicyCodes.TcbBelowMinimum, "tdx.minTeeTcbSvn", "tee_tcb_svn",
            Q("0b020000000000000000000000000000"), Q(TeeTcbSvn));
        Assert.That(f.Message, Does.Contain("component 1"));
    }

    [Test]
    public void Absent_svn_is_denied_with_tcb_below_minimum()
    {
        var c = TdxClaims();
        c.Remove("tee_tcb_svn");
        DeniedBy(Eval(TdxPolicy(tdx: $"minTeeTcbSvn: {TeeTcbSvn}"), TdxInput(c)), PolicyCodes.TcbBelowMinimum, "tdx.minTeeTcbSvn", "tee_tcb_svn", actual: "null");
    }
}
