using System.Buffers.Binary;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace AttestBroker.Models;

/// <summary>
/// One encrypted model file opened with its key: the header is authenticated, the per-file keys are derived,
/// and any segment can be decrypted alone (random access). Dispose zeroes the derived keys.
/// </summary>
/// <remarks>
/// Key schedule: PRK = HKDF-Extract(SHA-256, salt = header salt, IKM = model key);
/// K_seg = HKDF-Expand(PRK, "AttestBroker MENC v1 segment key", 32); K_hdr = HKDF-Expand(PRK, "AttestBroker MENC v1 header mac", 32).
/// Header tag = HMAC-SHA-256(K_hdr, header bytes before the tag). Segment i: AES-256-GCM under K_seg,
/// nonce = prefix(7) || BE32(i) || (i == last ? 1 : 0), associated data = header tag.
/// </remarks>
public sealed class EncryptedModelFile : IDisposable
{
    internal static ReadOnlySpan<byte> SegmentKeyInfo => "AttestBroker MENC v1 segment key"u8;

    internal static ReadOnlySpan<byte> HeaderMacInfo => "AttestBroker MENC v1 header mac"u8;

    private readonly byte[] _segmentKey;
    private SegmentCipher? _randomAccessCipher;
    private bool _disposed;

    private EncryptedModelFile(ModelFileHeader header, byte[] segmentKey)
    {
        Header = header;
        _segmentKey = segmentKey;
    }

    public ModelFileHeader Header { get; }

    /// <summary>
    /// Parses and authenticates a header with the model key. Fails with <see cref="ModelError.KeyIdMismatch"/> when
    /// <paramref name="expectedKeyId"/> is given and differs, and <see cref="ModelError.HeaderAuthenticationFailed"/> when the MAC does not verify.
    /// </summary>
    public static EncryptedModelFile Open(ReadOnlySpan<byte> headerBytes, ModelKey key, string? expectedKeyId = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        var header = ModelFileHeader.Parse(headerBytes);
        if (expectedKeyId is not null && !string.Equals(expectedKeyId, header.KeyId, StringComparison.Ordinal))
        {
            throw new ModelException(ModelError.KeyIdMismatch, $"file is encrypted under key id '{header.KeyId}', expected '{expectedKeyId}'");
        }

        var segmentKey = GC.AllocateArray<byte>(32, pinned: true);
        Span<byte> macKey = stackalloc byte[32];
        Span<byte> mac = stackalloc byte[32];
        try
        {
            DeriveKeys(key.Span, header.Salt.Span, segmentKey, macKey);
            var authenticated = headerBytes[..(header.HeaderLength - ModelFileHeader.TagLength)];
            HMACSHA256.HashData(macKey, authenticated, mac);
            if (!CryptographicOperations.FixedTimeEquals(mac, header.Tag.Span))
            {
                throw new ModelException(ModelError.HeaderAuthenticationFailed, "header authentication failed: the header was changed or the model key is wrong");
            }

            var result = new EncryptedModelFile(header, segmentKey);
            segmentKey = null!;
            return result;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(macKey);
            if (segmentKey is not null)
            {
                CryptographicOperations.ZeroMemory(segmentKey);
            }
        }
    }

    /// <summary>Byte offset of segment <paramref name="index"/> in the ciphertext file.</summary>
    public long SegmentOffset(long index)
    {
        CheckIndex(index);
        return Header.HeaderLength + (index * (Header.SegmentSize + (long)ModelFileHeader.SegmentTagLength));
    }

    /// <summary>Plaintext bytes in segment <paramref name="index"/>.</summary>
    public int SegmentPlaintextLength(long index)
    {
        CheckIndex(index);
        return (int)Math.Min(Header.SegmentSize, Header.PlaintextLength - (index * Header.SegmentSize));
    }

    /// <summary>Ciphertext bytes (including the 16-byte tag) of segment <paramref name="index"/>.</summary>
    public int SegmentCiphertextLength(long index) => SegmentPlaintextLength(index) + ModelFileHeader.SegmentTagLength;

