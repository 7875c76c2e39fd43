using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.Verification.Snp;
using NUnit.Framework;

namespace AttestBroker.Verification.Tests.Snp;

/// <summary>A bit flipped in any field of SG-1's signed area breaks the report signature.</summary>
[TestFixture]
public sealed class Sg1_with_a_flipped_bit_in_any_signed_field_is_rejected_with_report_signature_invalid
{
    private static readonly (string Field, int Offset)[] Fields =
    [
        ("VERSION", 0x000), ("GUEST_SVN", 0x004), ("POLICY", 0x008), ("FAMILY_ID", 0x010), ("IMAGE_ID", 0x020), ("VMPL", 0x030),
        ("CURRENT_TCB", 0x038), ("PLATFORM_INFO", 0x040), ("SIGNER_INFO_AUTHOR_KEY_EN", 0x048), ("REPORT_DATA", 0x050),
        ("MEASUREMENT", 0x090), ("HOST_DATA", 0x0C0), ("ID_KEY_DIGEST", 0x0E0), ("AUTHOR_KEY_DIGEST", 0x110),
        ("REPORT_ID", 0x140), ("REPORT_ID_MA", 0x160), ("REPORTED_TCB", 0x180), ("CHIP_ID", 0x1A0), ("COMMITTED_TCB", 0x1E0),
        ("CURRENT_BUILD", 0x1E8), ("CURRENT_MINOR", 0x1E9), ("CURRENT_MAJOR", 0x1EA), ("COMMITTED_BUILD", 0x1EC),
        ("COMMITTED_MINOR", 0x1ED), ("COMMITTED_MAJOR", 0x1EE), ("LAUNCH_TCB", 0x1F0),
    ];

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var (field, offset) in Fields)
        {
            yield return new TestCaseData(offset, 0).SetName($"Flip_in_{field}_low_bit");
            yield return new TestCaseData(offset, 7).SetName($"Flip_in_{field}_high_bit");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void Flip(int offset, int bit)
    {
        var bytes = SnpVectors.ReadReport();
        bytes[offset] ^= (byte)(1 << bit);
        var result = SnpVerifier.Verify(bytes, SnpVectors.Sg1Collateral(), SnpVectors.Sg1Context);
        Assert.That(result.IsAccepted, Is.False);
        if (!result.HasReason(ReasonCodes.MalformedEvidence))
        {
            Assert.That(result.HasReason(ReasonCodes.ReportSignatureInvalid), Is.True, string.Join("; ", result.Reasons));
        }
    }

    [Test]
    public void Every_single_bit_of_the_signed_area_is_covered()
    {
        var original = SnpVectors.ReadReport();
        var collateral = new SnpCollateral { EndorsementKey = SnpVectors.ReadVcek() };
        for (var i = 0; i < 0x2A0; i++)
        {
            var bytes = (byte[])original.Clone();
            bytes[i] ^= (byte)(1 << (i % 8));
            var result = SnpVerifier.Verify(bytes, collateral, SnpVectors.Sg1Context);
            var expected = result.HasReason(ReasonCodes.ReportSignatureInvalid)
                || result.HasReason(ReasonCodes.MalformedEvidence)
                || (i is >= 0x34 and < 0x38 && result.HasReason(ReasonCodes.UnsupportedSignatureAlgorithm));
            Assert.That(expected && !result.IsAccepted, Is.True, $"byte 0x{i:x}: {string.Join("; ", result.Reasons)}");
        }
    }
}

/// <summary>R and S: a flipped bit, or a non-zero byte in their zero-extension, is an invalid signature.</summary>
[TestFixture]
public sealed class Sg1_with_a_damaged_signature_is_rejected_with_report_signature_invalid
{
    [TestCase(0x2A0, TestName = "R_lowest_byte")]
    [TestCase(0x2A0 + 47, TestName = "R_highest_significant_byte")]
    [TestCase(0x2E8, TestName = "S_lowest_byte")]
    [TestCase(0x2E8 + 47, TestName = "S_highest_significant_byte")]
    [TestCase(0x2A0 + 48, TestName = "R_zero_extension_byte")]
    [TestCase(0x2A0 + 71, TestName = "R_last_zero_extension_byte")]
    [TestCase(0x2E8 + 48, TestName = "S_zero_extension_byte")]
    [TestCase(0x2E8 + 71, TestName = "S_last_zero_extension_byte")]
    public void Damaged(int offset)
    {
        var bytes = SnpVectors.ReadReport();
        bytes[offset] ^= 0x01;
        var result = SnpVerifier.Verify(bytes, SnpVectors.Sg1Collateral(), SnpVectors.Sg1Context);
        Assert.Multiple(() =>
        {
            Assert.That(result.IsAccepted, Is.False);
            Assert.That(result.HasReason(ReasonCodes.ReportSignatureInvalid), Is.True);
        });
    }

