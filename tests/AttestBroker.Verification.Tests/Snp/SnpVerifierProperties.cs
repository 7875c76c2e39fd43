using AttestBroker.Verification.Snp;
using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Verification.Tests.Snp;

/// <summary>The verifier never throws, and never accepts SG-1 once any byte of it has changed.</summary>
[TestFixture]
public sealed class Snp_verifier_never_throws_and_never_accepts_a_mutated_report
{
    [Test]
    public void Random_bytes_are_rejected_without_exceptions()
    {
        var collateral = SnpVectors.Sg1Collateral();
        var context = SnpVectors.Sg1Context;
        Gen.Byte.Array[0, 1300].Sample(bytes =>
        {
            var result = SnpVerifier.Verify(bytes, collateral, context);
            Assert.That(result.IsAccepted, Is.False);
            Assert.That(result.Reasons, Is.Not.Empty);
        }, iter: 500);
    }

    [Test]
    public void Mutations_of_sg1_are_never_accepted()
    {
        var original = SnpVectors.ReadReport();
        var collateral = SnpVectors.Sg1Collateral();
        var context = SnpVectors.Sg1Context;
        var mutation = Gen.Select(Gen.Int[0, original.Length - 1], Gen.Byte[1, 255]).Array[1, 4];
        mutation.Sample(changes =>
        {
            var bytes = (byte[])original.Clone();
            foreach (var (at, xor) in changes)
            {
                bytes[at] ^= xor;
            }

            if (bytes.AsSpan().SequenceEqual(original))
            {
                return; // the changes cancelled out
            }

            var result = SnpVerifier.Verify(bytes, collateral, context);
            Assert.That(result.IsAccepted, Is.False, $"mutated at {string.Join(",", changes.Select(c => $"0x{c.Item1:x}"))}");
        }, iter: 400);
    }

    [Test]
    public void The_async_path_never_throws_for_random_bytes()
    {
        var verifier = new SnpVerifier(SnpCertificateSource.FromPaths([], null, null));
        Gen.Byte.Array[0, 1300].Sample(bytes =>
        {
            var result = verifier.VerifyAsync(bytes, SnpVectors.Sg1Context).GetAwaiter().GetResult();
            Assert.That(result.IsAccepted, Is.False);
        }, iter: 300);
    }
}
