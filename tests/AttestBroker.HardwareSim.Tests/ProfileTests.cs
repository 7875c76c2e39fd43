using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;
using CsCheck;

namespace AttestBroker.HardwareSim.Tests;

[TestFixture]
public sealed class Platform_profiles_are_read_from_yaml
{
    private const string Yaml = """
        name: gpu-node-a
        tdx:
          quote_version: 5
          td_version: "1.5"
          fmspc: 00a06f000000
          pce_svn: 14
          sgx_tcb_components: [5, 5, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0]
          td:
            mr_td: 111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111
            td_attributes: "0x10000000"
            report_data: abcd
        snp:
          product: genoa
          signing_key: vlek
          report_version: 5
          reported_tcb: { bootloader: 9, tee: 0, snp: 23, microcode: 72 }
          guest:
            measurement: 222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222
            policy: "0x30000"
            vmpl: 0
            host_data: 3333333333333333333333333333333333333333333333333333333333333333
        """;

    [Test]
    public void Every_section_of_a_profile_is_applied()
    {
        var p = SimProfile.Parse(Yaml);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(p.Name, Is.EqualTo("gpu-node-a"));
            Assert.That(p.QuoteVersion, Is.EqualTo(5));
            Assert.That(p.TdBodyKind, Is.EqualTo(TdBodyKind.Td15));
            Assert.That(Convert.ToHexStringLower(p.TdxPlatform.Fmspc), Is.EqualTo("00a06f000000"));
            Assert.That(p.TdxPlatform.PceSvn, Is.EqualTo(14));
            Assert.That(p.Td.MrTd, Is.All.EqualTo(0x11));
            Assert.That(p.Td.TdAttributes, Is.EqualTo(0x10000000UL));
            Assert.That(p.Td.ReportData[..2], Is.EqualTo(new byte[] { 0xAB, 0xCD }));
            Assert.That(p.SnpPlatform.Product, Is.EqualTo(AmdProduct.Genoa));
            Assert.That(p.SnpSigningKey, Is.EqualTo(SnpSigningKey.Vlek));
            Assert.That(p.SnpReportVersion, Is.EqualTo(5));
            Assert.That(p.SnpPlatform.ReportedTcb, Is.EqualTo(new SnpTcb(9, 0, 23, 72)));
            Assert.That(p.SnpGuest.Measurement, Is.All.EqualTo(0x22));
            Assert.That(p.SnpGuest.Policy, Is.EqualTo(0x30000UL));
        }
    }

    [Test]
    public async Task Evidence_from_a_profile_verifies_with_collateral_for_that_profile()
    {
        var p = SimProfile.Parse(Yaml);
        var (_, tdx) = await SimTestEnvironment.MakeAndVerifyAsync(TeeKind.Tdx, p, new EvidenceOptions());
        Assert.That(tdx.IsAccepted, Is.True, SimTestEnvironment.Describe(tdx));
        Assert.That(tdx.Claims["fmspc"]!.GetValue<string>(), Is.EqualTo("00a06f000000"));
        var (_, snp) = await SimTestEnvironment.MakeAndVerifyAsync(TeeKind.SevSnp, p, new EvidenceOptions());
        Assert.That(snp.IsAccepted, Is.True, SimTestEnvironment.Describe(snp));
        Assert.That(snp.Claims["signing_key"]!.GetValue<string>(), Is.EqualTo("vlek"));
    }

    [Test]
    public void The_printed_template_reads_back_to_the_same_profile()
    {
        var original = SimProfile.Default();
        var back = SimProfile.Parse(original.ToYaml());
        Assert.That(back.ToYaml(), Is.EqualTo(original.ToYaml()));
    }

    [TestCase("tdx:\n  fmspc: 0011", "tdx.fmspc")]
    [TestCase("tdx:\n  quote_version: 3", "quote_version")]
    [TestCase("snp:\n  product: naples", "naples")]
    [TestCase("snp:\n  guest:\n    vmpl: 4", "vmpl")]
    [TestCase("tdx:\n  td:\n    td_attributes: banana", "td_attributes")]
    [TestCase("tdx: [1, 2", "line 1")]
    public void A_bad_profile_is_refused_naming_the_field(string yaml, string named)
    {
        var ex = Assert.Throws<SimulatorException>(() => SimProfile.Parse(yaml));
        Assert.That(ex!.Message, Does.Contain(named));
    }
}

