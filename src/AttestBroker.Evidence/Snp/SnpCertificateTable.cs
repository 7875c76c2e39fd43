using System.Buffers.Binary;

namespace AttestBroker.Evidence.Snp;

/// <summary>What a certificate-table entry holds, by its GUID.</summary>
public enum SnpCertificateKind
{
    /// <summary>A GUID this table does not know; the entry is kept but not interpreted.</summary>
    Other,

    /// <summary>63da758d-e664-4564-adc5-f4b93be8accd.</summary>
    Vcek,

    /// <summary>a8074bc2-a25a-483e-aae6-39c045a0b8a1.</summary>
    Vlek,

    /// <summary>4ab7b379-bbac-4fe4-a02f-05aef327c782: the ASK, or the ASVK when a VLEK is used.</summary>
    Ask,

    /// <summary>c0b406a4-a803-4952-9743-3fb6014cd0ae.</summary>
    Ark,
}

/// <summary>One entry of the certificate table: its GUID, what that GUID names, and the DER bytes it points at.</summary>
public sealed record SnpCertificateTableEntry(Guid Guid, SnpCertificateKind Kind, int Offset, int Length, ReadOnlyMemory<byte> Data);

/// <summary>
/// The host-provided certificate table (GHCB specification, SNP extended guest request; configfs-tsm auxblob):
/// 24-byte entries {GUID (RFC 4122 byte order), u32 LE offset, u32 LE length}, ended by an all-zero entry, followed
/// by the DER certificates the entries point at. Structure only; no cryptography.
/// </summary>
public static class SnpCertificateTable
{
    public const int EntrySize = 24;
    public const int GuidOffset = 0;
    public const int GuidSize = 16;
    public const int OffsetOffset = 16;
    public const int LengthOffset = 20;

    public static readonly Guid VcekGuid = new("63da758d-e664-4564-adc5-f4b93be8accd");
    public static readonly Guid VlekGuid = new("a8074bc2-a25a-483e-aae6-39c045a0b8a1");
    public static readonly Guid AskGuid = new("4ab7b379-bbac-4fe4-a02f-05aef327c782");
    public static readonly Guid ArkGuid = new("c0b406a4-a803-4952-9743-3fb6014cd0ae");

    /// <summary>True when the buffer begins with an entry whose GUID is one of the four known ones (a cheap content test).</summary>
    public static bool StartsWithKnownEntry(ReadOnlySpan<byte> buffer) =>
        buffer.Length >= EntrySize && KindOf(new Guid(buffer[..GuidSize], bigEndian: true)) != SnpCertificateKind.Other;

    /// <summary>Parses the table; an empty table (first entry all zero) has no entries. Throws <see cref="EvidenceFormatException"/> when malformed.</summary>
    public static IReadOnlyList<SnpCertificateTableEntry> Parse(ReadOnlyMemory<byte> buffer)
    {
        var span = buffer.Span;
        var raw = new List<(int At, Guid Guid, uint Offset, uint Length)>();
        var at = 0;
        while (true)
        {
            if (at > span.Length - EntrySize)
            {
                throw new EvidenceFormatException("CERT_TABLE", at, "certificate table has no all-zero terminating entry");
            }

            var entry = span.Slice(at, EntrySize);
            if (!entry.ContainsAnyExcept((byte)0))
            {
                break;
            }

            raw.Add((at, new Guid(entry[..GuidSize], bigEndian: true), BinaryPrimitives.ReadUInt32LittleEndian(entry[OffsetOffset..]), BinaryPrimitives.ReadUInt32LittleEndian(entry[LengthOffset..])));
            at += EntrySize;
        }

        var tableEnd = at + EntrySize;
        var entries = new List<SnpCertificateTableEntry>(raw.Count);
        foreach (var (entryAt, guid, offset, length) in raw)
        {
            if (length == 0 || offset < tableEnd || (ulong)offset + length > (ulong)span.Length)
            {
                throw new EvidenceFormatException("CERT_TABLE_ENTRY", entryAt + OffsetOffset, $"entry {guid} points at [{offset}, {(ulong)offset + length}), not within [{tableEnd}, {span.Length}) after the table");
            }

            if (entries.Exists(e => e.Guid == guid))
            {
                throw new EvidenceFormatException("CERT_TABLE_ENTRY", entryAt + GuidOffset, $"duplicate entry {guid}");
            }

            entries.Add(new SnpCertificateTableEntry(guid, KindOf(guid), (int)offset, (int)length, buffer.Slice((int)offset, (int)length)));
        }

        return entries;
    }

    public static SnpCertificateKind KindOf(Guid guid) =>
        guid == VcekGuid ? SnpCertificateKind.Vcek
        : guid == VlekGuid ? SnpCertificateKind.Vlek
        : guid == AskGuid ? SnpCertificateKind.Ask
        : guid == ArkGuid ? SnpCertificateKind.Ark
        : SnpCertificateKind.Other;
}
