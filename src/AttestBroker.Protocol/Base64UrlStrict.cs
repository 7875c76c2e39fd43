namespace AttestBroker.Protocol;

/// <summary>
/// RFC 7515 §2 base64url without padding, decoded strictly: only A-Z a-z 0-9 '-' '_', no '=', no whitespace,
/// no length of 4k+1, and the unused low bits of the last character must be zero (so every byte string has
/// exactly one accepted encoding, which keeps thumbprints and signatures unambiguous).
/// </summary>
internal static class Base64UrlStrict
{
    public static string Encode(ReadOnlySpan<byte> data) => System.Buffers.Text.Base64Url.EncodeToString(data);

    public static bool TryDecode(ReadOnlySpan<char> text, out byte[] data)
    {
        data = [];
        var rem = text.Length % 4;
        if (rem == 1)
        {
            return false;
        }

        var outLen = (text.Length / 4 * 3) + (rem == 0 ? 0 : rem - 1);
        var result = new byte[outLen];
        var o = 0;
        var acc = 0;
        var bits = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var v = Value(text[i]);
            if (v < 0)
            {
                return false;
            }

            acc = (acc << 6) | v;
            bits += 6;
            if (bits >= 8)
            {
                bits -= 8;
                result[o++] = (byte)(acc >> bits);
                acc &= (1 << bits) - 1;
            }
        }

        // Leftover bits (2 or 4) must be zero for the encoding to be canonical.
        if (acc != 0)
        {
            return false;
        }

        data = result;
        return true;
    }

    public static byte[] Decode(ReadOnlySpan<char> text, ProtocolError error, string field)
    {
        if (!TryDecode(text, out var data))
        {
            throw new ProtocolException(error, $"{field} is not strict unpadded base64url");
        }

        return data;
    }

    private static int Value(char c) => c switch
    {
        >= 'A' and <= 'Z' => c - 'A',
        >= 'a' and <= 'z' => c - 'a' + 26,
        >= '0' and <= '9' => c - '0' + 52,
        '-' => 62,
        '_' => 63,
        _ => -1,
    };
}
