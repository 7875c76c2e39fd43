using AttestBroker.Testing;
using NUnit.Framework;
using static AttestBroker.Verification.Tests.Tdx.TdxVectors;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>GT-1 at 2023-07-01 with go-tdx-guest's collateral: every check passes except the TCB level (VECTORS.md §3).</summary>
[TestFixture]
public sealed class Gt1_with_go_tdx_guest_collateral_is_rejected_only_for_tcb_level_not_supported
{
    private VerificationResult _result = null!;

    [OneTimeSetUp]
    public void Verify() => _result = TdxVectors.Verify(Vectors.Read(Gt1), Gt1At, CollateralFrom(GoTdxGuestCollateral));

    [Test]
    public void The_only_reason_is_tcb_level_not_supported()
    {
        Assert.That(Codes(_result), Is.EqualTo(new[] { ReasonCodes.TcbLevelNotSupported }), Describe(_result));
        Assert.That(_result.IsAccepted, Is.False);
    }

    [Test]
    public void Crls_were_checked_and_qe_tcb_is_up_to_date()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_result.CrlChecked, Is.True);
            Assert.That(_result.Simulated, Is.False);
            Assert.That(Claim(_result, "qe_tcb_status"), Is.EqualTo("UpToDate"));
            Assert.That(_result.Claims.Contains("tcb_status"), Is.False, "no TCB level, no status");
        });
    }

    [Test]
    public void Trailing_bytes_are_reported_as_a_note()
    {
        Assert.That(_result.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.TrailingBytes));
        Assert.That(_result.Notes.First(n => n.Code == ReasonCodes.TrailingBytes).Message, Does.Contain("39"));
    }

    [Test]
    public void Claims_carry_the_documented_fields()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_result.Claims["quote_version"]!.GetValue<long>(), Is.EqualTo(4));
            Assert.That(Claim(_result, "tee_tcb_svn"), Is.EqualTo("03000400000000000000000000000000"));
            Assert.That(Claim(_result, "mr_seam"), Is.EqualTo("2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656"));
            Assert.That(Claim(_result, "mr_signer_seam"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "seam_attributes"), Is.EqualTo("0000000000000000"));
            Assert.That(Claim(_result, "td_attributes"), Is.EqualTo("0000004000000000"));
            Assert.That(Claim(_result, "xfam"), Is.EqualTo("e71a060000000000"));
            Assert.That(Claim(_result, "mr_td"), Is.EqualTo("6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb"));
            Assert.That(Claim(_result, "mr_config_id"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "mr_owner"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "mr_owner_config"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "rtmr0"), Is.EqualTo("2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f32a"));
            Assert.That(Claim(_result, "rtmr1"), Is.EqualTo("2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c6bc5800db2cacb61"));
            Assert.That(Claim(_result, "rtmr2"), Is.EqualTo("8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e"));
            Assert.That(Claim(_result, "rtmr3"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "report_data"), Is.EqualTo("6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113"));
            Assert.That(_result.Claims["debug"]!.GetValue<bool>(), Is.False);
            Assert.That(Claim(_result, "fmspc"), Is.EqualTo("50806f000000"));
            Assert.That(Claim(_result, "pce_id"), Is.EqualTo("0000"));
            Assert.That(_result.Claims.Contains("tee_tcb_svn2"), Is.False);
            Assert.That(_result.Claims.Contains("mr_service_td"), Is.False);
        });
    }
}

/// <summary>GT-2 at 2026-03-20T10:41:14Z with the dcap-qvl collateral, in both of its forms: accepted, UpToDate.</summary>
[TestFixture(DcapQvlJson)]
[TestFixture(DcapQvlDerived)]
public sealed class Gt2_with_dcap_qvl_collateral_is_accepted_up_to_date(string collateral)
{
    private VerificationResult _result = null!;

