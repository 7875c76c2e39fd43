using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Keys;
using AttestBroker.Policy;
using AttestBroker.Protocol;
using AttestBroker.Storage;
using AttestBroker.Verification;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Server;

/// <summary>The verifiers, trust anchors and CRL setting the broker appraises evidence with.</summary>
public sealed record VerifierSet(IReadOnlyDictionary<TeeKind, IEvidenceVerifier> Verifiers, TrustStore Trust, bool SkipCrl);

/// <summary>A parsed attest-and-release request (see docs/protocol.md §7).</summary>
internal sealed record AttestRequest(string ChallengeToken, byte[] Evidence, Jwk PublicKey, IReadOnlyList<string> KeyIds, string? ServiceAccountToken)
{
    /// <summary>The Azure Attestation token sent instead of raw evidence (evidence_format azure-attestation-token); Evidence then holds its UTF-8 bytes.</summary>
    public string? AzureToken { get; init; }
}

/// <summary>
/// The broker's decisions: issue challenges, and attest-and-release (verify evidence, check the REPORT_DATA binding,
/// appraise each requested key's release policy, wrap granted keys as JWEs, sign a result token). Every decision is
/// appended to the audit log before anything is returned. Key bytes live only in a buffer zeroed after wrapping.
/// </summary>
public sealed partial class BrokerService
{
    public const string AuditKindRelease = "release";
    public const string AuditKindAttestation = "attestation";
    public const string Granted = "granted";
    public const string Denied = "denied";
    private const int MaxEvidenceBytes = 64 * 1024;
    private const int MaxParsedPolicies = 4096;

    /// <summary>Members the broker adds to the token's claims object next to the verification claims.</summary>
    public const string TokenClaimTee = "tee";
    public const string TokenClaimSimulated = "simulated";
    public const string TokenClaimCrlChecked = "crl_checked";

    /// <summary>The requester's Kubernetes identity (namespace, service_account, pod, pod_uid), when its token was checked.</summary>
    public const string TokenClaimRequester = "requester";

    private const string RequesterNamespace = "requester_namespace";
    private const string RequesterServiceAccount = "requester_service_account";
    private const string RequesterPod = "requester_pod";
    private const string RequesterPodUid = "requester_pod_uid";

    private readonly IBrokerStorage _storage;
    private readonly IKeyBackend _keys;
    private readonly NonceService _nonces;
    private readonly TokenSigner _signer;
    private readonly VerifierSet _verifiers;
    private readonly BrokerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<BrokerService> _log;

    // Parsed policies by key id and version (a stored version never changes; the document text is compared too).
    // Parsing the YAML cost about as much CPU as verifying the evidence. Policies with CEL expressions are not kept:
    // their compiled programs are not known to be safe to share between concurrent requests.
    private readonly ConcurrentDictionary<(string KeyId, long Version), (string Document, ReleasePolicy Policy)> _parsedPolicies = new();

    public BrokerService(IBrokerStorage storage, IKeyBackend keys, NonceService nonces, TokenSigner signer, VerifierSet verifiers, BrokerOptions options, TimeProvider time, ILogger<BrokerService> log)
    {
        _storage = storage;
        _keys = keys;
        _nonces = nonces;
        _signer = signer;
        _verifiers = verifiers;
        _options = options;
        _time = time;
        _log = log;
    }

    /// <summary>Service-account identity and quarantine (docs/kubernetes.md); null or without a validator: tokens are ignored.</summary>
    public BrokerKubernetes? KubernetesIdentity { get; init; }

    /// <summary>POST /v1/challenge: body <c>{"tee":"tdx"}</c>.</summary>
    public BrokerOutcome Challenge(ReadOnlySpan<byte> body)
    {
        string? teeName;
        try
        {
            using var doc = JsonDocument.Parse(body.ToArray(), JsonOptions);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return BrokerProblem.Malformed("the body must be a JSON object");
            }

            foreach (var p in root.EnumerateObject())
            {
                if (p.Name != "tee")
                {
                    return BrokerProblem.Malformed($"unknown member \"{Truncate(p.Name)}\"");
                }
            }

            teeName = root.TryGetProperty("tee", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        }
        catch (JsonException)
        {
            return BrokerProblem.Malformed("the body is not valid JSON");
        }

        if (teeName is not (TeeKindNames.Tdx or TeeKindNames.SevSnp) || !TeeKindNames.TryParse(teeName, out var tee))
        {
            return BrokerProblem.Malformed("\"tee\" must be \"tdx\" or \"sev-snp\"");
        }

        var (challenge, token) = _nonces.Issue(tee);
        var response = new JsonObject
        {
            ["tee"] = tee.ToWireName(),
            ["nonce"] = NonceService.Base64UrlEncode(challenge.Nonce),
            ["challenge"] = token,
            ["expires_at"] = FormatTime(challenge.ExpiresAt),
        };
        if (AzureTokens is not null && SkrWrappingKeys() is { Count: > 0 } skrKeys)
        {
            response["skr_wrapping_keys"] = skrKeys;
        }

        return new BrokerOutcome(response, null);
    }

