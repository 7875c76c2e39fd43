using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.Evidence.Snp;

namespace AttestBroker.Verification.Snp;

/// <summary>
/// The AMD extensions of a VCEK or VLEK certificate (OID arc 1.3.6.1.4.1.3704.1): structure version, product name,
/// the SPLs of the TCB the key was derived for, and hwID (VCEK) or cspId (VLEK).
/// </summary>
public sealed record AmdCertificateExtensions
{
    public const string Arc = "1.3.6.1.4.1.3704.1";
    public const string StructVersionOid = Arc + ".1";
    public const string ProductNameOid = Arc + ".2";
    public const string BootLoaderSplOid = Arc + ".3.1";
    public const string TeeSplOid = Arc + ".3.2";
    public const string SnpSplOid = Arc + ".3.3";
    public const string MicrocodeSplOid = Arc + ".3.8";
    public const string FmcSplOid = Arc + ".3.9";
    public const string HwIdOid = Arc + ".4";
    public const string CspIdOid = Arc + ".5";

    public long? StructVersion { get; init; }

    /// <summary>productName as written, e.g. "Milan-B0" (the stepping suffix may be absent).</summary>
    public string? ProductName { get; init; }

    public SnpProduct Product => SnpProducts.FromName(ProductName);

    public int? BootLoaderSpl { get; init; }

    public int? TeeSpl { get; init; }

    public int? SnpSpl { get; init; }

    public int? MicrocodeSpl { get; init; }

    public int? FmcSpl { get; init; }

    /// <summary>The chip id (VCEK only), unwrapped whether or not AMD wrapped it in an inner OCTET STRING.</summary>
    public ReadOnlyMemory<byte>? HwId { get; init; }

    /// <summary>The cloud service provider's id (VLEK only).</summary>
    public string? CspId { get; init; }

    /// <summary>True when the certificate carries any extension of the AMD arc.</summary>
    public bool Any { get; init; }

    /// <summary>Extensions already read, by the certificate's exact bytes (records are immutable, so sharing is safe).</summary>
    private static readonly VerificationMemo<AmdCertificateExtensions> Known = new();

    /// <summary>Reads the extensions; throws <see cref="FormatException"/> when an AMD extension is present but malformed.</summary>
    public static AmdCertificateExtensions Read(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return Known.GetOrAdd(certificate.RawDataMemory.Span, () => ReadUncached(certificate));
    }

    private static AmdCertificateExtensions ReadUncached(X509Certificate2 certificate)
    {
        var result = new AmdCertificateExtensions();
        foreach (var ext in certificate.Extensions)
        {
            var oid = ext.Oid?.Value;
            if (oid is null || !oid.StartsWith(Arc + ".", StringComparison.Ordinal))
            {
                continue;
            }

            var raw = ext.RawData;
            try
            {
                result = oid switch
                {
                    StructVersionOid => result with { StructVersion = (long)ReadInteger(raw, oid, long.MaxValue) },
                    ProductNameOid => result with { ProductName = ReadIa5(raw) },
                    BootLoaderSplOid => result with { BootLoaderSpl = ReadSpl(raw, oid) },
                    TeeSplOid => result with { TeeSpl = ReadSpl(raw, oid) },
                    SnpSplOid => result with { SnpSpl = ReadSpl(raw, oid) },
                    MicrocodeSplOid => result with { MicrocodeSpl = ReadSpl(raw, oid) },
                    FmcSplOid => result with { FmcSpl = ReadSpl(raw, oid) },
                    HwIdOid => result with { HwId = ReadHwId(raw) },
                    CspIdOid => result with { CspId = ReadIa5(raw) },
                    _ => result,
                };
            }
            catch (AsnContentException e)
            {
                throw new FormatException($"AMD extension {oid} is malformed: {e.Message}", e);
            }

            result = result with { Any = true };
        }

        return result;
    }

    private static int ReadSpl(byte[] raw, string oid) => (int)ReadInteger(raw, oid, 255);

    private static BigInteger ReadInteger(byte[] raw, string oid, long max)
    {
        var reader = new AsnReader(raw, AsnEncodingRules.DER);
        var value = reader.ReadInteger();
        reader.ThrowIfNotEmpty();
        if (value < 0 || value > max)
        {
            throw new FormatException($"AMD extension {oid} value {value} is out of range 0..{max}");
        }

        return value;
    }

    private static string ReadIa5(byte[] raw)
    {
        var reader = new AsnReader(raw, AsnEncodingRules.DER);
        var s = reader.ReadCharacterString(UniversalTagNumber.IA5String);
        reader.ThrowIfNotEmpty();
        return s;
    }

    /// <summary>hwID: AMD's real VCEKs put the raw chip id bytes directly in extnValue; accept those and an inner OCTET STRING.</summary>
    private static byte[] ReadHwId(byte[] raw)
    {
        if (raw.Length is 64 or 8)
        {
            return raw;
        }

        var reader = new AsnReader(raw, AsnEncodingRules.DER);
        var inner = reader.ReadOctetString();
        reader.ThrowIfNotEmpty();
        if (inner.Length is not (64 or 8))
        {
            throw new FormatException($"hwID is {inner.Length} bytes, expected 64 (or 8 on Turin)");
        }

        return inner;
    }
}
