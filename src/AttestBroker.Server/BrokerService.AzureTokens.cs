using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Keys.Backends;
using AttestBroker.Keys.Backends.AzureKeyVault;
using AttestBroker.Policy;
using AttestBroker.Protocol;
using AttestBroker.Storage;
using AttestBroker.Verification;
using AttestBroker.Verification.Azure;
using Microsoft.AspNetCore.Http;

namespace AttestBroker.Server;

/// <summary>
/// Microsoft Azure Attestation tokens as evidence in /v1/attest (docs/protocol.md §7.2.1), and Secure Key Release
/// against the pod's token at release time (docs/backends.md).
/// </summary>
public sealed partial class BrokerService
{
    /// <summary>The <c>evidence_format</c> of raw TDX quotes and SNP reports (the default when the member is absent).</summary>
    public const string EvidenceFormatRaw = "raw";

    /// <summary>The <c>evidence_format</c> of a Microsoft Azure Attestation token (a compact JWT) sent as <c>evidence</c>.</summary>
    public const string EvidenceFormatAzureToken = "azure-attestation-token";

    /// <summary>The <c>evidence_source</c> claim (and audit detail, and response member) of results from an Azure token.</summary>
    public const string EvidenceSourceAzure = "azure_attestation";

    /// <summary>Per-key refusal and audit reason: the key's backend releases only against an Azure Attestation token.</summary>
    public const string AttestationTokenRequiredReason = "attestation_token_required";

    private const string ClaimEvidenceSource = "evidence_source";
    private const int MaxAzureTokenLength = 64 * 1024;

    // Verifier reasons that mean the token itself was not issued and signed by the configured instance, or is not
    // valid now: 401 token-invalid with the reason in "error".
    private static readonly HashSet<string> TokenRefusals = new(StringComparer.Ordinal)
    {
        AzureAttestationTokenVerifier.ReasonKeyUnknown,
        AzureAttestationTokenVerifier.ReasonSignatureInvalid,
        AzureAttestationTokenVerifier.ReasonIssuerMismatch,
        AzureAttestationTokenVerifier.ReasonExpired,
        AzureAttestationTokenVerifier.ReasonNotYetValid,
    };

    // Reasons that mean the token cannot be read as evidence: 400 malformed-evidence.
    private static readonly HashSet<string> TokenUnreadable = new(StringComparer.Ordinal)
    {
        AzureAttestationTokenVerifier.ReasonMalformed,
        AzureAttestationTokenVerifier.ReasonUnsupportedType,
        AzureAttestationTokenVerifier.ReasonClaimsInvalid,
    };

    /// <summary>Azure Attestation tokens as evidence (Broker:AzureAttestation); null: off, a token request is 400 evidence-kind-disabled.</summary>
    public AzureAttestationTokenVerifier? AzureTokens { get; init; }

    private JsonArray? _skrWrappingKeys;

    /// <summary>The SKR backends of this broker, directly or behind the router.</summary>
    private IEnumerable<KeyVaultSecureKeyReleaseBackend> SkrBackends() => _keys switch
    {
        KeyVaultSecureKeyReleaseBackend direct => [direct],
        KeyBackendRouter router => router.Backends.OfType<KeyVaultSecureKeyReleaseBackend>(),
        _ => [],
    };

    /// <summary>
    /// The public RSA wrapping keys of the azure-skr backends (kid = backend name), for the challenge response: a pod
    /// that wants an SKR key puts the one of its key's backend into its runtime data next to its own key.
    /// </summary>
    private JsonArray SkrWrappingKeys()
    {
        if (_skrWrappingKeys is null)
        {
            var keys = new JsonArray();
            foreach (var skr in SkrBackends())
            {
                keys.Add(SkrPublicJwk(skr));
            }

            _skrWrappingKeys = keys;
        }

        return (JsonArray)_skrWrappingKeys.DeepClone();
    }

    private static JsonObject SkrPublicJwk(KeyVaultSecureKeyReleaseBackend skr)
    {
        var p = skr.WrappingPublicKey;
        return new JsonObject
        {
            ["kid"] = skr.Name,
            ["kty"] = "RSA",
            ["key_ops"] = new JsonArray("encrypt"),
            ["n"] = NonceService.Base64UrlEncode(p.Modulus!),
            ["e"] = NonceService.Base64UrlEncode(p.Exponent!),
        };
    }

    /// <summary>
    /// True when the (signature-verified) token's x-ms-runtime.keys holds an RSA key equal to the SKR backend's
    /// wrapping key: else Key Vault would wrap the release to a key the broker cannot unwrap.
    /// </summary>
    private static bool TokenCarriesWrappingKey(string token, KeyVaultSecureKeyReleaseBackend skr)
    {
        var p = skr.WrappingPublicKey;
        try
        {
            var bytes = System.Buffers.Text.Base64Url.DecodeFromChars(token.Split('.')[1]);
            using var doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 32 });
            var root = doc.RootElement;
            if (root.TryGetProperty("x-ms-isolation-tee", out var tee) && tee.ValueKind == JsonValueKind.Object && !root.TryGetProperty("x-ms-runtime", out _))
            {
                root = tee;
            }

