using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.Kubernetes.Tests;
using AttestBroker.Policy;
using AttestBroker.Protocol;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

/// <summary>
/// The broker with its Kubernetes side wired in (Broker:Kubernetes, Broker:Quarantine), over real HTTPS with simulated
/// evidence. The API server is <see cref="FakeKubernetesApi"/> (tests/AttestBroker.Kubernetes.Tests, linked): CONTRACT
/// tests only, there is no Kubernetes API server here. The broker reaches it through a kubeconfig file, as it would
/// from outside a cluster.
/// </summary>
[TestFixture]
[NonParallelizable]
[CancelAfter(120_000)]
public sealed class Broker_with_Kubernetes_identity_policies_and_quarantine
{
    private const string ProdKey = "ml-prod:model";
    private const string DevKey = "ml-dev:model";
    private const string BoundKey = "ml-prod:bound";

    private readonly Dictionary<string, (string Namespace, string ServiceAccount, string Pod, string Uid)> _tokens = new(StringComparer.Ordinal);
    private FakeKubernetesApi _api = null!;
    private string _kubeconfig = null!;
    private RunningBroker? _broker;

    private static BrokerTestEnvironment Env => Shared.Env;

    [SetUp]
    public async Task StartApiAsync()
    {
        _api = await FakeKubernetesApi.StartAsync();
        _api.TokenReview = Review;
        _kubeconfig = Path.Combine(Env.Root, "kubeconfig-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllTextAsync(_kubeconfig,
            $"apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {_api.Host}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n" +
            "current-context: fake\nusers:\n- name: fake\n  user:\n    token: broker-token\n");
    }

    [TearDown]
    public async Task StopAsync()
    {
        if (_broker is not null)
        {
            await _broker.DisposeAsync();
            _broker = null;
        }

        await _api.DisposeAsync();
        File.Delete(_kubeconfig);
    }

    [Test]
    public async Task A_pod_of_ml_prod_gets_its_own_namespace_key_and_is_denied_the_ml_dev_key_with_identity_mismatch()
    {
        var broker = await StartBrokerAsync();
        var token = Token("ml-prod", "runner", "llm-0", "uid-1");
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);

        var (denied, deniedBody) = await AttestAsync(broker, jwk, token, null, DevKey);
        Assert.That((denied, Shared.Code(deniedBody)), Is.EqualTo((403, ProblemCodes.PolicyDenied)), deniedBody?.ToJsonString());
        var failures = deniedBody!["keys"]!.AsArray().Single(k => (string?)k!["key_id"] == DevKey)!["failures"]!.AsArray();
        Assert.That(failures.Select(f => ((string?)f!["code"], (string?)f["rule"])), Does.Contain(((string?)PolicyCodes.IdentityMismatch, (string?)"requester.namespaces")));

        var (granted, grantedBody) = await AttestAsync(broker, jwk, token, null, ProdKey);
        Assert.That(granted, Is.EqualTo(200), grantedBody?.ToJsonString());
        Assert.That(JweDecryptor.Decrypt((string)grantedBody!["keys"]![0]!["jwe"]!, pod), Is.EqualTo(KeyBytes(ProdKey)));

        // The result token carries the identity, so /v1/keys applies the same requester rules.
        var resultToken = (string)grantedBody["token"]!;
        var (keysDenied, keysDeniedBody) = await KeysAsync(broker, resultToken, jwk, DevKey);
        Assert.That((keysDenied, Shared.Code(keysDeniedBody)), Is.EqualTo((403, ProblemCodes.PolicyDenied)), keysDeniedBody?.ToJsonString());
        Assert.That(keysDeniedBody!.ToJsonString(), Does.Contain(PolicyCodes.IdentityMismatch));
        var (keysGranted, keysGrantedBody) = await KeysAsync(broker, resultToken, jwk, ProdKey);
        Assert.That(keysGranted, Is.EqualTo(200), keysGrantedBody?.ToJsonString());

