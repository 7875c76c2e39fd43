using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace AttestBroker.Server.Admin;

/// <summary>
/// The admin API under <c>/v1/admin</c> (docs/protocol.md §8, roles in docs/server.md). Each endpoint names its
/// operation (audited as <c>admin.&lt;operation&gt;</c>) and the roles that may call it.
/// </summary>
public static class AdminEndpoints
{
    public const string Prefix = "/v1/admin";
    public const string JsonLinesContentType = "application/jsonl";

    private static readonly string[] KeyAdmin = [AdminRoles.KeyAdmin];
    private static readonly string[] KeyRead = [AdminRoles.KeyAdmin, AdminRoles.Auditor];
    private static readonly string[] PolicyAdmin = [AdminRoles.PolicyAdmin];
    private static readonly string[] PolicyRead = [AdminRoles.PolicyAdmin, AdminRoles.Auditor];
    private static readonly string[] Auditor = [AdminRoles.Auditor];

    /// <summary>Every admin route: method, path template, operation name and the roles allowed (the matrix).</summary>
    public static readonly IReadOnlyList<(string Method, string Path, string Operation, IReadOnlyList<string> Roles)> Routes =
    [
        ("GET", "/keys", "key.list", KeyRead),
        ("GET", "/keys/{id}", "key.get", KeyRead),
        ("POST", "/keys", "key.create", KeyAdmin),
        ("POST", "/keys/{id}/import", "key.import", KeyAdmin),
        ("POST", "/keys/{id}/disable", "key.disable", KeyAdmin),
        ("POST", "/keys/{id}/enable", "key.enable", KeyAdmin),
        ("POST", "/kek/rotate", "kek.rotate", KeyAdmin),
        ("PUT", "/policies/{keyId}", "policy.set", PolicyAdmin),
        ("GET", "/policies/{keyId}", "policy.get", PolicyRead),
        ("GET", "/policies/{keyId}/history", "policy.history", PolicyRead),
        ("GET", "/policies/{keyId}/versions/{version}", "policy.version", PolicyRead),
        ("POST", "/policies/{keyId}/test", "policy.test", PolicyAdmin),
        ("GET", "/audit/verify", "audit.verify", Auditor),
        ("GET", "/audit/export", "audit.export", Auditor),
        ("GET", "/audit/head-key", "audit.head-key", Auditor),
    ];

