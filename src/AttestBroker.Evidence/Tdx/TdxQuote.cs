using System.Buffers.Binary;
using System.Text;
using static AttestBroker.Evidence.Tdx.TdxQuoteLayout;

namespace AttestBroker.Evidence.Tdx;

/// <summary>
/// A parsed Intel TDX DCAP quote (v4, or v5 with a TDX 1.0 or 1.5 body). Parsing checks every length field before
/// trusting it and never verifies anything cryptographic: it only says where the signed bytes, signatures, keys and
/// certificates are. The quote keeps its own copy of the input; every field is a slice of that copy.
/// </summary>
public sealed class TdxQuote
{
    private TdxQuote(ReadOnlyMemory<byte> raw)
    {
        Raw = raw;
    }

    /// <summary>The whole input, including any trailing bytes.</summary>
    public ReadOnlyMemory<byte> Raw { get; }

    public ushort Version { get; private init; }

    public ushort AttestationKeyType { get; private init; }

    public uint TeeType { get; private init; }

    /// <summary>The 48-byte header.</summary>
    public ReadOnlyMemory<byte> Header { get; private init; }

    public ReadOnlyMemory<byte> QeVendorId { get; private init; }

    public ReadOnlyMemory<byte> UserData { get; private init; }

    /// <summary>True when the QE vendor ID is Intel's.</summary>
    public bool IsIntelQe => QeVendorId.Span.SequenceEqual(IntelQeVendorId);

    /// <summary>Absolute offset of the TD quote body.</summary>
    public int BodyOffset { get; private init; }

    public TdQuoteBody Body { get; private init; } = null!;

    /// <summary>Start of the bytes the attestation key signs (always 0).</summary>
    public int SignedOffset => 0;

    /// <summary>Length of the signed bytes: header ‖ body (v4), header ‖ body type ‖ body size ‖ body (v5).</summary>
    public int SignedLength { get; private init; }

    /// <summary>The exact bytes the quote signature covers.</summary>
    public ReadOnlyMemory<byte> SignedBytes => Raw.Slice(SignedOffset, SignedLength);

    /// <summary>Absolute offset of the u32 signature_data_len.</summary>
    public int SignatureDataLengthOffset => SignedLength;

    /// <summary>Absolute offset of the signature data.</summary>
    public int SignatureDataOffset => SignedLength + SignatureDataLengthSize;

    public int SignatureDataLength { get; private init; }

    /// <summary>Raw r ‖ s (64 bytes) by the attestation key over <see cref="SignedBytes"/>.</summary>
    public ReadOnlyMemory<byte> QuoteSignature { get; private init; }

    /// <summary>Raw X ‖ Y (64 bytes) of the P-256 attestation key.</summary>
    public ReadOnlyMemory<byte> AttestationKey { get; private init; }

    /// <summary>Outer certification data type (always 6 after a successful parse).</summary>
    public ushort CertificationDataType { get; private init; }

    /// <summary>Absolute offset of the outer certification data (type 6 body).</summary>
    public int CertificationDataOffset => SignatureDataOffset + SigCertDataOffset;

    public int CertificationDataSize { get; private init; }

    /// <summary>Absolute offset of the 384-byte QE report.</summary>
    public int QeReportOffset => CertificationDataOffset + QeCertQeReportOffset;

    public SgxReportBody QeReport { get; private init; } = null!;

    /// <summary>Raw r ‖ s (64 bytes) by the PCK key over the QE report.</summary>
    public ReadOnlyMemory<byte> QeReportSignature { get; private init; }

    /// <summary>Absolute offset of the u16 QE authentication data size.</summary>
    public int QeAuthDataSizeOffset => CertificationDataOffset + QeCertAuthDataSizeOffset;

    /// <summary>Absolute offset of the QE authentication data.</summary>
    public int QeAuthDataOffset => CertificationDataOffset + QeCertAuthDataOffset;

    public ReadOnlyMemory<byte> QeAuthData { get; private init; }

    /// <summary>Absolute offset of the inner certification data header (u16 type, u32 size).</summary>
    public int InnerCertificationDataHeaderOffset => QeAuthDataOffset + QeAuthData.Length;

    /// <summary>Inner certification data type (always 5, PCK certificate chain, after a successful parse).</summary>
    public ushort PckCertificationDataType { get; private init; }

    /// <summary>Absolute offset of the PCK certificate chain bytes.</summary>
    public int PckCertChainOffset => InnerCertificationDataHeaderOffset + InnerCertHeaderSize;

    /// <summary>The PCK certificate chain as carried (PEM text, possibly NUL-terminated).</summary>
    public ReadOnlyMemory<byte> PckCertChainData { get; private init; }

