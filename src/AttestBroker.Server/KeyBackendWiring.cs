using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using AttestBroker.Keys;
using AttestBroker.Keys.Backends;
using AttestBroker.Keys.Backends.AzureKeyVault;
using AttestBroker.Keys.Backends.KubernetesSecrets;
using AttestBroker.Keys.Backends.Vault;
using Azure.Core;
using Azure.Core.Pipeline;
using k8s;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Server;

/// <summary>Makes the Azure.Identity credential of a Key Vault backend. The default uses the backend's Credential setting.</summary>
public interface IAzureCredentialFactory
{
    TokenCredential Create(string backend, KeyVaultKeyClientOptions options);
}

/// <summary>The credential the settings name (Azure.Identity: default, managed identity, workload identity, client secret from a file).</summary>
public sealed class SettingsAzureCredentialFactory : IAzureCredentialFactory
{
    public TokenCredential Create(string backend, KeyVaultKeyClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.CreateCredential();
    }
}

/// <summary>
/// The broker's key backends at run time: the embedded keystore plus every "Broker:KeyBackends:&lt;name&gt;", behind
/// one <see cref="KeyBackendRouter"/>; and their health for /readyz, cached for HealthCacheSeconds so that a probe
/// storm does not reach Vault or Key Vault more than once per period. Owns the clients, HTTP handlers and RSA keys it
/// made.
/// </summary>
public sealed class BrokerKeyBackends : IDisposable
{
    private readonly List<IDisposable> _owned;
    private readonly IReadOnlyList<(IKeyBackend Backend, string Type)> _external;
    private readonly TimeProvider _time;
    private readonly TimeSpan _healthLifetime;
    private readonly SemaphoreSlim _healthLock = new(1, 1);
    private (DateTimeOffset At, IReadOnlyList<BackendHealth> Results)? _health;

    private BrokerKeyBackends(KeyBackendRouter router, EmbeddedKeyStore embedded, IReadOnlyList<(IKeyBackend, string)> external, List<IDisposable> owned, TimeProvider time, TimeSpan healthLifetime)
    {
        Router = router;
        Embedded = embedded;
        _external = external;
        _owned = owned;
        _time = time;
        _healthLifetime = healthLifetime;
    }

    public KeyBackendRouter Router { get; }

    /// <summary>The embedded keystore ("embedded").</summary>
    public EmbeddedKeyStore Embedded { get; }

    /// <summary>The configured external backends: name and type.</summary>
    public IReadOnlyList<(string Name, string Type)> External => [.. _external.Select(e => (e.Backend.Name, e.Type))];

