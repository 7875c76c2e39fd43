using AttestBroker.Kubernetes;

namespace AttestBroker.Server;

/// <summary>
/// "Broker:Kubernetes": how the broker learns who asks (the pod's projected service-account token), and whether it
/// keeps its release policies in step with KeyReleasePolicy custom resources (docs/kubernetes.md). Off by default.
/// </summary>
public sealed class KubernetesBrokerOptions
{
    public const string IdentityNone = "none";
    public const string IdentityTokenReview = "tokenreview";
    public const string IdentityOffline = "offline";

    /// <summary>none (tokens are ignored; requester sections deny), tokenreview (the API server checks the token), or offline (the issuer's JWKS).</summary>
    public string Identity { get; set; } = IdentityNone;

    /// <summary>The audience the projected token must carry.</summary>
    public string Audience { get; set; } = TokenValidationOptions.DefaultAudience;

    /// <summary>A kubeconfig file (its current context) for reaching the API server from outside the cluster; in-cluster otherwise.</summary>
    public string? Kubeconfig { get; set; }

    /// <summary>Keep the broker's policies in step with KeyReleasePolicy resources (list and watch; needs get/list/watch on the CRD).</summary>
    public bool WatchPolicies { get; set; }

    /// <summary>"Broker:Kubernetes:Offline": the service-account issuer and its keys, for Identity = offline.</summary>
    public OfflineTokenOptions Offline { get; set; } = new();

    public string IdentityMode => (Identity ?? IdentityNone).Trim().ToLowerInvariant();

    /// <summary>Whether anything needs a Kubernetes API client.</summary>
    internal bool NeedsClient(BrokerQuarantineOptions quarantine) =>
        IdentityMode == IdentityTokenReview || WatchPolicies || (quarantine.Enabled && !quarantine.DryRun);

    internal IEnumerable<string> Validate(BrokerQuarantineOptions quarantine)
    {
        var mode = IdentityMode;
        if (mode is not (IdentityNone or IdentityTokenReview or IdentityOffline))
        {
            yield return "Broker:Kubernetes:Identity must be none, tokenreview or offline";
        }

        if (string.IsNullOrWhiteSpace(Audience) || Audience.Length > 256)
        {
            yield return "Broker:Kubernetes:Audience must be 1 .. 256 characters";
        }

        if (Kubeconfig is { } kc && !File.Exists(kc))
        {
            yield return "Broker:Kubernetes:Kubeconfig does not exist";
        }

        if (mode == IdentityOffline)
        {
            if (string.IsNullOrWhiteSpace(Offline.Issuer))
            {
                yield return "Broker:Kubernetes:Offline:Issuer is required when Broker:Kubernetes:Identity is offline";
            }

            if (Offline.JwksFile is { } jf && !File.Exists(jf))
            {
                yield return "Broker:Kubernetes:Offline:JwksFile does not exist";
            }
            else if (Offline.JwksFile is null)
            {
                foreach (var (setting, url) in new[] { ("JwksUrl", Offline.JwksUrl), ("Issuer", Offline.JwksUrl is null ? Offline.Issuer : null) })
                {
                    if (!string.IsNullOrWhiteSpace(url) && !OfflineTokenValidator.IsAcceptableUrl(url))
                    {
                        yield return $"Broker:Kubernetes:Offline:{setting} must be an absolute https URL (http only on a loopback address) when no JwksFile is given";
                    }
                }
            }

            foreach (var (setting, file) in new[] { ("BearerTokenFile", Offline.BearerTokenFile), ("CaCertificateFile", Offline.CaCertificateFile) })
            {
                if (file is not null && !File.Exists(file))
                {
                    yield return $"Broker:Kubernetes:Offline:{setting} does not exist";
                }
            }
        }

        if (quarantine.Enabled && mode == IdentityNone)
        {
            yield return "Broker:Quarantine:Enabled needs Broker:Kubernetes:Identity (tokenreview or offline): without it no failure names a pod";
        }

        if (quarantine.FailureThreshold is < 1 or > 1000)
        {
            yield return "Broker:Quarantine:FailureThreshold must be 1 .. 1000";
        }

        if (quarantine.WindowSeconds is < 10 or > 86_400)
        {
            yield return "Broker:Quarantine:WindowSeconds must be 10 .. 86400";
        }
    }
}

/// <summary>
/// "Broker:Quarantine" (deploy/components/quarantine sets <c>Broker__Quarantine__Enabled=true</c>): label a pod
/// <c>attestbroker.io/quarantine=true</c> after repeated failed attestations or denied releases. Off by default.
/// </summary>
public sealed class BrokerQuarantineOptions
{
    public bool Enabled { get; set; }

    /// <summary>Only report (audit "would quarantine"); touch no pod.</summary>
    public bool DryRun { get; set; }

    /// <summary>Failures of one pod within the window that quarantine it (1 .. 1000).</summary>
    public int FailureThreshold { get; set; } = 5;

    /// <summary>The sliding window, in seconds (10 .. 86400).</summary>
    public int WindowSeconds { get; set; } = 600;
}
