using NUnit.Framework;
using static AttestBroker.Policy.Tests.Asserts;
using static AttestBroker.Policy.Tests.TestData;

namespace AttestBroker.Policy.Tests;

[TestFixture]
public sealed class Azure_attestation_rule
{
    // Claims from an Azure Attestation token: the broker checked no CRL itself (crl_checked false).
    private static PolicyInput AzureTdx() => TdxInput() with { AzureAttestation = true, CrlChecked = false };

    [Test]
    public void Claims_from_an_azure_token_are_denied_with_azure_attestation_not_allowed_by_default()
    {
        var d = Eval(TdxPolicy(), AzureTdx());
        Assert.That(d.Granted, Is.False);
        var f = d.Failures.Single(x => x.Code == PolicyCodes.AzureAttestationNotAllowed);
        Assert.Multiple(() =>
        {
            Assert.That(f.Rule, Is.EqualTo("allowAzureAttestation"));
            Assert.That(f.Claim, Is.EqualTo("evidence_source"));
            Assert.That(Json(f.Actual), Is.EqualTo(Q("azure_attestation")));
            // Without the opt-in the unchecked CRL is reported too: every failing rule is listed.
            Assert.That(d.Failures.Select(x => x.Code), Does.Contain(PolicyCodes.CrlNotChecked));
        });
    }

    [Test]
    public void Allowing_unchecked_crls_alone_does_not_accept_an_azure_token() =>
        DeniedBy(Eval(TdxPolicy("allowUncheckedCrl: true"), AzureTdx()), PolicyCodes.AzureAttestationNotAllowed, "allowAzureAttestation", "evidence_source", Q("tee_evidence"), Q("azure_attestation"));

    [Test]
    public void Claims_from_an_azure_token_are_granted_when_the_policy_sets_allowAzureAttestation() =>
        Granted(Eval(TdxPolicy("allowAzureAttestation: true"), AzureTdx()));

    [Test]
    public void The_opt_in_does_not_excuse_unchecked_crls_of_evidence_the_broker_verified_itself() =>
        DeniedBy(Eval(TdxPolicy("allowAzureAttestation: true"), TdxInput() with { CrlChecked = false }), PolicyCodes.CrlNotChecked, "allowUncheckedCrl", "crl_checked", "true", "false");

    [Test]
    public void The_opt_in_still_applies_every_measurement_rule()
    {
        var c = TdxClaims();
        c["mr_td"] = new string('f', 96);
        var d = Eval(TdxPolicy("allowAzureAttestation: true"), AzureTdx() with { Claims = c });
        Assert.That(d.Failures.Select(f => (f.Code, f.Rule)), Is.EqualTo(new[] { (PolicyCodes.MeasurementMismatch, "tdx.mrTd") }));
    }

    [Test]
    public void AllowAzureAttestation_must_be_a_boolean() =>
        Assert.That(() => ReleasePolicy.Parse(TdxPolicy("allowAzureAttestation: yes")), Throws.TypeOf<PolicyFormatException>().With.Message.Contains("allowAzureAttestation"));
}
