using System.Runtime.Intrinsics.X86;
using System.Text;
using CsCheck;
using NUnit.Framework;
using B3 = Blake3;

namespace AttestBroker.Models.Tests;

/// <summary>
/// <see cref="Blake3Hash"/> (both its scalar and its AVX2 path) and <see cref="Blake3Hasher"/> against values computed
/// with <c>b3sum</c> and against the independent managed BLAKE3 package <c>Blake3</c> (a test oracle only).
/// </summary>
[TestFixture]
public sealed class Blake3_matches_b3sum_and_an_independent_implementation_on_both_paths
{
    private const int MaxRandomLength = 3 * 1024 * 1024;

    /// <summary>Piece sizes, used in turn, for feeding <see cref="Blake3Hasher"/> unevenly: across block and chunk edges, and empty pieces.</summary>
    private static readonly int[] UnevenPieces = [1, 63, 64, 65, 1023, 1024, 1025, 0, 7, 8192, 3, 2047, 130];

    /// <summary>Seeded random bytes; the differential tests hash slices of it (prefixes, or random offsets and lengths).</summary>
    private static readonly byte[] Random = RandomBytes(MaxRandomLength + 64, seed: 20240531);

    // Known answers from `b3sum` 1.2.0 (Debian package b3sum, the reference Rust implementation, run on this machine),
    // on the pattern P(n) = bytes i % 251 for i in 0..n-1. Reproduce one with, for example:
    //   python3 -c "import sys; sys.stdout.buffer.write(bytes(i % 251 for i in range(8193)))" | b3sum
    // and the "abc" one with: printf abc | b3sum
    [TestCase(0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")]
    [TestCase(8193, "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b")]
    [TestCase(1000000, "5e82c663d164c54e4fcdfcd70e3ca464662228bdbad45cce2e0c2bff999064ef")]
    [TestCase(4194320, "0b948fbe56066faa626f56fa5fe4e9786b04dba9a79665536499bcb46dbbd226")]
    public void The_hash_of_the_pattern_equals_b3sum_on_both_paths_and_incrementally(int length, string expected)
    {
        AssertKnownAnswer(Pattern(length), expected);
    }

    [Test]
    public void The_hash_of_abc_equals_b3sum_on_both_paths_and_incrementally()
    {
        AssertKnownAnswer(Encoding.ASCII.GetBytes("abc"), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
    }

    [Test]
    public void Every_length_from_0_to_2200_matches_the_Blake3_package()
    {
        AssertMatchesPackage(Enumerable.Range(0, 2201));
    }

    [Test]
    public void Every_length_one_below_at_and_one_above_a_multiple_of_the_chunk_up_to_40_chunks_matches_the_Blake3_package()
    {
        AssertMatchesPackage(
            from k in Enumerable.Range(1, 40)
            from d in new[] { -1, 0, 1 }
            select (k * Blake3Hash.ChunkLength) + d);
    }

    [Test]
    public void Every_length_one_below_at_and_one_above_a_multiple_of_eight_chunks_matches_the_Blake3_package()
    {
        // Eight chunks are one AVX2 batch; from sixteen chunks on, parents are folded eight at a time as well.
        AssertMatchesPackage(
            from m in Enumerable.Range(1, 17).Concat([32, 33, 64, 127, 128, 129])
            from d in new[] { -1, 0, 1 }
            select (8 * Blake3Hash.ChunkLength * m) + d);
    }

    [Test]
    public void Random_lengths_offsets_and_split_points_up_to_3_MiB_match_the_Blake3_package()
    {
        // Half the lengths near a chunk edge (where the tree shape changes), half anywhere; a random start offset so
        // that the input is not always aligned; random split points for the incremental hasher.
        var nearChunkEdge = Gen.Select(Gen.Int[0, MaxRandomLength / Blake3Hash.ChunkLength], Gen.Int[-65, 65])
            .Select((k, d) => Math.Clamp((k * Blake3Hash.ChunkLength) + d, 0, MaxRandomLength));
        var gen = Gen.OneOf(Gen.Int[0, MaxRandomLength], nearChunkEdge)
            .SelectMany(length => Gen.Select(Gen.Const(length), Gen.Int[0, 63], Gen.Int[0, length].Array[0, 6]));
        gen.Sample(
            (length, offset, splits) =>
            {
                var input = Random.AsSpan(offset, length);
                var expected = Hex(B3.Hasher.Hash(input).AsSpan());
                Array.Sort(splits);
                var hasher = new Blake3Hasher();
                var at = 0;
                foreach (var split in splits)
                {
                    hasher.Append(input[at..split]);
                    at = split;
                }

                hasher.Append(input[at..]);
                var scalar = OneShot(input, vectorized: false);
                var vector = OneShot(input, vectorized: true);
                var incremental = Hex(hasher.Finish());
                Assert.Multiple(() =>
                {
                    Assert.That(scalar, Is.EqualTo(expected), $"scalar, length {length}, offset {offset}");
                    Assert.That(vector, Is.EqualTo(expected), $"vector, length {length}, offset {offset}");
                    Assert.That(incremental, Is.EqualTo(expected), $"hasher, length {length}, offset {offset}, splits [{string.Join(", ", splits)}]");
                });
            },
            iter: 40);
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(Blake3Hash.OutputLength - 1)]
    public void An_output_shorter_than_32_bytes_is_refused_on_both_paths(int outputLength)
    {
        var output = new byte[outputLength];
        Assert.Multiple(() =>
        {
            Assert.That(() => Blake3Hash.Hash(Pattern(10), output), Throws.ArgumentException.With.Property(nameof(ArgumentException.ParamName)).EqualTo("output"));
            Assert.That(() => Blake3Hash.Hash(Pattern(10), output, vectorized: false), Throws.ArgumentException);
            Assert.That(() => Blake3Hash.Hash(Pattern(100_000), output, vectorized: true), Throws.ArgumentException);
        });
    }

    [Test]
    public void An_output_longer_than_32_bytes_gets_the_hash_in_its_first_32_bytes_and_nothing_else_written()
    {
        var input = Pattern(20_000);
        var expected = Hex(B3.Hasher.Hash(input).AsSpan());
        foreach (var vectorized in new[] { false, true })
        {
            var output = Enumerable.Repeat((byte)0xA5, 40).ToArray();
            Blake3Hash.Hash(input, output, vectorized);
            Assert.Multiple(() =>
            {
                Assert.That(Hex(output.AsSpan(0, 32)), Is.EqualTo(expected), $"vectorized {vectorized}");
                Assert.That(output.AsSpan(32).ToArray(), Is.All.EqualTo((byte)0xA5), $"vectorized {vectorized}");
            });
        }
    }

    [Test]
    public void Append_after_Finish_throws_ObjectDisposedException()
    {
        var hasher = new Blake3Hasher();
        hasher.Append(Pattern(10));
        hasher.Finish();
        Assert.Multiple(() =>
        {
            Assert.That(() => hasher.Append(Pattern(1)), Throws.TypeOf<ObjectDisposedException>());
            Assert.That(() => hasher.Append([]), Throws.TypeOf<ObjectDisposedException>());
        });
    }

    [Test]
    public void Finish_after_Finish_throws_ObjectDisposedException()
    {
        var hasher = new Blake3Hasher();
        hasher.Finish();
        Assert.That(() => hasher.Finish(), Throws.TypeOf<ObjectDisposedException>());
    }

    [Test]
    public void The_AVX2_path_is_exercised_on_this_machine()
    {
        if (!Blake3Hash.IsVectorized)
        {
            Assert.Ignore("This machine has no AVX2: Hash(input, output, vectorized: true) falls back to the scalar path, so the eight-lane AVX2 path of Blake3Hash was NOT tested here. Run these tests on an AVX2 machine.");
        }

        Assert.Multiple(() =>
        {
            Assert.That(Avx2.IsSupported, Is.True);
            var input = Random.AsSpan(1, (16 * Blake3Hash.ChunkLength) + 1).ToArray();
            Assert.That(OneShot(input, vectorized: true), Is.EqualTo(Hex(B3.Hasher.Hash(input).AsSpan())));
        });
    }

    private static void AssertKnownAnswer(byte[] input, string expected)
    {
        var whole = new Blake3Hasher();
        whole.Append(input);
        var pieces = new Blake3Hasher();
        AppendUnevenly(pieces, input);
        var defaultPath = new byte[Blake3Hash.OutputLength];
        Blake3Hash.Hash(input, defaultPath);
        Assert.Multiple(() =>
        {
            Assert.That(OneShot(input, vectorized: false), Is.EqualTo(expected), "scalar path");
            Assert.That(OneShot(input, vectorized: true), Is.EqualTo(expected), "vector path");
            Assert.That(Hex(defaultPath), Is.EqualTo(expected), "public Hash");
            Assert.That(Hex(whole.Finish()), Is.EqualTo(expected), "hasher, one piece");
            Assert.That(Hex(pieces.Finish()), Is.EqualTo(expected), "hasher, uneven pieces");
            Assert.That(Hex(B3.Hasher.Hash(input).AsSpan()), Is.EqualTo(expected), "the Blake3 package (oracle sanity)");
        });
    }

    /// <summary>Each length hashed (prefix of <see cref="Random"/>) by both paths and the hasher (one piece, uneven pieces), against the package; every disagreement is listed.</summary>
    private static void AssertMatchesPackage(IEnumerable<int> lengths)
    {
        var failures = new List<string>();
        var count = 0;
        foreach (var length in lengths)
        {
            count++;
            var input = Random.AsSpan(0, length);
            var expected = Hex(B3.Hasher.Hash(input).AsSpan());
            var whole = new Blake3Hasher();
            whole.Append(input);
            var pieces = new Blake3Hasher();
            AppendUnevenly(pieces, input);
            foreach (var (name, actual) in new[]
            {
                ("scalar", OneShot(input, vectorized: false)),
                ("vector", OneShot(input, vectorized: true)),
                ("hasher one piece", Hex(whole.Finish())),
                ("hasher uneven pieces", Hex(pieces.Finish())),
            })
            {
                if (actual != expected)
                {
                    failures.Add($"length {length} {name}: {actual}, package {expected}");
                }
            }
        }

        Assert.That(failures, Is.Empty, $"{failures.Count} disagreements over {count} lengths");
    }

    private static void AppendUnevenly(Blake3Hasher hasher, ReadOnlySpan<byte> input)
    {
        for (var i = 0; !input.IsEmpty; i++)
        {
            var take = Math.Min(UnevenPieces[i % UnevenPieces.Length], input.Length);
            hasher.Append(input[..take]);
            input = input[take..];
        }
    }

    private static string OneShot(ReadOnlySpan<byte> input, bool vectorized)
    {
        Span<byte> output = stackalloc byte[Blake3Hash.OutputLength];
        Blake3Hash.Hash(input, output, vectorized);
        return Hex(output);
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    private static byte[] Pattern(int length)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)(i % 251);
        }

        return bytes;
    }

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new System.Random(seed).NextBytes(bytes);
        return bytes;
    }
}
