using NUnit.Framework;
using static AttestBroker.Policy.Tests.Asserts;
using static AttestBroker.Policy.Tests.TestData;

namespace AttestBroker.Policy.Tests;

[TestFixture]
public sealed class Snp_reference_value_allowlists
{
    private static IEnumerable<TestCaseData> Fields()
    {
        yield return new TestCaseData("measurement", "measurement", Measurement, 48, PolicyCodes.MeasurementMismatch);
        yield return new TestCaseData("hostData", "host_data", HostData, 32, PolicyCodes.HostDataMismatch);
        yield return new TestCaseData("familyId", "family_id", FamilyId, 16, PolicyCodes.FamilyIdMismatch);
        yield return new TestCaseData("imageId", "image_id", ImageId, 16, PolicyCodes.ImageIdMismatch);
        yield return new TestCaseData("idKeyDigest", "id_key_digest", IdKey, 48, PolicyCodes.IdKeyMismatch);
        yield return new TestCaseData("authorKeyDigest", "author_key_digest", AuthorKey, 48, PolicyCodes.AuthorKeyMismatch);
    }

    private static string Policy(string field, string value) => field == "measurement"
        ? $"name: p\nversion: 1\ntee: [sev-snp]\nsnp:\n  measurement: [{value}]\n"
        : $"name: p\nversion: 1\ntee: [sev-snp]\nsnp:\n  measurement: [{Measurement}]\n  {field}: [{value}]\n";

    [TestCaseSource(nameof(Fields))]
    public void Listed_value_is_granted(string field, string claim, string value, int bytes, string code) => Granted(Eval(Policy(field, value), SnpInput()));

    [TestCaseSource(nameof(Fields))]
    public void Unlisted_value_is_denied_with_its_code_naming_claim_expected_and_actual(string field, string claim, string value, int bytes, string code)
    {
        var c = SnpClaims();
        var other = Hex(bytes, 0x5a);
        c[claim] = other;
        DeniedBy(Eval(Policy(field, value), SnpInput(c)), code, "snp." + field, claim, $"[{Q(value)}]", Q(other));
    }

    [TestCaseSource(nameof(Fields))]
    public void Absent_claim_is_denied_with_its_code(string field, string claim, string value, int bytes, string code)
    {
        var c = SnpClaims();
        c.Remove(claim);
        DeniedBy(Eval(Policy(field, value), SnpInput(c)), code, "snp." + field, claim, actual: "null");
    }
}

[TestFixture]
public sealed class Snp_vmpl_rule
{
    [Test]
    public void Vmpl_0_is_granted_by_default() => Granted(Eval(SnpPolicy(), SnpInput()));

    [Test]
    public void Vmpl_2_is_denied_with_vmpl_not_allowed_by_default()
    {
        var c = SnpClaims();
        c["vmpl"] = 2;
        DeniedBy(Eval(SnpPolicy(), SnpInput(c)), PolicyCodes.VmplNotAllowed, "snp.vmpl", "vmpl", "[0]", "2");
    }

    [Test]
    public void Listed_vmpl_is_granted()
    {
        var c = SnpClaims();
        c["vmpl"] = 2;
        Granted(Eval(SnpPolicy(snp: "vmpl: [0, 2]"), SnpInput(c)));
    }

    [Test]
    public void Absent_vmpl_is_denied_with_vmpl_not_allowed()
    {
        var c = SnpClaims();
        c.Remove("vmpl");
        DeniedBy(Eval(SnpPolicy(), SnpInput(c)), PolicyCodes.VmplNotAllowed, "snp.vmpl", "vmpl", "[0]", "null");
    }
}

[TestFixture]
public sealed class Snp_minimum_tcb_rules
{
    [TestCase("minReportedTcb", "reported_tcb")]
    [TestCase("minCommittedTcb", "committed_tcb")]
    [TestCase("minLaunchTcb", "launch_tcb")]
    public void Tcb_at_the_minimum_is_granted(string field, string claim) =>
        Granted(Eval(SnpPolicy(snp: $"{field}: {{bootloader: 3, tee: 0, snp: 20, microcode: 209}}"), SnpInput()));

    [TestCase("minReportedTcb", "reported_tcb")]
    [TestCase("minCommittedTcb", "committed_tcb")]
    [TestCase("minLaunchTcb", "launch_tcb")]
    public void Component_below_the_minimum_is_denied_with_tcb_below_minimum_naming_the_component(string field, string claim) =>
        DeniedBy(Eval(SnpPolicy(snp: $"{field}: {{snp: 22, microcode: 200}}"), SnpInput()), PolicyCodes.TcbBelowMinimum, $"snp.{field}.snp", claim + ".snp", "22", "20");

    [Test]
    public void Every_component_below_its_minimum_is_reported()
    {
        var d = Eval(SnpPolicy(snp: "minReportedTcb: {bootloader: 4, snp: 21, microcode: 210}"), SnpInput());
        Assert.That(d.Failures.Select(f => f.Claim), Is.EqualTo(new[] { "reported_tcb.bootloader", "reported_tcb.snp", "reported_tcb.microcode" }));
    }

    [Test]
    public void Minimum_for_a_component_the_claim_lacks_is_denied_with_tcb_below_minimum()
    {
        DeniedBy(Eval(SnpPolicy(snp: "minReportedTcb: {fmc: 1}"), SnpInput()), PolicyCodes.TcbBelowMinimum, "snp.minReportedTcb.fmc", "reported_tcb.fmc", "1", "null");
    }
}
