using System.Buffers.Binary;
using System.Security.Cryptography;
using AttestBroker.Verification.Snp;
using NUnit.Framework;

namespace AttestBroker.Verification.Tests.Snp;

/// <summary>Shared set-up: a test Milan PKI and SG-1's content re-signed by a VCEK minted for SG-1's chip and TCB.</summary>
public abstract class MintedMilanFixture
{
    internal SnpTestPki Pki { get; private set; } = null!;

    internal byte[] Content { get; private set; } = null!;

    internal EndorsementSpec MatchingSpec => new() { HwId = SnpVectors.ChipId(Content) };

    [OneTimeSetUp]
    public void CreatePki()
    {
        Pki = SnpTestPki.Shared();
        Content = SnpVectors.ReadReport();
    }

    internal VerificationResult VerifyWith(EndorsementSpec spec, byte[]? content = null, params ReadOnlyMemory<byte>[] crls)
    {
        var (cert, key) = Pki.Mint(spec);
        using (key)
        {
            var report = SnpVectors.Sign(content ?? Content, key);
            return SnpVerifier.Verify(report, Pki.Collateral(cert, crls), Pki.Context);
        }
    }
}

/// <summary>A report signed by a VCEK under an explicitly trusted simulated ARK is accepted and marked simulated.</summary>
[TestFixture]
public sealed class Report_under_a_trusted_simulated_root_is_accepted_and_marked_simulated : MintedMilanFixture
{
    [Test]
    public void Accepted_and_simulated()
    {
        var result = VerifyWith(MatchingSpec);
        Assert.Multiple(() =>
        {
            Assert.That(result.Reasons, Is.Empty);
            Assert.That(result.Simulated, Is.True);
            Assert.That(result.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.SimulatedRoot));
        });
    }

    [Test]
    public void Same_chain_without_trusting_the_simulator_is_rejected_with_untrusted_root()
    {
        var (cert, key) = Pki.Mint(MatchingSpec);
        using (key)
        {
            var report = SnpVectors.Sign(Content, key);
            var result = SnpVerifier.Verify(report, Pki.Collateral(cert), new VerificationContext(SnpTestPki.At, TrustStore.Production));
            Assert.Multiple(() =>
            {
                Assert.That(result.HasReason(ReasonCodes.UntrustedRoot), Is.True);
                Assert.That(result.Simulated, Is.False);
            });
        }
    }

    [Test]
    public void Vcek_of_an_untrusted_simulator_without_its_ask_is_rejected_with_untrusted_root()
    {
        var (cert, key) = Pki.Mint(MatchingSpec);
        using (key)
        {
            var report = SnpVectors.Sign(Content, key);
            var result = SnpVerifier.Verify(report, new SnpCollateral { EndorsementKey = cert }, new VerificationContext(SnpTestPki.At, TrustStore.Production));
            Assert.That(result.HasReason(ReasonCodes.UntrustedRoot), Is.True);
        }
    }

    [Test]
    public void Vcek_without_hwid_is_rejected_with_certificate_invalid()
    {
        var result = VerifyWith(MatchingSpec with { HwId = null });
        Assert.That(result.HasReason(ReasonCodes.CertificateInvalid), Is.True);
    }

    [Test]
    public void Vcek_without_product_name_is_rejected_with_certificate_invalid()
    {
        var result = VerifyWith(MatchingSpec with { ProductName = null });
        Assert.That(result.HasReason(ReasonCodes.CertificateInvalid), Is.True);
    }

    [Test]
    public void Serial_zero_vcek_is_accepted()
    {
        var result = VerifyWith(MatchingSpec with { Serial = [0x00] });
        Assert.That(result.Reasons, Is.Empty);
    }

    [Test]
    public void Hwid_wrapped_in_an_octet_string_is_accepted()
    {
        var result = VerifyWith(MatchingSpec with { WrapHwId = true });
        Assert.That(result.Reasons, Is.Empty);
    }

    [Test]
    public void Product_name_without_stepping_is_accepted()
    {
        var result = VerifyWith(MatchingSpec with { ProductName = "Milan" });
        Assert.That(result.Reasons, Is.Empty);
    }

    [Test]
    public void Report_signed_by_another_key_is_rejected_with_report_signature_invalid()
    {
        var (cert, key) = Pki.Mint(MatchingSpec);
        using (key)
        using (var other = ECDsa.Create(ECCurve.NamedCurves.nistP384))
        {
            var report = SnpVectors.Sign(Content, other);
            var result = SnpVerifier.Verify(report, Pki.Collateral(cert), Pki.Context);
            Assert.That(result.HasReason(ReasonCodes.ReportSignatureInvalid), Is.True);
        }
    }
}

