using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AttestBroker.Policy;

/// <summary>
/// Evaluates a <see cref="ReleasePolicy"/> over a <see cref="PolicyInput"/>. Pure: no I/O, no clock, no state; the
/// same input always gets the same decision. Every rule runs and every failing rule is reported (not only the
/// first). Never throws for any claims: a claim that is absent or of the wrong type fails the rules that need it.
/// </summary>
public static class PolicyEvaluator
{
    public static PolicyDecision Evaluate(ReleasePolicy policy, PolicyInput input)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(input);
        var failures = new List<RuleFailure>();
        var claims = input.Claims;

        foreach (var r in input.VerificationFailures)
        {
            failures.Add(new RuleFailure(PolicyCodes.VerificationFailed, "verification", "verdict", "accepted", r.Code, $"the evidence did not verify: {r.Code}: {r.Message}"));
        }

        var teeAllowed = policy.Tee.Contains(input.Tee, StringComparer.Ordinal);
        if (!teeAllowed)
        {
            failures.Add(new RuleFailure(PolicyCodes.TeeNotAllowed, "tee", "tee", Strings(policy.Tee), input.Tee,
                policy.Tee.Count == 0 ? "the policy allows no TEE kind" : $"evidence from {input.Tee} is not allowed"));
        }

        if (input.Simulated && !(policy.AllowSimulated && input.TrustsSimulator))
        {
            var why = policy.AllowSimulated ? "the broker does not trust the simulator" : "the policy does not set allowSimulated";
            failures.Add(new RuleFailure(PolicyCodes.SimulatedNotAllowed, "allowSimulated", "simulated", false, true, "simulated evidence is refused: " + why));
        }

        var azureAccepted = input.AzureAttestation && policy.AllowAzureAttestation;
        if (input.AzureAttestation && !policy.AllowAzureAttestation)
        {
            failures.Add(new RuleFailure(PolicyCodes.AzureAttestationNotAllowed, "allowAzureAttestation", "evidence_source", "tee_evidence", "azure_attestation",
                "the claims come from an Azure Attestation token (root of trust: the attestation service) and the policy does not set allowAzureAttestation"));
        }

        // An accepted Azure token's revocation checks are the attestation service's: the broker checked no CRL itself
        // (crl_checked stays false), and allowAzureAttestation, not allowUncheckedCrl, is the policy's consent to that.
        if (!input.CrlChecked && !policy.AllowUncheckedCrl && !azureAccepted)
        {
            failures.Add(new RuleFailure(PolicyCodes.CrlNotChecked, "allowUncheckedCrl", "crl_checked", true, false, "revocation was not checked and the policy does not set allowUncheckedCrl"));
        }

        if (!policy.AllowDebug)
        {
            var debug = claims["debug"];
            if (Claims.AsBool(debug) != false)
            {
                failures.Add(new RuleFailure(PolicyCodes.DebugNotAllowed, "allowDebug", "debug", false, debug?.DeepClone(),
                    debug is null ? "the debug claim is absent, so debug cannot be ruled out" : "the TEE runs in debug mode and the policy does not set allowDebug"));
            }
        }

        if (policy.ReportData.Count > 0)
        {
            CheckAllowlist(failures, new HexAllowlist("reportData", "report_data", PolicyCodes.ReportDataMismatch, policy.ReportData), claims);
        }

        if (policy.MaxCollateralAge is { } maxAge)
        {
            CheckCollateralAge(failures, maxAge, input);
        }

        if (policy.Requester is { } requester)
        {
            CheckRequester(failures, requester, input.Requester);
            if (requester.BindToLaunchData)
            {
                CheckLaunchBinding(failures, input);
            }
        }

        if (teeAllowed && input.Tee == ReleasePolicy.TeeTdx && policy.Tdx is { } tdx)
        {
            CheckTdx(failures, tdx, claims);
        }

        if (teeAllowed && input.Tee == ReleasePolicy.TeeSevSnp && policy.Snp is { } snp)
        {
            CheckSnp(failures, snp, claims);
        }

        if (policy.Expressions.Count > 0)
        {
            failures.AddRange(PolicyExpression.EvaluateAll(policy.Expressions, input));
        }

