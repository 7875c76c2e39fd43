using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.Policy;
using AttestBroker.Protocol;
using AttestBroker.Server.Admin;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

internal static class AdminFlows
{
    public static string KeyAdmin(string subject = "key-admin@test") => AdminClient.Token(subject, AdminRoles.KeyAdmin);

    public static string PolicyAdmin(string subject = "policy-admin@test") => AdminClient.Token(subject, AdminRoles.PolicyAdmin);

    public static async Task CreateKeyAsync(string id)
    {
        var r = await AdminClient.SendAsync("POST", "/v1/admin/keys", KeyAdmin(), $"{{\"id\":\"{id}\"}}");
        Assert.That(r.Status, Is.EqualTo(201), r.Text);
    }

    public static async Task<AdminClient.Response> SetPolicyAsync(string keyId, string yaml, string? token = null) =>
        await AdminClient.SendAsync("PUT", $"/v1/admin/policies/{keyId}", token ?? PolicyAdmin(), yaml, "application/yaml");

    public static async Task<(int Status, JsonNode? Body)> AttestAsync(string keyId)
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        return await Shared.AttestAsync(TeeKind.Tdx, Jwk.FromPublicKey(pod), null, keyId);
    }
}

[TestFixture]
public sealed class Admin_changes_are_audited_with_the_token_subject_as_actor
{
    [Test]
    public async Task A_key_created_through_the_api_appends_an_allowed_admin_row_naming_the_subject_and_key()
    {
        var before = await AdminClient.LastAuditAsync();
        var r = await AdminClient.SendAsync("POST", "/v1/admin/keys", AdminFlows.KeyAdmin("alice@example.com"), "{\"id\":\"audited-key\"}");
        Assert.That(r.Status, Is.EqualTo(201), r.Text);
        Assert.That(r.Text, Does.Not.Contain("\"key\""));

        var row = (await AdminClient.AuditRowsAfterAsync(before)).Single();
        Assert.That(((string?)row["kind"], (string?)row["actor"], (string?)row["decision"], (string?)row["key_id"]),
            Is.EqualTo(("admin.key.create", "alice@example.com", AdminFilter.Allowed, "audited-key")));
        Assert.That(((string?)row["details"]!["outcome"], (string?)row["details"]!["status"], (string?)row["details"]!["roles"], (string?)row["details"]!["issuer"]),
            Is.EqualTo(("ok", "201", AdminRoles.KeyAdmin, AdminTokens.LocalIssuer)));
    }

    [Test]
    public async Task A_call_refused_for_its_role_appends_a_refused_row_with_the_forbidden_reason()
    {
        var before = await AdminClient.LastAuditAsync();
        var r = await AdminClient.SendAsync("POST", "/v1/admin/keys/model-tdx/disable", AdminClient.Token("eve@example.com", AdminRoles.Auditor));
        Assert.That(r.Status, Is.EqualTo(403));

        var row = (await AdminClient.AuditRowsAfterAsync(before)).Single();
        Assert.That(((string?)row["kind"], (string?)row["actor"], (string?)row["decision"], (string?)row["reasons"]![0]),
            Is.EqualTo(("admin.key.disable", "eve@example.com", AdminFilter.Refused, AdminProblems.Forbidden)));
    }

    [Test]
    public async Task A_policy_set_records_the_new_version_in_the_audit_row_and_the_history_names_the_author()
    {
        await AdminFlows.CreateKeyAsync("audited-policy");
        var before = await AdminClient.LastAuditAsync();
        var r = await AdminFlows.SetPolicyAsync("audited-policy", Shared.Env.TdxPolicy("audited"), AdminFlows.PolicyAdmin("bob@example.com"));
        Assert.That(((int)r.Status, (long?)r.Body!["version"], (bool?)r.Body["changed"]), Is.EqualTo((200, 1L, true)), r.Text);

        var row = (await AdminClient.AuditRowsAfterAsync(before)).Single();
        Assert.That(((string?)row["kind"], (string?)row["actor"], (long?)row["policy_version"], (string?)row["details"]!["sha256"]),
            Is.EqualTo(("admin.policy.set", "bob@example.com", 1L, (string?)r.Body["sha256"])));

        var history = await AdminClient.SendAsync("GET", "/v1/admin/policies/audited-policy/history", AdminClient.Token("carol", AdminRoles.Auditor));
        Assert.That((string?)history.Body!["versions"]![0]!["author"], Is.EqualTo("bob@example.com"));
    }

