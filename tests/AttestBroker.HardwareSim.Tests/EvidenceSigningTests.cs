using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim.Tests;

/// <summary>
/// Leaves and platform keys are made once per input and reused; per-evidence signatures are reproducible with a
/// numeric seed and come from the platform's ECDSA (fresh nonces) with a random one, and verify either way.
/// </summary>
[TestFixture]
public sealed class Evidence_signing_reuses_leaves_and_keeps_seeded_output_reproducible
{
    private static readonly byte[] ReportData = Enumerable.Range(0, 64).Select(i => (byte)(i * 3)).ToArray();

    [Test]
    public void A_pck_certificate_is_issued_once_per_platform_and_differs_between_platforms()
    {
        var pki = SimTestEnvironment.Pki;
        var platform = new TdxPlatform();
        var other = new TdxPlatform { PceSvn = (ushort)(platform.PceSvn + 1) };
        using (Assert.EnterMultipleScope())
        {
            Assert.That(pki.IssuePck(platform), Is.SameAs(pki.IssuePck(new TdxPlatform())), "the same platform gets the same certificate object");
            Assert.That(pki.IssuePck(other).Certificate.RawData, Is.Not.EqualTo(pki.IssuePck(platform).Certificate.RawData), "a platform with another PCESVN gets its own certificate");
            Assert.That(pki.AttestationKey(platform), Is.SameAs(pki.AttestationKey(new TdxPlatform())));
        }
    }

    [Test]
    public void A_seeded_pki_makes_the_same_quote_byte_for_byte()
    {
        using var a = SimPki.Create(42, []);
        using var b = SimPki.Create(42, []);
        var options = new EvidenceOptions { ReportData = ReportData };
        var first = SimEvidence.Create(a, SimProfile.Default(), TeeKind.Tdx, options);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(SimEvidence.Create(a, SimProfile.Default(), TeeKind.Tdx, options), Is.EqualTo(first), "twice from the same PKI object");
            Assert.That(SimEvidence.Create(b, SimProfile.Default(), TeeKind.Tdx, options), Is.EqualTo(first), "from another PKI with the same seed");
        }
    }

    [TestCase(TeeKind.Tdx)]
    [TestCase(TeeKind.SevSnp)]
    public async Task An_unseeded_pki_signs_each_piece_of_evidence_afresh_and_both_verify(TeeKind tee)
    {
        var options = new EvidenceOptions { ReportData = ReportData };
        var (first, firstResult) = await SimTestEnvironment.MakeAndVerifyAsync(tee, SimProfile.Default(), options);
        var (second, secondResult) = await SimTestEnvironment.MakeAndVerifyAsync(tee, SimProfile.Default(), options);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(second, Is.Not.EqualTo(first), "random ECDSA nonces: the signatures differ");
            Assert.That(firstResult.IsAccepted, Is.True, SimTestEnvironment.Describe(firstResult));
            Assert.That(secondResult.IsAccepted, Is.True, SimTestEnvironment.Describe(secondResult));
        }
    }

    [Test]
    public async Task A_bad_signature_fault_is_still_a_bad_signature_with_the_platform_signer()
    {
        var options = new EvidenceOptions { ReportData = ReportData };
        options.Faults.Add(Faults.SimFault.BadQuoteSignature);
        var (_, result) = await SimTestEnvironment.MakeAndVerifyAsync(TeeKind.Tdx, SimProfile.Default(), options);

        Assert.That(result.IsAccepted, Is.False);
        Assert.That(result.Reasons.Select(r => r.Code), Does.Contain(AttestBroker.Verification.ReasonCodes.QuoteSignatureInvalid));
    }
}
