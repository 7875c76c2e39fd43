using System.Security.Cryptography.X509Certificates;
using AttestBroker.HardwareSim.Crypto;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;
using AttestBroker.Testing;
using AttestBroker.Verification;
using ParsedQuote = AttestBroker.Evidence.Tdx.TdxQuote;

namespace AttestBroker.HardwareSim.Tests;

[TestFixture]
public sealed class A_seeded_pki_is_deterministic
{
    [Test]
    public void The_same_seed_gives_byte_identical_intel_certificates_and_leaves()
    {
        using var a = SimPki.Create(42, []);
        using var b = SimPki.Create(42, []);
        var platform = new TdxPlatform();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(a.IntelRoot.Certificate.RawData, Is.EqualTo(b.IntelRoot.Certificate.RawData));
            Assert.That(a.PckPlatformCa.Certificate.RawData, Is.EqualTo(b.PckPlatformCa.Certificate.RawData));
            Assert.That(a.TcbSigning.Certificate.RawData, Is.EqualTo(b.TcbSigning.Certificate.RawData));
            Assert.That(a.IssuePck(platform).Certificate.RawData, Is.EqualTo(b.IssuePck(platform).Certificate.RawData));
            Assert.That(a.AttestationKey(platform).EcPublicPointRaw(), Is.EqualTo(b.AttestationKey(platform).EcPublicPointRaw()));
        }
    }

    [Test]
    public void Different_seeds_give_different_roots()
    {
        using var a = SimPki.Create(1, []);
        using var b = SimPki.Create(2, []);
        Assert.That(a.IntelRoot.Certificate.RawData, Is.Not.EqualTo(b.IntelRoot.Certificate.RawData));
    }

    [Test]
    public void Seeded_rsa_keys_and_pss_signatures_are_deterministic()
    {
        using var s1 = SeedMaterial.FromNumber(9);
        using var s2 = SeedMaterial.FromNumber(9);
        var k1 = SimKey.FromPair(s1.RsaKey("ark:test", 2048));
        var k2 = SimKey.FromPair(s2.RsaKey("ark:test", 2048));
        Assert.That(k1.SubjectPublicKeyInfo(), Is.EqualTo(k2.SubjectPublicKeyInfo()));
        Assert.That(k1.SignRsaPssSha384([1, 2, 3]), Is.EqualTo(k2.SignRsaPssSha384([1, 2, 3])));
    }

    [Test]
    public void Root_subjects_say_they_are_simulated()
    {
        var pki = SimTestEnvironment.Pki;
        Assert.That(pki.IntelRoot.Certificate.Subject, Does.Contain("Simulated"));
        foreach (var chain in pki.Amd.Values)
        {
            Assert.That(chain.Ark.Certificate.Subject, Does.Contain("Simulated"));
            Assert.That(chain.Ask.Certificate.Subject, Does.Contain("SIMULATED"));
        }
    }
}

[TestFixture]
public sealed class The_pki_directory_holds_public_certificates_and_owner_only_keys
{
    [Test]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    [Platform(Exclude = "Win", Reason = "POSIX file modes only")]
    public void Private_keys_and_the_seed_are_mode_0600()
    {

        var keys = Directory.EnumerateFiles(SimTestEnvironment.PkiDir, "*.key.pem", SearchOption.AllDirectories).Append(Path.Combine(SimTestEnvironment.PkiDir, SimPki.SeedFile)).ToList();
        Assert.That(keys, Has.Count.EqualTo(3 + 1 + 9 + 6 + 1), "Intel CAs, default PCK, AMD CAs, default VCEK/VLEK per product, seed");
        foreach (var k in keys)
        {
            Assert.That(File.GetUnixFileMode(k), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), k);
        }
    }

    [Test]
    public void A_saved_pki_loads_back_with_the_same_certificates_and_working_keys()
    {
        using var loaded = SimPki.Load(SimTestEnvironment.PkiDir);
        var original = SimTestEnvironment.Pki;
        Assert.That(loaded.IntelRoot.Certificate.RawData, Is.EqualTo(original.IntelRoot.Certificate.RawData));
        Assert.That(loaded.Chain(AmdProduct.Genoa).Asvk.Certificate.RawData, Is.EqualTo(original.Chain(AmdProduct.Genoa).Asvk.Certificate.RawData));
        var platform = new TdxPlatform();
        Assert.That(loaded.IssuePck(platform).Certificate.RawData, Is.EqualTo(original.IssuePck(platform).Certificate.RawData), "leaves derive from the saved seed");
    }

    [Test]
    public void A_directory_that_is_not_a_pki_is_refused_with_a_clear_error()
    {
        var dir = SimTestEnvironment.TempDir();
        var ex = Assert.Throws<SimulatorException>(() => SimPki.Load(dir));
        Assert.That(ex!.Message, Does.Contain("attest-sim init"));
        Directory.Delete(dir, true);
    }
}

