using AttestBroker.Evidence;

namespace AttestBroker.HardwareSim.Faults;

/// <summary>The named faults the simulator can put into evidence or collateral.</summary>
public enum SimFault
{
    Debug,
    WrongMrtd,
    WrongMeasurement,
    RevokedPck,
    RevokedVcek,
    TcbOutOfDate,
    TcbRevoked,
    TcbConfigurationNeeded,
    ExpiredCollateral,
    TcbInfoForeignSigner,
    QeReportDataMismatch,
    WrongReportData,
    Vmpl1,
    ProductMismatch,
    Truncated,
    BadQuoteSignature,
    BadReportSignature,
}

/// <summary>The stage that must reject a fault: the verifier (forgeries, revocation, bad collateral) or the policy (authentic but unwanted claims).</summary>
public enum FaultStage
{
    Verify,
    Policy,
}

/// <summary>Where a fault is made: in the evidence itself, or in the collateral that goes with it.</summary>
public enum FaultTarget
{
    Evidence,
    Collateral,
}

/// <summary>One line of the fault catalog: the fault, the TEE it applies to, the rejecting stage and the reason code.</summary>
public sealed record FaultInfo(SimFault Fault, string Name, TeeKind Tee, FaultStage Stage, string ReasonCode, FaultTarget Target, string Description)
{
    /// <summary>"name tee stage reason", as <c>attest-sim faults</c> prints it.</summary>
    public string ToLine() => $"{Name} {Tee.ToWireName()} {(Stage == FaultStage.Verify ? "verify" : "policy")} {ReasonCode}";
}

/// <summary>
/// The fault catalog. Verify-stage reason codes are the verifier's (<c>AttestBroker.Verification.ReasonCodes</c>);
/// policy-stage codes are the ones the broker's policy engine uses.
/// </summary>
public static class FaultCatalog
{
    // Policy-stage reason codes (the policy engine's).
    public const string DebugNotAllowed = "debug_not_allowed";
    public const string MeasurementMismatch = "measurement_mismatch";
    public const string ReportDataMismatch = "report_data_mismatch";
    public const string VmplNotAllowed = "vmpl_not_allowed";
    public const string TcbStatusNotAllowed = "tcb_status_not_allowed";

    // Verify-stage reason codes (identical strings to AttestBroker.Verification.ReasonCodes; the simulator does not depend on the verifier).
    public const string CertificateRevoked = "certificate_revoked";
    public const string TcbRevoked = "tcb_revoked";
    public const string CollateralExpired = "collateral_expired";
    public const string CrlExpired = "crl_expired";
    public const string CollateralSignerUntrusted = "collateral_signer_untrusted";
    public const string QeReportDataMismatch = "qe_report_data_mismatch";
    public const string ProductMismatch = "product_mismatch";
    public const string MalformedEvidence = "malformed_evidence";
    public const string QuoteSignatureInvalid = "quote_signature_invalid";
    public const string ReportSignatureInvalid = "report_signature_invalid";

