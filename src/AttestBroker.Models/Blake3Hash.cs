using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AttestBroker.Models;

/// <summary>
/// BLAKE3 in its hash mode with a 32-byte output: the hash of a ciphertext digest tree whose manifest entry is
/// <c>ciphertextTreeBlake3</c> (see <see cref="CiphertextDigestTree"/>). .NET has no BLAKE3, and the BLAKE3 package
/// served here hashes at about 1 GiB/s, less than OpenSSL's SHA-256 on this machine; the point of BLAKE3 in the digest
/// tree is to cost less CPU per byte than SHA-256, so the one-shot <see cref="Hash(ReadOnlySpan{byte}, Span{byte})"/>
/// hashes eight 1 KiB chunks at once in the eight 32-bit lanes of AVX2 registers, and folds the chunk chaining values
/// into parents eight at a time the same way. Without AVX2 it runs the same algorithm one block at a time.
/// <para>
/// Tree shape: chunk chaining values are paired from the left, level by level, an odd last value moving up unchanged.
/// That is the shape the BLAKE3 paper gives (the left subtree holds the largest power of two of chunks that leaves at
/// least one byte to the right), so the output equals <c>b3sum</c>'s; the tests check it against an independent
/// implementation over random lengths and against values computed with <c>b3sum</c>.
/// </para>
/// <para>
/// Stack buffers are not zeroed on entry (<see cref="SkipLocalsInitAttribute"/>): each one is written in full before it
/// is read, and zeroing the one kilobyte that every eight-lane call allocates cost 2 % of the hash's time.
/// </para>
/// </summary>
[SkipLocalsInit]
public static unsafe class Blake3Hash
{
    public const int OutputLength = 32;
    internal const int BlockLength = 64;
    internal const int ChunkLength = 1024;
    internal const uint ChunkStart = 1, ChunkEnd = 2, Parent = 4, Root = 8;

    /// <summary>The BLAKE3 IV (the SHA-256 IV), also the key words of the hash mode.</summary>
    internal static ReadOnlySpan<uint> IV => [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19];

    /// <summary>Message word order of each of the seven rounds: round r + 1 applies the BLAKE3 permutation to round r's.</summary>
    private static readonly byte[] Schedule = BuildSchedule();

    /// <summary>Whether <see cref="Hash(ReadOnlySpan{byte}, Span{byte})"/> uses the eight-lane AVX2 path on this machine.</summary>
    public static bool IsVectorized => Avx2.IsSupported;

    /// <summary>BLAKE3 of <paramref name="input"/> into the first 32 bytes of <paramref name="output"/>.</summary>
    public static void Hash(ReadOnlySpan<byte> input, Span<byte> output) => Hash(input, output, Avx2.IsSupported);

    /// <summary>The same, with the vector path chosen by the caller (tests run both on one machine).</summary>
    internal static void Hash(ReadOnlySpan<byte> input, Span<byte> output, bool vectorized)
    {
        if (output.Length < OutputLength)
        {
            throw new ArgumentException($"output must hold {OutputLength} bytes", nameof(output));
        }

        vectorized &= Avx2.IsSupported;
        Span<uint> cv = stackalloc uint[8];
        if (input.Length <= ChunkLength)
        {
            ChunkChainingValue(input, 0, Root, cv);
            WriteWords(cv, output);
            return;
        }

        var chunks = (int)(((long)input.Length + ChunkLength - 1) / ChunkLength);
        var fullChunks = input.Length / ChunkLength;
        var rented = ArrayPool<uint>.Shared.Rent(chunks * 8);
        try
        {
            fixed (byte* bytes = input)
            fixed (uint* cvs = rented)
            {
                var c = 0;
                if (vectorized)
                {
                    for (; c + 8 <= fullChunks; c += 8)
                    {
                        CompressEight(bytes + ((long)c * ChunkLength), ChunkLength, ChunkLength / BlockLength, (ulong)c, 1, ChunkStart, 0, ChunkEnd, cvs + (c * 8));
                    }
                }

                for (; c < chunks; c++)
                {
                    var start = c * ChunkLength;
                    ChunkChainingValue(input.Slice(start, Math.Min(ChunkLength, input.Length - start)), (ulong)c, 0, new Span<uint>(cvs + (c * 8), 8));
                }

                // Level by level: the parent of values 2p and 2p + 1 goes to slot p, which has been read by then.
                var count = chunks;
                while (count > 2)
                {
                    var pairs = count / 2;
                    var p = 0;
                    if (vectorized)
                    {
                        for (; p + 8 <= pairs; p += 8)
                        {
                            CompressEight((byte*)(cvs + (p * 16)), BlockLength, 1, 0, 0, 0, Parent, 0, cvs + (p * 8));
                        }
                    }

                    for (; p < pairs; p++)
                    {
                        Compress(IV, new ReadOnlySpan<uint>(cvs + (p * 16), 16), 0, BlockLength, Parent, new Span<uint>(cvs + (p * 8), 8));
                    }

                    if ((count & 1) != 0)
                    {
                        new ReadOnlySpan<uint>(cvs + ((count - 1) * 8), 8).CopyTo(new Span<uint>(cvs + (pairs * 8), 8));
                    }

                    count = pairs + (count & 1);
                }

                Compress(IV, new ReadOnlySpan<uint>(cvs, 16), 0, BlockLength, Parent | Root, cv);
                WriteWords(cv, output);
            }
        }
        finally
        {
            ArrayPool<uint>.Shared.Return(rented);
        }
    }

