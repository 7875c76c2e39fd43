using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Keys.Backends.Tests;
using AttestBroker.Policy;
using AttestBroker.Protocol;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

/// <summary>
/// Microsoft Azure Attestation tokens as evidence in /v1/attest, over real HTTPS on 127.0.0.1. The attestation
/// instance is <see cref="FakeAttestationService"/> (linked from the key-backend contract tests): CONTRACT tests only,
/// the tokens are signed here by a test RSA key the fake publishes at {instance}/certs, not by Azure.
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(120_000)]
public sealed class Azure_attestation_tokens_as_evidence
{
    private const string SnpKey = "azure-snp";
    private const string TdxKey = "azure-tdx";
    private const string SnpKeyNoOptIn = "azure-snp-no-opt-in";
    private const string SnpKeyWrongMeasurement = "azure-snp-other-measurement";
    private const string SnpKey2 = "azure-snp-2";

    private static readonly string Measurement = new('a', 96);
    private static readonly string MrTd = new('1', 96);

    private FakeAttestationService _maa = null!;
    private RunningBroker? _broker;

    private static BrokerTestEnvironment Env => Shared.Env;

    private static byte[] KeyBytes(string keyId) => SHA256.HashData(Encoding.UTF8.GetBytes("azure test key " + keyId));

    [SetUp]
    public async Task StartAsync() => _maa = await FakeAttestationService.StartAsync(BrokerTestEnvironment.Issued.AddDays(-30));

    [TearDown]
    public async Task StopAsync()
    {
        if (_broker is not null)
        {
            await _broker.DisposeAsync();
            _broker = null;
        }

        await _maa.DisposeAsync();
    }

    private async Task<RunningBroker> StartBrokerAsync(bool enabled = true)
    {
        var settings = new Dictionary<string, string?>();
        if (enabled)
        {
            settings["Broker:AzureAttestation:Enabled"] = "true";
            settings["Broker:AzureAttestation:Instance"] = _maa.Instance.ToString();
            settings["Broker:AzureAttestation:MinRefreshInterval"] = "00:00:00";
        }

        _broker = await RunningBroker.StartAsync(Env, async data =>
        {
            var now = BrokerTestEnvironment.Issued;
            foreach (var id in new[] { SnpKey, TdxKey, SnpKeyNoOptIn, SnpKeyWrongMeasurement, SnpKey2 })
            {
                await data.Keys.ImportAsync(id, KeyBytes(id));
            }

            await data.SetPolicyAsync(SnpKey, SnpPolicy("azure-snp", Measurement, optIn: true), "test", now);
            await data.SetPolicyAsync(SnpKey2, SnpPolicy("azure-snp-2", Measurement, optIn: true), "test", now);
            await data.SetPolicyAsync(SnpKeyNoOptIn, SnpPolicy("azure-snp-no-opt-in", Measurement, optIn: false), "test", now);
            await data.SetPolicyAsync(SnpKeyWrongMeasurement, SnpPolicy("azure-snp-other", new string('b', 96), optIn: true), "test", now);
            await data.SetPolicyAsync(TdxKey, $"name: azure-tdx\nversion: 1\ntee: [tdx]\nallowAzureAttestation: true\ntdx:\n  mrTd: [{MrTd}]\n", "test", now);
        }, settings, configure: b => b.Services.AddSingleton(new AzureAttestationHttpHandler(FakeAttestationService.TrustingHandler)));
        return _broker;
    }

    private static string SnpPolicy(string name, string measurement, bool optIn) =>
        $"name: {name}\nversion: 1\ntee: [sev-snp]\nallowAzureAttestation: {(optIn ? "true" : "false")}\nsnp:\n  measurement: [{measurement}]\n";

    private static string AttestJson(string challenge, string token, Jwk publicKey, params string[] keyIds) =>
        new JsonObject
        {
            ["challenge"] = challenge,
            ["evidence_format"] = "azure-attestation-token",
            ["evidence"] = token,
            ["public_key"] = JsonNode.Parse(publicKey.ToJson()),
            ["key_ids"] = new JsonArray(keyIds.Select(k => (JsonNode?)k).ToArray()),
        }.ToJsonString();

