using AttestBroker.Testing;
using AttestBroker.Verification.Tdx;
using NUnit.Framework;
using static AttestBroker.Verification.Tests.Tdx.TdxVectors;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>A PCK chain re-signed under a root that copies the Intel SGX Root CA's name but not its key is untrusted.</summary>
[TestFixture]
public sealed class Chain_under_a_look_alike_intel_root_is_rejected_with_untrusted_root
{
    [Test]
    public void Look_alike_root_with_same_subject_and_another_key_gives_untrusted_root_only_for_the_chain()
    {
        using var pki = LookAlikePki.For(Vectors.Read(Gt2));
        var r = TdxVectors.Verify(pki.Quote, Gt2At, CollateralFrom(DcapQvlJson));
        Assert.Multiple(() =>
        {
            Assert.That(r.IsAccepted, Is.False);
            Assert.That(Codes(r), Does.Contain(ReasonCodes.UntrustedRoot), Describe(r));
            Assert.That(Codes(r), Does.Not.Contain(ReasonCodes.QeReportSignatureInvalid), "the QE report was re-signed by the new PCK key");
            Assert.That(Codes(r), Does.Not.Contain(ReasonCodes.QuoteSignatureInvalid));
            Assert.That(Codes(r), Does.Not.Contain(ReasonCodes.CertChainInvalid), "the look-alike chain is internally consistent");
            Assert.That(r.Simulated, Is.False);
            Assert.That(pki.Root.SubjectName.Name, Does.Contain("Intel SGX Root CA"));
        });
    }

    [Test]
    public void A_pck_certificate_with_an_undecodable_basic_constraints_extension_is_rejected_not_thrown()
    {
        var garbage = new System.Security.Cryptography.X509Certificates.X509Extension("2.5.29.19", [0x04, 0x02, 0xFF, 0xFF], true);
        using var pki = LookAlikePki.For(Vectors.Read(Gt2), garbage);
        VerificationResult? r = null;
        Assert.DoesNotThrow(() => r = TdxVectors.Verify(pki.Quote, Gt2At, CollateralFrom(DcapQvlJson), pki.SimulatedTrust(), skipCrl: true));
        Assert.That(r!.IsAccepted, Is.False);
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CertificateInvalid).Or.Contain(ReasonCodes.CertChainInvalid), Describe(r));
    }

    [Test]
    public void The_real_chain_without_its_root_is_rejected_with_cert_chain_invalid()
    {
        var original = Vectors.Read(Gt2);
        var q = Evidence.Tdx.TdxQuote.Parse(original);
        var pem = q.PckCertChainPem;
        var twoCerts = pem[..pem.LastIndexOf("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal)];
        var quote = QuoteRewriter.Replace(original, q.QeReportSignature.ToArray(), twoCerts);
        var r = TdxVectors.Verify(quote, Gt2At, CollateralFrom(DcapQvlJson));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CertChainInvalid }), Describe(r));
    }

    [Test]
    public void A_damaged_root_block_is_not_skipped_but_rejected_as_an_invalid_certificate()
    {
        var original = Vectors.Read(Gt2);
        var q = Evidence.Tdx.TdxQuote.Parse(original);
        var pem = q.PckCertChainPem;
        var at = pem.LastIndexOf("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal) + 40;
        var damaged = pem[..at] + "\u0006" + pem[(at + 1)..];
        var quote = QuoteRewriter.Replace(original, q.QeReportSignature.ToArray(), damaged);
        var r = TdxVectors.Verify(quote, Gt2At, CollateralFrom(DcapQvlJson));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CertificateInvalid }), Describe(r));
    }
}

/// <summary>The same look-alike root, explicitly trusted as simulated: the result says so, and its CRLs are enforced.</summary>
[TestFixture]
public sealed class Chain_under_an_explicitly_trusted_simulated_root
{
    private static readonly DateTimeOffset ThisUpdate = Gt2At.AddDays(-1);
    private static readonly DateTimeOffset NextUpdate = Gt2At.AddDays(1);

    private static VerificationResult VerifyWithCrls(LookAlikePki pki, byte[] rootCrl, byte[] pckCrl) =>
        TdxVectors.Verify(pki.Quote, Gt2At, StaticCollateral.FromFiles(DcapQvlJson).With(new TdxCollateral([], [], [rootCrl, pckCrl], [])), pki.SimulatedTrust());

