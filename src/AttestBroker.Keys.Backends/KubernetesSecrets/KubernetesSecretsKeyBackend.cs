using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using AttestBroker.Storage;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;

namespace AttestBroker.Keys.Backends.KubernetesSecrets;

/// <summary>Options of <see cref="KubernetesSecretsKeyBackend"/>.</summary>
public sealed class KubernetesSecretsOptions
{
    /// <summary>The broker's namespace: the only one its Role lets it touch.</summary>
    public string Namespace { get; set; } = "attestbroker";

    /// <summary>Secret names are this prefix, '-', and 32 hex of SHA-256(key id) (key ids allow characters names do not).</summary>
    public string NamePrefix { get; set; } = "attestbroker-key";

    /// <summary>Retries after the first attempt for 429, 5xx and network failures.</summary>
    public int MaxRetries { get; set; } = 3;

    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(10);

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Namespace) || Namespace.Length > 63 || !Namespace.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
        {
            throw new ArgumentException("Kubernetes Secrets: Namespace must be a DNS label", nameof(Namespace));
        }

        if (string.IsNullOrWhiteSpace(NamePrefix) || NamePrefix.Length > 200 || !NamePrefix.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '.'))
        {
            throw new ArgumentException("Kubernetes Secrets: NamePrefix must be lowercase letters, digits, - and .", nameof(NamePrefix));
        }

        if (MaxRetries < 0 || RetryBaseDelay < TimeSpan.Zero || MaxRetryDelay < RetryBaseDelay)
        {
            throw new ArgumentException("Kubernetes Secrets: MaxRetries >= 0 and MaxRetryDelay >= RetryBaseDelay >= 0");
        }
    }
}

/// <summary>
/// Model keys wrapped by the broker's KEK (<see cref="IKeyWrapper"/>, AES-256-GCM bound to the key id and KEK
/// version) and kept one Secret each in the broker's namespace, so etcd never holds them in the clear even without
/// a KMS provider. A Secret: type attestbroker.io/wrapped-key, labels app.kubernetes.io/managed-by=attestbroker and
/// attestbroker.io/key-backend=&lt;name&gt;, annotations with the key id, state and times, data wrapped / kek-id /
/// kek-version. Updates replace with the read resourceVersion (optimistic concurrency); a 409 re-reads and applies
/// the change once more. Disable/enable is the state annotation, read afresh on every release.
/// </summary>
public sealed partial class KubernetesSecretsKeyBackend : IKeyBackend, IKeyBackendHealth
{
    public const string DefaultName = "kubernetes-secrets";
    public const string SecretType = "attestbroker.io/wrapped-key";
    public const string ManagedByLabel = "app.kubernetes.io/managed-by";
    public const string BackendLabel = "attestbroker.io/key-backend";
    public const string KeyIdAnnotation = "attestbroker.io/key-id";
    public const string StateAnnotation = "attestbroker.io/state";
    public const string CreatedAnnotation = "attestbroker.io/created-at";
    public const string RotatedAnnotation = "attestbroker.io/rotated-at";
    public const string DisabledAnnotation = "attestbroker.io/disabled-at";
    public const string WrappedField = "wrapped";
    public const string KekIdField = "kek-id";
    public const string KekVersionField = "kek-version";

    private readonly IKubernetes _client;
    private readonly IKeyWrapper _wrapper;
    private readonly KubernetesSecretsOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly ResiliencePipeline _pipeline;
    private readonly SemaphoreSlim _rotation = new(1, 1);

