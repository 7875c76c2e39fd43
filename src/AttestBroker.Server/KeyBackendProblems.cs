using System.Globalization;
using System.Text.Json.Nodes;
using AttestBroker.Keys;
using AttestBroker.Keys.Backends;
using Microsoft.AspNetCore.Http;

namespace AttestBroker.Server;

/// <summary>
/// Key backend and keystore failures as problems (docs/protocol.md, problem types): a backend's
/// <see cref="KeyBackendException"/> keeps its stable code and status (backend-denied 503, backend-unavailable 503
/// with Retry-After when the service gave one, backend-key-not-found 404, ...), with the backend's name and cause;
/// a <see cref="KeyStoreException"/> about the broker's own records becomes the matching problem. Messages carry
/// causes, never tokens or key bytes (the backends' messages are built that way).
/// </summary>
internal static class KeyBackendProblems
{
    public const string RotationUnsupported = "rotation-unsupported";
    public const string UnknownBackend = "unknown-backend";

    public static BrokerProblem From(KeyBackendException e)
    {
        var extensions = new JsonObject { ["backend"] = e.Backend, ["cause"] = e.Error.ToString() };
        if (e.ServiceStatus is { } s)
        {
            extensions["service_status"] = s;
        }

        int? retryAfter = e.RetryAfter is { } wait ? (int)Math.Ceiling(Math.Max(0, wait.TotalSeconds)) : null;
        if (retryAfter is { } r)
        {
            extensions["retry_after_seconds"] = r;
        }

        var title = e.Error switch
        {
            BackendError.Denied => "Key backend denied the broker",
            BackendError.Unavailable => "Key backend unavailable",
            BackendError.KeyNotFound => "Key not found in its backend",
            BackendError.Conflict => "Key backend conflict",
            BackendError.Unsupported => "Not supported by the key backend",
            _ => "Key backend failed",
        };
        return new BrokerProblem(e.HttpStatus, e.Code, title, $"key backend '{e.Backend}': {e.Message}", extensions) { RetryAfterSeconds = retryAfter };
    }

    public static BrokerProblem From(KeyStoreException e) => e.Error switch
    {
        KeyError.NotFound => new BrokerProblem(StatusCodes.Status404NotFound, ProblemCodes.UnknownKey, "Unknown key", e.Message),
        KeyError.Disabled => new BrokerProblem(StatusCodes.Status403Forbidden, ProblemCodes.KeyDisabled, "Key disabled", e.Message),
        KeyError.RotationUnsupported => new BrokerProblem(StatusCodes.Status409Conflict, RotationUnsupported, "Rotation not supported", e.Message),
        KeyError.InvalidKeyId => BrokerProblem.Malformed(e.Message),
        _ => new BrokerProblem(StatusCodes.Status503ServiceUnavailable, ProblemCodes.BackendUnavailable, "Backend unavailable", $"the keystore is unavailable ({e.Error}); retry later",
            new JsonObject { ["backend"] = "keystore", ["cause"] = e.Error.ToString() }),
    };

    /// <summary>Audit details of a backend failure: backend, code, cause (no tokens, no key bytes).</summary>
    public static void AddDetails(Dictionary<string, string> details, KeyBackendException e)
    {
        details["backend"] = e.Backend;
        details["backend_error"] = e.Code;
        if (e.ServiceStatus is { } s)
        {
            details["service_status"] = s.ToString(CultureInfo.InvariantCulture);
        }

        details["cause"] = e.Message.Length <= 500 ? e.Message : e.Message[..500] + "...";
    }
}
