using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography.X509Certificates;

namespace AttestBroker.Verification.Tdx;

/// <summary>
/// The Intel SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): a SEQUENCE OF SEQUENCE { OID, value }
/// holding PPID (.1), TCB (.2: comp SVNs .2.1-.2.16, PCESVN .2.17, CPUSVN .2.18), PCE-ID (.3), FMSPC (.4),
/// SGX type (.5) and, for Platform-CA certificates, the platform instance ID (.6) and configuration (.7).
/// </summary>
public sealed class PckCertificateExtensions
{
    public const string SgxExtensionOid = "1.2.840.113741.1.13.1";
    private const string PpidOid = SgxExtensionOid + ".1";
    private const string TcbOid = SgxExtensionOid + ".2";
    private const string PceSvnOid = TcbOid + ".17";
    private const string CpuSvnOid = TcbOid + ".18";
    private const string PceIdOid = SgxExtensionOid + ".3";
    private const string FmspcOid = SgxExtensionOid + ".4";
    private const string SgxTypeOid = SgxExtensionOid + ".5";
    private const string PlatformInstanceIdOid = SgxExtensionOid + ".6";
    private const string ConfigurationOid = SgxExtensionOid + ".7";
    private const int ComponentCount = 16;

    private PckCertificateExtensions()
    {
    }

    public byte[] Ppid { get; private init; } = [];

    /// <summary>SGX TCB component SVNs 1..16 (index 0 is component 1).</summary>
    public IReadOnlyList<int> SgxTcbComponents { get; private init; } = [];

    public int PceSvn { get; private init; }

    public byte[] CpuSvn { get; private init; } = [];

    /// <summary>2 bytes.</summary>
    public byte[] PceId { get; private init; } = [];

    /// <summary>6 bytes.</summary>
    public byte[] Fmspc { get; private init; } = [];

    /// <summary>0 Standard, 1 Scalable, 2 ScalableWithIntegrity.</summary>
    public int SgxType { get; private init; }

    /// <summary>Present in certificates issued by the Platform CA.</summary>
    public byte[]? PlatformInstanceId { get; private init; }

    public string FmspcHex => Convert.ToHexStringLower(Fmspc);

    public string PceIdHex => Convert.ToHexStringLower(PceId);

    /// <summary>Reads the SGX extension of a PCK certificate; throws <see cref="FormatException"/> when it is absent or malformed.</summary>
    public static PckCertificateExtensions FromCertificate(X509Certificate2 pck)
    {
        ArgumentNullException.ThrowIfNull(pck);
        var (value, error) = ByCertificate.GetValue(pck, c =>
        {
            try
            {
                var ext = c.Extensions[SgxExtensionOid] ?? throw new FormatException("the PCK certificate has no Intel SGX extension (1.2.840.113741.1.13.1)");
                return new ParseOutcome(Parse(ext.RawData), null);
            }
            catch (FormatException ex)
            {
                return new ParseOutcome(null, ex.Message);
            }
        });
        return value ?? throw new FormatException(error);
    }

    /// <summary>Extensions already read, per certificate object (a platform's PCK certificate is shared across its quotes).</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<X509Certificate2, ParseOutcome> ByCertificate = new();

    private sealed record ParseOutcome(PckCertificateExtensions? Value, string? Error);

    /// <summary>Parses the DER extension value; throws <see cref="FormatException"/> when malformed or incomplete.</summary>
    public static PckCertificateExtensions Parse(ReadOnlyMemory<byte> der)
    {
        try
        {
            return ParseCore(der);
        }
        catch (AsnContentException ex)
        {
            throw new FormatException("the Intel SGX extension is not valid DER: " + ex.Message, ex);
        }
    }