    [Test]
    public void R_and_s_read_big_endian_instead_of_little_endian_do_not_verify()
    {
        var bytes = SnpVectors.ReadReport();
        Array.Reverse(bytes, 0x2A0, 48);
        Array.Reverse(bytes, 0x2E8, 48);
        var result = SnpVerifier.Verify(bytes, SnpVectors.Sg1Collateral(), SnpVectors.Sg1Context);
        Assert.That(result.HasReason(ReasonCodes.ReportSignatureInvalid), Is.True);
    }
}

/// <summary>The Milan VCEK offered with AMD's Genoa ASK/ARK is a product mismatch, not an untrusted root.</summary>
[TestFixture]
public sealed class Sg1_vcek_with_the_genoa_chain_is_rejected_with_product_mismatch
{
    [Test]
    public void Rejected()
    {
        var collateral = new SnpCollateral { EndorsementKey = SnpVectors.ReadVcek(), Chain = SnpVectors.ReadChain(SnpVectors.GenoaChain) };
        var result = SnpVerifier.Verify(SnpVectors.ReadReport(), collateral, SnpVectors.Sg1Context);
        Assert.Multiple(() =>
        {
            Assert.That(result.IsAccepted, Is.False);
            Assert.That(result.HasReason(ReasonCodes.ProductMismatch), Is.True);
            Assert.That(result.HasReason(ReasonCodes.UntrustedRoot), Is.False);
        });
    }
}

/// <summary>A VCEK-signed report offered with the ASVK (VLEK) chain does not chain: the VCEK's issuer is the ASK.</summary>
[TestFixture]
public sealed class Sg1_vcek_with_the_vlek_chain_is_rejected_with_cert_chain_invalid
{
    [Test]
    public void Rejected()
    {
        var collateral = new SnpCollateral { EndorsementKey = SnpVectors.ReadVcek(), Chain = SnpVectors.ReadChain(SnpVectors.MilanVlekChain) };
        var result = SnpVerifier.Verify(SnpVectors.ReadReport(), collateral, SnpVectors.Sg1Context);
        Assert.Multiple(() =>
        {
            Assert.That(result.IsAccepted, Is.False);
            Assert.That(result.HasReason(ReasonCodes.CertChainInvalid), Is.True);
        });
    }
}

/// <summary>The real ASK re-signed by a look-alike ARK (same subject, another RSA key, RSA-PSS) ends in an untrusted root.</summary>
[TestFixture]
public sealed class Chain_ending_in_a_look_alike_ark_is_rejected_with_untrusted_root
{
    [Test]
    public void Rejected()
    {
        var real = SnpVectors.ReadChain(SnpVectors.MilanChain);
        var (ask, ark) = (real[0], real[1]);
        using var fakeKey = RSA.Create(2048);
        var fakeReq = new CertificateRequest(ark.SubjectName, fakeKey, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        fakeReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var fakeArk = fakeReq.CreateSelfSigned(ark.NotBefore, ark.NotAfter);

        var askReq = new CertificateRequest(ask.SubjectName, ask.PublicKey, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        askReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        var resignedAsk = askReq.Create(fakeArk.SubjectName, X509SignatureGenerator.CreateForRSA(fakeKey, RSASignaturePadding.Pss), ask.NotBefore, ask.NotAfter, ask.SerialNumberBytes.ToArray());

        var collateral = new SnpCollateral
        {
            EndorsementKey = SnpVectors.ReadVcek(),
            Chain = [resignedAsk, X509CertificateLoader.LoadCertificate(fakeArk.RawData)],
        };
        var result = SnpVerifier.Verify(SnpVectors.ReadReport(), collateral, SnpVectors.Sg1Context);
        Assert.Multiple(() =>
        {
            Assert.That(result.IsAccepted, Is.False);
            Assert.That(result.HasReason(ReasonCodes.UntrustedRoot), Is.True);
            Assert.That(result.HasReason(ReasonCodes.ProductMismatch), Is.False);
            Assert.That(result.HasReason(ReasonCodes.ReportSignatureInvalid), Is.False);
        });
    }
}

/// <summary>Without any VCEK the report cannot be verified: signing_key_missing, claims still set.</summary>
[TestFixture]
public sealed class Sg1_without_a_vcek_is_rejected_with_signing_key_missing
{
    [Test]
    public void No_collateral()
    {
        var result = SnpVerifier.Verify(SnpVectors.ReadReport(), SnpCollateral.Empty, SnpVectors.Sg1Context);
        Assert.Multiple(() =>
        {
            Assert.That(result.HasReason(ReasonCodes.SigningKeyMissing), Is.True);
            Assert.That(result.Claims["measurement"]!.GetValue<string>(), Does.StartWith("b07af962"));
        });
    }

    [Test]
    public void No_provider_through_the_async_interface()
    {
        var result = new SnpVerifier(null).VerifyAsync(SnpVectors.ReadReport(), SnpVectors.Sg1Context).GetAwaiter().GetResult();
        Assert.That(result.HasReason(ReasonCodes.SigningKeyMissing), Is.True);
    }

    [Test]
    public void Unsigned_report_is_rejected_with_signing_key_missing()
    {
        var bytes = SnpVectors.ReadReport();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x48), 7u << 2);
        var result = SnpVerifier.Verify(bytes, SnpVectors.Sg1Collateral(), SnpVectors.Sg1Context);
        Assert.That(result.HasReason(ReasonCodes.SigningKeyMissing), Is.True);
    }