    /// <summary>A challenge for <paramref name="tee"/>, a token from the fake instance whose runtime claims carry its nonce and the pod key (as MAA copies them from the runtime data), then attest.</summary>
    private async Task<(int Status, JsonNode? Body, string Token)> AttestAsync(TeeKind tee, Jwk podKey, Func<JsonObject, JsonObject>? edit = null, Func<JsonObject, string>? sign = null, params string[] keyIds)
    {
        var broker = _broker!;
        var (nonce, challenge) = await broker.ChallengeAsync(tee);
        var issuedAt = broker.Time.GetUtcNow().AddMinutes(-1);
        var nonceText = RunningBroker.Base64UrlEncode(nonce);
        var jwk = JsonNode.Parse(podKey.ToJson())!;
        var claims = tee == TeeKind.Tdx ? _maa.TdxClaims(issuedAt, nonceText, MrTd, jwk) : _maa.SnpClaims(issuedAt, nonceText, Measurement, jwk);
        claims = edit?.Invoke(claims) ?? claims;
        var token = sign?.Invoke(claims) ?? _maa.Sign(claims);
        var (status, body, _) = await broker.PostAsync("/v1/attest", AttestJson(challenge, token, podKey, keyIds));
        return (status, body, token);
    }

    private static async Task<(int Status, JsonNode? Body)> KeysAsync(RunningBroker broker, string token, Jwk key, params string[] keyIds)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/keys", UriKind.Relative));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        request.Content = new StringContent(new JsonObject { ["public_key"] = JsonNode.Parse(key.ToJson()), ["key_ids"] = new JsonArray(keyIds.Select(k => (JsonNode?)k).ToArray()) }.ToJsonString(), Encoding.UTF8);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await broker.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    private static JsonObject TokenClaims(string resultToken)
    {
        var payload = resultToken.Split('.')[1];
        return (JsonObject)JsonNode.Parse(RunningBroker.Base64UrlDecode(payload))!["claims"]!;
    }

    private async Task<string> LastAuditRowAsync() => (await _broker!.Host.Data.Storage.Audit.ReadAsync(1, 10_000))[^1].EventJson;

    [Test]
    public async Task Snp_token_is_granted_by_an_opt_in_policy_and_the_result_says_it_came_from_azure()
    {
        await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);

