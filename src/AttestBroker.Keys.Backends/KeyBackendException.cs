namespace AttestBroker.Keys.Backends;

/// <summary>Why an external key backend failed. Each has a stable code the broker maps to a problem type.</summary>
public enum BackendError
{
    /// <summary>The service refused the broker's credentials or permissions (HTTP 401/403): "backend_denied", 503.</summary>
    Denied,

    /// <summary>The service has no such key, version or path (HTTP 404): "backend_key_not_found", 404.</summary>
    KeyNotFound,

    /// <summary>Network failure, timeout, 5xx or 429 after the retries ran out: "backend_unavailable", 503.</summary>
    Unavailable,

    /// <summary>The service answered with something that is not the documented shape: "backend_bad_response", 502.</summary>
    BadResponse,

    /// <summary>The service rejected the request as malformed (HTTP 400): "backend_rejected", 502.</summary>
    Rejected,

    /// <summary>A concurrent writer kept changing the object (optimistic concurrency lost twice): "backend_conflict", 409.</summary>
    Conflict,

    /// <summary>A released key could not be verified or unwrapped (bad signature, untrusted chain, bad wrapping): "backend_release_invalid", 502.</summary>
    ReleaseInvalid,

    /// <summary>The operation is not possible in this backend's mode (e.g. SKR without an attestation token): "backend_unsupported", 400.</summary>
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

    /// <summary>Stable problem code: backend_denied, backend_key_not_found, backend_unavailable, ...</summary>
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
        BackendError.Denied => "backend_denied",
        BackendError.KeyNotFound => "backend_key_not_found",
        BackendError.Unavailable => "backend_unavailable",
        BackendError.BadResponse => "backend_bad_response",
        BackendError.Rejected => "backend_rejected",
        BackendError.Conflict => "backend_conflict",
        BackendError.ReleaseInvalid => "backend_release_invalid",
        BackendError.Unsupported => "backend_unsupported",
        _ => "backend_unavailable",
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
