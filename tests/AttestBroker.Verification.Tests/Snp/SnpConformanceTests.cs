using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using AttestBroker.Testing;
using AttestBroker.Verification.Snp;
using NUnit.Framework;

namespace AttestBroker.Verification.Tests.Snp;

/// <summary>SG-1 (a real Milan report) with its real VCEK and AMD's Milan ASK/ARK is accepted at go-sev-guest's reference time.</summary>
[TestFixture]
public sealed class Sg1_with_its_vcek_and_milan_chain_is_accepted
{
    private VerificationResult _result = null!;

    [SetUp]
    public void Verify() => _result = SnpVerifier.Verify(SnpVectors.ReadReport(), SnpVectors.Sg1Collateral(), SnpVectors.Sg1Context);

    [Test]
    public void Verdict_is_accepted_without_crl_and_not_simulated()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_result.Reasons, Is.Empty);
            Assert.That(_result.IsAccepted, Is.True);
            Assert.That(_result.CrlChecked, Is.False);
            Assert.That(_result.Simulated, Is.False);
            Assert.That(_result.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.CrlNotChecked));
            Assert.That(_result.Notes.Select(n => n.Code), Does.Not.Contain(ReasonCodes.SimulatedRoot));
        });
    }

    [Test]
    public void Claims_carry_every_documented_field()
    {
        var c = _result.Claims;
        static string S(JsonNode? n) => n!.GetValue<string>();
        static long N(JsonNode? n) => n!.GetValue<long>();
        Assert.Multiple(() =>
        {
            Assert.That(N(c["report_version"]), Is.EqualTo(2));
            Assert.That(N(c["guest_svn"]), Is.Zero);
            Assert.That(c["policy"]!.GetValue<ulong>(), Is.EqualTo(0xb0000UL));
            Assert.That(c["debug"]!.GetValue<bool>(), Is.True);
            Assert.That(c["migrate_ma"]!.GetValue<bool>(), Is.False);
            Assert.That(c["smt_allowed"]!.GetValue<bool>(), Is.True);
            Assert.That(S(c["family_id"]), Is.EqualTo(new string('0', 32)));
            Assert.That(S(c["image_id"]), Is.EqualTo(new string('0', 32)));
            Assert.That(N(c["vmpl"]), Is.Zero);
            Assert.That(N(c["signature_algo"]), Is.EqualTo(1));
            Assert.That(c["platform_info"]!.GetValue<ulong>(), Is.EqualTo(1UL));
            Assert.That(S(c["report_data"]), Is.EqualTo("0102030405" + new string('0', 118)));
            Assert.That(S(c["measurement"]), Is.EqualTo("b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"));
            Assert.That(S(c["host_data"]), Is.EqualTo(new string('0', 64)));
            Assert.That(S(c["id_key_digest"]), Is.EqualTo(new string('0', 96)));
            Assert.That(S(c["author_key_digest"]), Is.EqualTo(new string('0', 96)));
            Assert.That(S(c["report_id"]), Is.EqualTo("8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a"));
            Assert.That(S(c["chip_id"]), Is.EqualTo("3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d"));
            Assert.That(S(c["product"]), Is.EqualTo("Milan"));
            Assert.That(S(c["signing_key"]), Is.EqualTo("vcek"));
            foreach (var name in new[] { "current_tcb", "reported_tcb", "committed_tcb", "launch_tcb" })
            {
                var tcb = c[name]!.AsObject();
                Assert.That(N(tcb["bootloader"]), Is.EqualTo(2), name);
                Assert.That(N(tcb["tee"]), Is.Zero, name);
                Assert.That(N(tcb["snp"]), Is.EqualTo(5), name);
                Assert.That(N(tcb["microcode"]), Is.EqualTo(68), name);
                Assert.That(tcb.ContainsKey("fmc"), Is.False, name);
            }
        });
    }

    [Test]
    public void Claim_names_are_exactly_the_documented_set()
    {
        string[] expected =
        [
            "report_version", "guest_svn", "policy", "debug", "migrate_ma", "smt_allowed", "family_id", "image_id", "vmpl",
            "signature_algo", "current_tcb", "reported_tcb", "committed_tcb", "launch_tcb", "platform_info", "report_data",
            "measurement", "host_data", "id_key_digest", "author_key_digest", "report_id", "chip_id", "product", "signing_key",
        ];
        Assert.That(_result.Claims.Names, Is.EquivalentTo(expected));
    }

    [Test]
    public void Json_form_says_accepted_and_crl_not_checked()
    {
        var json = _result.ToJson();
        Assert.Multiple(() =>
        {
            Assert.That(json["verdict"]!.GetValue<string>(), Is.EqualTo("accepted"));
            Assert.That(json["tee"]!.GetValue<string>(), Is.EqualTo("sev-snp"));
            Assert.That(json["crl_checked"]!.GetValue<bool>(), Is.False);
        });
    }
}

