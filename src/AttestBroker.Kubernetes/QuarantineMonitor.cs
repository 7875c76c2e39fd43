using System.Net;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AttestBroker.Kubernetes;

/// <summary>The automated response to repeated failures from one pod (off by default).</summary>
public sealed class QuarantineOptions
{
    public const string LabelKey = "attestbroker.io/quarantine";

    public bool Enabled { get; set; }

    /// <summary>Only report what would be done: no label, no Event.</summary>
    public bool DryRun { get; set; }

    /// <summary>Failed attestations or denied releases from one pod, within <see cref="Window"/>, that quarantine it.</summary>
    public int FailureThreshold { get; set; } = 5;

    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>At most this many pods are tracked; past it, pods whose failures left the window go first, then the quietest.</summary>
    public int MaximumTrackedPods { get; set; } = 10_000;

    /// <summary>reportingInstance of the Events (the broker pod's name).</summary>
    public string ReportingInstance { get; set; } = Environment.MachineName;
}

public enum QuarantineAction
{
    /// <summary>The pod was labelled and an Event recorded.</summary>
    Quarantined,

    /// <summary>Dry run: the pod would have been quarantined.</summary>
    WouldQuarantine,

    /// <summary>The pod is gone or was replaced (its UID differs): nothing was labelled.</summary>
    PodReplaced,

    /// <summary>The label could not be set (API error, missing RBAC); the message says why.</summary>
    Failed,
}

/// <summary>What the monitor decided about a pod; the caller writes it to the audit log.</summary>
public sealed record QuarantineDecision(string Namespace, string PodName, string PodUid, int Failures, TimeSpan Window, QuarantineAction Action, string Message);

/// <summary>
/// Counts failed attestations and denied releases per pod (namespace, name, UID) in a sliding window. When a pod
/// reaches the threshold (once per pod), it merge-patches the pod's label <c>attestbroker.io/quarantine: "true"</c>
/// with the UID in the patch, so a pod replaced under the same name is not touched (the API server refuses a patch
/// that would change the immutable UID; no "get pods" permission is needed), then creates a core/v1 Event (reason
/// Quarantined, type Warning) on the pod. In dry-run mode it only reports. Memory is bounded.
/// </summary>
public sealed class QuarantineMonitor
{
    private readonly IKubernetes? _client;
    private readonly QuarantineOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<string, PodFailures> _pods = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public QuarantineMonitor(IKubernetes? client, QuarantineOptions options, TimeProvider? time = null, ILogger<QuarantineMonitor>? logger = null)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (_options.FailureThreshold < 1 || _options.Window <= TimeSpan.Zero || _options.MaximumTrackedPods < 1)
        {
            throw new ArgumentException("quarantine threshold, window and capacity must be positive", nameof(options));
        }

        if (_options.Enabled && !_options.DryRun && client is null)
        {
            throw new ArgumentException("quarantine without dry run needs a Kubernetes client", nameof(client));
        }

        _client = client;
        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>Pods tracked now.</summary>
    public int TrackedPods
    {
        get
        {
            lock (_lock)
            {
                return _pods.Count;
            }
        }
    }

    /// <summary>
    /// Records one failed attestation or denied release by <paramref name="requester"/>. Returns a decision when this
    /// failure made the pod reach the threshold, else null (also when disabled, or the identity names no pod).
    /// </summary>
    public async Task<QuarantineDecision?> RecordFailureAsync(RequesterIdentity requester, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requester);
        if (!_options.Enabled || requester.PodName is not { } pod || requester.PodUid is not { } uid)
        {
            return null;
        }

        var now = _time.GetUtcNow();
        int count;
        lock (_lock)
        {
            var key = requester.Namespace + "/" + pod + "/" + uid;
            if (!_pods.TryGetValue(key, out var entry))
            {
                MakeRoom(now);
                entry = new PodFailures(_options.FailureThreshold);
                _pods[key] = entry;
            }

            count = entry.Add(now, _options.Window);
            if (entry.Reported || count < _options.FailureThreshold)
            {
                return null;
            }

            entry.Reported = true;
        }

        var window = _options.Window;
        if (_options.DryRun)
        {
            var dry = new QuarantineDecision(requester.Namespace, pod, uid, count, window, QuarantineAction.WouldQuarantine,
                $"dry run: {count} failures within {window}; the pod would be labelled {QuarantineOptions.LabelKey}=true");
            _logger.LogWarning("quarantine (dry run): pod {Namespace}/{Pod}", requester.Namespace, pod);
            return dry;
        }

