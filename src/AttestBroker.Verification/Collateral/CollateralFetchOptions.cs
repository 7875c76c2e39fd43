namespace AttestBroker.Verification.Collateral;

/// <summary>Where collateral is fetched from and how the on-disk cache behaves. Fetching is off unless the caller asks for it.</summary>
public sealed class CollateralFetchOptions
{
    /// <summary>Intel PCS (or a caching service that serves the same v4 paths).</summary>
    public Uri IntelPcsBaseUrl { get; set; } = new("https://api.trustedservices.intel.com/");

    /// <summary>Where Intel publishes the SGX Root CA CRL (IntelSGXRootCA.der).</summary>
    public Uri IntelCertificatesBaseUrl { get; set; } = new("https://certificates.trustedservices.intel.com/");

    /// <summary>AMD KDS (or a caching service that serves the same paths).</summary>
    public Uri AmdKdsBaseUrl { get; set; } = new("https://kdsintf.amd.com/");

    /// <summary>The on-disk cache; by default $XDG_CACHE_HOME/attestbroker/collateral or ~/.cache/attestbroker/collateral.</summary>
    public string CacheDirectory { get; set; } = DefaultCacheDirectory();

    /// <summary>Attempts per request for transient failures (HTTP 5xx, 429, timeouts, connection errors).</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>The first back-off delay; doubled on each further attempt.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The longest Retry-After the cache will wait out; a longer one fails the request at once with the time to retry.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Timeout of one HTTP attempt.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest response body accepted (collateral is a few kilobytes; CRLs can reach a few hundred).</summary>
    public int MaxResponseBytes { get; set; } = 4 * 1024 * 1024;

    public static string DefaultCacheDirectory()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "attestbroker", "collateral");
    }
}
