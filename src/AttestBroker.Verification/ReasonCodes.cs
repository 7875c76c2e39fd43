namespace AttestBroker.Verification;

/// <summary>
/// The stable reason codes of verification (docs/claims.md lists them with their meaning). A code names the check
/// that failed; the message says what was found. Codes are part of the interface: the simulator's faults, the
/// broker's problem types and users' scripts depend on them, so they are never renamed.
/// </summary>
public static class ReasonCodes
{
    // Input
    public const string MalformedEvidence = "malformed_evidence";
    public const string UnknownTee = "unknown_tee";
    public const string UnsupportedEvidence = "unsupported_evidence";

    // Shared: certificates and roots
    public const string UntrustedRoot = "untrusted_root";
    public const string CertChainInvalid = "cert_chain_invalid";
    public const string CertificateExpired = "certificate_expired";
    public const string CertificateRevoked = "certificate_revoked";
    public const string CertificateInvalid = "certificate_invalid";

    // Shared: collateral (TCB Info, QE Identity, CRLs, VCEK/ASK/ARK)
    public const string CollateralMissing = "collateral_missing";
    public const string CollateralExpired = "collateral_expired";
    public const string CollateralInvalid = "collateral_invalid";
    public const string CollateralSignatureInvalid = "collateral_signature_invalid";
    public const string CollateralSignerUntrusted = "collateral_signer_untrusted";
    public const string CollateralMismatch = "collateral_mismatch";
    public const string CollateralUnavailable = "collateral_unavailable";
    public const string CrlMissing = "crl_missing";
    public const string CrlInvalid = "crl_invalid";
    public const string CrlExpired = "crl_expired";

    // TDX
    public const string QuoteSignatureInvalid = "quote_signature_invalid";
    public const string AttestationKeyInvalid = "attestation_key_invalid";
    public const string QeReportSignatureInvalid = "qe_report_signature_invalid";
    public const string QeReportDataMismatch = "qe_report_data_mismatch";
    public const string QeIdentityMismatch = "qe_identity_mismatch";
    public const string QeTcbRevoked = "qe_tcb_revoked";
    public const string QeTcbNotSupported = "qe_tcb_not_supported";
    public const string TcbLevelNotSupported = "tcb_level_not_supported";
    public const string TcbRevoked = "tcb_revoked";
    public const string TdxModuleMismatch = "tdx_module_mismatch";

    // SEV-SNP
    public const string ReportSignatureInvalid = "report_signature_invalid";
    public const string SigningKeyMissing = "signing_key_missing";
    public const string ProductMismatch = "product_mismatch";
    public const string TcbMismatch = "tcb_mismatch";
    public const string ChipIdMismatch = "chip_id_mismatch";
    public const string UnsupportedSignatureAlgorithm = "unsupported_signature_algorithm";

    // Notes (not failures)
    public const string TrailingBytes = "trailing_bytes";
    public const string CrlNotChecked = "crl_not_checked";
    public const string SimulatedRoot = "simulated_root";
}