    public static void Map(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var g = app.MapGroup(Prefix).RequireRateLimiting(BrokerHost.RateLimitPolicy).WithTags("admin");

        Secure(g.MapGet("/keys", async (AdminService s, CancellationToken ct) => Json(await s.ListKeysAsync(ct))), "key.list", KeyRead)
            .WithName("AdminListKeys").WithSummary("List model keys: ids, states, KEK versions, current policy versions (never key bytes).").Produces<JsonObject>();
        Secure(g.MapGet("/keys/{id}", async (HttpContext c, AdminService s, string id, CancellationToken ct) => Json(await s.GetKeyAsync(id, AdminAuditContext.Of(c), ct))), "key.get", KeyRead)
            .WithName("AdminGetKey").WithSummary("One key's metadata.").Produces<JsonObject>().ProducesProblem(404);
        Secure(g.MapPost("/keys", async (HttpContext c, AdminService s, BrokerOptions o, CancellationToken ct) =>
            {
                var (body, problem) = await BrokerEndpoints.ReadBodyAsync(c, o.MaxRequestBodyBytes);
                if (problem is not null)
                {
                    return problem.ToResult();
                }

                var outcome = await s.CreateKeyAsync(body, AdminAuditContext.Of(c), ct);
                return Created(outcome);
            }), "key.create", KeyAdmin)
            .WithName("AdminCreateKey").WithSummary("Create a random AES-256 model key under a new id ({\"id\":\"...\", \"backend\"?:\"name\"}) in the named key backend (default: Broker:KeyBackends:Default).")
            .Accepts<AdminCreateKeyDoc>(BrokerEndpoints.JsonContentType).Produces<JsonObject>(201).ProducesProblem(409).ProducesProblem(415);
        Secure(g.MapPost("/keys/{id}/import", async (HttpContext c, AdminService s, string id, CancellationToken ct) =>
                Created(await s.ImportKeyAsync(c, id, AdminAuditContext.Of(c), ct))), "key.import", KeyAdmin)
            .WithName("AdminImportKey").WithSummary("Import a 32-byte model key ({\"key\":\"<base64>\"}), wrapped under the KEK; the broker zeroes its copies.")
            .Accepts<AdminImportKeyDoc>(BrokerEndpoints.JsonContentType).Produces<JsonObject>(201).ProducesProblem(409).ProducesProblem(413).ProducesProblem(415);
        Secure(g.MapPost("/keys/{id}/disable", async (HttpContext c, AdminService s, string id, CancellationToken ct) => Json(await s.SetKeyStateAsync(id, true, AdminAuditContext.Of(c), ct))), "key.disable", KeyAdmin)
            .WithName("AdminDisableKey").WithSummary("Stop releasing a key at once.").Produces<JsonObject>().ProducesProblem(404);
        Secure(g.MapPost("/keys/{id}/enable", async (HttpContext c, AdminService s, string id, CancellationToken ct) => Json(await s.SetKeyStateAsync(id, false, AdminAuditContext.Of(c), ct))), "key.enable", KeyAdmin)
            .WithName("AdminEnableKey").WithSummary("Release a disabled key again.").Produces<JsonObject>().ProducesProblem(404);
        Secure(g.MapPost("/kek/rotate", async (HttpContext c, AdminService s, BrokerOptions o, CancellationToken ct) =>
            {
                var body = Array.Empty<byte>();
                if (c.Request.ContentLength is > 0 || c.Request.Headers.TransferEncoding.Count > 0)
                {
                    (body, var problem) = await BrokerEndpoints.ReadBodyAsync(c, o.MaxRequestBodyBytes);
                    if (problem is not null)
                    {
                        return problem.ToResult();
                    }
                }

                return Json(await s.RotateKekAsync(body, AdminAuditContext.Of(c), ct));
            }), "kek.rotate", KeyAdmin)
            .WithName("AdminRotateKek").WithSummary("KEK rotation: a new KEK version, every key under the KEK re-wrapped while releases continue; unused versions retired. With {\"backend\":\"name\"}: rotate that key backend (rewrap to its newest wrapping key).")
            .Accepts<AdminRotateDoc>(BrokerEndpoints.JsonContentType).Produces<JsonObject>().ProducesProblem(400).ProducesProblem(409);

        Secure(g.MapPut("/policies/{keyId}", async (HttpContext c, AdminService s, string keyId, CancellationToken ct) => Json(await s.SetPolicyAsync(c, keyId, AdminAuditContext.Of(c), ct))), "policy.set", PolicyAdmin)
            .WithName("AdminSetPolicy").WithSummary("Validate and store a key's release policy (the body is the YAML or JSON document) as a new version.")
            .Accepts<string>("application/yaml", BrokerEndpoints.JsonContentType).Produces<JsonObject>().ProducesProblem(400).ProducesProblem(413).ProducesProblem(415);
        Secure(g.MapGet("/policies/{keyId}", async (HttpContext c, AdminService s, string keyId, CancellationToken ct) => Json(await s.GetPolicyAsync(keyId, AdminAuditContext.Of(c), ct))), "policy.get", PolicyRead)
            .WithName("AdminGetPolicy").WithSummary("The key's current release policy with its document.").Produces<JsonObject>().ProducesProblem(404);
        Secure(g.MapGet("/policies/{keyId}/history", async (HttpContext c, AdminService s, string keyId, CancellationToken ct) => Json(await s.PolicyHistoryAsync(keyId, AdminAuditContext.Of(c), ct))), "policy.history", PolicyRead)
            .WithName("AdminPolicyHistory").WithSummary("Every version of the key's policy: who set it and when (without documents).").Produces<JsonObject>().ProducesProblem(404);
        Secure(g.MapGet("/policies/{keyId}/versions/{version:long}", async (HttpContext c, AdminService s, string keyId, long version, CancellationToken ct) => Json(await s.GetPolicyVersionAsync(keyId, version, AdminAuditContext.Of(c), ct))), "policy.version", PolicyRead)
            .WithName("AdminGetPolicyVersion").WithSummary("One version of the key's policy with its document.").Produces<JsonObject>().ProducesProblem(404);
        Secure(g.MapPost("/policies/{keyId}/test", async (HttpContext c, AdminService s, BrokerOptions o, string keyId, CancellationToken ct) =>
            {
                var (body, problem) = await BrokerEndpoints.ReadBodyAsync(c, o.MaxRequestBodyBytes);
                return problem is not null ? problem.ToResult() : Json(await s.TestPolicyAsync(body, keyId, AdminAuditContext.Of(c), ct));
            }), "policy.test", PolicyAdmin)
            .WithName("AdminTestPolicy").WithSummary("Dry run: verify evidence and evaluate the stored (or a given) policy; lists every failing rule. Releases nothing, consumes no nonce, does not check REPORT_DATA.")
            .Accepts<AdminTestPolicyDoc>(BrokerEndpoints.JsonContentType).Produces<JsonObject>().ProducesProblem(400).ProducesProblem(404).ProducesProblem(415);

        Secure(g.MapGet("/audit/verify", async (AdminService s, CancellationToken ct) => Json(await s.VerifyAuditAsync(ct))), "audit.verify", Auditor)
            .WithName("AdminVerifyAudit").WithSummary("Walk the audit chain and check every signed head against the broker's audit-head key.").Produces<JsonObject>();
        Secure(g.MapGet("/audit/export", (AdminService s) => TypedResults.Stream(stream => s.ExportAuditAsync(stream, CancellationToken.None), JsonLinesContentType)), "audit.export", Auditor)
            .WithName("AdminExportAudit").WithSummary("Every audit row as one JSON object per line (seq, prev_hash, hash, event).").Produces<string>(200, JsonLinesContentType);
        Secure(g.MapGet("/audit/head-key", (AdminService s) => Json(s.HeadKey())), "audit.head-key", Auditor)
            .WithName("AdminAuditHeadKey").WithSummary("The public key that signs the audit chain heads (PEM), for offline 'audit verify --head-key'.").Produces<JsonObject>();
    }

    private static RouteHandlerBuilder Secure(RouteHandlerBuilder builder, string operation, string[] roles) =>
        builder.AddEndpointFilter(new AdminFilter(operation, roles)).ProducesProblem(401).ProducesProblem(403).ProducesProblem(429).ProducesProblem(503);

    private static IResult Json(BrokerOutcome outcome) =>
        outcome.Problem is { } p ? p.ToResult() : TypedResults.Json(outcome.Body, contentType: BrokerEndpoints.JsonContentType);

    private static IResult Created(BrokerOutcome outcome) =>
        outcome.Problem is { } p ? p.ToResult() : TypedResults.Json(outcome.Body, contentType: BrokerEndpoints.JsonContentType, statusCode: StatusCodes.Status201Created);
}

// Shapes for the OpenAPI document only; the endpoints parse bodies strictly themselves.
#pragma warning disable CA1812, SA1402
internal sealed record AdminCreateKeyDoc(string Id, string? Backend);

internal sealed record AdminImportKeyDoc(string Key, string? Backend);

internal sealed record AdminRotateDoc(string? Backend);

internal sealed record AdminTestPolicyDoc(string Evidence, DateTimeOffset? At, string? Policy);
#pragma warning restore CA1812, SA1402