/// <summary>A VCEK whose SPL extensions differ from REPORTED_TCB is rejected with tcb_mismatch.</summary>
[TestFixture]
public sealed class Vcek_with_different_spls_is_rejected_with_tcb_mismatch : MintedMilanFixture
{
    [Test]
    public void Bootloader() => AssertMismatch(MatchingSpec with { Bl = 3 }, "blSPL");

    [Test]
    public void Tee() => AssertMismatch(MatchingSpec with { Tee = 1 }, "teeSPL");

    [Test]
    public void Snp() => AssertMismatch(MatchingSpec with { Snp = 8 }, "snpSPL");

    [Test]
    public void Microcode() => AssertMismatch(MatchingSpec with { Ucode = 115 }, "ucodeSPL");

    [Test]
    public void Missing_spl_extension() => AssertMismatch(MatchingSpec with { Snp = null }, "snpSPL");

    private void AssertMismatch(EndorsementSpec spec, string component)
    {
        var result = VerifyWith(spec);
        Assert.Multiple(() =>
        {
            Assert.That(result.IsAccepted, Is.False);
            Assert.That(result.HasReason(ReasonCodes.TcbMismatch), Is.True);
            Assert.That(result.Reasons.Single(r => r.Code == ReasonCodes.TcbMismatch).Message, Does.Contain(component));
            Assert.That(result.HasReason(ReasonCodes.ReportSignatureInvalid), Is.False);
        });
    }
}

/// <summary>A VCEK whose hwID differs from CHIP_ID is rejected with chip_id_mismatch, unless the chip id is masked.</summary>
[TestFixture]
public sealed class Vcek_with_another_hwid_is_rejected_with_chip_id_mismatch : MintedMilanFixture
{
    [Test]
    public void Different_hwid()
    {
        var other = SnpVectors.ChipId(Content);
        other[5] ^= 0xFF;
        var result = VerifyWith(MatchingSpec with { HwId = other });
        Assert.Multiple(() =>
        {
            Assert.That(result.HasReason(ReasonCodes.ChipIdMismatch), Is.True);
            Assert.That(result.HasReason(ReasonCodes.ReportSignatureInvalid), Is.False);
        });
    }

    [Test]
    public void Masked_chip_id_is_not_compared()
    {
        var masked = (byte[])Content.Clone();
        masked.AsSpan(0x1A0, 64).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(masked.AsSpan(0x48), 2); // MASK_CHIP_KEY, VCEK
        var result = VerifyWith(MatchingSpec, masked);
        Assert.That(result.Reasons, Is.Empty);
    }
}

/// <summary>VLEK-signed reports need a VLEK chained through the ASVK; a VCEK for a VLEK report (or the reverse) is missing the right key.</summary>
[TestFixture]
public sealed class Vlek_signed_reports_are_verified_against_the_vlek
{
    [Test]
    public void Vlek_under_asvk_is_accepted()
    {
        var pki = SnpTestPki.Shared(vlek: true);
        var content = SnpVectors.ReadReport();
        BinaryPrimitives.WriteUInt32LittleEndian(content.AsSpan(0x48), 1u << 2);
        var (cert, key) = pki.Mint(new EndorsementSpec { CspId = "test-csp" });
        using (key)
        {
            var result = SnpVerifier.Verify(SnpVectors.Sign(content, key), pki.Collateral(cert), pki.Context);
            Assert.Multiple(() =>
            {
                Assert.That(result.Reasons, Is.Empty);
                Assert.That(result.Claims["signing_key"]!.GetValue<string>(), Is.EqualTo("vlek"));
            });
        }
    }