    /// <summary>A cipher for one thread (each owns an AesGcm instance); dispose it when done.</summary>
    public SegmentCipher CreateCipher()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new SegmentCipher(_segmentKey, Header);
    }

    /// <summary>
    /// Decrypts segment <paramref name="index"/> alone. <paramref name="segmentCiphertext"/> is exactly the segment's bytes
    /// (ciphertext then tag); returns the plaintext length. Not thread-safe: use <see cref="CreateCipher"/> per thread for parallel work.
    /// </summary>
    public int DecryptSegment(long index, ReadOnlySpan<byte> segmentCiphertext, Span<byte> plaintext)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _randomAccessCipher ??= new SegmentCipher(_segmentKey, Header);
        return _randomAccessCipher.Decrypt(index, segmentCiphertext, plaintext);
    }

    /// <summary>Reads segment <paramref name="index"/> from an open ciphertext file and decrypts it; returns the plaintext length.</summary>
    public int ReadAndDecryptSegment(SafeFileHandle file, long index, Span<byte> plaintext)
    {
        ArgumentNullException.ThrowIfNull(file);
        var length = SegmentCiphertextLength(index);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var span = buffer.AsSpan(0, length);
            var offset = SegmentOffset(index);
            var total = 0;
            while (total < length)
            {
                var read = RandomAccess.Read(file, span[total..], offset + total);
                if (read == 0)
                {
                    throw new ModelException(ModelError.CiphertextLengthMismatch, $"ciphertext ends inside segment {index}");
                }

                total += read;
            }

            return DecryptSegment(index, span, plaintext);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _randomAccessCipher?.Dispose();
            CryptographicOperations.ZeroMemory(_segmentKey);
            _disposed = true;
        }
    }

    internal static void DeriveKeys(ReadOnlySpan<byte> modelKey, ReadOnlySpan<byte> salt, Span<byte> segmentKey, Span<byte> macKey)
    {
        Span<byte> prk = stackalloc byte[32];
        try
        {
            HKDF.Extract(HashAlgorithmName.SHA256, modelKey, salt, prk);
            HKDF.Expand(HashAlgorithmName.SHA256, prk, segmentKey, SegmentKeyInfo);
            HKDF.Expand(HashAlgorithmName.SHA256, prk, macKey, HeaderMacInfo);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
        }
    }

    internal static void WriteNonce(Span<byte> nonce, ReadOnlySpan<byte> prefix, long index, bool last)
    {
        prefix.CopyTo(nonce);
        BinaryPrimitives.WriteUInt32BigEndian(nonce[ModelFileHeader.NoncePrefixLength..], (uint)index);
        nonce[11] = last ? (byte)1 : (byte)0;
    }

    private void CheckIndex(long index)
    {
        if (index < 0 || index >= Header.SegmentCount)
        {
            throw new ModelException(ModelError.SegmentIndexOutOfRange, $"segment {index} does not exist (file has {Header.SegmentCount})");
        }
    }
}

/// <summary>AES-256-GCM for the segments of one file, for one thread. Dispose releases the AesGcm key schedule.</summary>
public sealed class SegmentCipher : IDisposable
{
    private readonly AesGcm _aes;
    private readonly byte[] _aad;
    private readonly byte[] _noncePrefix;
    private readonly long _segmentCount;
    private readonly int _segmentSize;
    private readonly long _plaintextLength;

    internal SegmentCipher(ReadOnlySpan<byte> segmentKey, ModelFileHeader header)
        : this(segmentKey, header.Tag.Span, header.NoncePrefix.Span, header.SegmentCount, header.SegmentSize, header.PlaintextLength)
    {
    }

    internal SegmentCipher(ReadOnlySpan<byte> segmentKey, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> noncePrefix, long segmentCount, int segmentSize, long plaintextLength)
    {
        _aes = new AesGcm(segmentKey, ModelFileHeader.SegmentTagLength);
        _aad = aad.ToArray();
        _noncePrefix = noncePrefix.ToArray();
        _segmentCount = segmentCount;
        _segmentSize = segmentSize;
        _plaintextLength = plaintextLength;
    }

    /// <summary>
    /// Decrypts segment <paramref name="index"/>; the nonce is computed from the position (never read from the file), so a
    /// segment moved, duplicated, swapped in from another file or cut short fails with <see cref="ModelError.SegmentAuthenticationFailed"/>.
    /// <paramref name="plaintext"/> may be the same memory as <paramref name="segmentCiphertext"/> (in place).
    /// </summary>
    public int Decrypt(long index, ReadOnlySpan<byte> segmentCiphertext, Span<byte> plaintext)
    {
        var length = PlaintextLength(index);
        if (segmentCiphertext.Length != length + ModelFileHeader.SegmentTagLength)
        {
            throw new ModelException(ModelError.CiphertextLengthMismatch, $"segment {index} must be {length + ModelFileHeader.SegmentTagLength} bytes, got {segmentCiphertext.Length}");
        }

        if (plaintext.Length < length)
        {
            throw new ArgumentException("plaintext buffer too small", nameof(plaintext));
        }

        Span<byte> nonce = stackalloc byte[12];
        EncryptedModelFile.WriteNonce(nonce, _noncePrefix, index, index == _segmentCount - 1);
        try
        {
            _aes.Decrypt(nonce, segmentCiphertext[..length], segmentCiphertext.Slice(length, ModelFileHeader.SegmentTagLength), plaintext[..length], _aad);
        }
        catch (AuthenticationTagMismatchException ex)
        {
            throw new ModelException(ModelError.SegmentAuthenticationFailed, $"segment {index} failed authentication", ex);
        }

        return length;
    }

    /// <summary>Encrypts segment <paramref name="index"/> into <paramref name="segmentCiphertext"/> (ciphertext then tag); returns bytes written.</summary>
    public int Encrypt(long index, ReadOnlySpan<byte> plaintext, Span<byte> segmentCiphertext)
    {
        var length = PlaintextLength(index);
        if (plaintext.Length != length)
        {
            throw new ArgumentException($"segment {index} must hold {length} plaintext bytes", nameof(plaintext));
        }

        Span<byte> nonce = stackalloc byte[12];
        EncryptedModelFile.WriteNonce(nonce, _noncePrefix, index, index == _segmentCount - 1);
        _aes.Encrypt(nonce, plaintext, segmentCiphertext[..length], segmentCiphertext.Slice(length, ModelFileHeader.SegmentTagLength), _aad);
        return length + ModelFileHeader.SegmentTagLength;
    }

    public void Dispose() => _aes.Dispose();

    private int PlaintextLength(long index)
    {
        if (index < 0 || index >= _segmentCount)
        {
            throw new ModelException(ModelError.SegmentIndexOutOfRange, $"segment {index} does not exist (file has {_segmentCount})");
        }

        return (int)Math.Min(_segmentSize, _plaintextLength - (index * _segmentSize));
    }
}
