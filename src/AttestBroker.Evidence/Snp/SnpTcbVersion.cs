using System.Buffers.Binary;

namespace AttestBroker.Evidence.Snp;

/// <summary>The security patch levels of one TCB_VERSION, decoded for a product. <see cref="Fmc"/> exists on Turin only.</summary>
public readonly record struct SnpTcbComponents(byte? Fmc, byte BootLoader, byte Tee, byte Snp, byte Microcode);

/// <summary>
/// A raw TCB_VERSION (8 bytes, read as a little-endian u64). Its byte layout depends on the product, so it is kept
/// raw and decoded on request: Milan/Genoa put BOOTLOADER, TEE, SNP, MICROCODE in bytes 0, 1, 6, 7; Turin puts FMC,
/// BOOTLOADER, TEE, SNP, MICROCODE in bytes 0, 1, 2, 3, 7.
/// </summary>
public readonly record struct SnpTcbVersion(ulong Raw)
{
    public const int Size = 8;

    public static SnpTcbVersion Read(ReadOnlySpan<byte> eightBytes) => new(BinaryPrimitives.ReadUInt64LittleEndian(eightBytes));

    private byte Byte(int n) => (byte)(Raw >> (8 * n));

    /// <summary>The Milan/Genoa decoding (family 0x19).</summary>
    public SnpTcbComponents MilanGenoa => new(null, Byte(0), Byte(1), Byte(6), Byte(7));

    /// <summary>The Turin decoding (family 0x1A).</summary>
    public SnpTcbComponents Turin => new(Byte(0), Byte(1), Byte(2), Byte(3), Byte(7));

    /// <summary>True when the bytes that are reserved in the Milan/Genoa layout (2-5) are zero.</summary>
    public bool MilanGenoaReservedZero => (Raw & 0x0000_FFFF_FFFF_0000UL) == 0;

    /// <summary>True when the bytes that are reserved in the Turin layout (4-6) are zero.</summary>
    public bool TurinReservedZero => (Raw & 0x00FF_FFFF_0000_0000UL) == 0;

    /// <summary>The decoding for a product; an unknown product is decoded with the Milan/Genoa layout (the only one v2 reports use).</summary>
    public SnpTcbComponents For(SnpProduct product) => product.UsesTurinTcbLayout() ? Turin : MilanGenoa;
}