    /// <summary>Builds every backend the options name. Nothing is contacted here; a bad setting is a <see cref="BrokerStartupException"/>.</summary>
    internal static BrokerKeyBackends Create(KeyBackendsOptions options, BrokerData data, IKubernetes? kubernetes, IAzureCredentialFactory credentials, ILoggerFactory loggers, TimeProvider time)
    {
        var owned = new List<IDisposable>();
        var routed = new List<RoutedBackend>();
        var external = new List<(IKeyBackend, string)>();
        try
        {
            var sharesKek = options.Backends.Values.Any(s => s.Type == KeyBackendSettings.KubernetesSecrets);
            IKeyWrapper? sharedKek = null;
            EmbeddedKeyStore embedded;
            if (sharesKek)
            {
                var kek = data.Kek ?? throw new BrokerStartupException("kubernetes-secrets key backends need the broker's KEK (Broker:Secrets)");
                sharedKek = new AesGcmKeyWrapper(kek);
                MarkKekShared(kek, options);
                embedded = new EmbeddedKeyStore(data.Storage.Keys, new KekWrapperView(sharedKek, mayAdd: true, mayRetire: false), time);
            }
            else
            {
                embedded = data.Keys;
            }

            routed.Add(new RoutedBackend(embedded, SharesKek: sharesKek));
            foreach (var (name, s) in options.Backends.OrderBy(b => b.Key, StringComparer.Ordinal))
            {
                var where = $"Broker:KeyBackends:{name}";
                try
                {
                    var (backend, route) = s.Type switch
                    {
                        KeyBackendSettings.VaultTransit => Vault(name, s, data, owned, loggers, time),
                        KeyBackendSettings.AzureKeyVault => Envelope(name, s, data, owned, credentials, time),
                        KeyBackendSettings.AzureSkr => Skr(name, s, data, owned, credentials, time),
                        _ => Secrets(name, s, kubernetes, sharedKek!, loggers, time),
                    };
                    routed.Add(route);
                    external.Add((backend, s.Type!));
                }
                catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException or CryptographicException or FormatException or InvalidOperationException)
                {
                    throw new BrokerStartupException($"{where}: {ex.Message}", ex);
                }
            }

            var router = new KeyBackendRouter(data.Storage.Keys, routed, options.Default, EmbeddedKeyStore.DefaultBackendName, sharedKek);
            return new BrokerKeyBackends(router, embedded, external, owned, time, TimeSpan.FromSeconds(options.HealthCacheSeconds));
        }
        catch
        {
            foreach (var d in owned)
            {
                d.Dispose();
            }

            throw;
        }
    }

    /// <summary>Name of the file, in a KEK directory, that says Kubernetes Secrets backends also wrap keys under that KEK.</summary>
    public const string KekSharedMarkerFile = "shared-with-kubernetes-secrets";

    /// <summary>
    /// Leaves a marker beside a KEK kept in a directory, naming the kubernetes-secrets backends that share it, so that
    /// an offline 'admin key rotate --data-dir' (which sees only the database's keys) refuses rather than retiring a KEK
    /// version a Secret still uses. A read-only directory (a mounted Secret) cannot be rotated offline either.
    /// </summary>
    private static void MarkKekShared(KekRing kek, KeyBackendsOptions options)
    {
        if (kek is not FileKekSource file)
        {
            return;
        }

        var names = string.Join('\n', options.Backends.Where(b => b.Value.Type == KeyBackendSettings.KubernetesSecrets).Select(b => b.Key).Order(StringComparer.Ordinal)) + "\n";
        var path = Path.Combine(file.DirectoryPath, KekSharedMarkerFile);
        try
        {
            if (!File.Exists(path) || File.ReadAllText(path) != names)
            {
                File.WriteAllText(path, names);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Read-only KEK directory: nothing offline can add or retire versions there.
        }
    }

    /// <summary>
    /// Health of every configured external backend (the embedded one is readiness's "keystore" check), each check
    /// bounded by <paramref name="timeout"/>; one answer is reused for HealthCacheSeconds, and concurrent probes share
    /// one round of checks.
    /// </summary>
    public async Task<IReadOnlyList<BackendHealth>> HealthAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (_external.Count == 0)
        {
            return [];
        }

        if (Fresh() is { } cached)
        {
            return cached;
        }

        await _healthLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Fresh() is { } again)
            {
                return again;
            }

            var results = await Task.WhenAll(_external.Select(e => CheckAsync(e.Backend, timeout, cancellationToken))).ConfigureAwait(false);
            _health = (_time.GetUtcNow(), results);
            return results;
        }
        finally
        {
            _healthLock.Release();
        }
    }

    public void Dispose()
    {
        foreach (var d in _owned)
        {
            d.Dispose();
        }

        _healthLock.Dispose();
    }

    private IReadOnlyList<BackendHealth>? Fresh() =>
        _health is { } h && _time.GetUtcNow() - h.At < _healthLifetime ? h.Results : null;

    private static async Task<BackendHealth> CheckAsync(IKeyBackend backend, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (backend is not IKeyBackendHealth health)
        {
            return BackendHealth.Ok(backend.Name, "no health check");
        }

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            var result = await health.CheckHealthAsync(limit.Token).ConfigureAwait(false);
            // The clients name themselves by kind; readiness names the configured backend.
            return result with { Backend = backend.Name };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return BackendHealth.Failed(backend.Name, $"backend-unavailable: no answer within {timeout.TotalSeconds:0.#} s");
        }
        catch (KeyBackendException e)
        {
            return BackendHealth.Failed(backend.Name, $"{e.Code}: {e.Message}");
        }
        catch (KeyStoreException e)
        {
            return BackendHealth.Failed(backend.Name, $"keystore: {e.Error}");
        }
    }

    private static (IKeyBackend, RoutedBackend) Vault(string name, KeyBackendSettings s, BrokerData data, List<IDisposable> owned, ILoggerFactory loggers, TimeProvider time)
    {
        var kubernetesAuth = s.Auth.Trim().Equals("kubernetes", StringComparison.OrdinalIgnoreCase);
        var options = new VaultTransitOptions
        {
            Address = new Uri(s.Address!),
            Mount = s.Mount,
            KeyName = s.Key!,
            Namespace = string.IsNullOrWhiteSpace(s.Namespace) ? null : s.Namespace,
            AuthMethod = kubernetesAuth ? VaultAuthMethod.Kubernetes : VaultAuthMethod.Token,
            TokenFile = kubernetesAuth ? null : s.TokenFile,
            KubernetesRole = s.KubernetesRole,
            KubernetesAuthMount = s.KubernetesAuthMount,
            ServiceAccountTokenPath = s.JwtFile,
            BindKeyIdAsContext = s.BindKeyIdAsContext,
            AttemptTimeout = TimeSpan.FromSeconds(s.AttemptTimeoutSeconds),
            MaxRetries = s.MaxRetries,
            RetryBaseDelay = TimeSpan.FromMilliseconds(s.RetryDelayMilliseconds),
            MaxRetryDelay = TimeSpan.FromMilliseconds(Math.Max(s.RetryDelayMilliseconds, 10_000)),
        };
        var http = new HttpClient(Handler(s.CaCertificateFile, owned));
        owned.Add(http);
        var client = new VaultTransitClient(options, http, loggers.CreateLogger<VaultTransitClient>(), time);
        owned.Add(client);
        var backend = new VaultTransitKeyBackend(client, data.Storage.Keys, time, name);
        Func<CancellationToken, Task<KekRotationResult>> rotate = s.RotateInVault ? backend.RotateKekAsync : backend.RewrapToLatestAsync;
        return (backend, new RoutedBackend(backend, Rotate: rotate));
    }

    private static KeyVaultKeyClient KeyVaultClient(string name, KeyBackendSettings s, List<IDisposable> owned, IAzureCredentialFactory credentials)
    {
        var options = new KeyVaultKeyClientOptions
        {
            VaultUri = new Uri(s.VaultUri!),
            ApiVersion = s.ApiVersion,
            Credential = s.Credential.Trim().ToLowerInvariant() switch
            {
                "managed-identity" => AzureCredentialKind.ManagedIdentity,
                "workload-identity" => AzureCredentialKind.WorkloadIdentity,
                "client-secret" => AzureCredentialKind.ClientSecret,
                _ => AzureCredentialKind.Default,
            },
            TenantId = s.TenantId,
            ClientId = s.ClientId,
            ClientSecretFile = s.ClientSecretFile,
        };
        options.Retry.MaxRetries = s.MaxRetries;
        options.Retry.Delay = TimeSpan.FromMilliseconds(s.RetryDelayMilliseconds);
        options.Retry.MaxDelay = TimeSpan.FromMilliseconds(Math.Max(s.RetryDelayMilliseconds, 10_000));
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(s.AttemptTimeoutSeconds);
        if (s.CaCertificateFile is not null)
        {
            options.Transport = new HttpClientTransport(Handler(s.CaCertificateFile, owned));
        }

        options.Validate();
        return new KeyVaultKeyClient(options, credentials.Create(name, options), name);
    }

    private static (IKeyBackend, RoutedBackend) Envelope(string name, KeyBackendSettings s, BrokerData data, List<IDisposable> owned, IAzureCredentialFactory credentials, TimeProvider time)
    {
        var backend = new KeyVaultEnvelopeKeyBackend(KeyVaultClient(name, s, owned, credentials), data.Storage.Keys, s.WrappingKey!, s.RotateInVault, time, name);
        return (backend, new RoutedBackend(backend));
    }

    private static (IKeyBackend, RoutedBackend) Skr(string name, KeyBackendSettings s, BrokerData data, List<IDisposable> owned, IAzureCredentialFactory credentials, TimeProvider time)
    {
        var policy = File.ReadAllText(s.ReleasePolicyFile!);
        if (!JsonText.IsObject(policy))
        {
            throw new ArgumentException($"ReleasePolicyFile {s.ReleasePolicyFile} is not a JSON object (Key Vault's release policy)");
        }

        var rsa = ReadRsaPrivateKey(s.WrappingKeyFile!);
        owned.Add(rsa);
        X509Certificate2Collection? roots = null;
        if (s.ReleaseTrustedRootsFile is { } rootsFile)
        {
            roots = [];
            roots.ImportFromPemFile(rootsFile);
            if (roots.Count == 0)
            {
                throw new ArgumentException($"ReleaseTrustedRootsFile {rootsFile} holds no PEM certificate");
            }
        }

        var release = new SecureKeyReleaseOptions
        {
            Encryption = s.Encryption,
            TrustedRoots = roots,
            RevocationMode = s.ReleaseRevocation.Trim().ToLowerInvariant() switch
            {
                "offline" => X509RevocationMode.Offline,
                "none" => X509RevocationMode.NoCheck,
                _ => X509RevocationMode.Online,
            },
        };
        var backend = new KeyVaultSecureKeyReleaseBackend(KeyVaultClient(name, s, owned, credentials), data.Storage.Keys, rsa, policy,
            brokerTokenSource: null, release, s.KeyNamePrefix, time, name);
        return (backend, new RoutedBackend(backend));
    }

    private static (IKeyBackend, RoutedBackend) Secrets(string name, KeyBackendSettings s, IKubernetes? kubernetes, IKeyWrapper sharedKek, ILoggerFactory loggers, TimeProvider time)
    {
        if (kubernetes is null)
        {
            throw new ArgumentException("no Kubernetes API client (in-cluster, or Broker:Kubernetes:Kubeconfig)");
        }

        var options = new KubernetesSecretsOptions
        {
            Namespace = s.Namespace!,
            MaxRetries = s.MaxRetries,
            RetryBaseDelay = TimeSpan.FromMilliseconds(s.RetryDelayMilliseconds),
            MaxRetryDelay = TimeSpan.FromMilliseconds(Math.Max(s.RetryDelayMilliseconds, 10_000)),
        };

        // Rewraps under the current KEK only: adding and retiring KEK versions is the KEK rotation's (KeyBackendRouter).
        var backend = new KubernetesSecretsKeyBackend(kubernetes, new KekWrapperView(sharedKek, mayAdd: false, mayRetire: false), options, time,
            loggers.CreateLogger<KubernetesSecretsKeyBackend>(), name);
        return (backend, new RoutedBackend(backend, KeepsRecords: false, SharesKek: true));
    }

    /// <summary>The broker's RSA private key (PKCS#1 or PKCS#8 PEM); the file's bytes are zeroed after import.</summary>
    private static RSA ReadRsaPrivateKey(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var chars = new char[bytes.Length];
        var rsa = RSA.Create();
        try
        {
            var n = Encoding.ASCII.GetChars(bytes, chars);
            try
            {
                rsa.ImportFromPem(chars.AsSpan(0, n));
                // A public-key PEM imports too; only a private key exports as PKCS#8.
                CryptographicOperations.ZeroMemory(rsa.ExportPkcs8PrivateKey());
            }
            catch (Exception ex) when (ex is ArgumentException or CryptographicException)
            {
                throw new ArgumentException($"WrappingKeyFile {path} holds no RSA private key PEM (PKCS#1 or PKCS#8)", ex);
            }

            return rsa.KeySize >= 2048 ? rsa : throw new ArgumentException($"WrappingKeyFile {path}: the RSA key must have at least 2048 bits");
        }
        catch
        {
            rsa.Dispose();
            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
            Array.Clear(chars);
        }
    }

    /// <summary>An HTTP handler trusting the system roots, or only the PEM certificates in <paramref name="caFile"/> when given.</summary>
    private static SocketsHttpHandler Handler(string? caFile, List<IDisposable> owned)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        owned.Add(handler);
        if (caFile is null)
        {
            return handler;
        }

        var roots = new X509Certificate2Collection();
        roots.ImportFromPemFile(caFile);
        if (roots.Count == 0)
        {
            throw new ArgumentException($"CaCertificateFile {caFile} holds no PEM certificate");
        }

        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
        {
            if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
            {
                return false;
            }

            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(roots);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return chain.Build(leaf);
        };
        return handler;
    }
}
