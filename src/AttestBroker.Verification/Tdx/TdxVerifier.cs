using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Evidence.Tdx;

namespace AttestBroker.Verification.Tdx;

/// <summary>
/// Verifies Intel TDX DCAP quotes (v4, v5): PCK chain to the pinned Intel SGX Root CA, CRLs, attestation key and
/// quote signature, QE report signature and binding, TCB Info and QE Identity (signature, signer chain, window,
/// platform match), QE identity and TCB level evaluation. Every failed check becomes a reason; nothing throws for
/// bad evidence or bad collateral. TCB statuses other than Revoked are not failures: they are claims for policy.
/// </summary>
public sealed class TdxVerifier : IEvidenceVerifier
{
    private const string PlatformCaName = "Intel SGX PCK Platform CA";
    private const string ProcessorCaName = "Intel SGX PCK Processor CA";

    private readonly ITdxCollateralProvider? _collateral;

    /// <summary>A verifier that takes collateral from <paramref name="collateral"/> (none: every collateral check reports CollateralMissing).</summary>
    public TdxVerifier(ITdxCollateralProvider? collateral = null)
    {
        _collateral = collateral;
    }

    public TeeKind Kind => TeeKind.Tdx;

    public async Task<VerificationResult> VerifyAsync(ReadOnlyMemory<byte> evidence, VerificationContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var run = new Run(context);

        TdxQuote quote;
        try
        {
            quote = TdxQuote.Parse(evidence);
        }
        catch (EvidenceFormatException ex)
        {
            run.Fail(ReasonCodes.MalformedEvidence, ex.Message);
            return run.Result(crlChecked: false);
        }

        SetBodyClaims(run.Claims, quote);
        if (quote.TrailingByteCount > 0)
        {
            run.Note(ReasonCodes.TrailingBytes, $"{quote.TrailingByteCount} bytes follow the declared signature data (outside the signed structure; ignored)");
        }

        PckChain? chain = null;
        try
        {
            chain = CheckPckChain(run, quote);
            return await VerifyWithChainAsync(run, quote, chain, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is CryptographicException or System.Formats.Asn1.AsnContentException or FormatException or ArgumentException or OverflowException)
        {
            // Certificates are parsed lazily by the platform (extensions are decoded on first use): content that is
            // malformed deep inside a certificate surfaces here. It is a rejection, never an exception to the caller.
            run.Fail(ReasonCodes.CertificateInvalid, "a certificate or collateral item could not be read: " + ex.Message);
            return run.Result(crlChecked: false);
        }
    }

    private async Task<VerificationResult> VerifyWithChainAsync(Run run, TdxQuote quote, PckChain? chain, CancellationToken cancellationToken)
    {
        PckCertificateExtensions? pck = null;
        if (chain is not null)
        {
            try
            {
                pck = PckCertificateExtensions.FromCertificate(chain.Leaf);
                run.Claims.Set("fmspc", pck.Fmspc);
                run.Claims.Set("pce_id", pck.PceId);
            }
            catch (FormatException ex)
            {
                run.Fail(ReasonCodes.CertificateInvalid, "PCK certificate: " + ex.Message);
            }
        }

        CheckQuoteSignature(run, quote);
        CheckQeReport(run, quote, chain);

        var collateral = await GetCollateralAsync(run, pck, chain, cancellationToken).ConfigureAwait(false);
        var crlChecked = CheckCrls(run, chain, collateral);

        var tcbInfo = SelectDocument(run, TdxCollateralKind.TcbInfo, collateral, pck, ref crlChecked);
        var qeIdentity = SelectDocument(run, TdxCollateralKind.QeIdentity, collateral, pck, ref crlChecked);

        var qeLevel = qeIdentity?.QeIdentity is { } qi ? CheckQeIdentity(run, quote, qi) : null;
        if (tcbInfo?.TcbInfo is { } ti && pck is not null)
        {
            EvaluateTcb(run, quote, ti, pck, qeLevel);
        }

        return run.Result(crlChecked);
    }

    private static void SetBodyClaims(ClaimSet claims, TdxQuote quote)
    {
        var b = quote.Body;
        claims.Set("quote_version", (long)quote.Version);
        claims.Set("tee_tcb_svn", b.TeeTcbSvn.Span);
        claims.Set("mr_seam", b.MrSeam.Span);
        claims.Set("mr_signer_seam", b.MrSignerSeam.Span);
        claims.Set("seam_attributes", b.SeamAttributes.Span);
        claims.Set("td_attributes", b.TdAttributes.Span);
        claims.Set("xfam", b.Xfam.Span);
        claims.Set("mr_td", b.MrTd.Span);
        claims.Set("mr_config_id", b.MrConfigId.Span);
        claims.Set("mr_owner", b.MrOwner.Span);
        claims.Set("mr_owner_config", b.MrOwnerConfig.Span);
        claims.Set("rtmr0", b.Rtmr0.Span);
        claims.Set("rtmr1", b.Rtmr1.Span);
        claims.Set("rtmr2", b.Rtmr2.Span);
        claims.Set("rtmr3", b.Rtmr3.Span);
        claims.Set("report_data", b.ReportData.Span);
        claims.Set("debug", b.Debug);
        if (b.TeeTcbSvn2 is { } svn2 && b.MrServiceTd is { } serviceTd)
        {
            claims.Set("tee_tcb_svn2", svn2.Span);
            claims.Set("mr_service_td", serviceTd.Span);
        }
    }

    // ---- PCK certificate chain ----

    private static PckChain? CheckPckChain(Run run, TdxQuote quote)
    {
        IReadOnlyList<X509Certificate2> certs;
        try
        {
            certs = EcdsaCertificates.ParsePemCertificatesCached(quote.PckCertChainPem, strict: true);
        }
        catch (FormatException ex)
        {
            run.Fail(ReasonCodes.CertificateInvalid, "PCK certificate chain in the quote: " + ex.Message);
            return null;
        }

        // Certification data type 5 is the whole chain: PCK certificate, PCK Platform/Processor CA, root.
        if (certs.Count != 3)
        {
            run.Fail(ReasonCodes.CertChainInvalid, $"the quote carries {certs.Count} certificates; expected 3 (PCK certificate, its CA, the root)");
            return null;
        }

        var leaf = certs[0];
        var ca = certs[1];
        var at = run.Context.At;
        var trust = run.Context.Trust;

        var root = certs[2];
        var anchor = trust.FindAnchor(root);
        if (anchor is null || anchor.Vendor != TrustVendor.Intel)
        {
            run.Fail(ReasonCodes.UntrustedRoot, $"the PCK chain ends in {EcdsaCertificates.Describe(root)}, which is not a pinned Intel root (pinning is by exact certificate, not by name)");
            anchor = null;
        }

        if (anchor is { Simulated: true })
        {
            run.MarkSimulated($"the PCK chain ends in the simulated root {EcdsaCertificates.Describe(anchor.Certificate)}");
        }

        var caName = ca.GetNameInfo(X509NameType.SimpleName, false);
        var caType = caName switch
        {
            PlatformCaName => "platform",
            ProcessorCaName => "processor",
            _ => null,
        };
        if (caType is null)
        {
            run.Fail(ReasonCodes.CertChainInvalid, $"the PCK certificate's CA is '{caName}', neither '{PlatformCaName}' nor '{ProcessorCaName}'");
        }

        if (!EcdsaCertificates.IsSignedBy(root, root) || !EcdsaCertificates.MaySignCertificates(root))
        {
            run.Fail(ReasonCodes.CertChainInvalid, $"the root {EcdsaCertificates.Describe(root)} is not a self-signed ECDSA P-256 CA");
        }

        if (!EcdsaCertificates.IsSignedBy(ca, root))
        {
            run.Fail(ReasonCodes.CertChainInvalid, $"{EcdsaCertificates.Describe(ca)} is not signed by {EcdsaCertificates.Describe(root)}");
        }

        if (!EcdsaCertificates.MaySignCertificates(ca))
        {
            run.Fail(ReasonCodes.CertChainInvalid, $"{EcdsaCertificates.Describe(ca)} is not a CA (basic constraints / key usage)");
        }

        if (!EcdsaCertificates.IsSignedBy(leaf, ca))
        {
            run.Fail(ReasonCodes.CertChainInvalid, $"the PCK certificate {EcdsaCertificates.Describe(leaf)} is not signed by {EcdsaCertificates.Describe(ca)}");
        }

        if (EcdsaCertificates.IsCa(leaf))
        {
            run.Fail(ReasonCodes.CertChainInvalid, $"the PCK certificate {EcdsaCertificates.Describe(leaf)} claims to be a CA");
        }

        foreach (var c in new[] { leaf, ca, root }.Distinct())
        {
            if (!EcdsaCertificates.IsValidAt(c, at))
            {
                run.Fail(ReasonCodes.CertificateExpired, $"{EcdsaCertificates.Describe(c)} is valid {c.NotBefore.ToUniversalTime():O} to {c.NotAfter.ToUniversalTime():O}, not at {at.UtcDateTime:O}");
            }
        }

        var leafKey = EcdsaCertificates.SharedP256Key(leaf);
        if (leafKey is null)
        {
            run.Fail(ReasonCodes.CertificateInvalid, "the PCK certificate's key is not ECDSA P-256");
        }

        return new PckChain(leaf, ca, root, anchor, caType ?? "platform", leafKey);
    }

    // ---- Quote signature and QE report ----

    private static void CheckQuoteSignature(Run run, TdxQuote quote)
    {
        var key = P256.SharedPublicKey(quote.AttestationKey.Span);
        if (key is null)
        {
            run.Fail(ReasonCodes.AttestationKeyInvalid, "the attestation key is not a point on P-256");
            return;
        }

        if (!P256.Verify(key, quote.SignedBytes.Span, quote.QuoteSignature.Span))
        {
            run.Fail(ReasonCodes.QuoteSignatureInvalid, $"the quote signature does not verify with the attestation key over bytes [0, {quote.SignedLength})");
        }
    }

    private static void CheckQeReport(Run run, TdxQuote quote, PckChain? chain)
    {
        if (!quote.IsIntelQe)
        {
            run.Fail(ReasonCodes.QeIdentityMismatch, $"QE vendor ID {Convert.ToHexStringLower(quote.QeVendorId.Span)} is not Intel's ({Convert.ToHexStringLower(TdxQuoteLayout.IntelQeVendorId)})");
        }

        if (chain?.LeafKey is { } pckKey)
        {
            if (!P256.Verify(pckKey, quote.QeReport.Raw.Span, quote.QeReportSignature.Span))
            {
                run.Fail(ReasonCodes.QeReportSignatureInvalid, "the QE report signature does not verify with the PCK certificate's key");
            }
        }

        Span<byte> expected = stackalloc byte[64];
        expected.Clear();
        using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            sha.AppendData(quote.AttestationKey.Span);
            sha.AppendData(quote.QeAuthData.Span);
            sha.GetHashAndReset(expected[..32]);
        }

        if (!CryptographicOperations.FixedTimeEquals(expected, quote.QeReport.ReportData.Span))
        {
            run.Fail(ReasonCodes.QeReportDataMismatch, "QE REPORTDATA is not SHA-256(attestation key ‖ QE authentication data) ‖ 32 zero bytes");
        }
    }