    [Test]
    public async Task A_call_without_a_valid_token_appends_no_row()
    {
        var before = await AdminClient.LastAuditAsync();
        var r = await AdminClient.SendAsync("GET", "/v1/admin/keys", "not.a.token");
        Assert.That(((int)r.Status, (string?)r.Body!["error"]), Is.EqualTo((401, nameof(AdminTokenError.Malformed))));
        Assert.That(await AdminClient.AuditRowsAfterAsync(before), Is.Empty);
    }
}

[TestFixture]
public sealed class Admin_changes_take_effect_on_the_next_release
{
    [Test]
    public async Task A_policy_set_through_the_api_decides_the_next_attest()
    {
        const string Key = "api-policy-key";
        await AdminFlows.CreateKeyAsync(Key);
        Assert.That((await AdminFlows.SetPolicyAsync(Key, Shared.Env.TdxPolicy("wrong", mrTd: Shared.OtherMrTd))).Status, Is.EqualTo(200));
        var (denied, deniedBody) = await AdminFlows.AttestAsync(Key);
        Assert.That((denied, Shared.Code(deniedBody)), Is.EqualTo((403, ProblemCodes.PolicyDenied)));
        Assert.That((string?)deniedBody!["keys"]![0]!["failures"]![0]!["code"], Is.EqualTo(PolicyCodes.MeasurementMismatch));

        Assert.That((await AdminFlows.SetPolicyAsync(Key, Shared.Env.TdxPolicy("right"))).Status, Is.EqualTo(200));
        var (granted, grantedBody) = await AdminFlows.AttestAsync(Key);
        Assert.That(granted, Is.EqualTo(200), grantedBody?.ToJsonString());
    }

    [Test]
    public async Task Disabling_a_key_through_the_api_stops_its_release_at_once_and_enabling_restores_it()
    {
        const string Key = "api-disable-key";
        await AdminFlows.CreateKeyAsync(Key);
        await AdminFlows.SetPolicyAsync(Key, Shared.Env.TdxPolicy("disable"));
        Assert.That((await AdminFlows.AttestAsync(Key)).Status, Is.EqualTo(200));

        var disabled = await AdminClient.SendAsync("POST", $"/v1/admin/keys/{Key}/disable", AdminFlows.KeyAdmin());
        Assert.That(((int)disabled.Status, (string?)disabled.Body!["state"]), Is.EqualTo((200, "disabled")));
        var (status, body) = await AdminFlows.AttestAsync(Key);
        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.KeyDisabled)));

        await AdminClient.SendAsync("POST", $"/v1/admin/keys/{Key}/enable", AdminFlows.KeyAdmin());
        Assert.That((await AdminFlows.AttestAsync(Key)).Status, Is.EqualTo(200));
    }

    [Test]
    public async Task Kek_rotation_through_the_api_rewraps_every_key_while_releases_continue()
    {
        const string Key = "api-rotate-key";
        await AdminFlows.CreateKeyAsync(Key);
        await AdminFlows.SetPolicyAsync(Key, Shared.Env.TdxPolicy("rotate"));
        var before = await AdminClient.SendAsync("GET", $"/v1/admin/keys/{Key}", AdminFlows.KeyAdmin());

        var releases = Enumerable.Range(0, 12).Select(_ => AdminFlows.AttestAsync(Key)).ToList();
        var rotations = new List<AdminClient.Response>();
        for (var i = 0; i < 2; i++)
        {
            rotations.Add(await AdminClient.SendAsync("POST", "/v1/admin/kek/rotate", AdminFlows.KeyAdmin()));
        }

        var results = await Task.WhenAll(releases);
        Assert.That(results.Select(r => r.Status), Is.All.EqualTo(200));
        Assert.That(rotations.Select(r => r.Status), Is.All.EqualTo(200), string.Join("\n", rotations.Select(r => r.Text)));
        var version = (int)rotations[^1].Body!["kek_version"]!;
        Assert.That(version, Is.GreaterThanOrEqualTo((int)before.Body!["kek_version"]! + 2));

        var list = await AdminClient.SendAsync("GET", "/v1/admin/keys", AdminFlows.KeyAdmin());
        Assert.That(list.Body!["keys"]!.AsArray().Select(k => (int)k!["kek_version"]!), Is.All.EqualTo(version));
        Assert.That((await AdminFlows.AttestAsync(Key)).Status, Is.EqualTo(200));
    }
}

