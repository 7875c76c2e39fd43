using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Storage;

/// <summary>
/// The audit chain's byte formats. Row hash = SHA-256 over
/// <c>"attestbroker-audit-row-v1" 0x00 || u64be(sequence) || previousHash[32] || u32be(len(json)) || json</c>,
/// where json is the event's canonical UTF-8 JSON exactly as stored. The first row's previous hash is 32 zero bytes.
/// A signed head covers <c>"attestbroker-audit-head-v1" 0x00 || u64be(sequence) || headHash[32] || i64be(signedAtUnixMs)</c>
/// with ECDSA P-256 / SHA-256 (IEEE P1363 r||s).
/// </summary>
public static class AuditChain
{
    public const int HashLength = 32;
    public const int MaxEventJsonBytes = 64 * 1024;

    private static readonly byte[] RowDomain = "attestbroker-audit-row-v1\0"u8.ToArray();
    private static readonly byte[] HeadDomain = "attestbroker-audit-head-v1\0"u8.ToArray();

    // Offsets inside the fixed-size part that follows the domain string.
    private const int RowSequenceOffset = 0;
    private const int RowPreviousOffset = RowSequenceOffset + sizeof(ulong);
    private const int RowLengthOffset = RowPreviousOffset + HashLength;
    private const int RowFixedLength = RowLengthOffset + sizeof(uint);

    private const int HeadSequenceOffset = 0;
    private const int HeadHashOffset = HeadSequenceOffset + sizeof(ulong);
    private const int HeadTimeOffset = HeadHashOffset + HashLength;
    private const int HeadFixedLength = HeadTimeOffset + sizeof(long);

    /// <summary>The previous hash of the first row.</summary>
    public static ReadOnlySpan<byte> GenesisHash => new byte[HashLength];

    /// <summary>Computes a row hash from its sequence, the previous row's hash and the canonical event JSON.</summary>
    public static byte[] ComputeRowHash(long sequence, ReadOnlySpan<byte> previousHash, ReadOnlySpan<byte> eventJson)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequence);
        if (previousHash.Length != HashLength)
        {
            throw new ArgumentException($"previous hash must be {HashLength} bytes", nameof(previousHash));
        }

        Span<byte> fixedPart = stackalloc byte[RowFixedLength];
        BinaryPrimitives.WriteUInt64BigEndian(fixedPart[RowSequenceOffset..], (ulong)sequence);
        previousHash.CopyTo(fixedPart[RowPreviousOffset..]);
        BinaryPrimitives.WriteUInt32BigEndian(fixedPart[RowLengthOffset..], (uint)eventJson.Length);

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(RowDomain);
        hash.AppendData(fixedPart);
        hash.AppendData(eventJson);
        return hash.GetHashAndReset();
    }

    /// <summary>The message a head signature covers.</summary>
    public static byte[] HeadMessage(long sequence, ReadOnlySpan<byte> headHash, DateTimeOffset signedAt)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sequence);
        if (headHash.Length != HashLength)
        {
            throw new ArgumentException($"head hash must be {HashLength} bytes", nameof(headHash));
        }

        var message = new byte[HeadDomain.Length + HeadFixedLength];
        HeadDomain.CopyTo(message, 0);
        Span<byte> fixedPart = message.AsSpan(HeadDomain.Length);
        BinaryPrimitives.WriteUInt64BigEndian(fixedPart[HeadSequenceOffset..], (ulong)sequence);
        headHash.CopyTo(fixedPart[HeadHashOffset..]);
        BinaryPrimitives.WriteInt64BigEndian(fixedPart[HeadTimeOffset..], signedAt.ToUnixTimeMilliseconds());
        return message;
    }

    /// <summary>Identifies a head-signing key: hex SHA-256 of its SubjectPublicKeyInfo, first 16 bytes.</summary>
    public static string SignerKeyId(ECDsa key)
    {
        ArgumentNullException.ThrowIfNull(key);
        byte[] spki = key.ExportSubjectPublicKeyInfo();
        return Convert.ToHexStringLower(SHA256.HashData(spki).AsSpan(0, 16));
    }

    /// <summary>Throws unless the key is ECDSA over NIST P-256.</summary>
    public static void RequireP256(ECDsa key)
    {
        ArgumentNullException.ThrowIfNull(key);
        ECParameters p = key.ExportParameters(false);
        bool isP256 = p.Curve.IsNamed
            && (p.Curve.Oid.Value == "1.2.840.10045.3.1.7"
                || string.Equals(p.Curve.Oid.FriendlyName, "nistP256", StringComparison.OrdinalIgnoreCase)
                || string.Equals(p.Curve.Oid.FriendlyName, "ECDSA_P256", StringComparison.OrdinalIgnoreCase));
        if (!isP256)
        {
            throw new ArgumentException("the audit head key must be ECDSA over NIST P-256", nameof(key));
        }
    }

    /// <summary>
    /// Canonical JSON of an event: fixed member order, absent members omitted, times as UTC ISO-8601 with
    /// milliseconds, detail keys in ordinal order, no insignificant whitespace.
    /// </summary>
    public static byte[] CanonicalJson(AuditEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (string.IsNullOrWhiteSpace(e.Kind))
        {
            throw new ArgumentException("an audit event needs a kind", nameof(e));
        }

        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("kind", e.Kind);
            w.WriteString("time", FormatTime(e.Time));
            WriteIfPresent(w, "actor", e.Actor);
            WriteIfPresent(w, "decision", e.Decision);
            if (e.Reasons is { Count: > 0 })
            {
                w.WriteStartArray("reasons");
                foreach (string r in e.Reasons)
                {
                    w.WriteStringValue(r);
                }

                w.WriteEndArray();
            }

            WriteIfPresent(w, "evidence_digest", e.EvidenceDigest);
            WriteIfPresent(w, "claims_digest", e.ClaimsDigest);
            if (e.PolicyVersion is long pv)
            {
                w.WriteNumber("policy_version", pv);
            }

            WriteIfPresent(w, "key_id", e.KeyId);
            if (e.Details is { Count: > 0 })
            {
                w.WriteStartObject("details");
                foreach (KeyValuePair<string, string> kv in e.Details.OrderBy(d => d.Key, StringComparer.Ordinal))
                {
                    w.WriteString(kv.Key, kv.Value);
                }

                w.WriteEndObject();
            }

            w.WriteEndObject();
        }

        if (buffer.WrittenCount > MaxEventJsonBytes)
        {
            throw new ArgumentException($"audit event is {buffer.WrittenCount} bytes of JSON; the limit is {MaxEventJsonBytes}", nameof(e));
        }

        return buffer.WrittenSpan.ToArray();
    }

    internal static string FormatTime(DateTimeOffset t) =>
        t.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    internal static string Utf8(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    private static void WriteIfPresent(Utf8JsonWriter w, string name, string? value)
    {
        if (value is not null)
        {
            w.WriteString(name, value);
        }
    }
}