    [Test]
    public void Vcek_certificate_for_a_vlek_signed_report_is_rejected_with_signing_key_missing()
    {
        var pki = SnpTestPki.Shared();
        var content = SnpVectors.ReadReport();
        BinaryPrimitives.WriteUInt32LittleEndian(content.AsSpan(0x48), 1u << 2);
        var (cert, key) = pki.Mint(new EndorsementSpec { HwId = SnpVectors.ChipId(content) });
        using (key)
        {
            var result = SnpVerifier.Verify(SnpVectors.Sign(content, key), pki.Collateral(cert), pki.Context);
            Assert.That(result.HasReason(ReasonCodes.SigningKeyMissing), Is.True);
        }
    }

    [Test]
    public void Vlek_certificate_for_a_vcek_signed_report_is_rejected_with_signing_key_missing()
    {
        var pki = SnpTestPki.Shared(vlek: true);
        var (cert, key) = pki.Mint(new EndorsementSpec { CspId = "test-csp" });
        using (key)
        {
            var result = SnpVerifier.Verify(SnpVectors.Sign(SnpVectors.ReadReport(), key), pki.Collateral(cert), pki.Context);
            Assert.That(result.HasReason(ReasonCodes.SigningKeyMissing), Is.True);
        }
    }

    [Test]
    public void Vlek_issued_by_an_ask_is_rejected_with_cert_chain_invalid()
    {
        var pki = SnpTestPki.Shared(vlek: false);
        var content = SnpVectors.ReadReport();
        BinaryPrimitives.WriteUInt32LittleEndian(content.AsSpan(0x48), 1u << 2);
        var (cert, key) = pki.Mint(new EndorsementSpec { CspId = "test-csp" });
        using (key)
        {
            var result = SnpVerifier.Verify(SnpVectors.Sign(content, key), pki.Collateral(cert), pki.Context);
            Assert.That(result.HasReason(ReasonCodes.CertChainInvalid), Is.True);
        }
    }
}

/// <summary>Turin decodes TCB_VERSION with FMC in byte 0 and checks fmcSPL; its claims carry fmc.</summary>
[TestFixture]
public sealed class Turin_report_uses_the_turin_tcb_layout
{
    private static byte[] TurinContent()
    {
        var r = SnpVectors.AsV3(SnpVectors.ReadReport(), 0x1A, 0x02);
        byte[] tcb = [1, 2, 3, 4, 0, 0, 0, 5]; // fmc 1, bl 2, tee 3, snp 4, ucode 5
        foreach (var off in new[] { 0x38, 0x180, 0x1E0, 0x1F0 })
        {
            tcb.CopyTo(r, off);
        }

        r.AsSpan(0x1A0 + 8, 56).Clear(); // Turin uses CHIP_ID[0..8]
        return r;
    }

    private static EndorsementSpec TurinSpec(byte[] content) => new()
    {
        ProductName = "Turin-C1", Fmc = 1, Bl = 2, Tee = 3, Snp = 4, Ucode = 5, HwId = content.AsSpan(0x1A0, 8).ToArray(),
    };

    private static VerificationResult Verify(EndorsementSpec spec, byte[] content)
    {
        var pki = SnpTestPki.Shared("Turin");
        var (cert, key) = pki.Mint(spec);
        using (key)
        {
            return SnpVerifier.Verify(SnpVectors.Sign(content, key), pki.Collateral(cert), pki.Context);
        }
    }

    [Test]
    public void Matching_turin_vcek_is_accepted_with_fmc_claims()
    {
        var content = TurinContent();
        var result = Verify(TurinSpec(content), content);
        var tcb = result.Claims["reported_tcb"]!.AsObject();
        Assert.Multiple(() =>
        {
            Assert.That(result.Reasons, Is.Empty);
            Assert.That(result.Claims["product"]!.GetValue<string>(), Is.EqualTo("Turin"));
            Assert.That(tcb["fmc"]!.GetValue<long>(), Is.EqualTo(1));
            Assert.That(tcb["bootloader"]!.GetValue<long>(), Is.EqualTo(2));
            Assert.That(tcb["tee"]!.GetValue<long>(), Is.EqualTo(3));
            Assert.That(tcb["snp"]!.GetValue<long>(), Is.EqualTo(4));
            Assert.That(tcb["microcode"]!.GetValue<long>(), Is.EqualTo(5));
        });
    }

    [Test]
    public void Different_fmc_spl_is_rejected_with_tcb_mismatch()
    {
        var content = TurinContent();
        var result = Verify(TurinSpec(content) with { Fmc = 9 }, content);
        Assert.That(result.Reasons.Single(r => r.Code == ReasonCodes.TcbMismatch).Message, Does.Contain("fmcSPL"));
    }

