using System.Buffers.Binary;
using System.Text;

namespace AttestBroker.Models;

/// <summary>
/// The header of one encrypted model file ("MENC" version 1). Little-endian integers at fixed offsets, then the key id,
/// then a 32-byte HMAC-SHA-256 over everything before it. Parsing here is structural only; the MAC is checked by
/// <see cref="EncryptedModelFile.Open"/>. Layout (see docs/model-format.md):
/// <code>
/// 0x00  4  magic "MENC"            0x10  8  plaintext length
/// 0x04  1  version (1)             0x18 32  salt (HKDF salt, random per file)
/// 0x05  1  suite (1)               0x38  7  nonce prefix (random per file)
/// 0x06  2  flags (0)               0x3F  1  key id length K (1..255)
/// 0x08  4  header length           0x40  K  key id (ASCII)
/// 0x0C  4  segment size (plaintext bytes per segment)      0x40+K 32 header tag
/// </code>
/// </summary>
public sealed class ModelFileHeader
{
    public const int MagicOffset = 0x00;
    public const int VersionOffset = 0x04;
    public const int SuiteOffset = 0x05;
    public const int FlagsOffset = 0x06;
    public const int HeaderLengthOffset = 0x08;
    public const int SegmentSizeOffset = 0x0C;
    public const int PlaintextLengthOffset = 0x10;
    public const int SaltOffset = 0x18;
    public const int NoncePrefixOffset = 0x38;
    public const int KeyIdLengthOffset = 0x3F;
    public const int KeyIdOffset = 0x40;

    public const int SaltLength = 32;
    public const int NoncePrefixLength = 7;
    public const int TagLength = 32;
    public const int FixedLength = KeyIdOffset;
    public const int MaxKeyIdLength = 255;
    public const int MaxHeaderLength = FixedLength + MaxKeyIdLength + TagLength;

    public const byte CurrentVersion = 1;
    public const byte SuiteAes256GcmHkdfSha256 = 1;

    /// <summary>Smallest allowed segment size (plaintext bytes): 1 MiB.</summary>
    public const int MinSegmentSize = 1 << 20;

    /// <summary>Largest allowed segment size (plaintext bytes): 4 MiB.</summary>
    public const int MaxSegmentSize = 4 << 20;

    /// <summary>Default segment size: 1 MiB (as Tink's AES256_GCM_HKDF_1MB); keeps the decrypt pipeline's buffers at a few MiB.</summary>
    public const int DefaultSegmentSize = 1 << 20;

    /// <summary>Bytes of GCM tag after every segment.</summary>
    public const int SegmentTagLength = 16;

    /// <summary>Segments are numbered by a 32-bit counter in the nonce.</summary>
    public const long MaxSegmentCount = 1L << 32;

    public static ReadOnlySpan<byte> Magic => "MENC"u8;

    private ModelFileHeader(int segmentSize, long plaintextLength, byte[] salt, byte[] noncePrefix, string keyId, byte[] tag, int headerLength)
    {
        SegmentSize = segmentSize;
        PlaintextLength = plaintextLength;
        Salt = salt;
        NoncePrefix = noncePrefix;
        KeyId = keyId;
        Tag = tag;
        HeaderLength = headerLength;
        SegmentCount = SegmentCountFor(plaintextLength, segmentSize);
        CiphertextLength = CiphertextLengthFor(headerLength, plaintextLength, segmentSize);
    }

    public int SegmentSize { get; }

    public long PlaintextLength { get; }

    public ReadOnlyMemory<byte> Salt { get; }

    public ReadOnlyMemory<byte> NoncePrefix { get; }

    public string KeyId { get; }

    /// <summary>The header MAC, which is also the associated data of every segment.</summary>
    public ReadOnlyMemory<byte> Tag { get; }

    /// <summary>Total header bytes including the tag: 0x40 + key id length + 32.</summary>
    public int HeaderLength { get; }

    public long SegmentCount { get; }

    /// <summary>The exact length the ciphertext file must have.</summary>
    public long CiphertextLength { get; }

    /// <summary>Number of segments for a plaintext: at least one (an empty file has one empty segment).</summary>
    public static long SegmentCountFor(long plaintextLength, int segmentSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(plaintextLength);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(segmentSize);
        return plaintextLength == 0 ? 1 : ((plaintextLength - 1) / segmentSize) + 1;
    }

    public static long CiphertextLengthFor(int headerLength, long plaintextLength, int segmentSize)
        => headerLength + plaintextLength + (SegmentCountFor(plaintextLength, segmentSize) * SegmentTagLength);

    public static int HeaderLengthFor(string keyId)
    {
        ValidateKeyId(keyId);
        return FixedLength + keyId.Length + TagLength;
    }

    /// <summary>Key ids: 1..255 characters from [A-Za-z0-9._:/@+=-].</summary>
    public static void ValidateKeyId(string keyId)
    {
        ArgumentNullException.ThrowIfNull(keyId);
        if (keyId.Length is 0 or > MaxKeyIdLength)
        {
            throw new ModelException(ModelError.KeyIdInvalid, $"key id must be 1..{MaxKeyIdLength} characters");
        }

        foreach (var c in keyId)
        {
            var ok = c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '_' or ':' or '/' or '@' or '+' or '=' or '-';
            if (!ok)
            {
                throw new ModelException(ModelError.KeyIdInvalid, "key id may contain only A-Z a-z 0-9 . _ : / @ + = -");
            }
        }
    }

    public static void ValidateSegmentSize(int segmentSize)
    {
        if (segmentSize is < MinSegmentSize or > MaxSegmentSize)
        {
            throw new ModelException(ModelError.SegmentSizeOutOfRange, $"segment size {segmentSize} is outside {MinSegmentSize}..{MaxSegmentSize}");
        }
    }