        var (status, body, maaToken) = await AttestAsync(TeeKind.SevSnp, jwk, keyIds: SnpKey);

        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
        Assert.That(JweDecryptor.Decrypt((string)body!["keys"]![0]!["jwe"]!, pod), Is.EqualTo(KeyBytes(SnpKey)));
        var claims = TokenClaims((string)body["token"]!);
        var audit = await LastAuditRowAsync();
        Assert.Multiple(() =>
        {
            Assert.That((string?)body["evidence_source"], Is.EqualTo("azure_attestation"));
            Assert.That((string?)body["tee"], Is.EqualTo("sev-snp"));
            Assert.That((bool?)body["simulated"], Is.False);
            Assert.That((string?)claims["evidence_source"], Is.EqualTo("azure_attestation"));
            Assert.That((string?)claims["attestation_service"], Is.EqualTo(_maa.Issuer));
            Assert.That((string?)claims["measurement"], Is.EqualTo(Measurement));
            Assert.That((bool?)claims["crl_checked"], Is.False);
            Assert.That(audit, Does.Contain("\"granted\"").And.Contain("\"evidence_source\":\"azure_attestation\"").And.Contain(_maa.Issuer));
            Assert.That(audit, Does.Not.Contain(maaToken), "the audit log never holds the token");
        });
    }

    [Test]
    public async Task The_result_token_of_an_azure_token_still_needs_the_opt_in_on_v1_keys()
    {
        var broker = await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, jwk, keyIds: SnpKey);
        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
        var resultToken = (string)body!["token"]!;

        var (granted, grantedBody) = await KeysAsync(broker, resultToken, jwk, SnpKey2);
        Assert.That(granted, Is.EqualTo(200), grantedBody?.ToJsonString());
        Assert.That(JweDecryptor.Decrypt((string)grantedBody!["keys"]![0]!["jwe"]!, pod), Is.EqualTo(KeyBytes(SnpKey2)));

        var (denied, deniedBody) = await KeysAsync(broker, resultToken, jwk, SnpKeyNoOptIn);
        Assert.That((denied, Shared.Code(deniedBody)), Is.EqualTo((403, ProblemCodes.PolicyDenied)), deniedBody?.ToJsonString());
        Assert.That(deniedBody!.ToJsonString(), Does.Contain(PolicyCodes.AzureAttestationNotAllowed));
    }

    [Test]
    public async Task Tdx_token_is_granted_by_an_opt_in_tdx_policy()
    {
        await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP384);
        var (status, body, _) = await AttestAsync(TeeKind.Tdx, Jwk.FromPublicKey(pod), keyIds: TdxKey);

        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
        Assert.That(JweDecryptor.Decrypt((string)body!["keys"]![0]!["jwe"]!, pod), Is.EqualTo(KeyBytes(TdxKey)));
        var claims = TokenClaims((string)body["token"]!);
        Assert.That(((string?)claims["tee"], (string?)claims["mr_td"], (string?)claims["tcb_status"]), Is.EqualTo(("tdx", MrTd, "UpToDate")));
    }

    [Test]
    public async Task A_broker_without_skr_backends_publishes_no_wrapping_keys_in_the_challenge()
    {
        var broker = await StartBrokerAsync();
        var (status, body, _) = await broker.PostAsync("/v1/challenge", """{"tee":"tdx"}""");
        Assert.That(status, Is.EqualTo(200));
        Assert.That(body!["skr_wrapping_keys"], Is.Null);
    }

    [Test]
    public async Task A_policy_without_the_opt_in_denies_with_azure_attestation_not_allowed()
    {
        await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), keyIds: SnpKeyNoOptIn);

        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.PolicyDenied)), body?.ToJsonString());
        var failures = body!["keys"]![0]!["failures"]!.AsArray();
        Assert.That(failures.Select(f => ((string?)f!["code"], (string?)f["rule"])), Does.Contain(((string?)PolicyCodes.AzureAttestationNotAllowed, (string?)"allowAzureAttestation")));
    }

    [Test]
    public async Task A_measurement_the_policy_does_not_list_is_denied_naming_the_rule()
    {
        await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), keyIds: SnpKeyWrongMeasurement);

        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.PolicyDenied)), body?.ToJsonString());
        var failures = body!["keys"]![0]!["failures"]!.AsArray();
        Assert.That(failures.Select(f => ((string?)f!["code"], (string?)f["rule"], (string?)f["actual"])),
            Is.EqualTo(new[] { ((string?)PolicyCodes.MeasurementMismatch, (string?)"snp.measurement", (string?)Measurement) }));
    }

    [Test]
    public async Task Azure_tokens_are_refused_with_evidence_kind_disabled_when_the_operator_has_not_enabled_them()
    {
        var broker = await StartBrokerAsync(enabled: false);
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), keyIds: SnpKey);

        Assert.That((status, Shared.Code(body)), Is.EqualTo((400, ProblemCodes.EvidenceKindDisabled)), body?.ToJsonString());
        Assert.That((string?)body!["type"], Is.EqualTo("urn:attestbroker:problem:evidence-kind-disabled"));
        Assert.That((string?)body["detail"], Does.Contain("Broker:AzureAttestation"));
        Assert.That(_maa.CertsRequests, Is.Zero, "a broker with Azure tokens off never asks the instance");
        Assert.That(await LastAuditRowAsync(), Does.Contain(ProblemCodes.EvidenceKindDisabled));
        Assert.That(broker.Host.Data.Storage, Is.Not.Null);
    }

    [Test]
    public async Task Token_from_another_issuer_is_refused_with_token_invalid()
    {
        await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), c => { c["iss"] = "https://sharedeus2.eus2.attest.azure.net"; return c; }, keyIds: SnpKey);

        Assert.That((status, Shared.Code(body), (string?)body?["error"]), Is.EqualTo((401, ProblemCodes.TokenInvalid, "token_issuer_mismatch")), body?.ToJsonString());
        Assert.That(await LastAuditRowAsync(), Does.Contain(ProblemCodes.TokenInvalid));
    }

    [Test]
    public async Task Expired_token_is_refused_with_token_invalid()
    {
        await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), c =>
        {
            c["iat"] = (long)c["iat"]! - (9 * 3600);
            c["nbf"] = c["iat"]!.DeepClone();
            c["exp"] = (long)c["iat"]! + (8 * 3600);
            return c;
        }, keyIds: SnpKey);

        Assert.That((status, Shared.Code(body), (string?)body?["error"]), Is.EqualTo((401, ProblemCodes.TokenInvalid, "token_expired")), body?.ToJsonString());
    }

    [Test]
    public async Task Token_signed_by_a_key_the_instance_did_not_publish_is_refused_with_token_invalid()
    {
        await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        using var forger = RSA.Create(2048);
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), sign: c => FakeAttestationService.Sign(c, "signing-key-1", forger), keyIds: SnpKey);

        Assert.That((status, Shared.Code(body), (string?)body?["error"]), Is.EqualTo((401, ProblemCodes.TokenInvalid, "token_signature_invalid")), body?.ToJsonString());
    }

    [Test]
    public async Task Token_whose_runtime_nonce_is_not_the_challenge_is_a_binding_mismatch()
    {
        await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), c => { c["x-ms-runtime"]!["nonce"] = RunningBroker.Base64UrlEncode(new byte[32]); return c; }, keyIds: SnpKey);

        Assert.That((status, Shared.Code(body), (string?)body?["error"]), Is.EqualTo((403, ProblemCodes.BindingMismatch, "nonce_mismatch")), body?.ToJsonString());
    }

    [Test]
    public async Task Token_bound_to_another_public_key_is_a_binding_mismatch()
    {
        await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var otherJwk = JsonNode.Parse(Jwk.FromPublicKey(other).ToJson())!;
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), c => { c["x-ms-runtime"]!["keys"] = new JsonArray(otherJwk); return c; }, keyIds: SnpKey);

        Assert.That((status, Shared.Code(body), (string?)body?["error"]), Is.EqualTo((403, ProblemCodes.BindingMismatch, "key_binding_mismatch")), body?.ToJsonString());
    }

    [Test]
    public async Task Token_for_another_tee_kind_than_the_challenge_is_malformed_evidence()
    {
        var broker = await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await broker.ChallengeAsync(TeeKind.Tdx);
        var claims = _maa.SnpClaims(broker.Time.GetUtcNow().AddMinutes(-1), RunningBroker.Base64UrlEncode(nonce), Measurement, JsonNode.Parse(jwk.ToJson())!);
        var (status, body, _) = await broker.PostAsync("/v1/attest", AttestJson(challenge, _maa.Sign(claims), jwk, SnpKey));

        Assert.That((status, Shared.Code(body), (string?)body?["error"]), Is.EqualTo((400, ProblemCodes.MalformedEvidence, "tee_mismatch")), body?.ToJsonString());
    }

    [Test]
    public async Task Evidence_that_is_not_a_compact_jws_is_malformed_and_an_unknown_format_is_a_malformed_request()
    {
        var broker = await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (_, challenge) = await broker.ChallengeAsync(TeeKind.SevSnp);

        var (status, body, _) = await broker.PostAsync("/v1/attest", AttestJson(challenge, "not a token", jwk, SnpKey));
        Assert.That((status, Shared.Code(body)), Is.EqualTo((400, ProblemCodes.MalformedEvidence)), body?.ToJsonString());

        var unknown = JsonNode.Parse(AttestJson(challenge, "a.b.c", jwk, SnpKey))!;
        unknown["evidence_format"] = "sgx-quote";
        (status, body, _) = await broker.PostAsync("/v1/attest", unknown.ToJsonString());
        Assert.That((status, Shared.Code(body)), Is.EqualTo((400, ProblemCodes.MalformedRequest)), body?.ToJsonString());
        Assert.That((string?)body!["detail"], Does.Contain("evidence_format"));
    }

    [Test]
    public async Task A_challenge_used_with_a_token_cannot_be_used_again()
    {
        var broker = await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await broker.ChallengeAsync(TeeKind.SevSnp);
        var token = _maa.Sign(_maa.SnpClaims(broker.Time.GetUtcNow().AddMinutes(-1), RunningBroker.Base64UrlEncode(nonce), Measurement, JsonNode.Parse(jwk.ToJson())!));

        var (first, firstBody, _) = await broker.PostAsync("/v1/attest", AttestJson(challenge, token, jwk, SnpKey));
        Assert.That(first, Is.EqualTo(200), firstBody?.ToJsonString());
        var (second, secondBody, _) = await broker.PostAsync("/v1/attest", AttestJson(challenge, token, jwk, SnpKey));
        Assert.That((second, Shared.Code(secondBody)), Is.EqualTo((409, ProblemCodes.NonceUsed)));
    }

    [Test]
    public async Task Signing_keys_that_cannot_be_fetched_give_503_collateral_unavailable_and_release_nothing()
    {
        await StartBrokerAsync();
        _maa.Down = true;
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), keyIds: SnpKey);

        Assert.That((status, Shared.Code(body)), Is.EqualTo((503, ProblemCodes.CollateralUnavailable)), body?.ToJsonString());
        Assert.That((string?)body!["error"], Is.EqualTo("token_keys_unavailable"));
        Assert.That(body["keys"], Is.Null);
        Assert.That(await LastAuditRowAsync(), Does.Contain(ProblemCodes.CollateralUnavailable));

        _maa.Down = false;
        var (again, againBody, _) = await AttestAsync(TeeKind.SevSnp, Jwk.FromPublicKey(pod), keyIds: SnpKey);
        Assert.That(again, Is.EqualTo(200), againBody?.ToJsonString());
    }
}