[TestFixture]
public sealed class Policy_dry_run_explains_without_releasing
{
    private static async Task<AdminClient.Response> TestAsync(string keyId, JsonObject body) =>
        await AdminClient.SendAsync("POST", $"/v1/admin/policies/{keyId}/test", AdminFlows.PolicyAdmin(), body.ToJsonString());

    [Test]
    public async Task A_denying_policy_lists_every_failing_rule_with_claim_expected_and_actual()
    {
        var r = await TestAsync(Shared.TdxKey, new JsonObject
        {
            ["evidence"] = AdminClient.EvidenceBase64(TeeKind.Tdx, SimFault.Debug),
            ["policy"] = Shared.Env.TdxPolicy("dry", mrTd: Shared.OtherMrTd),
        });
        Assert.That(r.Status, Is.EqualTo(200), r.Text);
        Assert.That(((string?)r.Body!["decision"], (bool?)r.Body["released"], (string?)r.Body["policy_source"]!["from"]), Is.EqualTo(("denied", false, "request")));
        var failures = r.Body["failures"]!.AsArray().Select(f => f!.AsObject()).ToList();
        Assert.That(failures.Select(f => (string?)f["code"]), Is.EquivalentTo(new[] { PolicyCodes.DebugNotAllowed, PolicyCodes.MeasurementMismatch }));
        var mrTd = failures.Single(f => (string?)f["code"] == PolicyCodes.MeasurementMismatch);
        Assert.That(((string?)mrTd["claim"], (string?)mrTd["expected"]![0], (string?)mrTd["actual"]),
            Is.EqualTo(("mr_td", Shared.OtherMrTd, (string?)Shared.Env.CleanClaims[TeeKind.Tdx]["mr_td"])));
        Assert.That((string?)r.Body["report_data_binding"], Does.StartWith("not checked"));
    }

    [Test]
    public async Task The_stored_policy_grants_clean_evidence_at_a_given_time_and_no_nonce_or_key_is_touched()
    {
        var before = await AdminClient.LastAuditAsync();
        var r = await TestAsync(Shared.TdxKey, new JsonObject
        {
            ["evidence"] = AdminClient.EvidenceBase64(TeeKind.Tdx),
            ["at"] = "2026-03-01T02:00:00Z",
        });
        Assert.That(((int)r.Status, (string?)r.Body!["decision"], (string?)r.Body["policy_source"]!["from"], (string?)r.Body["evaluated_at"]),
            Is.EqualTo((200, "granted", "store", "2026-03-01T02:00:00Z")), r.Text);
        Assert.That((bool?)r.Body["verification"]!["simulated"], Is.True);
        var rows = await AdminClient.AuditRowsAfterAsync(before);
        Assert.That(rows.Select(x => (string?)x["kind"]), Is.EqualTo(new[] { "admin.policy.test" }));
    }

    [Test]
    public async Task A_policy_that_hides_its_reasons_from_requesters_still_shows_them_to_the_admin()
    {
        var r = await TestAsync(Shared.HiddenKey, new JsonObject { ["evidence"] = AdminClient.EvidenceBase64(TeeKind.Tdx) });
        Assert.That(((string?)r.Body!["decision"], (bool?)r.Body["explain"]), Is.EqualTo(("denied", false)));
        Assert.That(r.Body["failures"]!.AsArray().Select(f => (string?)f!["code"]), Is.EqualTo(new[] { PolicyCodes.MeasurementMismatch }));
    }
}

[TestFixture]
public sealed class Admin_api_answers_bad_input_with_problem_json
{
    private static async Task AssertProblemAsync(AdminClient.Response r, int status, string code)
    {
        await Task.CompletedTask;
        Assert.That((r.Status, r.ContentType), Is.EqualTo((status, "application/problem+json")), r.Text);
        Assert.That(((string?)r.Body!["type"], (string?)r.Body["code"]), Is.EqualTo((ProblemCodes.TypePrefix + code, code)));
        Assert.That(r.Text, Does.Not.Contain("   at "));
    }

