using System.Security.Cryptography.X509Certificates;
using AttestBroker.Verification.Collateral;
using Org.BouncyCastle.X509;

namespace AttestBroker.Verification.Tdx;

/// <summary>The Intel PCS v4 paths TDX collateral is fetched from (a PCCS or the simulator serves the same paths).</summary>
public static class TdxPcsPaths
{
    public const string TcbInfoIssuerChainHeader = "TCB-Info-Issuer-Chain";
    public const string QeIdentityIssuerChainHeader = "SGX-Enclave-Identity-Issuer-Chain";
    public const string PckCrlIssuerChainHeader = "SGX-PCK-CRL-Issuer-Chain";

    public static string TcbInfo(string fmspc) => "tdx/certification/v4/tcb?fmspc=" + Uri.EscapeDataString(fmspc.ToLowerInvariant());

    public const string QeIdentity = "tdx/certification/v4/qe/identity";

    public static string PckCrl(string caType) => "sgx/certification/v4/pckcrl?ca=" + Uri.EscapeDataString(caType) + "&encoding=der";

    /// <summary>The Root CA CRL, relative to the certificates base URL (the CRL distribution point of the Intel SGX Root CA).</summary>
    public const string RootCaCrl = "IntelSGXRootCA.der";

    /// <summary>The Root CA CRL as a PCCS (and the simulator) serves it, relative to the PCS base URL.</summary>
    public const string PccsRootCaCrl = "sgx/certification/v4/rootcacrl";

    /// <summary>Intel's own PCS host, which does not serve the PCCS rootcacrl path.</summary>
    public const string IntelPcsHost = "api.trustedservices.intel.com";
}

/// <summary>
/// Fetches TDX collateral from Intel PCS v4 (or a PCCS / the simulator at another base URL) through the shared
/// on-disk <see cref="CollateralHttpCache"/>: TCB Info for the FMSPC, TD QE Identity, the PCK CRL of the PCK's CA and
/// the Root CA CRL, with the issuer chains from the response headers (URL-encoded PEM). Entries stay fresh until the
/// content's own nextUpdate. Nothing fetched is trusted here: the verifier checks every signature and chain.
/// Failures surface as <see cref="CollateralUnavailableException"/>, which the verifier reports as
/// <see cref="ReasonCodes.CollateralUnavailable"/>.
/// </summary>
public sealed class TdxPcsCollateralProvider : ITdxCollateralProvider
{
    private readonly CollateralHttpCache _cache;
    private readonly Uri _pcsBase;
    private readonly Uri _certificatesBase;
    private readonly ITdxCollateralProvider? _local;

    /// <param name="cache">The shared collateral cache (its options give the default base URLs).</param>
    /// <param name="pcsBaseUrl">Overrides <see cref="CollateralFetchOptions.IntelPcsBaseUrl"/>.</param>
    /// <param name="certificatesBaseUrl">Overrides <see cref="CollateralFetchOptions.IntelCertificatesBaseUrl"/> (Root CA CRL).</param>
    /// <param name="local">Collateral from files, offered alongside what is fetched.</param>
    public TdxPcsCollateralProvider(CollateralHttpCache cache, Uri? pcsBaseUrl = null, Uri? certificatesBaseUrl = null, ITdxCollateralProvider? local = null)
    {
        _cache = cache ?? throw new ArgumentNullException(nameof(cache));
        _pcsBase = WithSlash(pcsBaseUrl ?? cache.Options.IntelPcsBaseUrl);
        _certificatesBase = WithSlash(certificatesBaseUrl ?? cache.Options.IntelCertificatesBaseUrl);
        _local = local;
    }

    public async Task<TdxCollateral> GetAsync(TdxCollateralRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Fmspc.Length != 12 || !request.Fmspc.All(Uri.IsHexDigit))
        {
            throw new ArgumentException($"FMSPC '{request.Fmspc}' is not 12 hex digits", nameof(request));
        }

        if (request.CaType is not ("platform" or "processor"))
        {
            throw new ArgumentException($"PCK CA type '{request.CaType}' is neither platform nor processor", nameof(request));
        }

        var tcbTask = _cache.GetAsync(new Uri(_pcsBase, TdxPcsPaths.TcbInfo(request.Fmspc)), r => DocumentNextUpdate(r, TdxCollateralKind.TcbInfo), ct);
        var qeTask = _cache.GetAsync(new Uri(_pcsBase, TdxPcsPaths.QeIdentity), r => DocumentNextUpdate(r, TdxCollateralKind.QeIdentity), ct);
        var pckCrlTask = _cache.GetAsync(new Uri(_pcsBase, TdxPcsPaths.PckCrl(request.CaType)), CrlNextUpdate, ct);
        var rootCrlTask = RootCrlAsync(ct);
        await Task.WhenAll(tcbTask, qeTask, pckCrlTask, rootCrlTask).ConfigureAwait(false);

        var tcb = await tcbTask.ConfigureAwait(false);
        var qe = await qeTask.ConfigureAwait(false);
        var pckCrl = await pckCrlTask.ConfigureAwait(false);
        var rootCrl = await rootCrlTask.ConfigureAwait(false);

