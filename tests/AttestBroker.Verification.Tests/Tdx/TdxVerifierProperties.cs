using System.Security.Cryptography.X509Certificates;
using AttestBroker.Evidence.Tdx;
using AttestBroker.Testing;
using AttestBroker.Verification.Tdx;
using CsCheck;
using NUnit.Framework;
using static AttestBroker.Verification.Tests.Tdx.TdxVectors;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>Whatever the bytes, the verifier returns a result (never throws) and never accepts a quote whose content was changed.</summary>
[TestFixture]
public sealed class Verifier_never_throws_and_never_accepts_a_mutated_quote
{
    private static VerificationResult VerifyNoThrow(byte[] bytes, DateTimeOffset at, ITdxCollateralProvider? collateral)
    {
        VerificationResult? r = null;
        Assert.DoesNotThrow(() => r = TdxVectors.Verify(bytes, at, collateral));
        return r!;
    }

    /// <summary>True when the quote carries exactly the original's signed content, signatures, keys and certificates (PEM layout aside).</summary>
    private static bool SameContent(TdxQuote a, TdxQuote b)
    {
        static byte[][] Der(TdxQuote q)
        {
            var c = new X509Certificate2Collection();
            c.ImportFromPem(q.PckCertChainPem);
            return c.Select(x => x.RawData).ToArray();
        }

        return a.SignedBytes.Span.SequenceEqual(b.SignedBytes.Span)
            && a.QuoteSignature.Span.SequenceEqual(b.QuoteSignature.Span)
            && a.AttestationKey.Span.SequenceEqual(b.AttestationKey.Span)
            && a.QeReport.Raw.Span.SequenceEqual(b.QeReport.Raw.Span)
            && a.QeReportSignature.Span.SequenceEqual(b.QeReportSignature.Span)
            && a.QeAuthData.Span.SequenceEqual(b.QeAuthData.Span)
            && Der(a).Zip(Der(b)).All(p => p.First.AsSpan().SequenceEqual(p.Second)) && Der(a).Length == Der(b).Length;
    }

    [Test]
    public void Random_mutations_of_gt2_are_never_accepted_unless_only_pem_layout_changed()
    {
        var original = Vectors.Read(Gt2);
        var parsed = TdxQuote.Parse(original);
        var collateral = new StaticCollateral(TdxCollateralSource.Recognise(File.ReadAllBytes(Vectors.Path(DcapQvlJson)), "dcap-qvl"));
        var changes = Gen.Select(Gen.Int[0, parsed.QuoteEnd - 1], Gen.Byte).Array[1, 6];
        changes.Sample(list =>
        {
            var bytes = (byte[])original.Clone();
            foreach (var (at, value) in list)
            {
                bytes[at] = value;
            }

            var r = VerifyNoThrow(bytes, Gt2At, collateral);
            if (r.IsAccepted)
            {
                Assert.That(SameContent(parsed, TdxQuote.Parse(bytes)), Is.True, "an accepted mutation changed signed or certified content");
            }
            else
            {
                Assert.That(r.Reasons, Is.Not.Empty);
            }
        }, iter: 400);
    }

    [Test]
    public void Random_bytes_only_ever_give_a_rejection()
    {
        Gen.Byte.Array[0, 6000].Sample(bytes =>
        {
            var r = VerifyNoThrow(bytes, Gt2At, null);
            Assert.That(r.IsAccepted, Is.False);
        }, iter: 500);
    }

    [Test]
    public void Random_truncations_and_extensions_of_gt1_never_throw()
    {
        var original = Vectors.Read(Gt1);
        var collateral = CollateralFrom(GoTdxGuestCollateral);
        Gen.Select(Gen.Int[0, original.Length + 64], Gen.Byte).Sample(t =>
        {
            var (length, fill) = t;
            var bytes = new byte[length];
            original.AsSpan(0, Math.Min(length, original.Length)).CopyTo(bytes);
            bytes.AsSpan(Math.Min(length, original.Length)).Fill(fill);
            var r = VerifyNoThrow(bytes, Gt1At, collateral);
            Assert.That(r.IsAccepted, Is.False, "GT-1 is never accepted (its TCB level is not supported)");
        }, iter: 300);
    }
}

/// <summary>Damaged collateral never makes the collateral source or the verifier throw.</summary>
[TestFixture]
public sealed class Damaged_collateral_never_throws
{
    [Test]
    public void Random_mutations_of_the_dcap_qvl_collateral_files_are_recognised_or_ignored_and_verification_returns_a_result()
    {
        string[] files =
        [
            "tdx/dcap-qvl/derived/tdx_quote_outdated/tcb_info.json", "tdx/dcap-qvl/derived/tdx_quote_outdated/qe_identity.json",
            "tdx/dcap-qvl/derived/tdx_quote_outdated/pck_crl.der", "tdx/dcap-qvl/derived/tdx_quote_outdated/root_ca_crl.der",
            "tdx/dcap-qvl/derived/tdx_quote_outdated/tcb_info_issuer_chain.pem", "tdx/dcap-qvl/derived/tdx_quote_outdated/pck_crl_issuer_chain.pem",
        ];
        var originals = files.Select(f => File.ReadAllBytes(Vectors.Path(f))).ToArray();
        var quote = Vectors.Read(Gt2);
        Gen.Select(Gen.Int[0, files.Length - 1], Gen.Int[0, 100_000], Gen.Byte).Array[1, 4].Sample(changes =>
        {
            var set = originals.Select(o => (byte[])o.Clone()).ToArray();
            foreach (var (file, at, value) in changes)
            {
                set[file][at % set[file].Length] = value;
            }

            var collateral = TdxCollateral.Empty;
            Assert.DoesNotThrow(() =>
            {
                for (var i = 0; i < set.Length; i++)
                {
                    collateral = collateral.Merge(TdxCollateralSource.Recognise(set[i], files[i]));
                }
            });
            VerificationResult? r = null;
            Assert.DoesNotThrow(() => r = TdxVectors.Verify(quote, Gt2At, new StaticCollateral(collateral)));
            Assert.That(r!.Reasons, Is.Not.Null);
        }, iter: 300);
    }
}