/// <summary>Property: random platforms and workloads round-trip through the writer, the signature and the verifier with the same claims.</summary>
[TestFixture]
public sealed class Random_profiles_round_trip_through_the_verifiers
{
    private static readonly Gen<byte[]> B48 = Gen.Byte.Array[48];

    [Test]
    public void Random_tdx_workloads_verify_with_the_claims_put_in()
    {
        var gen = Gen.Select(B48, B48, Gen.Byte.Array[64], Gen.Int[0, 2], Gen.ULong[0, 0xFFFF_FFFFUL], B48);
        gen.Sample((mrtd, rtmr3, reportData, shape, attrs, owner) =>
        {
            var profile = SimProfile.Default();
            profile.Td.MrTd = mrtd;
            profile.Td.Rtmrs[3] = rtmr3;
            profile.Td.MrOwner = owner;
            profile.Td.TdAttributes = attrs;
            var options = new EvidenceOptions
            {
                ReportData = reportData,
                QuoteVersion = shape == 0 ? (ushort)4 : (ushort)5,
                TdBodyKind = shape == 2 ? TdBodyKind.Td15 : TdBodyKind.Td10,
            };
            var (_, r) = SimTestEnvironment.MakeAndVerifyAsync(TeeKind.Tdx, profile, options).GetAwaiter().GetResult();
            return r.IsAccepted
                && r.Claims["mr_td"]!.GetValue<string>() == Convert.ToHexStringLower(mrtd)
                && r.Claims["rtmr3"]!.GetValue<string>() == Convert.ToHexStringLower(rtmr3)
                && r.Claims["mr_owner"]!.GetValue<string>() == Convert.ToHexStringLower(owner)
                && r.Claims["report_data"]!.GetValue<string>() == Convert.ToHexStringLower(reportData)
                && r.Claims["debug"]!.GetValue<bool>() == ((attrs & 1) != 0);
        }, iter: 12, threads: 1);
    }

    [Test]
    public void Random_snp_guests_verify_with_the_claims_put_in()
    {
        var gen = Gen.Select(B48, Gen.Byte.Array[32], Gen.Byte.Array[64], Gen.Int[0, 2], Gen.Bool, Gen.UInt[0, 3], Gen.Byte[0, 255]);
        gen.Sample((measurement, hostData, reportData, productIndex, vlek, vmpl, snpSpl) =>
        {
            var profile = SimProfile.Default();
            profile.SnpGuest.Measurement = measurement;
            profile.SnpGuest.HostData = hostData;
            profile.SnpGuest.Vmpl = vmpl;
            profile.SnpPlatform.ReportedTcb = profile.SnpPlatform.ReportedTcb with { Snp = snpSpl };
            var options = new EvidenceOptions
            {
                ReportData = reportData,
                Product = AmdProducts.All[productIndex],
                SigningKey = vlek ? SnpSigningKey.Vlek : SnpSigningKey.Vcek,
            };
            var (_, r) = SimTestEnvironment.MakeAndVerifyAsync(TeeKind.SevSnp, profile, options).GetAwaiter().GetResult();
            return r.IsAccepted
                && r.Claims["measurement"]!.GetValue<string>() == Convert.ToHexStringLower(measurement)
                && r.Claims["host_data"]!.GetValue<string>() == Convert.ToHexStringLower(hostData)
                && r.Claims["report_data"]!.GetValue<string>() == Convert.ToHexStringLower(reportData)
                && r.Claims["vmpl"]!.GetValue<long>() == vmpl
                && r.Claims["reported_tcb"]!["snp"]!.GetValue<long>() == snpSpl
                && r.Claims["product"]!.GetValue<string>() == AmdProducts.All[productIndex].KdsName();
        }, iter: 12, threads: 1);
    }
}