    [Test]
    public async Task An_invalid_policy_is_400_invalid_policy_naming_the_field_and_stores_nothing()
    {
        await AdminFlows.CreateKeyAsync("bad-policy-key");
        var r = await AdminFlows.SetPolicyAsync("bad-policy-key", "name: p\nversion: 1\ntee: [tdx]\nallowDebugg: true\ntdx:\n  mrTd: [" + Shared.OtherMrTd + "]\n");
        await AssertProblemAsync(r, 400, AdminProblems.InvalidPolicy);
        Assert.That((string?)r.Body!["detail"], Does.Contain("allowDebugg"));
        Assert.That(await Shared.Broker.Host.Data.Storage.Policies.GetCurrentAsync("bad-policy-key"), Is.Null);

        var nested = await AdminFlows.SetPolicyAsync("bad-policy-key", "name: p\nversion: 1\ntee: [tdx]\ntdx:\n  mrTd: [abcd]\n");
        await AssertProblemAsync(nested, 400, AdminProblems.InvalidPolicy);
        Assert.That((string?)nested.Body!["path"], Does.StartWith("tdx.mrTd"));
    }

    [Test]
    public async Task A_json_policy_is_accepted_as_application_json_and_plain_text_is_415()
    {
        await AdminFlows.CreateKeyAsync("json-policy-key");
        var json = $"{{\"name\":\"j\",\"version\":1,\"tee\":[\"tdx\"],\"allowSimulated\":true,\"tdx\":{{\"mrTd\":[\"{Shared.OtherMrTd}\"]}}}}";
        var ok = await AdminClient.SendAsync("PUT", "/v1/admin/policies/json-policy-key", AdminFlows.PolicyAdmin(), json, "application/json");
        Assert.That(ok.Status, Is.EqualTo(200), ok.Text);
        var text = await AdminClient.SendAsync("PUT", "/v1/admin/policies/json-policy-key", AdminFlows.PolicyAdmin(), json, "text/plain");
        await AssertProblemAsync(text, 415, ProblemCodes.UnsupportedMediaType);
    }

    [Test]
    public async Task Key_bodies_are_checked_strictly()
    {
        var token = AdminFlows.KeyAdmin();
        await AssertProblemAsync(await AdminClient.SendAsync("POST", "/v1/admin/keys", token, "{\"id\":"), 400, ProblemCodes.MalformedRequest);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", "/v1/admin/keys", token, "{\"id\":\"k1\",\"extra\":1}"), 400, ProblemCodes.MalformedRequest);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", "/v1/admin/keys", token, "{\"id\":\"../etc\"}"), 400, ProblemCodes.MalformedRequest);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", "/v1/admin/keys", token, $"{{\"id\":\"{Shared.TdxKey}\"}}"), 409, AdminProblems.KeyExists);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", "/v1/admin/keys/short-key/import", token, $"{{\"key\":\"{Convert.ToBase64String(new byte[31])}\"}}"), 400, AdminProblems.InvalidKeyMaterial);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", "/v1/admin/keys/zero-key/import", token, $"{{\"key\":\"{Convert.ToBase64String(new byte[32])}\"}}"), 400, AdminProblems.InvalidKeyMaterial);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", "/v1/admin/keys/big-key/import", token, "{\"key\":\"" + new string('A', 8000) + "\"}"), 413, ProblemCodes.BodyTooLarge);
        await AssertProblemAsync(await AdminClient.SendAsync("GET", "/v1/admin/keys/no-such-key", token), 404, ProblemCodes.UnknownKey);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", "/v1/admin/keys/no-such-key/disable", token), 404, ProblemCodes.UnknownKey);
    }

    [Test]
    public async Task An_imported_key_is_released_as_exactly_the_imported_bytes()
    {
        var bytes = RandomNumberGenerator.GetBytes(32);
        var r = await AdminClient.SendAsync("POST", "/v1/admin/keys/imported-key/import", AdminFlows.KeyAdmin(), $"{{\"key\":\"{Convert.ToBase64String(bytes)}\"}}");
        Assert.That(r.Status, Is.EqualTo(201), r.Text);
        await AdminFlows.SetPolicyAsync("imported-key", Shared.Env.TdxPolicy("imported"));
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, Jwk.FromPublicKey(pod), null, "imported-key");
        Assert.That(status, Is.EqualTo(200));
        var released = JweDecryptor.Decrypt((string)body!["keys"]![0]!["jwe"]!, pod, out var kid);
        Assert.That((released, kid), Is.EqualTo((bytes, "imported-key")));
    }

    [Test]
    public async Task Dry_run_and_policy_reads_report_unknown_things_as_404_and_bad_evidence_as_400()
    {
        var token = AdminFlows.PolicyAdmin();
        await AssertProblemAsync(await AdminClient.SendAsync("GET", "/v1/admin/policies/model-nopolicy", token), 404, AdminProblems.PolicyNotFound);
        await AssertProblemAsync(await AdminClient.SendAsync("GET", $"/v1/admin/policies/{Shared.TdxKey}/versions/99", token), 404, AdminProblems.PolicyVersionNotFound);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", $"/v1/admin/policies/{Shared.TdxKey}/test", token, "{\"evidence\":\"AAAA\"}"), 400, ProblemCodes.MalformedEvidence);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", $"/v1/admin/policies/{Shared.TdxKey}/test", token, "{\"evidence\":\"%%%\"}"), 400, ProblemCodes.MalformedEvidence);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", $"/v1/admin/policies/{Shared.TdxKey}/test", token, "{\"evidence\":\"AAAA\",\"at\":\"yesterday\"}"), 400, ProblemCodes.MalformedRequest);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", $"/v1/admin/policies/{Shared.TdxKey}/test", token, "{\"evidence\":\"AAAA\",\"nonce\":\"x\"}"), 400, ProblemCodes.MalformedRequest);
        await AssertProblemAsync(await AdminClient.SendAsync("POST", $"/v1/admin/policies/{Shared.TdxKey}/test", token, "{\"evidence\":\"" + AdminClient.EvidenceBase64(TeeKind.Tdx) + "\",\"policy\":\"name: x\"}"), 400, AdminProblems.InvalidPolicy);
    }
}