    private static PckCertificateExtensions ParseCore(ReadOnlyMemory<byte> der)
    {
        var reader = new AsnReader(der, AsnEncodingRules.DER);
        var outer = reader.ReadSequence();
        reader.ThrowIfNotEmpty();

        byte[]? ppid = null, cpuSvn = null, pceId = null, fmspc = null, platformInstanceId = null;
        int? pceSvn = null, sgxType = null;
        var comps = new int?[ComponentCount];
        var seen = new HashSet<string>(StringComparer.Ordinal);

        while (outer.HasData)
        {
            var entry = outer.ReadSequence();
            var oid = entry.ReadObjectIdentifier();
            if (!seen.Add(oid))
            {
                throw new FormatException($"the Intel SGX extension repeats {oid}");
            }

            switch (oid)
            {
                case PpidOid:
                    ppid = ReadOctets(entry, 16, "PPID");
                    break;
                case TcbOid:
                    var tcb = entry.ReadSequence();
                    var tcbSeen = new HashSet<string>(StringComparer.Ordinal);
                    while (tcb.HasData)
                    {
                        var item = tcb.ReadSequence();
                        var itemOid = item.ReadObjectIdentifier();
                        if (!tcbSeen.Add(itemOid))
                        {
                            throw new FormatException($"the Intel SGX TCB extension repeats {itemOid}");
                        }

                        if (itemOid == PceSvnOid)
                        {
                            pceSvn = ReadSmallInteger(item, 65535, "PCESVN");
                        }
                        else if (itemOid == CpuSvnOid)
                        {
                            cpuSvn = ReadOctets(item, 16, "CPUSVN");
                        }
                        else if (itemOid.StartsWith(TcbOid + ".", StringComparison.Ordinal)
                            && int.TryParse(itemOid.AsSpan(TcbOid.Length + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
                            && n is >= 1 and <= ComponentCount)
                        {
                            comps[n - 1] = ReadSmallInteger(item, 255, $"SGX TCB component {n}");
                        }

                        item.ThrowIfNotEmpty();
                    }

                    break;
                case PceIdOid:
                    pceId = ReadOctets(entry, 2, "PCE-ID");
                    break;
                case FmspcOid:
                    fmspc = ReadOctets(entry, 6, "FMSPC");
                    break;
                case SgxTypeOid:
                    sgxType = (int)entry.ReadEnumeratedValue<SgxTypeValue>();
                    break;
                case PlatformInstanceIdOid:
                    platformInstanceId = ReadOctets(entry, 16, "platform instance ID");
                    break;
                case ConfigurationOid:
                    entry.ReadSequence();
                    break;
                default:
                    entry.ReadEncodedValue();
                    break;
            }

            entry.ThrowIfNotEmpty();
        }

        if (ppid is null || pceId is null || fmspc is null || pceSvn is null || cpuSvn is null || sgxType is null || comps.Any(c => c is null))
        {
            throw new FormatException("the Intel SGX extension lacks a required item (PPID, TCB with 16 components, PCESVN and CPUSVN, PCE-ID, FMSPC, SGX type)");
        }

        return new PckCertificateExtensions
        {
            Ppid = ppid,
            SgxTcbComponents = comps.Select(c => c!.Value).ToArray(),
            PceSvn = pceSvn.Value,
            CpuSvn = cpuSvn,
            PceId = pceId,
            Fmspc = fmspc,
            SgxType = sgxType.Value,
            PlatformInstanceId = platformInstanceId,
        };
    }

    private static byte[] ReadOctets(AsnReader reader, int size, string name)
    {
        var value = reader.ReadOctetString();
        if (value.Length != size)
        {
            throw new FormatException($"{name} is {value.Length} bytes (expected {size})");
        }

        return value;
    }

    private static int ReadSmallInteger(AsnReader reader, int max, string name)
    {
        BigInteger value = reader.ReadInteger();
        if (value < 0 || value > max)
        {
            throw new FormatException($"{name} {value} is out of range 0..{max}");
        }

        return (int)value;
    }

    private enum SgxTypeValue
    {
        Standard = 0,
        Scalable = 1,
        ScalableWithIntegrity = 2,
    }
}
