using System.Buffers.Binary;
using AttestBroker.Evidence.Snp;
using NUnit.Framework;
using L = AttestBroker.Evidence.Snp.SnpReportLayout;

namespace AttestBroker.Evidence.Tests.Snp;

/// <summary>A report cut at any field boundary (or anywhere) is rejected with the field it cuts named.</summary>
[TestFixture]
public sealed class Truncated_report_is_rejected_naming_the_cut_field
{
    private static readonly (int Length, string Field)[] Boundaries =
    [
        (0, "VERSION"), (L.GuestSvn, "GUEST_SVN"), (L.Policy, "POLICY"), (L.FamilyId, "FAMILY_ID"), (L.ImageId, "IMAGE_ID"),
        (L.Vmpl, "VMPL"), (L.SignatureAlgo, "SIGNATURE_ALGO"), (L.CurrentTcb, "CURRENT_TCB"), (L.PlatformInfo, "PLATFORM_INFO"),
        (L.SignerInfo, "SIGNER_INFO"), (L.Reserved04C, "RESERVED"), (L.ReportData, "REPORT_DATA"), (L.Measurement, "MEASUREMENT"),
        (L.HostData, "HOST_DATA"), (L.IdKeyDigest, "ID_KEY_DIGEST"), (L.AuthorKeyDigest, "AUTHOR_KEY_DIGEST"),
        (L.ReportId, "REPORT_ID"), (L.ReportIdMa, "REPORT_ID_MA"), (L.ReportedTcb, "REPORTED_TCB"), (L.CpuidFamId, "CPUID_FAM_ID"),
        (L.ChipId, "CHIP_ID"), (L.CommittedTcb, "COMMITTED_TCB"), (L.CurrentBuild, "CURRENT_VERSION"),
        (L.CommittedBuild, "COMMITTED_VERSION"), (L.LaunchTcb, "LAUNCH_TCB"), (L.LaunchMitVector, "LAUNCH_MIT_VECTOR"),
        (L.CurrentMitVector, "CURRENT_MIT_VECTOR"), (L.Reserved208, "RESERVED"), (L.SignatureR, "SIGNATURE_R"),
        (L.SignatureS, "SIGNATURE_S"), (L.SignatureReserved, "SIGNATURE"), (L.ReportSize - 1, "SIGNATURE"),
    ];

    private static IEnumerable<TestCaseData> Cases() => Boundaries.Select(b => new TestCaseData(b.Length, b.Field).SetName($"Cut_at_0x{b.Length:x}_names_{b.Field}"));

    [TestCaseSource(nameof(Cases))]
    public void Cut_at_a_field_boundary(int length, string field)
    {
        var bytes = SnpTestReports.ReadSg1().AsSpan(0, length).ToArray();
        var e = Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes));
        Assert.Multiple(() =>
        {
            Assert.That(e!.Field, Is.EqualTo(field));
            Assert.That(e.Offset, Is.LessThanOrEqualTo(length));
            Assert.That(e.Message, Does.Contain("truncated"));
        });
    }

    [Test]
    public void Every_shorter_length_is_rejected()
    {
        var full = SnpTestReports.ReadSg1();
        for (var n = 0; n < full.Length; n++)
        {
            var n1 = n;
            Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(full.AsSpan(0, n1)), $"length {n}");
        }
    }
}

/// <summary>Bytes after the 0x4A0-byte report are rejected: a raw report is exactly that size.</summary>
[TestFixture]
public sealed class Report_with_trailing_bytes_is_rejected
{
    [TestCase(1)]
    [TestCase(4000)]
    public void Trailing_bytes(int extra)
    {
        var bytes = new byte[L.ReportSize + extra];
        SnpTestReports.ReadSg1().CopyTo(bytes, 0);
        var e = Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes));
        Assert.That(e!.Offset, Is.EqualTo(L.ReportSize));
    }
}

/// <summary>Unknown versions, signature algorithms and reserved values are typed format errors naming the field.</summary>
[TestFixture]
public sealed class Report_with_invalid_header_values_is_rejected_naming_the_field
{
    private static byte[] With(Action<byte[]> change)
    {
        var bytes = SnpTestReports.ReadSg1();
        change(bytes);
        return bytes;
    }

    private static void AssertRejected(byte[] bytes, string field, int offset)
    {
        var e = Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes));
        Assert.Multiple(() =>
        {
            Assert.That(e!.Field, Is.EqualTo(field));
            Assert.That(e.Offset, Is.EqualTo(offset));
        });
    }

    [TestCase(0u)]
    [TestCase(1u)]
    [TestCase(6u)]
    [TestCase(0x100u)]
    [TestCase(0xFFFFFFFFu)]
    public void Absurd_version(uint version) =>
        AssertRejected(With(b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(L.Version), version)), "VERSION", L.Version);

    [TestCase(0u)]
    [TestCase(2u)]
    [TestCase(0xFFFFFFFFu)]
    public void Unknown_signature_algorithm(uint algo) =>
        AssertRejected(With(b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(L.SignatureAlgo), algo)), "SIGNATURE_ALGO", L.SignatureAlgo);

    [Test]
    public void Policy_bit_17_clear() =>
        AssertRejected(With(b => b[L.Policy + 2] &= unchecked((byte)~0x02)), "POLICY", L.Policy);

    [TestCase(26)]
    [TestCase(40)]
    [TestCase(63)]
    public void Reserved_policy_bit_set(int bit) =>
        AssertRejected(With(b => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(L.Policy), BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(L.Policy)) | (1UL << bit))), "POLICY", L.Policy);

    [TestCase(2u)]
    [TestCase(3u)]
    [TestCase(6u)]
    public void Reserved_signing_key_value(uint key) =>
        AssertRejected(With(b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(L.SignerInfo), key << 2)), "SIGNING_KEY", L.SignerInfo);

    [Test]
    public void Reserved_signer_info_bits_set() =>
        AssertRejected(With(b => b[L.SignerInfo + 3] = 0x80), "SIGNER_INFO", L.SignerInfo);

    [TestCase(L.Reserved04C)]
    [TestCase(L.Reserved188)]
    [TestCase(L.Reserved18B + 5)]
    [TestCase(L.Reserved1EB)]
    [TestCase(L.Reserved1EF)]
    [TestCase(L.Reserved1F8)]
    [TestCase(L.Reserved208 + 7)]
    [TestCase(L.SignedLength - 1)]
    public void Reserved_byte_in_the_signed_area_set(int offset) =>
        AssertRejected(With(b => b[offset] = 0x5A), "RESERVED", offset);

    [TestCase(L.SignatureReserved)]
    [TestCase(L.ReportSize - 1)]
    public void Reserved_byte_in_the_signature_set(int offset) =>
        AssertRejected(With(b => b[offset] = 1), "SIGNATURE", offset);

    [Test]
    public void Unsigned_report_parses_and_says_so()
    {
        var r = SnpReport.Parse(With(b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(L.SignerInfo), 7u << 2)));
        Assert.That(r.SigningKey, Is.EqualTo(SnpSigningKey.None));
    }

    [Test]
    public void Non_zero_high_signature_bytes_parse_but_are_flagged()
    {
        var r = SnpReport.Parse(With(b => b[L.SignatureS + 60] = 1));
        Assert.That(r.SignatureHighBytesZero, Is.False);
    }
}