        var tcbChain = HeaderChain(tcb, TdxPcsPaths.TcbInfoIssuerChainHeader);
        var qeChain = HeaderChain(qe, TdxPcsPaths.QeIdentityIssuerChainHeader);
        var crlChain = HeaderChain(pckCrl, TdxPcsPaths.PckCrlIssuerChainHeader);
        var tcbDoc = SignedCollateralDocument.FromPcsResponse(tcb.Body, tcbChain, tcb.Uri.AbsoluteUri)
            ?? throw new CollateralUnavailableException(tcb.Uri, 200, null, $"{tcb.Uri.GetLeftPart(UriPartial.Path)} did not answer a TCB Info response");
        var qeDoc = SignedCollateralDocument.FromPcsResponse(qe.Body, qeChain, qe.Uri.AbsoluteUri)
            ?? throw new CollateralUnavailableException(qe.Uri, 200, null, $"{qe.Uri.GetLeftPart(UriPartial.Path)} did not answer a QE Identity response");

        var fetched = new TdxCollateral(
            [tcbDoc],
            [qeDoc],
            [CrlDer(pckCrl), CrlDer(rootCrl)],
            [.. tcbChain, .. qeChain, .. crlChain]);

        if (_local is not null)
        {
            fetched = fetched.Merge(await _local.GetAsync(request, ct).ConfigureAwait(false));
        }

        return fetched;
    }

    /// <summary>
    /// The Root CA CRL: from Intel's certificate site when the PCS is Intel's; from a PCCS (or the simulator) at its
    /// rootcacrl path first, falling back to the certificate site's IntelSGXRootCA.der when that path is not served.
    /// </summary>
    private async Task<CachedResponse> RootCrlAsync(CancellationToken ct)
    {
        var certificateSite = new Uri(_certificatesBase, TdxPcsPaths.RootCaCrl);
        if (string.Equals(_pcsBase.Host, TdxPcsPaths.IntelPcsHost, StringComparison.OrdinalIgnoreCase))
        {
            return await _cache.GetAsync(certificateSite, CrlNextUpdate, ct).ConfigureAwait(false);
        }

        try
        {
            return await _cache.GetAsync(new Uri(_pcsBase, TdxPcsPaths.PccsRootCaCrl), CrlNextUpdate, ct).ConfigureAwait(false);
        }
        catch (CollateralUnavailableException ex) when (ex.StatusCode is 404 or 400)
        {
            return await _cache.GetAsync(certificateSite, CrlNextUpdate, ct).ConfigureAwait(false);
        }
    }

    private static Uri WithSlash(Uri uri) => uri.AbsoluteUri.EndsWith('/') ? uri : new Uri(uri.AbsoluteUri + "/");

    private static List<X509Certificate2> HeaderChain(CachedResponse response, string header)
    {
        var value = response.Header(header);
        if (string.IsNullOrEmpty(value))
        {
            return [];
        }

        try
        {
            return EcdsaCertificates.ParsePemCertificates(Uri.UnescapeDataString(value));
        }
        catch (FormatException ex)
        {
            throw new CollateralUnavailableException(response.Uri, 200, null, $"{response.Uri.GetLeftPart(UriPartial.Path)} answered an unreadable {header} header: {ex.Message}", ex);
        }
    }

    /// <summary>The freshness limit of a TCB Info / QE Identity response: its nextUpdate. Throws FormatException for content that is not one.</summary>
    private static DateTimeOffset DocumentNextUpdate(CachedResponse response, TdxCollateralKind kind)
    {
        var doc = SignedCollateralDocument.FromPcsResponse(response.Body, [], response.Uri.AbsoluteUri);
        if (doc is null || doc.Kind != kind)
        {
            throw new FormatException($"not a {(kind == TdxCollateralKind.TcbInfo ? "TCB Info" : "QE Identity")} response");
        }

        return kind == TdxCollateralKind.TcbInfo ? TdxTcbInfo.Parse(doc.SignedJson).NextUpdate : TdQeIdentity.Parse(doc.SignedJson).NextUpdate;
    }

    private static DateTimeOffset CrlNextUpdate(CachedResponse response)
    {
        var der = CrlDer(response);
        var crl = new X509CrlParser().ReadCrl(der) ?? throw new FormatException("not a CRL");
        return crl.NextUpdate is { } next ? new DateTimeOffset(DateTime.SpecifyKind(next, DateTimeKind.Utc)) : DateTimeOffset.MinValue;
    }

    /// <summary>A CRL body as DER: PCS answers DER (encoding=der); a PCCS may answer PEM or hex text.</summary>
    private static byte[] CrlDer(CachedResponse response)
    {
        var body = response.Body;
        if (CrlSupport.LooksLikeCrl(body))
        {
            return body;
        }

        var text = EcdsaCertificates.TryAscii(body)?.Trim();
        if (text is not null)
        {
            if (text.Contains("-----BEGIN X509 CRL-----", StringComparison.Ordinal)
                && System.Security.Cryptography.PemEncoding.TryFind(text, out var fields))
            {
                var der = Convert.FromBase64String(text[fields.Base64Data]);
                if (CrlSupport.LooksLikeCrl(der))
                {
                    return der;
                }
            }
            else if (text.Length % 2 == 0 && text.All(Uri.IsHexDigit))
            {
                var der = Convert.FromHexString(text);
                if (CrlSupport.LooksLikeCrl(der))
                {
                    return der;
                }
            }
        }

        throw new FormatException($"{response.Uri.GetLeftPart(UriPartial.Path)} did not answer a CRL (DER, PEM or hex)");
    }
}
