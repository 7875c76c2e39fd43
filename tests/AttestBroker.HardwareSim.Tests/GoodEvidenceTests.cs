using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;
using AttestBroker.Verification;

namespace AttestBroker.HardwareSim.Tests;

[TestFixture]
public sealed class Good_tdx_evidence_is_accepted_with_the_simulated_roots_and_carries_the_claims_put_in
{
    private static readonly byte[] ReportData = Convert.FromHexString("a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90");

    private static IEnumerable<TestCaseData> Shapes()
    {
        yield return new TestCaseData((ushort)4, TdBodyKind.Td10).SetName("Quote_v4_TD10_is_accepted_with_its_claims");
        yield return new TestCaseData((ushort)5, TdBodyKind.Td10).SetName("Quote_v5_TD10_body_is_accepted_with_its_claims");
        yield return new TestCaseData((ushort)5, TdBodyKind.Td15).SetName("Quote_v5_TD15_body_is_accepted_with_its_claims");
    }

    [TestCaseSource(nameof(Shapes))]
    public async Task Quote_shape_is_accepted(ushort version, TdBodyKind kind)
    {
        var profile = SimProfile.Default();
        var options = new EvidenceOptions { QuoteVersion = version, TdBodyKind = kind, ReportData = ReportData };
        var (evidence, result) = await SimTestEnvironment.MakeAndVerifyAsync(TeeKind.Tdx, profile, options);

        Assert.That(result.IsAccepted, Is.True, SimTestEnvironment.Describe(result));
        Assert.That(result.Simulated, Is.True);
        Assert.That(result.CrlChecked, Is.True);
        var body = TdxQuoteBuilder.EffectiveBody(SimEvidence.TdxRequest(profile, options));
        var c = result.Claims;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(c["quote_version"]!.GetValue<long>(), Is.EqualTo(version));
            Assert.That(c["report_data"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(ReportData)));
            Assert.That(c["mr_td"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(body.MrTd)));
            Assert.That(c["rtmr0"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(body.Rtmrs[0])));
            Assert.That(c["rtmr2"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(body.Rtmrs[2])));
            Assert.That(c["mr_seam"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(profile.TdxPlatform.MrSeam)));
            Assert.That(c["tee_tcb_svn"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(profile.TdxPlatform.TeeTcbSvn)));
            Assert.That(c["debug"]!.GetValue<bool>(), Is.False);
            Assert.That(c["tcb_status"]!.GetValue<string>(), Is.EqualTo("UpToDate"));
            Assert.That(c["qe_tcb_status"]!.GetValue<string>(), Is.EqualTo("UpToDate"));
            Assert.That(c["fmspc"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(profile.TdxPlatform.Fmspc)));
            Assert.That(c.Contains("mr_service_td"), Is.EqualTo(kind == TdBodyKind.Td15));
            Assert.That(evidence.Length, Is.GreaterThan(1020));
        }
    }

    [Test]
    public async Task Quote_is_rejected_with_untrusted_root_without_the_simulated_roots()
    {
        var (_, result) = await SimTestEnvironment.MakeAndVerifyAsync(TeeKind.Tdx, SimProfile.Default(), new EvidenceOptions(), trustSimulator: false);
        Assert.That(result.IsAccepted, Is.False);
        Assert.That(result.HasReason(ReasonCodes.UntrustedRoot), Is.True, SimTestEnvironment.Describe(result));
        Assert.That(result.Simulated, Is.False);
    }
}

[TestFixture]
public sealed class Good_snp_evidence_is_accepted_with_the_simulated_roots_and_carries_the_claims_put_in
{
    private static readonly byte[] ReportData = [.. Enumerable.Range(0, 64).Select(i => (byte)(255 - i))];

    private static IEnumerable<TestCaseData> Shapes()
    {
        foreach (var product in AmdProducts.All)
        {
            foreach (var key in new[] { SnpSigningKey.Vcek, SnpSigningKey.Vlek })
            {
                foreach (var version in new uint[] { 3, 5 })
                {
                    yield return new TestCaseData(product, key, version).SetName($"Report_v{version}_from_{product}_signed_by_{key}_is_accepted_with_its_claims");
                }
            }
        }

        yield return new TestCaseData(AmdProduct.Milan, SnpSigningKey.Vcek, 2u).SetName("Report_v2_from_Milan_signed_by_Vcek_is_accepted_with_its_claims");
    }

    [TestCaseSource(nameof(Shapes))]
    public async Task Report_shape_is_accepted(AmdProduct product, SnpSigningKey key, uint version)
    {
        var profile = SimProfile.Default();
        var options = new EvidenceOptions { Product = product, SigningKey = key, SnpReportVersion = version, ReportData = ReportData };
        var (_, result) = await SimTestEnvironment.MakeAndVerifyAsync(TeeKind.SevSnp, profile, options);

        Assert.That(result.IsAccepted, Is.True, SimTestEnvironment.Describe(result));
        Assert.That(result.Simulated, Is.True);
        Assert.That(result.CrlChecked, Is.True);
        var request = SimEvidence.SnpRequest(profile, options);
        var c = result.Claims;
        var tcb = c["reported_tcb"]!;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(c["report_version"]!.GetValue<long>(), Is.EqualTo(version));
            Assert.That(c["product"]!.GetValue<string>(), Is.EqualTo(product.KdsName()));
            Assert.That(c["signing_key"]!.GetValue<string>(), Is.EqualTo(key == SnpSigningKey.Vlek ? "vlek" : "vcek"));
            Assert.That(c["report_data"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(ReportData)));
            Assert.That(c["measurement"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(request.Guest.Measurement)));
            Assert.That(c["chip_id"]!.GetValue<string>(), Is.EqualTo(Convert.ToHexStringLower(request.Platform.ChipId)));
            Assert.That(c["vmpl"]!.GetValue<long>(), Is.Zero);
            Assert.That(c["debug"]!.GetValue<bool>(), Is.False);
            Assert.That(tcb["bootloader"]!.GetValue<long>(), Is.EqualTo(request.Platform.ReportedTcb.Bootloader));
            Assert.That(tcb["snp"]!.GetValue<long>(), Is.EqualTo(request.Platform.ReportedTcb.Snp));
            Assert.That(tcb["microcode"]!.GetValue<long>(), Is.EqualTo(request.Platform.ReportedTcb.Microcode));
        }
    }

    [TestCase(AmdProduct.Milan)]
    [TestCase(AmdProduct.Turin)]
    public async Task Report_is_rejected_with_untrusted_root_without_the_simulated_roots(AmdProduct product)
    {
        var (_, result) = await SimTestEnvironment.MakeAndVerifyAsync(TeeKind.SevSnp, SimProfile.Default(), new EvidenceOptions { Product = product }, trustSimulator: false);
        Assert.That(result.IsAccepted, Is.False);
        Assert.That(result.HasReason(ReasonCodes.UntrustedRoot), Is.True, SimTestEnvironment.Describe(result));
    }
}