    /// <summary>The BLAKE3 compression function, first 8 output words (a chaining value, or the root hash with <see cref="Root"/>).</summary>
    internal static void Compress(ReadOnlySpan<uint> cv, ReadOnlySpan<uint> m, ulong counter, uint blockLength, uint flags, Span<uint> output)
    {
        uint v0 = cv[0], v1 = cv[1], v2 = cv[2], v3 = cv[3], v4 = cv[4], v5 = cv[5], v6 = cv[6], v7 = cv[7];
        uint v8 = IV[0], v9 = IV[1], v10 = IV[2], v11 = IV[3], v12 = (uint)counter, v13 = (uint)(counter >> 32), v14 = blockLength, v15 = flags;
        var s = Schedule;
        for (var r = 0; r < 7 * 16; r += 16)
        {
            G(ref v0, ref v4, ref v8, ref v12, m[s[r]], m[s[r + 1]]);
            G(ref v1, ref v5, ref v9, ref v13, m[s[r + 2]], m[s[r + 3]]);
            G(ref v2, ref v6, ref v10, ref v14, m[s[r + 4]], m[s[r + 5]]);
            G(ref v3, ref v7, ref v11, ref v15, m[s[r + 6]], m[s[r + 7]]);
            G(ref v0, ref v5, ref v10, ref v15, m[s[r + 8]], m[s[r + 9]]);
            G(ref v1, ref v6, ref v11, ref v12, m[s[r + 10]], m[s[r + 11]]);
            G(ref v2, ref v7, ref v8, ref v13, m[s[r + 12]], m[s[r + 13]]);
            G(ref v3, ref v4, ref v9, ref v14, m[s[r + 14]], m[s[r + 15]]);
        }

        output[0] = v0 ^ v8;
        output[1] = v1 ^ v9;
        output[2] = v2 ^ v10;
        output[3] = v3 ^ v11;
        output[4] = v4 ^ v12;
        output[5] = v5 ^ v13;
        output[6] = v6 ^ v14;
        output[7] = v7 ^ v15;
    }

    /// <summary>Reads up to 64 bytes as 16 little-endian words, zero-padded.</summary>
    internal static void ReadBlock(ReadOnlySpan<byte> block, Span<uint> m)
    {
        Span<byte> padded = stackalloc byte[BlockLength];
        padded.Clear();
        block.CopyTo(padded);
        for (var i = 0; i < 16; i++)
        {
            m[i] = BinaryPrimitives.ReadUInt32LittleEndian(padded[(i * 4)..]);
        }
    }

    internal static void WriteWords(ReadOnlySpan<uint> cv, Span<byte> output)
    {
        for (var i = 0; i < 8; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(output[(i * 4)..], cv[i]);
        }
    }

    private static byte[] BuildSchedule()
    {
        ReadOnlySpan<byte> permutation = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
        var s = new byte[7 * 16];
        for (var i = 0; i < 16; i++)
        {
            s[i] = (byte)i;
        }

        for (var r = 1; r < 7; r++)
        {
            for (var i = 0; i < 16; i++)
            {
                s[(r * 16) + i] = s[((r - 1) * 16) + permutation[i]];
            }
        }

        return s;
    }