    // ---- Collateral ----

    private async Task<TdxCollateral> GetCollateralAsync(Run run, PckCertificateExtensions? pck, PckChain? chain, CancellationToken ct)
    {
        if (_collateral is null)
        {
            return TdxCollateral.Empty;
        }

        var request = new TdxCollateralRequest(pck?.FmspcHex ?? string.Empty, pck?.PceIdHex ?? string.Empty, chain?.CaType ?? "platform", run.Context.At);
        try
        {
            return await _collateral.GetAsync(request, ct).ConfigureAwait(false) ?? TdxCollateral.Empty;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
#pragma warning disable CA1031 // A collateral source failure of any kind is reported as a reason, never thrown at the caller.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            run.Fail(ReasonCodes.CollateralUnavailable, "TDX collateral could not be obtained: " + ex.Message);
            return TdxCollateral.Empty;
        }
    }

    private static bool CheckCrls(Run run, PckChain? chain, TdxCollateral collateral)
    {
        if (run.Context.SkipCrl)
        {
            run.Note(ReasonCodes.CrlNotChecked, "revocation was not checked (CRL checks skipped by request)");
            return false;
        }

        if (chain is null)
        {
            return false;
        }

        var ok = CheckRevocation(run, chain.Ca, chain.Root, collateral, "Root CA CRL");
        ok &= CheckRevocation(run, chain.Leaf, chain.Ca, collateral, "PCK CRL");
        return ok;
    }

