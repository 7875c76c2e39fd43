using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using AttestBroker.Evidence.Snp;
using AttestBroker.Testing;
using AttestBroker.Verification.Collateral;
using AttestBroker.Verification.Snp;
using NUnit.Framework;

namespace AttestBroker.Verification.Tests.Snp;

/// <summary>Collateral folders are read recursively and AMD material is recognised by content among Intel files and junk.</summary>
[TestFixture]
public sealed class Collateral_folders_are_recognised_by_content
{
    [Test]
    public void The_whole_vectors_folder_verifies_sg1()
    {
        var provider = SnpCertificateSource.FromPaths([Vectors.Dir], null, null);
        var result = new SnpVerifier(provider).VerifyAsync(SnpVectors.ReadReport(), SnpVectors.Sg1Context).GetAwaiter().GetResult();
        Assert.That(result.Reasons, Is.Empty);
    }

    [Test]
    public void The_right_vcek_is_picked_among_several_by_hwid_and_tcb()
    {
        var dir = Directory.CreateTempSubdirectory("ab-snp-");
        try
        {
            var pki = SnpTestPki.Shared();
            var report = SnpVectors.ReadReport();
            var chip = SnpVectors.ChipId(report);
            var otherChip = (byte[])chip.Clone();
            otherChip[0] ^= 1;
            var (wrongTcb, k1) = pki.Mint(new EndorsementSpec { HwId = chip, Snp = 9 });
            var (wrongChip, k2) = pki.Mint(new EndorsementSpec { HwId = otherChip });
            k1.Dispose();
            k2.Dispose();
            File.WriteAllBytes(Path.Combine(dir.FullName, "a.der"), wrongTcb.RawData);
            File.WriteAllText(Path.Combine(dir.FullName, "b.pem"), wrongChip.ExportCertificatePem());
            Directory.CreateDirectory(Path.Combine(dir.FullName, "deep", "er"));
            File.Copy(Vectors.Path(SnpVectors.Vcek), Path.Combine(dir.FullName, "deep", "er", "x.bin"));
            File.WriteAllText(Path.Combine(dir.FullName, "notes.txt"), "not a certificate");
            File.WriteAllBytes(Path.Combine(dir.FullName, "junk.der"), [0x30, 0x82, 0x01]);
            File.Copy(Vectors.Path("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat"), Path.Combine(dir.FullName, "intel-quote.dat"));

            var provider = SnpCertificateSource.FromPaths([dir.FullName], null, null);
            var collateral = provider.GetCollateralAsync(SnpReport.Parse(report)).GetAwaiter().GetResult();
            var result = SnpVerifier.Verify(report, collateral, SnpVectors.Sg1Context);
            Assert.Multiple(() =>
            {
                Assert.That(collateral.EndorsementKey!.RawData, Is.EqualTo(SnpVectors.ReadVcek().RawData));
                Assert.That(result.Reasons, Is.Empty);
            });
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Test]
    public void A_pem_vcek_file_followed_by_its_chain_is_read_as_vcek_then_chain()
    {
        var path = Path.Combine(Path.GetTempPath(), $"ab-snp-{Guid.NewGuid():N}.pem");
        try
        {
            var pem = new StringBuilder(SnpVectors.ReadVcek().ExportCertificatePem()).Append('\n')
                .Append(File.ReadAllText(Vectors.Path(SnpVectors.MilanChain))).ToString();
            File.WriteAllText(path, pem);
            var collateral = SnpCertificateSource.FromPaths([], path, null).GetCollateralAsync(SnpReport.Parse(SnpVectors.ReadReport())).GetAwaiter().GetResult();
            var result = SnpVerifier.Verify(SnpVectors.ReadReport(), collateral, SnpVectors.Sg1Context);
            Assert.Multiple(() =>
            {
                Assert.That(collateral.EndorsementKey!.GetNameInfo(X509NameType.SimpleName, false), Is.EqualTo("SEV-VCEK"));
                Assert.That(collateral.Chain, Has.Count.EqualTo(2));
                Assert.That(result.Reasons, Is.Empty);
            });
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void A_host_certificate_table_auxblob_in_a_folder_verifies_sg1()
    {
        var dir = Directory.CreateTempSubdirectory("ab-snp-aux-");
        try
        {
            var chain = SnpVectors.ReadChain(SnpVectors.MilanChain);
            byte[][] items = [SnpVectors.ReadVcek().RawData, chain[0].RawData, chain[1].RawData];
            Guid[] guids = [SnpCertificateTable.VcekGuid, SnpCertificateTable.AskGuid, SnpCertificateTable.ArkGuid];
            var tableSize = (items.Length + 1) * SnpCertificateTable.EntrySize;
            var buffer = new byte[tableSize + items.Sum(i => i.Length)];
            var offset = tableSize;
            for (var i = 0; i < items.Length; i++)
            {
                var e = buffer.AsSpan(i * SnpCertificateTable.EntrySize);
                guids[i].TryWriteBytes(e[..16], bigEndian: true, out _);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(e[16..], (uint)offset);
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(e[20..], (uint)items[i].Length);
                items[i].CopyTo(buffer, offset);
                offset += items[i].Length;
            }

            File.WriteAllBytes(Path.Combine(dir.FullName, "auxblob"), buffer);
            var provider = SnpCertificateSource.FromPaths([dir.FullName], null, null);
            var collateral = provider.GetCollateralAsync(SnpReport.Parse(SnpVectors.ReadReport())).GetAwaiter().GetResult();
            var result = SnpVerifier.Verify(SnpVectors.ReadReport(), collateral, SnpVectors.Sg1Context);
            Assert.Multiple(() =>
            {
                Assert.That(collateral.EndorsementKey, Is.Not.Null);
                Assert.That(collateral.Chain, Has.Count.EqualTo(2));
                Assert.That(result.Reasons, Is.Empty);
            });
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Test]
    public void Vcek_and_ca_chain_options_verify_sg1()
    {
        var provider = SnpCertificateSource.FromPaths([], Vectors.Path(SnpVectors.Vcek), Vectors.Path(SnpVectors.MilanChain));
        var result = new SnpVerifier(provider).VerifyAsync(SnpVectors.ReadReport(), SnpVectors.Sg1Context).GetAwaiter().GetResult();
        Assert.That(result.Reasons, Is.Empty);
    }
}

/// <summary>Unreadable or missing explicit paths fail at once with a clear exception (the CLI's exit 2).</summary>
[TestFixture]
public sealed class Unreadable_explicit_paths_throw_snp_collateral_exception
{
    [Test]
    public void Missing_collateral_path() =>
        Assert.That(() => SnpCertificateSource.FromPaths(["/nonexistent/ab-snp"], null, null), Throws.TypeOf<SnpCollateralException>().With.Message.Contains("/nonexistent/ab-snp"));

    [Test]
    public void Missing_vcek_file() =>
        Assert.That(() => SnpCertificateSource.FromPaths([], "/nonexistent/vcek.der", null), Throws.TypeOf<SnpCollateralException>().With.Message.Contains("--vcek"));

    [Test]
    public void Vcek_file_that_is_not_a_certificate()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "hello");
            Assert.That(() => SnpCertificateSource.FromPaths([], path, null), Throws.TypeOf<SnpCollateralException>());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void Missing_ca_chain_file() =>
        Assert.That(() => SnpCertificateSource.FromPaths([], null, "/nonexistent/chain.pem"), Throws.TypeOf<SnpCollateralException>().With.Message.Contains("--ca-chain"));
}

/// <summary>KDS URLs: Milan/Genoa use the 64-byte hwid, Turin the first 8 bytes and fmcSPL; SPLs come from REPORTED_TCB.</summary>
[TestFixture]
public sealed class Kds_paths_follow_the_kds_interface
{
    [Test]
    public void Milan_vcek_path_for_sg1()
    {
        var r = SnpReport.Parse(SnpVectors.ReadReport());
        var path = SnpKdsPaths.Vcek(SnpProduct.Milan, r.ChipId.Span, r.ReportedTcb);
        Assert.That(path, Is.EqualTo("vcek/v1/Milan/3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68"));
    }

    [Test]
    public void Turin_vcek_path_uses_8_byte_hwid_and_fmc()
    {
        var chip = new byte[64];
        chip[0] = 0xAB;
        chip[7] = 0xCD;
        var path = SnpKdsPaths.Vcek(SnpProduct.Turin, chip, SnpTcbVersion.Read([1, 2, 3, 4, 0, 0, 0, 5]));
        Assert.That(path, Is.EqualTo("vcek/v1/Turin/ab000000000000cd?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=5"));
    }

    [Test]
    public void Chain_and_crl_paths()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SnpKdsPaths.CertChain(SnpProduct.Genoa, vlek: false), Is.EqualTo("vcek/v1/Genoa/cert_chain"));
            Assert.That(SnpKdsPaths.CertChain(SnpProduct.Turin, vlek: true), Is.EqualTo("vlek/v1/Turin/cert_chain"));
            Assert.That(SnpKdsPaths.Crl(SnpProduct.Milan, vlek: false), Is.EqualTo("vcek/v1/Milan/crl"));
        });
    }
}

