using AttestBroker.Testing;
using AttestBroker.Verification.Tdx;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>Real vectors and reference times from VECTORS.md §3, and a one-call verification helper.</summary>
internal static class TdxVectors
{
    public const string Gt1 = "tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat";
    public const string Gt2 = "tdx/go-tdx-guest/quote_v5_sample.dat";
    public const string Gt3 = "tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat";
    public const string GoTdxGuestCollateral = "tdx/go-tdx-guest/collateral";
    public const string DcapQvlJson = "tdx/dcap-qvl/tdx_quote_outdated_collateral.json";
    public const string DcapQvlDerived = "tdx/dcap-qvl/derived/tdx_quote_outdated";

    public static readonly DateTimeOffset Gt1At = DateTimeOffset.Parse("2023-07-01T01:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    public static readonly DateTimeOffset Gt2At = DateTimeOffset.Parse("2026-03-20T10:41:14Z", System.Globalization.CultureInfo.InvariantCulture);
    public static readonly DateTimeOffset Gt3At = DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The signature, key and binding codes: none may appear when the crypto of a real quote is intact.</summary>
    public static readonly string[] CryptoCodes =
    [
        ReasonCodes.QuoteSignatureInvalid, ReasonCodes.AttestationKeyInvalid, ReasonCodes.QeReportSignatureInvalid,
        ReasonCodes.QeReportDataMismatch, ReasonCodes.CertChainInvalid, ReasonCodes.UntrustedRoot, ReasonCodes.CertificateExpired,
        ReasonCodes.CertificateInvalid, ReasonCodes.MalformedEvidence,
    ];

    public static ITdxCollateralProvider Collateral(params string[] relative) =>
        TdxCollateralSource.FromPaths(relative.Select(Vectors.Path));

    public static VerificationResult Verify(byte[] quote, DateTimeOffset at, ITdxCollateralProvider? collateral, TrustStore? trust = null, bool skipCrl = false) =>
        new TdxVerifier(collateral).VerifyAsync(quote, new VerificationContext(at, trust ?? TrustStore.Production) { SkipCrl = skipCrl }).GetAwaiter().GetResult();

    public static string Codes(VerificationResult r) => string.Join(", ", r.Reasons.Select(x => x.Code + ": " + x.Message));
}