    private static bool CheckRevocation(Run run, X509Certificate2 cert, X509Certificate2 issuer, TdxCollateral collateral, string what)
    {
        var outcome = CrlSupport.Check(cert, issuer, collateral.Crls, run.Context.At, out var detail);
        switch (outcome)
        {
            case CrlOutcome.NotRevoked:
                return true;
            case CrlOutcome.Revoked:
                run.Fail(ReasonCodes.CertificateRevoked, detail);
                break;
            case CrlOutcome.Missing:
                run.Fail(ReasonCodes.CrlMissing, $"{what}: {detail}");
                break;
            case CrlOutcome.Expired:
                run.Fail(ReasonCodes.CrlExpired, $"{what}: {detail}");
                break;
            default:
                run.Fail(ReasonCodes.CrlInvalid, $"{what}: {detail}");
                break;
        }

        return false;
    }

    /// <summary>
    /// Picks the TCB Info (or QE Identity) to use: candidates in rank order, the first that passes every check wins;
    /// when none does, the first candidate's failures are reported, and its content is still used for evaluation
    /// when its signature verified and it is the right kind of document for this platform.
    /// </summary>
    private static CheckedDocument? SelectDocument(Run run, TdxCollateralKind kind, TdxCollateral collateral, PckCertificateExtensions? pck, ref bool crlChecked)
    {
        var name = kind == TdxCollateralKind.TcbInfo ? "TCB Info" : "QE Identity";
        var docs = kind == TdxCollateralKind.TcbInfo ? collateral.TcbInfos : collateral.QeIdentities;
        if (docs.Count == 0)
        {
            run.Fail(ReasonCodes.CollateralMissing, kind == TdxCollateralKind.TcbInfo
                ? $"no TDX TCB Info{(pck is null ? string.Empty : " for FMSPC " + pck.FmspcHex)} was supplied"
                : "no TD QE Identity was supplied");
            return null;
        }

        var ranked = TdxCollateralRanking.Rank(docs, kind == TdxCollateralKind.TcbInfo ? pck?.FmspcHex : null, run.Context.At);
        CheckedDocument? first = null;
        foreach (var doc in ranked)
        {
            var checkedDoc = CheckDocument(run, doc, collateral, pck);
            if (checkedDoc.Failures.Count == 0)
            {
                if (checkedDoc.Signer is { } signer && !run.Context.SkipCrl)
                {
                    crlChecked &= CheckRevocation(run, signer.Certificate, signer.Anchor.Certificate, collateral, $"Root CA CRL (for the {name} signer)");
                }

                if (checkedDoc.Signer?.Anchor.Simulated == true)
                {
                    run.MarkSimulated($"the {name} signer chains to a simulated root");
                }

                return checkedDoc;
            }

            first ??= checkedDoc;
        }

        foreach (var (code, message) in first!.Failures)
        {
            run.Fail(code, $"{name} from {first.Document.Source}: {message}");
        }

        return first.ContentUsable ? first : null;
    }

