using AttestBroker.Evidence.Snp;
using NUnit.Framework;

namespace AttestBroker.Evidence.Tests.Snp;

/// <summary>SG-1 (go-sev-guest attestation.bin, a real Milan v2 report) parses with every field as VECTORS.md §4.2 lists it.</summary>
[TestFixture]
public sealed class Sg1_report_parses_with_every_documented_field
{
    private SnpReport _r = null!;

    [SetUp]
    public void Parse() => _r = SnpReport.Parse(SnpTestReports.ReadSg1());

    private static string Hex(ReadOnlyMemory<byte> m) => Convert.ToHexStringLower(m.Span);

    [Test]
    public void Header_fields_match()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_r.Version, Is.EqualTo(2));
            Assert.That(_r.GuestSvn, Is.Zero);
            Assert.That(_r.Policy.Raw, Is.EqualTo(0xb0000UL));
            Assert.That(_r.Vmpl, Is.Zero);
            Assert.That(_r.SignatureAlgo, Is.EqualTo(1));
            Assert.That(_r.PlatformInfo.Raw, Is.EqualTo(1UL));
            Assert.That(_r.PlatformInfo.SmtEnabled, Is.True);
            Assert.That(_r.AuthorKeyEnabled, Is.False);
            Assert.That(_r.MaskChipKey, Is.False);
            Assert.That(_r.SigningKey, Is.EqualTo(SnpSigningKey.Vcek));
        });
    }

    [Test]
    public void Policy_bits_decode_as_debug_and_smt()
    {
        var p = _r.Policy;
        Assert.Multiple(() =>
        {
            Assert.That(p.AbiMinor, Is.Zero);
            Assert.That(p.AbiMajor, Is.Zero);
            Assert.That(p.SmtAllowed, Is.True);
            Assert.That(p.ReservedBit17, Is.True);
            Assert.That(p.MigrateMa, Is.False);
            Assert.That(p.Debug, Is.True);
            Assert.That(p.SingleSocket, Is.False);
            Assert.That(p.CxlAllow, Is.False);
            Assert.That(p.MemAes256Xts, Is.False);
            Assert.That(p.RaplDis, Is.False);
            Assert.That(p.CiphertextHiding, Is.False);
            Assert.That(p.PageSwapDisable, Is.False);
        });
    }

    [Test]
    public void Digests_and_ids_match()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Hex(_r.FamilyId), Is.EqualTo(new string('0', 32)));
            Assert.That(Hex(_r.ImageId), Is.EqualTo(new string('0', 32)));
            Assert.That(Hex(_r.ReportData), Is.EqualTo("0102030405" + new string('0', 118)));
            Assert.That(Hex(_r.Measurement), Is.EqualTo("b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"));
            Assert.That(Hex(_r.HostData), Is.EqualTo(new string('0', 64)));
            Assert.That(Hex(_r.IdKeyDigest), Is.EqualTo(new string('0', 96)));
            Assert.That(Hex(_r.AuthorKeyDigest), Is.EqualTo(new string('0', 96)));
            Assert.That(Hex(_r.ReportId), Is.EqualTo("8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a"));
            Assert.That(Hex(_r.ReportIdMa), Is.EqualTo(new string('f', 64)));
            Assert.That(Hex(_r.ChipId), Is.EqualTo("3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d"));
            Assert.That(_r.ChipIdIsZero, Is.False);
        });
    }

    [Test]
    public void Tcb_versions_decode_with_the_milan_layout()
    {
        var expected = new SnpTcbComponents(null, 2, 0, 5, 68);
        Assert.Multiple(() =>
        {
            foreach (var tcb in new[] { _r.ReportedTcb, _r.CurrentTcb, _r.CommittedTcb, _r.LaunchTcb })
            {
                Assert.That(tcb.Raw, Is.EqualTo(0x4405000000000002UL));
                Assert.That(tcb.MilanGenoa, Is.EqualTo(expected));
                Assert.That(tcb.For(SnpProduct.Milan), Is.EqualTo(expected));
            }
        });
    }

    [Test]
    public void Firmware_versions_are_1_49_3()
    {
        Assert.Multiple(() =>
        {
            Assert.That((_r.CurrentMajor, _r.CurrentMinor, _r.CurrentBuild), Is.EqualTo(((byte)1, (byte)49, (byte)3)));
            Assert.That((_r.CommittedMajor, _r.CommittedMinor, _r.CommittedBuild), Is.EqualTo(((byte)1, (byte)49, (byte)3)));
        });
    }

    [Test]
    public void Version_2_has_no_cpuid_and_no_mitigation_vectors()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_r.CpuidFamilyId, Is.Null);
            Assert.That(_r.CpuidModelId, Is.Null);
            Assert.That(_r.CpuidStepping, Is.Null);
            Assert.That(_r.ProductFromCpuid, Is.EqualTo(SnpProduct.Unknown));
            Assert.That(_r.LaunchMitVector, Is.Null);
            Assert.That(_r.CurrentMitVector, Is.Null);
        });
    }

    [Test]
    public void Signed_bytes_are_the_first_0x2a0_bytes_and_signature_fields_are_exposed()
    {
        var raw = SnpTestReports.ReadSg1();
        Assert.Multiple(() =>
        {
            Assert.That(_r.SignedBytes.ToArray(), Is.EqualTo(raw.AsSpan(0, 0x2A0).ToArray()));
            Assert.That(_r.SignatureR.ToArray(), Is.EqualTo(raw.AsSpan(0x2A0, 72).ToArray()));
            Assert.That(_r.SignatureS.ToArray(), Is.EqualTo(raw.AsSpan(0x2E8, 72).ToArray()));
            Assert.That(_r.SignatureHighBytesZero, Is.True);
            Assert.That(_r.Raw.ToArray(), Is.EqualTo(raw));
        });
    }
}

