using System.Buffers.Binary;
using System.Globalization;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Snp;

namespace AttestBroker.HardwareSim.ConfigFs;

/// <summary>
/// Lays out a directory with configfs-tsm's report file names (inblob, outblob, auxblob, provider, generation,
/// privlevel_floor), as the kernel exposes /sys/kernel/config/tsm/report/&lt;name&gt;/, for the agent's file-based tests.
/// The SNP auxblob is a GHCB certificate table (VCEK or VLEK, ASK or ASVK, ARK).
/// </summary>
public static class ConfigFsTsmLayout
{
    public static readonly Guid VcekGuid = new("63da758d-e664-4564-adc5-f4b93be8accd");
    public static readonly Guid VlekGuid = new("a8074bc2-a25a-483e-aae6-39c045a0b8a1");
    public static readonly Guid AskGuid = new("4ab7b379-bbac-4fe4-a02f-05aef327c782");
    public static readonly Guid ArkGuid = new("c0b406a4-a803-4952-9743-3fb6014cd0ae");

    private const int EntrySize = 24;
    private const int EntryGuid = 0;
    private const int EntryOffset = 16;
    private const int EntryLength = 20;

    /// <summary>Makes evidence for the report data and writes the report directory. Returns the evidence written to outblob.</summary>
    public static byte[] WriteReport(string dir, SimPki pki, SimProfile profile, TeeKind tee, EvidenceOptions options, long generation = 1)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentNullException.ThrowIfNull(pki);
        ArgumentNullException.ThrowIfNull(options);
        var evidence = SimEvidence.Create(pki, profile, tee, options);
        var inblob = new byte[64];
        options.ReportData?.CopyTo(inblob, 0);
        byte[] aux = [];
        if (tee == TeeKind.SevSnp)
        {
            var req = SimEvidence.SnpRequest(profile, options);
            var chain = pki.Chain(req.Platform.Product);
            aux = req.SigningKey == SnpSigningKey.Vlek
                ? CertificateTable([(VlekGuid, pki.IssueVlek(req.Platform).Certificate.RawData), (AskGuid, chain.Asvk.Certificate.RawData), (ArkGuid, chain.Ark.Certificate.RawData)])
                : CertificateTable([(VcekGuid, pki.IssueVcek(req.Platform).Certificate.RawData), (AskGuid, chain.Ask.Certificate.RawData), (ArkGuid, chain.Ark.Certificate.RawData)]);
        }

        Write(dir, tee == TeeKind.Tdx ? "tdx_guest" : "sev_guest", inblob, evidence, aux, generation);
        return evidence;
    }

    /// <summary>Writes the files of one configfs-tsm report directory.</summary>
    public static void Write(string dir, string provider, ReadOnlySpan<byte> inblob, ReadOnlySpan<byte> outblob, ReadOnlySpan<byte> auxblob, long generation)
    {
        ArgumentNullException.ThrowIfNull(dir);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "inblob"), inblob.ToArray());
        File.WriteAllBytes(Path.Combine(dir, "outblob"), outblob.ToArray());
        File.WriteAllBytes(Path.Combine(dir, "auxblob"), auxblob.ToArray());
        File.WriteAllText(Path.Combine(dir, "provider"), provider + "\n");
        File.WriteAllText(Path.Combine(dir, "generation"), generation.ToString(CultureInfo.InvariantCulture) + "\n");
        File.WriteAllText(Path.Combine(dir, "privlevel_floor"), "0\n");
    }

    /// <summary>A GHCB certificate table: 24-byte entries (GUID in RFC 4122 byte order, u32 offset, u32 length), an all-zero terminator, then the certificates.</summary>
    public static byte[] CertificateTable(IReadOnlyList<(Guid Guid, byte[] Der)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var headerSize = (entries.Count + 1) * EntrySize;
        var total = headerSize + entries.Sum(e => e.Der.Length);
        var buffer = new byte[total];
        var offset = headerSize;
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = buffer.AsSpan(i * EntrySize, EntrySize);
            entries[i].Guid.TryWriteBytes(entry[EntryGuid..], bigEndian: true, out _);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[EntryOffset..], (uint)offset);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[EntryLength..], (uint)entries[i].Der.Length);
            entries[i].Der.CopyTo(buffer, offset);
            offset += entries[i].Der.Length;
        }

        return buffer;
    }
}