    private static CheckedDocument CheckDocument(Run run, SignedCollateralDocument doc, TdxCollateral collateral, PckCertificateExtensions? pck)
    {
        var at = run.Context.At;
        var failures = new List<(string, string)>();
        TdxTcbInfo? tcbInfo = null;
        TdQeIdentity? qeIdentity = null;
        DateTimeOffset issue, next;
        var rightKind = true;
        try
        {
            if (doc.Kind == TdxCollateralKind.TcbInfo)
            {
                tcbInfo = doc.ReadTcbInfo();
                (issue, next) = (tcbInfo.IssueDate, tcbInfo.NextUpdate);
                if (tcbInfo.Id != "TDX" || tcbInfo.Version != 3)
                {
                    failures.Add((ReasonCodes.CollateralMismatch, $"id '{tcbInfo.Id}' version {tcbInfo.Version} is not a TDX TCB Info v3"));
                    rightKind = false;
                }

                if (pck is not null && (!string.Equals(tcbInfo.Fmspc, pck.FmspcHex, StringComparison.OrdinalIgnoreCase) || !string.Equals(tcbInfo.PceId, pck.PceIdHex, StringComparison.OrdinalIgnoreCase)))
                {
                    failures.Add((ReasonCodes.CollateralMismatch, $"FMSPC {tcbInfo.Fmspc} / PCE-ID {tcbInfo.PceId} do not match the PCK certificate's {pck.FmspcHex} / {pck.PceIdHex}"));
                    rightKind = false;
                }
            }
            else
            {
                qeIdentity = doc.ReadQeIdentity();
                (issue, next) = (qeIdentity.IssueDate, qeIdentity.NextUpdate);
                if (qeIdentity.Id != "TD_QE" || qeIdentity.Version != 2)
                {
                    failures.Add((ReasonCodes.CollateralMismatch, $"id '{qeIdentity.Id}' version {qeIdentity.Version} is not a TD QE Identity v2"));
                    rightKind = false;
                }
            }
        }
        catch (FormatException ex)
        {
            failures.Add((ReasonCodes.CollateralInvalid, ex.Message));
            return new CheckedDocument(doc, null, null, null, failures, ContentUsable: false);
        }

        if (at < issue || at >= next)
        {
            failures.Add((ReasonCodes.CollateralExpired, $"valid {issue:O} to {next:O}, not at {at.UtcDateTime:O}"));
        }

        var signer = FindSigner(run, doc, collateral, out var signerFailure);
        if (signer is null)
        {
            failures.Add(signerFailure!.Value);
        }

        return new CheckedDocument(doc, tcbInfo, qeIdentity, signer, failures, ContentUsable: signer is not null && rightKind);
    }