            if (!root.TryGetProperty("x-ms-runtime", out var runtime) || runtime.ValueKind != JsonValueKind.Object
                || !runtime.TryGetProperty("keys", out var keys) || keys.ValueKind != JsonValueKind.Array)
            {
                return false;
            }

            foreach (var k in keys.EnumerateArray())
            {
                if (k.ValueKind == JsonValueKind.Object && k.TryGetProperty("kty", out var kty) && kty.ValueKind == JsonValueKind.String && kty.GetString() == "RSA"
                    && k.TryGetProperty("n", out var n) && n.ValueKind == JsonValueKind.String && k.TryGetProperty("e", out var e) && e.ValueKind == JsonValueKind.String
                    && n.GetString() == NonceService.Base64UrlEncode(p.Modulus!) && e.GetString() == NonceService.Base64UrlEncode(p.Exponent!))
                {
                    return true;
                }
            }

            return false;
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            return false;
        }
    }

    private static BrokerProblem AzureTokensDisabledProblem() =>
        new(StatusCodes.Status400BadRequest, ProblemCodes.EvidenceKindDisabled, "Evidence format not enabled",
            $"this broker does not accept \"evidence_format\": \"{EvidenceFormatAzureToken}\": the operator has not enabled Azure Attestation tokens (Broker:AzureAttestation:Enabled); send raw evidence instead",
            new JsonObject { ["evidence_format"] = EvidenceFormatAzureToken });

    private static BrokerProblem AttestationTokenRequiredProblem(JsonArray perKey) =>
        new(StatusCodes.Status403Forbidden, ProblemCodes.AttestationTokenRequired, "Attestation token required",
            "a requested key is released by Azure Key Vault Secure Key Release, which needs the pod's Azure Attestation token: attest with \"evidence_format\": \"azure-attestation-token\" (a result token on /v1/keys cannot release it); no key was released",
            new JsonObject { ["keys"] = perKey });

    /// <summary>True when the result token's claims say they came from an Azure Attestation token (the broker signed them).</summary>
    private static bool FromAzureToken(JsonObject claims) =>
        claims[ClaimEvidenceSource] is JsonValue v && v.TryGetValue<string>(out var source) && source == EvidenceSourceAzure;

    /// <summary>The backend holding <paramref name="keyId"/> when it releases only against an attestation token (Key Vault SKR); else null.</summary>
    private async Task<IAttestationTokenKeyBackend?> TokenBackendForAsync(string keyId, CancellationToken cancellationToken) => _keys switch
    {
        IAttestationTokenKeyBackend direct => direct,
        KeyBackendRouter router => await router.BackendForAsync(keyId, cancellationToken) as IAttestationTokenKeyBackend,
        _ => null,
    };

    private static AttestRequest? ParseAzureTokenRequest(string challenge, string token, JsonElement jwk, List<string> keyIds, string? saToken, out BrokerProblem? problem)
    {
        if (!LooksLikeCompactJws(token))
        {
            problem = new BrokerProblem(StatusCodes.Status400BadRequest, ProblemCodes.MalformedEvidence, "Malformed evidence",
                $"with \"evidence_format\": \"{EvidenceFormatAzureToken}\", \"evidence\" must be the Azure Attestation token as a compact JWS (three base64url segments, at most {MaxAzureTokenLength} characters)");
            return null;
        }

        var key = ReadPublicKey(jwk, out problem);
        return key is null ? null : new AttestRequest(challenge, Encoding.UTF8.GetBytes(token), key, keyIds, saToken) { AzureToken = token };
    }

    private static bool LooksLikeCompactJws(string token)
    {
        if (token.Length is 0 or > MaxAzureTokenLength)
        {
            return false;
        }

        var dots = 0;
        foreach (var c in token)
        {
            if (c == '.')
            {
                dots++;
            }
            else if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_'))
            {
                return false;
            }
        }

        return dots == 2;
    }

    /// <summary>
    /// After the challenge and the replay store: verify the token against the configured attestation instance with the
    /// challenge's nonce and the request's public key as the binding, map its failures onto the raw-evidence problems,
    /// and appraise and release as for raw evidence, marked as coming from an Azure token.
    /// </summary>
    private async Task<BrokerOutcome> AttestAzureTokenAsync(AttestRequest parsed, string token, Challenge challenge, Kubernetes.RequesterIdentity? requester, DateTimeOffset now,
        string? client, string evidenceDigest, Dictionary<string, string> baseDetails, CancellationToken cancellationToken)
    {
        baseDetails[ClaimEvidenceSource] = EvidenceSourceAzure;
        var expected = new AzureTokenExpectations(NonceService.Base64UrlEncode(challenge.Nonce), parsed.PublicKey);
        var result = await AzureTokens!.VerifyAsync(token, expected, cancellationToken);
        var claims = result.Claims.ToJson();
        var claimsDigest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(claims.ToJsonString())));
        if (claims["attestation_service"] is JsonValue service && service.TryGetValue<string>(out var issuer))
        {
            baseDetails["attestation_service"] = issuer;
        }

        var problem = TokenProblem(result, challenge.Tee);
        if (problem is not null)
        {
            await AuditDenialAsync(now, client, problem.Code, evidenceDigest, claimsDigest, parsed.KeyIds, baseDetails, cancellationToken);
            return problem;
        }

        var input = new PolicyInput(result.Tee.ToWireName(), claims, now)
        {
            // Empty here unless the verifier grows a reason this mapping does not know: then every policy denies (fail closed).
            VerificationFailures = result.Reasons.Select(r => new VerificationFailure(r.Code, r.Message)).ToList(),
            Simulated = false,
            CrlChecked = false,
            AzureAttestation = true,
            TrustsSimulator = _verifiers.Trust.TrustsSimulator,
            Requester = requester is null ? null : new RequesterIdentity(requester.Namespace, requester.ServiceAccount),
        };

        foreach (var keyId in parsed.KeyIds)
        {
            if (await TokenBackendForAsync(keyId, cancellationToken) is KeyVaultSecureKeyReleaseBackend skr && !TokenCarriesWrappingKey(token, skr))
            {
                var p = new BrokerProblem(StatusCodes.Status403Forbidden, ProblemCodes.AttestationTokenRequired, "Attestation token lacks the wrapping key",
                    $"key \"{keyId}\" is released by Azure Key Vault Secure Key Release to the broker's RSA wrapping key, which the token's x-ms-runtime.keys does not carry: put the \"{skr.Name}\" key of the challenge's skr_wrapping_keys into the runtime data; no key was released",
                    new JsonObject { ["key_id"] = keyId, ["error"] = "skr_wrapping_key_missing", ["skr_wrapping_key"] = SkrPublicJwk(skr) });
                await AppendAsync(new AuditEvent(AuditKindRelease, now, client, Denied, ["skr_wrapping_key_missing"], evidenceDigest, claimsDigest, null, keyId, baseDetails), cancellationToken);
                return p;
            }
        }

        var outcome = await ReleaseAsync(parsed.PublicKey, parsed.KeyIds, input, issueToken: true, now, client, evidenceDigest, claimsDigest, baseDetails, cancellationToken, attestationToken: token);
        if (outcome.Body is { } body)
        {
            body[ClaimEvidenceSource] = EvidenceSourceAzure;
        }

        return outcome;
    }

    /// <summary>The problem for a token the verifier refused, in the order: keys unavailable, unreadable, refused token, binding; null when none applies.</summary>
    private static BrokerProblem? TokenProblem(VerificationResult result, TeeKind challengeTee)
    {
        VerificationReason? First(Func<string, bool> match) => result.Reasons.FirstOrDefault(r => match(r.Code));
        string Codes(Func<string, bool> match) => string.Join(", ", result.Reasons.Where(r => match(r.Code)).Select(r => $"{r.Code}: {r.Message}"));

        if (First(c => c == AzureAttestationTokenVerifier.ReasonKeysUnavailable) is { } unavailable)
        {
            return new BrokerProblem(StatusCodes.Status503ServiceUnavailable, ProblemCodes.CollateralUnavailable, "Collateral unavailable",
                "the Azure Attestation instance's signing keys could not be fetched; retry later",
                new JsonObject { ["reason"] = unavailable.Message, ["error"] = unavailable.Code });
        }

        if (First(TokenUnreadable.Contains) is { } unreadable)
        {
            return new BrokerProblem(StatusCodes.Status400BadRequest, ProblemCodes.MalformedEvidence, "Malformed evidence",
                "the Azure Attestation token cannot be used as evidence: " + Codes(TokenUnreadable.Contains), new JsonObject { ["error"] = unreadable.Code });
        }

        if (First(TokenRefusals.Contains) is { } refused)
        {
            return new BrokerProblem(StatusCodes.Status401Unauthorized, ProblemCodes.TokenInvalid, "Invalid attestation token",
                "the Azure Attestation token was refused: " + Codes(TokenRefusals.Contains), new JsonObject { ["error"] = refused.Code });
        }

        static bool Binding(string c) => c is AzureAttestationTokenVerifier.ReasonNonceMismatch or AzureAttestationTokenVerifier.ReasonKeyBindingMismatch;
        if (First(Binding) is { } binding)
        {
            return new BrokerProblem(StatusCodes.Status403Forbidden, ProblemCodes.BindingMismatch, "Evidence not bound to this request",
                "the token's runtime claims do not bind this challenge and public key: " + Codes(Binding), new JsonObject { ["error"] = binding.Code });
        }

        if (result.Tee != challengeTee)
        {
            return new BrokerProblem(StatusCodes.Status400BadRequest, ProblemCodes.MalformedEvidence, "Malformed evidence",
                $"the Azure Attestation token is for {result.Tee.ToWireName()}, the challenge for {challengeTee.ToWireName()}", new JsonObject { ["error"] = "tee_mismatch" });
        }

        return null;
    }
}
