using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using AttestBroker.Evidence.Tdx;
using AttestBroker.Testing;
using AttestBroker.Verification.Tdx;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>Real vectors and reference times from VECTORS.md §3, and one-call verification helpers.</summary>
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

    /// <summary>The signature, key, chain and binding codes: none may appear when the crypto of a real quote is intact.</summary>
    public static readonly string[] CryptoCodes =
    [
        ReasonCodes.QuoteSignatureInvalid, ReasonCodes.AttestationKeyInvalid, ReasonCodes.QeReportSignatureInvalid,
        ReasonCodes.QeReportDataMismatch, ReasonCodes.CertChainInvalid, ReasonCodes.UntrustedRoot, ReasonCodes.CertificateExpired,
        ReasonCodes.CertificateInvalid, ReasonCodes.CertificateRevoked, ReasonCodes.MalformedEvidence,
    ];

    public static ITdxCollateralProvider CollateralFrom(params string[] relative) =>
        TdxCollateralSource.FromPaths(relative.Select(Vectors.Path));

    public static VerificationResult Verify(byte[] quote, DateTimeOffset at, ITdxCollateralProvider? collateral, TrustStore? trust = null, bool skipCrl = false) =>
        new TdxVerifier(collateral).VerifyAsync(quote, new VerificationContext(at, trust ?? TrustStore.Production) { SkipCrl = skipCrl }).GetAwaiter().GetResult();

    public static string Describe(VerificationResult r) =>
        r.Reasons.Count == 0 ? "(no reasons)" : string.Join("; ", r.Reasons.Select(x => x.Code + ": " + x.Message));

    public static string[] Codes(VerificationResult r) => r.Reasons.Select(x => x.Code).Distinct().ToArray();

    public static string Claim(VerificationResult r, string name) => r.Claims[name]?.ToString() ?? "(absent)";
}

/// <summary>Collateral held in memory (for tests that alter a document).</summary>
internal sealed class StaticCollateral(TdxCollateral collateral) : ITdxCollateralProvider
{
    public TdxCollateral Collateral { get; } = collateral;

    public static StaticCollateral FromFiles(params string[] relative)
    {
        var c = TdxCollateral.Empty;
        foreach (var r in relative)
        {
            var path = Vectors.Path(r);
            var files = Directory.Exists(path) ? Directory.GetFiles(path, "*", SearchOption.AllDirectories) : [path];
            foreach (var f in files)
            {
                c = c.Merge(TdxCollateralSource.Recognise(File.ReadAllBytes(f), f));
            }
        }

        return new StaticCollateral(c);
    }

    public StaticCollateral With(TdxCollateral more) => new(Collateral.Merge(more));

    public Task<TdxCollateral> GetAsync(TdxCollateralRequest request, CancellationToken ct) => Task.FromResult(Collateral);
}

/// <summary>Builds quotes whose certification data is replaced (re-signed chains), writing every length field anew.</summary>
internal static class QuoteRewriter
{
    /// <summary>The quote with a new QE report signature and PCK chain; trailing bytes are dropped.</summary>
    public static byte[] Replace(byte[] original, byte[] qeReportSignature, string pckChainPem)
    {
        var q = TdxQuote.Parse(original);
        var pem = Encoding.ASCII.GetBytes(pckChainPem);
        var authLen = q.QeAuthData.Length;
        var certData = new byte[TdxQuoteLayout.QeCertAuthDataOffset + authLen + TdxQuoteLayout.InnerCertHeaderSize + pem.Length];
        q.QeReport.Raw.Span.CopyTo(certData);
        qeReportSignature.CopyTo(certData, TdxQuoteLayout.QeCertQeReportSignatureOffset);
        BinaryPrimitives.WriteUInt16LittleEndian(certData.AsSpan(TdxQuoteLayout.QeCertAuthDataSizeOffset), (ushort)authLen);
        q.QeAuthData.Span.CopyTo(certData.AsSpan(TdxQuoteLayout.QeCertAuthDataOffset));
        var inner = TdxQuoteLayout.QeCertAuthDataOffset + authLen;
        BinaryPrimitives.WriteUInt16LittleEndian(certData.AsSpan(inner), TdxQuoteLayout.CertDataTypePckCertChain);
        BinaryPrimitives.WriteUInt32LittleEndian(certData.AsSpan(inner + 2), (uint)pem.Length);
        pem.CopyTo(certData, inner + TdxQuoteLayout.InnerCertHeaderSize);

        var sigData = new byte[TdxQuoteLayout.SigCertDataOffset + certData.Length];
        q.QuoteSignature.Span.CopyTo(sigData);
        q.AttestationKey.Span.CopyTo(sigData.AsSpan(TdxQuoteLayout.SigAttestationKeyOffset));
        BinaryPrimitives.WriteUInt16LittleEndian(sigData.AsSpan(TdxQuoteLayout.SigCertDataTypeOffset), TdxQuoteLayout.CertDataTypeQeReport);
        BinaryPrimitives.WriteUInt32LittleEndian(sigData.AsSpan(TdxQuoteLayout.SigCertDataSizeOffset), (uint)certData.Length);
        certData.CopyTo(sigData, TdxQuoteLayout.SigCertDataOffset);

        var result = new byte[q.SignedLength + 4 + sigData.Length];
        q.SignedBytes.Span.CopyTo(result);
        BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(q.SignedLength), (uint)sigData.Length);
        sigData.CopyTo(result, q.SignedLength + 4);
        return result;
    }
}

