using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Evidence.Snp;
using L = AttestBroker.Evidence.Snp.SnpReportLayout;

namespace AttestBroker.Verification.Snp;

/// <summary>
/// Verifies SEV-SNP ATTESTATION_REPORTs: the ECDSA P-384 report signature by the VCEK or VLEK, the chain
/// VCEK -> ASK -> ARK (or VLEK -> ASVK -> ARK) with RSASSA-PSS SHA-384 verified here, the ARK pinned by exact DER,
/// validity at the verification time, the AMD extensions (product, TCB SPLs, hwID) against the report, and an AMD CRL
/// when one is supplied. Every failed check becomes a reason; nothing here throws for bad evidence.
/// </summary>
public sealed class SnpVerifier : IEvidenceVerifier
{
    private const string P384Oid = "1.3.132.0.34";
    private readonly ISnpCertificateProvider? _certificates;

    /// <param name="certificates">Where VCEK/VLEK and chains come from (files, KDS); null: none (verification then fails with signing_key_missing).</param>
    public SnpVerifier(ISnpCertificateProvider? certificates)
    {
        _certificates = certificates;
    }

    public TeeKind Kind => TeeKind.SevSnp;

    public async Task<VerificationResult> VerifyAsync(ReadOnlyMemory<byte> evidence, VerificationContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        SnpReport report;
        try
        {
            report = SnpReport.Parse(evidence.Span);
        }
        catch (EvidenceFormatException e)
        {
            return Malformed(e);
        }

        var collateral = SnpCollateral.Empty;
        if (_certificates is not null)
        {
            try
            {
                collateral = await _certificates.GetCollateralAsync(report, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
#pragma warning disable CA1031 // a provider failure is a reason in the result, never an exception out of the verifier
            catch (Exception e)
#pragma warning restore CA1031
            {
                collateral = new SnpCollateral { Notes = [new VerificationReason(ReasonCodes.CollateralUnavailable, "SNP certificates could not be obtained: " + e.Message)] };
            }
        }

        return Verify(report, collateral, context);
    }

    /// <summary>Parses and verifies with the given collateral (no provider, no I/O).</summary>
    public static VerificationResult Verify(ReadOnlySpan<byte> evidence, SnpCollateral collateral, VerificationContext context)
    {
        SnpReport report;
        try
        {
            report = SnpReport.Parse(evidence);
        }
        catch (EvidenceFormatException e)
        {
            return Malformed(e);
        }

        return Verify(report, collateral, context);
    }

    /// <summary>Verifies a parsed report with the given collateral (no I/O).</summary>
    public static VerificationResult Verify(SnpReport report, SnpCollateral collateral, VerificationContext context)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(collateral);
        ArgumentNullException.ThrowIfNull(context);
        var run = new Run(report, collateral, context);
        try
        {
            run.Execute();
        }
        catch (Exception e) when (e is CryptographicException or FormatException or ArgumentException or InvalidOperationException or NotSupportedException or OverflowException)
        {
            // Defence in depth: an unexpected failure inside a check must reject, never escape.
            run.Reasons.Add(new(ReasonCodes.CertificateInvalid, "verification could not be completed: " + e.Message));
        }

        run.SetClaims();
        return new VerificationResult(TeeKind.SevSnp, run.Reasons, run.Notes, run.Claims, run.Simulated, run.CrlChecked);
    }

    private static VerificationResult Malformed(EvidenceFormatException e)
    {
        var code = e.Field == "SIGNATURE_ALGO" ? ReasonCodes.UnsupportedSignatureAlgorithm : ReasonCodes.MalformedEvidence;
        return new VerificationResult(TeeKind.SevSnp, [new VerificationReason(code, e.Message)], [], new ClaimSet(), false, false);
    }

    /// <summary>Product named by a CA certificate: byte-equal to a pinned one, or by its common name (ARK-x, SEV-x, SEV-VLEK-x).</summary>
    private static SnpProduct ProductOfCa(X509Certificate2 cert, TrustStore trust)
    {
        var known = trust.FindAnchor(cert)?.Product
            ?? trust.KnownIntermediates.FirstOrDefault(i => i.Certificate.RawDataMemory.Span.SequenceEqual(cert.RawDataMemory.Span))?.Product;
        if (known is not null)
        {
            return SnpProducts.FromName(known);
        }

        var cn = cert.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        foreach (var prefix in new[] { "ARK-", "SEV-VLEK-", "SEV-", "ASK-", "ASVK-" })
        {
            if (cn.StartsWith(prefix, StringComparison.Ordinal))
            {
                return SnpProducts.FromName(cn[prefix.Length..]);
            }
        }

        return SnpProduct.Unknown;
    }

    private static bool SameName(X500DistinguishedName a, X500DistinguishedName b) => a.RawData.AsSpan().SequenceEqual(b.RawData);

    private static bool IsSelfIssued(X509Certificate2 c) => SameName(c.SubjectName, c.IssuerName);

    private static bool IsCa(X509Certificate2 c) =>
        c.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is { CertificateAuthority: true };

    /// <summary>Endorsement keys already loaded, per certificate object (a platform's VCEK signs all its reports).</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<X509Certificate2, System.Runtime.CompilerServices.StrongBox<ECDsa?>> EndorsementKeys = new();

    /// <summary>
    /// The certificate's EC P-384 public key, or null when it has another kind of key. Loaded once per certificate and
    /// shared between verifications (verification only, which OpenSSL runs on a context of its own per call); never disposed by callers.
    /// </summary>
    private static ECDsa? SharedP384Key(X509Certificate2 certificate) =>
        EndorsementKeys.GetValue(certificate, c =>
        {
            var key = c.GetECDsaPublicKey();
            if (key is not null && key.ExportParameters(false).Curve.Oid?.Value != P384Oid)
            {
                key.Dispose();
                key = null;
            }

            return new System.Runtime.CompilerServices.StrongBox<ECDsa?>(key);
        }).Value;

    private static BigInteger Serial(X509Certificate2 c) => new(c.SerialNumberBytes.Span, isUnsigned: false, isBigEndian: true);

    private sealed class Run(SnpReport report, SnpCollateral collateral, VerificationContext context)
    {
        public List<VerificationReason> Reasons { get; } = [];

        public List<VerificationReason> Notes { get; } = [.. collateral.Notes];

        public ClaimSet Claims { get; } = new();

        public bool Simulated { get; private set; }

        public bool CrlChecked { get; private set; }

        private SnpProduct _product = report.ProductFromCpuid;
        private X509Certificate2? _intermediate;
        private TrustAnchor? _anchor;

        private bool IsVlek => report.SigningKey == SnpSigningKey.Vlek;

        private string KeyName => IsVlek ? "VLEK" : "VCEK";

        private void Fail(string code, string message) => Reasons.Add(new(code, message));

        public void Execute()
        {
            var cpuidProduct = report.ProductFromCpuid;
            if (report.Version >= 3 && cpuidProduct == SnpProduct.Unknown)
            {
                Fail(ReasonCodes.UnsupportedEvidence, $"CPUID family 0x{report.CpuidFamilyId:x2} model 0x{report.CpuidModelId:x2} is not a product with AMD KDS certificates (Milan, Genoa, Turin)");
            }

            if (report.SigningKey == SnpSigningKey.None)
            {
                Fail(ReasonCodes.SigningKeyMissing, "the report is not signed (SIGNING_KEY = 7, none)");
                return;
            }

            var ek = collateral.EndorsementKey;
            if (ek is null)
            {
                Fail(ReasonCodes.SigningKeyMissing, $"no {KeyName} certificate was supplied or could be fetched for this report");
                NoteCrlNotChecked("no chain to check revocation for");
                return;
            }

            AmdCertificateExtensions ext;
            try
            {
                ext = AmdCertificateExtensions.Read(ek);
            }
            catch (FormatException e)
            {
                Fail(ReasonCodes.CertificateInvalid, $"{KeyName} certificate: {e.Message}");
                return;
            }

            if (!CheckKeyKind(ek, ext))
            {
                NoteCrlNotChecked("no usable endorsement certificate");
                return;
            }

            var certProduct = ext.Product;
            if (ext.ProductName is null)
            {
                Fail(ReasonCodes.CertificateInvalid, $"{KeyName} certificate lacks the productName extension ({AmdCertificateExtensions.ProductNameOid})");
            }
            else if (certProduct == SnpProduct.Unknown)
            {
                Fail(ReasonCodes.ProductMismatch, $"{KeyName} productName \"{ext.ProductName}\" is not Milan, Genoa or Turin");
            }
            else if (cpuidProduct != SnpProduct.Unknown && certProduct != cpuidProduct)
            {
                Fail(ReasonCodes.ProductMismatch, $"the report's CPUID says {cpuidProduct} but the {KeyName} is for {ext.ProductName}");
            }

            if (_product == SnpProduct.Unknown)
            {
                _product = certProduct;
            }

            VerifyReportSignature(ek);
            BuildChain(ek, certProduct == SnpProduct.Unknown ? cpuidProduct : certProduct);
            CheckTcb(ext);
            CheckChipId(ext);
            CheckRevocation(ek);
        }

        private bool CheckKeyKind(X509Certificate2 ek, AmdCertificateExtensions ext)
        {
            if (!IsVlek && ext.CspId is not null)
            {
                Fail(ReasonCodes.SigningKeyMissing, "the report is signed by the VCEK but the supplied endorsement certificate is a VLEK (it carries cspId)");
                return false;
            }

            if (IsVlek && ext.HwId is not null)
            {
                Fail(ReasonCodes.SigningKeyMissing, "the report is signed by the VLEK but the supplied endorsement certificate is a VCEK (it carries hwID)");
                return false;
            }

            if (SharedP384Key(ek) is null)
            {
                Fail(ReasonCodes.CertificateInvalid, $"the {KeyName} certificate's key is not an EC P-384 key");
                return false;
            }

            return true;
        }

        private void VerifyReportSignature(X509Certificate2 ek)
        {
            if (!report.SignatureHighBytesZero)
            {
                Fail(ReasonCodes.ReportSignatureInvalid, "bytes 48-71 of the signature's R or S field are not zero");
                return;
            }

            Span<byte> rs = stackalloc byte[2 * L.SignatureScalarSize];
            report.SignatureR.Span[..L.SignatureScalarSize].CopyTo(rs);
            report.SignatureS.Span[..L.SignatureScalarSize].CopyTo(rs[L.SignatureScalarSize..]);
            rs[..L.SignatureScalarSize].Reverse();
            rs[L.SignatureScalarSize..].Reverse();
            var key = SharedP384Key(ek)!;
            if (!key.VerifyData(report.SignedBytes.Span, rs, HashAlgorithmName.SHA384, DSASignatureFormat.IeeeP1363FixedFieldConcatenation))
            {
                Fail(ReasonCodes.ReportSignatureInvalid, $"the report signature does not verify under the {KeyName} ({ek.Subject}, serial {ek.SerialNumber})");
            }
        }

        private void BuildChain(X509Certificate2 ek, SnpProduct leafProduct)
        {
            var trust = context.Trust;
            var supplied = collateral.Chain.Where(c => !c.RawDataMemory.Span.SequenceEqual(ek.RawDataMemory.Span)).ToList();
            var suppliedIntermediates = supplied.Where(c => !IsSelfIssued(c)).ToList();
            var intermediates = suppliedIntermediates.Count > 0
                ? suppliedIntermediates
                : trust.KnownIntermediates.Where(a => a.Vendor == TrustVendor.Amd).Select(a => a.Certificate).ToList();
            var roots = supplied.Where(IsSelfIssued).Concat(trust.Anchors.Where(a => a.Vendor == TrustVendor.Amd).Select(a => a.Certificate)).ToList();
            var caName = IsVlek ? "ASVK" : "ASK";

            // Leaf -> intermediate.
            var named = intermediates.Where(c => SameName(c.SubjectName, ek.IssuerName)).ToList();
            if (named.Count == 0)
            {
                var chainProducts = supplied.Select(c => ProductOfCa(c, trust)).Where(p => p != SnpProduct.Unknown).Distinct().ToList();
                if (leafProduct != SnpProduct.Unknown && chainProducts.Count > 0 && !chainProducts.Contains(leafProduct))
                {
                    Fail(ReasonCodes.ProductMismatch, $"the {KeyName} is for {leafProduct} but the supplied chain is for {string.Join(", ", chainProducts)}");
                }
                else if (suppliedIntermediates.Count == 0)
                {
                    // Nothing supplied and no pinned intermediate issued it: the chain ends in an issuer nobody trusts.
                    Fail(ReasonCodes.UntrustedRoot, $"the {KeyName}'s issuer ({ek.Issuer}) is neither supplied nor a pinned AMD {caName}");
                }
                else
                {
                    Fail(ReasonCodes.CertChainInvalid, $"the {KeyName}'s issuer ({ek.Issuer}) is not among the supplied {caName} certificates");
                }

                return;
            }

            _intermediate = named.FirstOrDefault(c => AmdRsaPss.VerifyCertificate(ek, c) is null);
            if (_intermediate is null)
            {
                Fail(ReasonCodes.CertChainInvalid, $"the {KeyName} signature does not verify under {ek.Issuer}: {AmdRsaPss.VerifyCertificate(ek, named[0])}");
                return;
            }

            var intermediateCn = _intermediate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
            if (IsVlek != intermediateCn.StartsWith("SEV-VLEK-", StringComparison.Ordinal) && intermediateCn.StartsWith("SEV-", StringComparison.Ordinal))
            {
                Fail(ReasonCodes.CertChainInvalid, $"the {KeyName} is issued by {intermediateCn}, which is not an {caName}");
            }

            if (!IsCa(_intermediate))
            {
                Fail(ReasonCodes.CertChainInvalid, $"{_intermediate.Subject} is not a CA certificate (basicConstraints)");
            }

            // Intermediate -> root.
            var rootsNamed = roots.Where(c => SameName(c.SubjectName, _intermediate.IssuerName)).ToList();
            var root = rootsNamed.FirstOrDefault(c => AmdRsaPss.VerifyCertificate(_intermediate, c) is null);
            if (root is null)
            {
                var chainProduct = ProductOfCa(_intermediate, trust);
                if (rootsNamed.Count == 0 && leafProduct != SnpProduct.Unknown && chainProduct != SnpProduct.Unknown && chainProduct != leafProduct)
                {
                    Fail(ReasonCodes.ProductMismatch, $"the {caName} is for {chainProduct}, the {KeyName} for {leafProduct}");
                }
                else if (rootsNamed.Count == 0)
                {
                    Fail(ReasonCodes.UntrustedRoot, $"the {caName}'s issuer ({_intermediate.Issuer}) is not a pinned AMD root");
                }
                else
                {
                    Fail(ReasonCodes.CertChainInvalid, $"the {caName} signature does not verify under {_intermediate.Issuer}: {AmdRsaPss.VerifyCertificate(_intermediate, rootsNamed[0])}");
                }

                CheckValidity(ek, _intermediate);
                return;
            }

            _anchor = trust.FindAnchor(root);
            if (_anchor is null || _anchor.Vendor != TrustVendor.Amd)
            {
                Fail(ReasonCodes.UntrustedRoot, $"the chain ends in {root.Subject} (SHA-256 {Convert.ToHexStringLower(SHA256.HashData(root.RawData))}), which is not a pinned AMD root");
                _anchor = null;
                CheckValidity(ek, _intermediate, root);
                return;
            }

            if (AmdRsaPss.VerifyCertificate(root, root) is { } selfProblem)
            {
                Fail(ReasonCodes.CertChainInvalid, $"the root {root.Subject} is not validly self-signed: {selfProblem}");
            }

            if (_anchor.Simulated)
            {
                Simulated = true;
                Notes.Add(new(ReasonCodes.SimulatedRoot, $"the chain ends in the simulated root {root.Subject}, trusted by explicit operator setting"));
            }

            var anchorProduct = SnpProducts.FromName(_anchor.Product);
            if (anchorProduct != SnpProduct.Unknown)
            {
                if (leafProduct != SnpProduct.Unknown && anchorProduct != leafProduct)
                {
                    Fail(ReasonCodes.ProductMismatch, $"the chain ends in the {anchorProduct} root but the {KeyName} is for {leafProduct}");
                }
                else if (report.ProductFromCpuid != SnpProduct.Unknown && anchorProduct != report.ProductFromCpuid)
                {
                    Fail(ReasonCodes.ProductMismatch, $"the chain ends in the {anchorProduct} root but the report's CPUID says {report.ProductFromCpuid}");
                }

                if (_product == SnpProduct.Unknown)
                {
                    _product = anchorProduct;
                }
            }

            CheckValidity(ek, _intermediate, root);
        }

        private void CheckValidity(params X509Certificate2[] certs)
        {
            foreach (var c in certs)
            {
                var notBefore = new DateTimeOffset(c.NotBefore.ToUniversalTime(), TimeSpan.Zero);
                var notAfter = new DateTimeOffset(c.NotAfter.ToUniversalTime(), TimeSpan.Zero);
                if (context.At < notBefore || context.At > notAfter)
                {
                    Fail(ReasonCodes.CertificateExpired, $"{c.Subject} is valid {notBefore:O} to {notAfter:O}, not at {context.At.ToUniversalTime():O}");
                }
            }
        }

        private void CheckTcb(AmdCertificateExtensions ext)
        {
            var tcb = report.ReportedTcb.For(_product);
            var differences = new List<string>();
            void Compare(string name, int? spl, byte reported)
            {
                if (spl is null)
                {
                    differences.Add($"{name} missing from the certificate (report {reported})");
                }
                else if (spl.Value != reported)
                {
                    differences.Add($"{name} {spl.Value} in the certificate, {reported} in REPORTED_TCB");
                }
            }

            Compare("blSPL", ext.BootLoaderSpl, tcb.BootLoader);
            Compare("teeSPL", ext.TeeSpl, tcb.Tee);
            Compare("snpSPL", ext.SnpSpl, tcb.Snp);
            Compare("ucodeSPL", ext.MicrocodeSpl, tcb.Microcode);
            if (tcb.Fmc is { } fmc)
            {
                Compare("fmcSPL", ext.FmcSpl, fmc);
            }

            if (differences.Count > 0)
            {
                Fail(ReasonCodes.TcbMismatch, $"the {KeyName}'s TCB differs from REPORTED_TCB 0x{report.ReportedTcb.Raw:x16} ({_product}): {string.Join("; ", differences)}");
            }
        }

        private void CheckChipId(AmdCertificateExtensions ext)
        {
            if (IsVlek)
            {
                return; // a VLEK is not tied to a chip
            }

            if (report.MaskChipKey || report.ChipIdIsZero)
            {
                return; // the guest asked for the chip id to be masked; nothing to compare
            }

            if (ext.HwId is not { } hwIdMemory)
            {
                Fail(ReasonCodes.CertificateInvalid, $"the VCEK lacks the hwID extension ({AmdCertificateExtensions.HwIdOid})");
                return;
            }

            var chipId = report.ChipId.Span;
            var hwId = hwIdMemory.Span;
            var matches = hwId.Length == chipId.Length
                ? hwId.SequenceEqual(chipId)
                : hwId.Length == 8 && chipId[..8].SequenceEqual(hwId) && !chipId[8..].ContainsAnyExcept((byte)0);
            if (!matches)
            {
                Fail(ReasonCodes.ChipIdMismatch, $"the VCEK's hwID {Convert.ToHexStringLower(hwId)} differs from CHIP_ID {Convert.ToHexStringLower(chipId)}");
            }
        }

        private void NoteCrlNotChecked(string why) =>
            Notes.Add(new(ReasonCodes.CrlNotChecked, "AMD CRL not checked: " + why));

        private void CheckRevocation(X509Certificate2 ek)
        {
            if (context.SkipCrl)
            {
                NoteCrlNotChecked("skipped by request");
                return;
            }

            if (collateral.Crls.Count == 0)
            {
                NoteCrlNotChecked("none supplied (optional for SEV-SNP)");
                return;
            }

            if (_anchor is null || _intermediate is null)
            {
                NoteCrlNotChecked("the chain did not reach a pinned root");
                return;
            }

            var ark = _anchor.Certificate;
            var applied = 0;
            var sound = true;
            foreach (var raw in collateral.Crls)
            {
                var crl = AmdCrl.TryParse(raw);
                if (crl is null)
                {
                    Fail(ReasonCodes.CrlInvalid, "a supplied AMD CRL is not a well-formed X.509 CRL");
                    sound = false;
                    continue;
                }

                if (!crl.Issuer.AsSpan().SequenceEqual(ark.SubjectName.RawData))
                {
                    continue; // another product's CRL
                }

                applied++;
                if (AmdRsaPss.Verify(crl.Parts, ark) is { } problem)
                {
                    Fail(ReasonCodes.CrlInvalid, $"the AMD CRL issued by {ark.Subject} does not verify: {problem}");
                    sound = false;
                    continue;
                }

                if (context.At < crl.ThisUpdate || crl.NextUpdate is not { } next || context.At > next)
                {
                    Fail(ReasonCodes.CrlExpired, $"the AMD CRL of {ark.Subject} is valid {crl.ThisUpdate:O} to {(crl.NextUpdate is { } n ? n.ToString("O", System.Globalization.CultureInfo.InvariantCulture) : "(no nextUpdate)")}, not at {context.At.ToUniversalTime():O}");
                    sound = false;
                    continue;
                }

                if (crl.IsRevoked(Serial(_intermediate)))
                {
                    Fail(ReasonCodes.CertificateRevoked, $"{_intermediate.Subject} (serial {_intermediate.SerialNumber}) is revoked by the AMD CRL of {ark.Subject}");
                }

                if (crl.IsRevoked(Serial(ek)))
                {
                    Fail(ReasonCodes.CertificateRevoked, $"the {KeyName} (serial {ek.SerialNumber}) is listed in the AMD CRL of {ark.Subject}");
                }
            }

            if (applied == 0)
            {
                NoteCrlNotChecked($"no supplied CRL is issued by {ark.Subject}");
                return;
            }

            CrlChecked = sound;
        }

        public void SetClaims()
        {
            Claims.Set("report_version", (long)report.Version);
            Claims.Set("guest_svn", (long)report.GuestSvn);
            Claims.Set("policy", report.Policy.Raw);
            Claims.Set("debug", report.Policy.Debug);
            Claims.Set("migrate_ma", report.Policy.MigrateMa);
            Claims.Set("smt_allowed", report.Policy.SmtAllowed);
            Claims.Set("family_id", report.FamilyId.Span);
            Claims.Set("image_id", report.ImageId.Span);
            Claims.Set("vmpl", (long)report.Vmpl);
            Claims.Set("signature_algo", (long)report.SignatureAlgo);
            Claims.Set("current_tcb", Tcb(report.CurrentTcb));
            Claims.Set("reported_tcb", Tcb(report.ReportedTcb));
            Claims.Set("committed_tcb", Tcb(report.CommittedTcb));
            Claims.Set("launch_tcb", Tcb(report.LaunchTcb));
            Claims.Set("platform_info", report.PlatformInfo.Raw);
            Claims.Set("report_data", report.ReportData.Span);
            Claims.Set("measurement", report.Measurement.Span);
            Claims.Set("host_data", report.HostData.Span);
            Claims.Set("id_key_digest", report.IdKeyDigest.Span);
            Claims.Set("author_key_digest", report.AuthorKeyDigest.Span);
            Claims.Set("report_id", report.ReportId.Span);
            Claims.Set("chip_id", report.ChipId.Span);
            if (_product != SnpProduct.Unknown)
            {
                Claims.Set("product", _product.ToKdsName());
            }

            if (report.SigningKey is SnpSigningKey.Vcek or SnpSigningKey.Vlek)
            {
                Claims.Set("signing_key", report.SigningKey == SnpSigningKey.Vlek ? "vlek" : "vcek");
            }
        }

        private JsonObject Tcb(SnpTcbVersion tcb)
        {
            var c = tcb.For(_product);
            var o = new JsonObject
            {
                ["bootloader"] = (long)c.BootLoader,
                ["tee"] = (long)c.Tee,
                ["snp"] = (long)c.Snp,
                ["microcode"] = (long)c.Microcode,
            };
            if (c.Fmc is { } fmc)
            {
                o["fmc"] = (long)fmc;
            }

            return o;
        }
    }
}
