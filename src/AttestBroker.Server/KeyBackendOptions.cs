using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using AttestBroker.Keys;
using Microsoft.Extensions.Configuration;

namespace AttestBroker.Server;

/// <summary>
/// The settings of one external key backend, "Broker:KeyBackends:&lt;name&gt;" (docs/backends.md, "Configuring the
/// broker"). <see cref="Type"/> picks the backend; the other settings apply to the types named on them. Secrets
/// (a Vault token, a client secret, the SKR wrapping key) are read from files only, never from a setting's value.
/// </summary>
public sealed class KeyBackendSettings
{
    public const string VaultTransit = "vault-transit";
    public const string AzureKeyVault = "azure-keyvault";
    public const string AzureSkr = "azure-skr";
    public const string KubernetesSecrets = "kubernetes-secrets";

    public static readonly IReadOnlyList<string> Types = [VaultTransit, AzureKeyVault, AzureSkr, KubernetesSecrets];

    /// <summary>vault-transit, azure-keyvault, azure-skr or kubernetes-secrets.</summary>
    public string? Type { get; set; }

    // ---- vault-transit ----

    /// <summary>vault-transit: Vault's address, e.g. https://vault.vault.svc:8200.</summary>
    public string? Address { get; set; }

    /// <summary>vault-transit: mount path of the Transit engine.</summary>
    public string Mount { get; set; } = "transit";

    /// <summary>vault-transit: the Transit key that wraps model keys.</summary>
    public string? Key { get; set; }

    /// <summary>vault-transit: the Vault Enterprise namespace (X-Vault-Namespace). kubernetes-secrets: the namespace of the Secrets.</summary>
    public string? Namespace { get; set; }

    /// <summary>vault-transit: token (TokenFile) or kubernetes (KubernetesRole and the service-account JWT).</summary>
    public string Auth { get; set; } = "token";

    /// <summary>vault-transit: the file holding the Vault token (re-read at every re-authentication).</summary>
    public string? TokenFile { get; set; }

    /// <summary>vault-transit: the Vault role of the Kubernetes auth method.</summary>
    public string? KubernetesRole { get; set; }

    /// <summary>vault-transit: mount path of the Kubernetes auth method.</summary>
    public string KubernetesAuthMount { get; set; } = "kubernetes";

    /// <summary>vault-transit: the service-account JWT file for the Kubernetes auth method.</summary>
    public string JwtFile { get; set; } = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    /// <summary>vault-transit: send the key id as the Transit context (needs a derived Transit key).</summary>
    public bool BindKeyIdAsContext { get; set; }

    // ---- azure-keyvault and azure-skr ----

    /// <summary>azure-keyvault, azure-skr: https://&lt;name&gt;.vault.azure.net or https://&lt;name&gt;.managedhsm.azure.net.</summary>
    public string? VaultUri { get; set; }

    /// <summary>azure-keyvault: the RSA key that wraps model keys.</summary>
    public string? WrappingKey { get; set; }

    /// <summary>azure-keyvault, azure-skr: default, managed-identity, workload-identity or client-secret.</summary>
    public string Credential { get; set; } = "default";

    public string? TenantId { get; set; }

    /// <summary>Client id of a user-assigned managed identity, a workload identity or an app registration.</summary>
    public string? ClientId { get; set; }

    /// <summary>azure-keyvault, azure-skr with Credential client-secret: the file holding the client secret.</summary>
    public string? ClientSecretFile { get; set; }

    /// <summary>azure-keyvault, azure-skr: the Key Vault api-version (7.4 or later).</summary>
    public string ApiVersion { get; set; } = "7.4";

    /// <summary>azure-skr: the release policy (Key Vault's JSON grammar) set on keys the broker creates or imports.</summary>
    public string? ReleasePolicyFile { get; set; }

    /// <summary>azure-skr: the broker's RSA private key (PEM, 2048+ bits) that released keys are wrapped to.</summary>
    public string? WrappingKeyFile { get; set; }

