namespace AttestBroker.Policy;

/// <summary>
/// Stable codes of failing policy rules (docs/policy.md lists them). Codes shared with the simulator's faults
/// (debug_not_allowed, measurement_mismatch, report_data_mismatch, vmpl_not_allowed, tcb_status_not_allowed) keep
/// their names; none is ever renamed.
/// </summary>
public static class PolicyCodes
{
    /// <summary>The evidence did not verify; each verification reason is listed.</summary>
    public const string VerificationFailed = "verification_failed";
    public const string TeeNotAllowed = "tee_not_allowed";
    public const string SimulatedNotAllowed = "simulated_not_allowed";
    public const string CrlNotChecked = "crl_not_checked";

    /// <summary>The claims come from an Azure Attestation token and the policy does not set allowAzureAttestation.</summary>
    public const string AzureAttestationNotAllowed = "azure_attestation_not_allowed";
    public const string DebugNotAllowed = "debug_not_allowed";
    public const string ReportDataMismatch = "report_data_mismatch";
    public const string CollateralTooOld = "collateral_too_old";
    public const string IdentityMismatch = "identity_mismatch";

    /// <summary>The requester's identity is not the one bound into launch data (SNP HOST_DATA / TDX MRCONFIGID).</summary>
    public const string IdentityNotBound = "identity_not_bound";

    // TDX and SNP reference values
    public const string MeasurementMismatch = "measurement_mismatch";
    public const string HostDataMismatch = "host_data_mismatch";
    public const string FamilyIdMismatch = "family_id_mismatch";
    public const string ImageIdMismatch = "image_id_mismatch";
    public const string IdKeyMismatch = "id_key_mismatch";
    public const string AuthorKeyMismatch = "author_key_mismatch";

    // TCB
    public const string TcbStatusNotAllowed = "tcb_status_not_allowed";
    public const string QeTcbStatusNotAllowed = "qe_tcb_status_not_allowed";
    public const string AdvisoryNotAllowed = "advisory_not_allowed";
    public const string TcbBelowMinimum = "tcb_below_minimum";
    public const string VmplNotAllowed = "vmpl_not_allowed";

    // Expressions
    public const string ExpressionFalse = "expression_false";
    public const string ExpressionError = "expression_error";
}
