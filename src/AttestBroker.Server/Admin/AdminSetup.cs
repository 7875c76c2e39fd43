using System.Security.Cryptography;
using AttestBroker.Protocol;
using AttestBroker.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Server.Admin;

/// <summary>
/// The admin API's start-up state, made before the host is built so that a bad key file or setting stops the start
/// with a message: the trusted token issuers (the local <c>admin-signing.key</c>, PEM files, an OIDC issuer) and the
/// audit-head signing key (<c>audit-head.key</c>).
/// </summary>
public sealed class AdminSetup : IDisposable
{
    public const string AuditHeadKeyFile = "audit-head.key";

    private readonly List<IDisposable> _owned;

    private AdminSetup(AdminOptions options, List<IAdminKeySource> sources, ECDsa headKey, List<IDisposable> owned, TimeProvider time)
    {
        Options = options;
        Sources = sources;
        HeadKey = headKey;
        _owned = owned;
        Time = time;
        HeadKeyId = AuditChain.SignerKeyId(headKey);
        HeadPublicKeyPem = headKey.ExportSubjectPublicKeyInfoPem();
    }

    public AdminOptions Options { get; }

    /// <summary>Trusted issuers, each with its keys.</summary>
    public IReadOnlyList<IAdminKeySource> Sources { get; }

    /// <summary>The audit-head signing key (private; never leaves the process).</summary>
    internal ECDsa HeadKey { get; }

    public string HeadKeyId { get; }

    /// <summary>The audit-head public key, PEM SubjectPublicKeyInfo (for <c>audit verify --head-key</c>).</summary>
    public string HeadPublicKeyPem { get; }

    public TimeProvider Time { get; }

