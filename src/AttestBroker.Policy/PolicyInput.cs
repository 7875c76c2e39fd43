using System.Text.Json.Nodes;

namespace AttestBroker.Policy;

/// <summary>A failed verification check, as data (code and message of a verification reason).</summary>
public sealed record VerificationFailure(string Code, string Message);

/// <summary>When one collateral item (TCB Info, QE Identity, a CRL, ...) was issued, for the maximum-age rule.</summary>
public sealed record CollateralIssue(string Name, DateTimeOffset IssuedAt);

/// <summary>Who asks for the key (from the Kubernetes service account token, once the broker checks it).</summary>
public sealed record RequesterIdentity(string Namespace, string ServiceAccount);

/// <summary>
/// Everything a policy is evaluated over: the verification outcome as data. No clock and no I/O behind it: the
/// verification time is part of the input, so the same input always gets the same decision.
/// </summary>
public sealed record PolicyInput
{
    public PolicyInput(string tee, JsonObject claims, DateTimeOffset verifiedAt)
    {
        ArgumentNullException.ThrowIfNull(tee);
        ArgumentNullException.ThrowIfNull(claims);
        Tee = tee;
        Claims = claims;
        VerifiedAt = verifiedAt;
    }

    /// <summary>The TEE kind's wire name: <c>tdx</c> or <c>sev-snp</c>.</summary>
    public string Tee { get; init; }

    /// <summary>The claims (docs/claims.md). Read only; the evaluator never changes them.</summary>
    public JsonObject Claims { get; init; }

    /// <summary>The instant the evidence was verified at; collateral age is measured to it.</summary>
    public DateTimeOffset VerifiedAt { get; init; }

    /// <summary>Every failed verification check; any entry makes the decision a denial.</summary>
    public IReadOnlyList<VerificationFailure> VerificationFailures { get; init; } = [];

    /// <summary>The evidence chained to a simulated root.</summary>
    public bool Simulated { get; init; }

    /// <summary>Revocation was checked for the whole chain.</summary>
    public bool CrlChecked { get; init; }

    /// <summary>
    /// The claims come from a Microsoft Azure Attestation token (evidence_source azure_attestation), not from
    /// evidence verified against the vendor roots; denied unless the policy sets allowAzureAttestation.
    /// </summary>
    public bool AzureAttestation { get; init; }

    /// <summary>The broker (or the CLI) was started with the simulator's roots explicitly trusted.</summary>
    public bool TrustsSimulator { get; init; }

    /// <summary>Issue dates of the collateral used, when known; the maximum-age rule denies when it has none.</summary>
    public IReadOnlyList<CollateralIssue> Collateral { get; init; } = [];

    /// <summary>The requester, when known; a policy with a requester constraint denies when it is absent.</summary>
    public RequesterIdentity? Requester { get; init; }
}
