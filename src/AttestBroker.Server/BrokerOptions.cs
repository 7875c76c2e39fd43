using Microsoft.Extensions.Options;

namespace AttestBroker.Server;

/// <summary>
/// Settings of <c>attestbroker serve</c>, bound from the "Broker" configuration section (appsettings.json, environment
/// variables <c>Broker__DataDirectory</c> ..., command line). Validated at start-up; the broker does not start on a bad value.
/// </summary>
public sealed class BrokerOptions
{
    public const string SectionName = "Broker";

    /// <summary>Holds the SQLite database, the KEK directory, the nonce secret, the token-signing key and <c>policies/</c>.</summary>
    public string DataDirectory { get; set; } = string.Empty;

    /// <summary>Address to listen on (an IP address, or "localhost").</summary>
    public string ListenAddress { get; set; } = "127.0.0.1";

    /// <summary>Port to listen on; 0 picks a free port.</summary>
    public int Port { get; set; } = 8443;

    /// <summary>TLS certificate (PEM) for HTTPS.</summary>
    public string? CertificateFile { get; set; }

    /// <summary>TLS private key (PEM) for HTTPS; never logged.</summary>
    public string? CertificateKeyFile { get; set; }

    /// <summary>Make a self-signed certificate for localhost at start-up (local use only).</summary>
    public bool DevCertificate { get; set; }

    /// <summary>Serve plain HTTP (no TLS). Logged as a warning; for use behind a TLS-terminating proxy or in a lab.</summary>
    public bool AllowInsecureHttp { get; set; }

    /// <summary>The "iss" of attestation-result tokens.</summary>
    public string Issuer { get; set; } = "https://attestbroker.local";

    /// <summary>Trust the simulated roots of this attest-sim PKI directory (logged as a warning; policies must still opt in).</summary>
    public string? TrustSimulatorPkiDirectory { get; set; }

    /// <summary>Collateral files or folders read by the verifiers (TDX TCB info, QE identity, CRLs; SNP VCEK/VLEK chains).</summary>
    public IList<string> CollateralPaths { get; } = [];

    /// <summary>Fetch missing collateral from Intel PCS / AMD KDS (through the on-disk HTTP cache).</summary>
    public bool FetchCollateral { get; set; }

    /// <summary>Intel PCS base URL for FetchCollateral (default Intel's; a PCCS or attest-sim serve for tests and air-gapped sites).</summary>
    public string? IntelPcsUrl { get; set; }

    /// <summary>Base URL of Intel's certificate site (Root CA CRL) for FetchCollateral; defaults to IntelPcsUrl when that is set.</summary>
    public string? IntelCertificatesUrl { get; set; }

    /// <summary>AMD KDS base URL for FetchCollateral (default AMD's).</summary>
    public string? AmdKdsUrl { get; set; }

    /// <summary>Skip CRL checks (policies then deny unless they set allowUncheckedCrl).</summary>
    public bool SkipCrl { get; set; }

    /// <summary>The admin API ("Broker:Admin"): trusted token issuers, audience, audit-head signing interval.</summary>
    public Admin.AdminOptions Admin { get; set; } = new();

    /// <summary>How long a challenge nonce stays usable, in seconds (10 .. 900).</summary>
    public int NonceLifetimeSeconds { get; set; } = 120;

    /// <summary>Largest request body accepted, in bytes (4 KiB .. 16 MiB).</summary>
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Requests per client address per minute before 429 (1 .. 1,000,000).</summary>
    public int RateLimitPerMinute { get; set; } = 120;

    /// <summary>Most keys one request may ask for (1 .. 64).</summary>
    public int MaxKeysPerRequest { get; set; } = 16;

    /// <summary>Lifetime of attestation-result tokens in seconds (1 .. 3600; 300 by default).</summary>
    public int TokenLifetimeSeconds { get; set; } = 300;

    /// <summary>The database ("Broker:Storage"): SQLite in the data directory, or PostgreSQL for several replicas.</summary>
    public BrokerStorageOptions Storage { get; set; } = new();

    /// <summary>Where the KEK, the challenge MAC secret and the token-signing key come from ("Broker:Secrets").</summary>
    public BrokerSecretsOptions Secrets { get; set; } = new();

    /// <summary>Requester identity from service-account tokens and KeyReleasePolicy resources ("Broker:Kubernetes"; off by default).</summary>
    public KubernetesBrokerOptions Kubernetes { get; set; } = new();

    /// <summary>Quarantine of pods that keep failing ("Broker:Quarantine"; off by default).</summary>
    public BrokerQuarantineOptions Quarantine { get; set; } = new();

    /// <summary>Microsoft Azure Attestation tokens as evidence in /v1/attest ("Broker:AzureAttestation"; off by default).</summary>
    public AttestBroker.Verification.Azure.AzureAttestationOptions AzureAttestation { get; set; } = new();
}