        return new PolicyDecision(policy.Name, policy.Version, policy.Explain, failures);
    }

    private static JsonArray Strings(IEnumerable<string> values) => new([.. values.Select(v => (JsonNode?)JsonValue.Create(v))]);

    private static void CheckAllowlist(List<RuleFailure> failures, HexAllowlist list, JsonObject claims)
    {
        var node = claims[list.Claim];
        var value = Claims.AsString(node)?.ToLowerInvariant();
        if (value is not null && list.Values.Contains(value, StringComparer.Ordinal))
        {
            return;
        }

        var message = node is null
            ? $"the {list.Claim} claim is absent"
            : $"{list.Claim} is not one of the {list.Values.Count} accepted value(s)";
        failures.Add(new RuleFailure(list.Code, list.Field, list.Claim, Strings(list.Values), node?.DeepClone(), message));
    }

    private static void CheckCollateralAge(List<RuleFailure> failures, TimeSpan maxAge, PolicyInput input)
    {
        var limit = FormatAge(maxAge);
        if (input.Collateral.Count == 0)
        {
            failures.Add(new RuleFailure(PolicyCodes.CollateralTooOld, "maxCollateralAge", "collateral", "issued at most " + limit + " before the verification time", null,
                "no collateral issue dates are known, so the collateral's age cannot be checked"));
            return;
        }

        foreach (var c in input.Collateral)
        {
            var age = input.VerifiedAt - c.IssuedAt;
            if (age > maxAge)
            {
                var oldest = (input.VerifiedAt - maxAge).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
                failures.Add(new RuleFailure(PolicyCodes.CollateralTooOld, "maxCollateralAge", "collateral." + c.Name + ".issued_at",
                    "at or after " + oldest, c.IssuedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                    $"{c.Name} was issued {FormatAge(age)} before the verification time; at most {limit} is accepted"));
            }
        }
    }

    private static string FormatAge(TimeSpan t) =>
        t.TotalSeconds % 86400 == 0 ? string.Create(CultureInfo.InvariantCulture, $"{(long)t.TotalDays}d")
        : t.TotalSeconds % 3600 == 0 ? string.Create(CultureInfo.InvariantCulture, $"{(long)t.TotalHours}h")
        : string.Create(CultureInfo.InvariantCulture, $"{(long)t.TotalSeconds}s");

    private static void CheckRequester(List<RuleFailure> failures, RequesterPolicy policy, RequesterIdentity? who)
    {
        if (policy.Namespaces.Count > 0 && (who is null || !policy.Namespaces.Contains(who.Namespace, StringComparer.Ordinal)))
        {
            failures.Add(new RuleFailure(PolicyCodes.IdentityMismatch, "requester.namespaces", "requester.namespace", Strings(policy.Namespaces), who?.Namespace,
                who is null ? "the requester's identity is not known" : $"namespace '{who.Namespace}' is not allowed"));
        }

        if (policy.ServiceAccounts.Count > 0 && (who is null || !policy.ServiceAccounts.Contains(who.ServiceAccount, StringComparer.Ordinal)))
        {
            failures.Add(new RuleFailure(PolicyCodes.IdentityMismatch, "requester.serviceAccounts", "requester.serviceAccount", Strings(policy.ServiceAccounts), who?.ServiceAccount,
                who is null ? "the requester's identity is not known" : $"service account '{who.ServiceAccount}' is not allowed"));
        }
    }

    private static void CheckLaunchBinding(List<RuleFailure> failures, PolicyInput input)
    {
        var (claim, expected) = input.Tee switch
        {
            ReleasePolicy.TeeTdx => ("mr_config_id", input.Requester is { } t ? Convert.ToHexStringLower(IdentityBinding.MrConfigId(t.Namespace, t.ServiceAccount)) : null),
            ReleasePolicy.TeeSevSnp => ("host_data", input.Requester is { } s ? Convert.ToHexStringLower(IdentityBinding.HostData(s.Namespace, s.ServiceAccount)) : null),
            _ => ("launch_data", null),
        };
        var actual = input.Claims[claim] is JsonValue v && v.TryGetValue<string>(out var text) ? text.ToLowerInvariant() : null;
        if (expected is null || actual != expected)
        {
            failures.Add(new RuleFailure(PolicyCodes.IdentityNotBound, "requester.bindToLaunchData", claim, expected is null ? null : new JsonArray(expected), actual,
                input.Requester is null
                    ? "the requester's identity is not known, so it cannot be checked against launch data"
                    : $"{claim} does not bind namespace '{input.Requester.Namespace}' and service account '{input.Requester.ServiceAccount}'"));
        }
    }

    private static void CheckTdx(List<RuleFailure> failures, TdxPolicy tdx, JsonObject claims)
    {
        foreach (var list in tdx.Allowlists)
        {
            CheckAllowlist(failures, list, claims);
        }

        CheckStatus(failures, "tdx.tcbStatus", "tcb_status", PolicyCodes.TcbStatusNotAllowed, tdx.TcbStatus, claims);
        if (tdx.QeTcbStatus.Count > 0)
        {
            CheckStatus(failures, "tdx.qeTcbStatus", "qe_tcb_status", PolicyCodes.QeTcbStatusNotAllowed, tdx.QeTcbStatus, claims);
        }

        var advisories = claims["advisory_ids"];
        if (advisories is not JsonArray array || array.Any(a => Claims.AsString(a) is null))
        {
            failures.Add(new RuleFailure(PolicyCodes.AdvisoryNotAllowed, "tdx.allowedAdvisories", "advisory_ids", Strings(tdx.AllowedAdvisories), advisories?.DeepClone(),
                advisories is null ? "the advisory_ids claim is absent, so advisories cannot be ruled out" : "the advisory_ids claim is not a list of strings"));
        }
        else
        {
            var refused = array.Select(a => Claims.AsString(a)!).Where(a => !tdx.AllowedAdvisories.Contains(a, StringComparer.Ordinal)).Distinct(StringComparer.Ordinal).ToList();
            if (refused.Count > 0)
            {
                failures.Add(new RuleFailure(PolicyCodes.AdvisoryNotAllowed, "tdx.allowedAdvisories", "advisory_ids", Strings(tdx.AllowedAdvisories), Strings(refused),
                    $"the platform's TCB level carries advisories the policy does not accept: {string.Join(", ", refused.Take(8))}{(refused.Count > 8 ? ", ..." : string.Empty)}"));
            }
        }

        if (tdx.MinTeeTcbSvn is { } min)
        {
            var node = claims["tee_tcb_svn"];
            var actual = Claims.AsString(node);
            var below = -1;
            if (actual is not null && actual.Length == min.Length && !actual.AsSpan().ContainsAnyExcept("0123456789abcdefABCDEF"))
            {
                var a = Convert.FromHexString(actual);
                var m = Convert.FromHexString(min);
                below = Enumerable.Range(0, m.Length).FirstOrDefault(i => a[i] < m[i], -2);
            }

            if (below != -2)
            {
                failures.Add(new RuleFailure(PolicyCodes.TcbBelowMinimum, "tdx.minTeeTcbSvn", "tee_tcb_svn", min, node?.DeepClone(),
                    below >= 0 ? string.Create(CultureInfo.InvariantCulture, $"TEE_TCB_SVN component {below} is below the minimum") : "the tee_tcb_svn claim is absent or not 16 bytes of hex"));
            }
        }
    }

    private static void CheckStatus(List<RuleFailure> failures, string rule, string claim, string code, IReadOnlyList<string> accepted, JsonObject claims)
    {
        var node = claims[claim];
        var status = Claims.AsString(node);
        if (status is null || !accepted.Contains(status, StringComparer.Ordinal))
        {
            failures.Add(new RuleFailure(code, rule, claim, Strings(accepted), node?.DeepClone(),
                status is null ? $"the {claim} claim is absent" : $"{claim} {Read.Clip(status)} is not accepted"));
        }
    }

    private static void CheckSnp(List<RuleFailure> failures, SnpPolicy snp, JsonObject claims)
    {
        foreach (var list in snp.Allowlists)
        {
            CheckAllowlist(failures, list, claims);
        }

        var vmplNode = claims["vmpl"];
        var vmpl = Claims.AsInteger(vmplNode);
        if (vmpl is null || !snp.Vmpl.Any(v => v == vmpl))
        {
            failures.Add(new RuleFailure(PolicyCodes.VmplNotAllowed, "snp.vmpl", "vmpl", new JsonArray([.. snp.Vmpl.Select(v => (JsonNode?)JsonValue.Create(v))]), vmplNode?.DeepClone(),
                vmpl is null ? "the vmpl claim is absent" : $"the report was requested at VMPL {vmpl}, which the policy does not accept"));
        }

        foreach (var min in snp.MinTcb)
        {
            var node = (claims[min.Claim] as JsonObject)?[min.Component];
            var actual = Claims.AsInteger(node);
            if (actual is null || actual < min.Minimum)
            {
                var claim = min.Claim + "." + min.Component;
                failures.Add(new RuleFailure(PolicyCodes.TcbBelowMinimum, min.Field, claim, min.Minimum, node?.DeepClone(),
                    actual is null ? $"the {claim} claim is absent" : string.Create(CultureInfo.InvariantCulture, $"{claim} is {actual}, below the minimum {min.Minimum}")));
            }
        }
    }
}

/// <summary>Type-checked reads of claim values; never throw.</summary>
internal static class Claims
{
    public static string? AsString(JsonNode? node)
    {
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
        {
            return null;
        }

        if (v.TryGetValue<string>(out var s))
        {
            return s;
        }

        try
        {
            using var doc = JsonDocument.Parse(v.ToJsonString());
            return doc.RootElement.GetString();
        }
        catch (ArgumentException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public static bool? AsBool(JsonNode? node) => node is JsonValue v
        ? v.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => null,
        }
        : null;

    /// <summary>A whole number, or null when the node is absent, not a number, fractional or beyond ±2^96.</summary>
    public static decimal? AsInteger(JsonNode? node)
    {
        var text = node is JsonValue v ? NumberText(v) : null;
        return text is not null && decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d == decimal.Truncate(d) ? d : null;
    }

    /// <summary>The JSON text of a number value, or null when it is not a number (or not representable, such as NaN).</summary>
    public static string? NumberText(JsonValue v)
    {
        try
        {
            return v.GetValueKind() == JsonValueKind.Number ? v.ToJsonString() : null;
        }
        catch (ArgumentException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }
}
