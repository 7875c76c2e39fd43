using System.Security.Cryptography.X509Certificates;
using AttestBroker.Testing;
using AttestBroker.Verification.Tdx;
using NUnit.Framework;
using static AttestBroker.Verification.Tests.Tdx.TdxVectors;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>Collateral files are recognised by content, whatever their names, and unrelated files are ignored.</summary>
[TestFixture]
public sealed class Collateral_files_are_recognised_by_content
{
    private static readonly DateTimeOffset At = Gt2At;

    private static TdxCollateral Load(params string[] relative) =>
        TdxCollateralSource.FromPaths(relative.Select(Vectors.Path)).Collateral;

    [Test]
    public void Go_tdx_guest_folder_yields_two_tcb_infos_one_qe_identity_two_crls_and_the_signing_chain()
    {
        var c = Load(GoTdxGuestCollateral);
        Assert.Multiple(() =>
        {
            Assert.That(c.TcbInfos, Has.Count.EqualTo(2));
            Assert.That(c.QeIdentities, Has.Count.EqualTo(1));
            Assert.That(c.Crls, Has.Count.EqualTo(2));
            Assert.That(c.Certificates.Select(x => x.GetNameInfo(X509NameType.SimpleName, false)), Is.SupersetOf(new[] { "Intel SGX TCB Signing", "Intel SGX PCK Platform CA", "Intel SGX Root CA" }));
        });
    }

    [Test]
    public void Dcap_qvl_quote_collateral_v3_json_yields_every_item_with_its_chains()
    {
        var c = Load(DcapQvlJson);
        Assert.Multiple(() =>
        {
            Assert.That(c.TcbInfos, Has.Count.EqualTo(1));
            Assert.That(c.QeIdentities, Has.Count.EqualTo(1));
            Assert.That(c.Crls, Has.Count.EqualTo(2));
            Assert.That(c.TcbInfos[0].IssuerChain, Has.Count.EqualTo(2));
            Assert.That(c.TcbInfos[0].Signature, Has.Length.EqualTo(64));
            Assert.That(c.TcbInfos[0].SignedText, Does.StartWith("{\"id\":\"TDX\",\"version\":3,"));
        });
    }

    [Test]
    public void Pcs_response_keeps_the_exact_bytes_of_the_signed_member()
    {
        var c = Load(DcapQvlDerived);
        var text = File.ReadAllText(Vectors.Path("tdx/dcap-qvl/derived/tdx_quote_outdated/tcb_info.json"));
        var start = text.IndexOf("{\"id\"", StringComparison.Ordinal);
        var end = text.LastIndexOf(",\"signature\"", StringComparison.Ordinal);
        Assert.That(c.TcbInfos.Single().SignedText, Is.EqualTo(text[start..end]));
    }

    [Test]
    public void Amd_certificates_and_snp_reports_are_ignored_or_harmless()
    {
        var c = Load("snp/go-sev-guest");
        Assert.That(c.TcbInfos, Is.Empty);
        Assert.That(c.QeIdentities, Is.Empty);
        Assert.That(c.Crls, Is.Empty);
    }

    [Test]
    public void The_whole_vectors_folder_still_verifies_gt2_by_picking_the_right_items()
    {
        var r = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, TdxCollateralSource.FromPaths([Vectors.Dir]));
        Assert.That(r.IsAccepted, Is.True, Describe(r));
    }

    [Test]
    public void The_whole_vectors_folder_still_verifies_gt1_to_its_expected_verdict()
    {
        var r = TdxVectors.Verify(Vectors.Read(Gt1), Gt1At, TdxCollateralSource.FromPaths([Vectors.Dir]));
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.TcbLevelNotSupported }), Describe(r));
    }

    [Test]
    public void Tcb_infos_are_ranked_by_fmspc_then_validity()
    {
        var source = TdxCollateralSource.FromPaths([Vectors.Path(GoTdxGuestCollateral)]);
        var forGt2 = source.GetAsync(new TdxCollateralRequest("90c06f000000", "0000", "platform", At), CancellationToken.None).Result;
        var forGt1 = source.GetAsync(new TdxCollateralRequest("50806f000000", "0000", "platform", Gt1At), CancellationToken.None).Result;
        Assert.That(forGt2.TcbInfos[0].Source, Does.EndWith("sample_tcbinfo_response_v5.json"));
        Assert.That(forGt1.TcbInfos[0].Source, Does.EndWith("sample_tcbInfo_response.json"));
    }

    [Test]
    public void A_path_that_does_not_exist_throws_a_clear_exception_naming_it()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => TdxCollateralSource.FromPaths(["/nonexistent/tdx-collateral"]));
        Assert.That(ex!.Message, Does.Contain("/nonexistent/tdx-collateral"));
    }

    [Test]
    public void Unrecognised_files_in_a_folder_are_ignored()
    {
        var dir = Directory.CreateTempSubdirectory("tdx-collateral-test");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "notes.txt"), "not collateral");
            File.WriteAllText(Path.Combine(dir.FullName, "other.json"), "{\"hello\":1}");
            File.WriteAllBytes(Path.Combine(dir.FullName, "garbage.der"), [0x30, 0x03, 0x02, 0x01, 0x00]);
            File.WriteAllText(Path.Combine(dir.FullName, "broken.json"), "{\"tcbInfo\":");
            var c = TdxCollateralSource.FromPaths([dir.FullName]).Collateral;
            Assert.That(c.IsEmpty, Is.True);
            Assert.That(c.Certificates, Is.Empty);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}

