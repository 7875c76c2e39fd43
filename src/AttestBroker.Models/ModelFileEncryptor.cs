using System.Security.Cryptography;

namespace AttestBroker.Models;

/// <summary>Encrypts one plaintext stream into the MENC v1 format (fresh random salt and nonce prefix every time).</summary>
public static class ModelFileEncryptor
{
    /// <summary>
    /// Reads exactly <paramref name="plaintextLength"/> bytes from <paramref name="plaintext"/> and writes the encrypted file to
    /// <paramref name="output"/>. Returns the root of the file's ciphertext digest tree (<see cref="CiphertextDigestTree"/>)
    /// under <paramref name="treeHash"/>, the value a manifest records.
    /// </summary>
    public static async Task<byte[]> EncryptAsync(Stream plaintext, long plaintextLength, Stream output, ModelKey key, string keyId, int segmentSize = ModelFileHeader.DefaultSegmentSize, CiphertextTreeHash treeHash = CiphertextTreeHash.Blake3, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentOutOfRangeException.ThrowIfNegative(plaintextLength);
        ModelFileHeader.ValidateSegmentSize(segmentSize);
        var segmentCount = ModelFileHeader.SegmentCountFor(plaintextLength, segmentSize);
        if (segmentCount > ModelFileHeader.MaxSegmentCount)
        {
            throw new ModelException(ModelError.SourceInvalid, "plaintext too large for 2^32 segments");
        }

        var header = new byte[ModelFileHeader.MaxHeaderLength];
        var salt = new byte[ModelFileHeader.SaltLength];
        var prefix = new byte[ModelFileHeader.NoncePrefixLength];
        RandomNumberGenerator.Fill(salt);
        RandomNumberGenerator.Fill(prefix);
        var headerLength = ModelFileHeader.WriteUnauthenticated(header, segmentSize, plaintextLength, salt, prefix, keyId);

        var segmentKey = GC.AllocateArray<byte>(32, pinned: true);
        var macKey = GC.AllocateArray<byte>(32, pinned: true);
        var plainBuffer = GC.AllocateUninitializedArray<byte>(segmentSize, pinned: true);
        var cipherBuffer = GC.AllocateUninitializedArray<byte>(segmentSize + ModelFileHeader.SegmentTagLength, pinned: true);
        CiphertextDigestTree.Root? tree = null;
        try
        {
            EncryptedModelFile.DeriveKeys(key.Span, salt, segmentKey, macKey);
            var tagOffset = headerLength - ModelFileHeader.TagLength;
            HMACSHA256.HashData(macKey, header.AsSpan(0, tagOffset), header.AsSpan(tagOffset, ModelFileHeader.TagLength));
            CryptographicOperations.ZeroMemory(macKey);

            await output.WriteAsync(header.AsMemory(0, headerLength), cancellationToken).ConfigureAwait(false);
            tree = CiphertextDigestTree.StartRoot(treeHash, header.AsSpan(0, headerLength));
            var leaf = new byte[CiphertextDigestTree.DigestLength];

            using var cipher = new SegmentCipher(segmentKey, header.AsSpan(tagOffset, ModelFileHeader.TagLength), prefix, segmentCount, segmentSize, plaintextLength);
            CryptographicOperations.ZeroMemory(segmentKey);
            for (long i = 0; i < segmentCount; i++)
            {
                var length = (int)Math.Min(segmentSize, plaintextLength - (i * segmentSize));
                await ReadExactlyAsync(plaintext, plainBuffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                var written = cipher.Encrypt(i, plainBuffer.AsSpan(0, length), cipherBuffer);
                CiphertextDigestTree.HashLeaf(treeHash, cipherBuffer.AsSpan(0, written), leaf);
                tree.Append(leaf);
                await output.WriteAsync(cipherBuffer.AsMemory(0, written), cancellationToken).ConfigureAwait(false);
            }

            if (await plaintext.ReadAsync(plainBuffer.AsMemory(0, 1), cancellationToken).ConfigureAwait(false) != 0)
            {
                throw new ModelException(ModelError.SourceInvalid, "plaintext is longer than its declared size (did it change while being encrypted?)");
            }

            return tree.Finish();
        }
        finally
        {
            tree?.Dispose();
            CryptographicOperations.ZeroMemory(segmentKey);
            CryptographicOperations.ZeroMemory(macKey);
            CryptographicOperations.ZeroMemory(plainBuffer);
        }
    }

    private static async Task ReadExactlyAsync(Stream stream, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var read = await stream.ReadAsync(buffer[total..], cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new ModelException(ModelError.SourceInvalid, "plaintext ended before its declared size (did it change while being encrypted?)");
            }

            total += read;
        }
    }
}
