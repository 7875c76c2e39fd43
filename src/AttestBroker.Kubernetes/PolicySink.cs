namespace AttestBroker.Kubernetes;

/// <summary>The broker's policy store as the watcher sees it.</summary>
public interface IPolicySink
{
    /// <summary>
    /// Validates and stores <paramref name="documentJson"/> (a policy document of docs/policy.md, JSON) as the release
    /// policy of <paramref name="keyId"/>, audited with <paramref name="author"/> ("k8s:&lt;ns&gt;/&lt;name&gt;").
    /// Must be idempotent: the document already active returns its existing version. Throws
    /// <see cref="PolicyRejectedException"/> for an invalid document; any other exception means "try again later".
    /// </summary>
    Task<AppliedPolicy> ApplyAsync(string keyId, string documentJson, string author, CancellationToken cancellationToken);

    /// <summary>The custom resource governing <paramref name="keyId"/> is gone: from now on its releases are denied.</summary>
    Task RemoveAsync(string keyId, string author, CancellationToken cancellationToken);
}

/// <summary>The stored version now deciding releases, and the SHA-256 (hex) of its canonical document.</summary>
public sealed record AppliedPolicy(long Version, string Sha256);

/// <summary>The broker refused a policy document: <see cref="FieldPath"/> is the field's path in the document ("" for all of it).</summary>
public sealed class PolicyRejectedException : Exception
{
    public PolicyRejectedException(string fieldPath, string problem)
        : base(string.IsNullOrEmpty(fieldPath) ? problem : fieldPath + ": " + problem)
    {
        FieldPath = fieldPath;
        Problem = problem;
    }

    public PolicyRejectedException()
        : this(string.Empty, "invalid policy")
    {
    }

    public PolicyRejectedException(string message)
        : this(string.Empty, message)
    {
    }

    public PolicyRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
        FieldPath = string.Empty;
        Problem = message;
    }

    public string FieldPath { get; } = string.Empty;

    public string Problem { get; } = string.Empty;
}