/// <summary>Start-up validation of <see cref="BrokerOptions"/> (ValidateOnStart); every failure names the setting.</summary>
public sealed class BrokerOptionsValidator : IValidateOptions<BrokerOptions>
{
    public ValidateOptionsResult Validate(string? name, BrokerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            errors.Add("Broker:DataDirectory is required");
        }

        if (options.Port is < 0 or > 65535)
        {
            errors.Add("Broker:Port must be 0 .. 65535");
        }

        if (options.ListenAddress != "localhost" && !System.Net.IPAddress.TryParse(options.ListenAddress, out _))
        {
            errors.Add("Broker:ListenAddress must be an IP address or 'localhost'");
        }

        var hasFiles = options.CertificateFile is not null || options.CertificateKeyFile is not null;
        if (hasFiles && (string.IsNullOrEmpty(options.CertificateFile) || string.IsNullOrEmpty(options.CertificateKeyFile)))
        {
            errors.Add("Broker:CertificateFile and Broker:CertificateKeyFile must be given together");
        }

        var modes = (hasFiles ? 1 : 0) + (options.DevCertificate ? 1 : 0) + (options.AllowInsecureHttp ? 1 : 0);
        if (modes == 0)
        {
            errors.Add("HTTPS needs Broker:CertificateFile and Broker:CertificateKeyFile, or Broker:DevCertificate; plain HTTP needs Broker:AllowInsecureHttp");
        }
        else if (modes > 1)
        {
            errors.Add("choose one of: certificate files, Broker:DevCertificate, Broker:AllowInsecureHttp");
        }

        if (hasFiles && !string.IsNullOrEmpty(options.CertificateFile) && !File.Exists(options.CertificateFile))
        {
            errors.Add("Broker:CertificateFile does not exist");
        }

        if (hasFiles && !string.IsNullOrEmpty(options.CertificateKeyFile) && !File.Exists(options.CertificateKeyFile))
        {
            errors.Add("Broker:CertificateKeyFile does not exist");
        }

        if (!Uri.TryCreate(options.Issuer, UriKind.Absolute, out _))
        {
            errors.Add("Broker:Issuer must be an absolute URI");
        }

        if (options.TrustSimulatorPkiDirectory is { } sim && !Directory.Exists(sim))
        {
            errors.Add("Broker:TrustSimulatorPkiDirectory does not exist");
        }

        foreach (var path in options.CollateralPaths)
        {
            if (!File.Exists(path) && !Directory.Exists(path))
            {
                errors.Add($"Broker:CollateralPaths: {path} does not exist");
            }
        }

        errors.AddRange(options.Admin.Validate());
        errors.AddRange(options.Kubernetes.Validate(options.Quarantine));
        errors.AddRange(AzureAttestationWiring.Validate(options.AzureAttestation));

        if (options.NonceLifetimeSeconds is < 10 or > 900)
        {
            errors.Add("Broker:NonceLifetimeSeconds must be 10 .. 900");
        }

        if (options.MaxRequestBodyBytes is < 4096 or > 16 * 1024 * 1024)
        {
            errors.Add("Broker:MaxRequestBodyBytes must be 4096 .. 16777216");
        }

        if (options.RateLimitPerMinute is < 1 or > 1_000_000)
        {
            errors.Add("Broker:RateLimitPerMinute must be 1 .. 1000000");
        }

        if (options.MaxKeysPerRequest is < 1 or > 64)
        {
            errors.Add("Broker:MaxKeysPerRequest must be 1 .. 64");
        }

        if (options.TokenLifetimeSeconds is < 1 or > 3600)
        {
            errors.Add("Broker:TokenLifetimeSeconds must be 1 .. 3600");
        }

        foreach (var (setting, url) in new[] { ("IntelPcsUrl", options.IntelPcsUrl), ("IntelCertificatesUrl", options.IntelCertificatesUrl), ("AmdKdsUrl", options.AmdKdsUrl) })
        {
            if (url is not null && (!Uri.TryCreate(url, UriKind.Absolute, out var u) || u.Scheme is not ("https" or "http")))
            {
                errors.Add($"Broker:{setting} must be an absolute http(s) URL");
            }
        }

        if (options.Storage is { } storage)
        {
            if (!storage.IsPostgres && !string.Equals(storage.Provider, BrokerStorageOptions.Sqlite, StringComparison.OrdinalIgnoreCase))
            {
                errors.Add("Broker:Storage:Provider must be sqlite or postgres");
            }
            else if (storage.IsPostgres && string.IsNullOrWhiteSpace(storage.ConnectionString) && string.IsNullOrWhiteSpace(storage.ConnectionStringFile))
            {
                errors.Add("Broker:Storage:Provider postgres needs Broker:Storage:ConnectionString or Broker:Storage:ConnectionStringFile");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
