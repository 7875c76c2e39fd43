namespace AttestBroker.Keys.Backends.Vault;

/// <summary>How the broker authenticates to Vault.</summary>
public enum VaultAuthMethod
{
    /// <summary>A Vault token given by the operator (<see cref="VaultTransitOptions.Token"/> or a file).</summary>
    Token,

    /// <summary>The Kubernetes auth method: log in with the pod's service-account JWT and a Vault role.</summary>
    Kubernetes,
}

/// <summary>Options of <see cref="VaultTransitClient"/>. Secrets (the token) are never printed by <see cref="ToString"/>.</summary>
public sealed class VaultTransitOptions
{
    /// <summary>Vault's address, e.g. https://vault.vault.svc:8200 (the client appends /v1/...).</summary>
    public Uri? Address { get; set; }

    /// <summary>Mount path of the Transit engine.</summary>
    public string Mount { get; set; } = "transit";

    /// <summary>Name of the Transit key that wraps model keys (type aes256-gcm96 recommended).</summary>
    public string KeyName { get; set; } = string.Empty;

    /// <summary>Vault Enterprise namespace, sent as X-Vault-Namespace; null for none.</summary>
    public string? Namespace { get; set; }

    public VaultAuthMethod AuthMethod { get; set; } = VaultAuthMethod.Token;

    /// <summary>The Vault token for <see cref="VaultAuthMethod.Token"/> (or use <see cref="TokenFile"/>).</summary>
    public string? Token { get; set; }

    /// <summary>A file holding the Vault token, read at start and on every re-authentication.</summary>
    public string? TokenFile { get; set; }

    /// <summary>Mount path of the Kubernetes auth method.</summary>
    public string KubernetesAuthMount { get; set; } = "kubernetes";

    /// <summary>The Vault role bound to the broker's service account.</summary>
    public string? KubernetesRole { get; set; }

    /// <summary>Where the service-account JWT is (re-read on every login: kubelet refreshes it).</summary>
    public string ServiceAccountTokenPath { get; set; } = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    /// <summary>Renew the token once this fraction of its lease has passed.</summary>
    public double RenewAtFractionOfLease { get; set; } = 2.0 / 3.0;

    /// <summary>Time limit of one HTTP attempt.</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Retries after the first attempt for 429, 5xx, network errors and attempt timeouts.</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>First back-off delay (exponential with jitter) when the service gives no Retry-After.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest single wait, also the cap on a Retry-After the service asks for.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Send the broker's key id as the Transit <c>context</c>, binding each ciphertext to its key id. Requires a
    /// Transit key created with <c>derived=true</c>; off by default.
    /// </summary>
    public bool BindKeyIdAsContext { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (Address is null || !Address.IsAbsoluteUri || Address.Scheme is not ("https" or "http"))
        {
            throw new ArgumentException("Vault: Address must be an absolute http(s) URL", nameof(Address));
        }

        RequirePathSegment(Mount, nameof(Mount), allowSlash: true);
        RequirePathSegment(KeyName, nameof(KeyName), allowSlash: false);
        RequirePathSegment(KubernetesAuthMount, nameof(KubernetesAuthMount), allowSlash: true);
        if (AuthMethod == VaultAuthMethod.Token && string.IsNullOrWhiteSpace(Token) && string.IsNullOrWhiteSpace(TokenFile))
        {
            throw new ArgumentException("Vault: token authentication needs Token or TokenFile", nameof(Token));
        }

        if (AuthMethod == VaultAuthMethod.Kubernetes && string.IsNullOrWhiteSpace(KubernetesRole))
        {
            throw new ArgumentException("Vault: Kubernetes authentication needs KubernetesRole", nameof(KubernetesRole));
        }

        if (AttemptTimeout <= TimeSpan.Zero || MaxRetries < 0 || RetryBaseDelay < TimeSpan.Zero || MaxRetryDelay < RetryBaseDelay)
        {
            throw new ArgumentException("Vault: AttemptTimeout must be positive, MaxRetries >= 0 and MaxRetryDelay >= RetryBaseDelay >= 0");
        }

        if (RenewAtFractionOfLease is <= 0 or >= 1)
        {
            throw new ArgumentException("Vault: RenewAtFractionOfLease must be between 0 and 1", nameof(RenewAtFractionOfLease));
        }
    }

    private static void RequirePathSegment(string value, string name, bool allowSlash)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' || (allowSlash && c == '/'))) || value.StartsWith('/') || value.EndsWith('/') || value.Contains("..", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Vault: {name} must be letters, digits, - _ .{(allowSlash ? " and inner /" : string.Empty)}", name);
        }
    }

    public override string ToString() =>
        $"VaultTransitOptions {{ Address = {Address}, Mount = {Mount}, KeyName = {KeyName}, Namespace = {Namespace ?? "-"}, AuthMethod = {AuthMethod}, KubernetesRole = {KubernetesRole ?? "-"} }}";
}
