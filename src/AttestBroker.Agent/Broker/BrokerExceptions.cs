namespace AttestBroker.Agent.Broker;

/// <summary>One failing policy rule of a denied key, as the broker's policy-denied problem lists it.</summary>
public sealed record BrokerRuleFailure(string Code, string? Rule, string? Claim, string? Message);

/// <summary>The broker's decision on one requested key inside a policy-denied problem.</summary>
public sealed record BrokerKeyDecision(string KeyId, string Decision, string? Reason, string? Policy, long? PolicyVersion, IReadOnlyList<BrokerRuleFailure> Failures);

/// <summary>
/// The broker answered with an RFC 9457 problem (protocol.md §7.4) that is not worth retrying: a denial, a refused
/// request, an unknown key. Carries the status, the type, the code and every failing rule the broker disclosed.
/// </summary>
public sealed class BrokerProblemException : Exception
{
    public BrokerProblemException(int status, string? type, string? code, string? title, string? detail, string? protocolError, IReadOnlyList<BrokerKeyDecision> keys)
        : base(Describe(status, code, title, detail, protocolError))
    {
        Status = status;
        Type = type;
        Code = code;
        Title = title;
        Detail = detail;
        ProtocolError = protocolError;
        Keys = keys ?? [];
    }

    public BrokerProblemException()
    {
        Keys = [];
    }

    public BrokerProblemException(string message)
        : base(message)
    {
        Keys = [];
    }

    public BrokerProblemException(string message, Exception innerException)
        : base(message, innerException)
    {
        Keys = [];
    }

    /// <summary>HTTP status.</summary>
    public int Status { get; }

    /// <summary>The problem's <c>type</c> (<c>urn:attestbroker:problem:&lt;code&gt;</c>), when the body was a problem.</summary>
    public string? Type { get; }

    /// <summary>The problem's <c>code</c> (e.g. <c>policy-denied</c>), or null when the body was not a problem document.</summary>
    public string? Code { get; }

    public string? Title { get; }

    public string? Detail { get; }

    /// <summary>The protocol error name the broker gives for invalid-public-key and token-invalid problems (<c>error</c> member).</summary>
    public string? ProtocolError { get; }

    /// <summary>Per-key decisions of a policy-denied problem (empty otherwise).</summary>
    public IReadOnlyList<BrokerKeyDecision> Keys { get; }

    /// <summary>True when the broker refused to release (a policy denial, a disabled key, a binding mismatch), as opposed to a malformed request.</summary>
    public bool IsDenial => Status is 403 or 401;

    private static string Describe(int status, string? code, string? title, string? detail, string? protocolError)
    {
        var text = $"broker answered HTTP {status}";
        if (code is not null)
        {
            text += $" {code}";
        }

        if (title is not null)
        {
            text += $" ({title})";
        }

        if (detail is not null)
        {
            text += $": {detail}";
        }

        if (protocolError is not null)
        {
            text += $" [error {protocolError}]";
        }

        return text;
    }
}

/// <summary>The broker could not be reached or stayed unavailable (connection errors, timeouts, 429, 503) through every retry.</summary>
public sealed class BrokerUnavailableException : Exception
{
    public BrokerUnavailableException(int attempts, string lastFailure, Exception? innerException = null)
        : base($"broker unavailable after {attempts} attempt(s): {lastFailure}", innerException)
    {
        Attempts = attempts;
        LastFailure = lastFailure;
    }

    public BrokerUnavailableException()
    {
        LastFailure = string.Empty;
    }

    public BrokerUnavailableException(string message)
        : base(message)
    {
        LastFailure = message;
    }

    public BrokerUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
        LastFailure = message;
    }

    public int Attempts { get; }

    public string LastFailure { get; }
}

/// <summary>One failed attempt that may succeed later (connection error, timeout, 429, 503); <see cref="RetryAfter"/> is the broker's hint.</summary>
public sealed class BrokerTransientException : Exception
{
    public BrokerTransientException(string message, TimeSpan? retryAfter, Exception? innerException = null)
        : base(message, innerException) => RetryAfter = retryAfter;

    public BrokerTransientException()
    {
    }

    public BrokerTransientException(string message)
        : base(message)
    {
    }

    public BrokerTransientException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public TimeSpan? RetryAfter { get; }
}
