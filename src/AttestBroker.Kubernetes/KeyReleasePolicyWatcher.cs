using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AttestBroker.Kubernetes;

public sealed class KeyReleasePolicyWatcherOptions
{
    /// <summary>The first wait after an error; doubled on each further error up to <see cref="MaximumBackoff"/>, with jitter.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaximumBackoff { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>The API server ends each watch after about this long (timeoutSeconds); the watcher resumes it from the last resourceVersion.</summary>
    public int WatchTimeoutSeconds { get; set; } = 300;

    /// <summary>Objects per list page (limit / continue).</summary>
    public int ListPageSize { get; set; } = 250;

    /// <summary>A value in [0, 1) per call, for the jitter; <see cref="Random.Shared"/> when null.</summary>
    public Func<double>? Jitter { get; set; }
}

/// <summary>
/// Keeps the broker's release policies in step with the KeyReleasePolicy custom resources of all namespaces: lists
/// them, then watches from the list's resourceVersion with bookmarks (which move the resourceVersion on), resuming
/// each ended watch where it stopped, listing again after 410 Gone, and backing off exponentially with jitter after
/// errors (waits go through the TimeProvider). Each new generation is scoped, turned into a policy document and
/// handed to the <see cref="IPolicySink"/>; the outcome goes to the resource's status (merge patch on the status
/// subresource): condition Accepted, activeVersion, activeSha256, observedGeneration. A deleted resource's key is
/// removed from the sink. Events for a generation already handled (such as the watcher's own status patches) are
/// not applied again.
/// </summary>
public sealed class KeyReleasePolicyWatcher
{
    public const string ConditionType = "Accepted";

    private readonly IKubernetes _client;
    private readonly IPolicySink _sink;
    private readonly KeyReleasePolicyWatcherOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Dictionary<string, Tracked> _objects = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _owners = new(StringComparer.Ordinal);
    private readonly HashSet<string> _pendingRemovals = new(StringComparer.Ordinal);
    private int _failures;
    private int _lists;
    private string? _resourceVersion;

    public KeyReleasePolicyWatcher(IKubernetes client, IPolicySink sink, KeyReleasePolicyWatcherOptions? options = null, TimeProvider? time = null, ILogger<KeyReleasePolicyWatcher>? logger = null)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _sink = sink ?? throw new ArgumentNullException(nameof(sink));
        _options = options ?? new KeyReleasePolicyWatcherOptions();
        if (_options.InitialBackoff <= TimeSpan.Zero || _options.MaximumBackoff < _options.InitialBackoff || _options.WatchTimeoutSeconds < 1 || _options.ListPageSize < 1)
        {
            throw new ArgumentException("watcher options are out of range", nameof(options));
        }

        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The resourceVersion the next watch starts from (null: the next step is a list).</summary>
    public string? ResourceVersion => Volatile.Read(ref _resourceVersion);

    /// <summary>How many full lists were made (the first, and one after each 410 Gone).</summary>
    public int ListCount => Volatile.Read(ref _lists);

    /// <summary>Errors since the last successful list or watch.</summary>
    public int ConsecutiveFailures => Volatile.Read(ref _failures);

    /// <summary>Called after each error with the wait before the next try (for logs and tests).</summary>
    public event Action<Exception, TimeSpan>? BackingOff;

    /// <summary>Runs until cancelled. Never throws except <see cref="OperationCanceledException"/> on cancellation.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (ResourceVersion is null)
                {
                    await ListAndSyncAsync(cancellationToken).ConfigureAwait(false);
                }