    /// <summary>POST /v1/attest: the whole attest-and-release round trip.</summary>
    public async Task<BrokerOutcome> AttestAsync(ReadOnlyMemory<byte> body, string? client, CancellationToken cancellationToken)
    {
        var parsed = ParseAttest(body.Span, out var problem);
        if (parsed is null)
        {
            return problem!;
        }

        var (requester, identityProblem) = await IdentifyAsync(parsed, client, cancellationToken);
        if (identityProblem is not null)
        {
            return identityProblem;
        }

        var outcome = await AttestIdentifiedAsync(parsed, requester, client, cancellationToken);
        await CountFailureAsync(outcome, requester, client, cancellationToken);
        return outcome;
    }

    private async Task<BrokerOutcome> AttestIdentifiedAsync(AttestRequest parsed, Kubernetes.RequesterIdentity? requester, string? client, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var evidenceDigest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(parsed.Evidence));
        var thumbprint = parsed.PublicKey.Thumbprint();
        var baseDetails = new Dictionary<string, string>(StringComparer.Ordinal) { ["jkt"] = thumbprint };
        if (client is not null)
        {
            baseDetails["client"] = client;
        }

        AddRequesterDetails(baseDetails, requester);
        if (parsed.AzureToken is not null && AzureTokens is null)
        {
            var p = AzureTokensDisabledProblem();
            await AuditDenialAsync(now, client, p.Code, evidenceDigest, null, parsed.KeyIds, baseDetails, cancellationToken);
            return p;
        }

        if (!_nonces.TryOpen(parsed.ChallengeToken, out var challenge, out var challengeError))
        {
            var p = challengeError == ChallengeError.Expired
                ? new BrokerProblem(StatusCodes.Status410Gone, ProblemCodes.NonceExpired, "Nonce expired", "the challenge has expired; ask for a new one")
                : new BrokerProblem(StatusCodes.Status400BadRequest, ProblemCodes.InvalidChallenge, "Invalid challenge", "the challenge is not one this broker issued");
            await AuditDenialAsync(now, client, p.Code, evidenceDigest, null, parsed.KeyIds, baseDetails, cancellationToken);
            return p;
        }

        baseDetails["tee"] = challenge!.Tee.ToWireName();
        // The nonce is public (the pod received it); recording it lets an auditor check no nonce released twice across replicas.
        baseDetails["nonce_id"] = challenge.NonceId;
        if (!await _storage.Replay.TryConsumeAsync(challenge.NonceId, challenge.ExpiresAt, cancellationToken))
        {
            var p = new BrokerProblem(StatusCodes.Status409Conflict, ProblemCodes.NonceUsed, "Nonce already used", "each challenge can be used once; ask for a new one");
            await AuditDenialAsync(now, client, p.Code, evidenceDigest, null, parsed.KeyIds, baseDetails, cancellationToken);
            return p;
        }

        if (parsed.AzureToken is { } azureToken)
        {
            return await AttestAzureTokenAsync(parsed, azureToken, challenge, requester, now, client, evidenceDigest, baseDetails, cancellationToken);
        }

        if (!_verifiers.Verifiers.TryGetValue(challenge.Tee, out var verifier))
        {
            return new BrokerProblem(StatusCodes.Status503ServiceUnavailable, ProblemCodes.BackendUnavailable, "Verifier unavailable", "no verifier is configured for this TEE kind");
        }

