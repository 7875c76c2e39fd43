using System.Text.Json.Nodes;
using AttestBroker.Testing;
using AttestBroker.Verification.Tdx;
using NUnit.Framework;
using static AttestBroker.Verification.Tests.Tdx.TdxVectors;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>
/// TCB level, TDX module and QE identity rules on the real GT-2 quote, with TCB Info / QE Identity contents changed
/// one rule at a time and signed by a test signer the test trusts explicitly.
/// </summary>
[TestFixture]
public sealed class Tcb_evaluation_follows_the_qvl_rules
{
    private SimulatedTcbSigner _signer = null!;
    private JsonNode _tcbInfo = null!;
    private JsonNode _qeIdentity = null!;

    [OneTimeSetUp]
    public void Load()
    {
        _signer = SimulatedTcbSigner.Create();
        _tcbInfo = JsonNode.Parse(Gt2Collateral.Document(Gt2Collateral.Response(Gt2Collateral.TcbInfoFile)).SignedText)!;
        _qeIdentity = JsonNode.Parse(Gt2Collateral.Document(Gt2Collateral.Response(Gt2Collateral.QeIdentityFile)).SignedText)!;
    }

    [OneTimeTearDown]
    public void Dispose() => _signer.Dispose();

    private VerificationResult Verify(Action<JsonNode>? changeTcb = null, Action<JsonNode>? changeQe = null)
    {
        var tcb = _tcbInfo.DeepClone();
        var qe = _qeIdentity.DeepClone();
        changeTcb?.Invoke(tcb);
        changeQe?.Invoke(qe);
        var collateral = Gt2Collateral.CrlsAndCertificates.Merge(new TdxCollateral(
            [_signer.Sign(TdxCollateralKind.TcbInfo, tcb)], [_signer.Sign(TdxCollateralKind.QeIdentity, qe)], [_signer.RootCrl(Gt2At)], []));
        return TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, new StaticCollateral(collateral), _signer.Trust);
    }

    private static JsonNode Level(JsonNode tcb, int i) => tcb["tcbLevels"]![i]!;

    private static JsonNode Module(JsonNode tcb, string id) => tcb["tdxModuleIdentities"]!.AsArray().First(m => (string?)m!["id"] == id)!;

    [Test]
    public void Unchanged_contents_under_the_trusted_test_signer_are_accepted_as_simulated()
    {
        var r = Verify();
        Assert.That(r.IsAccepted, Is.True, Describe(r));
        Assert.That(r.Simulated, Is.True);
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("UpToDate"));
    }

    [Test]
    public void Revoked_platform_level_gives_tcb_revoked()
    {
        var r = Verify(t => Level(t, 0)["tcbStatus"] = "Revoked");
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.TcbRevoked }), Describe(r));
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("Revoked"));
    }

    [Test]
    public void Sw_hardening_needed_is_a_claim_with_its_advisories_not_a_failure()
    {
        var r = Verify(t =>
        {
            Level(t, 0)["tcbStatus"] = "SWHardeningNeeded";
            Level(t, 0)["advisoryIDs"] = new JsonArray("INTEL-SA-00615", "INTEL-SA-00657");
        });
        Assert.That(r.IsAccepted, Is.True, Describe(r));
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("SWHardeningNeeded"));
        Assert.That(r.Claims["advisory_ids"]!.AsArray().Select(a => (string?)a), Is.EqualTo(new[] { "INTEL-SA-00615", "INTEL-SA-00657" }));
    }

    [Test]
    public void Tee_tcb_svn_below_the_first_level_selects_the_next_level_out_of_date()
    {
        // Level 0 needs TDX late microcode SVN 5 (TEE_TCB_SVN[2] is 4); level 1 needs 2.
        var r = Verify(t => Level(t, 0)["tcb"]!["tdxtcbcomponents"]![2]!["svn"] = 5);
        Assert.That(r.IsAccepted, Is.True, Describe(r));
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("OutOfDate"));
        Assert.That(r.Claims["advisory_ids"]!.AsArray().Select(a => (string?)a), Does.Contain("INTEL-SA-01036"));
    }

    [Test]
    public void Tee_tcb_svn_bytes_0_and_1_are_not_compared_to_the_level_when_the_module_major_is_non_zero()
    {
        // GT-2's TEE_TCB_SVN[0] is 11 and [1] is 1: a level asking for 99 in those bytes still matches.
        var r = Verify(t =>
        {
            Level(t, 0)["tcb"]!["tdxtcbcomponents"]![0]!["svn"] = 99;
            Level(t, 0)["tcb"]!["tdxtcbcomponents"]![1]!["svn"] = 99;
        });
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("UpToDate"), Describe(r));
    }

    [Test]
    public void Pck_svns_below_every_level_give_tcb_level_not_supported()
    {
        var r = Verify(t =>
        {
            foreach (var level in t["tcbLevels"]!.AsArray())
            {
                level!["tcb"]!["pcesvn"] = 14;
            }
        });
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.TcbLevelNotSupported }), Describe(r));
        Assert.That(r.Claims.Contains("tcb_status"), Is.False);
    }

    [Test]
    public void Out_of_date_module_downgrades_up_to_date_and_tee_tcb_svn2_advises_relaunch()
    {
        // Module TDX_01 needs ISVSVN 13 for UpToDate: TEE_TCB_SVN[0] = 11 is OutOfDate, TEE_TCB_SVN2[0] = 13 is not.
        var r = Verify(t => Module(t, "TDX_01")["tcbLevels"] = new JsonArray(
            new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 13 }, ["tcbDate"] = "2025-11-13T00:00:00Z", ["tcbStatus"] = "UpToDate" },
            new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 4 }, ["tcbDate"] = "2024-03-13T00:00:00Z", ["tcbStatus"] = "OutOfDate", ["advisoryIDs"] = new JsonArray("INTEL-SA-01099") }));
        Assert.That(r.IsAccepted, Is.True, Describe(r));
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("TDRelaunchAdvised"));
        Assert.That(r.Claims["advisory_ids"]!.AsArray().Select(a => (string?)a), Does.Contain("INTEL-SA-01099"));
    }

    [Test]
    public void Relaunch_is_not_advised_when_the_qe_is_out_of_date_too()
    {
        var r = Verify(
            t => Module(t, "TDX_01")["tcbLevels"] = new JsonArray(
                new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 13 }, ["tcbStatus"] = "UpToDate" },
                new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 4 }, ["tcbStatus"] = "OutOfDate" }),
            q => q["tcbLevels"]![0]!["tcbStatus"] = "OutOfDate");
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("OutOfDate"), Describe(r));
    }

    [Test]
    public void Out_of_date_module_on_a_configuration_needed_level_advises_relaunch_with_configuration()
    {
        var r = Verify(t =>
        {
            Level(t, 0)["tcbStatus"] = "ConfigurationNeeded";
            Module(t, "TDX_01")["tcbLevels"] = new JsonArray(
                new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 13 }, ["tcbStatus"] = "UpToDate" },
                new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 4 }, ["tcbStatus"] = "OutOfDate" });
        });
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("TDRelaunchAdvisedConfigurationNeeded"), Describe(r));
    }

    [TestCase("OutOfDate", "UpToDate", "TDRelaunchAdvised")]
    [TestCase("OutOfDate", "SWHardeningNeeded", "TDRelaunchAdvised")]
    [TestCase("OutOfDate", "ConfigurationNeeded", "TDRelaunchAdvisedConfigurationNeeded")]
    [TestCase("OutOfDate", "ConfigurationAndSWHardeningNeeded", "TDRelaunchAdvisedConfigurationNeeded")]
    [TestCase("OutOfDateConfigurationNeeded", "UpToDate", "TDRelaunchAdvisedConfigurationNeeded")]
    [TestCase("OutOfDate", "OutOfDate", "OutOfDate")]
    [TestCase("OutOfDate", "Revoked", "OutOfDate")]
    [TestCase("OutOfDate", null, "OutOfDate")]
    [TestCase("UpToDate", "UpToDate", "UpToDate")]
    [TestCase("ConfigurationNeeded", "UpToDate", "ConfigurationNeeded")]
    [TestCase("Revoked", "UpToDate", "Revoked")]
    public void Relaunch_advice_only_changes_an_out_of_date_launch_status(string launch, string? current, string expected)
    {
        Assert.That(TdxTcbEvaluator.CheckForRelaunch(launch, current), Is.EqualTo(expected));
    }

    [TestCase("UpToDate", "OutOfDate", "OutOfDate")]
    [TestCase("SWHardeningNeeded", "OutOfDate", "OutOfDate")]
    [TestCase("ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded")]
    [TestCase("ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded")]
    [TestCase("OutOfDate", "UpToDate", "OutOfDate")]
    [TestCase("UpToDate", "Revoked", "Revoked")]
    [TestCase("UpToDate", "UpToDate", "UpToDate")]
    [TestCase("ConfigurationNeeded", "SWHardeningNeeded", "ConfigurationNeeded")]
    public void Component_status_converges_into_the_platform_status_as_qvl_does(string platform, string component, string expected)
    {
        Assert.That(TdxTcbEvaluator.Converge(platform, component), Is.EqualTo(expected));
    }

    [Test]
    public void Out_of_date_module_without_a_better_tee_tcb_svn2_stays_out_of_date()
    {
        var r = Verify(t => Module(t, "TDX_01")["tcbLevels"] = new JsonArray(
            new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 14 }, ["tcbStatus"] = "UpToDate" },
            new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 4 }, ["tcbStatus"] = "OutOfDate" }));
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("OutOfDate"), Describe(r));
    }

    [Test]
    public void Module_below_every_module_level_gives_tcb_level_not_supported()
    {
        var r = Verify(t => Module(t, "TDX_01")["tcbLevels"] = new JsonArray(new JsonObject { ["tcb"] = new JsonObject { ["isvsvn"] = 20 }, ["tcbStatus"] = "UpToDate" }));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.TcbLevelNotSupported }), Describe(r));
    }

    [Test]
    public void Missing_module_identity_for_the_major_version_gives_tdx_module_mismatch()
    {
        var r = Verify(t => Module(t, "TDX_01")["id"] = "TDX_09");
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.TdxModuleMismatch }), Describe(r));
    }

    [Test]
    public void Module_signer_other_than_mrsignerseam_gives_tdx_module_mismatch()
    {
        var r = Verify(t => Module(t, "TDX_01")["mrsigner"] = new string('1', 96));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.TdxModuleMismatch }), Describe(r));
    }

    [Test]
    public void Module_attributes_not_matching_seamattributes_under_the_mask_give_tdx_module_mismatch()
    {
        var r = Verify(t => Module(t, "TDX_01")["attributes"] = "0100000000000000");
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.TdxModuleMismatch }), Describe(r));
    }

    [Test]
    public void Qe_mrsigner_other_than_the_identity_gives_qe_identity_mismatch()
    {
        var r = Verify(changeQe: q => q["mrsigner"] = new string('A', 64));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.QeIdentityMismatch }), Describe(r));
    }

    [Test]
    public void Qe_isvprodid_other_than_the_identity_gives_qe_identity_mismatch()
    {
        var r = Verify(changeQe: q => q["isvprodid"] = 1);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.QeIdentityMismatch }), Describe(r));
    }

    [Test]
    public void Qe_attributes_not_matching_under_the_mask_give_qe_identity_mismatch()
    {
        var r = Verify(changeQe: q => q["attributes"] = "13000000000000000000000000000000");
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.QeIdentityMismatch }), Describe(r));
    }

    [Test]
    public void Qe_miscselect_not_matching_under_the_mask_gives_qe_identity_mismatch()
    {
        var r = Verify(changeQe: q => q["miscselect"] = "01000000");
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.QeIdentityMismatch }), Describe(r));
    }

    [Test]
    public void Qe_attribute_bits_outside_the_mask_are_ignored()
    {
        // GT-2's QE ATTRIBUTES are 15..., the identity says 11... under mask FB...: bit 2 is masked out.
        var r = Verify();
        Assert.That(Codes(r), Does.Not.Contain(ReasonCodes.QeIdentityMismatch));
    }

    [Test]
    public void Qe_isvsvn_below_every_level_gives_qe_tcb_not_supported()
    {
        var r = Verify(changeQe: q => q["tcbLevels"]![0]!["tcb"]!["isvsvn"] = 8);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.QeTcbNotSupported }), Describe(r));
    }

    [Test]
    public void Revoked_qe_level_gives_qe_tcb_revoked()
    {
        var r = Verify(changeQe: q => q["tcbLevels"]![0]!["tcbStatus"] = "Revoked");
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.QeTcbRevoked }), Describe(r));
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("Revoked"));
    }

    [Test]
    public void Out_of_date_qe_downgrades_the_final_status_without_failing()
    {
        var r = Verify(changeQe: q => q["tcbLevels"]![0]!["tcbStatus"] = "OutOfDate");
        Assert.That(r.IsAccepted, Is.True, Describe(r));
        Assert.That(Claim(r, "qe_tcb_status"), Is.EqualTo("OutOfDate"));
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("OutOfDate"));
    }

    [Test]
    public void Configuration_needed_platform_with_out_of_date_qe_becomes_out_of_date_configuration_needed()
    {
        var r = Verify(t => Level(t, 0)["tcbStatus"] = "ConfigurationNeeded", q => q["tcbLevels"]![0]!["tcbStatus"] = "OutOfDate");
        Assert.That(Claim(r, "tcb_status"), Is.EqualTo("OutOfDateConfigurationNeeded"), Describe(r));
    }

    [TestCase("id", "SGX")]
    [TestCase("version", 2)]
    [TestCase("fmspc", "50806F000000")]
    [TestCase("pceId", "0001")]
    public void Tcb_info_of_another_kind_or_platform_gives_collateral_mismatch(string member, object value)
    {
        var r = Verify(t => t[member] = JsonValue.Create(value));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralMismatch }), Describe(r));
        Assert.That(r.Claims.Contains("tcb_status"), Is.False);
    }

    [Test]
    public void Unrecognised_tcb_status_in_a_signed_tcb_info_gives_collateral_invalid()
    {
        var r = Verify(t => Level(t, 0)["tcbStatus"] = "Fine");
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralInvalid }), Describe(r));
        Assert.That(r.Claims.Contains("tcb_status"), Is.False);
    }

    [Test]
    public void Platform_only_status_on_a_qe_level_gives_collateral_invalid()
    {
        var r = Verify(changeQe: q => q["tcbLevels"]![0]!["tcbStatus"] = "SWHardeningNeeded");
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralInvalid }), Describe(r));
    }

    [TestCase("id", "QE")]
    [TestCase("version", 1)]
    public void Qe_identity_of_another_kind_gives_collateral_mismatch(string member, object value)
    {
        var r = Verify(changeQe: q => q[member] = JsonValue.Create(value));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralMismatch }), Describe(r));
    }
}
