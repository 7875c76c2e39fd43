using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim.Pki;

/// <summary>
/// The vendor X.509 extensions, encoded as the real certificates encode them: Intel's SGX extension on PCK
/// certificates (1.2.840.113741.1.13.1, a SEQUENCE of (OID, value) pairs) and AMD's VCEK/VLEK extensions
/// (1.3.6.1.4.1.3704.1.x, one extension per value; hwID as the raw 64 bytes, as AMD's KDS issues it).
/// </summary>
public static class VendorExtensions
{
    public const string SgxExtensionOid = "1.2.840.113741.1.13.1";
    public const string AmdOidPrefix = "1.3.6.1.4.1.3704.1";

    /// <summary>The SGX extension of a PCK certificate issued by the Platform CA.</summary>
    public static X509Extension SgxPckExtension(TdxPlatform p)
    {
        ArgumentNullException.ThrowIfNull(p);
        var w = new AsnWriter(AsnEncodingRules.DER);
        using (w.PushSequence())
        {
            OctetPair(w, ".1", p.Ppid, 16);
            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(SgxExtensionOid + ".2");
                using (w.PushSequence())
                {
                    if (p.SgxTcbComponents.Length != 16)
                    {
                        throw new SimulatorException("sgx_tcb_components must have 16 entries");
                    }

                    for (var i = 0; i < 16; i++)
                    {
                        using (w.PushSequence())
                        {
                            w.WriteObjectIdentifier($"{SgxExtensionOid}.2.{i + 1}");
                            w.WriteInteger(p.SgxTcbComponents[i]);
                        }
                    }

                    using (w.PushSequence())
                    {
                        w.WriteObjectIdentifier(SgxExtensionOid + ".2.17");
                        w.WriteInteger(p.PceSvn);
                    }

                    OctetPair(w, ".2.18", p.CpuSvn, 16);
                }
            }

            OctetPair(w, ".3", p.PceId, 2);
            OctetPair(w, ".4", p.Fmspc, 6);
            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(SgxExtensionOid + ".5");
                w.WriteEnumeratedValue((SgxTypeValue)p.SgxType);
            }

            OctetPair(w, ".6", p.PlatformInstanceId, 16);
            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(SgxExtensionOid + ".7");
                using (w.PushSequence())
                {
                    BoolPair(w, ".7.1", p.DynamicPlatform);
                    BoolPair(w, ".7.2", p.CachedKeys);
                    BoolPair(w, ".7.3", p.SmtEnabled);
                }
            }
        }

        return new X509Extension(SgxExtensionOid, w.Encode(), critical: false);

        static void OctetPair(AsnWriter w, string suffix, byte[] value, int size)
        {
            if (value.Length != size)
            {
                throw new SimulatorException($"SGX extension value {suffix} must be {size} bytes");
            }

            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(SgxExtensionOid + suffix);
                w.WriteOctetString(value);
            }
        }

        static void BoolPair(AsnWriter w, string suffix, bool value)
        {
            using (w.PushSequence())
            {
                w.WriteObjectIdentifier(SgxExtensionOid + suffix);
                w.WriteBoolean(value);
            }
        }
    }

    /// <summary>The AMD extensions of a VCEK (hwID) or VLEK (cspID), with the TCB SPLs of the reported TCB.</summary>
    public static IReadOnlyList<X509Extension> AmdEndorsementExtensions(AmdProduct product, SnpTcb tcb, byte[]? hwId, string? cspId)
    {
        ArgumentNullException.ThrowIfNull(tcb);
        var list = new List<X509Extension>
        {
            Integer(".1", 0),
            new(AmdOidPrefix + ".2", Ia5(product.ProductNameExtension()), false),
            Integer(".3.1", tcb.Bootloader),
            Integer(".3.2", tcb.Tee),
            Integer(".3.4", 0),
            Integer(".3.5", 0),
            Integer(".3.6", 0),
            Integer(".3.7", 0),
            Integer(".3.3", tcb.Snp),
            Integer(".3.8", tcb.Microcode),
        };
        if (product == AmdProduct.Turin)
        {
            list.Add(Integer(".3.9", tcb.Fmc));
        }

        if (hwId is not null)
        {
            list.Add(new X509Extension(AmdOidPrefix + ".4", hwId, false));
        }

        if (cspId is not null)
        {
            list.Add(new X509Extension(AmdOidPrefix + ".5", Ia5(cspId), false));
        }

        return list;

        static X509Extension Integer(string suffix, int value)
        {
            var w = new AsnWriter(AsnEncodingRules.DER);
            w.WriteInteger(value);
            return new X509Extension(AmdOidPrefix + suffix, w.Encode(), false);
        }

        static byte[] Ia5(string s)
        {
            var w = new AsnWriter(AsnEncodingRules.DER);
            w.WriteCharacterString(UniversalTagNumber.IA5String, s);
            return w.Encode();
        }
    }

    private enum SgxTypeValue
    {
        Standard = 0,
        Scalable = 1,
        ScalableWithIntegrity = 2,
    }
}