    [Test]
    public void Milan_layout_spls_in_a_turin_vcek_are_rejected_with_tcb_mismatch()
    {
        var content = TurinContent();
        var milanReading = new EndorsementSpec { ProductName = "Turin-C1", Fmc = 1, Bl = 1, Tee = 2, Snp = 0, Ucode = 5, HwId = content.AsSpan(0x1A0, 8).ToArray() };
        var result = Verify(milanReading, content);
        Assert.That(result.HasReason(ReasonCodes.TcbMismatch), Is.True);
    }
}

/// <summary>The report's CPUID product, the VCEK's productName and the chain's product must agree.</summary>
[TestFixture]
public sealed class Disagreeing_products_are_rejected_with_product_mismatch
{
    [Test]
    public void Genoa_cpuid_with_a_milan_vcek_and_chain()
    {
        var pki = SnpTestPki.Shared();
        var content = SnpVectors.AsV3(SnpVectors.ReadReport(), 0x19, 0x11);
        var (cert, key) = pki.Mint(new EndorsementSpec { HwId = SnpVectors.ChipId(content) });
        using (key)
        {
            var result = SnpVerifier.Verify(SnpVectors.Sign(content, key), pki.Collateral(cert), pki.Context);
            Assert.That(result.HasReason(ReasonCodes.ProductMismatch), Is.True);
        }
    }

    [Test]
    public void Genoa_vcek_under_a_milan_root()
    {
        var pki = SnpTestPki.Shared();
        var content = SnpVectors.ReadReport();
        var (cert, key) = pki.Mint(new EndorsementSpec { ProductName = "Genoa-B1", HwId = SnpVectors.ChipId(content) });
        using (key)
        {
            var result = SnpVerifier.Verify(SnpVectors.Sign(content, key), pki.Collateral(cert), pki.Context);
            Assert.That(result.HasReason(ReasonCodes.ProductMismatch), Is.True);
        }
    }

    [Test]
    public void Unknown_cpuid_family_is_unsupported()
    {
        var pki = SnpTestPki.Shared();
        var content = SnpVectors.AsV3(SnpVectors.ReadReport(), 0x1A, 0x50);
        var (cert, key) = pki.Mint(new EndorsementSpec { HwId = SnpVectors.ChipId(content) });
        using (key)
        {
            var result = SnpVerifier.Verify(SnpVectors.Sign(content, key), pki.Collateral(cert), pki.Context);
            Assert.That(result.HasReason(ReasonCodes.UnsupportedEvidence), Is.True);
        }
    }
}

/// <summary>An AMD CRL is checked when supplied: listed serials are revoked, bad signatures and stale windows are named.</summary>
[TestFixture]
public sealed class Amd_crl_is_checked_when_supplied : MintedMilanFixture
{
    private static readonly DateTimeOffset ThisUpdate = SnpTestPki.At.AddDays(-10);
    private static readonly DateTimeOffset NextUpdate = SnpTestPki.At.AddDays(10);

    [Test]
    public void Clean_in_date_crl_is_checked()
    {
        var crl = Pki.Crl([[0x42]], ThisUpdate, NextUpdate);
        var result = VerifyWith(MatchingSpec, null, crl);
        Assert.Multiple(() =>
        {
            Assert.That(result.Reasons, Is.Empty);
            Assert.That(result.CrlChecked, Is.True);
            Assert.That(result.Notes.Select(n => n.Code), Does.Not.Contain(ReasonCodes.CrlNotChecked));
        });
    }

    [Test]
    public void Pem_wrapped_crl_is_checked_too()
    {
        var der = Pki.Crl([[0x42]], ThisUpdate, NextUpdate);
        var pem = System.Text.Encoding.ASCII.GetBytes(new string(System.Security.Cryptography.PemEncoding.Write("X509 CRL", der)));
        var result = VerifyWith(MatchingSpec, null, pem);
        Assert.Multiple(() =>
        {
            Assert.That(result.Reasons, Is.Empty);
            Assert.That(result.CrlChecked, Is.True);
        });
    }