    /// <summary>
    /// The certificate that signed the document: a candidate (from the document's issuer chain or any collateral
    /// certificate) signed by a pinned Intel root, valid at the verification time (as is the root), whose key verifies
    /// the signature over the exact signed bytes. Certificates are never deduplicated by serial: Intel re-issued the
    /// TCB Signing certificate in 2025 with the same key and serial but a new validity period.
    /// </summary>
    private static Signer? FindSigner(Run run, SignedCollateralDocument doc, TdxCollateral collateral, out (string Code, string Message)? failure)
    {
        var at = run.Context.At;
        var anchors = run.Context.Trust.Anchors.Where(a => a.Vendor == TrustVendor.Intel).ToList();
        var candidates = doc.IssuerChain.Concat(collateral.Certificates)
            .DistinctBy(c => c.Thumbprint, StringComparer.Ordinal) // SHA-1 of the DER, computed once per certificate object
            .Where(c => run.Context.Trust.FindAnchor(c) is null)
            .ToList();

        var chained = new List<Signer>();
        foreach (var c in candidates)
        {
            foreach (var a in anchors)
            {
                if (EcdsaCertificates.IsSignedBy(c, a.Certificate) && !EcdsaCertificates.IsCa(c))
                {
                    chained.Add(new Signer(c, a));
                }
            }
        }

        if (chained.Count == 0)
        {
            failure = (ReasonCodes.CollateralSignerUntrusted, $"none of the {candidates.Count} candidate signing certificates is signed by a pinned Intel root");
            return null;
        }

        var inDate = chained.Where(s => EcdsaCertificates.IsValidAt(s.Certificate, at) && EcdsaCertificates.IsValidAt(s.Anchor.Certificate, at)).ToList();
        if (inDate.Count == 0)
        {
            var periods = string.Join(", ", chained.Select(s => $"{s.Certificate.NotBefore.ToUniversalTime():O} to {s.Certificate.NotAfter.ToUniversalTime():O}"));
            failure = (ReasonCodes.CollateralSignerUntrusted, $"no signing certificate that chains to the pinned root is valid at {at.UtcDateTime:O} (found: {periods})");
            return null;
        }

        foreach (var s in inDate)
        {
            if (doc.IsSignedBy(s.Certificate))
            {
                failure = null;
                return s;
            }
        }

        // Signed, but by a certificate that does not chain to a pinned root (a look-alike signer)?
        foreach (var c in candidates.Where(c => !chained.Exists(s => ReferenceEquals(s.Certificate, c))))
        {
            if (doc.IsSignedBy(c))
            {
                failure = (ReasonCodes.CollateralSignerUntrusted, $"signed by {EcdsaCertificates.Describe(c)}, which is not signed by a pinned Intel root");
                return null;
            }
        }

        failure = (ReasonCodes.CollateralSignatureInvalid, doc.Signature.Length == 64
            ? $"the signature does not verify over the signed JSON with {EcdsaCertificates.Describe(inDate[0].Certificate)}"
            : "the signature is not 64 bytes of hex (r ‖ s)");
        return null;
    }