    [Test]
    public void With_in_date_empty_crls_it_is_accepted_and_marked_simulated()
    {
        using var pki = LookAlikePki.For(Vectors.Read(Gt2));
        var r = VerifyWithCrls(pki, pki.Crl(pki.Root, ThisUpdate, NextUpdate), pki.Crl(pki.Ca, ThisUpdate, NextUpdate));
        Assert.Multiple(() =>
        {
            Assert.That(r.IsAccepted, Is.True, Describe(r));
            Assert.That(r.Simulated, Is.True);
            Assert.That(r.CrlChecked, Is.True);
            Assert.That(r.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.SimulatedRoot));
        });
    }

    [Test]
    public void Pck_crl_listing_the_pck_serial_gives_certificate_revoked()
    {
        using var pki = LookAlikePki.For(Vectors.Read(Gt2));
        var r = VerifyWithCrls(pki, pki.Crl(pki.Root, ThisUpdate, NextUpdate), pki.Crl(pki.Ca, ThisUpdate, NextUpdate, pki.Leaf.SerialNumberBytes.ToArray()));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CertificateRevoked }), Describe(r));
        Assert.That(r.CrlChecked, Is.False);
    }

    [Test]
    public void Root_crl_listing_the_pck_ca_serial_gives_certificate_revoked()
    {
        using var pki = LookAlikePki.For(Vectors.Read(Gt2));
        var r = VerifyWithCrls(pki, pki.Crl(pki.Root, ThisUpdate, NextUpdate, pki.Ca.SerialNumberBytes.ToArray()), pki.Crl(pki.Ca, ThisUpdate, NextUpdate));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CertificateRevoked }), Describe(r));
    }

    [Test]
    public void Pck_crl_past_its_next_update_gives_crl_expired()
    {
        using var pki = LookAlikePki.For(Vectors.Read(Gt2));
        var r = VerifyWithCrls(pki, pki.Crl(pki.Root, ThisUpdate, NextUpdate), pki.Crl(pki.Ca, ThisUpdate.AddDays(-30), ThisUpdate));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CrlExpired }), Describe(r));
    }

    [Test]
    public void Pck_crl_signed_by_another_key_gives_crl_invalid()
    {
        using var pki = LookAlikePki.For(Vectors.Read(Gt2));
        using var other = LookAlikePki.For(Vectors.Read(Gt2));
        var r = VerifyWithCrls(pki, pki.Crl(pki.Root, ThisUpdate, NextUpdate), other.Crl(other.Ca, ThisUpdate, NextUpdate));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CrlInvalid }), Describe(r));
    }

    [Test]
    public void Without_any_crl_for_the_simulated_chain_crl_missing_is_reported()
    {
        using var pki = LookAlikePki.For(Vectors.Read(Gt2));
        var collateral = new StaticCollateral(TdxCollateralSource.Recognise(File.ReadAllBytes(Vectors.Path(DcapQvlJson)), "dcap-qvl"));
        var withoutCrls = new StaticCollateral(new TdxCollateral(collateral.Collateral.TcbInfos, collateral.Collateral.QeIdentities, [], collateral.Collateral.Certificates));
        var r = TdxVectors.Verify(pki.Quote, Gt2At, withoutCrls, pki.SimulatedTrust());
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CrlMissing }), Describe(r));
    }
}

/// <summary>The real PCK CRLs are applied to the real PCK certificates (the issuer must match the PCK's issuer).</summary>
[TestFixture]
public sealed class Real_crls_are_checked_by_issuer_and_window
{
    [Test]
    public void Gt2_with_the_go_tdx_guest_2023_crls_only_reports_expired_crls()
    {
        var collateral = StaticCollateral.FromFiles(DcapQvlJson);
        var onlyOldCrls = new StaticCollateral(new TdxCollateral(
            collateral.Collateral.TcbInfos,
            collateral.Collateral.QeIdentities,
            [File.ReadAllBytes(Vectors.Path("tdx/go-tdx-guest/collateral/pckcrl.der")), File.ReadAllBytes(Vectors.Path("tdx/go-tdx-guest/collateral/rootcrl.der"))],
            collateral.Collateral.Certificates));
        var r = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, onlyOldCrls);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CrlExpired }), Describe(r));
        Assert.That(r.Reasons.Select(x => x.Message[..x.Message.IndexOf(':', StringComparison.Ordinal)]), Is.EquivalentTo(new[]
        {
            "Root CA CRL", "PCK CRL", "Root CA CRL (for the TCB Info signer)", "Root CA CRL (for the QE Identity signer)",
        }));
    }
}
