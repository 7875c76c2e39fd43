using System.Text.Json.Nodes;
using AttestBroker.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace AttestBroker.Server;

/// <summary>The HTTP surface (docs/protocol.md §7).</summary>
public static class BrokerEndpoints
{
    public const string JsonContentType = "application/json";

    public static void Map(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapOpenApi();
        app.MapGet("/healthz", () => TypedResults.Ok(new JsonObject { ["status"] = "ok" })).ExcludeFromDescription();
        app.MapGet("/readyz", ReadyAsync).ExcludeFromDescription();
        app.MapGet("/.well-known/jwks.json", (TokenSigner signer) => TypedResults.Text(signer.JwksJson, "application/jwk-set+json"))
            .WithName("Jwks").WithSummary("The broker's attestation-result token signing keys (RFC 7517 JWK Set).");

        var v1 = app.MapGroup("/v1").RequireRateLimiting(BrokerHost.RateLimitPolicy);
        v1.MapPost("/challenge", ChallengeAsync)
            .WithName("Challenge").WithSummary("Issue a single-use nonce for a TEE kind.")
            .Accepts<ChallengeRequestDoc>(JsonContentType).Produces<ChallengeResponseDoc>().ProducesProblem(400).ProducesProblem(413).ProducesProblem(429);
        v1.MapPost("/attest", AttestAsync)
            .WithName("Attest").WithSummary("Verify evidence bound to the nonce and a public key; release the requested keys as JWEs with a result token.")
            .Accepts<AttestRequestDoc>(JsonContentType).Produces<AttestResponseDoc>()
            .ProducesProblem(400).ProducesProblem(403).ProducesProblem(404).ProducesProblem(409).ProducesProblem(410).ProducesProblem(413).ProducesProblem(429).ProducesProblem(503);
        v1.MapPost("/keys", KeysAsync)
            .WithName("Keys").WithSummary("Further keys for a pod holding an unexpired result token (Authorization: Bearer), bound to the same public key.")
            .Accepts<KeysRequestDoc>(JsonContentType).Produces<KeysResponseDoc>()
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(403).ProducesProblem(404).ProducesProblem(413).ProducesProblem(429).ProducesProblem(503);
    }

    private static async Task<IResult> KeysAsync(HttpContext context, BrokerService broker, BrokerOptions options)
    {
        var (body, problem) = await ReadBodyAsync(context, options.MaxRequestBodyBytes);
        if (problem is not null)
        {
            return problem.ToResult();
        }

        var outcome = await broker.KeysAsync(context.Request.Headers.Authorization.Count == 1 ? context.Request.Headers.Authorization[0] : null, body, context.Connection.RemoteIpAddress?.ToString(), context.RequestAborted);
        if (outcome.Problem is { Status: StatusCodes.Status401Unauthorized })
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
        }

        return ToResult(outcome);
    }

    private static async Task<IResult> ReadyAsync(ReadinessProbe probe, CancellationToken ct)
    {
        var (ready, checks) = await probe.CheckAsync(ct);
        if (ready)
        {
            return TypedResults.Ok(new JsonObject { ["status"] = "ready", ["checks"] = checks });
        }

        var failing = string.Join("; ", checks.Where(c => c.Value is JsonValue v && v.TryGetValue<string>(out var s) && s != "ok" && !s.StartsWith("fresh", StringComparison.Ordinal)).Select(c => $"{c.Key}: {c.Value}"));
        return new BrokerProblem(StatusCodes.Status503ServiceUnavailable, ProblemCodes.BackendUnavailable, "Not ready", failing, new JsonObject { ["checks"] = checks }).ToResult();
    }

    private static async Task<IResult> ChallengeAsync(HttpContext context, BrokerService broker, BrokerOptions options)
    {
        var (body, problem) = await ReadBodyAsync(context, options.MaxRequestBodyBytes);
        return problem is not null ? problem.ToResult() : ToResult(broker.Challenge(body));
    }

    private static async Task<IResult> AttestAsync(HttpContext context, BrokerService broker, BrokerOptions options)
    {
        var (body, problem) = await ReadBodyAsync(context, options.MaxRequestBodyBytes);
        if (problem is not null)
        {
            return problem.ToResult();
        }

        var outcome = await broker.AttestAsync(body, context.Connection.RemoteIpAddress?.ToString(), context.RequestAborted);
        return ToResult(outcome);
    }

    private static IResult ToResult(BrokerOutcome outcome) =>
        outcome.Problem is { } p ? p.ToResult() : TypedResults.Json(outcome.Body, contentType: JsonContentType);

    /// <summary>Reads a JSON body of at most <paramref name="limit"/> bytes (413 beyond; 415 for another media type).</summary>
    internal static async Task<(byte[] Body, BrokerProblem? Problem)> ReadBodyAsync(HttpContext context, long limit)
    {
        var type = context.Request.ContentType;
        if (type is null || !type.Split(';')[0].Trim().Equals(JsonContentType, StringComparison.OrdinalIgnoreCase))
        {
            return ([], new BrokerProblem(415, ProblemCodes.UnsupportedMediaType, "Unsupported media type", "send application/json"));
        }

        return await ReadLimitedAsync(context, limit);
    }

    /// <summary>Reads a body of any media type of at most <paramref name="limit"/> bytes (413 beyond).</summary>
    internal static async Task<(byte[] Body, BrokerProblem? Problem)> ReadLimitedAsync(HttpContext context, long limit)
    {
        if (context.Request.ContentLength > limit)
        {
            return ([], TooLarge(limit));
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
            {
                if (buffer.Length + read > limit)
                {
                    return ([], TooLarge(limit));
                }

                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return ([], TooLarge(limit));
        }

        return (buffer.ToArray(), null);
    }

    private static BrokerProblem TooLarge(long limit) =>
        new(StatusCodes.Status413PayloadTooLarge, ProblemCodes.BodyTooLarge, "Body too large", $"the request body exceeds {limit} bytes");
}

// Shapes for the OpenAPI document only; the endpoints parse bodies strictly themselves (unknown members are refused).
#pragma warning disable CA1812, SA1402, CA1819, CA1056, CA1002, CA2227
internal sealed record ChallengeRequestDoc(string Tee);

internal sealed record ChallengeResponseDoc(string Tee, string Nonce, string Challenge, DateTimeOffset ExpiresAt);

internal sealed record AttestRequestDoc(string Challenge, string Evidence, JsonObject PublicKey, IReadOnlyList<string> KeyIds, string? ServiceAccountToken);

internal sealed record ReleasedKeyDoc(string KeyId, string Jwe);

internal sealed record AttestResponseDoc(IReadOnlyList<ReleasedKeyDoc> Keys, string Token, DateTimeOffset TokenExpiresAt, string Tee, bool Simulated);

internal sealed record KeysRequestDoc(JsonObject PublicKey, IReadOnlyList<string> KeyIds);

internal sealed record KeysResponseDoc(IReadOnlyList<ReleasedKeyDoc> Keys, string Tee, bool Simulated);
#pragma warning restore CA1812, SA1402, CA1819, CA1056, CA1002, CA2227
