using System.Globalization;
using System.Text.Json.Nodes;
using AttestBroker.Keys;
using AttestBroker.Kubernetes;
using AttestBroker.Policy;
using AttestBroker.Storage;
using k8s;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Server;

/// <summary>
/// The broker's Kubernetes side at run time (docs/kubernetes.md): the service-account token validator (when
/// Broker:Kubernetes:Identity is not none), the quarantine monitor (when Broker:Quarantine:Enabled), and the API
/// client they and the KeyReleasePolicy watcher share.
/// </summary>
public sealed partial class BrokerKubernetes : IDisposable
{
    public const string AuditKindQuarantine = "quarantine";

    private readonly IAuditLog _audit;
    private readonly TimeProvider _time;
    private readonly ILogger _log;

    private BrokerKubernetes(IKubernetes? client, IServiceAccountTokenValidator? validator, QuarantineMonitor? quarantine, IAuditLog audit, TimeProvider time, ILogger log)
    {
        Client = client;
        Validator = validator;
        Quarantine = quarantine;
        _audit = audit;
        _time = time;
        _log = log;
    }

    /// <summary>The API client; null when nothing needs one.</summary>
    public IKubernetes? Client { get; }

    /// <summary>Checks service-account tokens; null when Identity is none (tokens are then ignored).</summary>
    public IServiceAccountTokenValidator? Validator { get; }

    /// <summary>Counts failures per pod; null when quarantine is off.</summary>
    public QuarantineMonitor? Quarantine { get; }

    /// <summary>
    /// The API client for <paramref name="options"/> (kubeconfig or in-cluster), or null when nothing needs one.
    /// Made at start-up so a broker outside a cluster without a kubeconfig does not start.
    /// </summary>
    internal static IKubernetes? CreateClient(BrokerOptions options, bool forKeyBackends = false)
    {
        if (!forKeyBackends && !options.Kubernetes.NeedsClient(options.Quarantine))
        {
            return null;
        }

        try
        {
            return KubernetesConnection.Create(options.Kubernetes.Kubeconfig);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or k8s.Exceptions.KubeConfigException or k8s.Exceptions.KubernetesClientException or UnauthorizedAccessException)
        {
            throw new BrokerStartupException("Broker:Kubernetes: cannot reach the API server configuration: " + ex.Message, ex);
        }
    }

    internal static BrokerKubernetes Create(BrokerOptions options, IKubernetes? client, IAuditLog audit, TimeProvider time, ILoggerFactory loggers)
    {
        var k = options.Kubernetes;
        var common = new TokenValidationOptions { Audience = k.Audience };
        IServiceAccountTokenValidator? validator;
        QuarantineMonitor? quarantine = null;
        try
        {
            validator = k.IdentityMode switch
            {
                KubernetesBrokerOptions.IdentityTokenReview => new TokenReviewValidator(client!, common, time, loggers.CreateLogger<TokenReviewValidator>()),
                KubernetesBrokerOptions.IdentityOffline => new OfflineTokenValidator(k.Offline, common, time, null, loggers.CreateLogger<OfflineTokenValidator>()),
                _ => null,
            };
            if (options.Quarantine.Enabled)
            {
                var q = options.Quarantine;
                quarantine = new QuarantineMonitor(client, new QuarantineOptions { Enabled = true, DryRun = q.DryRun, FailureThreshold = q.FailureThreshold, Window = TimeSpan.FromSeconds(q.WindowSeconds) }, time, loggers.CreateLogger<QuarantineMonitor>());
            }
        }
        catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException or FormatException or AttestBroker.Protocol.ProtocolException)
        {
            throw new BrokerStartupException("Broker:Kubernetes: " + ex.Message, ex);
        }

