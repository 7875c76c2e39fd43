using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace AttestBroker.Verification.Tdx;

/// <summary>What a TDX verification needs collateral for.</summary>
/// <param name="Fmspc">FMSPC of the PCK certificate, 12 hex digits.</param>
/// <param name="PceId">PCE-ID of the PCK certificate, 4 hex digits.</param>
/// <param name="CaType">"platform" or "processor": which PCK CA issued the PCK certificate (selects the PCK CRL).</param>
/// <param name="At">The verification time.</param>
public sealed record TdxCollateralRequest(string Fmspc, string PceId, string CaType, DateTimeOffset At);

/// <summary>A source of Intel TDX collateral: files, an on-disk cache, Intel PCS or a PCCS.</summary>
public interface ITdxCollateralProvider
{
    Task<TdxCollateral> GetAsync(TdxCollateralRequest request, CancellationToken ct);
}

/// <summary>Which signed collateral document this is.</summary>
public enum TdxCollateralKind
{
    /// <summary>TDX TCB Info ("tcbInfo").</summary>
    TcbInfo,

    /// <summary>TD QE Identity ("enclaveIdentity").</summary>
    QeIdentity,
}

/// <summary>
/// A signed collateral document as served: the exact bytes of the "tcbInfo" / "enclaveIdentity" JSON value (the
/// signed message, never re-serialised), the raw r ‖ s signature, and the issuer chain that came with it.
/// </summary>
public sealed class SignedCollateralDocument
{
    public SignedCollateralDocument(TdxCollateralKind kind, ReadOnlyMemory<byte> signedJson, byte[] signature, IReadOnlyList<X509Certificate2> issuerChain, string source)
    {
        Kind = kind;
        SignedJson = signedJson;
        Signature = signature ?? throw new ArgumentNullException(nameof(signature));
        IssuerChain = issuerChain ?? throw new ArgumentNullException(nameof(issuerChain));
        Source = source ?? throw new ArgumentNullException(nameof(source));
    }

    public TdxCollateralKind Kind { get; }

    /// <summary>The exact signed bytes (UTF-8 JSON text of the value).</summary>
    public ReadOnlyMemory<byte> SignedJson { get; }

    /// <summary>Raw r ‖ s (64 bytes when well-formed; empty when the served signature was not hex).</summary>
    public byte[] Signature { get; }

    public IReadOnlyList<X509Certificate2> IssuerChain { get; }

    /// <summary>Where it came from (a path or URL), for messages.</summary>
    public string Source { get; }

    /// <summary>The signed JSON as text.</summary>
    public string SignedText => Encoding.UTF8.GetString(SignedJson.Span);

    // A document is immutable once loaded, so what is derived from it alone is derived once.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<X509Certificate2, System.Runtime.CompilerServices.StrongBox<bool>> _verifiedBy = new();
    private Lazy<(TdxTcbInfo? Value, string? Error)>? _tcbInfo;
    private Lazy<(TdQeIdentity? Value, string? Error)>? _qeIdentity;

    /// <summary>The document read as a TDX TCB Info (once per document); <see cref="FormatException"/> when it is not one.</summary>
    public TdxTcbInfo ReadTcbInfo()
    {
        _tcbInfo ??= new Lazy<(TdxTcbInfo?, string?)>(() => Capture(() => TdxTcbInfo.ParseCached(SignedJson)));
        return _tcbInfo.Value.Value ?? throw new FormatException(_tcbInfo.Value.Error);
    }

    /// <summary>The document read as a TD QE Identity (once per document); <see cref="FormatException"/> when it is not one.</summary>
    public TdQeIdentity ReadQeIdentity()
    {
        _qeIdentity ??= new Lazy<(TdQeIdentity?, string?)>(() => Capture(() => TdQeIdentity.ParseCached(SignedJson)));
        return _qeIdentity.Value.Value ?? throw new FormatException(_qeIdentity.Value.Error);
    }

    /// <summary>True when <paramref name="signer"/>'s P-256 key verifies <see cref="Signature"/> over the exact signed bytes (remembered per certificate).</summary>
    public bool IsSignedBy(X509Certificate2 signer) =>
        _verifiedBy.GetValue(signer, c => new System.Runtime.CompilerServices.StrongBox<bool>(EcdsaCertificates.VerifiesRaw(c, SignedJson.Span, Signature))).Value;

