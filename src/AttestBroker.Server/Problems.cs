using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace AttestBroker.Server;

/// <summary>
/// Every error the broker returns: RFC 9457 problem+json with a stable <c>type</c> URI
/// (<c>urn:attestbroker:problem:&lt;code&gt;</c>) and the same code in the <c>code</c> member. Never a stack trace.
/// </summary>
public static class ProblemCodes
{
    public const string TypePrefix = "urn:attestbroker:problem:";

    public const string MalformedRequest = "malformed-request";
    public const string InvalidPublicKey = "invalid-public-key";
    public const string InvalidChallenge = "invalid-challenge";
    public const string MalformedEvidence = "malformed-evidence";
    public const string BindingMismatch = "report-data-binding-mismatch";
    public const string TokenMissing = "token-missing";
    public const string TokenInvalid = "token-invalid";
    public const string InvalidServiceAccountToken = "invalid-service-account-token";
    public const string PolicyDenied = "policy-denied";
    public const string KeyDisabled = "key-disabled";
    public const string UnknownKey = "unknown-key";
    public const string NonceUsed = "nonce-already-used";
    public const string NonceExpired = "nonce-expired";
    public const string BodyTooLarge = "body-too-large";
    public const string UnsupportedMediaType = "unsupported-media-type";
    public const string RateLimited = "rate-limited";
    public const string BackendUnavailable = "backend-unavailable";
    public const string CollateralUnavailable = "collateral-unavailable";

    /// <summary>An evidence format the operator has not turned on (an Azure Attestation token while Broker:AzureAttestation is off).</summary>
    public const string EvidenceKindDisabled = "evidence-kind-disabled";

    /// <summary>A key released by an attestation-token backend (Key Vault SKR) was asked for without an Azure Attestation token.</summary>
    public const string AttestationTokenRequired = "attestation-token-required";
    public const string NotFound = "not-found";
    public const string InternalError = "internal-error";
}

/// <summary>One problem response.</summary>
public sealed record BrokerProblem(int Status, string Code, string Title, string Detail, JsonObject? Extensions = null)
{
    public static BrokerProblem Malformed(string detail) => new(StatusCodes.Status400BadRequest, ProblemCodes.MalformedRequest, "Malformed request", detail);

    public IResult ToResult()
    {
        var extensions = new Dictionary<string, object?> { ["code"] = Code };
        if (Extensions is not null)
        {
            foreach (var (name, value) in Extensions)
            {
                extensions[name] = value?.DeepClone();
            }
        }

        var problem = TypedResults.Problem(detail: Detail, statusCode: Status, title: Title, type: ProblemCodes.TypePrefix + Code, extensions: extensions);
        return RetryAfterSeconds is { } seconds ? new RetryAfterProblemResult(problem, seconds) : problem;
    }

    /// <summary>Sent as the Retry-After header (seconds) when set, e.g. when a key backend asked the broker to wait.</summary>
    public int? RetryAfterSeconds { get; init; }
}

/// <summary>A problem response with a Retry-After header.</summary>
public sealed class RetryAfterProblemResult : IResult, IStatusCodeHttpResult
{
    public RetryAfterProblemResult(Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult problem, int seconds)
    {
        Problem = problem;
        Seconds = seconds;
    }

    public Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult Problem { get; }

    public int Seconds { get; }

    public int? StatusCode => Problem.StatusCode;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        httpContext.Response.Headers.RetryAfter = Seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Problem.ExecuteAsync(httpContext);
    }
}
