using System.Buffers.Binary;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim.ConfigFs;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Snp;

namespace AttestBroker.HardwareSim.Tests;

[TestFixture]
public sealed class A_configfs_tsm_report_directory_is_laid_out_like_the_kernels
{
    [Test]
    public void Tdx_report_directory_has_the_attribute_files_and_the_quote_in_outblob()
    {
        var dir = SimTestEnvironment.TempDir();
        try
        {
            var rd = Enumerable.Repeat((byte)0x5A, 64).ToArray();
            var evidence = ConfigFsTsmLayout.WriteReport(dir, SimTestEnvironment.Pki, SimProfile.Default(), TeeKind.Tdx, new EvidenceOptions { ReportData = rd });
            Assert.That(Directory.EnumerateFiles(dir).Select(Path.GetFileName), Is.EquivalentTo(new[] { "inblob", "outblob", "auxblob", "provider", "generation", "privlevel_floor" }));
            Assert.That(File.ReadAllText(Path.Combine(dir, "provider")).Trim(), Is.EqualTo("tdx_guest"));
            Assert.That(File.ReadAllText(Path.Combine(dir, "generation")).Trim(), Is.EqualTo("1"));
            Assert.That(File.ReadAllBytes(Path.Combine(dir, "inblob")), Is.EqualTo(rd));
            Assert.That(File.ReadAllBytes(Path.Combine(dir, "outblob")), Is.EqualTo(evidence));
            Assert.That(EvidenceDetector.Detect(evidence), Is.EqualTo(TeeKind.Tdx));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [TestCase(SnpSigningKey.Vcek)]
    [TestCase(SnpSigningKey.Vlek)]
    public void Snp_auxblob_is_a_ghcb_certificate_table_with_the_endorsement_key_and_its_chain(SnpSigningKey key)
    {
        var dir = SimTestEnvironment.TempDir();
        try
        {
            ConfigFsTsmLayout.WriteReport(dir, SimTestEnvironment.Pki, SimProfile.Default(), TeeKind.SevSnp, new EvidenceOptions { SigningKey = key });
            Assert.That(File.ReadAllText(Path.Combine(dir, "provider")).Trim(), Is.EqualTo("sev_guest"));
            var aux = File.ReadAllBytes(Path.Combine(dir, "auxblob"));
            var entries = new List<(Guid Guid, X509Certificate2 Cert)>();
            for (var off = 0; ; off += 24)
            {
                var entry = aux.AsSpan(off, 24);
                if (!entry.ContainsAnyExcept((byte)0))
                {
                    break;
                }

                var guid = new Guid(entry[..16], bigEndian: true);
                var offset = (int)BinaryPrimitives.ReadUInt32LittleEndian(entry[16..]);
                var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(entry[20..]);
                Assert.That(offset + length, Is.LessThanOrEqualTo(aux.Length));
                entries.Add((guid, X509CertificateLoader.LoadCertificate(aux.AsSpan(offset, length))));
            }

            var expectedKey = key == SnpSigningKey.Vlek ? ConfigFsTsmLayout.VlekGuid : ConfigFsTsmLayout.VcekGuid;
            Assert.That(entries.Select(e => e.Guid), Is.EqualTo(new[] { expectedKey, ConfigFsTsmLayout.AskGuid, ConfigFsTsmLayout.ArkGuid }));
            Assert.That(entries[0].Cert.Subject, Does.Contain(key == SnpSigningKey.Vlek ? "SEV-VLEK" : "SEV-VCEK"));
            Assert.That(entries[0].Cert.Issuer, Is.EqualTo(entries[1].Cert.Subject));
            Assert.That(entries[1].Cert.Issuer, Is.EqualTo(entries[2].Cert.Subject));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void The_vcek_guid_is_written_in_rfc4122_byte_order()
    {
        var table = ConfigFsTsmLayout.CertificateTable([(ConfigFsTsmLayout.VcekGuid, [1])]);
        Assert.That(Convert.ToHexStringLower(table.AsSpan(0, 16)), Is.EqualTo("63da758de6644564adc5f4b93be8accd"));
    }
}
