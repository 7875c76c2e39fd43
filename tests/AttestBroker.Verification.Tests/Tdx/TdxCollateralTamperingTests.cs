using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Testing;
using AttestBroker.Verification.Tdx;
using NUnit.Framework;
using static AttestBroker.Verification.Tests.Tdx.TdxVectors;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>Reads the dcap-qvl collateral for GT-2 apart, so a test can change one piece.</summary>
internal static class Gt2Collateral
{
    public const string TcbInfoFile = "tdx/dcap-qvl/derived/tdx_quote_outdated/tcb_info.json";
    public const string QeIdentityFile = "tdx/dcap-qvl/derived/tdx_quote_outdated/qe_identity.json";

    public static TdxCollateral All => TdxCollateralSource.Recognise(File.ReadAllBytes(Vectors.Path(DcapQvlJson)), DcapQvlJson);

    /// <summary>CRLs and certificates, without the signed documents.</summary>
    public static TdxCollateral CrlsAndCertificates
    {
        get
        {
            var all = All;
            return new TdxCollateral([], [], all.Crls, all.Certificates);
        }
    }

    public static byte[] Response(string relative) => File.ReadAllBytes(Vectors.Path(relative));

    public static SignedCollateralDocument Document(byte[] response, string source = "test") =>
        SignedCollateralDocument.FromPcsResponse(response, [], source) ?? throw new InvalidOperationException("not a PCS response");

    /// <summary>The response with the first occurrence of <paramref name="from"/> inside the signed member replaced.</summary>
    public static byte[] Replace(byte[] response, string from, string to)
    {
        var text = Encoding.UTF8.GetString(response);
        var at = text.IndexOf(from, StringComparison.Ordinal);
        Assert.That(at, Is.GreaterThan(0), $"'{from}' not found");
        return Encoding.UTF8.GetBytes(text[..at] + to + text[(at + from.Length)..]);
    }
}

/// <summary>Changed, forged or missing TCB Info and QE Identity documents are rejected with the collateral code that fits.</summary>
[TestFixture]
public sealed class Tampered_collateral_is_rejected_with_a_collateral_reason
{
    private static VerificationResult VerifyGt2(params SignedCollateralDocument[] documents) =>
        TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, new StaticCollateral(Gt2Collateral.CrlsAndCertificates.Merge(new TdxCollateral(
            documents.Where(d => d.Kind == TdxCollateralKind.TcbInfo), documents.Where(d => d.Kind == TdxCollateralKind.QeIdentity), [], []))));

    private static SignedCollateralDocument Tcb => Gt2Collateral.Document(Gt2Collateral.Response(Gt2Collateral.TcbInfoFile));

    private static SignedCollateralDocument Qe => Gt2Collateral.Document(Gt2Collateral.Response(Gt2Collateral.QeIdentityFile));

    [Test]
    public void Unchanged_documents_are_accepted()
    {
        var r = VerifyGt2(Tcb, Qe);
        Assert.That(r.IsAccepted, Is.True, Describe(r));
    }

    [Test]
    public void Tcb_info_with_one_modified_byte_gives_collateral_signature_invalid()
    {
        var changed = Gt2Collateral.Document(Gt2Collateral.Replace(Gt2Collateral.Response(Gt2Collateral.TcbInfoFile), "\"tcbEvaluationDataNumber\":18", "\"tcbEvaluationDataNumber\":19"));
        var r = VerifyGt2(changed, Qe);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralSignatureInvalid }), Describe(r));
        Assert.That(r.Claims.Contains("tcb_status"), Is.False, "an unverified TCB Info is not evaluated");
    }

    [Test]
    public void Tcb_info_with_insignificant_whitespace_added_gives_collateral_signature_invalid()
    {
        var changed = Gt2Collateral.Document(Gt2Collateral.Replace(Gt2Collateral.Response(Gt2Collateral.TcbInfoFile), "\"version\":3,", "\"version\": 3,"));
        var r = VerifyGt2(changed, Qe);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralSignatureInvalid }), Describe(r));
    }

    [Test]
    public void Qe_identity_with_one_modified_byte_gives_collateral_signature_invalid()
    {
        var changed = Gt2Collateral.Document(Gt2Collateral.Replace(Gt2Collateral.Response(Gt2Collateral.QeIdentityFile), "\"isvprodid\":2", "\"isvprodid\":3"));
        var r = VerifyGt2(Tcb, changed);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralSignatureInvalid }), Describe(r));
        Assert.That(r.Claims.Contains("qe_tcb_status"), Is.False);
    }

    [Test]
    public void Tcb_info_with_a_flipped_signature_bit_gives_collateral_signature_invalid()
    {
        var original = Tcb;
        var signature = (byte[])original.Signature.Clone();
        signature[10] ^= 0x04;
        var r = VerifyGt2(new SignedCollateralDocument(original.Kind, original.SignedJson, signature, original.IssuerChain, "flipped"), Qe);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralSignatureInvalid }), Describe(r));
    }

    [Test]
    public void Signature_that_is_not_hex_gives_collateral_signature_invalid()
    {
        var changed = Gt2Collateral.Document(Gt2Collateral.Replace(Gt2Collateral.Response(Gt2Collateral.TcbInfoFile), "\"signature\":\"", "\"signature\":\"zz"));
        var r = VerifyGt2(changed, Qe);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralSignatureInvalid }), Describe(r));
    }

    [Test]
    public void Missing_tcb_info_gives_collateral_missing()
    {
        var r = VerifyGt2(Qe);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralMissing }), Describe(r));
        Assert.That(Claim(r, "qe_tcb_status"), Is.EqualTo("UpToDate"));
    }

    [Test]
    public void Missing_qe_identity_gives_collateral_missing()
    {
        var r = VerifyGt2(Tcb);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralMissing }), Describe(r));
    }

    [Test]
    public void Tcb_info_for_another_fmspc_gives_collateral_mismatch()
    {
        var other = TdxCollateralSource.Recognise(File.ReadAllBytes(Vectors.Path("tdx/go-tdx-guest/collateral/sample_tcbInfo_response.json")), "50806f000000").TcbInfos[0];
        var r = VerifyGt2(other, Qe);
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralMismatch), Describe(r));
        Assert.That(r.Claims.Contains("tcb_status"), Is.False);
    }

    [Test]
    public void Tcb_info_json_that_is_not_tcb_info_gives_collateral_invalid()
    {
        var doc = new SignedCollateralDocument(TdxCollateralKind.TcbInfo, Encoding.UTF8.GetBytes("{\"id\":\"TDX\"}"), new byte[64], [], "broken");
        var r = VerifyGt2(doc, Qe);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralInvalid }), Describe(r));
    }

    [Test]
    public void Tcb_info_signed_under_a_look_alike_root_gives_collateral_signer_untrusted()
    {
        using var signer = SimulatedTcbSigner.Create();
        var forged = signer.Sign(TdxCollateralKind.TcbInfo, JsonNode.Parse(Tcb.SignedText)!);
        // Verified with the production trust store only: the look-alike root is not trusted.
        var r = VerifyGt2(forged, Qe);
        Assert.That(Codes(r), Is.EqualTo(new[] { ReasonCodes.CollateralSignerUntrusted }), Describe(r));
    }

    [Test]
    public void A_collateral_source_that_fails_gives_collateral_unavailable_not_an_exception()
    {
        var r = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, new FailingCollateral());
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralUnavailable), Describe(r));
        Assert.That(r.Reasons.First(x => x.Code == ReasonCodes.CollateralUnavailable).Message, Does.Contain("PCS is down"));
    }

    private sealed class FailingCollateral : ITdxCollateralProvider
    {
        public Task<TdxCollateral> GetAsync(TdxCollateralRequest request, CancellationToken ct) => throw new HttpRequestException("PCS is down");
    }
}