    /// <summary>The PCK certificate chain as text, with trailing NUL bytes removed.</summary>
    public string PckCertChainPem
    {
        get
        {
            var span = PckCertChainData.Span;
            var end = span.Length;
            while (end > 0 && span[end - 1] == 0)
            {
                end--;
            }

            return Encoding.ASCII.GetString(span[..end]);
        }
    }

    /// <summary>Absolute offset just past the declared signature data.</summary>
    public int QuoteEnd => SignatureDataOffset + SignatureDataLength;

    /// <summary>Bytes after the declared signature data (outside the signed structure; tolerated and reported).</summary>
    public int TrailingByteCount => Raw.Length - QuoteEnd;

    /// <summary>Parses a TDX quote; the input is copied. Throws <see cref="EvidenceFormatException"/> for any malformed input.</summary>
    public static TdxQuote Parse(ReadOnlySpan<byte> quote) => ParseOwned(quote.ToArray());

    /// <summary>Parses a TDX quote; the input is copied. Throws <see cref="EvidenceFormatException"/> for any malformed input.</summary>
    public static TdxQuote Parse(ReadOnlyMemory<byte> quote) => ParseOwned(quote.ToArray());

    /// <summary>Parses a TDX quote; the input is copied. Throws <see cref="EvidenceFormatException"/> for any malformed input.</summary>
    public static TdxQuote Parse(byte[] quote)
    {
        ArgumentNullException.ThrowIfNull(quote);
        return ParseOwned((byte[])quote.Clone());
    }

