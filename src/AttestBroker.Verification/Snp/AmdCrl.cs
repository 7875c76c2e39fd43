using System.Formats.Asn1;
using System.Numerics;

namespace AttestBroker.Verification.Snp;

/// <summary>
/// An AMD CRL (per product, issued and signed by the ARK with RSASSA-PSS SHA-384): its exact issuer name, its window
/// and its revoked serials. Read with System.Formats.Asn1 from the DER; the signature is checked by the verifier.
/// </summary>
internal sealed class AmdCrl
{
    private readonly HashSet<BigInteger> _revoked;

    private AmdCrl(AmdRsaPss.SignedParts parts, byte[] issuer, DateTimeOffset thisUpdate, DateTimeOffset? nextUpdate, HashSet<BigInteger> revoked)
    {
        Parts = parts;
        Issuer = issuer;
        ThisUpdate = thisUpdate;
        NextUpdate = nextUpdate;
        _revoked = revoked;
    }

    public AmdRsaPss.SignedParts Parts { get; }

    /// <summary>The DER of the issuer Name, for exact comparison with the ARK's subject.</summary>
    public byte[] Issuer { get; }

    public DateTimeOffset ThisUpdate { get; }

    public DateTimeOffset? NextUpdate { get; }

    public int RevokedCount => _revoked.Count;

    public bool IsRevoked(BigInteger serial) => _revoked.Contains(serial);

    /// <summary>Parses a DER CRL (a PEM "X509 CRL" block is unwrapped first); null when the bytes are not a CRL.</summary>
    public static AmdCrl? TryParse(ReadOnlyMemory<byte> data)
    {
        var der = SnpPem.TryUnwrap(data.Span, "X509 CRL") ?? data;
        var parts = AmdRsaPss.Split(der);
        if (parts is null)
        {
            return null;
        }

        try
        {
            var tbs = new AsnReader(parts.ToBeSigned, AsnEncodingRules.DER).ReadSequence();
            if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
            {
                var version = tbs.ReadInteger();
                if (version != 1)
                {
                    return null;
                }
            }

            tbs.ReadSequence(); // signature AlgorithmIdentifier (the outer one is the one checked)
            var issuer = tbs.ReadEncodedValue().ToArray();
            var thisUpdate = ReadTime(tbs);
            DateTimeOffset? nextUpdate = null;
            if (tbs.HasData && IsTime(tbs.PeekTag()))
            {
                nextUpdate = ReadTime(tbs);
            }

            var revoked = new HashSet<BigInteger>();
            if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
            {
                var list = tbs.ReadSequence();
                while (list.HasData)
                {
                    var entry = list.ReadSequence();
                    revoked.Add(entry.ReadInteger());
                    ReadTime(entry);
                    // entry extensions, if any, are not needed
                }
            }

            // crlExtensions [0] may follow; nothing in them is needed here.
            return new AmdCrl(parts, issuer, thisUpdate, nextUpdate, revoked);
        }
        catch (AsnContentException)
        {
            return null;
        }
    }

    private static bool IsTime(Asn1Tag tag) =>
        tag.HasSameClassAndValue(new Asn1Tag(UniversalTagNumber.UtcTime)) || tag.HasSameClassAndValue(new Asn1Tag(UniversalTagNumber.GeneralizedTime));

    private static DateTimeOffset ReadTime(AsnReader reader) =>
        reader.PeekTag().HasSameClassAndValue(new Asn1Tag(UniversalTagNumber.UtcTime))
            ? reader.ReadUtcTime()
            : reader.ReadGeneralizedTime();
}
