using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using AttestBroker.Evidence;

namespace AttestBroker.Server;

/// <summary>A verified challenge: the 32-byte nonce, its TEE kind and its expiry.</summary>
public sealed record Challenge(byte[] Nonce, TeeKind Tee, DateTimeOffset ExpiresAt)
{
    /// <summary>Replay-store identity of the nonce (lower-case hex).</summary>
    public string NonceId => Convert.ToHexStringLower(Nonce);
}

/// <summary>Why a challenge token was refused.</summary>
public enum ChallengeError
{
    /// <summary>Not base64url, wrong length, unknown version or TEE byte, or the MAC does not verify.</summary>
    Invalid,

    /// <summary>Authentic but past its expiry.</summary>
    Expired,
}

/// <summary>
/// Stateless, MAC-protected nonces. A challenge token is base64url of
/// <c>version(1) || tee(1) || expiry(8, big-endian Unix seconds) || nonce(32) || HMAC-SHA256(secret, label || the preceding 42 bytes)(32)</c>,
/// so any replica holding the secret can check it without shared session state; single use comes from the replay store.
/// </summary>
public sealed class NonceService : IDisposable
{
    public const int NonceLength = 32;
    public const int SecretLength = 32;

    private const byte Version1 = 1;
    private const int VersionOffset = 0;
    private const int TeeOffset = 1;
    private const int ExpiryOffset = 2;
    private const int NonceOffset = 10;
    private const int MacOffset = NonceOffset + NonceLength;
    private const int MacLength = 32;
    private const int TokenLength = MacOffset + MacLength;
    private static readonly byte[] Label = "attestbroker-challenge-v1"u8.ToArray();

    private readonly byte[] _secret;
    private readonly TimeProvider _time;
    private readonly TimeSpan _lifetime;

    public NonceService(ReadOnlySpan<byte> secret, TimeProvider time, TimeSpan lifetime)
    {
        if (secret.Length != SecretLength)
        {
            throw new BrokerStartupException($"the nonce secret must be {SecretLength} bytes");
        }

        _secret = secret.ToArray();
        _time = time;
        _lifetime = lifetime;
    }

    public TimeSpan Lifetime => _lifetime;

    /// <summary>A fresh challenge and its token.</summary>
    public (Challenge Challenge, string Token) Issue(TeeKind tee)
    {
        var nonce = RandomNumberGenerator.GetBytes(NonceLength);
        var expires = DateTimeOffset.FromUnixTimeSeconds(_time.GetUtcNow().ToUnixTimeSeconds()).Add(_lifetime);
        Span<byte> token = stackalloc byte[TokenLength];
        token[VersionOffset] = Version1;
        token[TeeOffset] = TeeByte(tee);
        BinaryPrimitives.WriteInt64BigEndian(token.Slice(ExpiryOffset, 8), expires.ToUnixTimeSeconds());
        nonce.CopyTo(token.Slice(NonceOffset, NonceLength));
        Mac(token[..MacOffset], token.Slice(MacOffset, MacLength));
        return (new Challenge(nonce, tee, expires), Base64UrlEncode(token));
    }

    /// <summary>Checks a token: authentic (fixed-time MAC compare) and not expired at the current time.</summary>
    public bool TryOpen(string? token, out Challenge? challenge, out ChallengeError error)
    {
        challenge = null;
        error = ChallengeError.Invalid;
        if (token is null || token.Length != (TokenLength * 4 + 2) / 3)
        {
            return false;
        }

        Span<byte> raw = stackalloc byte[TokenLength];
        if (!TryBase64UrlDecode(token, raw))
        {
            return false;
        }

        Span<byte> expected = stackalloc byte[MacLength];
        Mac(raw[..MacOffset], expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, raw.Slice(MacOffset, MacLength)))
        {
            return false;
        }

        if (raw[VersionOffset] != Version1 || !TryTee(raw[TeeOffset], out var tee))
        {
            return false;
        }

        var expirySeconds = BinaryPrimitives.ReadInt64BigEndian(raw.Slice(ExpiryOffset, 8));
        if (expirySeconds is < 0 or > 253402300799)
        {
            return false;
        }

        var expires = DateTimeOffset.FromUnixTimeSeconds(expirySeconds);
        challenge = new Challenge(raw.Slice(NonceOffset, NonceLength).ToArray(), tee, expires);
        if (_time.GetUtcNow() >= expires)
        {
            error = ChallengeError.Expired;
            return false;
        }

        return true;
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(_secret);

    private void Mac(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _secret);
        hmac.AppendData(Label);
        hmac.AppendData(data);
        hmac.GetHashAndReset(destination);
    }

    private static byte TeeByte(TeeKind tee) => tee switch
    {
        TeeKind.Tdx => 1,
        TeeKind.SevSnp => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(tee)),
    };

    private static bool TryTee(byte b, out TeeKind tee)
    {
        tee = b == 2 ? TeeKind.SevSnp : TeeKind.Tdx;
        return b is 1 or 2;
    }

    internal static string Base64UrlEncode(ReadOnlySpan<byte> data) => Base64Url.EncodeToString(data);

    /// <summary>
    /// Strict base64url without padding into exactly <paramref name="destination"/>.Length bytes: only A-Z a-z 0-9
    /// '-' '_', no padding or whitespace, and canonical (the unused low bits of the last character are zero), so
    /// re-encoding gives back the same text. Decodes in place, without the intermediate strings (an evidence
    /// field is several KiB).
    /// </summary>
    internal static bool TryBase64UrlDecode(string text, Span<byte> destination)
    {
        var remainder = text.Length % 4;
        if (remainder == 1 || (text.Length / 4 * 3) + (remainder == 0 ? 0 : remainder - 1) != destination.Length)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                return false;
            }
        }

        try
        {
            // "Try" is about the destination's size; bad input throws.
            if (!Base64Url.TryDecodeFromChars(text, destination, out var written) || written != destination.Length)
            {
                return false;
            }
        }
        catch (FormatException)
        {
            return false;
        }

        // 2 characters left over carry 1 byte (4 unused bits), 3 carry 2 bytes (2 unused bits).
        return remainder == 0 || (SextetOf(text[^1]) & (remainder == 2 ? 0x0F : 0x03)) == 0;
    }

    private static int SextetOf(char c) => c switch
    {
        >= 'A' and <= 'Z' => c - 'A',
        >= 'a' and <= 'z' => c - 'a' + 26,
        >= '0' and <= '9' => c - '0' + 52,
        '-' => 62,
        _ => 63,
    };
}
