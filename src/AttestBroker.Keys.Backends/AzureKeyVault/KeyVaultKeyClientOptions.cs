using Azure.Core;
using Azure.Identity;

namespace AttestBroker.Keys.Backends.AzureKeyVault;

/// <summary>Which Azure.Identity credential the Key Vault client uses.</summary>
public enum AzureCredentialKind
{
    /// <summary>DefaultAzureCredential (environment, workload identity, managed identity, developer tools).</summary>
    Default,

    /// <summary>ManagedIdentityCredential: system-assigned, or user-assigned with <see cref="KeyVaultKeyClientOptions.ClientId"/>.</summary>
    ManagedIdentity,

    /// <summary>WorkloadIdentityCredential: AKS workload identity (federated service-account token).</summary>
    WorkloadIdentity,

    /// <summary>ClientSecretCredential: tenant, client id and a secret (from a file, never the command line).</summary>
    ClientSecret,
}

/// <summary>
/// Options of <see cref="KeyVaultKeyClient"/>: the vault (or Managed HSM), the api-version, the credential and the
/// pipeline's retry settings (Azure.Core's RetryOptions: exponential back-off honouring Retry-After on 408, 429,
/// 500, 502, 503, 504).
/// </summary>
public sealed class KeyVaultKeyClientOptions : ClientOptions
{
    /// <summary>The newest api-version this client was written against; 7.4 is the lowest it accepts.</summary>
    public const string DefaultApiVersion = "7.4";

    /// <summary>https://&lt;name&gt;.vault.azure.net or https://&lt;name&gt;.managedhsm.azure.net.</summary>
    public Uri? VaultUri { get; set; }

    public string ApiVersion { get; set; } = DefaultApiVersion;

    /// <summary>
    /// Token scope; null picks https://managedhsm.azure.net/.default for *.managedhsm.azure.net and
    /// https://vault.azure.net/.default otherwise.
    /// </summary>
    public string? Scope { get; set; }

    public AzureCredentialKind Credential { get; set; } = AzureCredentialKind.Default;

    public string? TenantId { get; set; }

    /// <summary>Client id of a user-assigned managed identity, a workload identity or an app registration.</summary>
    public string? ClientId { get; set; }

    /// <summary>File holding the client secret (ClientSecret credential).</summary>
    public string? ClientSecretFile { get; set; }

    /// <summary>The effective scope.</summary>
    public string EffectiveScope => Scope ?? (VaultUri is { } u && u.Host.EndsWith(".managedhsm.azure.net", StringComparison.OrdinalIgnoreCase)
        ? "https://managedhsm.azure.net/.default"
        : "https://vault.azure.net/.default");

    public void Validate()
    {
        if (VaultUri is null || !VaultUri.IsAbsoluteUri || VaultUri.Scheme != Uri.UriSchemeHttps || VaultUri.AbsolutePath != "/")
        {
            throw new ArgumentException("Key Vault: VaultUri must be an https URL with no path, e.g. https://myvault.vault.azure.net", nameof(VaultUri));
        }

        string[] parts = ApiVersion.Split('.', '-');
        bool numeric = int.TryParse(parts[0], System.Globalization.CultureInfo.InvariantCulture, out int major);
        bool ok = numeric && (major >= 2000 || (major == 7 && parts.Length > 1 && int.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out int minor) && minor >= 4));
        if (!ok)
        {
            throw new ArgumentException("Key Vault: ApiVersion must be 7.4 or later (e.g. 7.4, 7.5, 2025-07-01)", nameof(ApiVersion));
        }

        if (Credential == AzureCredentialKind.ClientSecret && (string.IsNullOrWhiteSpace(TenantId) || string.IsNullOrWhiteSpace(ClientId) || string.IsNullOrWhiteSpace(ClientSecretFile)))
        {
            throw new ArgumentException("Key Vault: the ClientSecret credential needs TenantId, ClientId and ClientSecretFile");
        }
    }

    /// <summary>The Azure.Identity credential these options name.</summary>
    public TokenCredential CreateCredential()
    {
        switch (Credential)
        {
            case AzureCredentialKind.ManagedIdentity:
                return ClientId is { Length: > 0 } id
                    ? new ManagedIdentityCredential(ManagedIdentityId.FromUserAssignedClientId(id))
                    : new ManagedIdentityCredential(ManagedIdentityId.SystemAssigned);
            case AzureCredentialKind.WorkloadIdentity:
                var wi = new WorkloadIdentityCredentialOptions();
                if (TenantId is { Length: > 0 })
                {
                    wi.TenantId = TenantId;
                }

                if (ClientId is { Length: > 0 })
                {
                    wi.ClientId = ClientId;
                }

                return new WorkloadIdentityCredential(wi);
            case AzureCredentialKind.ClientSecret:
                string secret;
                try
                {
                    secret = File.ReadAllText(ClientSecretFile!).Trim();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new ArgumentException($"Key Vault: the client secret file {ClientSecretFile} cannot be read ({e.GetType().Name})", e);
                }

                return new ClientSecretCredential(TenantId, ClientId, secret);
            default:
                return new DefaultAzureCredential(new DefaultAzureCredentialOptions { ManagedIdentityClientId = ClientId, TenantId = TenantId });
        }
    }

    public override string ToString() =>
        $"KeyVaultKeyClientOptions {{ VaultUri = {VaultUri}, ApiVersion = {ApiVersion}, Credential = {Credential}, Scope = {EffectiveScope} }}";
}