    public KubernetesSecretsKeyBackend(IKubernetes client, IKeyWrapper wrapper, KubernetesSecretsOptions options, TimeProvider? time = null, ILogger<KubernetesSecretsKeyBackend>? logger = null, string name = DefaultName)
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        _wrapper = wrapper ?? throw new ArgumentNullException(nameof(wrapper));
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _time = time ?? TimeProvider.System;
        _log = (ILogger?)logger ?? NullLogger.Instance;
        Name = name;
        _pipeline = BuildPipeline();
    }

    public string Name { get; }

    /// <summary>The Secret name of a key id.</summary>
    public string SecretName(string keyId) =>
        $"{_options.NamePrefix}-{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(keyId)).AsSpan(0, 16))}";

    public async Task<KeyInfo> CreateAsync(string keyId, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        return await KeyRecords.WithRandomKeyAsync(key => StoreAsync(keyId, key, cancellationToken)).ConfigureAwait(false);
    }

    public Task<KeyInfo> ImportAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        KeyRecords.RequireKeyMaterial(key.Span);
        return StoreAsync(keyId, key, cancellationToken);
    }

    public async Task<KeyInfo> GetForReleaseAsync(string keyId, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        KeyRecords.RequireDestination(destination);
        V1Secret secret = await ReadRequiredAsync(keyId, cancellationToken).ConfigureAwait(false);
        KeyInfo info = Info(secret, keyId);
        if (info.State != KeyState.Enabled)
        {
            throw new KeyStoreException(KeyError.Disabled, $"key '{keyId}' is disabled");
        }

        await KeyRecords.UnwrapIntoAsync(destination, () => _wrapper.UnwrapAsync(keyId, Wrapped(secret, keyId), destination, cancellationToken)).ConfigureAwait(false);

        return info;
    }

    public Task<KeyInfo> DisableAsync(string keyId, CancellationToken cancellationToken = default) => SetStateAsync(keyId, KeyState.Disabled, cancellationToken);

    public Task<KeyInfo> EnableAsync(string keyId, CancellationToken cancellationToken = default) => SetStateAsync(keyId, KeyState.Enabled, cancellationToken);

    public async Task<KeyInfo?> GetInfoAsync(string keyId, CancellationToken cancellationToken = default)
    {
        KeyRecords.RequireKeyId(keyId);
        V1Secret? secret = await ReadAsync(keyId, cancellationToken).ConfigureAwait(false);
        return secret is null ? null : Info(secret, keyId);
    }

    public async Task<IReadOnlyList<KeyInfo>> ListAsync(CancellationToken cancellationToken = default) =>
        [.. (await ListSecretsAsync(cancellationToken).ConfigureAwait(false)).Select(s => Info(s, null))];

    /// <summary>
    /// Adds a KEK version (when the KEK source can), rewraps every Secret of this backend under it (replace with the
    /// read resourceVersion; a 409 re-reads and retries), then retires KEK versions no Secret names any more.
    /// </summary>
    public async Task<KekRotationResult> RotateKekAsync(CancellationToken cancellationToken = default)
    {
        await _rotation.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            int target = _wrapper.CanAddVersion
                ? await _wrapper.AddVersionAsync(cancellationToken).ConfigureAwait(false)
                : _wrapper.CurrentVersion;
            int rewrapped = 0;
            foreach (V1Secret listed in await ListSecretsAsync(cancellationToken).ConfigureAwait(false))
            {
                string keyId = listed.Metadata.Annotations[KeyIdAnnotation];
                bool changed = false;
                await UpdateAsync(keyId, listed, async (secret, ct) =>
                {
                    WrappedKey old = Wrapped(secret, keyId);
                    if (old.KekVersion == target)
                    {
                        changed = false;
                        return false;
                    }

                    byte[] plain = GC.AllocateArray<byte>(IKeyBackend.KeyLength, pinned: true);
                    try
                    {
                        await _wrapper.UnwrapAsync(keyId, old, plain, ct).ConfigureAwait(false);
                        WrappedKey next = await _wrapper.WrapAsync(keyId, plain, ct).ConfigureAwait(false);
                        SetWrapped(secret, next);
                        secret.Metadata.Annotations[RotatedAnnotation] = Format(_time.GetUtcNow());
                        changed = true;
                        return true;
                    }
                    finally
                    {
                        CryptographicOperations.ZeroMemory(plain);
                    }
                }, cancellationToken).ConfigureAwait(false);
                if (changed)
                {
                    rewrapped++;
                }
            }

            var inUse = (await ListSecretsAsync(cancellationToken).ConfigureAwait(false))
                .Select(s => Wrapped(s, s.Metadata.Annotations[KeyIdAnnotation]).KekVersion)
                .ToHashSet();
            var retired = await _wrapper.RetireUnusedAsync(target, inUse, cancellationToken).ConfigureAwait(false);
            return new KekRotationResult(target, rewrapped, retired);
        }
        finally
        {
            _rotation.Release();
        }
    }

    /// <summary>Readiness: the API server answers a list of this backend's Secrets (needs the list permission).</summary>
    public async Task<BackendHealth> CheckHealthAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            IReadOnlyList<V1Secret> all = await ListSecretsAsync(cancellationToken).ConfigureAwait(false);
            return BackendHealth.Ok(Name, $"{all.Count} key secret(s) in namespace {_options.Namespace}");
        }
        catch (KeyBackendException e)
        {
            return BackendHealth.Failed(Name, $"{e.Code}: {e.Message}");
        }
    }

    public override string ToString() => $"KubernetesSecretsKeyBackend {{ Name = {Name}, Namespace = {_options.Namespace} }}";

    private async Task<KeyInfo> StoreAsync(string keyId, ReadOnlyMemory<byte> key, CancellationToken cancellationToken)
    {
        WrappedKey wrapped = await _wrapper.WrapAsync(keyId, key, cancellationToken).ConfigureAwait(false);
        var secret = new V1Secret
        {
            ApiVersion = "v1",
            Kind = "Secret",
            Type = SecretType,
            Immutable = false,
            Metadata = new V1ObjectMeta
            {
                Name = SecretName(keyId),
                NamespaceProperty = _options.Namespace,
                Labels = new Dictionary<string, string> { [ManagedByLabel] = "attestbroker", [BackendLabel] = Name },
                Annotations = new Dictionary<string, string>
                {
                    [KeyIdAnnotation] = keyId,
                    [StateAnnotation] = "enabled",
                    [CreatedAnnotation] = Format(_time.GetUtcNow()),
                },
            },
            Data = new Dictionary<string, byte[]>(),
        };
        SetWrapped(secret, wrapped);
        try
        {
            V1Secret created = await CallAsync("create", ct => _client.CoreV1.CreateNamespacedSecretAsync(secret, _options.Namespace, cancellationToken: ct), cancellationToken).ConfigureAwait(false);
            return Info(created, keyId);
        }
        catch (KeyBackendException e) when (e.ServiceStatus == 409)
        {
            throw new KeyStoreException(KeyError.AlreadyExists, $"key '{keyId}' already exists", e);
        }
    }

    private async Task<KeyInfo> SetStateAsync(string keyId, KeyState state, CancellationToken cancellationToken)
    {
        KeyRecords.RequireKeyId(keyId);
        V1Secret secret = await ReadRequiredAsync(keyId, cancellationToken).ConfigureAwait(false);
        V1Secret updated = await UpdateAsync(keyId, secret, (s, _) =>
        {
            string wanted = state == KeyState.Enabled ? "enabled" : "disabled";
            if (s.Metadata.Annotations.TryGetValue(StateAnnotation, out string? now) && now == wanted)
            {
                return Task.FromResult(false);
            }

            s.Metadata.Annotations[StateAnnotation] = wanted;
            if (state == KeyState.Disabled)
            {
                s.Metadata.Annotations[DisabledAnnotation] = Format(_time.GetUtcNow());
            }
            else
            {
                s.Metadata.Annotations.Remove(DisabledAnnotation);
            }

            return Task.FromResult(true);
        }, cancellationToken).ConfigureAwait(false);
        return Info(updated, keyId);
    }

    /// <summary>
    /// Applies <paramref name="change"/> and replaces the Secret with the resourceVersion it was read at; on 409
    /// re-reads and applies the change once more; a second conflict is <see cref="BackendError.Conflict"/>.
    /// </summary>
    private async Task<V1Secret> UpdateAsync(string keyId, V1Secret secret, Func<V1Secret, CancellationToken, Task<bool>> change, CancellationToken cancellationToken)
    {
        for (int attempt = 0; ; attempt++)
        {
            secret.Metadata.Annotations ??= new Dictionary<string, string>();
            if (!await change(secret, cancellationToken).ConfigureAwait(false))
            {
                return secret;
            }

            V1Secret current = secret;
            try
            {
                return await CallAsync("replace", ct => _client.CoreV1.ReplaceNamespacedSecretAsync(current, current.Metadata.Name, _options.Namespace, cancellationToken: ct), cancellationToken).ConfigureAwait(false);
            }
            catch (KeyBackendException e) when (e.ServiceStatus == 409)
            {
                if (attempt == 1)
                {
                    throw new KeyBackendException(BackendError.Conflict, Name, $"the Secret of key '{keyId}' changed under two updates in a row; try again", e, 409);
                }

                LogConflict(_log, current.Metadata.Name);
                secret = await ReadRequiredAsync(keyId, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task<V1Secret> ReadRequiredAsync(string keyId, CancellationToken cancellationToken) =>
        await ReadAsync(keyId, cancellationToken).ConfigureAwait(false)
        ?? throw new KeyStoreException(KeyError.NotFound, $"key '{keyId}' does not exist");

    private async Task<V1Secret?> ReadAsync(string keyId, CancellationToken cancellationToken)
    {
        try
        {
            V1Secret s = await CallAsync("read", ct => _client.CoreV1.ReadNamespacedSecretAsync(SecretName(keyId), _options.Namespace, cancellationToken: ct), cancellationToken).ConfigureAwait(false);
            return Owned(s) && s.Metadata.Annotations.TryGetValue(KeyIdAnnotation, out string? id) && id == keyId ? s : null;
        }
        catch (KeyBackendException e) when (e.ServiceStatus == 404)
        {
            return null;
        }
    }

    private async Task<IReadOnlyList<V1Secret>> ListSecretsAsync(CancellationToken cancellationToken)
    {
        var all = new List<V1Secret>();
        string? next = null;
        do
        {
            string? page = next;
            V1SecretList list = await CallAsync("list", ct => _client.CoreV1.ListNamespacedSecretAsync(_options.Namespace,
                labelSelector: $"{ManagedByLabel}=attestbroker,{BackendLabel}={Name}", continueParameter: page, limit: 500, cancellationToken: ct), cancellationToken).ConfigureAwait(false);
            all.AddRange(list.Items.Where(s => Owned(s) && s.Metadata.Annotations?.ContainsKey(KeyIdAnnotation) == true));
            next = list.Metadata?.ContinueProperty;
        }
        while (!string.IsNullOrEmpty(next));
        return all;
    }

    private bool Owned(V1Secret s) =>
        s.Type == SecretType && s.Metadata?.Labels is { } l && l.TryGetValue(BackendLabel, out string? b) && b == Name && s.Metadata.Annotations is not null;

    private WrappedKey Wrapped(V1Secret s, string keyId)
    {
        if (s.Data is null || !s.Data.TryGetValue(WrappedField, out byte[]? wrapped) || !s.Data.TryGetValue(KekIdField, out byte[]? kekId)
            || !s.Data.TryGetValue(KekVersionField, out byte[]? version)
            || !int.TryParse(Encoding.ASCII.GetString(version), NumberStyles.None, CultureInfo.InvariantCulture, out int v))
        {
            throw new KeyBackendException(BackendError.BadResponse, Name, $"the Secret of key '{keyId}' lacks {WrappedField}, {KekIdField} or a numeric {KekVersionField}");
        }

        return new WrappedKey(wrapped, Encoding.ASCII.GetString(kekId), v);
    }

    private static void SetWrapped(V1Secret s, WrappedKey w)
    {
        s.Data ??= new Dictionary<string, byte[]>();
        s.Data[WrappedField] = w.Ciphertext;
        s.Data[KekIdField] = Encoding.ASCII.GetBytes(w.KekId);
        s.Data[KekVersionField] = Encoding.ASCII.GetBytes(w.KekVersion.ToString(CultureInfo.InvariantCulture));
    }

    private KeyInfo Info(V1Secret s, string? keyId)
    {
        IDictionary<string, string> a = s.Metadata.Annotations;
        string id = keyId ?? a[KeyIdAnnotation];
        WrappedKey w = Wrapped(s, id);
        KeyState state = a.TryGetValue(StateAnnotation, out string? st) && st == "enabled" ? KeyState.Enabled : KeyState.Disabled;
        return new KeyInfo(id, state, Name, w.KekId, w.KekVersion, Time(a, CreatedAnnotation) ?? DateTimeOffset.UnixEpoch, Time(a, RotatedAnnotation),
            state == KeyState.Disabled ? Time(a, DisabledAnnotation) : null);
    }

    private static DateTimeOffset? Time(IDictionary<string, string> a, string name) =>
        a.TryGetValue(name, out string? v) && DateTimeOffset.TryParse(v, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out DateTimeOffset t) ? t : null;

    private static string Format(DateTimeOffset t) => DateTimeOffset.FromUnixTimeMilliseconds(t.ToUnixTimeMilliseconds()).ToString("O", CultureInfo.InvariantCulture);

    private async Task<T> CallAsync<T>(string operation, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            return await _pipeline.ExecuteAsync(async ct => await call(ct).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (HttpOperationException e)
        {
            int status = (int)(e.Response?.StatusCode ?? 0);
            BackendError error = status == 0 ? BackendError.Unavailable : KeyBackendException.FromStatus(status);
            throw new KeyBackendException(error, Name, $"Kubernetes {operation} of a key Secret in {_options.Namespace} answered HTTP {status}: {KeyRecords.Cause(e.Response?.ReasonPhrase)}", e, status == 0 ? null : status);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException or TimeoutException)
        {
            throw new KeyBackendException(BackendError.Unavailable, Name, $"Kubernetes {operation} of a key Secret failed after {_options.MaxRetries + 1} attempts: {KeyRecords.Cause(e.Message)}", e);
        }
    }

    private ResiliencePipeline BuildPipeline()
    {
        var builder = new ResiliencePipelineBuilder { TimeProvider = _time };
        if (_options.MaxRetries > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = _options.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = _options.RetryBaseDelay,
                MaxDelay = _options.MaxRetryDelay,
                ShouldHandle = new PredicateBuilder()
                    .Handle<HttpRequestException>()
                    .Handle<HttpOperationException>(e => e.Response?.StatusCode is HttpStatusCode.TooManyRequests || (int)(e.Response?.StatusCode ?? 0) >= 500),
                DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Exception as HttpOperationException)),
                OnRetry = args =>
                {
                    LogRetrying(_log, args.AttemptNumber + 1, args.Outcome.Exception?.GetType().Name ?? "?", args.RetryDelay);
                    return default;
                },
            });
        }

        return builder.Build();
    }

    private TimeSpan? RetryAfter(HttpOperationException? e)
    {
        if (e?.Response?.Headers is { } headers && headers.TryGetValue("Retry-After", out IEnumerable<string>? values)
            && int.TryParse(values.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out int seconds))
        {
            TimeSpan wait = TimeSpan.FromSeconds(seconds);
            return wait > _options.MaxRetryDelay ? _options.MaxRetryDelay : wait;
        }

        return null;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Kubernetes Secret {Secret} changed since it was read (409); reading it again")]
    private static partial void LogConflict(ILogger logger, string secret);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Kubernetes API request failed ({Cause}); retry {Attempt} in {Delay}")]
    private static partial void LogRetrying(ILogger logger, int attempt, string cause, TimeSpan delay);
}