    /// <summary>azure-skr: prefix of the Key Vault key names the broker makes.</summary>
    public string KeyNamePrefix { get; set; } = "attestbroker";

    /// <summary>azure-skr: RSA_AES_KEY_WRAP_256 (default), RSA_AES_KEY_WRAP_384 or CKM_RSA_AES_KEY_WRAP.</summary>
    public string Encryption { get; set; } = "RSA_AES_KEY_WRAP_256";

    /// <summary>azure-skr: PEM roots the release signature's chain must end in (default: the system's public roots).</summary>
    public string? ReleaseTrustedRootsFile { get; set; }

    /// <summary>azure-skr: revocation check of the release signature's chain: online (default), offline or none.</summary>
    public string ReleaseRevocation { get; set; } = "online";

    // ---- common ----

    /// <summary>
    /// vault-transit, azure-keyvault: what a rotation of this backend does. False (default): rewrap every key to the
    /// newest version of the wrapping key (rotated by the operator or the service's own rotation). True: the broker
    /// rotates the wrapping key first (needs the rotate permission).
    /// </summary>
    public bool RotateInVault { get; set; }

    /// <summary>vault-transit, azure-keyvault, azure-skr: PEM certificate(s) to trust for the service's TLS certificate (a private CA); default: the system's roots.</summary>
    public string? CaCertificateFile { get; set; }

    /// <summary>Retries after the first attempt for 429, 5xx, network failures and timeouts (0 .. 10).</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>Time limit of one attempt, in seconds (1 .. 120).</summary>
    public int AttemptTimeoutSeconds { get; set; } = 10;

    /// <summary>First back-off delay in milliseconds (exponential with jitter; Retry-After takes precedence).</summary>
    public int RetryDelayMilliseconds { get; set; } = 200;

    public override string ToString() => $"KeyBackendSettings {{ Type = {Type} }}";
}

/// <summary>
/// "Broker:KeyBackends": the embedded keystore ("embedded", always there) plus named external backends
/// (<c>Broker:KeyBackends:&lt;name&gt;:Type</c> ...), <c>Default</c> (where keys go when none is named; "embedded"
/// unless set) and <c>HealthCacheSeconds</c> (how long /readyz reuses a backend's health answer).
/// </summary>
public sealed partial class KeyBackendsOptions
{
    public const string SectionName = "KeyBackends";
    public const string DefaultSetting = "Default";
    public const string HealthCacheSetting = "HealthCacheSeconds";

    public string Default { get; set; } = EmbeddedKeyStore.DefaultBackendName;

    public int HealthCacheSeconds { get; set; } = 5;

    public Dictionary<string, KeyBackendSettings> Backends { get; } = new(StringComparer.Ordinal);

    /// <summary>Whether a backend needs the Kubernetes API client.</summary>
    public bool NeedsKubernetes => Backends.Values.Any(b => b.Type == KeyBackendSettings.KubernetesSecrets);