    /// <summary>
    /// Loads or creates the keys; every failure is a <see cref="BrokerStartupException"/> naming the setting or file.
    /// The admin-signing and audit-head keys come from <c>Broker:Secrets:AdminSigningKeyFile</c> /
    /// <c>AuditHeadKeyFile</c> when set (existing files, never created), else from the data directory (made on first
    /// use). With <paramref name="sharedSecretsRequired"/> (a PostgreSQL broker without AllowGeneratedSecrets), a key
    /// that would be made per replica stops the start: the audit-head key always (one key signs the shared chain's
    /// heads), the admin-signing key when <see cref="AdminOptions.LocalSigner"/> is on.
    /// </summary>
    public static AdminSetup Create(AdminOptions options, string dataDirectory, TimeProvider time, HttpMessageHandler? oidcHandler = null, BrokerSecretsOptions? secrets = null, bool sharedSecretsRequired = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        var adminSigningFile = string.IsNullOrWhiteSpace(secrets?.AdminSigningKeyFile) ? null : secrets.AdminSigningKeyFile;
        var auditHeadFile = string.IsNullOrWhiteSpace(secrets?.AuditHeadKeyFile) ? null : secrets.AuditHeadKeyFile;
        if (sharedSecretsRequired)
        {
            var missing = new List<string>();
            if (auditHeadFile is null)
            {
                missing.Add("the audit-head key (Broker:Secrets:AuditHeadKeyFile)");
            }

            if (options.LocalSigner && adminSigningFile is null)
            {
                missing.Add("the local admin signing key (Broker:Secrets:AdminSigningKeyFile, or Broker:Admin:LocalSigner=false)");
            }

            if (missing.Count > 0)
            {
                throw new BrokerStartupException(
                    "a PostgreSQL-backed broker must use secrets shared by every replica, but these would be generated locally: " + string.Join("; ", missing) +
                    ". Give them (see docs/server.md, Replicas), or set Broker:Secrets:AllowGeneratedSecrets=true for a single replica");
            }
        }

        var owned = new List<IDisposable>();
        var sources = new List<IAdminKeySource>();
        try
        {
            if (options.LocalSigner)
            {
                var local = adminSigningFile is not null
                    ? AdminKeyFiles.LoadExistingP256(adminSigningFile, "Broker:Secrets:AdminSigningKeyFile")
                    : AdminTokens.LoadOrCreateLocalKey(dataDirectory);
                var source = new StaticAdminKeySource(AdminTokens.LocalIssuer, [AdminVerificationKey.FromEcdsa(local)]);
                owned.Add(source);
                sources.Add(source);
            }

            if (options.PublicKeyFiles.Count > 0)
            {
                var keys = new List<JwsVerificationKey>();
                foreach (var file in options.PublicKeyFiles)
                {
                    try
                    {
                        keys.Add(AdminVerificationKey.FromPemFile(file));
                    }
                    catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException)
                    {
                        keys.ForEach(k => k.Dispose());
                        throw new BrokerStartupException($"Broker:Admin:PublicKeyFiles: {ex.Message}", ex);
                    }
                }

                var source = new StaticAdminKeySource(options.PublicKeyIssuer!, keys);
                owned.Add(source);
                sources.Add(source);
            }

            if (options.OidcIssuer is { } issuer)
            {
                var oidc = new OidcKeySource(issuer, TimeSpan.FromSeconds(options.OidcTimeoutSeconds), TimeSpan.FromSeconds(options.OidcKeysLifetimeSeconds), time, oidcHandler);
                owned.Add(oidc);
                sources.Add(oidc);
            }

            var headKey = auditHeadFile is not null
                ? AdminKeyFiles.LoadExistingP256(auditHeadFile, "Broker:Secrets:AuditHeadKeyFile")
                : AdminKeyFiles.LoadOrCreateP256(Path.Combine(dataDirectory, AuditHeadKeyFile));
            owned.Add(headKey);
            return new AdminSetup(options, sources, headKey, owned, time);
        }
        catch
        {
            owned.ForEach(o => o.Dispose());
            throw;
        }
    }

    /// <summary>Registers the admin services and the periodic audit-head signer.</summary>
    public void Register(IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddSingleton(this);
        services.AddSingleton<AdminService>();
        services.AddHostedService(sp => new AuditHeadService(sp.GetRequiredService<IBrokerStorage>(), this, sp.GetRequiredService<ILogger<AuditHeadService>>()));
    }

    public void Dispose() => _owned.ForEach(o => o.Dispose());
}

/// <summary>
/// Signs the audit chain head with <c>audit-head.key</c> every <c>Broker:Admin:AuditHeadIntervalSeconds</c> (when the
/// chain grew), once at start and once at a clean stop.
/// </summary>
internal sealed partial class AuditHeadService : IHostedService, IAsyncDisposable
{
    private readonly IBrokerStorage _storage;
    private readonly AdminSetup _setup;
    private readonly ILogger<AuditHeadService> _log;
    private AuditHeadSigner? _signer;

    public AuditHeadService(IBrokerStorage storage, AdminSetup setup, ILogger<AuditHeadService> log)
    {
        _storage = storage;
        _setup = setup;
        _log = log;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _signer = new AuditHeadSigner(_storage.Audit, _setup.HeadKey, TimeSpan.FromSeconds(_setup.Options.AuditHeadIntervalSeconds), TimeProvider.System, ex => LogSignFailed(_log, ex.GetType().Name));
        await SignAsync(cancellationToken).ConfigureAwait(false);
        _signer.Start();
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_signer is not null)
        {
            await SignAsync(cancellationToken).ConfigureAwait(false);
            await _signer.DisposeAsync().ConfigureAwait(false);
            _signer = null;
        }
    }

    private async Task SignAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _signer!.SignIfAdvancedAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StorageException or CryptographicException or OperationCanceledException)
        {
            LogSignFailed(_log, ex.GetType().Name);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_signer is not null)
        {
            await _signer.DisposeAsync().ConfigureAwait(false);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "signing the audit chain head failed ({Error}); will retry at the next interval")]
    private static partial void LogSignFailed(ILogger logger, string error);
}
