using System.Security.Cryptography;
using System.Text;
using NUnit.Framework;

namespace AttestBroker.Protocol.Tests;

/// <summary>Keys and small helpers shared by the fixtures. RSA keys are made once per run (generation is slow).</summary>
internal static class TestSupport
{
    private static readonly Lazy<RSA> Rsa3072Lazy = new(() => RSA.Create(3072));
    private static readonly Lazy<RSA> Rsa4096Lazy = new(() => RSA.Create(4096));
    private static readonly Lazy<RSA> OtherRsa3072Lazy = new(() => RSA.Create(3072));

    public static RSA Rsa3072 => Rsa3072Lazy.Value;

    public static RSA Rsa4096 => Rsa4096Lazy.Value;

    public static RSA OtherRsa3072 => OtherRsa3072Lazy.Value;

    public static ECDiffieHellman NewEcdh(string crv) =>
        ECDiffieHellman.Create(crv == "P-384" ? ECCurve.NamedCurves.nistP384 : ECCurve.NamedCurves.nistP256);

    public static string B64(ReadOnlySpan<byte> data) => System.Buffers.Text.Base64Url.EncodeToString(data);

    public static byte[] UnB64(string s) => System.Buffers.Text.Base64Url.DecodeFromChars(s);

    public static string B64Json(string json) => B64(Encoding.UTF8.GetBytes(json));

    /// <summary>Flips one bit of the decoded segment <paramref name="index"/> and re-encodes it.</summary>
    public static string FlipBitInSegment(string compact, int index, int byteIndex = 0, int bit = 0)
    {
        var parts = compact.Split('.');
        var bytes = UnB64(parts[index]);
        bytes[byteIndex % bytes.Length] ^= (byte)(1 << bit);
        parts[index] = B64(bytes);
        return string.Join('.', parts);
    }

    /// <summary>Replaces segment <paramref name="index"/> with the base64url of <paramref name="bytes"/>.</summary>
    public static string ReplaceSegment(string compact, int index, byte[] bytes)
    {
        var parts = compact.Split('.');
        parts[index] = B64(bytes);
        return string.Join('.', parts);
    }

    public static string HeaderJson(string compact) => Encoding.UTF8.GetString(UnB64(compact.Split('.')[0]));

    public static ProtocolError ErrorOf(TestDelegate action)
    {
        var e = Assert.Throws<ProtocolException>(action);
        return e!.Error;
    }
}