    // ---- QE identity and TCB ----

    private static IsvSvnTcbLevel? CheckQeIdentity(Run run, TdxQuote quote, TdQeIdentity identity)
    {
        var qe = quote.QeReport;
        if (!qe.MrSigner.Span.SequenceEqual(identity.MrSigner))
        {
            run.Fail(ReasonCodes.QeIdentityMismatch, $"QE MRSIGNER {Convert.ToHexStringLower(qe.MrSigner.Span)} is not {Convert.ToHexStringLower(identity.MrSigner)}");
        }

        if (qe.IsvProdId != identity.IsvProdId)
        {
            run.Fail(ReasonCodes.QeIdentityMismatch, $"QE ISVPRODID {qe.IsvProdId} is not {identity.IsvProdId}");
        }

        if ((qe.MiscSelect & identity.MiscSelectMask) != identity.MiscSelect)
        {
            run.Fail(ReasonCodes.QeIdentityMismatch, $"QE MISCSELECT 0x{qe.MiscSelect:x8} under mask 0x{identity.MiscSelectMask:x8} is not 0x{identity.MiscSelect:x8}");
        }

        var attributes = qe.Attributes.Span;
        for (var i = 0; i < 16; i++)
        {
            if ((attributes[i] & identity.AttributesMask[i]) != identity.Attributes[i])
            {
                run.Fail(ReasonCodes.QeIdentityMismatch, $"QE ATTRIBUTES {Convert.ToHexStringLower(attributes)} under mask {Convert.ToHexStringLower(identity.AttributesMask)} are not {Convert.ToHexStringLower(identity.Attributes)}");
                break;
            }
        }

        var level = TdxTcbEvaluator.QeLevel(identity, qe.IsvSvn);
        if (level is null)
        {
            run.Fail(ReasonCodes.QeTcbNotSupported, $"no QE Identity TCB level is met by QE ISVSVN {qe.IsvSvn}");
            return null;
        }

        run.Claims.Set("qe_tcb_status", level.TcbStatus);
        if (level.TcbStatus == TcbStatusNames.Revoked)
        {
            run.Fail(ReasonCodes.QeTcbRevoked, $"the QE TCB level for ISVSVN {qe.IsvSvn} (isvsvn {level.IsvSvn}) is Revoked");
        }

        return level;
    }