/// <summary>
/// A look-alike Intel PKI made in the test: a root with the same subject as the Intel SGX Root CA but another key,
/// a PCK CA and a PCK certificate with the original names, serials and SGX extension, re-signed under it.
/// </summary>
internal sealed class LookAlikePki : IDisposable
{
    private static readonly DateTimeOffset From = new(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset To = new(2040, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private LookAlikePki(X509Certificate2 root, X509Certificate2 ca, X509Certificate2 leaf, ECDsa leafKey, byte[] quote)
    {
        Root = root;
        Ca = ca;
        Leaf = leaf;
        LeafKey = leafKey;
        Quote = quote;
    }

    /// <summary>Root and CA carry their private keys (to sign CRLs).</summary>
    public X509Certificate2 Root { get; }

    public X509Certificate2 Ca { get; }

    public X509Certificate2 Leaf { get; }

    public ECDsa LeafKey { get; }

    /// <summary>The original quote with the QE report re-signed by the new PCK key and the new chain.</summary>
    public byte[] Quote { get; }

    public static LookAlikePki For(byte[] original, X509Extension? leafBasicConstraints = null)
    {
        var q = TdxQuote.Parse(original);
        var chain = new X509Certificate2Collection();
        chain.ImportFromPem(q.PckCertChainPem);
        var (origLeaf, origCa, origRoot) = (chain[0], chain[1], chain[2]);

        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootReq = new CertificateRequest(origRoot.SubjectName, rootKey, HashAlgorithmName.SHA256);
        rootReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 1, true));
        rootReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        rootReq.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(rootReq.PublicKey, false));
        var root = rootReq.CreateSelfSigned(From, To);

        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caReq = new CertificateRequest(origCa.SubjectName, caKey, HashAlgorithmName.SHA256);
        caReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        caReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caReq.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caReq.PublicKey, false));
        caReq.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(root, true, false));
        using var caPublic = caReq.Create(root, From, To, origCa.SerialNumberBytes.ToArray());
        var ca = caPublic.CopyWithPrivateKey(caKey);

        var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafReq = new CertificateRequest(origLeaf.SubjectName, leafKey, HashAlgorithmName.SHA256);
        leafReq.CertificateExtensions.Add(leafBasicConstraints ?? new X509BasicConstraintsExtension(false, false, 0, true));
        leafReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.NonRepudiation, true));
        leafReq.CertificateExtensions.Add(origLeaf.Extensions[PckCertificateExtensions.SgxExtensionOid]!);
        var leaf = leafReq.Create(ca, From, To, origLeaf.SerialNumberBytes.ToArray());

        var qeSignature = leafKey.SignData(q.QeReport.Raw.Span, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        var pem = leaf.ExportCertificatePem() + "\n" + ca.ExportCertificatePem() + "\n" + root.ExportCertificatePem() + "\n";
        return new LookAlikePki(root, ca, leaf, leafKey, QuoteRewriter.Replace(original, qeSignature, pem));
    }

    /// <summary>A DER CRL by the look-alike CA (revoking the given serials) or root.</summary>
    public byte[] Crl(X509Certificate2 issuer, DateTimeOffset thisUpdate, DateTimeOffset nextUpdate, params byte[][] revokedSerials)
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var serial in revokedSerials)
        {
            builder.AddEntry(serial, thisUpdate);
        }

        return builder.Build(issuer, 1, nextUpdate, HashAlgorithmName.SHA256, null, thisUpdate);
    }

    public TrustStore SimulatedTrust() =>
        TrustStore.Production.WithSimulatedAnchors([new TrustAnchor(X509CertificateLoader.LoadCertificate(Root.RawData), TrustVendor.Intel, null, true)]);

    public void Dispose()
    {
        Root.Dispose();
        Ca.Dispose();
        Leaf.Dispose();
        LeafKey.Dispose();
    }
}