        return new BrokerKubernetes(client, validator, quarantine, audit, time, loggers.CreateLogger<BrokerKubernetes>());
    }

    /// <summary>
    /// One failed attestation or denied release by <paramref name="requester"/>: counted, and when the pod reaches the
    /// threshold the monitor's decision is audited (kind "quarantine"). Never throws for an API failure.
    /// </summary>
    public async Task RecordFailureAsync(Kubernetes.RequesterIdentity requester, string? client, CancellationToken cancellationToken)
    {
        if (Quarantine is null)
        {
            return;
        }

        QuarantineDecision? decision;
        try
        {
            decision = await Quarantine.RecordFailureAsync(requester, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogQuarantineFailed(_log, requester.Namespace, requester.PodName ?? "?", ex.GetType().Name);
            return;
        }

        if (decision is null)
        {
            return;
        }

        var details = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["namespace"] = decision.Namespace,
            ["pod"] = decision.PodName,
            ["pod_uid"] = decision.PodUid,
            ["service_account"] = requester.ServiceAccount,
            ["failures"] = decision.Failures.ToString(CultureInfo.InvariantCulture),
            ["window_seconds"] = ((long)decision.Window.TotalSeconds).ToString(CultureInfo.InvariantCulture),
            ["message"] = decision.Message,
        };
        if (client is not null)
        {
            details["client"] = client;
        }

        var action = ActionName(decision.Action);
        await _audit.AppendAsync(new AuditEvent(AuditKindQuarantine, _time.GetUtcNow(), "broker", action, [action], Details: details), cancellationToken);
    }

    public static string ActionName(QuarantineAction action) => action switch
    {
        QuarantineAction.Quarantined => "quarantined",
        QuarantineAction.WouldQuarantine => "would_quarantine",
        QuarantineAction.PodReplaced => "pod_replaced",
        _ => "failed",
    };

    public void Dispose()
    {
        // The client belongs to the host (disposed with it).
        (Validator as IDisposable)?.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "quarantine bookkeeping for pod {Namespace}/{Pod} failed ({Kind})")]
    private static partial void LogQuarantineFailed(ILogger logger, string @namespace, string pod, string kind);
}

/// <summary>
/// The broker's policy store as the KeyReleasePolicy watcher sees it: documents are validated by the policy parser,
/// stored as versions and audited through <see cref="BrokerData.SetPolicyAsync"/>.
/// </summary>
public sealed class BrokerPolicySink : IPolicySink
{
    /// <summary>Policy name of the deny-all document stored when a key's KeyReleasePolicy is deleted.</summary>
    public const string RemovedPolicyName = "removed-by-kubernetes";

    private readonly BrokerData _data;
    private readonly TimeProvider _time;

    public BrokerPolicySink(BrokerData data, TimeProvider time)
    {
        _data = data;
        _time = time;
    }

    /// <summary>Idempotent: a document equal to the stored current one returns that version (nothing is stored or audited).</summary>
    public async Task<AppliedPolicy> ApplyAsync(string keyId, string documentJson, string author, CancellationToken cancellationToken)
    {
        if (!EmbeddedKeyStore.IsValidKeyId(keyId))
        {
            throw new PolicyRejectedException("keyId", "a broker key id is 1..128 characters of letters, digits and . _ : - starting with a letter or digit");
        }

        try
        {
            var stored = await _data.SetPolicyAsync(keyId, documentJson, author, _time.GetUtcNow(), cancellationToken);
            return new AppliedPolicy(stored.Version, stored.Sha256Hex);
        }
        catch (PolicyFormatException ex)
        {
            throw new PolicyRejectedException(ex.Path, ex.Problem);
        }
    }

    /// <summary>Stores (and audits) a deny-all version: a document that allows no TEE kind (<c>tee: []</c>).</summary>
    public async Task RemoveAsync(string keyId, string author, CancellationToken cancellationToken)
    {
        if (!EmbeddedKeyStore.IsValidKeyId(keyId))
        {
            return;
        }

        await _data.SetPolicyAsync(keyId, DenyAllDocument(author), author, _time.GetUtcNow(), cancellationToken);
    }

    /// <summary>The deny-all document (JSON): it names who removed the policy, and allows no TEE kind.</summary>
    public static string DenyAllDocument(string author) => new JsonObject
    {
        ["name"] = RemovedPolicyName,
        ["version"] = 1,
        ["description"] = "the KeyReleasePolicy governing this key was deleted (" + author + "); every release is denied",
        ["tee"] = new JsonArray(),
    }.ToJsonString();
}

/// <summary>Runs the KeyReleasePolicy watcher while the broker runs (Broker:Kubernetes:WatchPolicies).</summary>
internal sealed class PolicyWatcherService : BackgroundService
{
    private readonly KeyReleasePolicyWatcher _watcher;

    public PolicyWatcherService(KeyReleasePolicyWatcher watcher) => _watcher = watcher;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await _watcher.RunAsync(stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