/// <summary>The KDS provider fetches what files lack through the collateral cache; failures become notes and reasons.</summary>
[TestFixture]
public sealed class Kds_provider_fetches_the_vcek_chain_and_crl
{
    private DirectoryInfo _cacheDir = null!;

    [SetUp]
    public void MakeCache() => _cacheDir = Directory.CreateTempSubdirectory("ab-snp-cache-");

    [TearDown]
    public void RemoveCache() => _cacheDir.Delete(recursive: true);

    private (SnpKdsCertificateProvider Provider, FakeKds Kds, HttpClient Client) Make(ISnpCertificateProvider? local = null)
    {
        var kds = new FakeKds();
        var client = new HttpClient(kds);
        var options = new CollateralFetchOptions
        {
            AmdKdsBaseUrl = new Uri("http://127.0.0.1:9/kds"),
            CacheDirectory = _cacheDir.FullName,
            MaxAttempts = 1,
        };
        var cache = new CollateralHttpCache(client, options);
        return (new SnpKdsCertificateProvider(cache, local: local), kds, client);
    }

    [Test]
    public void Vcek_and_chain_from_the_kds_verify_sg1_and_a_missing_crl_is_noted()
    {
        var (provider, kds, client) = Make();
        using (client)
        {
            var report = SnpReport.Parse(SnpVectors.ReadReport());
            kds.Serve("/kds/" + SnpKdsPaths.Vcek(SnpProduct.Milan, report.ChipId.Span, report.ReportedTcb), Vectors.Read(SnpVectors.Vcek));
            kds.Serve("/kds/vcek/v1/Milan/cert_chain", Vectors.Read(SnpVectors.MilanChain));
            var result = new SnpVerifier(provider).VerifyAsync(SnpVectors.ReadReport(), SnpVectors.Sg1Context).GetAwaiter().GetResult();
            Assert.Multiple(() =>
            {
                Assert.That(result.Reasons, Is.Empty);
                Assert.That(result.CrlChecked, Is.False);
                Assert.That(result.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.CollateralUnavailable));
                Assert.That(result.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.CrlNotChecked));
                Assert.That(kds.Requested, Does.Contain("/kds/vcek/v1/Milan/crl"));
            });
        }
    }

    [Test]
    public void Vcek_not_served_is_rejected_with_signing_key_missing_and_a_note()
    {
        var (provider, kds, client) = Make();
        using (client)
        {
            var result = new SnpVerifier(provider).VerifyAsync(SnpVectors.ReadReport(), SnpVectors.Sg1Context).GetAwaiter().GetResult();
            Assert.Multiple(() =>
            {
                Assert.That(result.HasReason(ReasonCodes.SigningKeyMissing), Is.True);
                Assert.That(result.Notes.Select(n => n.Code), Does.Contain(ReasonCodes.CollateralUnavailable));
                Assert.That(kds.Requested.Count(p => p.Contains("/Milan/", StringComparison.Ordinal) || p.Contains("/Genoa/", StringComparison.Ordinal)), Is.GreaterThanOrEqualTo(2), "a v2 report is looked up as Milan, then Genoa");
            });
        }
    }

    [Test]
    public void Local_files_are_used_first_and_only_the_missing_crl_is_fetched()
    {
        var local = SnpCertificateSource.FromPaths([], Vectors.Path(SnpVectors.Vcek), Vectors.Path(SnpVectors.MilanChain));
        var (provider, kds, client) = Make(local);
        using (client)
        {
            var result = new SnpVerifier(provider).VerifyAsync(SnpVectors.ReadReport(), SnpVectors.Sg1Context).GetAwaiter().GetResult();
            Assert.Multiple(() =>
            {
                Assert.That(result.Reasons, Is.Empty);
                Assert.That(kds.Requested, Is.EqualTo(new[] { "/kds/vcek/v1/Milan/crl" }));
            });
        }
    }

    [Test]
    public void Turin_v3_report_fetches_the_vcek_by_8_byte_hwid_with_fmc()
    {
        var pki = SnpTestPki.Shared("Turin");
        var content = SnpVectors.AsV3(SnpVectors.ReadReport(), 0x1A, 0x02);
        byte[] tcb = [1, 2, 3, 4, 0, 0, 0, 5];
        tcb.CopyTo(content, 0x180);
        content.AsSpan(0x1A0 + 8, 56).Clear();
        var (cert, key) = pki.Mint(new EndorsementSpec { ProductName = "Turin-C1", Fmc = 1, Bl = 2, Tee = 3, Snp = 4, Ucode = 5, HwId = content.AsSpan(0x1A0, 8).ToArray() });
        byte[] signed;
        using (key)
        {
            signed = SnpVectors.Sign(content, key);
        }

        var (provider, kds, client) = Make();
        using (client)
        {
            var hwid8 = Convert.ToHexStringLower(content.AsSpan(0x1A0, 8));
            kds.Serve($"/kds/vcek/v1/Turin/{hwid8}?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=5", cert.RawData);
            kds.Serve("/kds/vcek/v1/Turin/cert_chain", System.Text.Encoding.ASCII.GetBytes(pki.IntermediatePublic.ExportCertificatePem() + "\n" + pki.ArkPublic.ExportCertificatePem()));
            kds.Serve("/kds/vcek/v1/Turin/crl", pki.Crl([], SnpTestPki.At.AddDays(-1), SnpTestPki.At.AddDays(30)));
            var result = new SnpVerifier(provider).VerifyAsync(signed, pki.Context).GetAwaiter().GetResult();
            Assert.Multiple(() =>
            {
                Assert.That(result.Reasons, Is.Empty);
                Assert.That(result.CrlChecked, Is.True);
                Assert.That(kds.Requested, Has.Count.EqualTo(3));
            });
        }
    }

    [Test]
    public void Vlek_report_asks_for_the_vlek_chain_and_never_for_a_vcek()
    {
        var pki = SnpTestPki.Shared(vlek: true);
        var content = SnpVectors.ReadReport();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(content.AsSpan(0x48), 1u << 2);
        var (cert, key) = pki.Mint(new EndorsementSpec { CspId = "test-csp" });
        byte[] signed;
        using (key)
        {
            signed = SnpVectors.Sign(content, key);
        }

        var local = new FixedProvider(new SnpCollateral { EndorsementKey = cert });
        var (provider, kds, client) = Make(local);
        using (client)
        {
            kds.Serve("/kds/vlek/v1/Milan/cert_chain", System.Text.Encoding.ASCII.GetBytes(pki.IntermediatePublic.ExportCertificatePem() + "\n" + pki.ArkPublic.ExportCertificatePem()));
            var result = new SnpVerifier(provider).VerifyAsync(signed, pki.Context).GetAwaiter().GetResult();
            Assert.Multiple(() =>
            {
                Assert.That(result.Reasons, Is.Empty);
                Assert.That(kds.Requested, Is.EquivalentTo(new[] { "/kds/vlek/v1/Milan/cert_chain", "/kds/vlek/v1/Milan/crl" }));
            });
        }
    }

    private sealed class FixedProvider(SnpCollateral collateral) : ISnpCertificateProvider
    {
        public Task<SnpCollateral> GetCollateralAsync(SnpReport report, CancellationToken cancellationToken = default) => Task.FromResult(collateral);
    }

    private sealed class FakeKds : HttpMessageHandler
    {
        private readonly Dictionary<string, byte[]> _content = new(StringComparer.Ordinal);

        public List<string> Requested { get; } = [];

        public void Serve(string pathAndQuery, byte[] body) => _content[pathAndQuery] = body;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var key = request.RequestUri!.PathAndQuery;
            Requested.Add(key);
            var response = _content.TryGetValue(key, out var body)
                ? new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) }
                : new HttpResponseMessage(HttpStatusCode.NotFound) { Content = new ByteArrayContent([]) };
            return Task.FromResult(response);
        }
    }
}
