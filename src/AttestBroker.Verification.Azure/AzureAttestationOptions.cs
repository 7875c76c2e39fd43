namespace AttestBroker.Verification.Azure;

/// <summary>Accepting Microsoft Azure Attestation tokens as evidence. Off unless <see cref="Enabled"/>.</summary>
public sealed class AzureAttestationOptions
{
    /// <summary>Off by default: a broker accepts Azure tokens only when the operator turns this on.</summary>
    public bool Enabled { get; set; }

    /// <summary>
    /// The attestation instance, e.g. https://sharedeus2.eus2.attest.azure.net: the token's "iss" must be exactly
    /// this (without a trailing slash) and the signing keys are fetched from {instance}/certs.
    /// </summary>
    public Uri? Instance { get; set; }

    /// <summary>Tolerance for exp/nbf/iat against the broker's clock.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Longest accepted token lifetime (exp - iat); MAA issues 8-hour tokens.</summary>
    public TimeSpan MaxTokenLifetime { get; set; } = TimeSpan.FromHours(8) + TimeSpan.FromMinutes(5);

    /// <summary>How long fetched signing keys are used before they are fetched again.</summary>
    public TimeSpan KeyCacheLifetime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>A token with an unknown kid refreshes the keys at most this often (so junk tokens cannot hammer the service).</summary>
    public TimeSpan MinRefreshInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The token's issuer string: the instance URL without a trailing slash.</summary>
    public string Issuer => Instance!.GetLeftPart(UriPartial.Authority);

    public void Validate()
    {
        if (Instance is null || !Instance.IsAbsoluteUri || Instance.Scheme != Uri.UriSchemeHttps || Instance.AbsolutePath != "/" || !string.IsNullOrEmpty(Instance.Query))
        {
            throw new ArgumentException("Azure Attestation: Instance must be an https URL with no path, e.g. https://myprovider.eus2.attest.azure.net", nameof(Instance));
        }

        if (ClockSkew < TimeSpan.Zero || MaxTokenLifetime <= TimeSpan.Zero || KeyCacheLifetime <= TimeSpan.Zero || MinRefreshInterval < TimeSpan.Zero)
        {
            throw new ArgumentException("Azure Attestation: ClockSkew and MinRefreshInterval must be >= 0, MaxTokenLifetime and KeyCacheLifetime > 0");
        }
    }
}
