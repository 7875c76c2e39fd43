using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Server.Admin;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

/// <summary>
/// The admin authorization matrix, driven from one table: every caller (no token, expired, bad signature, foreign
/// key, wrong audience, wrong issuer, no roles, an unknown role, each role) against every admin endpoint.
/// </summary>
[TestFixture]
public sealed class Admin_authorization_matrix_allows_each_role_exactly_its_operations
{
    private const string MatrixKey = "matrix-key";
    private const string StateKey = "matrix-state";

    /// <summary>The matrix of docs/server.md, written here independently of the code's route table.</summary>
    private static readonly Dictionary<string, string[]> Expected = new()
    {
        ["key.list"] = [AdminRoles.KeyAdmin, AdminRoles.Auditor],
        ["key.get"] = [AdminRoles.KeyAdmin, AdminRoles.Auditor],
        ["key.create"] = [AdminRoles.KeyAdmin],
        ["key.import"] = [AdminRoles.KeyAdmin],
        ["key.disable"] = [AdminRoles.KeyAdmin],
        ["key.enable"] = [AdminRoles.KeyAdmin],
        ["kek.rotate"] = [AdminRoles.KeyAdmin],
        ["policy.set"] = [AdminRoles.PolicyAdmin],
        ["policy.get"] = [AdminRoles.PolicyAdmin, AdminRoles.Auditor],
        ["policy.history"] = [AdminRoles.PolicyAdmin, AdminRoles.Auditor],
        ["policy.version"] = [AdminRoles.PolicyAdmin, AdminRoles.Auditor],
        ["policy.test"] = [AdminRoles.PolicyAdmin],
        ["audit.verify"] = [AdminRoles.Auditor],
        ["audit.export"] = [AdminRoles.Auditor],
        ["audit.head-key"] = [AdminRoles.Auditor],
    };

    /// <summary>One request per operation; ids are fresh where the call creates something.</summary>
    private static (string Method, string Path, string? Body, string ContentType, int Success) Request(string operation) => operation switch
    {
        "key.list" => ("GET", "/v1/admin/keys", null, "application/json", 200),
        "key.get" => ("GET", $"/v1/admin/keys/{MatrixKey}", null, "application/json", 200),
        "key.create" => ("POST", "/v1/admin/keys", $"{{\"id\":\"matrix-new-{Guid.NewGuid():N}\"}}", "application/json", 201),
        "key.import" => ("POST", $"/v1/admin/keys/matrix-imp-{Guid.NewGuid():N}/import", $"{{\"key\":\"{Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))}\"}}", "application/json", 201),
        "key.disable" => ("POST", $"/v1/admin/keys/{StateKey}/disable", null, "application/json", 200),
        "key.enable" => ("POST", $"/v1/admin/keys/{StateKey}/enable", null, "application/json", 200),
        "kek.rotate" => ("POST", "/v1/admin/kek/rotate", null, "application/json", 200),
        "policy.set" => ("PUT", $"/v1/admin/policies/{MatrixKey}", Shared.Env.TdxPolicy("matrix"), "application/yaml", 200),
        "policy.get" => ("GET", $"/v1/admin/policies/{MatrixKey}", null, "application/json", 200),
        "policy.history" => ("GET", $"/v1/admin/policies/{MatrixKey}/history", null, "application/json", 200),
        "policy.version" => ("GET", $"/v1/admin/policies/{MatrixKey}/versions/1", null, "application/json", 200),
        "policy.test" => ("POST", $"/v1/admin/policies/{MatrixKey}/test", $"{{\"evidence\":\"{AdminClient.EvidenceBase64(TeeKind.Tdx)}\"}}", "application/json", 200),
        "audit.verify" => ("GET", "/v1/admin/audit/verify", null, "application/json", 200),
        "audit.export" => ("GET", "/v1/admin/audit/export", null, "application/json", 200),
        "audit.head-key" => ("GET", "/v1/admin/audit/head-key", null, "application/json", 200),
        _ => throw new ArgumentException("no request for " + operation, nameof(operation)),
    };

    /// <summary>Callers: a token (or none), the roles it carries when valid, and the 401 error when it is not.</summary>
    private static (string? Token, string[] Roles, string? Error) Caller(string name)
    {
        var all = AdminRoles.All.ToArray();
        var now = Shared.Broker.Time.GetUtcNow();
        return name switch
        {
            "no token" => (null, [], null),
            "expired" => (AdminClient.Token("expired", all, TimeSpan.FromMinutes(5), now.AddHours(-1)), [], nameof(AdminTokenError.Expired)),
            "bad signature" => (FlipSignature(AdminClient.Token("flipped", all)), [], nameof(AdminTokenError.BadSignature)),
            "foreign key" => (Foreign(all), [], nameof(AdminTokenError.UnknownKey)),
            "wrong audience" => (AdminClient.Token("aud", all, TimeSpan.FromMinutes(5), audience: "someone-else"), [], nameof(AdminTokenError.WrongAudience)),
            "wrong issuer" => (Crafted(new JsonObject { ["iss"] = "https://idp.example", ["sub"] = "x", ["aud"] = AdminTokens.DefaultAudience, ["exp"] = now.AddMinutes(5).ToUnixTimeSeconds(), ["roles"] = new JsonArray([.. all.Select(r => (JsonNode?)r)]) }), [], nameof(AdminTokenError.UnknownIssuer)),
            "no roles" => (AdminClient.Token("nobody"), [], null),
            "unknown role" => (AdminClient.Token("admin", "admin", "root"), [], null),
            _ => (AdminClient.Token(name, name), [name], null),
        };
    }

