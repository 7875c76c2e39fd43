using System.Text.Json.Nodes;
using AttestBroker.Evidence;

namespace AttestBroker.Verification;

/// <summary>The outcome of verifying one piece of evidence.</summary>
public enum Verdict
{
    Accepted,
    Rejected,
}

/// <summary>A named reason: a failed check (in <see cref="VerificationResult.Reasons"/>) or an observation (in <see cref="VerificationResult.Notes"/>).</summary>
/// <param name="Code">A stable code from <see cref="ReasonCodes"/>.</param>
/// <param name="Message">What was found, for people; never secret material.</param>
public sealed record VerificationReason(string Code, string Message);

/// <summary>
/// Verification results are data: a verdict, the claims read from the evidence, and every failed check as a named
/// reason. Rejection is never an exception. Accepted means every check ran and passed; a check that could not be
/// done is a reason, never silently skipped (the one explicit opt-out, skipping CRLs, shows as <see cref="CrlChecked"/> false).
/// </summary>
public sealed class VerificationResult
{
    public VerificationResult(TeeKind tee, IReadOnlyList<VerificationReason> reasons, IReadOnlyList<VerificationReason> notes, ClaimSet claims, bool simulated, bool crlChecked)
    {
        Tee = tee;
        Reasons = reasons;
        Notes = notes;
        Claims = claims;
        Simulated = simulated;
        CrlChecked = crlChecked;
    }

    public TeeKind Tee { get; }

    /// <summary>Accepted exactly when there are no failure reasons.</summary>
    public Verdict Verdict => Reasons.Count == 0 ? Verdict.Accepted : Verdict.Rejected;

    public bool IsAccepted => Verdict == Verdict.Accepted;

    /// <summary>Every failed check, in the order found.</summary>
    public IReadOnlyList<VerificationReason> Reasons { get; }

    /// <summary>Observations that do not fail verification (trailing bytes after the signature data, a CRL not supplied where it is optional, ...).</summary>
    public IReadOnlyList<VerificationReason> Notes { get; }

    public ClaimSet Claims { get; }

    /// <summary>True when the evidence chained to a simulated root that the operator explicitly trusted.</summary>
    public bool Simulated { get; }

    /// <summary>True when revocation was checked against in-date CRLs for the whole chain.</summary>
    public bool CrlChecked { get; }

    /// <summary>True when any reason carries the given code.</summary>
    public bool HasReason(string code) => Reasons.Any(r => r.Code == code);

    /// <summary>The result as the JSON object that <c>attestbroker verify --json</c> prints (without the "file" member).</summary>
    public JsonObject ToJson()
    {
        var reasons = new JsonArray();
        foreach (var r in Reasons)
        {
            reasons.Add(new JsonObject { ["code"] = r.Code, ["message"] = r.Message });
        }

        var notes = new JsonArray();
        foreach (var n in Notes)
        {
            notes.Add(new JsonObject { ["code"] = n.Code, ["message"] = n.Message });
        }

        return new JsonObject
        {
            ["verdict"] = IsAccepted ? "accepted" : "rejected",
            ["tee"] = Tee.ToWireName(),
            ["reasons"] = reasons,
            ["claims"] = Claims.ToJson(),
            ["simulated"] = Simulated,
            ["crl_checked"] = CrlChecked,
            ["notes"] = notes,
        };
    }
}
