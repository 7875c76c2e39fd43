using System.Buffers.Binary;
using System.Security.Cryptography;

namespace AttestBroker.Keys.Backends.AzureKeyVault;

/// <summary>
/// AES Key Wrap with Padding, RFC 5649, over .NET's AES-ECB on single blocks (.NET has no built-in KWP). Alternative
/// initial value A65959A6 || u32be(message length). One 8-byte block of padded input is a single AES block
/// encryption (§4.1); longer input uses the RFC 3394 index-based wrapping with 6·n steps.
/// </summary>
public static class AesKeyWrapWithPadding
{
    private const uint AivPrefix = 0xA65959A6;
    private const int Half = 8;

    /// <summary>Wraps 1.. bytes of key data under a 16/24/32-byte AES key.</summary>
    public static byte[] Wrap(ReadOnlySpan<byte> kek, ReadOnlySpan<byte> keyData)
    {
        if (keyData.Length == 0)
        {
            throw new ArgumentException("key data must not be empty", nameof(keyData));
        }

        int n = (keyData.Length + Half - 1) / Half;
        byte[] output = new byte[(n + 1) * Half];
        ulong aiv = ((ulong)AivPrefix << 32) | (uint)keyData.Length;
        using Aes aes = Create(kek);
        Span<byte> block = stackalloc byte[16];
        try
        {
            if (n == 1)
            {
                BinaryPrimitives.WriteUInt64BigEndian(block, aiv);
                block[Half..].Clear();
                keyData.CopyTo(block[Half..]);
                aes.EncryptEcb(block, output, PaddingMode.None);
                return output;
            }

            keyData.CopyTo(output.AsSpan(Half));
            ulong a = aiv;
            for (int j = 0; j < 6; j++)
            {
                for (int i = 1; i <= n; i++)
                {
                    Span<byte> r = output.AsSpan(i * Half, Half);
                    BinaryPrimitives.WriteUInt64BigEndian(block, a);
                    r.CopyTo(block[Half..]);
                    aes.EncryptEcb(block, block, PaddingMode.None);
                    a = BinaryPrimitives.ReadUInt64BigEndian(block) ^ (ulong)((n * j) + i);
                    block[Half..].CopyTo(r);
                }
            }

            BinaryPrimitives.WriteUInt64BigEndian(output, a);
            return output;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(block);
        }
    }

    /// <summary>
    /// Unwraps and checks the alternative initial value, the length and the zero padding; false on any mismatch
    /// (the output is then zeroed). <paramref name="keyData"/> receives a new array the caller zeroes after use.
    /// </summary>
    public static bool TryUnwrap(ReadOnlySpan<byte> kek, ReadOnlySpan<byte> wrapped, out byte[] keyData)
    {
        keyData = [];
        if (wrapped.Length < 2 * Half || wrapped.Length % Half != 0)
        {
            return false;
        }

        int n = (wrapped.Length / Half) - 1;
        byte[] plain = new byte[n * Half];
        using Aes aes = Create(kek);
        Span<byte> block = stackalloc byte[16];
        try
        {
            ulong a;
            if (n == 1)
            {
                aes.DecryptEcb(wrapped, block, PaddingMode.None);
                a = BinaryPrimitives.ReadUInt64BigEndian(block);
                block[Half..].CopyTo(plain);
            }
            else
            {
                a = BinaryPrimitives.ReadUInt64BigEndian(wrapped);
                wrapped[Half..].CopyTo(plain);
                for (int j = 5; j >= 0; j--)
                {
                    for (int i = n; i >= 1; i--)
                    {
                        Span<byte> r = plain.AsSpan((i - 1) * Half, Half);
                        BinaryPrimitives.WriteUInt64BigEndian(block, a ^ (ulong)((n * j) + i));
                        r.CopyTo(block[Half..]);
                        aes.DecryptEcb(block, block, PaddingMode.None);
                        a = BinaryPrimitives.ReadUInt64BigEndian(block);
                        block[Half..].CopyTo(r);
                    }
                }
            }

            uint prefix = (uint)(a >> 32);
            int mli = (int)(uint)a;
            int padding = (n * Half) - mli;
            bool ok = prefix == AivPrefix && mli > (n - 1) * Half && mli <= n * Half;
            int nonZero = 0;
            if (ok)
            {
                foreach (byte b in plain.AsSpan(mli, padding))
                {
                    nonZero |= b;
                }
            }

            if (!ok || nonZero != 0)
            {
                CryptographicOperations.ZeroMemory(plain);
                return false;
            }

            keyData = plain.AsSpan(0, mli).ToArray();
            CryptographicOperations.ZeroMemory(plain);
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(block);
        }
    }

    private static Aes Create(ReadOnlySpan<byte> kek)
    {
        if (kek.Length is not (16 or 24 or 32))
        {
            throw new ArgumentException("an AES key-wrapping key is 16, 24 or 32 bytes", nameof(kek));
        }

        var aes = Aes.Create();
        aes.SetKey(kek);
        return aes;
    }
}