                await RetryPendingAsync(cancellationToken).ConfigureAwait(false);
                await WatchOnceAsync(cancellationToken).ConfigureAwait(false);
                _failures = 0;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (GoneException)
            {
                _logger.LogInformation("KeyReleasePolicy watch: resourceVersion {Version} is gone (410); listing again", ResourceVersion);
                Volatile.Write(ref _resourceVersion, null);
            }
            catch (Exception ex)
            {
                _failures++;
                var delay = Backoff(_failures, _options.InitialBackoff, _options.MaximumBackoff, (_options.Jitter ?? Random.Shared.NextDouble)());
                _logger.LogWarning("KeyReleasePolicy list/watch failed ({Kind}, {Status}); retrying in {Delay}", ex.GetType().Name, StatusOf(ex), delay);
                BackingOff?.Invoke(ex, delay);
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// The wait after the <paramref name="failures"/>-th consecutive error: initial * 2^(failures-1), capped at
    /// maximum, then scaled by 0.5 + jitter/2 (so between half and all of it).
    /// </summary>
    public static TimeSpan Backoff(int failures, TimeSpan initial, TimeSpan maximum, double jitter)
    {
        var exponent = Math.Clamp(failures - 1, 0, 30);
        var raw = Math.Min(maximum.TotalMilliseconds, initial.TotalMilliseconds * Math.Pow(2, exponent));
        return TimeSpan.FromMilliseconds(raw * (0.5 + (Math.Clamp(jitter, 0, 1) / 2)));
    }

    private async Task ListAndSyncAsync(CancellationToken cancellationToken)
    {
        var seen = new List<KeyReleasePolicyResource>();
        string? continueToken = null;
        string? listVersion = null;
        while (true)
        {
            JsonElement page;
            try
            {
                page = await _client.CustomObjects.ListCustomObjectForAllNamespacesAsync<JsonElement>(
                    KeyReleasePolicyResource.Group, KeyReleasePolicyResource.Version, KeyReleasePolicyResource.Plural,
                    continueParameter: continueToken, limit: _options.ListPageSize, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (HttpOperationException ex) when (ex.Response?.StatusCode == HttpStatusCode.Gone && continueToken is not null)
            {
                // The continue token expired mid-list: start the list again.
                seen.Clear();
                continueToken = null;
                continue;
            }

            if (page.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException("the list answer is not an object");
            }

            if (page.TryGetProperty("items", out var items) && items.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in items.EnumerateArray())
                {
                    if (KeyReleasePolicyResource.From(item) is { } r)
                    {
                        seen.Add(r);
                    }
                }
            }

            var meta = page.TryGetProperty("metadata", out var m) && m.ValueKind == JsonValueKind.Object ? m : default;
            listVersion = meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("resourceVersion", out var rv) && rv.ValueKind == JsonValueKind.String ? rv.GetString() : null;
            continueToken = meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("continue", out var c) && c.ValueKind == JsonValueKind.String && c.GetString() is { Length: > 0 } next ? next : null;
            if (continueToken is null)
            {
                break;
            }
        }

        Interlocked.Increment(ref _lists);
        var present = seen.Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
        foreach (var gone in _objects.Keys.Where(k => !present.Contains(k)).ToList())
        {
            await DeletedAsync(gone, cancellationToken).ConfigureAwait(false);
        }

        foreach (var r in seen)
        {
            await ProcessAsync(r, cancellationToken).ConfigureAwait(false);
        }

        Volatile.Write(ref _resourceVersion, listVersion ?? throw new InvalidDataException("the list answer has no metadata.resourceVersion"));
        _failures = 0;
    }

    private async Task WatchOnceAsync(CancellationToken cancellationToken)
    {
        using var watchCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Exception? watchError = null;
        void OnError(Exception e)
        {
            watchError ??= e;
            watchCts.Cancel();
        }

        var started = _time.GetUtcNow();
        var handled = 0;
        try
        {
            var events = _client.CustomObjects.WatchListCustomObjectForAllNamespacesAsync(
                KeyReleasePolicyResource.Group, KeyReleasePolicyResource.Version, KeyReleasePolicyResource.Plural,
                allowWatchBookmarks: true, resourceVersion: ResourceVersion, timeoutSeconds: _options.WatchTimeoutSeconds,
                onError: OnError, cancellationToken: watchCts.Token);
            await foreach (var (type, obj) in events.ConfigureAwait(false))
            {
                var element = obj is JsonElement e ? e : JsonSerializer.SerializeToElement(obj);
                await HandleEventAsync(type, element, cancellationToken).ConfigureAwait(false);
                handled++;
                if (watchError is not null)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (watchError is not null && !cancellationToken.IsCancellationRequested)
        {
            // The error callback ended the stream; handled below.
        }
        catch (HttpOperationException ex) when (ex.Response?.StatusCode == HttpStatusCode.Gone)
        {
            throw new GoneException();
        }

        if (watchError is KubernetesException { Status.Code: 410 })
        {
            throw new GoneException();
        }

        if (watchError is not null)
        {
            throw new WatchFailedException(watchError);
        }

        if (handled == 0 && _time.GetUtcNow() - started < TimeSpan.FromSeconds(1))
        {
            // A watch that ends at once with nothing in it (a proxy cutting streams, say) must not become a busy loop.
            throw new InvalidDataException("the watch ended at once without an event");
        }
    }

    private async Task HandleEventAsync(WatchEventType type, JsonElement obj, CancellationToken cancellationToken)
    {
        if (obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty("metadata", out var meta) && meta.ValueKind == JsonValueKind.Object
            && meta.TryGetProperty("resourceVersion", out var rv) && rv.ValueKind == JsonValueKind.String && rv.GetString() is { Length: > 0 } version)
        {
            if (type == WatchEventType.Bookmark)
            {
                Volatile.Write(ref _resourceVersion, version);
                return;
            }

            var resource = KeyReleasePolicyResource.From(obj);
            if (resource is not null)
            {
                if (type == WatchEventType.Deleted)
                {
                    await DeletedAsync(resource.Key, cancellationToken).ConfigureAwait(false);
                }
                else if (type is WatchEventType.Added or WatchEventType.Modified)
                {
                    await ProcessAsync(resource, cancellationToken).ConfigureAwait(false);
                }
            }

            // Only after the event is handled: a restart resumes after what was done.
            Volatile.Write(ref _resourceVersion, version);
        }
    }

    private async Task ProcessAsync(KeyReleasePolicyResource r, CancellationToken cancellationToken)
    {
        if (_objects.TryGetValue(r.Key, out var tracked))
        {
            if (tracked.Uid == r.Uid && tracked.Generation == r.Generation && !tracked.Pending)
            {
                tracked.Last = r;
                return; // this generation was handled (e.g. this event is our own status patch)
            }

            if (tracked.Uid != r.Uid)
            {
                await DeletedAsync(r.Key, cancellationToken).ConfigureAwait(false); // deleted and created again
                tracked = null;
            }
        }

        tracked ??= new Tracked(r.Uid);
        _objects[r.Key] = tracked;
        tracked.Last = r;
        tracked.Pending = false;
        tracked.ConflictKeyId = null;

        string keyId;
        string document;
        try
        {
            (keyId, document) = r.BuildDocument();
            if (_owners.TryGetValue(keyId, out var owner) && owner != r.Key)
            {
                tracked.ConflictKeyId = keyId;
                throw new PolicyRejectedException("spec.keyId", $"key \"{keyId}\" is already governed by KeyReleasePolicy {owner}; one key has one policy");
            }
        }
        catch (PolicyRejectedException ex)
        {
            tracked.Generation = r.Generation;
            await PatchStatusAsync(r, accepted: false, reason: tracked.ConflictKeyId is null ? "Invalid" : "KeyIdConflict", message: Rejected(ex.Message), applied: null, cancellationToken).ConfigureAwait(false);
            return;
        }

        AppliedPolicy applied;
        try
        {
            applied = await _sink.ApplyAsync(keyId, document, r.Author, cancellationToken).ConfigureAwait(false);
        }
        catch (PolicyRejectedException ex)
        {
            tracked.Generation = r.Generation;
            var path = string.IsNullOrEmpty(ex.FieldPath) ? "spec" : "spec." + ex.FieldPath;
            await PatchStatusAsync(r, accepted: false, reason: "Invalid", message: Rejected(path + ": " + ex.Problem), applied: null, cancellationToken).ConfigureAwait(false);
            return;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The broker could not store it now (database down, ...): try again later; say so in status.
            tracked.Pending = true;
            _logger.LogWarning("KeyReleasePolicy {Key}: the policy could not be stored ({Kind}); will retry", r.Key, ex.GetType().Name);
            await PatchStatusAsync(r, accepted: null, reason: "BrokerUnavailable", message: "the broker could not store the policy now; it will try again", applied: null, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (tracked.AppliedKeyId is { } previous && previous != keyId)
        {
            await RemoveKeyAsync(previous, r.Author, cancellationToken).ConfigureAwait(false);
        }

        tracked.AppliedKeyId = keyId;
        tracked.Generation = r.Generation;
        _owners[keyId] = r.Key;
        _pendingRemovals.Remove(keyId);
        await PatchStatusAsync(r, accepted: true, reason: "Applied", message: $"policy version {applied.Version} of key {keyId} is active", applied, cancellationToken).ConfigureAwait(false);
    }

    private static string Rejected(string what) => what + " (the broker keeps the previously accepted version of this resource, if any)";

    private async Task DeletedAsync(string key, CancellationToken cancellationToken)
    {
        if (!_objects.Remove(key, out var tracked) || tracked.AppliedKeyId is not { } keyId)
        {
            return;
        }

        if (_owners.TryGetValue(keyId, out var owner) && owner == key)
        {
            await RemoveKeyAsync(keyId, "k8s:" + key, cancellationToken).ConfigureAwait(false);

            // A resource refused only because this one held the key may now take it.
            foreach (var waiting in _objects.Values.Where(t => t.ConflictKeyId == keyId && t.Last is not null).ToList())
            {
                waiting.Pending = true;
                await ProcessAsync(waiting.Last!, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task RemoveKeyAsync(string keyId, string author, CancellationToken cancellationToken)
    {
        _owners.Remove(keyId);
        try
        {
            await _sink.RemoveAsync(keyId, author, cancellationToken).ConfigureAwait(false);
            _pendingRemovals.Remove(keyId);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            _logger.LogWarning("removing the policy of key {KeyId} failed ({Kind}); will retry", keyId, ex.GetType().Name);
            _pendingRemovals.Add(keyId);
        }
    }

    private async Task RetryPendingAsync(CancellationToken cancellationToken)
    {
        foreach (var keyId in _pendingRemovals.Where(k => !_owners.ContainsKey(k)).ToList())
        {
            await RemoveKeyAsync(keyId, "k8s:watcher", cancellationToken).ConfigureAwait(false);
        }

        foreach (var t in _objects.Values.Where(t => t.Pending && t.Last is not null).ToList())
        {
            await ProcessAsync(t.Last!, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task PatchStatusAsync(KeyReleasePolicyResource r, bool? accepted, string reason, string message, AppliedPolicy? applied, CancellationToken cancellationToken)
    {
        var statusText = accepted switch { true => "True", false => "False", null => "Unknown" };
        var previous = r.AcceptedCondition;
        var previousStatus = previous?["status"] is JsonValue ps && ps.TryGetValue<string>(out var s) ? s : null;
        var since = previousStatus == statusText && previous?["lastTransitionTime"] is JsonValue lt && lt.TryGetValue<string>(out var t)
            ? t
            : _time.GetUtcNow().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        if (message.Length > 4000)
        {
            message = message[..4000];
        }

        var status = new JsonObject
        {
            ["observedGeneration"] = r.Generation,
            ["conditions"] = new JsonArray(new JsonObject
            {
                ["type"] = ConditionType,
                ["status"] = statusText,
                ["reason"] = reason,
                ["message"] = message,
                ["observedGeneration"] = r.Generation,
                ["lastTransitionTime"] = since,
            }),
        };
        if (applied is not null)
        {
            status["activeVersion"] = applied.Version;
            status["activeSha256"] = applied.Sha256;
        }

        var patch = new V1Patch(new JsonObject { ["status"] = status }.ToJsonString(), V1Patch.PatchType.MergePatch);
        try
        {
            await _client.CustomObjects.PatchNamespacedCustomObjectStatusAsync(
                patch, KeyReleasePolicyResource.Group, KeyReleasePolicyResource.Version, r.Namespace, KeyReleasePolicyResource.Plural, r.Name,
                fieldManager: "attestbroker", cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The policy outcome stands; only its report failed (the resource may be gone, or RBAC is missing).
            _logger.LogWarning("KeyReleasePolicy {Key}: status patch failed ({Kind}, {Status})", r.Key, ex.GetType().Name, StatusOf(ex));
        }
    }

    private static int? StatusOf(Exception ex) => ex switch
    {
        HttpOperationException h => (int?)h.Response?.StatusCode,
        KubernetesException k => k.Status?.Code,
        WatchFailedException w => StatusOf(w.InnerException!),
        _ => null,
    };

    private sealed class Tracked(string uid)
    {
        public string Uid { get; } = uid;

        public long Generation { get; set; } = -1;

        /// <summary>The key this resource's accepted policy governs now.</summary>
        public string? AppliedKeyId { get; set; }

        /// <summary>Set when refused only because another resource holds this key.</summary>
        public string? ConflictKeyId { get; set; }

        /// <summary>The sink failed transiently: apply again before the next watch.</summary>
        public bool Pending { get; set; }

        public KeyReleasePolicyResource? Last { get; set; }
    }

    private sealed class GoneException : Exception;

    private sealed class WatchFailedException(Exception inner) : Exception("the watch stream reported an error", inner);
}
