using AttestBroker.Evidence.Snp;
using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Evidence.Tests.Snp;

/// <summary>Whatever the bytes, the SNP parser returns a report or throws EvidenceFormatException; nothing else.</summary>
[TestFixture]
public sealed class Snp_parser_throws_only_evidence_format_exceptions
{
    private static void ParseOrFormatError(byte[] bytes)
    {
        try
        {
            var r = SnpReport.Parse(bytes);
            Assert.That(r.Raw.Length, Is.EqualTo(SnpReportLayout.ReportSize));
            _ = r.ReportedTcb.For(r.ProductFromCpuid);
        }
        catch (EvidenceFormatException)
        {
            // the only acceptable failure
        }
    }

    [Test]
    public void Random_bytes_never_throw_anything_but_evidence_format_exception() =>
        Gen.Byte.Array[0, 2000].Sample(ParseOrFormatError, iter: 3000);

    [Test]
    public void Random_report_sized_bytes_never_throw_anything_but_evidence_format_exception() =>
        Gen.Byte.Array[SnpReportLayout.ReportSize].Sample(ParseOrFormatError, iter: 3000);

    [Test]
    public void Random_mutations_of_sg1_never_throw_anything_but_evidence_format_exception()
    {
        var original = SnpTestReports.ReadSg1();
        var mutation = Gen.Select(Gen.Int[0, original.Length - 1], Gen.Byte).Array[1, 8];
        var cut = Gen.Int[0, original.Length + 16];
        Gen.Select(mutation, cut).Sample(t =>
        {
            var (changes, length) = t;
            var bytes = new byte[length];
            original.AsSpan(0, Math.Min(length, original.Length)).CopyTo(bytes);
            foreach (var (at, value) in changes)
            {
                if (at < bytes.Length)
                {
                    bytes[at] = value;
                }
            }

            ParseOrFormatError(bytes);
        }, iter: 5000);
    }
}
