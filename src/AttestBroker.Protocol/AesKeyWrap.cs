using System.Buffers.Binary;
using System.Security.Cryptography;

namespace AttestBroker.Protocol;

/// <summary>
/// AES Key Wrap, RFC 3394 §2.2 (the index-based form), over .NET's AES-ECB on single blocks, with the default
/// initial value A6A6A6A6A6A6A6A6. Used by ECDH-ES+A256KW to wrap the 32-byte content key into 40 bytes.
/// </summary>
public static class AesKeyWrap
{
    private const int BlockHalf = 8;
    private const ulong DefaultIv = 0xA6A6A6A6A6A6A6A6UL;
    private const int Rounds = 6;

    /// <summary>Wraps key data (a multiple of 8 bytes, at least 16) under a 16/24/32-byte KEK.</summary>
    public static byte[] Wrap(ReadOnlySpan<byte> kek, ReadOnlySpan<byte> keyData)
    {
        CheckKek(kek);
        if (keyData.Length < 2 * BlockHalf || keyData.Length % BlockHalf != 0)
        {
            throw new ProtocolException(ProtocolError.KeyWrapLengthInvalid, "key data must be a multiple of 8 bytes and at least 16");
        }

        var n = keyData.Length / BlockHalf;
        var output = new byte[keyData.Length + BlockHalf];
        keyData.CopyTo(output.AsSpan(BlockHalf));
        var block = new byte[16];
        var result = new byte[16];
        using var aes = Aes.Create();
        aes.SetKey(kek);
        try
        {
            // One ECB transform for all 6n block encryptions: a one-shot EncryptEcb makes a new cipher context each call.
            aes.Mode = CipherMode.ECB;
            aes.Padding = PaddingMode.None;
            using var ecb = aes.CreateEncryptor();
            var a = DefaultIv;
            for (var j = 0; j < Rounds; j++)
            {
                for (var i = 1; i <= n; i++)
                {
                    var r = output.AsSpan(i * BlockHalf, BlockHalf);
                    BinaryPrimitives.WriteUInt64BigEndian(block, a);
                    r.CopyTo(block.AsSpan(BlockHalf));
                    Transform(ecb, block, result);
                    a = BinaryPrimitives.ReadUInt64BigEndian(result) ^ (ulong)((n * j) + i);
                    result.AsSpan(BlockHalf).CopyTo(r);
                }
            }

            BinaryPrimitives.WriteUInt64BigEndian(output, a);
            return output;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(block);
            CryptographicOperations.ZeroMemory(result);
        }
    }

    /// <summary>Unwraps and checks the integrity value; fails with <see cref="ProtocolError.KeyUnwrapFailed"/> on any mismatch.</summary>
    public static byte[] Unwrap(ReadOnlySpan<byte> kek, ReadOnlySpan<byte> wrapped)
    {
        CheckKek(kek);
        if (wrapped.Length < 3 * BlockHalf || wrapped.Length % BlockHalf != 0)
        {
            throw new ProtocolException(ProtocolError.KeyWrapLengthInvalid, "wrapped key must be a multiple of 8 bytes and at least 24");
        }

        var n = (wrapped.Length / BlockHalf) - 1;
        var r = new byte[n * BlockHalf];
        wrapped[BlockHalf..].CopyTo(r);
        var block = new byte[16];
        var result = new byte[16];
        Span<byte> aBytes = stackalloc byte[BlockHalf];
        Span<byte> ivBytes = stackalloc byte[BlockHalf];
        using var aes = Aes.Create();
        aes.SetKey(kek);
        try
        {
            aes.Mode = CipherMode.ECB;
            aes.Padding = PaddingMode.None;
            using var ecb = aes.CreateDecryptor();
            var a = BinaryPrimitives.ReadUInt64BigEndian(wrapped);
            for (var j = Rounds - 1; j >= 0; j--)
            {
                for (var i = n; i >= 1; i--)
                {
                    var ri = r.AsSpan((i - 1) * BlockHalf, BlockHalf);
                    BinaryPrimitives.WriteUInt64BigEndian(block, a ^ (ulong)((n * j) + i));
                    ri.CopyTo(block.AsSpan(BlockHalf));
                    Transform(ecb, block, result);
                    a = BinaryPrimitives.ReadUInt64BigEndian(result);
                    result.AsSpan(BlockHalf).CopyTo(ri);
                }
            }

            BinaryPrimitives.WriteUInt64BigEndian(aBytes, a);
            BinaryPrimitives.WriteUInt64BigEndian(ivBytes, DefaultIv);
            if (!CryptographicOperations.FixedTimeEquals(aBytes, ivBytes))
            {
                CryptographicOperations.ZeroMemory(r);
                throw new ProtocolException(ProtocolError.KeyUnwrapFailed, "integrity check value mismatch (wrong key or altered data)");
            }

            return r;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(block);
            CryptographicOperations.ZeroMemory(result);
        }
    }

    /// <summary>One AES block through an ECB transform without padding.</summary>
    private static void Transform(ICryptoTransform ecb, byte[] input, byte[] output)
    {
        if (ecb.TransformBlock(input, 0, 16, output, 0) != 16)
        {
            throw new CryptographicException("AES block transform returned a short block");
        }
    }

    private static void CheckKek(ReadOnlySpan<byte> kek)
    {
        if (kek.Length is not (16 or 24 or 32))
        {
            throw new ProtocolException(ProtocolError.KeyWrapLengthInvalid, "KEK must be 16, 24 or 32 bytes");
        }
    }
}