    private static TdxQuote ParseOwned(byte[] bytes)
    {
        ReadOnlyMemory<byte> raw = bytes;
        ReadOnlySpan<byte> s = bytes;

        Require(s, 0, HeaderSize, "header");
        var version = BinaryPrimitives.ReadUInt16LittleEndian(s[VersionOffset..]);
        if (version != Version4 && version != Version5)
        {
            throw new EvidenceFormatException("version", VersionOffset, $"unsupported quote version {version} (expected 4 or 5)");
        }

        var keyType = BinaryPrimitives.ReadUInt16LittleEndian(s[AttestationKeyTypeOffset..]);
        if (keyType != AttestationKeyTypeEcdsaP256)
        {
            throw new EvidenceFormatException("att_key_type", AttestationKeyTypeOffset, $"unsupported attestation key type {keyType} (expected 2, ECDSA-256-with-P-256)");
        }

        var teeType = BinaryPrimitives.ReadUInt32LittleEndian(s[TeeTypeOffset..]);
        if (teeType != TeeTypeTdx)
        {
            throw new EvidenceFormatException("tee_type", TeeTypeOffset, $"tee_type 0x{teeType:x} is not TDX (0x81)");
        }

        int bodyOffset;
        int bodySize;
        ushort bodyType;
        if (version == Version4)
        {
            bodyOffset = V4BodyOffset;
            bodySize = Td10BodySize;
            bodyType = BodyTypeTd10;
        }
        else
        {
            Require(s, V5BodyTypeOffset, V5BodyOffset - V5BodyTypeOffset, "body_descriptor");
            bodyType = BinaryPrimitives.ReadUInt16LittleEndian(s[V5BodyTypeOffset..]);
            var declaredSize = BinaryPrimitives.ReadUInt32LittleEndian(s[V5BodySizeOffset..]);
            int expected = bodyType switch
            {
                BodyTypeTd10 => Td10BodySize,
                BodyTypeTd15 => Td15BodySize,
                BodyTypeSgxEnclave => throw new EvidenceFormatException("body_type", V5BodyTypeOffset, "body type 1 (SGX enclave report) is not a TDX quote"),
                _ => throw new EvidenceFormatException("body_type", V5BodyTypeOffset, $"unknown body type {bodyType} (expected 2 or 3)"),
            };
            if (declaredSize != (uint)expected)
            {
                throw new EvidenceFormatException("body_size", V5BodySizeOffset, $"body size {declaredSize} does not match body type {bodyType} (expected {expected})");
            }

            bodyOffset = V5BodyOffset;
            bodySize = expected;
        }

        Require(s, bodyOffset, bodySize, "td_quote_body");
        var signedLength = bodyOffset + bodySize;

        Require(s, signedLength, SignatureDataLengthSize, "signature_data_len");
        var sigLenRaw = BinaryPrimitives.ReadUInt32LittleEndian(s[signedLength..]);
        var sigOffset = signedLength + SignatureDataLengthSize;
        if (sigLenRaw > (uint)(s.Length - sigOffset))
        {
            throw new EvidenceFormatException("signature_data_len", signedLength, $"declares {sigLenRaw} bytes but only {s.Length - sigOffset} follow");
        }

        var sigLen = (int)sigLenRaw;
        if (sigLen < SigCertDataOffset)
        {
            throw new EvidenceFormatException("signature_data_len", signedLength, $"{sigLen} bytes is too short for signature data (at least {SigCertDataOffset})");
        }

        // From here on every read is bounded by the declared signature data, not by the input length.
        var sig = s.Slice(sigOffset, sigLen);
        var certType = BinaryPrimitives.ReadUInt16LittleEndian(sig[SigCertDataTypeOffset..]);
        if (certType != CertDataTypeQeReport)
        {
            throw new EvidenceFormatException("cert_data_type", sigOffset + SigCertDataTypeOffset, $"certification data type {certType} is not 6 (QE report certification data)");
        }

        var certSizeRaw = BinaryPrimitives.ReadUInt32LittleEndian(sig[SigCertDataSizeOffset..]);
        var certAvailable = sigLen - SigCertDataOffset;
        if (certSizeRaw != (uint)certAvailable)
        {
            throw new EvidenceFormatException("cert_data_size", sigOffset + SigCertDataSizeOffset, $"declares {certSizeRaw} bytes but the signature data holds {certAvailable}");
        }

        var certOffset = sigOffset + SigCertDataOffset;
        var cert = sig.Slice(SigCertDataOffset, certAvailable);
        var minimum = QeCertAuthDataOffset + InnerCertHeaderSize;
        if (cert.Length < minimum)
        {
            throw new EvidenceFormatException("qe_report_certification_data", certOffset, $"{cert.Length} bytes is too short (at least {minimum})");
        }

        var authSize = BinaryPrimitives.ReadUInt16LittleEndian(cert[QeCertAuthDataSizeOffset..]);
        if (authSize > cert.Length - minimum)
        {
            throw new EvidenceFormatException("qe_auth_data_size", certOffset + QeCertAuthDataSizeOffset, $"declares {authSize} bytes but only {cert.Length - minimum} fit in the certification data");
        }

        var innerHeader = QeCertAuthDataOffset + authSize;
        var innerType = BinaryPrimitives.ReadUInt16LittleEndian(cert[innerHeader..]);
        if (innerType != CertDataTypePckCertChain)
        {
            throw new EvidenceFormatException("inner_cert_data_type", certOffset + innerHeader, $"inner certification data type {innerType} is not 5 (PCK certificate chain)");
        }

        var innerSizeRaw = BinaryPrimitives.ReadUInt32LittleEndian(cert[(innerHeader + 2)..]);
        var innerAvailable = cert.Length - innerHeader - InnerCertHeaderSize;
        if (innerSizeRaw != (uint)innerAvailable)
        {
            throw new EvidenceFormatException("inner_cert_data_size", certOffset + innerHeader + 2, $"declares {innerSizeRaw} bytes but the certification data holds {innerAvailable}");
        }

        if (innerAvailable == 0)
        {
            throw new EvidenceFormatException("pck_cert_chain", certOffset + innerHeader + InnerCertHeaderSize, "the PCK certificate chain is empty");
        }

        return new TdxQuote(raw)
        {
            Version = version,
            AttestationKeyType = keyType,
            TeeType = teeType,
            Header = raw[..HeaderSize],
            QeVendorId = raw.Slice(QeVendorIdOffset, QeVendorIdSize),
            UserData = raw.Slice(UserDataOffset, UserDataSize),
            BodyOffset = bodyOffset,
            Body = new TdQuoteBody(raw.Slice(bodyOffset, bodySize), bodyType),
            SignedLength = signedLength,
            SignatureDataLength = sigLen,
            QuoteSignature = raw.Slice(sigOffset + SigQuoteSignatureOffset, EcdsaSignatureSize),
            AttestationKey = raw.Slice(sigOffset + SigAttestationKeyOffset, EcdsaPublicKeySize),
            CertificationDataType = certType,
            CertificationDataSize = certAvailable,
            QeReport = new SgxReportBody(raw.Slice(certOffset + QeCertQeReportOffset, QeReportSize)),
            QeReportSignature = raw.Slice(certOffset + QeCertQeReportSignatureOffset, EcdsaSignatureSize),
            QeAuthData = raw.Slice(certOffset + QeCertAuthDataOffset, authSize),
            PckCertificationDataType = innerType,
            PckCertChainData = raw.Slice(certOffset + innerHeader + InnerCertHeaderSize, innerAvailable),
        };
    }

    private static void Require(ReadOnlySpan<byte> s, int offset, int size, string field)
    {
        if (s.Length < offset + size)
        {
            throw new EvidenceFormatException(field, offset, $"needs {size} bytes but the input ends after {Math.Max(0, s.Length - offset)}");
        }
    }
}