/// <summary>
/// A TCB Signing certificate under a test root that the test trusts explicitly (as simulated), so that TCB Info and
/// QE Identity documents with chosen contents can be signed and the evaluation rules tested on the real GT-2 quote.
/// </summary>
internal sealed class SimulatedTcbSigner : IDisposable
{
    private SimulatedTcbSigner(X509Certificate2 root, X509Certificate2 signer, ECDsa key)
    {
        Root = root;
        Signer = signer;
        Key = key;
    }

    public X509Certificate2 Root { get; }

    public X509Certificate2 Signer { get; }

    public ECDsa Key { get; }

    public TrustStore Trust => TrustStore.Production.WithSimulatedAnchors([new TrustAnchor(X509CertificateLoader.LoadCertificate(Root.RawData), TrustVendor.Intel, null, true)]);

    public static SimulatedTcbSigner Create()
    {
        var from = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var to = new DateTimeOffset(2040, 1, 1, 0, 0, 0, TimeSpan.Zero);
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootReq = new CertificateRequest("CN=Intel SGX Root CA, O=Intel Corporation, L=Santa Clara, S=CA, C=US", rootKey, HashAlgorithmName.SHA256);
        rootReq.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 1, true));
        rootReq.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        rootReq.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(rootReq.PublicKey, false));
        var root = rootReq.CreateSelfSigned(from, to);

        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest("CN=Intel SGX TCB Signing, O=Intel Corporation, L=Santa Clara, S=CA, C=US", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.NonRepudiation, true));
        var signer = req.Create(root, from, to, [0x7e, 0x38, 0x82]);
        return new SimulatedTcbSigner(root, signer, key);
    }

    /// <summary>A PCS response for the JSON (serialised once; those exact bytes are signed), with this signer's chain.</summary>
    public SignedCollateralDocument Sign(TdxCollateralKind kind, JsonNode json)
    {
        var text = json.ToJsonString();
        var signature = Key.SignData(Encoding.UTF8.GetBytes(text), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        var member = kind == TdxCollateralKind.TcbInfo ? "tcbInfo" : "enclaveIdentity";
        var response = Encoding.UTF8.GetBytes($"{{\"{member}\":{text},\"signature\":\"{Convert.ToHexStringLower(signature)}\"}}");
        return SignedCollateralDocument.FromPcsResponse(response, [X509CertificateLoader.LoadCertificate(Signer.RawData), X509CertificateLoader.LoadCertificate(Root.RawData)], "simulated")!;
    }

    /// <summary>An empty, in-date CRL by the test root (so the signer's revocation can be checked).</summary>
    public byte[] RootCrl(DateTimeOffset at) =>
        new CertificateRevocationListBuilder().Build(Root, 1, at.AddDays(1), HashAlgorithmName.SHA256, null, at.AddDays(-1));

    public void Dispose()
    {
        Root.Dispose();
        Signer.Dispose();
        Key.Dispose();
    }
}