/// <summary>
/// Secure Key Release at release time: a key kept in an azure-skr backend (Broker:KeyBackends) is released by Key Vault
/// against the pod's verified Azure Attestation token. The vault is <see cref="FakeKeyVault"/> and the attestation
/// instance <see cref="FakeAttestationService"/> (both linked from the key-backend contract tests): CONTRACT tests only.
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(120_000)]
public sealed class Secure_key_release_with_the_pods_azure_token
{
    private const string Skr = "skr";
    private static readonly string AzureMeasurement = new('a', 96);

    private FakeAttestationService _maa = null!;
    private LocalService _kvService = null!;
    private FakeKeyVault _kv = null!;
    private RSA _brokerWrappingKey = null!;
    private string _dir = null!;
    private RunningBroker _broker = null!;
    private int _serial;

    private static BrokerTestEnvironment Env => Shared.Env;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _maa = await FakeAttestationService.StartAsync(BrokerTestEnvironment.Issued.AddDays(-30));
        _kvService = await LocalService.StartAsync(https: true);
        _kv = new FakeKeyVault(_kvService);
        _brokerWrappingKey = RSA.Create(2048);
        _kv.ReleaseTarget = _brokerWrappingKey;
        _dir = Directory.CreateTempSubdirectory("ab-skr-").FullName;
        var wrappingKeyFile = Path.Combine(_dir, "skr-wrapping.pem");
        await File.WriteAllTextAsync(wrappingKeyFile, _brokerWrappingKey.ExportPkcs8PrivateKeyPem());
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(wrappingKeyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        var policyFile = Path.Combine(_dir, "release-policy.json");
        await File.WriteAllTextAsync(policyFile, $$"""{"version":"1.0.0","anyOf":[{"authority":"{{_maa.Issuer}}","allOf":[{"claim":"x-ms-attestation-type","equals":"sevsnpvm"}]}]}""");
        var caFile = Path.Combine(_dir, "kv-ca.pem");
        await File.WriteAllTextAsync(caFile, LocalService.Certificate.ExportCertificatePem());
        var rootsFile = Path.Combine(_dir, "release-roots.pem");
        await File.WriteAllTextAsync(rootsFile, _kv.Root.ExportCertificatePem());

        _broker = await RunningBroker.StartAsync(Env, _ => Task.CompletedTask, new Dictionary<string, string?>
        {
            ["Broker:AzureAttestation:Enabled"] = "true",
            ["Broker:AzureAttestation:Instance"] = _maa.Instance.ToString(),
            ["Broker:KeyBackends:skr:Type"] = "azure-skr",
            ["Broker:KeyBackends:skr:VaultUri"] = _kvService.Address.ToString(),
            ["Broker:KeyBackends:skr:CaCertificateFile"] = caFile,
            ["Broker:KeyBackends:skr:ReleasePolicyFile"] = policyFile,
            ["Broker:KeyBackends:skr:WrappingKeyFile"] = wrappingKeyFile,
            ["Broker:KeyBackends:skr:ReleaseTrustedRootsFile"] = rootsFile,
            ["Broker:KeyBackends:skr:ReleaseRevocation"] = "none",
            ["Broker:KeyBackends:skr:MaxRetries"] = "1",
            ["Broker:KeyBackends:skr:RetryDelayMilliseconds"] = "10",
        }, configure: b =>
        {
            b.Services.AddSingleton(new AzureAttestationHttpHandler(FakeAttestationService.TrustingHandler));
            b.Services.AddSingleton<IAzureCredentialFactory>(new StaticCredentials());
        });
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        await _broker.DisposeAsync();
        await _maa.DisposeAsync();
        await _kvService.DisposeAsync();
        _kv.Dispose();
        _brokerWrappingKey.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A key made in the SKR backend (an exportable oct-HSM key in the fake vault), with a policy granting Azure SNP tokens and simulated SNP evidence.</summary>
    private async Task<(string KeyId, byte[] VaultBytes)> SkrKeyAsync()
    {
        var keyId = "skr-model-" + Interlocked.Increment(ref _serial);
        var backends = _broker.Host.App.Services.GetRequiredService<BrokerKeyBackends>();
        await backends.Router.CreateAsync(keyId, Skr);
        var skr = (Keys.Backends.AzureKeyVault.KeyVaultSecureKeyReleaseBackend)(await backends.Router.BackendForAsync(keyId))!;
        var simMeasurement = (string)Env.CleanClaims[TeeKind.SevSnp]["measurement"]!;
        await _broker.Host.Data.SetPolicyAsync(keyId,
            $"name: skr\nversion: 1\ntee: [sev-snp]\nallowAzureAttestation: true\nallowSimulated: true\nsnp:\n  measurement: [{AzureMeasurement}, {simMeasurement}]\n", "test", _broker.Time.GetUtcNow());
        return (keyId, _kv.OctKeyBytes(skr.VaultKeyName(keyId)));
    }

    /// <summary>
    /// Runs <paramref name="body"/> with the broker's clock at the real time: the fake vault's release-signing chain
    /// is valid around now, and the broker checks it at its own clock.
    /// </summary>
    private async Task AtRealTimeAsync(Func<Task> body)
    {
        var shift = DateTimeOffset.UtcNow - _broker.Time.GetUtcNow();
        _broker.Time.Advance(shift);
        try
        {
            await body();
        }
        finally
        {
            _broker.Time.Advance(-shift);
        }
    }

    /// <summary>The pod's MAA token: runtime keys carry the pod's JWE key and the broker's SKR wrapping key (Key Vault wraps the release to the latter).</summary>
    private async Task<string> PodTokenAsync(TeeKind tee, Jwk podKey, string challengeNonce)
    {
        await Task.Yield();
        var p = _brokerWrappingKey.ExportParameters(false);
        var brokerKey = new JsonObject { ["kid"] = "broker-skr", ["kty"] = "RSA", ["key_ops"] = new JsonArray("encrypt"), ["n"] = RunningBroker.Base64UrlEncode(p.Modulus!), ["e"] = RunningBroker.Base64UrlEncode(p.Exponent!) };
        var claims = _maa.SnpClaims(_broker.Time.GetUtcNow().AddMinutes(-1), challengeNonce, AzureMeasurement, JsonNode.Parse(podKey.ToJson())!, brokerKey);
        return tee == TeeKind.SevSnp ? _maa.Sign(claims) : throw new ArgumentOutOfRangeException(nameof(tee));
    }

    private static string AttestJson(string challenge, string token, Jwk publicKey, string keyId) =>
        new JsonObject
        {
            ["challenge"] = challenge,
            ["evidence_format"] = "azure-attestation-token",
            ["evidence"] = token,
            ["public_key"] = JsonNode.Parse(publicKey.ToJson()),
            ["key_ids"] = new JsonArray(keyId),
        }.ToJsonString();

    [Test]
    public Task An_skr_key_is_released_by_key_vault_against_the_pods_token_and_reaches_the_pod() => AtRealTimeAsync(async () =>
    {
        var (keyId, vaultBytes) = await SkrKeyAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await _broker.ChallengeAsync(TeeKind.SevSnp);
        var token = await PodTokenAsync(TeeKind.SevSnp, jwk, RunningBroker.Base64UrlEncode(nonce));
        _kv.AcceptedToken = token; // the fake vault's "release policy": exactly this token

        var (status, body, _) = await _broker.PostAsync("/v1/attest", AttestJson(challenge, token, jwk, keyId));

        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
        Assert.That(JweDecryptor.Decrypt((string)body!["keys"]![0]!["jwe"]!, pod), Is.EqualTo(vaultBytes), "the pod gets the bytes Key Vault released");
        var release = _kvService.Requests.Last(r => r.Path.EndsWith("/release", StringComparison.Ordinal));
        Assert.That(Encoding.UTF8.GetString(release.Body), Does.Contain(token), "Key Vault got the pod's token as target");
        var rows = await _broker.Host.Data.Storage.Audit.ReadAsync(1, 10_000);
        Assert.That(rows[^1].EventJson, Does.Contain("\"granted\"").And.Contain(keyId).And.Not.Contain(token));
    });

    [Test]
    public async Task Key_vault_refusing_the_pods_token_is_backend_denied_and_releases_nothing()
    {
        var (keyId, _) = await SkrKeyAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await _broker.ChallengeAsync(TeeKind.SevSnp);
        var token = await PodTokenAsync(TeeKind.SevSnp, jwk, RunningBroker.Base64UrlEncode(nonce));
        _kv.AcceptedToken = "eyJ.some-other-token.sig";

        var (status, body, _) = await _broker.PostAsync("/v1/attest", AttestJson(challenge, token, jwk, keyId));

        Assert.That(status, Is.EqualTo(503), body?.ToJsonString());
        Assert.That(Shared.Code(body), Is.EqualTo("backend-denied"));
        Assert.That(body!["keys"], Is.Null);
        Assert.That(body.ToJsonString(), Does.Not.Contain(token));
    }

    [Test]
    public async Task The_same_skr_key_asked_for_with_raw_evidence_is_refused_with_attestation_token_required()
    {
        var (keyId, _) = await SkrKeyAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await _broker.ChallengeAsync(TeeKind.SevSnp);
        var evidence = Env.Evidence(TeeKind.SevSnp, nonce, jwk);
        var releasesBefore = _kvService.Requests.Count(r => r.Path.EndsWith("/release", StringComparison.Ordinal));

        var (status, body, _) = await _broker.PostAsync("/v1/attest", RunningBroker.AttestJson(challenge, evidence, jwk, keyId));

        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.AttestationTokenRequired)), body?.ToJsonString());
        Assert.That((string?)body!["type"], Is.EqualTo("urn:attestbroker:problem:attestation-token-required"));
        Assert.That((string?)body["keys"]![0]!["reason"], Is.EqualTo("attestation_token_required"));
        Assert.That(_kvService.Requests.Count(r => r.Path.EndsWith("/release", StringComparison.Ordinal)), Is.EqualTo(releasesBefore), "Key Vault is not asked");
        var last = (await _broker.Host.Data.Storage.Audit.ReadAsync(1, 10_000))[^1].EventJson;
        Assert.That(last, Does.Contain("\"denied\"").And.Contain("attestation_token_required").And.Contain(keyId));
    }

    [Test]
    public Task The_result_token_of_an_azure_attestation_cannot_release_an_skr_key_on_v1_keys() => AtRealTimeAsync(async () =>
    {
        var (first, _) = await SkrKeyAsync();
        var (second, _) = await SkrKeyAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await _broker.ChallengeAsync(TeeKind.SevSnp);
        var token = await PodTokenAsync(TeeKind.SevSnp, jwk, RunningBroker.Base64UrlEncode(nonce));
        _kv.AcceptedToken = token;
        var (status, body, _) = await _broker.PostAsync("/v1/attest", AttestJson(challenge, token, jwk, first));
        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());

        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/keys", UriKind.Relative));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", (string)body!["token"]!);
        request.Content = new StringContent(new JsonObject { ["public_key"] = JsonNode.Parse(jwk.ToJson()), ["key_ids"] = new JsonArray(second) }.ToJsonString(), Encoding.UTF8);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await _broker.Client.SendAsync(request);
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync());

        Assert.That(((int)response.StatusCode, Shared.Code(problem)), Is.EqualTo((403, ProblemCodes.AttestationTokenRequired)), problem?.ToJsonString());
    });

    [Test]
    public Task Rotating_the_skr_backend_is_refused_as_unsupported_and_the_pod_still_gets_the_same_key() => AtRealTimeAsync(async () =>
    {
        var (keyId, vaultBytes) = await SkrKeyAsync();
        string adminToken;
        using (var key = Admin.AdminTokens.LoadOrCreateLocalKey(_broker.DataDir))
        {
            adminToken = Admin.AdminTokens.Mint(key, "skr-admin", [Admin.AdminRoles.KeyAdmin], _broker.Time.GetUtcNow(), TimeSpan.FromMinutes(10), Admin.AdminTokens.DefaultAudience);
        }

        using var rotate = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/admin/kek/rotate", UriKind.Relative));
        rotate.Headers.Authorization = new AuthenticationHeaderValue("Bearer", adminToken);
        rotate.Content = new StringContent($$"""{"backend":"{{Skr}}"}""", Encoding.UTF8, "application/json");
        using var rotated = await _broker.Client.SendAsync(rotate);
        var problem = JsonNode.Parse(await rotated.Content.ReadAsStringAsync());
        Assert.That(((int)rotated.StatusCode, Shared.Code(problem)), Is.EqualTo((409, "rotation-unsupported")), problem?.ToJsonString());

        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await _broker.ChallengeAsync(TeeKind.SevSnp);
        var token = await PodTokenAsync(TeeKind.SevSnp, jwk, RunningBroker.Base64UrlEncode(nonce));
        _kv.AcceptedToken = token;
        var (status, body, _) = await _broker.PostAsync("/v1/attest", AttestJson(challenge, token, jwk, keyId));
        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
        Assert.That(JweDecryptor.Decrypt((string)body!["keys"]![0]!["jwe"]!, pod), Is.EqualTo(vaultBytes));
    });

    [Test]
    public async Task The_challenge_publishes_the_brokers_skr_wrapping_key_and_a_token_without_it_is_refused_before_key_vault_is_asked()
    {
        var (keyId, _) = await SkrKeyAsync();
        var (status, challengeBody, _) = await _broker.PostAsync("/v1/challenge", """{"tee":"sev-snp"}""");
        Assert.That(status, Is.EqualTo(200));
        var published = challengeBody!["skr_wrapping_keys"]!.AsArray().Single()!;
        var p = _brokerWrappingKey.ExportParameters(false);
        Assert.Multiple(() =>
        {
            Assert.That((string?)published["kid"], Is.EqualTo(Skr));
            Assert.That((string?)published["kty"], Is.EqualTo("RSA"));
            Assert.That((string?)published["n"], Is.EqualTo(RunningBroker.Base64UrlEncode(p.Modulus!)));
            Assert.That((string?)published["e"], Is.EqualTo(RunningBroker.Base64UrlEncode(p.Exponent!)));
            Assert.That(published["d"], Is.Null, "only the public half");
        });

        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var nonce = (string)challengeBody["nonce"]!;
        var withoutBrokerKey = _maa.Sign(_maa.SnpClaims(_broker.Time.GetUtcNow().AddMinutes(-1), nonce, AzureMeasurement, JsonNode.Parse(jwk.ToJson())!));
        _kv.AcceptedToken = withoutBrokerKey;
        var releasesBefore = _kvService.Requests.Count(r => r.Path.EndsWith("/release", StringComparison.Ordinal));

        var (refused, body, _) = await _broker.PostAsync("/v1/attest", AttestJson((string)challengeBody["challenge"]!, withoutBrokerKey, jwk, keyId));

        Assert.That((refused, Shared.Code(body), (string?)body?["error"]), Is.EqualTo((403, ProblemCodes.AttestationTokenRequired, "skr_wrapping_key_missing")), body?.ToJsonString());
        Assert.That(_kvService.Requests.Count(r => r.Path.EndsWith("/release", StringComparison.Ordinal)), Is.EqualTo(releasesBefore), "Key Vault is not asked");
        var last = (await _broker.Host.Data.Storage.Audit.ReadAsync(1, 10_000))[^1].EventJson;
        Assert.That(last, Does.Contain("skr_wrapping_key_missing").And.Contain(keyId));
    }

    /// <summary>Key Vault's Entra ID token in these tests (no Entra ID here).</summary>
    private sealed class StaticCredentials : IAzureCredentialFactory
    {
        public Azure.Core.TokenCredential Create(string backend, Keys.Backends.AzureKeyVault.KeyVaultKeyClientOptions options) => new StaticTokenCredential();
    }
}