/// <summary>With only the VCEK supplied, the embedded, pinned Milan ASK completes the chain.</summary>
[TestFixture]
public sealed class Sg1_with_only_its_vcek_is_accepted_with_the_embedded_ask
{
    [Test]
    public void Accepted()
    {
        var result = SnpVerifier.Verify(SnpVectors.ReadReport(), new SnpCollateral { EndorsementKey = SnpVectors.ReadVcek() }, SnpVectors.Sg1Context);
        Assert.Multiple(() =>
        {
            Assert.That(result.Reasons, Is.Empty);
            Assert.That(result.Claims["product"]!.GetValue<string>(), Is.EqualTo("Milan"));
        });
    }

    [Test]
    public void Accepted_through_the_async_interface_with_a_file_provider()
    {
        var provider = SnpCertificateSource.FromPaths([], Vectors.Path(SnpVectors.Vcek), null);
        var result = new SnpVerifier(provider).VerifyAsync(SnpVectors.ReadReport(), SnpVectors.Sg1Context).GetAwaiter().GetResult();
        Assert.That(result.Reasons, Is.Empty);
    }
}

/// <summary>SG-1 verified after its VCEK's notAfter (2029-09-24T00:55:28Z) is rejected as expired.</summary>
[TestFixture]
public sealed class Sg1_verified_in_2029_after_the_vcek_expires_is_rejected_with_certificate_expired
{
    [Test]
    public void Rejected()
    {
        var context = new VerificationContext(new DateTimeOffset(2029, 9, 25, 0, 0, 0, TimeSpan.Zero), TrustStore.Production);
        var result = SnpVerifier.Verify(SnpVectors.ReadReport(), SnpVectors.Sg1Collateral(), context);
        Assert.Multiple(() =>
        {
            Assert.That(result.IsAccepted, Is.False);
            Assert.That(result.HasReason(ReasonCodes.CertificateExpired), Is.True);
            Assert.That(result.Reasons.Single(r => r.Code == ReasonCodes.CertificateExpired).Message, Does.Contain("SEV-VCEK"));
        });
    }

    [Test]
    public void Before_the_vcek_is_valid_is_rejected_too()
    {
        var context = new VerificationContext(new DateTimeOffset(2022, 9, 23, 0, 0, 0, TimeSpan.Zero), TrustStore.Production);
        var result = SnpVerifier.Verify(SnpVectors.ReadReport(), SnpVectors.Sg1Collateral(), context);
        Assert.That(result.HasReason(ReasonCodes.CertificateExpired), Is.True);
    }
}

/// <summary>AMD's real VCEK has serial number 0 and a raw (unwrapped) hwID; both are accepted.</summary>
[TestFixture]
public sealed class Real_vcek_quirks_are_accepted
{
    [Test]
    public void Serial_zero_certificate_loads_in_dotnet()
    {
        var vcek = SnpVectors.ReadVcek();
        Assert.Multiple(() =>
        {
            Assert.That(vcek.SerialNumber.TrimStart('0'), Is.Empty);
            Assert.That(vcek.GetNameInfo(X509NameType.SimpleName, false), Is.EqualTo("SEV-VCEK"));
        });
    }

    [Test]
    public void Extensions_are_read_from_the_raw_hwid_form()
    {
        var ext = AmdCertificateExtensions.Read(SnpVectors.ReadVcek());
        Assert.Multiple(() =>
        {
            Assert.That(ext.ProductName, Is.EqualTo("Milan-B0"));
            Assert.That(ext.BootLoaderSpl, Is.EqualTo(2));
            Assert.That(ext.TeeSpl, Is.Zero);
            Assert.That(ext.SnpSpl, Is.EqualTo(5));
            Assert.That(ext.MicrocodeSpl, Is.EqualTo(68));
            Assert.That(ext.FmcSpl, Is.Null);
            Assert.That(ext.CspId, Is.Null);
            Assert.That(ext.HwId!.Value.ToArray(), Is.EqualTo(SnpVectors.ChipId(SnpVectors.ReadReport())));
        });
    }
}
