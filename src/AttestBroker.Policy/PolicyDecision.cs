using System.Text.Json.Nodes;

namespace AttestBroker.Policy;

/// <summary>One failing rule: its stable code, the policy field, the claim, what was expected and what the evidence had.</summary>
/// <param name="Code">A stable code from <see cref="PolicyCodes"/>.</param>
/// <param name="Rule">The policy field that failed, e.g. <c>tdx.mrTd</c> or <c>expressions[0]</c>.</param>
/// <param name="Claim">The claim compared (e.g. <c>mr_td</c>, <c>reported_tcb.snp</c>), or an input field such as <c>tee</c>.</param>
/// <param name="Expected">The accepted value(s): a list for allowlists, a minimum, a boolean.</param>
/// <param name="Actual">The evidence's value; null when the claim is absent.</param>
/// <param name="Message">One line for people.</param>
public sealed record RuleFailure(string Code, string Rule, string Claim, JsonNode? Expected, JsonNode? Actual, string Message)
{
    public JsonObject ToJson() => new()
    {
        ["code"] = Code,
        ["rule"] = Rule,
        ["claim"] = Claim,
        ["expected"] = Expected?.DeepClone(),
        ["actual"] = Actual?.DeepClone(),
        ["message"] = Message,
    };
}

/// <summary>
/// A policy's answer: granted exactly when no rule failed. Every failing rule is listed (not only the first), also
/// when the policy hides them from the requester (<see cref="Explain"/> false): the audit log keeps them.
/// </summary>
public sealed class PolicyDecision
{
    internal PolicyDecision(string policyName, long policyVersion, bool explain, IReadOnlyList<RuleFailure> failures)
    {
        PolicyName = policyName;
        PolicyVersion = policyVersion;
        Explain = explain;
        Failures = failures;
    }

    public bool Granted => Failures.Count == 0;

    public string PolicyName { get; }

    public long PolicyVersion { get; }

    /// <summary>Whether the requester may see the failing rules; false means the answer is only "denied".</summary>
    public bool Explain { get; }

    /// <summary>Every failing rule, in the policy's rule order.</summary>
    public IReadOnlyList<RuleFailure> Failures { get; }

    public bool HasFailure(string code) => Failures.Any(f => f.Code == code);

    /// <summary>The full decision, for the audit log and for <c>attestbroker policy test</c>.</summary>
    public JsonObject ToJson()
    {
        var failures = new JsonArray();
        foreach (var f in Failures)
        {
            failures.Add(f.ToJson());
        }

        return new JsonObject
        {
            ["decision"] = Granted ? "granted" : "denied",
            ["policy"] = PolicyName,
            ["policy_version"] = PolicyVersion,
            ["explain"] = Explain,
            ["failures"] = failures,
        };
    }

    /// <summary>What the requester may be told: the failing rules only when the policy explains, otherwise just the verdict.</summary>
    public JsonObject ToRequesterJson()
    {
        if (Explain || Granted)
        {
            return ToJson();
        }

        return new JsonObject
        {
            ["decision"] = "denied",
            ["policy"] = PolicyName,
            ["policy_version"] = PolicyVersion,
        };
    }
}
