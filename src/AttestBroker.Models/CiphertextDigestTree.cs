using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace AttestBroker.Models;

/// <summary>
/// The digest a manifest (v2) pins for each encrypted file: a two-level SHA-256 tree over the file's ciphertext, so the
/// leaves can be hashed in parallel by whichever worker decrypts the segment, and only 32 bytes per segment are hashed in
/// order. Construction (see docs/model-format.md, which has a worked example with sha256sum):
/// <code>
/// leaf_hdr = SHA-256(header bytes, tag included)
/// leaf_i   = SHA-256(segment i bytes: ciphertext || 16-byte GCM tag)      for i = 0 .. n-1
/// root     = SHA-256("AttestBroker MENC v1 ciphertext tree" || leaf_hdr || leaf_0 || ... || leaf_{n-1})
/// </code>
/// The label (36 ASCII bytes, no terminator) separates roots from leaves; every item after it is exactly 32 bytes and
/// the header comes first, so the list cannot be read two ways. Finding a second file with the same root needs a
/// SHA-256 collision or second preimage, as with a whole-file SHA-256.
/// </summary>
public static class CiphertextDigestTree
{
    /// <summary>The domain-separation label that starts the root's input.</summary>
    public static ReadOnlySpan<byte> Label => "AttestBroker MENC v1 ciphertext tree"u8;

    public const int DigestLength = 32;

    /// <summary>Starts a root computation: the label and the header leaf; append the segment leaves in order, then take the hash.</summary>
    public static IncrementalHash StartRoot(ReadOnlySpan<byte> headerBytes)
    {
        var root = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        root.AppendData(Label);
        Span<byte> leaf = stackalloc byte[DigestLength];
        SHA256.HashData(headerBytes, leaf);
        root.AppendData(leaf);
        return root;
    }

    /// <summary>The root over a whole encrypted file held in memory (header then segments). For tests and tools.</summary>
    public static byte[] ComputeRoot(ReadOnlySpan<byte> encryptedFile)
    {
        var header = ModelFileHeader.Parse(encryptedFile);
        if (encryptedFile.Length != header.CiphertextLength)
        {
            throw new ModelException(ModelError.CiphertextLengthMismatch, $"encrypted file is {encryptedFile.Length} bytes, its header says {header.CiphertextLength}");
        }

        using var root = StartRoot(encryptedFile[..header.HeaderLength]);
        Span<byte> leaf = stackalloc byte[DigestLength];
        var offset = header.HeaderLength;
        for (long i = 0; i < header.SegmentCount; i++)
        {
            var length = SegmentCiphertextLength(header, i);
            SHA256.HashData(encryptedFile.Slice(offset, length), leaf);
            root.AppendData(leaf);
            offset += length;
        }

        return root.GetHashAndReset();
    }

    /// <summary>The root of an encrypted file on disk (structure checked, not authenticated: no key needed). For tools and testers.</summary>
    public static byte[] ComputeRoot(SafeFileHandle file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var fixedPart = new byte[ModelFileHeader.MaxHeaderLength];
        var read = ReadAt(file, fixedPart, 0);
        var header = ModelFileHeader.Parse(fixedPart.AsSpan(0, read));
        if (RandomAccess.GetLength(file) != header.CiphertextLength)
        {
            throw new ModelException(ModelError.CiphertextLengthMismatch, $"encrypted file is {RandomAccess.GetLength(file)} bytes, its header says {header.CiphertextLength}");
        }

        using var root = StartRoot(fixedPart.AsSpan(0, header.HeaderLength));
        var buffer = new byte[header.SegmentSize + ModelFileHeader.SegmentTagLength];
        Span<byte> leaf = stackalloc byte[DigestLength];
        long offset = header.HeaderLength;
        for (long i = 0; i < header.SegmentCount; i++)
        {
            var length = SegmentCiphertextLength(header, i);
            if (ReadAt(file, buffer.AsSpan(0, length), offset) != length)
            {
                throw new ModelException(ModelError.CiphertextLengthMismatch, $"encrypted file ends inside segment {i}");
            }

            SHA256.HashData(buffer.AsSpan(0, length), leaf);
            root.AppendData(leaf);
            offset += length;
        }

        return root.GetHashAndReset();
    }

    internal static int SegmentCiphertextLength(ModelFileHeader header, long index)
        => (int)Math.Min(header.SegmentSize, header.PlaintextLength - (index * header.SegmentSize)) + ModelFileHeader.SegmentTagLength;

    private static int ReadAt(SafeFileHandle file, Span<byte> destination, long offset)
    {
        var total = 0;
        while (total < destination.Length)
        {
            var n = RandomAccess.Read(file, destination[total..], offset + total);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }
}
