using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Protocol;

namespace AttestBroker.Verification.Azure;

/// <summary>What the broker requires of an Azure Attestation token beyond its signature, issuer and lifetime.</summary>
/// <param name="Nonce">The broker's challenge nonce, exactly as issued: x-ms-runtime.nonce must equal it. Null skips the whole binding (only for dry runs that release nothing, e.g. attestbroker policy test).</param>
/// <param name="PublicKey">The pod's ephemeral public key (the JWE target): x-ms-runtime.keys must hold a key with the same RFC 7638 thumbprint. Null skips the key binding (only for callers that bind the key some other way).</param>
public sealed record AzureTokenExpectations(string? Nonce, Jwk? PublicKey)
{
    /// <summary>No binding is checked: for dry runs that release nothing.</summary>
    public static AzureTokenExpectations Unbound { get; } = new(null, null);
}

/// <summary>
/// Verifies a Microsoft Azure Attestation (MAA) token presented instead of raw evidence: RS256 signature under a
/// key of the configured instance's {instance}/certs (JWKS whose keys carry x5c; cached, refreshed on an unknown
/// kid at most every <see cref="AzureAttestationOptions.MinRefreshInterval"/>), "iss" equal to the instance,
/// exp / nbf / iat with a clock skew, x-ms-ver present, the nonce and key binding in the runtime claims
/// (x-ms-runtime, which MAA copies from the JSON runtime data whose SHA-256 it checked against REPORT_DATA), and
/// maps the x-ms-* claims of SEV-SNP and TDX tokens (direct, or nested under x-ms-isolation-tee for Azure CVM
/// guest attestation) onto the claim names of docs/claims.md. Rejection is data: a <see cref="VerificationResult"/>
/// with reasons; every result carries the note azure_attestation_token.
/// </summary>
public sealed class AzureAttestationTokenVerifier
{
    public const string NoteAzureToken = "azure_attestation_token";
    public const string ReasonDisabled = "azure_tokens_disabled";
    public const string ReasonMalformed = "token_malformed";
    public const string ReasonKeysUnavailable = "token_keys_unavailable";
    public const string ReasonKeyUnknown = "token_key_unknown";
    public const string ReasonSignatureInvalid = "token_signature_invalid";
    public const string ReasonIssuerMismatch = "token_issuer_mismatch";
    public const string ReasonExpired = "token_expired";
    public const string ReasonNotYetValid = "token_not_yet_valid";
    public const string ReasonNonceMismatch = "nonce_mismatch";
    public const string ReasonKeyBindingMismatch = "key_binding_mismatch";
    public const string ReasonUnsupportedType = "attestation_type_unsupported";
    public const string ReasonClaimsInvalid = "token_claims_invalid";
    private const int MaxTokenLength = 64 * 1024;
    private const int MaxJwksLength = 256 * 1024;

    private readonly AzureAttestationOptions _options;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private IReadOnlyList<JwsVerificationKey> _keys = [];
    private DateTimeOffset _fetchedAt = DateTimeOffset.MinValue;

