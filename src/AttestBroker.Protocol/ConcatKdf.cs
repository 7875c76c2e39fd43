using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace AttestBroker.Protocol;

/// <summary>
/// The single-step KDF of NIST SP 800-56A §5.8.1 with SHA-256 as JWA uses it (RFC 7518 §4.6.2):
/// round i = SHA-256( BE32(i) || Z || OtherInfo ), OtherInfo = AlgorithmID || PartyUInfo || PartyVInfo || SuppPubInfo,
/// where the first three are BE32(length) || bytes and SuppPubInfo = BE32(keydatalen in bits).
/// </summary>
public static class ConcatKdf
{
    private const int HashLength = 32;

    /// <summary>Derives keyDataLengthBits / 8 bytes from the shared secret Z.</summary>
    public static byte[] Derive(ReadOnlySpan<byte> z, string algorithmId, ReadOnlySpan<byte> partyUInfo, ReadOnlySpan<byte> partyVInfo, int keyDataLengthBits)
    {
        ArgumentNullException.ThrowIfNull(algorithmId);
        if (keyDataLengthBits <= 0 || keyDataLengthBits % 8 != 0 || keyDataLengthBits > 8 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(keyDataLengthBits), "must be a positive multiple of 8, at most 8192");
        }

        var alg = Encoding.ASCII.GetBytes(algorithmId);
        var otherInfo = new byte[4 + alg.Length + 4 + partyUInfo.Length + 4 + partyVInfo.Length + 4];
        var o = otherInfo.AsSpan();
        BinaryPrimitives.WriteInt32BigEndian(o, alg.Length);
        alg.CopyTo(o[4..]);
        o = o[(4 + alg.Length)..];
        BinaryPrimitives.WriteInt32BigEndian(o, partyUInfo.Length);
        partyUInfo.CopyTo(o[4..]);
        o = o[(4 + partyUInfo.Length)..];
        BinaryPrimitives.WriteInt32BigEndian(o, partyVInfo.Length);
        partyVInfo.CopyTo(o[4..]);
        o = o[(4 + partyVInfo.Length)..];
        BinaryPrimitives.WriteInt32BigEndian(o, keyDataLengthBits);

        var keyLength = keyDataLengthBits / 8;
        var reps = (keyLength + HashLength - 1) / HashLength;
        var derived = new byte[reps * HashLength];
        Span<byte> counter = stackalloc byte[4];
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        try
        {
            for (var i = 1; i <= reps; i++)
            {
                BinaryPrimitives.WriteInt32BigEndian(counter, i);
                h.AppendData(counter);
                h.AppendData(z);
                h.AppendData(otherInfo);
                h.GetHashAndReset(derived.AsSpan((i - 1) * HashLength, HashLength));
            }

            return derived.AsSpan(0, keyLength).ToArray();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(derived);
        }
    }
}