    private static (T? Value, string? Error) Capture<T>(Func<T> parse)
        where T : class
    {
        try
        {
            return (parse(), null);
        }
        catch (FormatException ex)
        {
            return (null, ex.Message);
        }
    }

    /// <summary>
    /// Reads an Intel PCS response body ({"tcbInfo": {...}, "signature": "hex"} or {"enclaveIdentity": ...}) keeping
    /// the exact bytes of the signed member. Returns null when the body is not such a response.
    /// </summary>
    public static SignedCollateralDocument? FromPcsResponse(ReadOnlyMemory<byte> body, IReadOnlyList<X509Certificate2> issuerChain, string source)
    {
        var bytes = body;
        if (bytes.Span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            bytes = bytes[3..];
        }

        try
        {
            var reader = new Utf8JsonReader(bytes.Span, new JsonReaderOptions { MaxDepth = 64 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            TdxCollateralKind? kind = null;
            ReadOnlyMemory<byte> signed = default;
            string? signatureHex = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                if (!reader.Read())
                {
                    return null;
                }

                if ((name == "tcbInfo" || name == "enclaveIdentity") && reader.TokenType == JsonTokenType.StartObject && kind is null)
                {
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    var end = (int)reader.BytesConsumed;
                    kind = name == "tcbInfo" ? TdxCollateralKind.TcbInfo : TdxCollateralKind.QeIdentity;
                    signed = bytes[start..end];
                }
                else if (name == "signature" && reader.TokenType == JsonTokenType.String)
                {
                    signatureHex = reader.GetString();
                }
                else
                {
                    reader.Skip();
                }
            }

            if (kind is null || signatureHex is null)
            {
                return null;
            }

            return new SignedCollateralDocument(kind.Value, signed.ToArray(), DecodeSignature(signatureHex), issuerChain, source);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    internal static byte[] DecodeSignature(string hex)
    {
        if (hex.Length != 128)
        {
            return [];
        }

        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            return [];
        }
    }
}

/// <summary>
/// Intel TDX collateral: candidate TCB Infos and QE Identities (raw signed JSON with their signatures), CRLs (DER)
/// and every certificate that may complete an issuer chain. The verifier picks the items that apply; a source may
/// hold several of each (other FMSPCs, older issues, certificates re-issued with the same serial).
/// </summary>
public sealed class TdxCollateral
{
    public TdxCollateral(IEnumerable<SignedCollateralDocument> tcbInfos, IEnumerable<SignedCollateralDocument> qeIdentities, IEnumerable<byte[]> crls, IEnumerable<X509Certificate2> certificates)
    {
        TcbInfos = [.. tcbInfos];
        QeIdentities = [.. qeIdentities];
        Crls = DistinctBytes(crls);
        // Deduplicated by exact DER only: Intel re-issued the TCB Signing certificate with the same key and serial.
        Certificates = certificates.DistinctBy(c => Convert.ToBase64String(c.RawData)).ToList();
    }

    public static TdxCollateral Empty { get; } = new([], [], [], []);

    public IReadOnlyList<SignedCollateralDocument> TcbInfos { get; }

    public IReadOnlyList<SignedCollateralDocument> QeIdentities { get; }

    /// <summary>DER CRLs (PCK CRLs and Root CA CRLs; told apart by issuer).</summary>
    public IReadOnlyList<byte[]> Crls { get; }

    /// <summary>Every candidate certificate (issuer chains of the documents and CRLs, loose certificates).</summary>
    public IReadOnlyList<X509Certificate2> Certificates { get; }

    public bool IsEmpty => TcbInfos.Count == 0 && QeIdentities.Count == 0 && Crls.Count == 0;

    /// <summary>Both collateral sets in one.</summary>
    public TdxCollateral Merge(TdxCollateral other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return new TdxCollateral([.. TcbInfos, .. other.TcbInfos], [.. QeIdentities, .. other.QeIdentities], [.. Crls, .. other.Crls], [.. Certificates, .. other.Certificates]);
    }

    private static List<byte[]> DistinctBytes(IEnumerable<byte[]> items) =>
        items.DistinctBy(Convert.ToBase64String).ToList();
}