/// <summary>The Intel SGX extension of real PCK certificates parses to the values VECTORS.md lists; damaged extensions are FormatExceptions.</summary>
[TestFixture]
public sealed class Pck_certificate_extensions_parse_from_real_certificates
{
    private static X509Certificate2 Leaf(string vector)
    {
        var q = Evidence.Tdx.TdxQuote.Parse(Vectors.Read(vector));
        var c = new X509Certificate2Collection();
        c.ImportFromPem(q.PckCertChainPem);
        return c[0];
    }

    [Test]
    public void Gt1_pck_extensions_match_the_vector_record()
    {
        var e = PckCertificateExtensions.FromCertificate(Leaf(Gt1));
        Assert.Multiple(() =>
        {
            Assert.That(e.FmspcHex, Is.EqualTo("50806f000000"));
            Assert.That(e.PceIdHex, Is.EqualTo("0000"));
            Assert.That(Convert.ToHexStringLower(e.Ppid), Is.EqualTo("089ddfdb9c0359c82a3bc7719239574e"));
            Assert.That(e.PceSvn, Is.EqualTo(11));
            Assert.That(Convert.ToHexStringLower(e.CpuSvn), Is.EqualTo("03030202020100020000000000000000"));
            Assert.That(e.SgxTcbComponents, Is.EqualTo(new[] { 3, 3, 2, 2, 2, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0 }));
            Assert.That(e.SgxType, Is.EqualTo(1));
            Assert.That(Convert.ToHexStringLower(e.PlatformInstanceId!), Is.EqualTo("8c314d17d205dfafcbecbb00fc87eff7"));
        });
    }

    [Test]
    public void Gt2_pck_extensions_match_the_vector_record()
    {
        var e = PckCertificateExtensions.FromCertificate(Leaf(Gt2));
        Assert.Multiple(() =>
        {
            Assert.That(e.FmspcHex, Is.EqualTo("90c06f000000"));
            Assert.That(e.PceSvn, Is.EqualTo(13));
            Assert.That(e.SgxTcbComponents, Is.EqualTo(new[] { 4, 4, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0 }));
            Assert.That(Convert.ToHexStringLower(e.PlatformInstanceId!), Is.EqualTo("056d0350250988808a9d09103f3e54d5"));
        });
    }

    [Test]
    public void Truncated_or_altered_extension_bytes_are_format_exceptions_never_other_exceptions()
    {
        var raw = Leaf(Gt3).Extensions[PckCertificateExtensions.SgxExtensionOid]!.RawData;
        Assert.Multiple(() =>
        {
            for (var cut = 0; cut < raw.Length; cut += 7)
            {
                Assert.Throws<FormatException>(() => PckCertificateExtensions.Parse(raw.AsMemory(0, cut)), $"cut at {cut}");
            }

            for (var i = 0; i < raw.Length; i += 5)
            {
                var changed = (byte[])raw.Clone();
                changed[i] ^= 0xFF;
                try
                {
                    PckCertificateExtensions.Parse(changed);
                }
                catch (FormatException)
                {
                    // expected for most positions
                }
            }
        });
    }

    [Test]
    public void A_certificate_without_the_sgx_extension_is_a_format_exception()
    {
        var root = X509CertificateLoader.LoadCertificate(File.ReadAllBytes(Vectors.Path("tdx/dcap-qvl/TrustedRootCA.der")));
        Assert.Throws<FormatException>(() => PckCertificateExtensions.FromCertificate(root));
    }
}