/// <summary>Version 3/4/5 fields: CPUID identifies the product, v5 adds the mitigation vectors.</summary>
[TestFixture]
public sealed class Newer_report_versions_expose_cpuid_and_mitigation_vectors
{
    [TestCase((byte)0x19, (byte)0x01, SnpProduct.Milan)]
    [TestCase((byte)0x19, (byte)0x11, SnpProduct.Genoa)]
    [TestCase((byte)0x19, (byte)0xA0, SnpProduct.Genoa)]
    [TestCase((byte)0x1A, (byte)0x02, SnpProduct.Turin)]
    [TestCase((byte)0x1A, (byte)0x50, SnpProduct.Unknown)]
    [TestCase((byte)0x17, (byte)0x31, SnpProduct.Unknown)]
    public void V3_cpuid_names_the_product(byte family, byte model, SnpProduct product)
    {
        var r = SnpReport.Parse(SnpTestReports.AsV3(SnpTestReports.ReadSg1(), family, model, 1));
        Assert.Multiple(() =>
        {
            Assert.That(r.Version, Is.EqualTo(3));
            Assert.That(r.CpuidFamilyId, Is.EqualTo(family));
            Assert.That(r.CpuidModelId, Is.EqualTo(model));
            Assert.That(r.CpuidStepping, Is.EqualTo(1));
            Assert.That(r.ProductFromCpuid, Is.EqualTo(product));
        });
    }

    [Test]
    public void Version_4_is_parsed_like_version_3()
    {
        var r = SnpReport.Parse(SnpTestReports.AsV3(SnpTestReports.ReadSg1(), 0x19, 0x11, 1, version: 4));
        Assert.Multiple(() =>
        {
            Assert.That(r.Version, Is.EqualTo(4));
            Assert.That(r.ProductFromCpuid, Is.EqualTo(SnpProduct.Genoa));
            Assert.That(r.LaunchMitVector, Is.Null);
        });
    }

    [Test]
    public void V5_mitigation_vectors_are_read()
    {
        var r = SnpReport.Parse(SnpTestReports.AsV5(SnpTestReports.ReadSg1(), 0x0102030405060708, 0x1122334455667788));
        Assert.Multiple(() =>
        {
            Assert.That(r.Version, Is.EqualTo(5));
            Assert.That(r.LaunchMitVector, Is.EqualTo(0x0102030405060708UL));
            Assert.That(r.CurrentMitVector, Is.EqualTo(0x1122334455667788UL));
        });
    }

    [Test]
    public void Mitigation_vector_bytes_in_a_v3_report_are_reserved_and_rejected()
    {
        var bytes = SnpTestReports.AsV3(SnpTestReports.ReadSg1(), 0x19, 0x11, 1);
        bytes[SnpReportLayout.LaunchMitVector] = 1;
        var e = Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes));
        Assert.That(e!.Offset, Is.EqualTo(SnpReportLayout.LaunchMitVector));
    }
}

/// <summary>TCB_VERSION decodes per product: Milan/Genoa bytes 0,1,6,7; Turin bytes 0,1,2,3,7.</summary>
[TestFixture]
public sealed class Tcb_version_decodes_per_product
{
    [Test]
    public void Both_layouts_are_exposed_for_the_same_raw_value()
    {
        var tcb = SnpTcbVersion.Read([0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x07, 0x08]);
        Assert.Multiple(() =>
        {
            Assert.That(tcb.MilanGenoa, Is.EqualTo(new SnpTcbComponents(null, 1, 2, 7, 8)));
            Assert.That(tcb.Turin, Is.EqualTo(new SnpTcbComponents(1, 2, 3, 4, 8)));
            Assert.That(tcb.For(SnpProduct.Genoa), Is.EqualTo(tcb.MilanGenoa));
            Assert.That(tcb.For(SnpProduct.Turin), Is.EqualTo(tcb.Turin));
            Assert.That(tcb.MilanGenoaReservedZero, Is.False);
            Assert.That(tcb.TurinReservedZero, Is.False);
        });
    }

    [Test]
    public void Reserved_byte_checks_follow_the_layout()
    {
        var milan = SnpTcbVersion.Read([2, 0, 0, 0, 0, 0, 5, 68]);
        var turin = SnpTcbVersion.Read([1, 2, 0, 5, 0, 0, 0, 68]);
        Assert.Multiple(() =>
        {
            Assert.That(milan.MilanGenoaReservedZero, Is.True);
            Assert.That(turin.TurinReservedZero, Is.True);
            Assert.That(turin.MilanGenoaReservedZero, Is.False);
        });
    }

    [TestCase("Milan-B0", SnpProduct.Milan)]
    [TestCase("Milan", SnpProduct.Milan)]
    [TestCase("Genoa-B1", SnpProduct.Genoa)]
    [TestCase("Turin-C1", SnpProduct.Turin)]
    [TestCase("milan", SnpProduct.Unknown)]
    [TestCase("Venice-A0", SnpProduct.Unknown)]
    [TestCase("", SnpProduct.Unknown)]
    public void Product_names_map_with_or_without_stepping(string name, SnpProduct product) =>
        Assert.That(SnpProducts.FromName(name), Is.EqualTo(product));
}
