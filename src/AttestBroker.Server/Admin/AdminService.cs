using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Keys;
using AttestBroker.Keys.Backends;
using AttestBroker.Policy;
using AttestBroker.Protocol;
using AttestBroker.Storage;
using AttestBroker.Verification;
using Microsoft.AspNetCore.Http;

namespace AttestBroker.Server.Admin;

/// <summary>
/// What the admin endpoints do, over the broker's keystore, policy store, audit log and verifiers. Every method returns
/// a JSON body or a <see cref="BrokerProblem"/>; bodies never hold key bytes.
/// </summary>
public sealed class AdminService
{
    public const int MaxEvidenceBytes = 64 * 1024;
    private const int MaxImportBodyBytes = 4096;
    private static readonly string[] YamlTypes = ["application/yaml", "application/x-yaml", "text/yaml"];

    private readonly IBrokerStorage _storage;
    private readonly IKeyBackend _keys;
    private readonly VerifierSet _verifiers;
    private readonly BrokerOptions _options;
    private readonly AdminSetup _setup;

    public AdminService(IBrokerStorage storage, IKeyBackend keys, VerifierSet verifiers, BrokerOptions options, AdminSetup setup)
    {
        _storage = storage;
        _keys = keys;
        _verifiers = verifiers;
        _options = options;
        _setup = setup;
    }

    private DateTimeOffset Now => _setup.Time.GetUtcNow();

    // ---- keys ----

    public async Task<BrokerOutcome> ListKeysAsync(CancellationToken ct)
    {
        var list = new JsonArray();
        IReadOnlyList<KeyInfo> keys;
        try
        {
            keys = await _keys.ListAsync(ct).ConfigureAwait(false);
        }
        catch (KeyBackendException ex)
        {
            return KeyBackendProblems.From(ex);
        }

        foreach (var k in keys)
        {
            list.Add(await KeyJsonAsync(k, ct).ConfigureAwait(false));
        }

        return new BrokerOutcome(new JsonObject { ["keys"] = list }, null);
    }

    public async Task<BrokerOutcome> GetKeyAsync(string id, AdminAuditContext audit, CancellationToken ct)
    {
        if (InvalidKeyId(id, audit) is { } bad)
        {
            return bad;
        }

        KeyInfo? info;
        try
        {
            info = await _keys.GetInfoAsync(id, ct).ConfigureAwait(false);
        }
        catch (KeyBackendException ex)
        {
            audit.Details["backend"] = ex.Backend;
            return KeyBackendProblems.From(ex);
        }

        if (info is not null)
        {
            audit.Details["backend"] = info.Backend;
        }

        return info is null ? UnknownKey(id) : new BrokerOutcome(await KeyJsonAsync(info, ct).ConfigureAwait(false), null);
    }

    /// <summary>POST /v1/admin/keys <c>{"id":"...", "backend"?: "..."}</c>: a new random AES-256 key in the named (or default) backend.</summary>
    public async Task<BrokerOutcome> CreateKeyAsync(byte[] body, AdminAuditContext audit, CancellationToken ct)
    {
        string? id = null;
        string? backend = null;
        try
        {
            using var doc = JsonDocument.Parse(body, JsonOptions);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return BrokerProblem.Malformed("the body must be a JSON object {\"id\": \"<key id>\"}");
            }

            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "backend" && p.Value.ValueKind == JsonValueKind.String && backend is null)
                {
                    backend = p.Value.GetString();
                    continue;
                }

                if (p.Name != "id" || p.Value.ValueKind != JsonValueKind.String || id is not null)
                {
                    return BrokerProblem.Malformed("the body must be {\"id\": \"<key id>\", \"backend\"?: \"<backend name>\"}: unknown, repeated or mistyped member \"" + Truncate(p.Name) + "\"");
                }

