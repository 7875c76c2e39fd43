namespace AttestBroker.Kubernetes;

/// <summary>
/// Who asks for a key, as the cluster vouches for it: a pod's service account, from its projected token.
/// <see cref="Username"/> is <c>system:serviceaccount:&lt;namespace&gt;:&lt;service account&gt;</c>.
/// </summary>
public sealed record RequesterIdentity(string Namespace, string ServiceAccount, string? PodName, string? PodUid, string Username)
{
    public const string ServiceAccountPrefix = "system:serviceaccount:";

    /// <summary>Splits a service-account username into namespace and name; false for any other user.</summary>
    public static bool TryParseUsername(string? username, out string @namespace, out string serviceAccount)
    {
        @namespace = serviceAccount = string.Empty;
        if (username is null || !username.StartsWith(ServiceAccountPrefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = username.AsSpan(ServiceAccountPrefix.Length);
        var colon = rest.IndexOf(':');
        if (colon <= 0 || colon == rest.Length - 1 || rest[(colon + 1)..].Contains(':'))
        {
            return false;
        }

        var ns = rest[..colon].ToString();
        var sa = rest[(colon + 1)..].ToString();
        if (!KubernetesNames.IsDnsLabel(ns) || !KubernetesNames.IsDnsSubdomain(sa))
        {
            return false;
        }

        @namespace = ns;
        serviceAccount = sa;
        return true;
    }
}

/// <summary>How a token check came out: the broker maps Invalid to 401 and Unavailable to 503.</summary>
public enum IdentityOutcome
{
    Valid,

    /// <summary>The token was refused: wrong audience, expired, not a service account, bad signature, ...</summary>
    Invalid,

    /// <summary>The check could not be made (API server or issuer keys unreachable): nothing is known about the token.</summary>
    Unavailable,
}

/// <summary>Stable error codes of a failed token check (the broker puts them in its problem's <c>error</c>).</summary>
public static class IdentityErrors
{
    public const string Malformed = "token_malformed";
    public const string NotAuthenticated = "token_not_authenticated";
    public const string AudienceMismatch = "token_audience_mismatch";
    public const string NotServiceAccount = "token_not_service_account";
    public const string IssuerMismatch = "token_issuer_mismatch";
    public const string Expired = "token_expired";
    public const string NotYetValid = "token_not_yet_valid";
    public const string AlgorithmNotAllowed = "token_algorithm_not_allowed";
    public const string KeyUnknown = "token_key_unknown";
    public const string SignatureInvalid = "token_signature_invalid";
    public const string ClaimsInvalid = "token_claims_invalid";
    public const string ReviewUnavailable = "tokenreview_unavailable";
    public const string IssuerKeysUnavailable = "issuer_keys_unavailable";
}

/// <summary>An identity, or why there is none. The message never quotes the token.</summary>
public sealed class IdentityResult
{
    private IdentityResult(IdentityOutcome outcome, RequesterIdentity? identity, string? error, string? message)
    {
        Outcome = outcome;
        Identity = identity;
        Error = error;
        Message = message;
    }

    public IdentityOutcome Outcome { get; }

    /// <summary>Set when <see cref="Outcome"/> is Valid.</summary>
    public RequesterIdentity? Identity { get; }

    /// <summary>One of <see cref="IdentityErrors"/> when not Valid.</summary>
    public string? Error { get; }

    public string? Message { get; }

    public bool IsValid => Outcome == IdentityOutcome.Valid;

    public static IdentityResult Valid(RequesterIdentity identity) => new(IdentityOutcome.Valid, identity ?? throw new ArgumentNullException(nameof(identity)), null, null);

    public static IdentityResult Invalid(string error, string message) => new(IdentityOutcome.Invalid, null, error, message);

    public static IdentityResult Unavailable(string error, string message) => new(IdentityOutcome.Unavailable, null, error, message);

    public override string ToString() => IsValid ? $"valid: {Identity!.Username}" : $"{Outcome}: {Error}: {Message}";
}

/// <summary>Checks a pod's projected service-account token and says who it belongs to.</summary>
public interface IServiceAccountTokenValidator
{
    /// <summary>Never throws for a bad or unverifiable token (only for cancellation); never logs the token.</summary>
    Task<IdentityResult> ValidateAsync(string token, CancellationToken cancellationToken);
}

/// <summary>The keys of <c>status.user.extra</c> (TokenReview) that carry the pod a bound token belongs to.</summary>
public static class ServiceAccountExtra
{
    public const string PodName = "authentication.kubernetes.io/pod-name";
    public const string PodUid = "authentication.kubernetes.io/pod-uid";
}

internal static class KubernetesNames
{
    /// <summary>RFC 1123 label: what a namespace name is.</summary>
    public static bool IsDnsLabel(string s) =>
        s.Length is > 0 and <= 63 && IsAlnum(s[0]) && IsAlnum(s[^1]) && s.All(c => IsAlnum(c) || c == '-');

    /// <summary>RFC 1123 subdomain: what a service account or pod name is.</summary>
    public static bool IsDnsSubdomain(string s) =>
        s.Length is > 0 and <= 253 && IsAlnum(s[0]) && IsAlnum(s[^1]) && s.All(c => IsAlnum(c) || c is '-' or '.');

    private static bool IsAlnum(char c) => c is (>= 'a' and <= 'z') or (>= '0' and <= '9');
}
