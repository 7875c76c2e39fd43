using System.Security.Cryptography;

namespace AttestBroker.Protocol;

/// <summary>
/// The binding between evidence and the pod's ephemeral key:
/// REPORT_DATA = SHA-512( nonce (32 bytes) || SHA-256 RFC 7638 thumbprint of the JWK (its 32 raw bytes) ),
/// 64 bytes, filling REPORT_DATA exactly. The thumbprint enters as raw digest bytes, not as its base64url text
/// (docs/protocol.md has a worked example).
/// </summary>
public static class ReportDataBinding
{
    /// <summary>Length of the broker's nonce in bytes.</summary>
    public const int NonceLength = 32;

    /// <summary>Length of TDX/SNP REPORT_DATA in bytes (and of a SHA-512 digest).</summary>
    public const int ReportDataLength = 64;

    /// <summary>Length of the raw SHA-256 thumbprint.</summary>
    public const int ThumbprintLength = 32;

    /// <summary>Computes the 64 REPORT_DATA bytes for a nonce and the pod's public key.</summary>
    public static byte[] Compute(ReadOnlySpan<byte> nonce, Jwk jwk)
    {
        ArgumentNullException.ThrowIfNull(jwk);
        if (nonce.Length != NonceLength)
        {
            throw new ProtocolException(ProtocolError.NonceLengthInvalid, $"nonce must be {NonceLength} bytes, got {nonce.Length}");
        }

        Span<byte> input = stackalloc byte[NonceLength + ThumbprintLength];
        nonce.CopyTo(input);
        jwk.ThumbprintBytes().CopyTo(input[NonceLength..]);
        return SHA512.HashData(input);
    }

    /// <summary>True when the evidence's REPORT_DATA is exactly the binding of this nonce and key (compared in fixed time).</summary>
    public static bool Matches(ReadOnlySpan<byte> reportData, ReadOnlySpan<byte> nonce, Jwk jwk)
    {
        if (reportData.Length != ReportDataLength)
        {
            throw new ProtocolException(ProtocolError.ReportDataLengthInvalid, $"REPORT_DATA must be {ReportDataLength} bytes, got {reportData.Length}");
        }

        var expected = Compute(nonce, jwk);
        return CryptographicOperations.FixedTimeEquals(reportData, expected);
    }
}
