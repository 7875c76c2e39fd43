namespace AttestBroker.Models;

/// <summary>
/// Incremental BLAKE3 (hash mode, 32-byte output) for input that arrives in pieces, such as the leaves of a ciphertext
/// digest tree folded in file order. Scalar: it sees 32 bytes per segment, so its speed does not matter; bulk input goes
/// to <see cref="Blake3Hash.Hash(ReadOnlySpan{byte}, Span{byte})"/>. Memory is fixed: one chunk's state and a stack of at
/// most 54 chaining values (enough for 2^64 bytes).
/// </summary>
public sealed class Blake3Hasher
{
    private const int MaxDepth = 54;
    private readonly uint[] _cv = new uint[8];
    private readonly byte[] _block = new byte[Blake3Hash.BlockLength];
    private readonly uint[] _stack = new uint[MaxDepth * 8];
    private int _depth;
    private ulong _chunkCounter;
    private int _blockLength;
    private int _blocksCompressed;
    private bool _finished;

    public Blake3Hasher() => Blake3Hash.IV.CopyTo(_cv);

    public void Append(ReadOnlySpan<byte> input)
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        Span<uint> m = stackalloc uint[16];
        Span<uint> chunkCv = stackalloc uint[8];
        while (!input.IsEmpty)
        {
            // A full chunk or block is compressed only once more input arrives: the last one of the input must keep
            // its CHUNK_END (and perhaps ROOT) flag for Finish.
            if ((_blocksCompressed * Blake3Hash.BlockLength) + _blockLength == Blake3Hash.ChunkLength)
            {
                Blake3Hash.ReadBlock(_block, m);
                Blake3Hash.Compress(_cv, m, _chunkCounter, Blake3Hash.BlockLength, Blake3Hash.ChunkEnd | (_blocksCompressed == 0 ? Blake3Hash.ChunkStart : 0), chunkCv);
                _chunkCounter++;
                PushChunk(chunkCv, _chunkCounter);
                Blake3Hash.IV.CopyTo(_cv);
                _blocksCompressed = 0;
                _blockLength = 0;
            }
            else if (_blockLength == Blake3Hash.BlockLength)
            {
                Blake3Hash.ReadBlock(_block, m);
                Blake3Hash.Compress(_cv, m, _chunkCounter, Blake3Hash.BlockLength, _blocksCompressed == 0 ? Blake3Hash.ChunkStart : 0, _cv);
                _blocksCompressed++;
                _blockLength = 0;
            }

            var take = Math.Min(Blake3Hash.BlockLength - _blockLength, input.Length);
            input[..take].CopyTo(_block.AsSpan(_blockLength));
            _blockLength += take;
            input = input[take..];
        }
    }

    /// <summary>The 32-byte hash of everything appended. The hasher cannot be used after this.</summary>
    public byte[] Finish()
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        _finished = true;
        Span<uint> cv = stackalloc uint[8];
        Span<uint> m = stackalloc uint[16];
        Blake3Hash.ReadBlock(_block.AsSpan(0, _blockLength), m);
        var flags = Blake3Hash.ChunkEnd | (_blocksCompressed == 0 ? Blake3Hash.ChunkStart : 0);
        ReadOnlySpan<uint> inputCv = _cv;
        var counter = _chunkCounter;
        var blockLength = (uint)_blockLength;

        // The last chunk, then each parent up the right edge of the tree; only the top node carries ROOT.
        for (var i = _depth - 1; i >= 0; i--)
        {
            Blake3Hash.Compress(inputCv, m, counter, blockLength, flags, cv);
            _stack.AsSpan(i * 8, 8).CopyTo(m);
            cv.CopyTo(m[8..]);
            inputCv = Blake3Hash.IV;
            counter = 0;
            blockLength = Blake3Hash.BlockLength;
            flags = Blake3Hash.Parent;
        }

        Blake3Hash.Compress(inputCv, m, counter, blockLength, flags | Blake3Hash.Root, cv);
        var output = new byte[Blake3Hash.OutputLength];
        Blake3Hash.WriteWords(cv, output);
        return output;
    }

    /// <summary>Adds a finished chunk's chaining value, merging every subtree it completes (one per trailing zero bit of the chunk count).</summary>
    private void PushChunk(ReadOnlySpan<uint> chunkCv, ulong totalChunks)
    {
        Span<uint> m = stackalloc uint[16];
        Span<uint> cv = stackalloc uint[8];
        chunkCv.CopyTo(cv);
        while ((totalChunks & 1) == 0)
        {
            _depth--;
            _stack.AsSpan(_depth * 8, 8).CopyTo(m);
            cv.CopyTo(m[8..]);
            Blake3Hash.Compress(Blake3Hash.IV, m, 0, Blake3Hash.BlockLength, Blake3Hash.Parent, cv);
            totalChunks >>= 1;
        }

        cv.CopyTo(_stack.AsSpan(_depth * 8, 8));
        _depth++;
    }
}