    public AzureAttestationTokenVerifier(AzureAttestationOptions options, HttpClient httpClient, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(httpClient);
        if (options.Enabled)
        {
            options.Validate();
        }

        _options = options;
        _http = httpClient;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>How many times the signing keys were fetched (for tests and metrics).</summary>
    public int KeyFetches { get; private set; }

    public async Task<VerificationResult> VerifyAsync(string token, AzureTokenExpectations expected, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(token);
        ArgumentNullException.ThrowIfNull(expected);
        var notes = new List<VerificationReason>();
        var claims = new ClaimSet();
        if (!_options.Enabled)
        {
            return Reject(TeeKind.SevSnp, claims, notes, ReasonDisabled, "Azure Attestation tokens are not accepted by this broker (off by default; the operator turns them on)");
        }

        notes.Add(new VerificationReason(NoteAzureToken, $"claims come from an Azure Attestation token issued by {_options.Issuer}, not from evidence this broker verified itself"));
        CompactJws jws;
        try
        {
            jws = CompactJws.Decode(token, MaxTokenLength);
        }
        catch (ProtocolException e)
        {
            return Reject(TeeKind.SevSnp, claims, notes, ReasonMalformed, e.Message);
        }

        using (jws)
        {
            if (jws.Algorithm != JwsVerificationKey.Rs256)
            {
                return Reject(TeeKind.SevSnp, claims, notes, ReasonSignatureInvalid, $"Azure Attestation tokens are RS256; this one says {jws.Algorithm}");
            }

            // Signature first: nothing in the payload is read before it verifies.
            string? failure = await VerifySignatureAsync(jws, cancellationToken).ConfigureAwait(false);
            if (failure is not null)
            {
                int split = failure.IndexOf(':', StringComparison.Ordinal);
                return Reject(TeeKind.SevSnp, claims, notes, failure[..split], failure[(split + 1)..].Trim());
            }

            JsonElement p = jws.Payload;
            JsonElement body = p;
            if (Str(p, "x-ms-attestation-type") == "azurevm" && p.TryGetProperty("x-ms-isolation-tee", out var nested) && nested.ValueKind == JsonValueKind.Object)
            {
                body = nested;
                notes.Add(new VerificationReason("azure_cvm_guest_attestation", "TEE claims are read from x-ms-isolation-tee (Azure confidential VM guest attestation)"));
            }

            string? type = Str(body, "x-ms-attestation-type");
            TeeKind tee = type == "tdxvm" ? TeeKind.Tdx : TeeKind.SevSnp;
            var reasons = new List<VerificationReason>();
            CheckIssuerAndTimes(p, reasons);
            if (Str(p, "x-ms-ver") is null)
            {
                reasons.Add(new VerificationReason(ReasonClaimsInvalid, "the token has no x-ms-ver"));
            }

            CheckBinding(p, expected, reasons);
            switch (type)
            {
                case "sevsnpvm":
                    MapSnp(body, claims, reasons);
                    break;
                case "tdxvm":
                    MapTdx(body, claims, reasons);
                    break;
                default:
                    reasons.Add(new VerificationReason(ReasonUnsupportedType, $"x-ms-attestation-type is {(type is null ? "absent" : $"'{Clip(type)}'")}; only sevsnpvm and tdxvm are accepted"));
                    break;
            }

            claims.Set("evidence_source", "azure_attestation");
            claims.Set("attestation_service", _options.Issuer);
            return new VerificationResult(tee, reasons, notes, claims, simulated: false, crlChecked: false);
        }
    }

    private async Task<string?> VerifySignatureAsync(CompactJws jws, CancellationToken cancellationToken)
    {
        DateTimeOffset now = _time.GetUtcNow();
        if (_keys.Count == 0 || now - _fetchedAt > _options.KeyCacheLifetime)
        {
            string? error = await RefreshAsync(force: true, cancellationToken).ConfigureAwait(false);
            if (error is not null)
            {
                return error;
            }
        }

        for (int round = 0; ; round++)
        {
            try
            {
                jws.VerifySignature(_keys);
                return null;
            }
            catch (ProtocolException e) when (e.Error == ProtocolError.TokenKeyUnknown && round == 0)
            {
                // A key rollover at the service: fetch again (rate limited) and retry once.
                string? error = await RefreshAsync(force: false, cancellationToken).ConfigureAwait(false);
                if (error is not null)
                {
                    return error;
                }
            }
            catch (ProtocolException e) when (e.Error == ProtocolError.TokenKeyUnknown)
            {
                return $"{ReasonKeyUnknown}: no signing key of {_options.Issuer} has kid '{Clip(jws.KeyId ?? "-")}'";
            }
            catch (ProtocolException e)
            {
                return $"{ReasonSignatureInvalid}: {e.Message}";
            }
        }
    }

    private async Task<string?> RefreshAsync(bool force, CancellationToken cancellationToken)
    {
        await _refresh.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            DateTimeOffset now = _time.GetUtcNow();
            if (!force && now - _fetchedAt < _options.MinRefreshInterval)
            {
                return null; // fetched recently: the caller's retry reports the unknown kid
            }

            byte[] body;
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_options.Instance!, "certs"));
                request.Headers.Accept.ParseAdd("application/json");
                using HttpResponseMessage response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    return $"{ReasonKeysUnavailable}: {_options.Issuer}/certs answered HTTP {(int)response.StatusCode}";
                }

                if (response.Content.Headers.ContentLength > MaxJwksLength)
                {
                    return $"{ReasonKeysUnavailable}: {_options.Issuer}/certs is larger than {MaxJwksLength} bytes";
                }

                body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                return $"{ReasonKeysUnavailable}: fetching {_options.Issuer}/certs failed ({e.GetType().Name})";
            }

            List<JwsVerificationKey> keys;
            try
            {
                keys = ParseKeys(body, now);
            }
            catch (Exception e) when (e is JsonException or ProtocolException or InvalidOperationException)
            {
                return $"{ReasonKeysUnavailable}: {_options.Issuer}/certs is not a JWKS ({e.Message})";
            }

            IReadOnlyList<JwsVerificationKey> old = _keys;
            _keys = keys;
            _fetchedAt = now;
            KeyFetches++;
            foreach (JwsVerificationKey k in old)
            {
                k.Dispose();
            }

            return null;
        }
        finally
        {
            _refresh.Release();
        }
    }

    /// <summary>MAA's /certs keys carry only kid, kty and x5c; the key is the first certificate's (RSA, 2048+).</summary>
    private static List<JwsVerificationKey> ParseKeys(byte[] body, DateTimeOffset now)
    {
        using JsonDocument doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 16 });
        if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("keys", out var array) || array.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidOperationException("no \"keys\" array");
        }

        var keys = new List<JwsVerificationKey>();
        foreach (JsonElement k in array.EnumerateArray())
        {
            string? kid = Str(k, "kid");
            if (k.TryGetProperty("x5c", out var x5c) && x5c.ValueKind == JsonValueKind.Array && x5c.GetArrayLength() > 0 && x5c[0].ValueKind == JsonValueKind.String)
            {
                try
                {
                    using X509Certificate2 cert = X509CertificateLoader.LoadCertificate(Convert.FromBase64String(x5c[0].GetString()!));
                    if (now < cert.NotBefore.ToUniversalTime() || now > cert.NotAfter.ToUniversalTime())
                    {
                        continue; // an expired or future signing certificate signs nothing we accept
                    }

                    if (cert.GetRSAPublicKey() is { } rsa)
                    {
                        keys.Add(JwsVerificationKey.FromRsa(rsa, kid));
                    }
                }
                catch (Exception e) when (e is FormatException or CryptographicException or ProtocolException)
                {
                    // an unusable member: skip it, as a JWKS may hold keys this verifier does not use
                }
            }
            else if (JwsVerificationKey.TryFromJwk(k) is { } key)
            {
                keys.Add(key);
            }
        }

        return keys;
    }

    private void CheckIssuerAndTimes(JsonElement p, List<VerificationReason> reasons)
    {
        string? iss = Str(p, "iss");
        if (!string.Equals(iss, _options.Issuer, StringComparison.Ordinal))
        {
            reasons.Add(new VerificationReason(ReasonIssuerMismatch, $"the token was issued by '{Clip(iss ?? "-")}', not the configured instance {_options.Issuer}"));
        }

        DateTimeOffset now = _time.GetUtcNow();
        long? exp = Num(p, "exp");
        long? nbf = Num(p, "nbf");
        long? iat = Num(p, "iat");
        if (exp is null || iat is null)
        {
            reasons.Add(new VerificationReason(ReasonClaimsInvalid, "the token lacks exp or iat"));
            return;
        }

        if (now > DateTimeOffset.FromUnixTimeSeconds(exp.Value) + _options.ClockSkew)
        {
            reasons.Add(new VerificationReason(ReasonExpired, $"the token expired at {DateTimeOffset.FromUnixTimeSeconds(exp.Value):O}"));
        }

        if (now + _options.ClockSkew < DateTimeOffset.FromUnixTimeSeconds(Math.Max(nbf ?? iat.Value, iat.Value)))
        {
            reasons.Add(new VerificationReason(ReasonNotYetValid, $"the token is not valid before {DateTimeOffset.FromUnixTimeSeconds(Math.Max(nbf ?? iat.Value, iat.Value)):O}"));
        }

        if (exp.Value - iat.Value > (long)_options.MaxTokenLifetime.TotalSeconds || exp.Value < iat.Value)
        {
            reasons.Add(new VerificationReason(ReasonClaimsInvalid, $"the token's lifetime ({exp.Value - iat.Value} s) is outside 0..{(long)_options.MaxTokenLifetime.TotalSeconds} s"));
        }
    }

    private static void CheckBinding(JsonElement p, AzureTokenExpectations expected, List<VerificationReason> reasons)
    {
        if (expected.Nonce is null)
        {
            return;
        }

        if (!p.TryGetProperty("x-ms-runtime", out var runtime) || runtime.ValueKind != JsonValueKind.Object)
        {
            reasons.Add(new VerificationReason(ReasonNonceMismatch, "the token has no x-ms-runtime claims (the runtime data must be JSON carrying the broker's nonce)"));
            return;
        }

        string? nonce = Str(runtime, "nonce");
        if (nonce is null || !CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(nonce), System.Text.Encoding.UTF8.GetBytes(expected.Nonce)))
        {
            reasons.Add(new VerificationReason(ReasonNonceMismatch, "x-ms-runtime.nonce is not the nonce this broker issued"));
        }

        if (expected.PublicKey is null)
        {
            return;
        }

        bool bound = false;
        if (runtime.TryGetProperty("keys", out var keys) && keys.ValueKind == JsonValueKind.Array)
        {
            foreach (JsonElement k in keys.EnumerateArray())
            {
                try
                {
                    if (Jwk.FromJsonElement(k).SameKeyAs(expected.PublicKey))
                    {
                        bound = true;
                    }
                }
                catch (ProtocolException)
                {
                    // another kind of key (e.g. an RSA-2048 key for Key Vault SKR): not the pod's key
                }
            }
        }

        if (!bound)
        {
            reasons.Add(new VerificationReason(ReasonKeyBindingMismatch, "x-ms-runtime.keys holds no key equal to the public key in the request"));
        }
    }

    private static void MapSnp(JsonElement b, ClaimSet claims, List<VerificationReason> reasons)
    {
        Hex(b, "x-ms-sevsnpvm-launchmeasurement", "measurement", 48, claims, reasons, required: true);
        Hex(b, "x-ms-sevsnpvm-hostdata", "host_data", 32, claims, reasons);
        Hex(b, "x-ms-sevsnpvm-reportdata", "report_data", 64, claims, reasons);
        Hex(b, "x-ms-sevsnpvm-idkeydigest", "id_key_digest", 48, claims, reasons);
        Hex(b, "x-ms-sevsnpvm-authorkeydigest", "author_key_digest", 48, claims, reasons);
        Hex(b, "x-ms-sevsnpvm-familyId", "family_id", 16, claims, reasons);
        Hex(b, "x-ms-sevsnpvm-imageId", "image_id", 16, claims, reasons);
        Hex(b, "x-ms-sevsnpvm-reportid", "report_id", 32, claims, reasons);
        Hex(b, "x-ms-sevsnpvm-chipid", "chip_id", 64, claims, reasons);
        Bool(b, "x-ms-sevsnpvm-is-debuggable", "debug", claims, reasons, required: true);
        Bool(b, "x-ms-sevsnpvm-migration-allowed", "migrate_ma", claims, reasons);
        Bool(b, "x-ms-sevsnpvm-smt-allowed", "smt_allowed", claims, reasons);
        Number(b, "x-ms-sevsnpvm-vmpl", "vmpl", claims, reasons);
        Number(b, "x-ms-sevsnpvm-guestsvn", "guest_svn", claims, reasons);
        var tcb = new JsonObject();
        foreach ((string from, string to) in (ReadOnlySpan<(string, string)>)[("bootloader", "bootloader"), ("tee", "tee"), ("snpfw", "snp"), ("microcode", "microcode")])
        {
            if (Num(b, $"x-ms-sevsnpvm-{from}-svn") is { } v)
            {
                tcb[to] = v;
            }
        }

        if (tcb.Count == 4)
        {
            claims.Set("reported_tcb", tcb);
        }

        if (Str(b, "x-ms-compliance-status") is { } compliance)
        {
            claims.Set("azure_compliance_status", compliance);
        }
    }

    private static void MapTdx(JsonElement b, ClaimSet claims, List<VerificationReason> reasons)
    {
        Hex(b, "tdx_mrtd", "mr_td", 48, claims, reasons, required: true);
        Hex(b, "tdx_mrseam", "mr_seam", 48, claims, reasons);
        Hex(b, "tdx_mrsignerseam", "mr_signer_seam", 48, claims, reasons);
        Hex(b, "tdx_mrconfigid", "mr_config_id", 48, claims, reasons);
        Hex(b, "tdx_mrowner", "mr_owner", 48, claims, reasons);
        Hex(b, "tdx_mrownerconfig", "mr_owner_config", 48, claims, reasons);
        for (int i = 0; i < 4; i++)
        {
            Hex(b, $"tdx_rtmr{i}", $"rtmr{i}", 48, claims, reasons);
        }

        Hex(b, "tdx_report_data", "report_data", 64, claims, reasons);
        Hex(b, "tdx_td_attributes", "td_attributes", 8, claims, reasons);
        Hex(b, "tdx_seamattributes", "seam_attributes", 8, claims, reasons);
        Hex(b, "tdx_xfam", "xfam", 8, claims, reasons);
        Hex(b, "tdx_tee_tcb_svn", "tee_tcb_svn", 16, claims, reasons);
        Bool(b, "tdx_td_attributes_debug", "debug", claims, reasons, required: true);
        if (Str(b, "attester_tcb_status") is { } status)
        {
            claims.Set("tcb_status", status);
        }

        // The TCB level's Intel advisories (TDX EAT profile): without them a policy cannot rule advisories out and denies.
        if (b.TryGetProperty("attester_advisory_ids", out var advisories))
        {
            if (advisories.ValueKind == JsonValueKind.Array && advisories.GetArrayLength() <= 256
                && advisories.EnumerateArray().All(a => a.ValueKind == JsonValueKind.String && a.GetString()!.Length is > 0 and <= 64))
            {
                claims.Set("advisory_ids", new JsonArray(advisories.EnumerateArray().Select(a => (JsonNode?)a.GetString()).ToArray()));
            }
            else
            {
                reasons.Add(new VerificationReason(ReasonClaimsInvalid, "attester_advisory_ids is not a list of advisory IDs"));
            }
        }

        if (Str(b, "x-ms-compliance-status") is { } compliance)
        {
            claims.Set("azure_compliance_status", compliance);
        }
    }

    private static void Hex(JsonElement b, string from, string to, int length, ClaimSet claims, List<VerificationReason> reasons, bool required = false)
    {
        if (!b.TryGetProperty(from, out var v))
        {
            if (required)
            {
                reasons.Add(new VerificationReason(ReasonClaimsInvalid, $"the token has no {from}"));
            }

            return;
        }

        string? s = v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        if (s is null || s.Length != length * 2 || !s.All(char.IsAsciiHexDigit))
        {
            reasons.Add(new VerificationReason(ReasonClaimsInvalid, $"{from} is not {length} bytes of hex"));
            return;
        }

        claims.Set(to, s.ToLowerInvariant());
    }

    private static void Bool(JsonElement b, string from, string to, ClaimSet claims, List<VerificationReason> reasons, bool required = false)
    {
        if (!b.TryGetProperty(from, out var v))
        {
            if (required)
            {
                reasons.Add(new VerificationReason(ReasonClaimsInvalid, $"the token has no {from}"));
            }

            return;
        }

        if (v.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            claims.Set(to, v.GetBoolean());
        }
        else
        {
            reasons.Add(new VerificationReason(ReasonClaimsInvalid, $"{from} is not a boolean"));
        }
    }

    private static void Number(JsonElement b, string from, string to, ClaimSet claims, List<VerificationReason> reasons)
    {
        if (!b.TryGetProperty(from, out var v))
        {
            return;
        }

        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n) && n >= 0)
        {
            claims.Set(to, n);
        }
        else
        {
            reasons.Add(new VerificationReason(ReasonClaimsInvalid, $"{from} is not a non-negative integer"));
        }
    }

    private static string? Str(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static long? Num(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n) ? n : null;

    private static string Clip(string s) => s.Length <= 80 ? s : s[..80] + "...";

    private static VerificationResult Reject(TeeKind tee, ClaimSet claims, List<VerificationReason> notes, string code, string message) =>
        new(tee, [new VerificationReason(code, message)], notes, claims, simulated: false, crlChecked: false);
}