    /// <summary>One chunk (0 to 1024 bytes) with a scalar compression per block; <paramref name="rootFlag"/> is <see cref="Root"/> when the chunk is the whole input.</summary>
    private static void ChunkChainingValue(ReadOnlySpan<byte> chunk, ulong counter, uint rootFlag, Span<uint> cv)
    {
        IV.CopyTo(cv);
        Span<uint> m = stackalloc uint[16];
        var blocks = Math.Max(1, (chunk.Length + BlockLength - 1) / BlockLength);
        for (var b = 0; b < blocks; b++)
        {
            var length = Math.Min(BlockLength, chunk.Length - (b * BlockLength));
            ReadBlock(chunk.Slice(b * BlockLength, length), m);
            var flags = (b == 0 ? ChunkStart : 0) | (b == blocks - 1 ? ChunkEnd | rootFlag : 0);
            Compress(cv, m, counter, (uint)length, flags, cv);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void G(ref uint a, ref uint b, ref uint c, ref uint d, uint x, uint y)
    {
        a = a + b + x;
        d = BitOperations.RotateRight(d ^ a, 16);
        c += d;
        b = BitOperations.RotateRight(b ^ c, 12);
        a = a + b + y;
        d = BitOperations.RotateRight(d ^ a, 8);
        c += d;
        b = BitOperations.RotateRight(b ^ c, 7);
    }



    /// <summary>Transposes an 8 x 8 matrix of 32-bit words: row j of <paramref name="input"/> becomes lane j of every output vector.</summary>
    private static void Transpose(Vector256<uint>* input, Vector256<uint>* output)
    {
        var t0 = Avx2.UnpackLow(input[0], input[1]).AsUInt64();
        var t1 = Avx2.UnpackHigh(input[0], input[1]).AsUInt64();
        var t2 = Avx2.UnpackLow(input[2], input[3]).AsUInt64();
        var t3 = Avx2.UnpackHigh(input[2], input[3]).AsUInt64();
        var t4 = Avx2.UnpackLow(input[4], input[5]).AsUInt64();
        var t5 = Avx2.UnpackHigh(input[4], input[5]).AsUInt64();
        var t6 = Avx2.UnpackLow(input[6], input[7]).AsUInt64();
        var t7 = Avx2.UnpackHigh(input[6], input[7]).AsUInt64();
        var u0 = Avx2.UnpackLow(t0, t2).AsUInt32();
        var u1 = Avx2.UnpackHigh(t0, t2).AsUInt32();
        var u2 = Avx2.UnpackLow(t1, t3).AsUInt32();
        var u3 = Avx2.UnpackHigh(t1, t3).AsUInt32();
        var u4 = Avx2.UnpackLow(t4, t6).AsUInt32();
        var u5 = Avx2.UnpackHigh(t4, t6).AsUInt32();
        var u6 = Avx2.UnpackLow(t5, t7).AsUInt32();
        var u7 = Avx2.UnpackHigh(t5, t7).AsUInt32();
        output[0] = Avx2.Permute2x128(u0, u4, 0x20);
        output[1] = Avx2.Permute2x128(u1, u5, 0x20);
        output[2] = Avx2.Permute2x128(u2, u6, 0x20);
        output[3] = Avx2.Permute2x128(u3, u7, 0x20);
        output[4] = Avx2.Permute2x128(u0, u4, 0x31);
        output[5] = Avx2.Permute2x128(u1, u5, 0x31);
        output[6] = Avx2.Permute2x128(u2, u6, 0x31);
        output[7] = Avx2.Permute2x128(u3, u7, 0x31);
    }

    /// <summary>
    /// Eight inputs of <paramref name="blocks"/> full blocks each, input j at <paramref name="input"/> + j *
    /// <paramref name="stride"/> with counter <paramref name="counter"/> + j * <paramref name="counterStep"/>; the eight
    /// chaining values go to <paramref name="output"/> + 8 j. The seven rounds are written out, with no helper calls:
    /// with constant message indices the JIT keeps most of the 16 state vectors in registers. Measured here against this
    /// form (2.8 GiB/s on 4 MiB inputs): a loop over the rounds with a permuted message, 1.9; a round helper taking the
    /// state by reference, 0.8; small inlined rotation helpers, 1.3 to 1.9, as the JIT gives up inlining in a method
    /// this long. Each round starts with a volatile store to a stack word that nothing reads. Without it the JIT sees the
    /// same sixteen message loads in every round, loads each once and keeps it in a spilled temporary (a store, then a
    /// reload per use, with the state vectors spilled around them); after the store it reads every message word straight
    /// from memory as an operand. Measured on 1 MiB segments, best of 8: 0.70 to 0.74 s per 2 GiB without, 0.66 to 0.68
    /// with, JIT and native AOT alike.
    /// </summary>
    private static void CompressEight(byte* input, int stride, int blocks, ulong counter, int counterStep, uint flagsFirst, uint flags, uint flagsLast, uint* output)
    {
        var rot16 = Vector256.Create((byte)2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
        var rot8 = Vector256.Create((byte)1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
        var counters = stackalloc uint[16];
        for (var j = 0; j < 8; j++)
        {
            var c = counter + (ulong)(j * counterStep);
            counters[j] = (uint)c;
            counters[8 + j] = (uint)(c >> 32);
        }

        var counterLow = Avx.LoadVector256(counters);
        var counterHigh = Avx.LoadVector256(counters + 8);
        var iv = IV;
        var h = stackalloc Vector256<uint>[8];
        for (var k = 0; k < 8; k++)
        {
            h[k] = Vector256.Create(iv[k]);
        }

        var iv0 = h[0];
        var iv1 = h[1];
        var iv2 = h[2];
        var iv3 = h[3];
        var blockLength = Vector256.Create((uint)BlockLength);
        var rows = stackalloc Vector256<uint>[8];
        var m = stackalloc Vector256<uint>[16];
        var fence = stackalloc int[1];
        for (var b = 0; b < blocks; b++)
        {
            for (var half = 0; half < 2; half++)
            {
                for (var j = 0; j < 8; j++)
                {
                    rows[j] = Avx.LoadVector256((uint*)(input + ((long)j * stride) + (b * BlockLength) + (half * 32)));
                }

                Transpose(rows, m + (half * 8));
            }

            var f = flags | (b == 0 ? flagsFirst : 0) | (b == blocks - 1 ? flagsLast : 0);
            Vector256<uint> v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
            Vector256<uint> v8 = iv0, v9 = iv1, v10 = iv2, v11 = iv3, v12 = counterLow, v13 = counterHigh, v14 = blockLength, v15 = Vector256.Create(f);
            {
                // Round 0: the four columns, then the four diagonals; message words in round 0's order.
                Volatile.Write(ref *fence, 0);
                v0 = v0 + v4 + m[0]; v1 = v1 + v5 + m[2]; v2 = v2 + v6 + m[4]; v3 = v3 + v7 + m[6];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot16).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot16).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot16).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot16).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20); v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20);
                v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20); v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20);
                v0 = v0 + v4 + m[1]; v1 = v1 + v5 + m[3]; v2 = v2 + v6 + m[5]; v3 = v3 + v7 + m[7];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot8).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot8).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot8).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot8).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25); v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25);
                v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25); v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25);
                v0 = v0 + v5 + m[8]; v1 = v1 + v6 + m[10]; v2 = v2 + v7 + m[12]; v3 = v3 + v4 + m[14];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot16).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot16).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot16).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot16).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20); v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20);
                v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20); v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20);
                v0 = v0 + v5 + m[9]; v1 = v1 + v6 + m[11]; v2 = v2 + v7 + m[13]; v3 = v3 + v4 + m[15];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot8).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot8).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot8).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot8).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25); v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25);
                v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25); v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25);

                // Round 1: the four columns, then the four diagonals; message words in round 1's order.
                Volatile.Write(ref *fence, 1);
                v0 = v0 + v4 + m[2]; v1 = v1 + v5 + m[3]; v2 = v2 + v6 + m[7]; v3 = v3 + v7 + m[4];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot16).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot16).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot16).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot16).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20); v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20);
                v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20); v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20);
                v0 = v0 + v4 + m[6]; v1 = v1 + v5 + m[10]; v2 = v2 + v6 + m[0]; v3 = v3 + v7 + m[13];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot8).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot8).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot8).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot8).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25); v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25);
                v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25); v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25);
                v0 = v0 + v5 + m[1]; v1 = v1 + v6 + m[12]; v2 = v2 + v7 + m[9]; v3 = v3 + v4 + m[15];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot16).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot16).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot16).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot16).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20); v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20);
                v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20); v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20);
                v0 = v0 + v5 + m[11]; v1 = v1 + v6 + m[5]; v2 = v2 + v7 + m[14]; v3 = v3 + v4 + m[8];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot8).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot8).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot8).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot8).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25); v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25);
                v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25); v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25);

                // Round 2: the four columns, then the four diagonals; message words in round 2's order.
                Volatile.Write(ref *fence, 2);
                v0 = v0 + v4 + m[3]; v1 = v1 + v5 + m[10]; v2 = v2 + v6 + m[13]; v3 = v3 + v7 + m[7];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot16).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot16).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot16).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot16).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20); v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20);
                v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20); v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20);
                v0 = v0 + v4 + m[4]; v1 = v1 + v5 + m[12]; v2 = v2 + v6 + m[2]; v3 = v3 + v7 + m[14];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot8).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot8).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot8).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot8).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25); v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25);
                v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25); v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25);
                v0 = v0 + v5 + m[6]; v1 = v1 + v6 + m[9]; v2 = v2 + v7 + m[11]; v3 = v3 + v4 + m[8];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot16).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot16).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot16).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot16).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20); v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20);
                v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20); v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20);
                v0 = v0 + v5 + m[5]; v1 = v1 + v6 + m[0]; v2 = v2 + v7 + m[15]; v3 = v3 + v4 + m[1];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot8).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot8).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot8).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot8).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25); v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25);
                v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25); v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25);

                // Round 3: the four columns, then the four diagonals; message words in round 3's order.
                Volatile.Write(ref *fence, 3);
                v0 = v0 + v4 + m[10]; v1 = v1 + v5 + m[12]; v2 = v2 + v6 + m[14]; v3 = v3 + v7 + m[13];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot16).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot16).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot16).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot16).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20); v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20);
                v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20); v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20);
                v0 = v0 + v4 + m[7]; v1 = v1 + v5 + m[9]; v2 = v2 + v6 + m[3]; v3 = v3 + v7 + m[15];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot8).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot8).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot8).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot8).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25); v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25);
                v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25); v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25);
                v0 = v0 + v5 + m[4]; v1 = v1 + v6 + m[11]; v2 = v2 + v7 + m[5]; v3 = v3 + v4 + m[1];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot16).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot16).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot16).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot16).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20); v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20);
                v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20); v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20);
                v0 = v0 + v5 + m[0]; v1 = v1 + v6 + m[2]; v2 = v2 + v7 + m[8]; v3 = v3 + v4 + m[6];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot8).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot8).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot8).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot8).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25); v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25);
                v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25); v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25);

                // Round 4: the four columns, then the four diagonals; message words in round 4's order.
                Volatile.Write(ref *fence, 4);
                v0 = v0 + v4 + m[12]; v1 = v1 + v5 + m[9]; v2 = v2 + v6 + m[15]; v3 = v3 + v7 + m[14];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot16).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot16).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot16).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot16).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20); v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20);
                v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20); v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20);
                v0 = v0 + v4 + m[13]; v1 = v1 + v5 + m[11]; v2 = v2 + v6 + m[10]; v3 = v3 + v7 + m[8];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot8).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot8).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot8).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot8).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25); v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25);
                v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25); v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25);
                v0 = v0 + v5 + m[7]; v1 = v1 + v6 + m[5]; v2 = v2 + v7 + m[0]; v3 = v3 + v4 + m[6];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot16).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot16).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot16).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot16).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20); v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20);
                v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20); v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20);
                v0 = v0 + v5 + m[2]; v1 = v1 + v6 + m[3]; v2 = v2 + v7 + m[1]; v3 = v3 + v4 + m[4];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot8).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot8).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot8).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot8).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25); v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25);
                v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25); v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25);

                // Round 5: the four columns, then the four diagonals; message words in round 5's order.
                Volatile.Write(ref *fence, 5);
                v0 = v0 + v4 + m[9]; v1 = v1 + v5 + m[11]; v2 = v2 + v6 + m[8]; v3 = v3 + v7 + m[15];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot16).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot16).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot16).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot16).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20); v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20);
                v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20); v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20);
                v0 = v0 + v4 + m[14]; v1 = v1 + v5 + m[5]; v2 = v2 + v6 + m[12]; v3 = v3 + v7 + m[1];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot8).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot8).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot8).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot8).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25); v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25);
                v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25); v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25);
                v0 = v0 + v5 + m[13]; v1 = v1 + v6 + m[0]; v2 = v2 + v7 + m[2]; v3 = v3 + v4 + m[4];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot16).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot16).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot16).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot16).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20); v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20);
                v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20); v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20);
                v0 = v0 + v5 + m[3]; v1 = v1 + v6 + m[10]; v2 = v2 + v7 + m[6]; v3 = v3 + v4 + m[7];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot8).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot8).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot8).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot8).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25); v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25);
                v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25); v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25);

                // Round 6: the four columns, then the four diagonals; message words in round 6's order.
                Volatile.Write(ref *fence, 6);
                v0 = v0 + v4 + m[11]; v1 = v1 + v5 + m[5]; v2 = v2 + v6 + m[1]; v3 = v3 + v7 + m[8];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot16).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot16).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot16).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot16).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20); v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20);
                v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20); v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20);
                v0 = v0 + v4 + m[15]; v1 = v1 + v5 + m[0]; v2 = v2 + v6 + m[9]; v3 = v3 + v7 + m[6];
                v12 = Avx2.Shuffle((v12 ^ v0).AsByte(), rot8).AsUInt32(); v13 = Avx2.Shuffle((v13 ^ v1).AsByte(), rot8).AsUInt32();
                v14 = Avx2.Shuffle((v14 ^ v2).AsByte(), rot8).AsUInt32(); v15 = Avx2.Shuffle((v15 ^ v3).AsByte(), rot8).AsUInt32();
                v8 += v12; v9 += v13; v10 += v14; v11 += v15;
                v4 ^= v8; v5 ^= v9; v6 ^= v10; v7 ^= v11;
                v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25); v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25);
                v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25); v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25);
                v0 = v0 + v5 + m[14]; v1 = v1 + v6 + m[2]; v2 = v2 + v7 + m[3]; v3 = v3 + v4 + m[7];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot16).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot16).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot16).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot16).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 12) | Avx2.ShiftLeftLogical(v5, 20); v6 = Avx2.ShiftRightLogical(v6, 12) | Avx2.ShiftLeftLogical(v6, 20);
                v7 = Avx2.ShiftRightLogical(v7, 12) | Avx2.ShiftLeftLogical(v7, 20); v4 = Avx2.ShiftRightLogical(v4, 12) | Avx2.ShiftLeftLogical(v4, 20);
                v0 = v0 + v5 + m[10]; v1 = v1 + v6 + m[12]; v2 = v2 + v7 + m[4]; v3 = v3 + v4 + m[13];
                v15 = Avx2.Shuffle((v15 ^ v0).AsByte(), rot8).AsUInt32(); v12 = Avx2.Shuffle((v12 ^ v1).AsByte(), rot8).AsUInt32();
                v13 = Avx2.Shuffle((v13 ^ v2).AsByte(), rot8).AsUInt32(); v14 = Avx2.Shuffle((v14 ^ v3).AsByte(), rot8).AsUInt32();
                v10 += v15; v11 += v12; v8 += v13; v9 += v14;
                v5 ^= v10; v6 ^= v11; v7 ^= v8; v4 ^= v9;
                v5 = Avx2.ShiftRightLogical(v5, 7) | Avx2.ShiftLeftLogical(v5, 25); v6 = Avx2.ShiftRightLogical(v6, 7) | Avx2.ShiftLeftLogical(v6, 25);
                v7 = Avx2.ShiftRightLogical(v7, 7) | Avx2.ShiftLeftLogical(v7, 25); v4 = Avx2.ShiftRightLogical(v4, 7) | Avx2.ShiftLeftLogical(v4, 25);
            }

            h[0] = v0 ^ v8;
            h[1] = v1 ^ v9;
            h[2] = v2 ^ v10;
            h[3] = v3 ^ v11;
            h[4] = v4 ^ v12;
            h[5] = v5 ^ v13;
            h[6] = v6 ^ v14;
            h[7] = v7 ^ v15;
        }

        Transpose(h, rows);
        for (var j = 0; j < 8; j++)
        {
            Avx.Store(output + (j * 8), rows[j]);
        }
    }
}