        var context = new VerificationContext(now, _verifiers.Trust) { SkipCrl = _verifiers.SkipCrl };
        var result = await verifier.VerifyAsync(parsed.Evidence, context, cancellationToken);
        var claims = result.Claims.ToJson();
        var claimsDigest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(claims.ToJsonString())));

        if (result.HasReason(ReasonCodes.CollateralUnavailable))
        {
            var why = result.Reasons.FirstOrDefault(r => r.Code == ReasonCodes.CollateralUnavailable)?.Message;
            var p = new BrokerProblem(StatusCodes.Status503ServiceUnavailable, ProblemCodes.CollateralUnavailable, "Collateral unavailable", "verification collateral could not be obtained; retry later",
                why is null ? null : new JsonObject { ["reason"] = why });
            await AuditDenialAsync(now, client, p.Code, evidenceDigest, claimsDigest, parsed.KeyIds, baseDetails, cancellationToken);
            return p;
        }

        // The evidence must bind this request's nonce and public key. A rejected evidence may carry no REPORT_DATA at all.
        var reportDataHex = claims["report_data"] is JsonValue rv && rv.TryGetValue<string>(out var s) ? s : null;
        var reportData = reportDataHex is { Length: ReportDataBinding.ReportDataLength * 2 } ? TryHex(reportDataHex) : null;
        if (reportData is null || !ReportDataBinding.Matches(reportData, challenge.Nonce, parsed.PublicKey))
        {
            var detail = result.IsAccepted || reportData is not null
                ? "REPORT_DATA is not SHA-512(nonce || thumbprint of public_key)"
                : "the evidence could not be read: " + string.Join(", ", result.Reasons.Select(r => r.Code));
            var p = reportData is null && !result.IsAccepted
                ? new BrokerProblem(StatusCodes.Status400BadRequest, ProblemCodes.MalformedEvidence, "Malformed evidence", detail)
                : new BrokerProblem(StatusCodes.Status403Forbidden, ProblemCodes.BindingMismatch, "Evidence not bound to this request", detail);
            await AuditDenialAsync(now, client, p.Code, evidenceDigest, claimsDigest, parsed.KeyIds, baseDetails, cancellationToken);
            return p;
        }

        var input = new PolicyInput(result.Tee.ToWireName(), claims, now)
        {
            VerificationFailures = result.Reasons.Select(r => new VerificationFailure(r.Code, r.Message)).ToList(),
            Simulated = result.Simulated,
            CrlChecked = result.CrlChecked,
            TrustsSimulator = _verifiers.Trust.TrustsSimulator,
            Requester = requester is null ? null : new RequesterIdentity(requester.Namespace, requester.ServiceAccount),
        };

        return await ReleaseAsync(parsed.PublicKey, parsed.KeyIds, input, issueToken: true, now, client, evidenceDigest, claimsDigest, baseDetails, cancellationToken);
    }

    /// <param name="attestationToken">The pod's verified Azure Attestation token, when it sent one: keys of an attestation-token backend (Key Vault SKR) are released against it, and refused without it.</param>
    private async Task<BrokerOutcome> ReleaseAsync(Jwk publicKey, IReadOnlyList<string> keyIds, PolicyInput input, bool issueToken, DateTimeOffset now, string? client, string? evidenceDigest, string claimsDigest, Dictionary<string, string> details, CancellationToken cancellationToken, string? attestationToken = null)
    {
        // Appraise every key first; release nothing unless every requested key is granted.
        var decisions = new List<(string KeyId, PolicyDecision? Decision, long? StoreVersion, string? Refusal)>();
        foreach (var keyId in keyIds)
        {
            KeyInfo? info;
            try
            {
                info = await _keys.GetInfoAsync(keyId, cancellationToken);
            }
            catch (Keys.Backends.KeyBackendException ex)
            {
                return await BackendFailedAsync(ex, keyId, null, now, client, evidenceDigest, claimsDigest, details, cancellationToken);
            }

            if (info is null)
            {
                var p = new BrokerProblem(StatusCodes.Status404NotFound, ProblemCodes.UnknownKey, "Unknown key", $"no key with id \"{keyId}\"", new JsonObject { ["key_id"] = keyId });
                await AppendAsync(new AuditEvent(AuditKindRelease, now, client, Denied, [ProblemCodes.UnknownKey], evidenceDigest, claimsDigest, null, keyId, details), cancellationToken);
                return p;
            }

            var stored = await _storage.Policies.GetCurrentAsync(keyId, cancellationToken);
            if (stored is null)
            {
                decisions.Add((keyId, null, null, "no_policy"));
                continue;
            }

            ReleasePolicy policy;
            if (_parsedPolicies.TryGetValue((keyId, stored.Version), out var known) && string.Equals(known.Document, stored.Document, StringComparison.Ordinal))
            {
                policy = known.Policy;
            }
            else
            {
                try
                {
                    policy = ReleasePolicy.Parse(stored.Document);
                }
                catch (PolicyFormatException)
                {
                    decisions.Add((keyId, null, stored.Version, "policy_invalid"));
                    continue;
                }

                if (policy.Expressions.Count == 0 && _parsedPolicies.Count < MaxParsedPolicies)
                {
                    _parsedPolicies[(keyId, stored.Version)] = (stored.Document, policy);
                }
            }

            var refusal = info.State == KeyState.Disabled ? "key_disabled"
                : attestationToken is null && await TokenBackendForAsync(keyId, cancellationToken) is not null ? AttestationTokenRequiredReason : null;
            decisions.Add((keyId, PolicyEvaluator.Evaluate(policy, input), stored.Version, refusal));
        }

        var denied = decisions.Where(d => d.Refusal is not null || d.Decision is { Granted: false }).ToList();
        if (denied.Count > 0)
        {
            var perKey = new JsonArray();
            foreach (var (keyId, decision, version, refusal) in decisions)
            {
                var reasons = new List<string>();
                if (refusal is not null)
                {
                    reasons.Add(refusal);
                }

                if (decision is not null)
                {
                    reasons.AddRange(decision.Failures.Select(f => f.Code));
                }

                var keyDetails = new Dictionary<string, string>(details, StringComparer.Ordinal);
                if (decision is not null)
                {
                    keyDetails["decision"] = DecisionForAudit(decision);
                }

                if (reasons.Count == 0)
                {
                    // Granted on its own, but withheld because another requested key was denied.
                    reasons.Add("withheld_other_key_denied");
                }

                await AppendAsync(new AuditEvent(AuditKindRelease, now, client, Denied, reasons, evidenceDigest, claimsDigest, version, keyId, keyDetails), cancellationToken);
                var entry = new JsonObject { ["key_id"] = keyId };
                if (refusal is not null)
                {
                    entry["decision"] = "denied";
                    entry["reason"] = refusal;
                }
                else if (decision is not null)
                {
                    entry["decision"] = decision.Granted ? "granted" : "denied";
                    if (!decision.Granted)
                    {
                        var requester = decision.ToRequesterJson();
                        entry["policy"] = decision.PolicyName;
                        entry["policy_version"] = decision.PolicyVersion;
                        if (requester["failures"] is JsonArray failures)
                        {
                            entry["failures"] = failures.DeepClone();
                        }
                    }
                }

                perKey.Add(entry);
            }

            var onlyDisabled = denied.All(d => d.Refusal == "key_disabled" && d.Decision is { Granted: true });
            if (denied.All(d => d.Refusal == AttestationTokenRequiredReason && d.Decision is { Granted: true }))
            {
                return AttestationTokenRequiredProblem(perKey);
            }

            return onlyDisabled
                ? new BrokerProblem(StatusCodes.Status403Forbidden, ProblemCodes.KeyDisabled, "Key disabled", "a requested key is disabled", new JsonObject { ["keys"] = perKey })
                : new BrokerProblem(StatusCodes.Status403Forbidden, ProblemCodes.PolicyDenied, "Denied by policy", "the release policy of at least one requested key denied; no key was released", new JsonObject { ["keys"] = perKey });
        }

        var released = new JsonArray();
        var buffer = new byte[IKeyBackend.KeyLength];
        try
        {
            foreach (var (keyId, decision, version, _) in decisions)
            {
                try
                {
                    if (attestationToken is not null && await TokenBackendForAsync(keyId, cancellationToken) is { } tokenBackend)
                    {
                        await tokenBackend.GetForReleaseAsync(keyId, attestationToken, buffer, cancellationToken);
                    }
                    else
                    {
                        await _keys.GetForReleaseAsync(keyId, buffer, cancellationToken);
                    }
                }
                catch (KeyStoreException ex) when (ex.Error == KeyError.Disabled)
                {
                    await AppendAsync(new AuditEvent(AuditKindRelease, now, client, Denied, ["key_disabled"], evidenceDigest, claimsDigest, version, keyId, details), cancellationToken);
                    return new BrokerProblem(StatusCodes.Status403Forbidden, ProblemCodes.KeyDisabled, "Key disabled", $"key \"{keyId}\" is disabled");
                }
                catch (Keys.Backends.KeyBackendException ex)
                {
                    return await BackendFailedAsync(ex, keyId, version, now, client, evidenceDigest, claimsDigest, details, cancellationToken);
                }

                var jwe = JweEncryptor.Encrypt(buffer, publicKey, keyId);
                CryptographicOperations.ZeroMemory(buffer);
                released.Add(new JsonObject { ["key_id"] = keyId, ["jwe"] = jwe });
                var keyDetails = new Dictionary<string, string>(details, StringComparer.Ordinal) { ["decision"] = DecisionForAudit(decision!) };
                await AppendAsync(new AuditEvent(AuditKindRelease, now, client, Granted, [], evidenceDigest, claimsDigest, version, keyId, keyDetails), cancellationToken);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(buffer);
        }

        LogReleased(_log, released.Count, input.Tee);
        var response = new JsonObject { ["keys"] = released };
        if (issueToken)
        {
            var lifetime = TimeSpan.FromSeconds(_options.TokenLifetimeSeconds);
            var tokenClaims = (JsonObject)input.Claims.DeepClone();
            tokenClaims[TokenClaimTee] = input.Tee;
            tokenClaims[TokenClaimSimulated] = input.Simulated;
            tokenClaims[TokenClaimCrlChecked] = input.CrlChecked;
            if (RequesterClaim(details) is { } requesterClaim)
            {
                tokenClaims[TokenClaimRequester] = requesterClaim;
            }
            response["token"] = _signer.CreateToken(new ResultTokenDescriptor { Issuer = _options.Issuer, ConfirmationKey = publicKey, Claims = tokenClaims, Lifetime = lifetime }, now);
            response["token_expires_at"] = FormatTime(DateTimeOffset.FromUnixTimeSeconds(now.ToUnixTimeSeconds() + (long)lifetime.TotalSeconds));
        }

        response["tee"] = input.Tee;
        response["simulated"] = input.Simulated;
        return new BrokerOutcome(response, null);
    }

    /// <summary>
    /// POST /v1/keys: further keys for a pod holding a result token (Authorization: Bearer). The token must verify
    /// against this broker's JWKS and be bound (cnf.jkt) to the public key in the body; each key's current policy is
    /// appraised over the claims the token carries. No new token is issued: the pod attests again when it expires.
    /// </summary>
    public async Task<BrokerOutcome> KeysAsync(string? authorization, ReadOnlyMemory<byte> body, string? client, CancellationToken cancellationToken)
    {
        if (authorization is null || !authorization.StartsWith("Bearer ", StringComparison.Ordinal) || authorization.Length <= 7)
        {
            return new BrokerProblem(StatusCodes.Status401Unauthorized, ProblemCodes.TokenMissing, "Token required", "send the attestation-result token as 'Authorization: Bearer <token>'");
        }

        var parsed = ParseKeysRequest(body.Span, out var problem);
        if (parsed is null)
        {
            return problem!;
        }

        var now = _time.GetUtcNow();
        ResultTokenClaims token;
        try
        {
            token = ResultToken.Verify(authorization[7..].Trim(), _signer.Jwks, _options.Issuer, parsed.Value.Key, now);
        }
        catch (ProtocolException ex)
        {
            var refused = new Dictionary<string, string>(StringComparer.Ordinal) { ["jkt"] = parsed.Value.Key.Thumbprint(), ["via"] = "token", ["error"] = ex.Error.ToString() };
            await AuditDenialAsync(now, client, ProblemCodes.TokenInvalid, null, null, parsed.Value.KeyIds, refused, cancellationToken);
            return new BrokerProblem(StatusCodes.Status401Unauthorized, ProblemCodes.TokenInvalid, "Invalid token", $"the token was refused ({ex.Error})", new JsonObject { ["error"] = ex.Error.ToString() });
        }

        var claims = (JsonObject)token.Claims.DeepClone();
        var tee = claims[TokenClaimTee] is JsonValue tv && tv.TryGetValue<string>(out var teeName) ? teeName : null;
        var simulated = claims[TokenClaimSimulated] is JsonValue sv && sv.TryGetValue<bool>(out var sim) && sim;
        var crlChecked = claims[TokenClaimCrlChecked] is JsonValue cv && cv.TryGetValue<bool>(out var crl) && crl;
        claims.Remove(TokenClaimTee);
        claims.Remove(TokenClaimSimulated);
        claims.Remove(TokenClaimCrlChecked);
        var requester = TakeRequesterClaim(claims);
        if (tee is not (TeeKindNames.Tdx or TeeKindNames.SevSnp))
        {
            return new BrokerProblem(StatusCodes.Status401Unauthorized, ProblemCodes.TokenInvalid, "Invalid token", "the token does not name a TEE kind");
        }

        // The claims as verified when the token was issued; the verification time is the token's issue time.
        var input = new PolicyInput(tee, claims, token.IssuedAt)
        {
            Simulated = simulated,
            CrlChecked = crlChecked,
            TrustsSimulator = _verifiers.Trust.TrustsSimulator,
            Requester = requester is null ? null : new RequesterIdentity(requester.Namespace, requester.ServiceAccount),
            AzureAttestation = FromAzureToken(claims),
        };
        var claimsDigest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(claims.ToJsonString())));
        var details = new Dictionary<string, string>(StringComparer.Ordinal) { ["jkt"] = token.ConfirmationThumbprint, ["jti"] = token.TokenId, ["tee"] = tee, ["via"] = "token" };
        if (client is not null)
        {
            details["client"] = client;
        }

        AddRequesterDetails(details, requester);
        var outcome = await ReleaseAsync(parsed.Value.Key, parsed.Value.KeyIds, input, issueToken: false, now, client, null, claimsDigest, details, cancellationToken);
        await CountFailureAsync(outcome, requester, client, cancellationToken);
        return outcome;
    }

    /// <summary>
    /// The requester's identity from its service-account token, when a validator is configured and a token was sent
    /// (else none: policies with a requester section then deny). A refused token is 401, an unverifiable one 503;
    /// both are audited, without the token.
    /// </summary>
    private async Task<(Kubernetes.RequesterIdentity? Requester, BrokerProblem? Problem)> IdentifyAsync(AttestRequest parsed, string? client, CancellationToken cancellationToken)
    {
        if (KubernetesIdentity?.Validator is not { } validator || parsed.ServiceAccountToken is not { } token)
        {
            return (null, null);
        }

        var result = await validator.ValidateAsync(token, cancellationToken);
        if (result.Outcome == Kubernetes.IdentityOutcome.Valid)
        {
            return (result.Identity, null);
        }

        var error = result.Error ?? "token_invalid";
        var problem = result.Outcome == Kubernetes.IdentityOutcome.Invalid
            ? new BrokerProblem(StatusCodes.Status401Unauthorized, ProblemCodes.InvalidServiceAccountToken, "Invalid service-account token", $"the service-account token was refused ({error}): {result.Message}", new JsonObject { ["error"] = error })
            : new BrokerProblem(StatusCodes.Status503ServiceUnavailable, ProblemCodes.BackendUnavailable, "Identity unavailable", $"the service-account token could not be checked ({error}); retry later", new JsonObject { ["backend"] = "kubernetes", ["cause"] = error });
        var details = new Dictionary<string, string>(StringComparer.Ordinal) { ["jkt"] = parsed.PublicKey.Thumbprint(), ["identity_error"] = error };
        if (client is not null)
        {
            details["client"] = client;
        }

        await AuditDenialAsync(_time.GetUtcNow(), client, problem.Code, null, null, parsed.KeyIds, details, cancellationToken);
        return (null, problem);
    }

    /// <summary>A failed attestation or denied release by a known pod counts towards its quarantine (when enabled).</summary>
    private async Task CountFailureAsync(BrokerOutcome outcome, Kubernetes.RequesterIdentity? requester, string? client, CancellationToken cancellationToken)
    {
        if (requester is not null && KubernetesIdentity is { Quarantine: not null } kubernetes
            && outcome.Problem?.Code is ProblemCodes.PolicyDenied or ProblemCodes.BindingMismatch or ProblemCodes.MalformedEvidence)
        {
            await kubernetes.RecordFailureAsync(requester, client, cancellationToken);
        }
    }

    private static void AddRequesterDetails(Dictionary<string, string> details, Kubernetes.RequesterIdentity? requester)
    {
        if (requester is null)
        {
            return;
        }

        details[RequesterNamespace] = requester.Namespace;
        details[RequesterServiceAccount] = requester.ServiceAccount;
        if (requester.PodName is { } pod)
        {
            details[RequesterPod] = pod;
        }

        if (requester.PodUid is { } uid)
        {
            details[RequesterPodUid] = uid;
        }
    }

    /// <summary>The token's "requester" claim (namespace, service_account, pod, pod_uid), from the audit details of the release.</summary>
    private static JsonObject? RequesterClaim(Dictionary<string, string> details)
    {
        if (!details.TryGetValue(RequesterNamespace, out var ns) || !details.TryGetValue(RequesterServiceAccount, out var sa))
        {
            return null;
        }

        var claim = new JsonObject { ["namespace"] = ns, ["service_account"] = sa };
        if (details.TryGetValue(RequesterPod, out var pod))
        {
            claim["pod"] = pod;
        }

        if (details.TryGetValue(RequesterPodUid, out var uid))
        {
            claim["pod_uid"] = uid;
        }

        return claim;
    }

    /// <summary>Removes the "requester" claim of a result token (signed by this broker) and returns the identity it names.</summary>
    private static Kubernetes.RequesterIdentity? TakeRequesterClaim(JsonObject claims)
    {
        var node = claims[TokenClaimRequester];
        claims.Remove(TokenClaimRequester);
        static string? Text(JsonObject o, string name) => o[name] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 ? s : null;
        if (node is not JsonObject o || Text(o, "namespace") is not { } ns || Text(o, "service_account") is not { } sa)
        {
            return null;
        }

        return new Kubernetes.RequesterIdentity(ns, sa, Text(o, "pod"), Text(o, "pod_uid"), Kubernetes.RequesterIdentity.ServiceAccountPrefix + ns + ":" + sa);
    }

    private (Jwk Key, List<string> KeyIds)? ParseKeysRequest(ReadOnlySpan<byte> body, out BrokerProblem? problem)
    {
        problem = null;
        try
        {
            using var doc = JsonDocument.Parse(body.ToArray(), JsonOptions);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                problem = BrokerProblem.Malformed("the body must be a JSON object");
                return null;
            }

            JsonElement? jwk = null;
            List<string>? keyIds = null;
            foreach (var p in root.EnumerateObject())
            {
                if (p.Name == "public_key" && p.Value.ValueKind == JsonValueKind.Object && jwk is null)
                {
                    jwk = p.Value.Clone();
                }
                else if (p.Name == "key_ids" && p.Value.ValueKind == JsonValueKind.Array && keyIds is null)
                {
                    keyIds = ReadKeyIds(p.Value, out problem);
                    if (keyIds is null)
                    {
                        return null;
                    }
                }
                else
                {
                    problem = BrokerProblem.Malformed($"unexpected, repeated or mistyped member \"{Truncate(p.Name)}\"");
                    return null;
                }
            }

            if (jwk is null || keyIds is null)
            {
                problem = BrokerProblem.Malformed("\"public_key\" and \"key_ids\" are required");
                return null;
            }

            var key = ReadPublicKey(jwk.Value, out problem);
            return key is null ? null : (key, keyIds);
        }
        catch (JsonException)
        {
            problem = BrokerProblem.Malformed("the body is not valid JSON");
            return null;
        }
    }

    private List<string>? ReadKeyIds(JsonElement array, out BrokerProblem? problem)
    {
        problem = null;
        var keyIds = new List<string>();
        foreach (var k in array.EnumerateArray())
        {
            if (k.ValueKind != JsonValueKind.String)
            {
                problem = BrokerProblem.Malformed("\"key_ids\" must be an array of strings");
                return null;
            }

            keyIds.Add(k.GetString()!);
        }

        if (keyIds.Count == 0 || keyIds.Count > _options.MaxKeysPerRequest)
        {
            problem = BrokerProblem.Malformed($"\"key_ids\" must list 1 .. {_options.MaxKeysPerRequest} keys");
            return null;
        }

        if (keyIds.Distinct(StringComparer.Ordinal).Count() != keyIds.Count || keyIds.Any(k => !EmbeddedKeyStore.IsValidKeyId(k)))
        {
            problem = BrokerProblem.Malformed("\"key_ids\" must be distinct valid key ids");
            return null;
        }

        return keyIds;
    }

    /// <summary>The full decision for the audit row; when huge (long allowlists), only the failing codes and rules, so a row always fits.</summary>
    private static string DecisionForAudit(PolicyDecision decision)
    {
        const int MaxLength = 16 * 1024;
        var full = decision.ToJson().ToJsonString();
        if (full.Length <= MaxLength)
        {
            return full;
        }

        var failures = new JsonArray(decision.Failures.Take(64).Select(f => (JsonNode?)new JsonObject { ["code"] = f.Code, ["rule"] = f.Rule }).ToArray());
        return new JsonObject
        {
            ["decision"] = decision.Granted ? Granted : Denied,
            ["policy"] = decision.PolicyName,
            ["policy_version"] = decision.PolicyVersion,
            ["failures"] = failures,
            ["truncated"] = true,
        }.ToJsonString();
    }

    private static string FormatTime(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private async Task AuditDenialAsync(DateTimeOffset now, string? client, string code, string? evidenceDigest, string? claimsDigest, IReadOnlyList<string> keyIds, Dictionary<string, string> details, CancellationToken cancellationToken)
    {
        var d = new Dictionary<string, string>(details, StringComparer.Ordinal) { ["key_ids"] = string.Join(",", keyIds) };
        await AppendAsync(new AuditEvent(AuditKindAttestation, now, client, Denied, [code], evidenceDigest, claimsDigest, null, null, d), cancellationToken);
    }

    /// <summary>The request's "public_key" as a validated public JWK, or null with the invalid-public-key problem.</summary>
    private static Jwk? ReadPublicKey(JsonElement jwk, out BrokerProblem? problem)
    {
        try
        {
            problem = null;
            return Jwk.FromJsonElement(jwk);
        }
        catch (ProtocolException ex)
        {
            problem = new BrokerProblem(StatusCodes.Status400BadRequest, ProblemCodes.InvalidPublicKey, "Invalid public key", $"\"public_key\" is not an acceptable public JWK ({ex.Error})", new JsonObject { ["error"] = ex.Error.ToString() });
            return null;
        }
    }

    private Task AppendAsync(AuditEvent e, CancellationToken cancellationToken) => _storage.Audit.AppendAsync(e, cancellationToken);

    /// <summary>A key backend refused or failed during a release: audited as a denial naming the backend and cause, answered with its problem.</summary>
    private async Task<BrokerOutcome> BackendFailedAsync(Keys.Backends.KeyBackendException ex, string keyId, long? version, DateTimeOffset now, string? client, string? evidenceDigest, string claimsDigest, Dictionary<string, string> details, CancellationToken cancellationToken)
    {
        var keyDetails = new Dictionary<string, string>(details, StringComparer.Ordinal);
        KeyBackendProblems.AddDetails(keyDetails, ex);
        await AppendAsync(new AuditEvent(AuditKindRelease, now, client, Denied, [ex.Code], evidenceDigest, claimsDigest, version, keyId, keyDetails), cancellationToken);
        return KeyBackendProblems.From(ex);
    }

    private AttestRequest? ParseAttest(ReadOnlySpan<byte> body, out BrokerProblem? problem)
    {
        problem = null;
        try
        {
            using var doc = JsonDocument.Parse(body.ToArray(), JsonOptions);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                problem = BrokerProblem.Malformed("the body must be a JSON object");
                return null;
            }

            string? challenge = null, evidence = null, saToken = null, evidenceFormat = null;
            JsonElement? jwk = null;
            List<string>? keyIds = null;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in root.EnumerateObject())
            {
                if (!seen.Add(p.Name))
                {
                    problem = BrokerProblem.Malformed($"member \"{Truncate(p.Name)}\" appears twice");
                    return null;
                }

                switch (p.Name)
                {
                    case "challenge" when p.Value.ValueKind == JsonValueKind.String:
                        challenge = p.Value.GetString();
                        break;
                    case "evidence" when p.Value.ValueKind == JsonValueKind.String:
                        evidence = p.Value.GetString();
                        break;
                    case "evidence_format" when p.Value.ValueKind == JsonValueKind.String:
                        evidenceFormat = p.Value.GetString();
                        break;
                    case "service_account_token" when p.Value.ValueKind is JsonValueKind.String or JsonValueKind.Null:
                        saToken = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : null;
                        break;
                    case "public_key" when p.Value.ValueKind == JsonValueKind.Object:
                        jwk = p.Value.Clone();
                        break;
                    case "key_ids" when p.Value.ValueKind == JsonValueKind.Array:
                        keyIds = ReadKeyIds(p.Value, out problem);
                        if (keyIds is null)
                        {
                            return null;
                        }

                        break;
                    case "challenge" or "evidence" or "evidence_format" or "service_account_token" or "public_key" or "key_ids":
                        problem = BrokerProblem.Malformed($"member \"{p.Name}\" has the wrong JSON type");
                        return null;
                    default:
                        problem = BrokerProblem.Malformed($"unknown member \"{Truncate(p.Name)}\"");
                        return null;
                }
            }

            if (challenge is null || evidence is null || jwk is null || keyIds is null)
            {
                problem = BrokerProblem.Malformed("\"challenge\", \"evidence\", \"public_key\" and \"key_ids\" are required");
                return null;
            }

            if (evidenceFormat is not (null or EvidenceFormatRaw or EvidenceFormatAzureToken))
            {
                problem = BrokerProblem.Malformed($"\"evidence_format\" must be \"{EvidenceFormatRaw}\" (the default) or \"{EvidenceFormatAzureToken}\"");
                return null;
            }

            if (evidenceFormat == EvidenceFormatAzureToken)
            {
                return ParseAzureTokenRequest(challenge, evidence, jwk.Value, keyIds, saToken, out problem);
            }

            var evidenceBytes = DecodeEvidence(evidence);
            if (evidenceBytes is null)
            {
                problem = new BrokerProblem(StatusCodes.Status400BadRequest, ProblemCodes.MalformedEvidence, "Malformed evidence", $"\"evidence\" must be base64url (no padding) of 1 .. {MaxEvidenceBytes} bytes");
                return null;
            }

            var key = ReadPublicKey(jwk.Value, out problem);
            if (key is null)
            {
                return null;
            }

            return new AttestRequest(challenge, evidenceBytes, key, keyIds, saToken);
        }
        catch (JsonException)
        {
            problem = BrokerProblem.Malformed("the body is not valid JSON");
            return null;
        }
    }

    private static byte[]? DecodeEvidence(string text)
    {
        if (text.Length == 0 || text.Length > (MaxEvidenceBytes * 4 / 3) + 4)
        {
            return null;
        }

        var length = text.Length * 3 / 4;
        var buffer = new byte[length];
        return NonceService.TryBase64UrlDecode(text, buffer) ? buffer : null;
    }

    private static byte[]? TryHex(string hex)
    {
        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "...";

    private static readonly JsonDocumentOptions JsonOptions = new() { MaxDepth = 16, AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow };

    [LoggerMessage(Level = LogLevel.Information, Message = "released {Count} key(s) to a {Tee} workload")]
    private static partial void LogReleased(ILogger logger, int count, string tee);
}

/// <summary>Either a JSON response body or a problem.</summary>
public sealed record BrokerOutcome(JsonObject? Body, BrokerProblem? Problem)
{
    public static implicit operator BrokerOutcome(BrokerProblem problem) => new(null, problem);
}
