using System.Buffers.Binary;

namespace AttestBroker.Evidence;

/// <summary>Tells TDX quotes from SEV-SNP reports by their leading bytes. No cryptography, no I/O.</summary>
public static class EvidenceDetector
{
    private const uint TdxTeeType = 0x81;

    /// <summary>The TEE kind the bytes look like, or null when they look like neither.</summary>
    public static TeeKind? Detect(ReadOnlySpan<byte> evidence)
    {
        if (evidence.Length >= 8)
        {
            var version = BinaryPrimitives.ReadUInt16LittleEndian(evidence);
            var teeType = BinaryPrimitives.ReadUInt32LittleEndian(evidence[4..]);
            if (version is 4 or 5 && teeType == TdxTeeType)
            {
                return TeeKind.Tdx;
            }
        }

        // SNP ATTESTATION_REPORT: u32 version (2..5) at 0x00, u32 signature_algo at 0x34 (1 = ECDSA P-384 with SHA-384).
        if (evidence.Length >= 0x38)
        {
            var version = BinaryPrimitives.ReadUInt32LittleEndian(evidence);
            var algo = BinaryPrimitives.ReadUInt32LittleEndian(evidence[0x34..]);
            if (version is >= 2 and <= 5 && algo == 1)
            {
                return TeeKind.SevSnp;
            }
        }

        return null;
    }
}