    [Test]
    public void Crl_listing_the_ask_is_rejected_with_certificate_revoked()
    {
        var crl = Pki.Crl([Pki.Intermediate.SerialNumberBytes.ToArray()], ThisUpdate, NextUpdate);
        var result = VerifyWith(MatchingSpec, null, crl);
        Assert.Multiple(() =>
        {
            Assert.That(result.HasReason(ReasonCodes.CertificateRevoked), Is.True);
            Assert.That(result.Reasons.Single(r => r.Code == ReasonCodes.CertificateRevoked).Message, Does.Contain("SEV-Milan"));
        });
    }

    [Test]
    public void Crl_listing_the_vcek_serial_is_rejected_with_certificate_revoked()
    {
        var crl = Pki.Crl([[0x01]], ThisUpdate, NextUpdate);
        var result = VerifyWith(MatchingSpec with { Serial = [0x01] }, null, crl);
        Assert.That(result.HasReason(ReasonCodes.CertificateRevoked), Is.True);
    }

    [Test]
    public void Crl_signed_by_another_key_is_rejected_with_crl_invalid()
    {
        using var other = RSA.Create(2048);
        var crl = Pki.Crl([], ThisUpdate, NextUpdate, other);
        var result = VerifyWith(MatchingSpec, null, crl);
        Assert.Multiple(() =>
        {
            Assert.That(result.HasReason(ReasonCodes.CrlInvalid), Is.True);
            Assert.That(result.CrlChecked, Is.False);
        });
    }

    [Test]
    public void Crl_past_next_update_is_rejected_with_crl_expired()
    {
        var crl = Pki.Crl([], SnpTestPki.At.AddDays(-40), SnpTestPki.At.AddDays(-10));
        var result = VerifyWith(MatchingSpec, null, crl);
        Assert.That(result.HasReason(ReasonCodes.CrlExpired), Is.True);
    }

    [Test]
    public void Crl_from_the_future_is_rejected_with_crl_expired()
    {
        var crl = Pki.Crl([], SnpTestPki.At.AddDays(1), SnpTestPki.At.AddDays(30));
        var result = VerifyWith(MatchingSpec, null, crl);
        Assert.That(result.HasReason(ReasonCodes.CrlExpired), Is.True);
    }

    [Test]
    public void Garbage_crl_is_rejected_with_crl_invalid()
    {
        var result = VerifyWith(MatchingSpec, null, new byte[] { 0x30, 0x03, 0x02, 0x01, 0x00 });
        Assert.That(result.HasReason(ReasonCodes.CrlInvalid), Is.True);
    }

    [Test]
    public void Crl_of_another_root_is_ignored_and_noted()
    {
        var otherPki = SnpTestPki.Shared("Genoa");
        var crl = otherPki.Crl([Pki.Intermediate.SerialNumberBytes.ToArray()], ThisUpdate, NextUpdate);
        var result = VerifyWith(MatchingSpec, null, crl);
        Assert.Multiple(() =>
        {
            Assert.That(result.Reasons, Is.Empty);
            Assert.That(result.CrlChecked, Is.False);
            Assert.That(result.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.CrlNotChecked));
        });
    }

    [Test]
    public void Skip_crl_ignores_a_revoking_crl_and_says_so()
    {
        var (cert, key) = Pki.Mint(MatchingSpec);
        using (key)
        {
            var crl = Pki.Crl([Pki.Intermediate.SerialNumberBytes.ToArray()], ThisUpdate, NextUpdate);
            var result = SnpVerifier.Verify(SnpVectors.Sign(Content, key), Pki.Collateral(cert, crl), Pki.Context with { SkipCrl = true });
            Assert.Multiple(() =>
            {
                Assert.That(result.IsAccepted, Is.True);
                Assert.That(result.CrlChecked, Is.False);
                Assert.That(result.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.CrlNotChecked));
            });
        }
    }
}

/// <summary>Validity periods of the minted chain are enforced at the verification time.</summary>
[TestFixture]
public sealed class Expired_test_vcek_is_rejected_with_certificate_expired : MintedMilanFixture
{
    [Test]
    public void Expired()
    {
        var result = VerifyWith(MatchingSpec with { NotBefore = SnpTestPki.At.AddYears(-3), NotAfter = SnpTestPki.At.AddDays(-1) });
        Assert.That(result.HasReason(ReasonCodes.CertificateExpired), Is.True);
    }
}