/// <summary>Bad Broker:AzureAttestation settings stop the start with a message naming the setting.</summary>
[TestFixture]
public sealed class Azure_attestation_settings_are_validated_at_start_up
{
    private string _dir = null!;

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("ab-azure-config-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_dir, recursive: true);

    private string StartFailure(Dictionary<string, string?> azure)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Broker:DataDirectory"] = Path.Combine(_dir, "data"),
            ["Broker:Port"] = "0",
            ["Broker:DevCertificate"] = "true",
            ["Broker:AzureAttestation:Enabled"] = "true",
        };
        foreach (var (k, v) in azure)
        {
            settings[k] = v;
        }

        var ex = Assert.ThrowsAsync<BrokerStartupException>(async () => await (await BrokerHost.CreateAsync([], settings)).DisposeAsync());
        return ex!.Message;
    }

    [Test]
    public void Enabled_without_an_instance_is_refused_naming_the_setting() =>
        Assert.That(StartFailure([]), Does.Contain("Broker:AzureAttestation: Instance must be an https URL"));

    [TestCase("http://myprovider.eus2.attest.azure.net")]
    [TestCase("https://myprovider.eus2.attest.azure.net/attest/SevSnpVm")]
    public void An_instance_that_is_not_a_bare_https_url_is_refused(string instance) =>
        Assert.That(StartFailure(new() { ["Broker:AzureAttestation:Instance"] = instance }), Does.Contain("Broker:AzureAttestation: Instance must be an https URL"));

    [Test]
    public void A_key_cache_lifetime_beyond_a_week_and_a_huge_clock_skew_are_refused()
    {
        var message = StartFailure(new()
        {
            ["Broker:AzureAttestation:Instance"] = "https://myprovider.eus2.attest.azure.net",
            ["Broker:AzureAttestation:KeyCacheLifetime"] = "30.00:00:00",
            ["Broker:AzureAttestation:ClockSkew"] = "01:00:00",
        });
        Assert.That(message, Does.Contain("Broker:AzureAttestation:KeyCacheLifetime must be at most 7 days").And.Contain("Broker:AzureAttestation:ClockSkew must be at most 10 minutes"));
    }
}