    private static void EvaluateTcb(Run run, TdxQuote quote, TdxTcbInfo tcbInfo, PckCertificateExtensions pck, IsvSvnTcbLevel? qeLevel)
    {
        var b = quote.Body;

        // The platform status is computed from TEE_TCB_SVN for both TDX 1.0 and 1.5 bodies, as Intel's QVL does:
        // it is the SVN of the TDX module the TD was created on, so it is the conservative one. TEE_TCB_SVN2 (TD 1.5:
        // the module after TD-preserving updates) is evaluated the same way (also converged with the QE status) only to
        // turn an out-of-date result into TDRelaunchAdvised[ConfigurationNeeded], which tells policy that relaunching
        // the TD would bring it up to date; it never makes a status better than that.
        var evaluation = TdxTcbEvaluator.EvaluatePlatform(tcbInfo, pck, b.TeeTcbSvn.Span, b.MrSignerSeam.Span, b.SeamAttributes.Span);
        if (!evaluation.Succeeded)
        {
            run.Fail(evaluation.FailureCode!, evaluation.FailureMessage!);
            return;
        }

        var status = evaluation.Status!;
        if (status == TcbStatusNames.Revoked)
        {
            run.Fail(ReasonCodes.TcbRevoked, $"the platform TCB level (tcbDate {evaluation.Level?.TcbDate:O}) is Revoked");
        }

        var advisories = evaluation.AdvisoryIds.ToList();
        if (qeLevel is not null)
        {
            status = TdxTcbEvaluator.Converge(status, qeLevel.TcbStatus);
            advisories.AddRange(qeLevel.AdvisoryIds);
        }

        if (b.TeeTcbSvn2 is { } svn2 && status is TcbStatusNames.OutOfDate or TcbStatusNames.OutOfDateConfigurationNeeded)
        {
            var current = TdxTcbEvaluator.EvaluatePlatform(tcbInfo, pck, svn2.Span, b.MrSignerSeam.Span, b.SeamAttributes.Span);
            var currentStatus = current.Status is { } cs && qeLevel is not null ? TdxTcbEvaluator.Converge(cs, qeLevel.TcbStatus) : current.Status;
            status = TdxTcbEvaluator.CheckForRelaunch(status, currentStatus);
        }

        run.Claims.Set("tcb_status", status);
        var array = new JsonArray();
        foreach (var id in advisories.Distinct(StringComparer.Ordinal))
        {
            array.Add(id);
        }

        run.Claims.Set("advisory_ids", array);
    }

    private sealed record PckChain(X509Certificate2 Leaf, X509Certificate2 Ca, X509Certificate2 Root, TrustAnchor? Anchor, string CaType, ECDsa? LeafKey);

    private sealed record Signer(X509Certificate2 Certificate, TrustAnchor Anchor);

    private sealed record CheckedDocument(SignedCollateralDocument Document, TdxTcbInfo? TcbInfo, TdQeIdentity? QeIdentity, Signer? Signer, List<(string Code, string Message)> Failures, bool ContentUsable);

    private sealed class Run(VerificationContext context)
    {
        private readonly List<VerificationReason> _reasons = [];
        private readonly List<VerificationReason> _notes = [];
        private bool _simulated;

        public VerificationContext Context { get; } = context;

        public ClaimSet Claims { get; } = new();

        public void Fail(string code, string message)
        {
            if (!_reasons.Exists(r => r.Code == code && r.Message == message))
            {
                _reasons.Add(new VerificationReason(code, message));
            }
        }

        public void Note(string code, string message) => _notes.Add(new VerificationReason(code, message));

        public void MarkSimulated(string message)
        {
            if (!_simulated)
            {
                _simulated = true;
                Note(ReasonCodes.SimulatedRoot, message);
            }
        }

        public VerificationResult Result(bool crlChecked) => new(TeeKind.Tdx, _reasons, _notes, Claims, _simulated, crlChecked);
    }
}