    [OneTimeSetUp]
    public void Verify() => _result = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, CollateralFrom(collateral));

    [Test]
    public void Verdict_is_accepted_with_crls_checked()
    {
        Assert.That(_result.IsAccepted, Is.True, Describe(_result));
        Assert.That(_result.CrlChecked, Is.True);
        Assert.That(_result.Simulated, Is.False);
        Assert.That(_result.Notes, Is.Empty);
    }

    [Test]
    public void Tcb_and_qe_status_are_up_to_date_without_advisories()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Claim(_result, "tcb_status"), Is.EqualTo("UpToDate"));
            Assert.That(Claim(_result, "qe_tcb_status"), Is.EqualTo("UpToDate"));
            Assert.That(_result.Claims["advisory_ids"]!.AsArray(), Is.Empty);
        });
    }

    [Test]
    public void Claims_carry_the_documented_fields_including_td15_ones()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_result.Claims["quote_version"]!.GetValue<long>(), Is.EqualTo(5));
            Assert.That(Claim(_result, "tee_tcb_svn"), Is.EqualTo("0b010400000000000000000000000000"));
            Assert.That(Claim(_result, "mr_seam"), Is.EqualTo("7bf063280e94fb051f5dd7b1fc59ce9aac42bb961df8d44b709c9b0ff87a7b4df648657ba6d1189589feab1d5a3c9a9d"));
            Assert.That(Claim(_result, "mr_signer_seam"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "seam_attributes"), Is.EqualTo("0000000000000000"));
            Assert.That(Claim(_result, "td_attributes"), Is.EqualTo("0000001000000000"));
            Assert.That(Claim(_result, "xfam"), Is.EqualTo("e702060000000000"));
            Assert.That(Claim(_result, "mr_td"), Is.EqualTo("7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876"));
            Assert.That(Claim(_result, "mr_config_id"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "mr_owner"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "mr_owner_config"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "rtmr0"), Is.EqualTo("5c8daf76063a71ac8fcef4067564661fc682ed7944c7a5d21dbbced02f61ceff4ba0678c6aef3bdae8cbc614cec24619"));
            Assert.That(Claim(_result, "rtmr1"), Is.EqualTo("463acaace1b6e97c76e92e41fe312aa66f3fd4dad60ec7acf169859db0343e3d1e591646795cdc80fbc0ca5f7041d253"));
            Assert.That(Claim(_result, "rtmr2"), Is.EqualTo("6369b9c9a3b791ebcbdc5a0bb9536cfb57f50df2b393b33c8b29616d3568baa61f4b59dc6092e31ea8764bcbdfc69f20"));
            Assert.That(Claim(_result, "rtmr3"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "report_data"), Is.EqualTo("945eaacf5abc1f719d8666a942fda03d1edcb4490277396093dc5a5289ab9f1e094aed63060cd4a4933a4dd537ed1255c9c79ecb3ed82cd1b486233e31c25c3a"));
            Assert.That(_result.Claims["debug"]!.GetValue<bool>(), Is.False);
            Assert.That(Claim(_result, "tee_tcb_svn2"), Is.EqualTo("0d010400000000000000000000000000"));
            Assert.That(Claim(_result, "mr_service_td"), Is.EqualTo(new string('0', 96)));
            Assert.That(Claim(_result, "fmspc"), Is.EqualTo("90c06f000000"));
            Assert.That(Claim(_result, "pce_id"), Is.EqualTo("0000"));
        });
    }
}

/// <summary>GT-3 with no collateral at all: the crypto passes, and the missing collateral is the reason.</summary>
[TestFixture]
public sealed class Gt3_without_collateral_is_rejected_with_collateral_missing
{
    [Test]
    public void Rejected_with_collateral_missing_and_no_crypto_reason()
    {
        var r = TdxVectors.Verify(Vectors.Read(Gt3), Gt3At, null);
        Assert.Multiple(() =>
        {
            Assert.That(r.IsAccepted, Is.False);
            Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralMissing), Describe(r));
            Assert.That(Codes(r), Is.SubsetOf(new[] { ReasonCodes.CollateralMissing, ReasonCodes.CrlMissing }), Describe(r));
            Assert.That(r.CrlChecked, Is.False);
            Assert.That(Claim(r, "fmspc"), Is.EqualTo("00806f050000"));
            Assert.That(Claim(r, "mr_td"), Is.EqualTo("dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb2735396c1d04231f94a"));
            Assert.That(r.Notes.First(n => n.Code == ReasonCodes.TrailingBytes).Message, Does.Contain("3065"));
        });
    }

    [Test]
    public void With_crl_checks_skipped_only_collateral_missing_remains_and_the_skip_is_noted()
    {
        var r = TdxVectors.Verify(Vectors.Read(Gt3), Gt3At, null, skipCrl: true);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralMissing }), Describe(r));
        Assert.That(r.CrlChecked, Is.False);
        Assert.That(r.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.CrlNotChecked));
    }
}

/// <summary>GT-2 with go-tdx-guest's folder (its own 2026 TCB Info, but a 2023 QE Identity and the 2018 signer): a clear rejection.</summary>
[TestFixture]
public sealed class Gt2_with_go_tdx_guest_collateral_is_rejected_for_out_of_date_collateral
{
    [Test]
    public void Picks_the_fmspc_90c06f_tcb_info_and_reports_the_expired_signer_and_qe_identity()
    {
        var at = DateTimeOffset.FromUnixTimeSeconds(1770080400); // 2026-02-03T01:00:00Z, go-tdx-guest's own time for GT-2
        var r = TdxVectors.Verify(Vectors.Read(Gt2), at, CollateralFrom(GoTdxGuestCollateral));
        Assert.Multiple(() =>
        {
            Assert.That(r.IsAccepted, Is.False);
            Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralSignerUntrusted), Describe(r));
            Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralExpired), Describe(r));
            Assert.That(Codes(r), Does.Not.Contain(ReasonCodes.CollateralMismatch), "the TCB Info for the quote's FMSPC was picked");
            Assert.That(Codes(r).Intersect(CryptoCodes), Is.Empty, Describe(r));
            Assert.That(r.Reasons.First(x => x.Code == ReasonCodes.CollateralSignerUntrusted).Message, Does.Contain("sample_tcbinfo_response_v5.json"));
        });
    }
}