[TestFixture]
public sealed class Audit_api_verifies_the_chain_and_its_signed_heads
{
    [Test]
    public async Task Verify_reports_an_intact_chain_with_heads_signed_by_the_served_head_key_and_export_streams_json_lines()
    {
        var auditor = AdminClient.Token("auditor@test", AdminRoles.Auditor);
        var headKey = await AdminClient.SendAsync("GET", "/v1/admin/audit/head-key", auditor);
        Assert.That(headKey.Status, Is.EqualTo(200));
        using var key = ECDsa.Create();
        key.ImportFromPem((string)headKey.Body!["public_key_pem"]!);

        // The broker signs a head at start; a head made now must verify with the served public key too.
        var storage = Shared.Broker.Host.Data.Storage;
        var verify = await AdminClient.SendAsync("GET", "/v1/admin/audit/verify", auditor);
        Assert.That(((int)verify.Status, (bool?)verify.Body!["valid"]), Is.EqualTo((200, true)), verify.Text);
        Assert.That((long)verify.Body["heads_checked"]!, Is.GreaterThanOrEqualTo(1));
        Assert.That((string?)verify.Body["head_key_id"], Is.EqualTo(Storage.AuditChain.SignerKeyId(key)));
        var local = await storage.Audit.VerifyAsync(key);
        Assert.That((local.IsValid, local.HeadsChecked >= 1), Is.EqualTo((true, true)));

        var export = await AdminClient.SendAsync("GET", "/v1/admin/audit/export", auditor);
        Assert.That((export.Status, export.ContentType), Is.EqualTo((200, AdminEndpoints.JsonLinesContentType)));
        var lines = export.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Length, Is.GreaterThanOrEqualTo((long)verify.Body["rows_checked"]!));
        Assert.That(lines.Select(l => (long)JsonNode.Parse(l)!["seq"]!), Is.Ordered.Ascending);
    }
}

[TestFixture]
public sealed class Admin_api_is_described_in_the_openapi_document
{
    [Test]
    public async Task Every_admin_route_appears_with_its_method_and_the_401_and_403_problems()
    {
        var doc = JsonNode.Parse(await Shared.Broker.Client.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative)))!;
        foreach (var (method, path, operation, _) in AdminEndpoints.Routes)
        {
            var documented = doc["paths"]?[AdminEndpoints.Prefix + path]?[method.ToLowerInvariant()];
            Assert.That(documented, Is.Not.Null, $"{method} {path} ({operation})");
            Assert.That(documented!["responses"]!["401"], Is.Not.Null, operation);
            Assert.That(documented["responses"]!["403"], Is.Not.Null, operation);
        }
    }
}