        // Audit rows carry the requester, never the token.
        var rows = await broker.Host.Data.Storage.Audit.ReadAsync(1, 10_000);
        var grantedRow = rows.Last(r => r.Kind == BrokerService.AuditKindRelease && r.EventJson.Contains("\"granted\"", StringComparison.Ordinal));
        Assert.That(grantedRow.EventJson, Does.Contain("\"requester_namespace\":\"ml-prod\"").And.Contain("\"requester_service_account\":\"runner\"").And.Contain("\"requester_pod\":\"llm-0\""));
        Assert.That(rows.Any(r => r.EventJson.Contains(token, StringComparison.Ordinal)), Is.False, "the service-account token reached the audit log");
    }

    [Test]
    public async Task Without_a_service_account_token_a_policy_with_a_requester_section_denies()
    {
        var broker = await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await AttestAsync(broker, Jwk.FromPublicKey(pod), null, null, ProdKey);
        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.PolicyDenied)));
        Assert.That(body!.ToJsonString(), Does.Contain(PolicyCodes.IdentityMismatch));
    }

    [Test]
    public async Task A_token_the_API_server_does_not_authenticate_is_refused_with_401_and_audited()
    {
        var broker = await StartBrokerAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var forged = JwtShaped("nobody-knows-this-token");

        var (status, body) = await AttestAsync(broker, Jwk.FromPublicKey(pod), forged, null, ProdKey);

        Assert.That((status, Shared.Code(body)), Is.EqualTo((401, ProblemCodes.InvalidServiceAccountToken)), body?.ToJsonString());
        Assert.That((string?)body!["type"], Is.EqualTo("urn:attestbroker:problem:invalid-service-account-token"));
        Assert.That((string?)body["error"], Is.EqualTo("token_not_authenticated"));
        Assert.That(body.ToJsonString(), Does.Not.Contain(forged));
        var last = (await broker.Host.Data.Storage.Audit.ReadAsync(1, 10_000))[^1];
        Assert.That(last.EventJson, Does.Contain(ProblemCodes.InvalidServiceAccountToken).And.Not.Contain(forged));
    }

    [Test]
    public async Task TokenReview_API_down_is_503_and_releases_nothing()
    {
        var broker = await StartBrokerAsync();
        _api.TokenReview = _ => (500, FakeKubernetesApi.Status(500, "InternalError", "etcd is on fire"));
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

        var (status, body) = await AttestAsync(broker, Jwk.FromPublicKey(pod), Token("ml-prod", "runner", "llm-0", "uid-1"), null, ProdKey);

        Assert.That((status, Shared.Code(body)), Is.EqualTo((503, ProblemCodes.BackendUnavailable)), body?.ToJsonString());
        Assert.That((string?)body!["cause"], Is.EqualTo("tokenreview_unavailable"));
        Assert.That(body.ToJsonString(), Does.Not.Contain("\"jwe\"").And.Not.Contain("etcd"));
    }

    [Test]
    public async Task A_KeyReleasePolicy_from_the_watch_stream_takes_effect_on_the_next_attest_and_its_status_names_the_active_version()
    {
        var broker = await StartBrokerAsync(new() { ["Broker:Kubernetes:WatchPolicies"] = "true" });
        const string WatchedKey = "ml-prod:watched";
        var token = Token("ml-prod", "runner", "llm-0", "uid-1");
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        await Eventually.TrueAsync(() => !_api.WatchRequests.IsEmpty, "the broker's watcher to list and watch");

        var (before, beforeBody) = await AttestAsync(broker, jwk, token, null, WatchedKey);
        Assert.That((before, Shared.Code(beforeBody)), Is.EqualTo((403, ProblemCodes.PolicyDenied)), "no policy yet");

        var spec = new JsonObject
        {
            ["keyId"] = WatchedKey,
            ["tee"] = new JsonArray("sev-snp"),
            ["allowSimulated"] = true,
            ["requester"] = new JsonObject { ["serviceAccounts"] = new JsonArray("runner") },
            ["snp"] = new JsonObject { ["measurement"] = new JsonArray((string)Env.CleanClaims[TeeKind.SevSnp]["measurement"]!) },
        };
        await _api.WatchScripts.Writer.WriteAsync([FakeKubernetesApi.Event("ADDED", FakeKubernetesApi.Policy("ml-prod", "watched", 1, spec, "7"))]);
        await Eventually.TrueAsync(() => _api.StatusPatches.Any(p => p.Name == "watched"), "the status patch of the applied policy");

        var patch = _api.StatusPatches.Last(p => p.Name == "watched").Body["status"]!;
        var condition = patch["conditions"]!.AsArray().Single(c => (string?)c!["type"] == "Accepted")!;
        Assert.That((string?)condition["status"], Is.EqualTo("True"), patch.ToJsonString());
        var stored = await broker.Host.Data.Storage.Policies.GetCurrentAsync(WatchedKey);
        Assert.That(stored, Is.Not.Null);
        Assert.That((long?)patch["activeVersion"], Is.EqualTo(stored!.Version));
        Assert.That((string?)patch["activeSha256"], Is.EqualTo(stored.Sha256Hex));
        Assert.That(stored.Author, Is.EqualTo("k8s:ml-prod/watched"));

        var (after, afterBody) = await AttestAsync(broker, jwk, token, null, WatchedKey);
        Assert.That(after, Is.EqualTo(200), afterBody?.ToJsonString());

        // Deleting the resource stores a deny-all version: the next release is denied.
        await _api.WatchScripts.Writer.WriteAsync([FakeKubernetesApi.Event("DELETED", FakeKubernetesApi.Policy("ml-prod", "watched", 1, (JsonObject)spec.DeepClone(), "8"))]);
        await Eventually.TrueAsync(() => IsRemoved(broker, WatchedKey), "the deny-all version after deletion");
        var (removed, removedBody) = await AttestAsync(broker, jwk, token, null, WatchedKey);
        Assert.That((removed, Shared.Code(removedBody)), Is.EqualTo((403, ProblemCodes.PolicyDenied)));
        Assert.That(removedBody!.ToJsonString(), Does.Contain(PolicyCodes.TeeNotAllowed));
    }

    [Test]
    public async Task A_pod_denied_as_often_as_the_threshold_is_labelled_through_the_API_and_the_quarantine_is_audited_once()
    {
        var broker = await StartBrokerAsync(new()
        {
            ["Broker:Quarantine:Enabled"] = "true",
            ["Broker:Quarantine:FailureThreshold"] = "3",
            ["Broker:Quarantine:WindowSeconds"] = "600",
        });
        _api.Pods["ml-prod/llm-bad"] = "uid-bad";
        var token = Token("ml-prod", "runner", "llm-bad", "uid-bad");
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);

        for (var i = 1; i <= 2; i++)
        {
            var (status, _) = await AttestAsync(broker, jwk, token, null, DevKey);
            Assert.That(status, Is.EqualTo(403));
        }

        Assert.That(_api.PodPatches, Is.Empty, "below the threshold nothing is patched");
        var (third, _) = await AttestAsync(broker, jwk, token, null, DevKey);
        Assert.That(third, Is.EqualTo(403));

        var patch = _api.PodPatches.Single();
        Assert.That((patch.Namespace, patch.Name), Is.EqualTo(("ml-prod", "llm-bad")));
        Assert.That((string?)patch.Body["metadata"]!["labels"]!["attestbroker.io/quarantine"], Is.EqualTo("true"));
        Assert.That((string?)patch.Body["metadata"]!["uid"], Is.EqualTo("uid-bad"));
        Assert.That(_api.Events.Single().Body["reason"]!.GetValue<string>(), Is.EqualTo("Quarantined"));

        var (fourth, _) = await AttestAsync(broker, jwk, token, null, DevKey);
        Assert.That(fourth, Is.EqualTo(403));
        var quarantineRows = (await broker.Host.Data.Storage.Audit.ReadAsync(1, 10_000)).Where(r => r.Kind == BrokerKubernetes.AuditKindQuarantine).ToList();
        Assert.That(quarantineRows, Has.Count.EqualTo(1), "a pod is reported once");
        Assert.That(quarantineRows[0].EventJson, Does.Contain("\"quarantined\"").And.Contain("\"pod\":\"llm-bad\"").And.Contain("\"pod_uid\":\"uid-bad\"").And.Contain("\"failures\":\"3\""));
        Assert.That(_api.PodPatches, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task BindToLaunchData_grants_when_HOST_DATA_is_the_identity_digest_and_denies_otherwise()
    {
        var broker = await StartBrokerAsync();
        var token = Token("ml-prod", "runner", "llm-0", "uid-1");
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);

        var (bound, boundBody) = await AttestAsync(broker, jwk, token, IdentityBinding.HostData("ml-prod", "runner"), BoundKey);
        Assert.That(bound, Is.EqualTo(200), boundBody?.ToJsonString());

        var (unbound, unboundBody) = await AttestAsync(broker, jwk, token, new byte[32], BoundKey);
        Assert.That((unbound, Shared.Code(unboundBody)), Is.EqualTo((403, ProblemCodes.PolicyDenied)));
        Assert.That(unboundBody!.ToJsonString(), Does.Contain(PolicyCodes.IdentityNotBound));

        // The launch data of runner, presented with another service account's token of the same namespace.
        var other = Token("ml-prod", "intruder", "llm-9", "uid-9");
        var (stolen, stolenBody) = await AttestAsync(broker, jwk, other, IdentityBinding.HostData("ml-prod", "runner"), BoundKey);
        Assert.That((stolen, Shared.Code(stolenBody)), Is.EqualTo((403, ProblemCodes.PolicyDenied)));
        Assert.That(stolenBody!.ToJsonString(), Does.Contain(PolicyCodes.IdentityNotBound));
    }

    [TestCase("Broker:Kubernetes:Identity", "kerberos", "Broker:Kubernetes:Identity must be none, tokenreview or offline")]
    [TestCase("Broker:Quarantine:Enabled", "true", "Broker:Quarantine:Enabled needs Broker:Kubernetes:Identity")]
    [TestCase("Broker:Kubernetes:Kubeconfig", "/nonexistent/kubeconfig", "Broker:Kubernetes:Kubeconfig does not exist")]
    [TestCase("Broker:Kubernetes:Identity", "offline", "Broker:Kubernetes:Offline:Issuer is required")]
    public void Bad_Kubernetes_settings_stop_the_start_naming_the_setting(string key, string value, string message)
    {
        var ex = Assert.ThrowsAsync<BrokerStartupException>(async () => await RunningBroker.StartAsync(Env, _ => Task.CompletedTask, new Dictionary<string, string?> { [key] = value }));
        Assert.That(ex!.Message, Does.Contain(message));
    }

    private static bool IsRemoved(RunningBroker broker, string keyId) =>
        Task.Run(() => broker.Host.Data.Storage.Policies.GetCurrentAsync(keyId)).GetAwaiter().GetResult()?.Document.Contains(BrokerPolicySink.RemovedPolicyName, StringComparison.Ordinal) == true;

    private static byte[] KeyBytes(string keyId) => SHA256.HashData(Encoding.UTF8.GetBytes("k8s test key " + keyId));

    private async Task<RunningBroker> StartBrokerAsync(Dictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Broker:Kubernetes:Identity"] = "tokenreview",
            ["Broker:Kubernetes:Kubeconfig"] = _kubeconfig,
        };
        foreach (var (k, v) in extra ?? [])
        {
            settings[k] = v;
        }

        _broker = await RunningBroker.StartAsync(Env, async data =>
        {
            var now = BrokerTestEnvironment.Issued;
            foreach (var id in new[] { ProdKey, DevKey, BoundKey, "ml-prod:watched" })
            {
                await data.Keys.ImportAsync(id, KeyBytes(id));
            }

            await data.SetPolicyAsync(ProdKey, Env.SnpPolicy("prod") + "requester:\n  namespaces: [ml-prod]\n", "test", now);
            await data.SetPolicyAsync(DevKey, Env.SnpPolicy("dev") + "requester:\n  namespaces: [ml-dev]\n", "test", now);
            await data.SetPolicyAsync(BoundKey, Env.SnpPolicy("bound") + "requester:\n  namespaces: [ml-prod]\n  bindToLaunchData: true\n", "test", now);
        }, settings);
        return _broker;
    }

    /// <summary>A JWT-shaped token the fake API server knows (TokenReview authenticates it as that pod's service account).</summary>
    private string Token(string ns, string sa, string pod, string uid)
    {
        var token = JwtShaped($"{ns}.{sa}.{pod}.{uid}");
        _tokens[token] = (ns, sa, pod, uid);
        return token;
    }

    private static string JwtShaped(string salt)
    {
        static string B64(string json) => Convert.ToBase64String(Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var exp = BrokerTestEnvironment.Issued.AddHours(1).AddMinutes(10).ToUnixTimeSeconds();
        return B64("{\"alg\":\"RS256\",\"kid\":\"k\"}") + "." + B64($"{{\"aud\":[\"attestbroker\"],\"exp\":{exp},\"salt\":\"{salt}\"}}") + "." + B64("signature");
    }

    private (int, JsonObject) Review(JsonObject request)
    {
        var token = (string?)request["spec"]?["token"];
        var audiences = request["spec"]?["audiences"]?.AsArray().Select(a => (string?)a).ToList() ?? [];
        JsonObject status;
        if (token is not null && _tokens.TryGetValue(token, out var who) && audiences.Contains("attestbroker"))
        {
            status = new JsonObject
            {
                ["authenticated"] = true,
                ["audiences"] = new JsonArray("attestbroker"),
                ["user"] = new JsonObject
                {
                    ["username"] = $"system:serviceaccount:{who.Namespace}:{who.ServiceAccount}",
                    ["uid"] = "sa-uid",
                    ["groups"] = new JsonArray("system:serviceaccounts"),
                    ["extra"] = new JsonObject
                    {
                        ["authentication.kubernetes.io/pod-name"] = new JsonArray(who.Pod),
                        ["authentication.kubernetes.io/pod-uid"] = new JsonArray(who.Uid),
                    },
                },
            };
        }
        else
        {
            status = new JsonObject { ["authenticated"] = false, ["error"] = "[invalid bearer token]" };
        }

        return (201, new JsonObject { ["apiVersion"] = "authentication.k8s.io/v1", ["kind"] = "TokenReview", ["spec"] = new JsonObject(), ["status"] = status });
    }

    /// <summary>Challenge, SEV-SNP evidence (HOST_DATA as given) bound to the nonce and key, attest with the service-account token.</summary>
    private static async Task<(int Status, JsonNode? Body)> AttestAsync(RunningBroker broker, Jwk jwk, string? saToken, byte[]? hostData, params string[] keyIds)
    {
        var (nonce, challenge) = await broker.ChallengeAsync(TeeKind.SevSnp);
        var profile = SimProfile.Default();
        if (hostData is not null)
        {
            profile.SnpGuest.HostData = hostData;
        }

        var evidence = SimEvidence.Create(Env.Pki, profile, TeeKind.SevSnp, new EvidenceOptions { ReportData = ReportDataBinding.Compute(nonce, jwk) });
        var body = JsonNode.Parse(RunningBroker.AttestJson(challenge, evidence, jwk, keyIds))!.AsObject();
        if (saToken is not null)
        {
            body["service_account_token"] = saToken;
        }

        var (status, response, _) = await broker.PostAsync("/v1/attest", body.ToJsonString());
        return (status, response);
    }

    private static async Task<(int Status, JsonNode? Body)> KeysAsync(RunningBroker broker, string resultToken, Jwk jwk, params string[] keyIds)
    {
        var json = new JsonObject { ["public_key"] = JsonNode.Parse(jwk.ToJson()), ["key_ids"] = new JsonArray(keyIds.Select(k => (JsonNode?)k).ToArray()) }.ToJsonString();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/keys", UriKind.Relative)) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", resultToken);
        using var response = await broker.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }
}