/// <summary>The TCB Signing certificate is chosen by validity at the verification time: two certificates share key and serial.</summary>
[TestFixture]
public sealed class Tcb_signing_certificate_is_chosen_by_validity_not_by_serial
{
    private const string Signing2018 = "tdx/go-tdx-guest/collateral/tcb_signing_chain_2018.pem";
    private const string Signing2025 = "tdx/dcap-qvl/derived/tdx_quote_outdated/tcb_info_issuer_chain.pem";

    private static readonly string[] DerivedWithoutSigner =
    [
        "tdx/dcap-qvl/derived/tdx_quote_outdated/tcb_info.json",
        "tdx/dcap-qvl/derived/tdx_quote_outdated/qe_identity.json",
        "tdx/dcap-qvl/derived/tdx_quote_outdated/pck_crl.der",
        "tdx/dcap-qvl/derived/tdx_quote_outdated/root_ca_crl.der",
        "tdx/dcap-qvl/derived/tdx_quote_outdated/pck_crl_issuer_chain.pem",
    ];

    private static readonly string[] GoTdxGuestWithoutSigner =
    [
        "tdx/go-tdx-guest/collateral/sample_tcbInfo_response.json",
        "tdx/go-tdx-guest/collateral/sample_qeIdentity_response.json",
        "tdx/go-tdx-guest/collateral/pckcrl.der",
        "tdx/go-tdx-guest/collateral/rootcrl.der",
        "tdx/go-tdx-guest/collateral/pckcrl_issuer_chain.pem",
        "tdx/go-tdx-guest/collateral/trusted_root.pem",
    ];

    [Test]
    public void In_2026_the_2018_certificate_is_not_used_even_when_offered_first()
    {
        var r = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, CollateralFrom([Signing2018, .. DerivedWithoutSigner]));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralSignerUntrusted }), Describe(r));
        Assert.That(r.Reasons[0].Message, Does.Contain("2025-05-21"));
    }

    [Test]
    public void In_2026_with_both_certificates_the_2025_one_verifies_and_the_quote_is_accepted()
    {
        var r = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, CollateralFrom([Signing2018, Signing2025, .. DerivedWithoutSigner]));
        Assert.That(r.IsAccepted, Is.True, Describe(r));
    }

    [Test]
    public void In_2023_the_2025_certificate_is_not_used()
    {
        var r = TdxVectors.Verify(Vectors.Read(Gt1), Gt1At, CollateralFrom([Signing2025, .. GoTdxGuestWithoutSigner]));
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralSignerUntrusted), Describe(r));
        Assert.That(Codes(r), Does.Not.Contain(ReasonCodes.CollateralSignatureInvalid));
    }

    [Test]
    public void In_2023_with_both_certificates_only_the_tcb_level_fails()
    {
        var r = TdxVectors.Verify(Vectors.Read(Gt1), Gt1At, CollateralFrom([Signing2025, Signing2018, .. GoTdxGuestWithoutSigner]));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.TcbLevelNotSupported }), Describe(r));
    }
}

/// <summary>Time moves past the PCK certificate's and the collateral's validity: both are reported.</summary>
[TestFixture]
public sealed class Verification_outside_validity_windows_reports_expiry
{
    [Test]
    public void Gt1_in_2053_reports_the_expired_pck_certificate_and_expired_collateral()
    {
        var at = new DateTimeOffset(2053, 7, 1, 0, 0, 0, TimeSpan.Zero);
        var r = TdxVectors.Verify(Vectors.Read(Gt1), at, CollateralFrom(GoTdxGuestCollateral));
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CertificateExpired), Describe(r));
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralExpired).Or.Contain(ReasonCodes.CollateralSignerUntrusted), Describe(r));
        Assert.That(r.Reasons.First(x => x.Code == ReasonCodes.CertificateExpired).Message, Does.Contain("2029-09-20"));
    }

    [Test]
    public void Gt2_after_the_tcb_info_next_update_is_rejected_with_collateral_expired()
    {
        var at = new DateTimeOffset(2026, 3, 20, 10, 58, 52, TimeSpan.Zero); // one second after tcbInfo.nextUpdate
        var r = TdxVectors.Verify(Vectors.Read(Gt2), at, CollateralFrom(DcapQvlJson));
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralExpired), Describe(r));
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CrlExpired), Describe(r));
        Assert.That(Codes(r).Intersect(CryptoCodes), Is.Empty, Describe(r));
        Assert.That(r.CrlChecked, Is.False);
    }

    [Test]
    public void Gt2_before_the_collateral_was_issued_is_rejected_with_collateral_expired()
    {
        var at = new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero);
        var r = TdxVectors.Verify(Vectors.Read(Gt2), at, CollateralFrom(DcapQvlJson), skipCrl: true);
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralExpired), Describe(r));
    }
}
