using NUnit.Framework;

namespace AttestBroker.Verification.Tests;

[TestFixture]
public sealed class VerificationMemoTests
{
    [Test]
    public void Same_inputs_compute_once()
    {
        var memo = new VerificationMemo<int>();
        var calls = 0;
        var a = memo.GetOrAdd([1, 2, 3], [4], () => ++calls);
        var b = memo.GetOrAdd([1, 2, 3], [4], () => ++calls);
        Assert.That((a, b, calls), Is.EqualTo((1, 1, 1)));
    }

    [Test]
    public void Any_changed_byte_or_a_shifted_boundary_is_another_entry()
    {
        var memo = new VerificationMemo<string>();
        memo.GetOrAdd([1, 2], [3], () => "first");
        Assert.Multiple(() =>
        {
            Assert.That(memo.GetOrAdd([1, 2], [4], () => "second input changed"), Is.EqualTo("second input changed"));
            Assert.That(memo.GetOrAdd([1], [2, 3], () => "boundary moved"), Is.EqualTo("boundary moved"));
            Assert.That(memo.GetOrAdd([1, 3], [3], () => "first input changed"), Is.EqualTo("first input changed"));
        });
    }

    [Test]
    public void A_full_memo_starts_again_and_stays_bounded()
    {
        var memo = new VerificationMemo<int>(capacity: 4);
        for (var i = 0; i < 20; i++)
        {
            memo.GetOrAdd([(byte)i], () => i);
        }

        Assert.That(memo.Count, Is.LessThanOrEqualTo(4));
    }
}