    /// <summary>Reads "Broker:KeyBackends"; a bad setting is a <see cref="BrokerStartupException"/> naming it (never a value).</summary>
    public static KeyBackendsOptions Read(IConfigurationSection broker)
    {
        ArgumentNullException.ThrowIfNull(broker);
        var result = new KeyBackendsOptions();
        var section = broker.GetSection(SectionName);
        var errors = new List<string>();
        foreach (var child in section.GetChildren())
        {
            var where = $"Broker:KeyBackends:{child.Key}";
            if (child.Key == DefaultSetting)
            {
                result.Default = child.Value ?? string.Empty;
                continue;
            }

            if (child.Key == HealthCacheSetting)
            {
                if (!int.TryParse(child.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds > 300)
                {
                    errors.Add($"{where} must be 0 .. 300");
                }
                else
                {
                    result.HealthCacheSeconds = seconds;
                }

                continue;
            }

            if (!IsBackendName(child.Key))
            {
                errors.Add($"{where}: a backend name is 1 .. 63 lowercase letters, digits and '-', starting with a letter");
                continue;
            }

            if (child.Key == EmbeddedKeyStore.DefaultBackendName || child.Key == Keys.Backends.KeyBackendRouter.RouterName)
            {
                errors.Add($"{where}: the name '{child.Key}' is reserved (the embedded keystore is always configured)");
                continue;
            }

            foreach (var secret in new[] { "Token", "ClientSecret", "WrappingKeyPem", "Password" })
            {
                if (child.GetSection(secret).Value is not null)
                {
                    errors.Add($"{where}:{secret}: secrets are read from files only (TokenFile, ClientSecretFile, WrappingKeyFile), never from a setting");
                }
            }

            if (errors.Count > 0)
            {
                continue;
            }

            var settings = new KeyBackendSettings();
            try
            {
                child.Bind(settings, o => o.ErrorOnUnknownConfiguration = true);
            }
            catch (InvalidOperationException ex)
            {
                errors.Add($"{where}: {FirstLine(ex.Message)}");
                continue;
            }

            errors.AddRange(Validate(where, settings));
            result.Backends[child.Key] = settings;
        }

        if (result.Default != EmbeddedKeyStore.DefaultBackendName && !result.Backends.ContainsKey(result.Default) && errors.Count == 0)
        {
            errors.Add($"Broker:KeyBackends:Default names '{result.Default}', which is not configured (configured: {string.Join(", ", new[] { EmbeddedKeyStore.DefaultBackendName }.Concat(result.Backends.Keys.Order(StringComparer.Ordinal)))})");
        }

        if (errors.Count > 0)
        {
            throw new BrokerStartupException("invalid key backend configuration: " + string.Join("; ", errors));
        }

        return result;
    }

    public static bool IsBackendName(string name) => BackendNamePattern().IsMatch(name);

    private static IEnumerable<string> Validate(string where, KeyBackendSettings s)
    {
        var type = s.Type?.Trim().ToLowerInvariant();
        if (type is null || !KeyBackendSettings.Types.Contains(type))
        {
            yield return $"{where}:Type must be one of {string.Join(", ", KeyBackendSettings.Types)}";
            yield break;
        }

        s.Type = type;
        if (s.MaxRetries is < 0 or > 10)
        {
            yield return $"{where}:MaxRetries must be 0 .. 10";
        }

        if (s.AttemptTimeoutSeconds is < 1 or > 120)
        {
            yield return $"{where}:AttemptTimeoutSeconds must be 1 .. 120";
        }

        if (s.RetryDelayMilliseconds is < 0 or > 60_000)
        {
            yield return $"{where}:RetryDelayMilliseconds must be 0 .. 60000";
        }

        if (type != KeyBackendSettings.KubernetesSecrets && s.CaCertificateFile is { } ca && !Readable(ca))
        {
            yield return $"{where}:CaCertificateFile {ca} cannot be read";
        }

        switch (type)
        {
            case KeyBackendSettings.VaultTransit:
                if (!Uri.TryCreate(s.Address, UriKind.Absolute, out var address) || address.Scheme is not ("https" or "http"))
                {
                    yield return $"{where}:Address is required: Vault's absolute http(s) URL, e.g. https://vault.vault.svc:8200";
                }

                if (string.IsNullOrWhiteSpace(s.Key))
                {
                    yield return $"{where}:Key is required: the Transit key that wraps model keys";
                }

                switch (s.Auth.Trim().ToLowerInvariant())
                {
                    case "token":
                        if (string.IsNullOrWhiteSpace(s.TokenFile))
                        {
                            yield return $"{where}:TokenFile is required with Auth token";
                        }
                        else if (!Readable(s.TokenFile))
                        {
                            yield return $"{where}:TokenFile {s.TokenFile} cannot be read";
                        }

                        break;
                    case "kubernetes":
                        if (string.IsNullOrWhiteSpace(s.KubernetesRole))
                        {
                            yield return $"{where}:KubernetesRole is required with Auth kubernetes";
                        }

                        if (!Readable(s.JwtFile))
                        {
                            yield return $"{where}:JwtFile {s.JwtFile} cannot be read (the service-account token for Vault's Kubernetes auth)";
                        }

                        break;
                    default:
                        yield return $"{where}:Auth must be token or kubernetes";
                        break;
                }

                break;
            case KeyBackendSettings.AzureKeyVault or KeyBackendSettings.AzureSkr:
                if (!Uri.TryCreate(s.VaultUri, UriKind.Absolute, out var vault) || vault.Scheme != Uri.UriSchemeHttps || vault.AbsolutePath != "/")
                {
                    yield return $"{where}:VaultUri is required: an https URL with no path, e.g. https://myvault.vault.azure.net";
                }

                var credential = s.Credential.Trim().ToLowerInvariant();
                if (credential is not ("default" or "managed-identity" or "workload-identity" or "client-secret"))
                {
                    yield return $"{where}:Credential must be default, managed-identity, workload-identity or client-secret";
                }
                else if (credential == "client-secret")
                {
                    if (string.IsNullOrWhiteSpace(s.TenantId) || string.IsNullOrWhiteSpace(s.ClientId) || string.IsNullOrWhiteSpace(s.ClientSecretFile))
                    {
                        yield return $"{where}: Credential client-secret needs TenantId, ClientId and ClientSecretFile";
                    }
                    else if (!Readable(s.ClientSecretFile))
                    {
                        yield return $"{where}:ClientSecretFile {s.ClientSecretFile} cannot be read";
                    }
                }

                if (type == KeyBackendSettings.AzureKeyVault && string.IsNullOrWhiteSpace(s.WrappingKey))
                {
                    yield return $"{where}:WrappingKey is required: the Key Vault RSA key that wraps model keys";
                }

                if (type == KeyBackendSettings.AzureSkr)
                {
                    if (string.IsNullOrWhiteSpace(s.ReleasePolicyFile) || !Readable(s.ReleasePolicyFile))
                    {
                        yield return $"{where}:ReleasePolicyFile is required and must be readable (Key Vault's release policy JSON)";
                    }

                    if (string.IsNullOrWhiteSpace(s.WrappingKeyFile) || !Readable(s.WrappingKeyFile))
                    {
                        yield return $"{where}:WrappingKeyFile is required and must be readable (the broker's RSA private key, PEM)";
                    }

                    if (s.ReleaseRevocation.Trim().ToLowerInvariant() is not ("online" or "offline" or "none"))
                    {
                        yield return $"{where}:ReleaseRevocation must be online, offline or none";
                    }

                    if (s.ReleaseTrustedRootsFile is { } roots && !Readable(roots))
                    {
                        yield return $"{where}:ReleaseTrustedRootsFile {roots} cannot be read";
                    }
                }

                break;
            case KeyBackendSettings.KubernetesSecrets:
                if (string.IsNullOrWhiteSpace(s.Namespace))
                {
                    yield return $"{where}:Namespace is required: the broker's namespace, where the key Secrets live";
                }

                break;
        }
    }

    /// <summary>Whether the file can be opened for reading (its contents are not read here).</summary>
    internal static bool Readable(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return false;
        }
    }

    private static string FirstLine(string text)
    {
        var i = text.IndexOf('\n', StringComparison.Ordinal);
        return i < 0 ? text : text[..i].TrimEnd();
    }

    /// <summary>Never prints settings (file paths only name where secrets are).</summary>
    public override string ToString() => $"KeyBackendsOptions {{ Default = {Default}, Backends = {string.Join(", ", Backends.Keys)} }}";

    [GeneratedRegex("^[a-z][a-z0-9-]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex BackendNamePattern();
}

/// <summary>Checks a JSON document's syntax without keeping it.</summary>
internal static class JsonText
{
    public static bool IsObject(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