    private static readonly string[] Callers = ["no token", "expired", "bad signature", "foreign key", "wrong audience", "wrong issuer", "no roles", "unknown role", AdminRoles.KeyAdmin, AdminRoles.PolicyAdmin, AdminRoles.Auditor];

    private static IEnumerable<TestCaseData> Cases() =>
        from op in Expected.Keys
        from caller in Callers
        select new TestCaseData(op, caller).SetName($"{op} as {caller}");

    [OneTimeSetUp]
    public async Task SeedAsync()
    {
        var keyAdmin = AdminClient.Token("seed", AdminRoles.KeyAdmin);
        foreach (var id in new[] { MatrixKey, StateKey })
        {
            var created = await AdminClient.SendAsync("POST", "/v1/admin/keys", keyAdmin, $"{{\"id\":\"{id}\"}}");
            Assert.That(created.Status, Is.EqualTo(201).Or.EqualTo(409), created.Text);
        }

        var set = await AdminClient.SendAsync("PUT", $"/v1/admin/policies/{MatrixKey}", AdminClient.Token("seed", AdminRoles.PolicyAdmin), Shared.Env.TdxPolicy("matrix"), "application/yaml");
        Assert.That(set.Status, Is.EqualTo(200), set.Text);
    }

    [Test]
    public void The_route_table_has_exactly_the_matrix_operations_with_the_same_roles()
    {
        Assert.That(AdminEndpoints.Routes.ToDictionary(r => r.Operation, r => r.Roles.Order().ToArray()),
            Is.EquivalentTo(Expected.ToDictionary(e => e.Key, e => e.Value.Order().ToArray())));
    }

    [TestCaseSource(nameof(Cases))]
    public async Task Each_caller_gets_2xx_401_or_403_on_each_endpoint(string operation, string caller)
    {
        var (token, roles, error) = Caller(caller);
        var (method, path, body, contentType, success) = Request(operation);
        var response = await AdminClient.SendAsync(method, path, token, body, contentType);

        if (token is null || error is not null)
        {
            Assert.That(response.Status, Is.EqualTo(401), response.Text);
            Assert.That(response.ContentType, Is.EqualTo("application/problem+json"));
            Assert.That(response.WwwAuthenticate, Does.StartWith("Bearer"));
            Assert.That((string?)response.Body!["code"], Is.EqualTo(token is null ? ProblemCodes.TokenMissing : ProblemCodes.TokenInvalid));
            Assert.That((string?)response.Body["error"], Is.EqualTo(error));
        }
        else if (roles.Any(Expected[operation].Contains))
        {
            Assert.That(response.Status, Is.EqualTo(success), response.Text);
        }
        else
        {
            Assert.That(response.Status, Is.EqualTo(403), response.Text);
            Assert.That(response.ContentType, Is.EqualTo("application/problem+json"));
            Assert.That((string?)response.Body!["type"], Is.EqualTo(ProblemCodes.TypePrefix + AdminProblems.Forbidden));
            Assert.That(response.Body["required_roles"]!.AsArray().Select(r => (string?)r), Is.EquivalentTo(Expected[operation]));
        }
    }

    private static string FlipSignature(string token)
    {
        var parts = token.Split('.');
        var signature = RunningBroker.Base64UrlDecode(parts[2]);
        signature[10] ^= 0x01;
        return parts[0] + "." + parts[1] + "." + RunningBroker.Base64UrlEncode(signature);
    }

    /// <summary>A well-formed local-issuer token signed by a key the broker does not know.</summary>
    private static string Foreign(string[] roles)
    {
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return AdminTokens.Mint(other, "mallory", roles, Shared.Broker.Time.GetUtcNow(), TimeSpan.FromMinutes(5));
    }

    /// <summary>A token with any payload, signed ES256 by the broker's local key.</summary>
    internal static string Crafted(JsonObject payload)
    {
        using var key = AdminTokens.LoadOrCreateLocalKey(Shared.Broker.DataDir);
        var header = RunningBroker.Base64UrlEncode(Encoding.UTF8.GetBytes("{\"alg\":\"ES256\",\"typ\":\"JWT\"}"));
        var body = RunningBroker.Base64UrlEncode(Encoding.UTF8.GetBytes(payload.ToJsonString()));
        var signature = key.SignData(Encoding.ASCII.GetBytes(header + "." + body), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return header + "." + body + "." + RunningBroker.Base64UrlEncode(signature);
    }
}