    [Test]
    public void A_provider_that_throws_becomes_a_note_and_a_rejection()
    {
        var result = new SnpVerifier(new ThrowingProvider()).VerifyAsync(SnpVectors.ReadReport(), SnpVectors.Sg1Context).GetAwaiter().GetResult();
        Assert.Multiple(() =>
        {
            Assert.That(result.HasReason(ReasonCodes.SigningKeyMissing), Is.True);
            Assert.That(result.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.CollateralUnavailable));
        });
    }

    private sealed class ThrowingProvider : ISnpCertificateProvider
    {
        public Task<SnpCollateral> GetCollateralAsync(Evidence.Snp.SnpReport report, CancellationToken cancellationToken = default) =>
            throw new IOException("disk on fire");
    }
}

/// <summary>Malformed bytes are malformed_evidence naming the field; an unknown signature algorithm has its own code.</summary>
[TestFixture]
public sealed class Malformed_report_is_rejected_with_malformed_evidence
{
    [TestCase(0)]
    [TestCase(0x2A0)]
    [TestCase(0x49F)]
    public void Truncated(int length)
    {
        var result = SnpVerifier.Verify(SnpVectors.ReadReport().AsSpan(0, length), SnpVectors.Sg1Collateral(), SnpVectors.Sg1Context);
        Assert.Multiple(() =>
        {
            Assert.That(result.IsAccepted, Is.False);
            Assert.That(result.HasReason(ReasonCodes.MalformedEvidence), Is.True);
            Assert.That(result.Reasons[0].Message, Does.Contain("offset"));
        });
    }

    [TestCase(0u)]
    [TestCase(99u)]
    public void Absurd_version(uint version)
    {
        var bytes = SnpVectors.ReadReport();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, version);
        var result = SnpVerifier.Verify(bytes, SnpVectors.Sg1Collateral(), SnpVectors.Sg1Context);
        Assert.Multiple(() =>
        {
            Assert.That(result.HasReason(ReasonCodes.MalformedEvidence), Is.True);
            Assert.That(result.Reasons[0].Message, Does.Contain("VERSION"));
        });
    }

    [Test]
    public void Unknown_signature_algorithm_is_unsupported_signature_algorithm()
    {
        var bytes = SnpVectors.ReadReport();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x34), 2);
        var result = SnpVerifier.Verify(bytes, SnpVectors.Sg1Collateral(), SnpVectors.Sg1Context);
        Assert.That(result.HasReason(ReasonCodes.UnsupportedSignatureAlgorithm), Is.True);
    }
}

/// <summary>With SkipCrl the result says the CRL was not checked; it is still accepted.</summary>
[TestFixture]
public sealed class Skipping_crls_is_reported_as_crl_not_checked
{
    [Test]
    public void Skipped()
    {
        var context = SnpVectors.Sg1Context with { SkipCrl = true };
        var result = SnpVerifier.Verify(SnpVectors.ReadReport(), SnpVectors.Sg1Collateral(), context);
        Assert.Multiple(() =>
        {
            Assert.That(result.IsAccepted, Is.True);
            Assert.That(result.CrlChecked, Is.False);
            Assert.That(result.Notes.Single(n => n.Code == ReasonCodes.CrlNotChecked).Message, Does.Contain("skipped"));
        });
    }
}
