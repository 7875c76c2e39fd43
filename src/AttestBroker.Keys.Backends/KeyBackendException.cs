namespace AttestBroker.Keys.Backends;

/// <summary>Why an external key backend failed. Each has a stable code the broker maps to a problem type.</summary>
public enum BackendError
{
    /// <summary>The service refused the broker's credentials or permissions (HTTP 401/403): "backend-denied", 503.</summary>
    Denied,

    /// <summary>The service has no such key, version or path (HTTP 404): "backend-key-not-found", 404.</summary>
    KeyNotFound,

    /// <summary>Network failure, timeout, 5xx or 429 after the retries ran out: "backend-unavailable", 503.</summary>
    Unavailable,

    /// <summary>The service answered with something that is not the documented shape: "backend-bad-response", 502.</summary>
    BadResponse,

    /// <summary>The service rejected the request as malformed (HTTP 400): "backend-rejected", 502.</summary>
    Rejected,

    /// <summary>A concurrent writer kept changing the object (optimistic concurrency lost twice): "backend-conflict", 409.</summary>
    Conflict,

    /// <summary>A released key could not be verified or unwrapped (bad signature, untrusted chain, bad wrapping): "backend-release-invalid", 502.</summary>
    ReleaseInvalid,

    /// <summary>The operation is not possible in this backend's mode (e.g. SKR without an attestation token): "backend-unsupported", 400.</summary>
    Unsupported,
}

/// <summary>
/// A failure of an external key backend (Vault Transit, Azure Key Vault, Kubernetes Secrets). Messages name the
/// backend, the operation and the service's cause; they never carry key bytes, tokens or ciphertext.
/// Failures about the broker's own key records (unknown key id, disabled key, bad key material) stay
/// <see cref="KeyStoreException"/>s with the same <see cref="KeyError"/>s as the embedded keystore.
/// </summary>
public sealed class KeyBackendException : Exception
{
    public KeyBackendException(BackendError error, string backend, string message, Exception? inner = null, int? serviceStatus = null)
        : base(message, inner)
    {
        Error = error;
        Backend = backend;
        ServiceStatus = serviceStatus;
    }

    public KeyBackendException()
        : this(BackendError.Unavailable, "unknown", "key backend failed")
    {
    }

    public KeyBackendException(string message)
        : this(BackendError.Unavailable, "unknown", message)
    {
    }

    public KeyBackendException(string message, Exception innerException)
        : this(BackendError.Unavailable, "unknown", message, innerException)
    {
    }

    public BackendError Error { get; }

    /// <summary>The backend's name ("vault-transit", "azure-keyvault", "azure-skr", "kubernetes-secrets").</summary>
    public string Backend { get; }

    /// <summary>The HTTP status the service answered with, when it answered.</summary>
    public int? ServiceStatus { get; }

    /// <summary>How long the service asked the broker to wait (its Retry-After), when it said.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>Stable problem code: backend-denied, backend-key-not-found, backend-unavailable, ...</summary>
    public string Code => CodeOf(Error);

    /// <summary>The HTTP status the broker answers with for this error.</summary>
    public int HttpStatus => Error switch
    {
        BackendError.Denied or BackendError.Unavailable => 503,
        BackendError.KeyNotFound => 404,
        BackendError.Conflict => 409,
        BackendError.Unsupported => 400,
        _ => 502,
    };

    public static string CodeOf(BackendError error) => error switch
    {
        BackendError.Denied => "backend-denied",
        BackendError.KeyNotFound => "backend-key-not-found",
        BackendError.Unavailable => "backend-unavailable",
        BackendError.BadResponse => "backend-bad-response",
        BackendError.Rejected => "backend-rejected",
        BackendError.Conflict => "backend-conflict",
        BackendError.ReleaseInvalid => "backend-release-invalid",
        BackendError.Unsupported => "backend-unsupported",
        _ => "backend-unavailable",
    };

    /// <summary>The error for an HTTP status that is not a success.</summary>
    public static BackendError FromStatus(int status) => status switch
    {
        401 or 403 => BackendError.Denied,
        404 => BackendError.KeyNotFound,
        400 or 405 or 409 or 412 or 422 => BackendError.Rejected,
        _ => BackendError.Unavailable,
    };
}

/// <summary>What a backend's health check found; <see cref="Healthy"/> false carries the cause for readiness.</summary>
public sealed record BackendHealth(string Backend, bool Healthy, string Detail)
{
    public static BackendHealth Ok(string backend, string detail) => new(backend, true, detail);

    public static BackendHealth Failed(string backend, string detail) => new(backend, false, detail);
}

/// <summary>A key backend that can say whether its service is reachable and usable (for readiness probes).</summary>
public interface IKeyBackendHealth
{
    Task<BackendHealth> CheckHealthAsync(CancellationToken cancellationToken = default);
}
