using System.Text.Json.Nodes;
using AttestBroker.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Server.Admin;

/// <summary>What an admin handler adds to its audit row (the key, the policy version, further details). Never key bytes.</summary>
public sealed class AdminAuditContext
{
    public AdminAuditContext(AdminPrincipal principal) => Principal = principal;

    public AdminPrincipal Principal { get; }

    public string? KeyId { get; set; }

    public long? PolicyVersion { get; set; }

    public Dictionary<string, string> Details { get; } = new(StringComparer.Ordinal);

    internal static AdminAuditContext Of(HttpContext context) =>
        context.Items[typeof(AdminAuditContext)] as AdminAuditContext ?? throw new InvalidOperationException("admin endpoint without the admin filter");
}

/// <summary>
/// Authenticates and authorises one admin endpoint: a Bearer token from a trusted issuer (401 problem with
/// <c>WWW-Authenticate: Bearer</c> otherwise), one of the endpoint's roles (403 problem otherwise). Every call that
/// presents a valid token — allowed, refused for its role, failed — is appended to the audit log as
/// <c>admin.&lt;operation&gt;</c> with the token's <c>sub</c> as actor. Calls without a valid token have no actor and
/// are only logged (so anonymous traffic cannot grow the chain).
/// </summary>
public sealed partial class AdminFilter : IEndpointFilter
{
    public const string Allowed = "allowed";
    public const string Refused = "refused";

    private readonly string _operation;
    private readonly string[] _roles;

    public AdminFilter(string operation, string[] roles)
    {
        _operation = operation;
        _roles = roles;
    }

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var setup = http.RequestServices.GetRequiredService<AdminSetup>();
        var storage = http.RequestServices.GetRequiredService<IBrokerStorage>();
        var log = http.RequestServices.GetRequiredService<ILogger<AdminFilter>>();
        var header = http.Request.Headers.Authorization;
        var value = header.Count == 1 ? header[0] : null;
        if (value is null || !value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || value.Length <= 7)
        {
            LogRefused(log, _operation, "token-missing");
            http.Response.Headers.WWWAuthenticate = "Bearer realm=\"attestbroker-admin\"";
            return new BrokerProblem(StatusCodes.Status401Unauthorized, ProblemCodes.TokenMissing, "Admin token required",
                "send an admin token as 'Authorization: Bearer <token>' (attestbroker admin token mints one on the broker's machine)").ToResult();
        }

        AdminPrincipal principal;
        try
        {
            principal = await AdminTokens.ValidateAsync(value[7..].Trim(), setup.Sources, setup.Options.Audience, setup.Time.GetUtcNow(),
                TimeSpan.FromSeconds(setup.Options.ClockSkewSeconds), http.RequestAborted).ConfigureAwait(false);
        }
        catch (AdminTokenException ex) when (ex.Error == AdminTokenError.SignerUnavailable)
        {
            LogRefused(log, _operation, ex.Error.ToString());
            return new BrokerProblem(StatusCodes.Status503ServiceUnavailable, ProblemCodes.BackendUnavailable, "Token issuer unavailable",
                "the token issuer's signing keys could not be fetched; retry later", new JsonObject { ["error"] = ex.Error.ToString() }).ToResult();
        }
        catch (AdminTokenException ex)
        {
            LogRefused(log, _operation, ex.Error.ToString());
            http.Response.Headers.WWWAuthenticate = "Bearer realm=\"attestbroker-admin\", error=\"invalid_token\"";
            return new BrokerProblem(StatusCodes.Status401Unauthorized, ProblemCodes.TokenInvalid, "Invalid admin token",
                $"the admin token was refused: {ex.Message}", new JsonObject { ["error"] = ex.Error.ToString() }).ToResult();
        }

        var audit = new AdminAuditContext(principal);
        http.Items[typeof(AdminAuditContext)] = audit;
        if (!principal.HasAnyRole(_roles))
        {
            await AppendAsync(storage, setup.Time, http, audit, Refused, StatusCodes.Status403Forbidden, AdminProblems.Forbidden).ConfigureAwait(false);
            return new BrokerProblem(StatusCodes.Status403Forbidden, AdminProblems.Forbidden, "Role required",
                $"this operation needs one of the roles: {string.Join(", ", _roles)}",
                new JsonObject { ["required_roles"] = new JsonArray([.. _roles.Select(r => (JsonNode?)r)]) }).ToResult();
        }

        var result = await next(context).ConfigureAwait(false);
        var status = result is IStatusCodeHttpResult { StatusCode: { } s } ? s : StatusCodes.Status200OK;
        var problem = result as ProblemHttpResult ?? (result as RetryAfterProblemResult)?.Problem;
        var code = problem is not null && problem.ProblemDetails.Extensions.TryGetValue("code", out var c) ? c as string : null;
        await AppendAsync(storage, setup.Time, http, audit, Allowed, status, code).ConfigureAwait(false);
        return result;
    }

    private async Task AppendAsync(IBrokerStorage storage, TimeProvider time, HttpContext http, AdminAuditContext audit, string decision, int status, string? code)
    {
        var details = new Dictionary<string, string>(audit.Details, StringComparer.Ordinal)
        {
            ["issuer"] = audit.Principal.Issuer,
            ["roles"] = string.Join(",", audit.Principal.Roles),
            ["status"] = status.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["outcome"] = status < 400 ? "ok" : code ?? "failed",
        };
        if (http.Connection.RemoteIpAddress is { } client)
        {
            details["client"] = client.ToString();
        }

        await storage.Audit.AppendAsync(new AuditEvent("admin." + _operation, time.GetUtcNow(), audit.Principal.Subject, decision,
            code is null ? null : [code], PolicyVersion: audit.PolicyVersion, KeyId: audit.KeyId, Details: details), CancellationToken.None).ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "admin call {Operation} refused without a valid token ({Error})")]
    private static partial void LogRefused(ILogger logger, string operation, string error);
}

/// <summary>Problem codes of the admin API (beside the shared ones in <see cref="ProblemCodes"/>).</summary>
public static class AdminProblems
{
    public const string Forbidden = "forbidden";
    public const string InvalidPolicy = "invalid-policy";
    public const string KeyExists = "key-exists";
    public const string InvalidKeyMaterial = "invalid-key-material";
    public const string PolicyNotFound = "policy-not-found";
    public const string PolicyVersionNotFound = "policy-version-not-found";
}
