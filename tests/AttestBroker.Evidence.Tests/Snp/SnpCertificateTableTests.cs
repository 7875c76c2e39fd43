using System.Buffers.Binary;
using AttestBroker.Evidence.Snp;
using CsCheck;
using NUnit.Framework;

namespace AttestBroker.Evidence.Tests.Snp;

/// <summary>Builds GHCB certificate tables for tests.</summary>
internal static class CertTableWriter
{
    public static byte[] Write(params (Guid Guid, byte[] Data)[] items)
    {
        var tableSize = (items.Length + 1) * SnpCertificateTable.EntrySize;
        var total = tableSize + items.Sum(i => i.Data.Length);
        var buffer = new byte[total];
        var offset = tableSize;
        for (var i = 0; i < items.Length; i++)
        {
            var e = buffer.AsSpan(i * SnpCertificateTable.EntrySize, SnpCertificateTable.EntrySize);
            items[i].Guid.TryWriteBytes(e[..16], bigEndian: true, out _);
            BinaryPrimitives.WriteUInt32LittleEndian(e[16..], (uint)offset);
            BinaryPrimitives.WriteUInt32LittleEndian(e[20..], (uint)items[i].Data.Length);
            items[i].Data.CopyTo(buffer, offset);
            offset += items[i].Data.Length;
        }

        return buffer;
    }
}

/// <summary>The host certificate table parses into entries by GUID, with the GUID read in RFC 4122 byte order.</summary>
[TestFixture]
public sealed class Certificate_table_parses_entries_by_guid
{
    [Test]
    public void Four_known_entries_and_an_unknown_one()
    {
        var other = Guid.NewGuid();
        var table = CertTableWriter.Write(
            (SnpCertificateTable.VcekGuid, [1, 2, 3]),
            (SnpCertificateTable.AskGuid, [4, 5]),
            (SnpCertificateTable.ArkGuid, [6]),
            (other, [7, 7]),
            (SnpCertificateTable.VlekGuid, [8]));
        var entries = SnpCertificateTable.Parse(table);
        Assert.Multiple(() =>
        {
            Assert.That(entries.Select(e => e.Kind), Is.EqualTo(new[] { SnpCertificateKind.Vcek, SnpCertificateKind.Ask, SnpCertificateKind.Ark, SnpCertificateKind.Other, SnpCertificateKind.Vlek }));
            Assert.That(entries[0].Data.ToArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
            Assert.That(entries[3].Guid, Is.EqualTo(other));
            Assert.That(SnpCertificateTable.StartsWithKnownEntry(table), Is.True);
        });
    }

    [Test]
    public void Guid_bytes_are_in_rfc4122_order()
    {
        var table = CertTableWriter.Write((SnpCertificateTable.VcekGuid, [1]));
        Assert.That(Convert.ToHexStringLower(table.AsSpan(0, 16)), Is.EqualTo("63da758de6644564adc5f4b93be8accd"));
    }

    [Test]
    public void Empty_table_has_no_entries() =>
        Assert.That(SnpCertificateTable.Parse(new byte[24]), Is.Empty);
}

/// <summary>Malformed tables are typed format errors: no terminator, entries outside the buffer or inside the table, duplicates.</summary>
[TestFixture]
public sealed class Malformed_certificate_table_is_rejected
{
    [Test]
    public void Missing_terminator()
    {
        var table = CertTableWriter.Write((SnpCertificateTable.VcekGuid, [1]));
        Assert.Throws<EvidenceFormatException>(() => SnpCertificateTable.Parse(table.AsMemory(0, 24)));
    }

    [Test]
    public void Entry_past_the_end()
    {
        var table = CertTableWriter.Write((SnpCertificateTable.VcekGuid, [1, 2]));
        BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(20), 1000);
        Assert.Throws<EvidenceFormatException>(() => SnpCertificateTable.Parse(table));
    }

    [Test]
    public void Entry_pointing_into_the_table()
    {
        var table = CertTableWriter.Write((SnpCertificateTable.VcekGuid, [1, 2]));
        BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(16), 0);
        Assert.Throws<EvidenceFormatException>(() => SnpCertificateTable.Parse(table));
    }

    [Test]
    public void Offset_plus_length_overflowing_32_bits()
    {
        var table = CertTableWriter.Write((SnpCertificateTable.VcekGuid, [1, 2]));
        BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(16), 0xFFFFFFF0);
        BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(20), 0x20);
        Assert.Throws<EvidenceFormatException>(() => SnpCertificateTable.Parse(table));
    }

    [Test]
    public void Duplicate_guid() =>
        Assert.Throws<EvidenceFormatException>(() => SnpCertificateTable.Parse(CertTableWriter.Write((SnpCertificateTable.VcekGuid, [1]), (SnpCertificateTable.VcekGuid, [2]))));

    [Test]
    public void Random_bytes_never_throw_anything_but_evidence_format_exception() =>
        Gen.Byte.Array[0, 400].Sample(bytes =>
        {
            try
            {
                foreach (var e in SnpCertificateTable.Parse(bytes))
                {
                    Assert.That(e.Offset + e.Length, Is.LessThanOrEqualTo(bytes.Length));
                }
            }
            catch (EvidenceFormatException)
            {
                // the only acceptable failure
            }
        }, iter: 3000);
}