        return await QuarantineAsync(requester.Namespace, pod, uid, count, cancellationToken).ConfigureAwait(false);
    }

    private async Task<QuarantineDecision> QuarantineAsync(string ns, string pod, string uid, int count, CancellationToken cancellationToken)
    {
        var window = _options.Window;
        var body = new JsonObject
        {
            ["metadata"] = new JsonObject
            {
                ["uid"] = uid,
                ["labels"] = new JsonObject { [QuarantineOptions.LabelKey] = "true" },
            },
        }.ToJsonString();
        try
        {
            await _client!.CoreV1.PatchNamespacedPodAsync(new V1Patch(body, V1Patch.PatchType.MergePatch), pod, ns, fieldManager: "attestbroker", cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (HttpOperationException ex) when (ex.Response?.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict or HttpStatusCode.UnprocessableEntity)
        {
            return new QuarantineDecision(ns, pod, uid, count, window, QuarantineAction.PodReplaced,
                $"pod {ns}/{pod} with UID {uid} no longer exists (answer {(int)ex.Response!.StatusCode}); nothing was labelled");
        }
        catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            var status = (ex as HttpOperationException)?.Response?.StatusCode;
            _logger.LogError("quarantine of pod {Namespace}/{Pod} failed ({Kind}, {Status})", ns, pod, ex.GetType().Name, (int?)status);
            return new QuarantineDecision(ns, pod, uid, count, window, QuarantineAction.Failed,
                $"labelling pod {ns}/{pod} failed: " + (status is { } s ? $"the API server answered {(int)s}" : ex.GetType().Name));
        }

        var message = $"{count} failed attestations or denied key releases within {window}; labelled {QuarantineOptions.LabelKey}=true";
        var now = _time.GetUtcNow().UtcDateTime;
        var ev = new Corev1Event
        {
            ApiVersion = "v1",
            Kind = "Event",
            Metadata = new V1ObjectMeta { Name = $"{pod}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}", NamespaceProperty = ns },
            InvolvedObject = new V1ObjectReference { ApiVersion = "v1", Kind = "Pod", Name = pod, NamespaceProperty = ns, Uid = uid },
            Reason = "Quarantined",
            Type = "Warning",
            Message = message,
            Source = new V1EventSource { Component = "attestbroker" },
            ReportingComponent = "attestbroker",
            ReportingInstance = _options.ReportingInstance,
            Action = "Quarantine",
            FirstTimestamp = now,
            LastTimestamp = now,
            Count = 1,
        };
        try
        {
            await _client.CoreV1.CreateNamespacedEventAsync(ev, ns, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // The label is what isolates the pod; a missing Event is reported but does not undo it.
            _logger.LogWarning("the Quarantined event for pod {Namespace}/{Pod} could not be created ({Kind})", ns, pod, ex.GetType().Name);
            message += "; the Event could not be created";
        }

        _logger.LogWarning("quarantined pod {Namespace}/{Pod}", ns, pod);
        return new QuarantineDecision(ns, pod, uid, count, window, QuarantineAction.Quarantined, message);
    }

    private void MakeRoom(DateTimeOffset now)
    {
        if (_pods.Count < _options.MaximumTrackedPods)
        {
            return;
        }

        foreach (var stale in _pods.Where(p => now - p.Value.Newest >= _options.Window).Select(p => p.Key).ToList())
        {
            _pods.Remove(stale);
        }

        if (_pods.Count >= _options.MaximumTrackedPods)
        {
            _pods.Remove(_pods.MinBy(p => p.Value.Newest).Key);
        }
    }

    /// <summary>The last <c>threshold</c> failure times of one pod (a ring), and whether it was reported.</summary>
    private sealed class PodFailures(int threshold)
    {
        private readonly DateTimeOffset[] _times = new DateTimeOffset[threshold];
        private int _count;
        private int _next;

        public bool Reported { get; set; }

        public DateTimeOffset Newest { get; private set; }

        /// <summary>Adds a failure; returns how many of the kept ones lie within the window ending now.</summary>
        public int Add(DateTimeOffset now, TimeSpan window)
        {
            _times[_next] = now;
            _next = (_next + 1) % _times.Length;
            _count = Math.Min(_count + 1, _times.Length);
            Newest = now;
            var within = 0;
            for (var i = 0; i < _count; i++)
            {
                if (now - _times[i] < window)
                {
                    within++;
                }
            }

            return within;
        }
    }
}
