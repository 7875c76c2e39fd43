using AttestBroker.Evidence.Tdx;
using AttestBroker.Testing;
using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Evidence.Tests.Tdx;

/// <summary>Whatever the bytes, the parser either returns a quote or throws EvidenceFormatException; nothing else.</summary>
[TestFixture]
public sealed class Parser_throws_only_evidence_format_exceptions
{
    private static void ParseOrFormatError(byte[] bytes)
    {
        try
        {
            var q = TdxQuote.Parse(bytes);
            Assert.That(q.QuoteEnd, Is.LessThanOrEqualTo(bytes.Length));
            Assert.That(q.TrailingByteCount, Is.GreaterThanOrEqualTo(0));
        }
        catch (EvidenceFormatException)
        {
            // the only acceptable failure
        }
    }

    [Test]
    public void Random_bytes_never_throw_anything_but_evidence_format_exception()
    {
        Gen.Byte.Array[0, 6000].Sample(ParseOrFormatError, iter: 3000);
    }

    [Test]
    public void Random_bytes_behind_a_valid_tdx_header_never_throw_anything_but_evidence_format_exception()
    {
        var header = Vectors.Read("tdx/go-tdx-guest/quote_v5_sample.dat").AsSpan(0, 0x36).ToArray();
        Gen.Byte.Array[0, 6000].Sample(tail => ParseOrFormatError([.. header, .. tail]), iter: 2000);
    }

    [TestCase("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat")]
    [TestCase("tdx/go-tdx-guest/quote_v5_sample.dat")]
    [TestCase("tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat")]
    public void Random_mutations_of_a_real_quote_never_throw_anything_but_evidence_format_exception(string vector)
    {
        var original = Vectors.Read(vector);
        var mutation = Gen.Select(Gen.Int[0, original.Length - 1], Gen.Byte).Array[1, 8];
        var cut = Gen.Int[0, original.Length];
        Gen.Select(mutation, cut).Sample(t =>
        {
            var (changes, length) = t;
            var bytes = original.AsSpan(0, length).ToArray();
            foreach (var (at, value) in changes)
            {
                if (at < bytes.Length)
                {
                    bytes[at] = value;
                }
            }

            ParseOrFormatError(bytes);
        }, iter: 3000);
    }
}