    private static readonly FaultInfo[] Entries =
    [
        new(SimFault.Debug, "debug", TeeKind.Tdx, FaultStage.Policy, DebugNotAllowed, FaultTarget.Evidence, "TDATTRIBUTES.DEBUG set"),
        new(SimFault.Debug, "debug", TeeKind.SevSnp, FaultStage.Policy, DebugNotAllowed, FaultTarget.Evidence, "guest POLICY.DEBUG set"),
        new(SimFault.WrongMrtd, "wrong-mrtd", TeeKind.Tdx, FaultStage.Policy, MeasurementMismatch, FaultTarget.Evidence, "MRTD differs from the profile's"),
        new(SimFault.WrongMeasurement, "wrong-measurement", TeeKind.SevSnp, FaultStage.Policy, MeasurementMismatch, FaultTarget.Evidence, "MEASUREMENT differs from the profile's"),
        new(SimFault.RevokedPck, "revoked-pck", TeeKind.Tdx, FaultStage.Verify, CertificateRevoked, FaultTarget.Collateral, "the PCK certificate's serial is on the PCK CRL"),
        new(SimFault.RevokedVcek, "revoked-vcek", TeeKind.SevSnp, FaultStage.Verify, CertificateRevoked, FaultTarget.Collateral, "the VCEK's chain is revoked: the AMD CRL lists the ASK that signed it"),
        new(SimFault.TcbOutOfDate, "tcb-out-of-date", TeeKind.Tdx, FaultStage.Policy, TcbStatusNotAllowed, FaultTarget.Collateral, "the TCB level matching the platform is OutOfDate"),
        new(SimFault.TcbRevoked, "tcb-revoked", TeeKind.Tdx, FaultStage.Verify, TcbRevoked, FaultTarget.Collateral, "the TCB level matching the platform is Revoked"),
        new(SimFault.TcbConfigurationNeeded, "tcb-configuration-needed", TeeKind.Tdx, FaultStage.Policy, TcbStatusNotAllowed, FaultTarget.Collateral, "the TCB level matching the platform is ConfigurationNeeded"),
        new(SimFault.ExpiredCollateral, "expired-collateral", TeeKind.Tdx, FaultStage.Verify, CollateralExpired, FaultTarget.Collateral, "TCB Info, QE Identity and CRLs are past nextUpdate"),
        new(SimFault.ExpiredCollateral, "expired-collateral", TeeKind.SevSnp, FaultStage.Verify, CrlExpired, FaultTarget.Collateral, "the AMD CRLs are past nextUpdate"),
        new(SimFault.TcbInfoForeignSigner, "tcb-info-foreign-signer", TeeKind.Tdx, FaultStage.Verify, CollateralSignerUntrusted, FaultTarget.Collateral, "TCB Info signed by a TCB Signing key under an untrusted root"),
        new(SimFault.QeReportDataMismatch, "qe-report-data-mismatch", TeeKind.Tdx, FaultStage.Verify, QeReportDataMismatch, FaultTarget.Evidence, "QE REPORTDATA does not bind the attestation key (QE report still validly signed)"),
        new(SimFault.WrongReportData, "wrong-report-data", TeeKind.Tdx, FaultStage.Policy, ReportDataMismatch, FaultTarget.Evidence, "REPORTDATA differs from the requested value"),
        new(SimFault.WrongReportData, "wrong-report-data", TeeKind.SevSnp, FaultStage.Policy, ReportDataMismatch, FaultTarget.Evidence, "REPORT_DATA differs from the requested value"),
        new(SimFault.Vmpl1, "vmpl1", TeeKind.SevSnp, FaultStage.Policy, VmplNotAllowed, FaultTarget.Evidence, "report requested from VMPL 1"),
        new(SimFault.ProductMismatch, "product-mismatch", TeeKind.SevSnp, FaultStage.Verify, ProductMismatch, FaultTarget.Evidence, "CPUID names another product than the signing key's chain"),
        new(SimFault.Truncated, "truncated", TeeKind.Tdx, FaultStage.Verify, MalformedEvidence, FaultTarget.Evidence, "quote cut inside its signature data"),
        new(SimFault.Truncated, "truncated", TeeKind.SevSnp, FaultStage.Verify, MalformedEvidence, FaultTarget.Evidence, "report cut short of 1184 bytes"),
        new(SimFault.BadQuoteSignature, "bad-quote-signature", TeeKind.Tdx, FaultStage.Verify, QuoteSignatureInvalid, FaultTarget.Evidence, "one bit of the quote signature flipped"),
        new(SimFault.BadReportSignature, "bad-report-signature", TeeKind.SevSnp, FaultStage.Verify, ReportSignatureInvalid, FaultTarget.Evidence, "one bit of the report signature flipped"),
    ];

    public static IReadOnlyList<FaultInfo> All => Entries;

    public static string Name(this SimFault fault) => Entries.First(e => e.Fault == fault).Name;

    public static bool AppliesTo(this SimFault fault, TeeKind tee) => Entries.Any(e => e.Fault == fault && e.Tee == tee);

    public static FaultInfo Info(SimFault fault, TeeKind tee) =>
        Entries.FirstOrDefault(e => e.Fault == fault && e.Tee == tee)
        ?? throw new SimulatorException($"fault '{fault.Name()}' does not apply to {tee.ToWireName()}");

    public static SimFault Parse(string name)
    {
        var n = name?.Trim().ToLowerInvariant();
        var e = Entries.FirstOrDefault(x => x.Name == n);
        return e is null
            ? throw new SimulatorException($"unknown fault '{name}' (run 'attest-sim faults' for the list)")
            : e.Fault;
    }
}