                id = p.Value.GetString();
            }
        }
        catch (JsonException)
        {
            return BrokerProblem.Malformed("the body is not valid JSON");
        }

        if (id is null)
        {
            return BrokerProblem.Malformed("\"id\" is required");
        }

        if (InvalidKeyId(id, audit) is { } bad)
        {
            return bad;
        }

        if (UnknownBackend(backend, audit) is { } unknown)
        {
            return unknown;
        }

        return await KeyChangeAsync(() => _keys is KeyBackendRouter router ? router.CreateAsync(id, backend, ct) : _keys.CreateAsync(id, ct), audit, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// POST /v1/admin/keys/{id}/import <c>{"key":"&lt;base64 of 32 bytes&gt;"}</c>. The body is read into one buffer
    /// (no copies), decoded into another; both are zeroed before returning.
    /// </summary>
    public async Task<BrokerOutcome> ImportKeyAsync(HttpContext context, string id, AdminAuditContext audit, CancellationToken ct)
    {
        if (InvalidKeyId(id, audit) is { } bad)
        {
            return bad;
        }

        if (!IsJson(context.Request.ContentType))
        {
            return UnsupportedMediaType("application/json");
        }

        var body = new byte[MaxImportBodyBytes];
        var key = new byte[IKeyBackend.KeyLength];
        try
        {
            var length = 0;
            int read;
            while ((read = await context.Request.Body.ReadAsync(body.AsMemory(length), ct).ConfigureAwait(false)) > 0)
            {
                length += read;
                if (length == body.Length)
                {
                    // A body that fills the buffer is too long for one key (drain nothing more).
                    return new BrokerProblem(StatusCodes.Status413PayloadTooLarge, ProblemCodes.BodyTooLarge, "Body too large", $"an import body is at most {MaxImportBodyBytes - 1} bytes");
                }
            }

            if (!TryReadImportBody(body.AsSpan(0, length), key, out var backend, out var problem))
            {
                return problem!;
            }

            if (UnknownBackend(backend, audit) is { } unknown)
            {
                return unknown;
            }

            return await KeyChangeAsync(() => _keys is KeyBackendRouter router ? router.ImportAsync(id, key, backend, ct) : _keys.ImportAsync(id, key, ct), audit, ct).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(body);
            CryptographicOperations.ZeroMemory(key);
        }
    }

    public Task<BrokerOutcome> SetKeyStateAsync(string id, bool disable, AdminAuditContext audit, CancellationToken ct) =>
        InvalidKeyId(id, audit) is { } bad
            ? Task.FromResult<BrokerOutcome>(bad)
            : KeyChangeAsync(() => disable ? _keys.DisableAsync(id, ct) : _keys.EnableAsync(id, ct), audit, ct);

    /// <summary>
    /// POST /v1/admin/kek/rotate, optionally <c>{"backend": "name"}</c>: without a backend (or naming the embedded
    /// one) a KEK rotation: a new KEK version, every key under the KEK (embedded and Kubernetes Secrets) re-wrapped
    /// while releases continue, unused versions retired. Naming an external backend rotates that backend (Vault
    /// Transit: rewrap to the newest Transit key version, rotating it first when RotateInVault; Key Vault: rewrap under
    /// the newest key version; Kubernetes Secrets: rewrap under the current KEK).
    /// </summary>
    public async Task<BrokerOutcome> RotateKekAsync(byte[] body, AdminAuditContext audit, CancellationToken ct)
    {
        string? backend = null;
        if (body.Length > 0)
        {
            try
            {
                using var doc = JsonDocument.Parse(body, JsonOptions);
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                {
                    return BrokerProblem.Malformed("the body must be empty or {\"backend\": \"<backend name>\"}");
                }

                foreach (var p in doc.RootElement.EnumerateObject())
                {
                    if (p.Name != "backend" || p.Value.ValueKind != JsonValueKind.String || backend is not null)
                    {
                        return BrokerProblem.Malformed("the body must be empty or {\"backend\": \"<backend name>\"}: unknown, repeated or mistyped member \"" + Truncate(p.Name) + "\"");
                    }

                    backend = p.Value.GetString();
                }
            }
            catch (JsonException)
            {
                return BrokerProblem.Malformed("the body is not valid JSON");
            }
        }

        if (UnknownBackend(backend, audit) is { } unknown)
        {
            return unknown;
        }

        var name = backend ?? EmbeddedKeyStore.DefaultBackendName;
        audit.Details["backend"] = name;
        KekRotationResult result;
        try
        {
            result = backend is not null && _keys is KeyBackendRouter router
                ? await router.RotateBackendAsync(backend, ct).ConfigureAwait(false)
                : await _keys.RotateKekAsync(ct).ConfigureAwait(false);
        }
        catch (KeyBackendException ex)
        {
            return KeyBackendProblems.From(ex);
        }
        catch (KeyStoreException ex)
        {
            return KeyBackendProblems.From(ex);
        }

        audit.Details["kek_version"] = result.KekVersion.ToString(CultureInfo.InvariantCulture);
        audit.Details["rewrapped"] = result.Rewrapped.ToString(CultureInfo.InvariantCulture);
        return new BrokerOutcome(new JsonObject
        {
            ["backend"] = name,
            ["kek_version"] = result.KekVersion,
            ["rewrapped"] = result.Rewrapped,
            ["retired_versions"] = new JsonArray([.. result.RetiredVersions.Select(v => (JsonNode?)v)]),
        }, null);
    }

    // ---- policies ----

    /// <summary>PUT /v1/admin/policies/{keyId}: the body is the document (application/yaml or application/json).</summary>
    public async Task<BrokerOutcome> SetPolicyAsync(HttpContext context, string keyId, AdminAuditContext audit, CancellationToken ct)
    {
        if (InvalidKeyId(keyId, audit) is { } bad)
        {
            return bad;
        }

        var mediaType = MediaType(context.Request.ContentType);
        var json = mediaType == BrokerEndpoints.JsonContentType;
        if (!json && !YamlTypes.Contains(mediaType))
        {
            return UnsupportedMediaType("application/yaml or application/json");
        }

        var (bytes, tooLarge) = await BrokerEndpoints.ReadLimitedAsync(context, _options.MaxRequestBodyBytes).ConfigureAwait(false);
        if (tooLarge is not null)
        {
            return tooLarge;
        }

        var (document, policy, problem) = ParsePolicyText(bytes, json ? "json" : "yaml");
        if (problem is not null)
        {
            return problem;
        }

        var current = await _storage.Policies.GetCurrentAsync(keyId, ct).ConfigureAwait(false);
        var changed = current is null || current.Document != document;
        var stored = changed
            ? await _storage.Policies.SetAsync(keyId, document!, audit.Principal.Subject, $"policy {policy!.Name} version {policy.Version}", ct).ConfigureAwait(false)
            : current!;
        audit.PolicyVersion = stored.Version;
        audit.Details["sha256"] = stored.Sha256Hex;
        audit.Details["policy"] = policy!.Name;
        audit.Details["changed"] = changed ? "true" : "false";
        var body = PolicyJson(stored, includeDocument: false);
        body["changed"] = changed;
        return new BrokerOutcome(body, null);
    }

    public async Task<BrokerOutcome> GetPolicyAsync(string keyId, AdminAuditContext audit, CancellationToken ct)
    {
        if (InvalidKeyId(keyId, audit) is { } bad)
        {
            return bad;
        }

        var current = await _storage.Policies.GetCurrentAsync(keyId, ct).ConfigureAwait(false);
        if (current is null)
        {
            return new BrokerProblem(StatusCodes.Status404NotFound, AdminProblems.PolicyNotFound, "No policy", $"key \"{keyId}\" has no release policy", new JsonObject { ["key_id"] = keyId });
        }

        audit.PolicyVersion = current.Version;
        return new BrokerOutcome(PolicyJson(current, includeDocument: true), null);
    }

    public async Task<BrokerOutcome> PolicyHistoryAsync(string keyId, AdminAuditContext audit, CancellationToken ct)
    {
        if (InvalidKeyId(keyId, audit) is { } bad)
        {
            return bad;
        }

        var history = await _storage.Policies.HistoryAsync(keyId, ct).ConfigureAwait(false);
        if (history.Count == 0)
        {
            return new BrokerProblem(StatusCodes.Status404NotFound, AdminProblems.PolicyNotFound, "No policy", $"key \"{keyId}\" has no release policy", new JsonObject { ["key_id"] = keyId });
        }

        return new BrokerOutcome(new JsonObject
        {
            ["key_id"] = keyId,
            ["current_version"] = history[^1].Version,
            ["versions"] = new JsonArray([.. history.Select(v => (JsonNode?)PolicyJson(v, includeDocument: false))]),
        }, null);
    }

    public async Task<BrokerOutcome> GetPolicyVersionAsync(string keyId, long version, AdminAuditContext audit, CancellationToken ct)
    {
        if (InvalidKeyId(keyId, audit) is { } bad)
        {
            return bad;
        }

        audit.PolicyVersion = version;
        var stored = version < 1 ? null : await _storage.Policies.GetVersionAsync(keyId, version, ct).ConfigureAwait(false);
        return stored is null
            ? new BrokerProblem(StatusCodes.Status404NotFound, AdminProblems.PolicyVersionNotFound, "No such policy version", $"key \"{keyId}\" has no policy version {version}", new JsonObject { ["key_id"] = keyId, ["version"] = version })
            : new BrokerOutcome(PolicyJson(stored, includeDocument: true), null);
    }

    /// <summary>
    /// POST /v1/admin/policies/{keyId}/test <c>{"evidence": base64, "at"?: RFC 3339, "policy"?: document text}</c>:
    /// verifies the evidence with the broker's verifiers and trust anchors and evaluates the stored policy (or the
    /// given one). Releases nothing, consumes no nonce; the REPORT_DATA binding is not checked (there is no nonce).
    /// </summary>
    public async Task<BrokerOutcome> TestPolicyAsync(byte[] body, string keyId, AdminAuditContext audit, CancellationToken ct)
    {
        if (InvalidKeyId(keyId, audit) is { } bad)
        {
            return bad;
        }

        string? evidenceText = null, atText = null, policyText = null;
        try
        {
            using var doc = JsonDocument.Parse(body, JsonOptions);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return BrokerProblem.Malformed("the body must be a JSON object");
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(p.Name) || p.Name is not ("evidence" or "at" or "policy"))
                {
                    return BrokerProblem.Malformed($"unknown or repeated member \"{Truncate(p.Name)}\" (expected evidence, at, policy)");
                }

                if (p.Value.ValueKind == JsonValueKind.Null && p.Name != "evidence")
                {
                    continue;
                }

                if (p.Value.ValueKind != JsonValueKind.String)
                {
                    return BrokerProblem.Malformed($"member \"{p.Name}\" must be a string");
                }

                switch (p.Name)
                {
                    case "evidence": evidenceText = p.Value.GetString(); break;
                    case "at": atText = p.Value.GetString(); break;
                    default: policyText = p.Value.GetString(); break;
                }
            }
        }
        catch (JsonException)
        {
            return BrokerProblem.Malformed("the body is not valid JSON");
        }

        if (evidenceText is null)
        {
            return BrokerProblem.Malformed("\"evidence\" is required");
        }

        var evidence = DecodeBase64(evidenceText);
        if (evidence is not { Length: > 0 and <= MaxEvidenceBytes })
        {
            return new BrokerProblem(StatusCodes.Status400BadRequest, ProblemCodes.MalformedEvidence, "Malformed evidence", $"\"evidence\" must be base64 (or base64url) of 1 .. {MaxEvidenceBytes} bytes");
        }

        var at = Now;
        if (atText is not null && !TryParseTime(atText, out at))
        {
            return BrokerProblem.Malformed("\"at\" must be an RFC 3339 time with a zone, e.g. 2026-03-20T10:41:14Z");
        }

        ReleasePolicy policy;
        JsonObject source;
        if (policyText is not null)
        {
            var (_, parsed, problem) = ParsePolicyText(Encoding.UTF8.GetBytes(policyText), policyText.TrimStart().StartsWith('{') ? "json" : "yaml");
            if (problem is not null)
            {
                return problem;
            }

            policy = parsed!;
            source = new JsonObject { ["from"] = "request" };
            audit.Details["policy_source"] = "request";
        }
        else
        {
            var stored = await _storage.Policies.GetCurrentAsync(keyId, ct).ConfigureAwait(false);
            if (stored is null)
            {
                return new BrokerProblem(StatusCodes.Status404NotFound, AdminProblems.PolicyNotFound, "No policy", $"key \"{keyId}\" has no release policy; send one in \"policy\"", new JsonObject { ["key_id"] = keyId });
            }

            try
            {
                policy = ReleasePolicy.Parse(stored.Document);
            }
            catch (PolicyFormatException ex)
            {
                return new BrokerProblem(StatusCodes.Status400BadRequest, AdminProblems.InvalidPolicy, "Stored policy invalid", $"the stored policy version {stored.Version} no longer parses: {ex.Message}", new JsonObject { ["path"] = ex.Path });
            }

            audit.PolicyVersion = stored.Version;
            source = new JsonObject { ["from"] = "store", ["version"] = stored.Version, ["sha256"] = stored.Sha256Hex };
        }

        var tee = EvidenceDetector.Detect(evidence);
        if (tee is null || !_verifiers.Verifiers.TryGetValue(tee.Value, out var verifier))
        {
            return new BrokerProblem(StatusCodes.Status400BadRequest, ProblemCodes.MalformedEvidence, "Malformed evidence", "the evidence is neither a TDX quote (v4/v5) nor an SEV-SNP attestation report");
        }

        var context = new VerificationContext(at, _verifiers.Trust) { SkipCrl = _verifiers.SkipCrl };
        var result = await verifier.VerifyAsync(evidence, context, ct).ConfigureAwait(false);
        var input = new PolicyInput(result.Tee.ToWireName(), result.Claims.ToJson(), at)
        {
            VerificationFailures = [.. result.Reasons.Select(r => new VerificationFailure(r.Code, r.Message))],
            Simulated = result.Simulated,
            CrlChecked = result.CrlChecked,
            TrustsSimulator = _verifiers.Trust.TrustsSimulator,
        };
        var decision = PolicyEvaluator.Evaluate(policy, input);
        audit.Details["dry_run_decision"] = decision.Granted ? "granted" : "denied";
        audit.Details["evidence_digest"] = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(evidence));

        // The admin sees every failing rule, also for policies that hide them from requesters (explain: false).
        var response = decision.ToJson();
        response["key_id"] = keyId;
        response["policy_source"] = source;
        response["evaluated_at"] = FormatTime(at);
        response["dry_run"] = true;
        response["released"] = false;
        response["report_data_binding"] = "not checked: a dry run has no nonce and no public key, so REPORT_DATA is not compared (a real release checks it)";
        response["verification"] = new JsonObject
        {
            ["tee"] = result.Tee.ToWireName(),
            ["accepted"] = result.IsAccepted,
            ["simulated"] = result.Simulated,
            ["crl_checked"] = result.CrlChecked,
            ["reasons"] = new JsonArray([.. result.Reasons.Select(r => (JsonNode?)new JsonObject { ["code"] = r.Code, ["message"] = r.Message })]),
        };
        return new BrokerOutcome(response, null);
    }

    // ---- audit ----

    public async Task<BrokerOutcome> VerifyAuditAsync(CancellationToken ct)
    {
        using var key = ECDsa.Create();
        key.ImportFromPem(_setup.HeadPublicKeyPem);
        var v = await _storage.Audit.VerifyAsync(key, ct).ConfigureAwait(false);
        var body = new JsonObject
        {
            ["valid"] = v.IsValid,
            ["rows_checked"] = v.RowsChecked,
            ["last_sequence"] = v.LastSequence,
            ["heads_checked"] = v.HeadsChecked,
            ["head_key_id"] = _setup.HeadKeyId,
        };
        if (v.FirstBreak is { } b)
        {
            body["first_break"] = new JsonObject { ["sequence"] = b.Sequence, ["kind"] = BreakName(b.Kind), ["detail"] = b.Detail };
        }

        return new BrokerOutcome(body, null);
    }

    public BrokerOutcome HeadKey() => new(new JsonObject
    {
        ["key_id"] = _setup.HeadKeyId,
        ["algorithm"] = "ECDSA P-256 SHA-256 (IEEE P1363)",
        ["public_key_pem"] = _setup.HeadPublicKeyPem,
        ["interval_seconds"] = _setup.Options.AuditHeadIntervalSeconds,
    }, null);

    public Task ExportAuditAsync(Stream output, CancellationToken ct) => _storage.Audit.ExportAsync(output, ct);

    public static string BreakName(AuditBreakKind kind) => kind switch
    {
        AuditBreakKind.Edited => "edited",
        AuditBreakKind.Deleted => "deleted",
        AuditBreakKind.Reordered => "reordered",
        AuditBreakKind.HeadSignatureInvalid => "head-signature-invalid",
        _ => kind.ToString(),
    };

    // ---- helpers ----

    private async Task<JsonObject> KeyJsonAsync(KeyInfo k, CancellationToken ct)
    {
        var policy = await _storage.Policies.GetCurrentAsync(k.KeyId, ct).ConfigureAwait(false);
        return new JsonObject
        {
            ["id"] = k.KeyId,
            ["state"] = k.State == KeyState.Enabled ? "enabled" : "disabled",
            ["backend"] = k.Backend,
            ["kek_version"] = k.WrappingKeyVersion,
            ["created_at"] = FormatTime(k.CreatedAt),
            ["rotated_at"] = k.RotatedAt is { } r ? FormatTime(r) : null,
            ["disabled_at"] = k.DisabledAt is { } d ? FormatTime(d) : null,
            ["policy_version"] = policy?.Version,
        };
    }

    private async Task<BrokerOutcome> KeyChangeAsync(Func<Task<KeyInfo>> change, AdminAuditContext audit, CancellationToken ct)
    {
        KeyInfo info;
        try
        {
            info = await change().ConfigureAwait(false);
        }
        catch (KeyBackendException ex)
        {
            audit.Details["backend"] = ex.Backend;
            audit.Details["backend_error"] = ex.Code;
            return KeyBackendProblems.From(ex);
        }
        catch (KeyStoreException ex) when (ex.Error is KeyError.NotFound)
        {
            return new BrokerProblem(StatusCodes.Status404NotFound, ProblemCodes.UnknownKey, "Unknown key", ex.Message);
        }
        catch (KeyStoreException ex) when (ex.Error is KeyError.AlreadyExists)
        {
            return new BrokerProblem(StatusCodes.Status409Conflict, AdminProblems.KeyExists, "Key exists", ex.Message + "; a new model key needs a new id");
        }
        catch (KeyStoreException ex) when (ex.Error is KeyError.InvalidKeyMaterial or KeyError.InvalidKeyId)
        {
            return new BrokerProblem(StatusCodes.Status400BadRequest, ex.Error == KeyError.InvalidKeyId ? ProblemCodes.MalformedRequest : AdminProblems.InvalidKeyMaterial, "Invalid key", ex.Message);
        }
        catch (KeyStoreException ex)
        {
            return KeyBackendProblems.From(ex);
        }

        audit.Details["backend"] = info.Backend;
        var body = await KeyJsonAsync(info, ct).ConfigureAwait(false);
        return new BrokerOutcome(body, null);
    }

    private static bool TryReadImportBody(ReadOnlySpan<byte> body, Span<byte> key, out string? backend, out BrokerProblem? problem)
    {
        problem = null;
        backend = null;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 2 });
        var found = false;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                problem = BrokerProblem.Malformed("the body must be {\"key\": \"<base64 of 32 bytes>\"}");
                return false;
            }

            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("backend"u8) && backend is null)
                {
                    if (!reader.Read() || reader.TokenType != JsonTokenType.String)
                    {
                        problem = BrokerProblem.Malformed("\"backend\" must be a string");
                        return false;
                    }

                    backend = reader.GetString();
                    continue;
                }

                if (reader.TokenType != JsonTokenType.PropertyName || !reader.ValueTextEquals("key"u8) || found)
                {
                    problem = BrokerProblem.Malformed("the body must be {\"key\": \"<base64 of 32 bytes>\"} and nothing else");
                    return false;
                }

                if (!reader.Read() || reader.TokenType != JsonTokenType.String || reader.ValueIsEscaped || reader.HasValueSequence)
                {
                    problem = BrokerProblem.Malformed("\"key\" must be a base64 string");
                    return false;
                }

                var status = System.Buffers.Text.Base64.DecodeFromUtf8(reader.ValueSpan, key, out var consumed, out var written);
                if (status != System.Buffers.OperationStatus.Done || consumed != reader.ValueSpan.Length || written != IKeyBackend.KeyLength)
                {
                    CryptographicOperations.ZeroMemory(key);
                    problem = new BrokerProblem(StatusCodes.Status400BadRequest, AdminProblems.InvalidKeyMaterial, "Invalid key", $"\"key\" must be base64 of exactly {IKeyBackend.KeyLength} bytes (AES-256)");
                    return false;
                }

                found = true;
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                problem = BrokerProblem.Malformed("the body must be one JSON object");
                return false;
            }
        }
        catch (JsonException)
        {
            problem = BrokerProblem.Malformed("the body is not valid JSON");
            return false;
        }

        if (!found)
        {
            problem = BrokerProblem.Malformed("\"key\" is required");
        }

        return found;
    }

    /// <summary>The document as text and parsed, or a 400 invalid-policy problem naming the field path.</summary>
    private static (string? Text, ReleasePolicy? Policy, BrokerProblem? Problem) ParsePolicyText(byte[] bytes, string format)
    {
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes).TrimStart('\uFEFF');
        }
        catch (DecoderFallbackException)
        {
            return (null, null, new BrokerProblem(StatusCodes.Status400BadRequest, AdminProblems.InvalidPolicy, "Invalid policy", "the policy is not UTF-8 text", new JsonObject { ["path"] = string.Empty }));
        }

        if (format == "json" && !text.TrimStart().StartsWith('{'))
        {
            return (null, null, new BrokerProblem(StatusCodes.Status400BadRequest, AdminProblems.InvalidPolicy, "Invalid policy", "a JSON policy must be a JSON object", new JsonObject { ["path"] = string.Empty }));
        }

        try
        {
            return (text, ReleasePolicy.Parse(text), null);
        }
        catch (PolicyFormatException ex)
        {
            return (null, null, new BrokerProblem(StatusCodes.Status400BadRequest, AdminProblems.InvalidPolicy, "Invalid policy", ex.Message, new JsonObject { ["path"] = ex.Path, ["problem"] = ex.Problem }));
        }
    }

    private static JsonObject PolicyJson(PolicyVersion v, bool includeDocument)
    {
        var o = new JsonObject
        {
            ["key_id"] = v.Name,
            ["version"] = v.Version,
            ["sha256"] = v.Sha256Hex,
            ["author"] = v.Author,
            ["created_at"] = FormatTime(v.CreatedAt),
            ["comment"] = v.Comment,
        };
        if (includeDocument)
        {
            o["document"] = v.Document;
        }

        return o;
    }

    internal static BrokerProblem UnsupportedMediaType(string expected) =>
        new(StatusCodes.Status415UnsupportedMediaType, ProblemCodes.UnsupportedMediaType, "Unsupported media type", "send " + expected);

    internal static bool IsJson(string? contentType) => MediaType(contentType) == BrokerEndpoints.JsonContentType;

    private static string MediaType(string? contentType) => contentType is null ? string.Empty : contentType.Split(';')[0].Trim().ToLowerInvariant();

    private static BrokerProblem? InvalidKeyId(string id, AdminAuditContext audit)
    {
        if (!EmbeddedKeyStore.IsValidKeyId(id))
        {
            return BrokerProblem.Malformed("a key id is 1 .. 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit");
        }

        audit.KeyId = id;
        return null;
    }

    /// <summary>A 400 unknown-backend problem when <paramref name="backend"/> names no configured backend; null when it does or is null.</summary>
    private BrokerProblem? UnknownBackend(string? backend, AdminAuditContext audit)
    {
        if (backend is null)
        {
            if (_keys is KeyBackendRouter r)
            {
                audit.Details["backend"] = r.Default.Name;
            }

            return null;
        }

        audit.Details["backend"] = Truncate(backend);
        var configured = _keys is KeyBackendRouter router ? router.Backends.Select(b => b.Name).Order(StringComparer.Ordinal).ToList() : [_keys.Name];
        return configured.Contains(backend, StringComparer.Ordinal)
            ? null
            : new BrokerProblem(StatusCodes.Status400BadRequest, KeyBackendProblems.UnknownBackend, "Unknown key backend", $"no key backend named \"{Truncate(backend)}\" is configured (configured: {string.Join(", ", configured)})",
                new JsonObject { ["backend"] = Truncate(backend), ["configured"] = new JsonArray([.. configured.Select(c => (JsonNode?)c)]) });
    }

    private static BrokerProblem UnknownKey(string id) =>
        new(StatusCodes.Status404NotFound, ProblemCodes.UnknownKey, "Unknown key", $"no key with id \"{id}\"", new JsonObject { ["key_id"] = id });

    private static byte[]? DecodeBase64(string text)
    {
        if (text.Length > (MaxEvidenceBytes * 4 / 3) + 4)
        {
            return null;
        }

        var buffer = new byte[text.Length];
        if (Convert.TryFromBase64String(text, buffer, out var written))
        {
            return buffer[..written];
        }

        var url = new byte[text.Length * 3 / 4];
        return NonceService.TryBase64UrlDecode(text, url) ? url : null;
    }

    private static bool TryParseTime(string text, out DateTimeOffset at)
    {
        at = default;
        if (text.Length < 20 || !(text.EndsWith('Z') || text.EndsWith('z') || text[^6] is '+' or '-'))
        {
            return false;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out at);
    }

    public static string FormatTime(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "...";

    private static readonly JsonDocumentOptions JsonOptions = new() { MaxDepth = 16 };
}