[TestFixture]
public sealed class SimulatorTrust_adds_the_simulated_roots_marked_simulated
{
    [Test]
    public void Intel_root_and_three_arks_become_simulated_anchors_with_asks_and_asvks_as_intermediates()
    {
        var store = SimulatorTrust.AddFromPkiDirectory(TrustStore.Production, SimTestEnvironment.PkiDir);
        var added = store.Anchors.Where(a => a.Simulated).ToList();
        Assert.That(added, Has.Count.EqualTo(4));
        Assert.That(added.Count(a => a.Vendor == TrustVendor.Intel && a.Product is null), Is.EqualTo(1));
        Assert.That(added.Where(a => a.Vendor == TrustVendor.Amd).Select(a => a.Product), Is.EquivalentTo(new[] { "Milan", "Genoa", "Turin" }));
        Assert.That(store.KnownIntermediates.Count(i => i.Simulated), Is.EqualTo(6));
        Assert.That(store.TrustsSimulator, Is.True);
        Assert.That(TrustStore.Production.TrustsSimulator, Is.False, "the production store is never changed");
    }

    [Test]
    public void A_folder_without_simulated_roots_is_refused()
    {
        var dir = SimTestEnvironment.TempDir();
        Assert.Throws<InvalidOperationException>(() => SimulatorTrust.AddFromPkiDirectory(TrustStore.Production, dir));
        Directory.Delete(dir, true);
    }

    [Test]
    public void A_root_file_that_holds_a_private_key_is_refused()
    {
        var dir = SimTestEnvironment.TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "intel"));
        File.WriteAllText(Path.Combine(dir, "intel", "root-ca.pem"), SimTestEnvironment.Pki.IntelRoot.CertificatePem + "\n" + SimTestEnvironment.Pki.IntelRoot.Key.ExportPkcs8Pem());
        var ex = Assert.Throws<InvalidOperationException>(() => SimulatorTrust.AddFromPkiDirectory(TrustStore.Production, dir));
        Assert.That(ex!.Message, Does.Contain("private key"));
        Assert.That(ex.Message, Does.Not.Contain("BEGIN"));
        Directory.Delete(dir, true);
    }
}

/// <summary>The vendor extensions are encoded exactly as Intel's and AMD's real certificates encode them.</summary>
[TestFixture]
public sealed class Vendor_extensions_match_the_real_certificates_encoding
{
    [Test]
    public void Sgx_extension_for_the_GT2_platform_values_equals_the_real_PCK_extension_bytes()
    {
        var quote = ParsedQuote.Parse(Vectors.Read("tdx/go-tdx-guest/quote_v5_sample.dat"));
        var realPck = X509Certificate2.CreateFromPem(quote.PckCertChainPem);
        var real = realPck.Extensions[VendorExtensions.SgxExtensionOid]!;

        // Values from VECTORS.md (GT-2 PCK leaf).
        var platform = new TdxPlatform
        {
            Ppid = Convert.FromHexString("2734b654f553596897eaadfb5667a954"),
            SgxTcbComponents = [4, 4, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0],
            PceSvn = 13,
            CpuSvn = Convert.FromHexString("04040202040100050000000000000000"),
            PceId = [0, 0],
            Fmspc = Convert.FromHexString("90c06f000000"),
            SgxType = 1,
            PlatformInstanceId = Convert.FromHexString("056d0350250988808a9d09103f3e54d5"),
            DynamicPlatform = true,
            CachedKeys = true,
            SmtEnabled = true,
        };
        var mine = VendorExtensions.SgxPckExtension(platform);
        Assert.That(mine.RawData, Is.EqualTo(real.RawData));
        Assert.That(mine.Critical, Is.EqualTo(real.Critical));
    }

    [Test]
    public void Amd_vcek_extensions_for_the_SG1_values_equal_the_real_VCEK_extensions()
    {
        var realVcek = X509CertificateLoader.LoadCertificate(Vectors.Read("snp/go-sev-guest/vcek.testcer.der"));
        var chipId = realVcek.Extensions[VendorExtensions.AmdOidPrefix + ".4"]!.RawData;
        var mine = VendorExtensions.AmdEndorsementExtensions(AmdProduct.Milan, new SnpTcb(Bootloader: 2, Tee: 0, Snp: 5, Microcode: 68), chipId, null);
        var real = realVcek.Extensions.Cast<X509Extension>().ToList();
        Assert.That(mine.Select(e => e.Oid!.Value), Is.EqualTo(real.Select(e => e.Oid!.Value)), "same extensions in the same order");
        for (var i = 0; i < real.Count; i++)
        {
            Assert.That(mine[i].RawData, Is.EqualTo(real[i].RawData), real[i].Oid!.Value);
        }
    }

    [Test]
    public void Amd_certificates_are_signed_with_rsassa_pss_sha384_parameters_like_amds()
    {
        var realVcek = X509CertificateLoader.LoadCertificate(Vectors.Read("snp/go-sev-guest/vcek.testcer.der"));
        var simulatedAsk = SimTestEnvironment.Pki.Chain(AmdProduct.Milan).Ask.Certificate;
        Assert.That(SignatureAlgorithmOf(simulatedAsk), Is.EqualTo(SignatureAlgorithmOf(realVcek)));
    }

    private static byte[] SignatureAlgorithmOf(X509Certificate2 cert)
    {
        var reader = new System.Formats.Asn1.AsnReader(cert.RawData, System.Formats.Asn1.AsnEncodingRules.DER).ReadSequence();
        reader.ReadEncodedValue(); // tbsCertificate
        return reader.ReadEncodedValue().ToArray();
    }
}