    /// <summary>Reads how long the whole header is from its fixed part, after checking magic, version, suite and flags.</summary>
    public static int PeekHeaderLength(ReadOnlySpan<byte> fixedPart)
    {
        CheckFixedPart(fixedPart);
        return FixedLength + fixedPart[KeyIdLengthOffset] + TagLength;
    }

    /// <summary>Parses a complete header (structure only, no MAC check). <paramref name="data"/> may continue past the header.</summary>
    public static ModelFileHeader Parse(ReadOnlySpan<byte> data)
    {
        CheckFixedPart(data);
        var keyIdLength = data[KeyIdLengthOffset];
        var headerLength = FixedLength + keyIdLength + TagLength;
        if (data.Length < headerLength)
        {
            throw new ModelException(ModelError.HeaderMalformed, $"header needs {headerLength} bytes, have {data.Length}");
        }

        var declaredLength = BinaryPrimitives.ReadUInt32LittleEndian(data[HeaderLengthOffset..]);
        if (declaredLength != headerLength)
        {
            throw new ModelException(ModelError.HeaderMalformed, $"header length field at 0x{HeaderLengthOffset:X2} is {declaredLength}, expected {headerLength}");
        }

        var segmentSize = BinaryPrimitives.ReadInt32LittleEndian(data[SegmentSizeOffset..]);
        ValidateSegmentSize(segmentSize);

        var plaintextLength = BinaryPrimitives.ReadInt64LittleEndian(data[PlaintextLengthOffset..]);
        if (plaintextLength < 0 || plaintextLength > (MaxSegmentCount * segmentSize))
        {
            throw new ModelException(ModelError.HeaderMalformed, $"plaintext length at 0x{PlaintextLengthOffset:X2} is out of range");
        }

        var keyIdBytes = data.Slice(KeyIdOffset, keyIdLength);
        foreach (var b in keyIdBytes)
        {
            if (b is < 0x21 or > 0x7E)
            {
                throw new ModelException(ModelError.KeyIdInvalid, $"key id at 0x{KeyIdOffset:X2} is not printable ASCII");
            }
        }

        var keyId = Encoding.ASCII.GetString(keyIdBytes);
        ValidateKeyId(keyId);
        return new ModelFileHeader(
            segmentSize,
            plaintextLength,
            data.Slice(SaltOffset, SaltLength).ToArray(),
            data.Slice(NoncePrefixOffset, NoncePrefixLength).ToArray(),
            keyId,
            data.Slice(KeyIdOffset + keyIdLength, TagLength).ToArray(),
            headerLength);
    }

    /// <summary>Writes the header fields (everything but the tag) into <paramref name="destination"/>; returns the header length.</summary>
    internal static int WriteUnauthenticated(Span<byte> destination, int segmentSize, long plaintextLength, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> noncePrefix, string keyId)
    {
        ValidateSegmentSize(segmentSize);
        var headerLength = HeaderLengthFor(keyId);
        if (destination.Length < headerLength)
        {
            throw new ArgumentException("destination too small for the header", nameof(destination));
        }

        if (salt.Length != SaltLength || noncePrefix.Length != NoncePrefixLength)
        {
            throw new ArgumentException("salt or nonce prefix has the wrong length");
        }

        destination[..headerLength].Clear();
        Magic.CopyTo(destination[MagicOffset..]);
        destination[VersionOffset] = CurrentVersion;
        destination[SuiteOffset] = SuiteAes256GcmHkdfSha256;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[FlagsOffset..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[HeaderLengthOffset..], (uint)headerLength);
        BinaryPrimitives.WriteInt32LittleEndian(destination[SegmentSizeOffset..], segmentSize);
        BinaryPrimitives.WriteInt64LittleEndian(destination[PlaintextLengthOffset..], plaintextLength);
        salt.CopyTo(destination[SaltOffset..]);
        noncePrefix.CopyTo(destination[NoncePrefixOffset..]);
        destination[KeyIdLengthOffset] = (byte)keyId.Length;
        Encoding.ASCII.GetBytes(keyId, destination[KeyIdOffset..]);
        return headerLength;
    }

    private static void CheckFixedPart(ReadOnlySpan<byte> data)
    {
        if (data.Length < FixedLength)
        {
            throw new ModelException(ModelError.HeaderMalformed, $"header needs at least {FixedLength} bytes, have {data.Length}");
        }

        if (!data[MagicOffset..(MagicOffset + 4)].SequenceEqual(Magic))
        {
            throw new ModelException(ModelError.BadMagic, "not an encrypted model file (magic at 0x00 is not MENC)");
        }

        if (data[VersionOffset] != CurrentVersion)
        {
            throw new ModelException(ModelError.UnsupportedVersion, $"format version {data[VersionOffset]} at 0x{VersionOffset:X2} is not supported");
        }

        if (data[SuiteOffset] != SuiteAes256GcmHkdfSha256)
        {
            throw new ModelException(ModelError.UnsupportedSuite, $"cipher suite {data[SuiteOffset]} at 0x{SuiteOffset:X2} is not supported");
        }

        if (BinaryPrimitives.ReadUInt16LittleEndian(data[FlagsOffset..]) != 0)
        {
            throw new ModelException(ModelError.ReservedFlagsSet, $"reserved flags at 0x{FlagsOffset:X2} are not zero");
        }

        if (data[KeyIdLengthOffset] == 0)
        {
            throw new ModelException(ModelError.KeyIdInvalid, $"key id length at 0x{KeyIdLengthOffset:X2} is zero");
        }
    }
}
