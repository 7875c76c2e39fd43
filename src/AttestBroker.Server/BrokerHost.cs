using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Threading.RateLimiting;
using AttestBroker.Evidence;
using AttestBroker.Keys;
using AttestBroker.Kubernetes;
using AttestBroker.Storage;
using AttestBroker.Verification;
using AttestBroker.Verification.Collateral;
using AttestBroker.Verification.Snp;
using AttestBroker.Verification.Tdx;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace AttestBroker.Server;

/// <summary>
/// A configured broker: ASP.NET Core on Kestrel (HTTPS unless plain HTTP is explicitly allowed), over a data
/// directory. <see cref="CreateAsync"/> validates the options, opens storage, loads keys and policies; then
/// <see cref="StartAsync"/> or <see cref="RunAsync"/>.
/// </summary>
public sealed partial class BrokerHost : IAsyncDisposable
{
    public const string RateLimitPolicy = "per-client";

    private readonly List<IDisposable> _disposables;

    private BrokerHost(WebApplication app, BrokerData data, List<IDisposable> disposables)
    {
        App = app;
        Data = data;
        _disposables = disposables;
    }

    public WebApplication App { get; }

    public BrokerData Data { get; }

    /// <summary>The bound addresses (after start), e.g. https://127.0.0.1:43121.</summary>
    public IReadOnlyList<Uri> Addresses =>
        App.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.Select(a => new Uri(a)).ToList() ?? [];

    /// <summary>
    /// Builds the broker from configuration: appsettings.json, environment variables, <paramref name="args"/>, then
    /// <paramref name="settings"/> (highest precedence; "Broker:Port" etc.). <paramref name="time"/> defaults to the system clock.
    /// </summary>
    public static async Task<BrokerHost> CreateAsync(string[] args, IEnumerable<KeyValuePair<string, string?>>? settings = null, TimeProvider? time = null, Action<WebApplicationBuilder>? configure = null, CancellationToken cancellationToken = default)
    {
        time ??= TimeProvider.System;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = Directory.GetCurrentDirectory() });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        var section = builder.Configuration.GetSection(BrokerOptions.SectionName);
        var options = new BrokerOptions();
        section.Bind(options);
        var validation = new BrokerOptionsValidator().Validate(null, options);
        if (validation.Failed)
        {
            throw new BrokerStartupException("invalid configuration: " + string.Join("; ", validation.Failures));
        }

        var keyBackends = KeyBackendsOptions.Read(section);
        var disposables = new List<IDisposable>();
        var data = await BrokerData.OpenAsync(options, time, cancellationToken);
        try
        {
            var secret = data.ReadNonceSecret();
            NonceService nonces;
            try
            {
                nonces = new NonceService(secret, time, TimeSpan.FromSeconds(options.NonceLifetimeSeconds));
            }
            finally
            {
                CryptographicOperations.ZeroMemory(secret);
            }

            disposables.Add(nonces);
            var signer = data.LoadTokenSigner();
            disposables.Add(signer);
            var verifiers = BuildVerifiers(options, disposables, time, data.Storage.Collateral);
            var secrets = options.Secrets ?? new BrokerSecretsOptions();
            var admin = Admin.AdminSetup.Create(options.Admin, data.Directory, time, secrets: secrets, sharedSecretsRequired: (options.Storage ?? new BrokerStorageOptions()).IsPostgres && !secrets.AllowGeneratedSecrets);
            disposables.Add(admin);
            await data.LoadPolicyDirectoryAsync(time.GetUtcNow(), cancellationToken);
            var kubernetesClient = BrokerKubernetes.CreateClient(options, keyBackends.NeedsKubernetes);
            if (kubernetesClient is not null)
            {
                disposables.Add(kubernetesClient);
            }

            var certificate = LoadCertificate(options, time);
            if (certificate is not null)
            {
                disposables.Add(certificate);
            }

            builder.WebHost.ConfigureKestrel(k =>
            {
                k.AddServerHeader = false;
                k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
                void Endpoint(ListenOptions l)
                {
                    if (certificate is not null)
                    {
                        l.UseHttps(certificate);
                    }
                }

                if (options.ListenAddress == "localhost")
                {
                    k.ListenLocalhost(options.Port, Endpoint);
                }
                else
                {
                    k.Listen(IPAddress.Parse(options.ListenAddress), options.Port, Endpoint);
                }
            });

            var services = builder.Services;
            services.AddSingleton<IValidateOptions<BrokerOptions>, BrokerOptionsValidator>();
            services.AddOptions<BrokerOptions>().Bind(section).ValidateOnStart();
            services.AddSingleton(data.Storage);
            services.AddSingleton(sp => BrokerKeyBackends.Create(keyBackends, data, kubernetesClient, sp.GetService<IAzureCredentialFactory>() ?? new SettingsAzureCredentialFactory(), sp.GetRequiredService<ILoggerFactory>(), time));
            services.AddSingleton(sp => sp.GetRequiredService<BrokerKeyBackends>().Router);
            services.AddSingleton<IKeyBackend>(sp => sp.GetRequiredService<AttestBroker.Keys.Backends.KeyBackendRouter>());
            services.AddSingleton(nonces);
            services.AddSingleton(signer);
            services.AddSingleton(verifiers);
            services.AddSingleton(options);
            services.AddSingleton(sp => BrokerKubernetes.Create(options, kubernetesClient, data.Storage.Audit, time, sp.GetRequiredService<ILoggerFactory>()));
            services.AddSingleton(sp =>
            {
                var (azureTokens, azureHttp) = AzureAttestationWiring.Create(options.AzureAttestation, time, sp.GetService<AzureAttestationHttpHandler>());
                if (azureHttp is not null)
                {
                    disposables.Add(azureHttp);
                }

                return new BrokerService(data.Storage, sp.GetRequiredService<IKeyBackend>(), nonces, signer, verifiers, options, time, sp.GetRequiredService<ILogger<BrokerService>>())
                {
                    KubernetesIdentity = sp.GetRequiredService<BrokerKubernetes>(),
                    AzureTokens = azureTokens,
                };
            });
            if (options.Kubernetes.WatchPolicies)
            {
                services.AddSingleton(sp => new KeyReleasePolicyWatcher(kubernetesClient!, new BrokerPolicySink(data, time), new KeyReleasePolicyWatcherOptions(), time, sp.GetRequiredService<ILogger<KeyReleasePolicyWatcher>>()));
                services.AddHostedService(sp => new PolicyWatcherService(sp.GetRequiredService<KeyReleasePolicyWatcher>()));
            }

            services.AddHostedService<ReplayPurgeService>();
            // "keystore" probes what releases use; behind the router that is the embedded store, since the external
            // backends have their own cached health checks ("key_backends") and must not be asked on every probe.
            services.AddSingleton(sp =>
            {
                var backends = sp.GetRequiredService<BrokerKeyBackends>();
                var keys = sp.GetRequiredService<IKeyBackend>();
                return new ReadinessProbe(data.Storage, keys is AttestBroker.Keys.Backends.KeyBackendRouter ? backends.Embedded : keys, options, time) { KeyBackends = backends };
            });
            admin.Register(services);
            services.AddProblemDetails();
            services.AddOpenApi();
            services.AddRateLimiter(r =>
            {
                r.AddPolicy(RateLimitPolicy, ctx => RateLimitPartition.GetFixedWindowLimiter(
                    ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown",
                    _ => new FixedWindowRateLimiterOptions { PermitLimit = options.RateLimitPerMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0 }));
                r.OnRejected = async (ctx, ct) =>
                {
                    ctx.HttpContext.Response.Headers.RetryAfter = "60";
                    await new BrokerProblem(StatusCodes.Status429TooManyRequests, ProblemCodes.RateLimited, "Too many requests", "this client sent too many requests; retry later")
                        .ToResult().ExecuteAsync(ctx.HttpContext);
                };
            });
            configure?.Invoke(builder);

            var app = builder.Build();
            // Made now, so a bad identity setting (an unreadable JWKS file, ...) stops the start rather than the first request.
            app.Services.GetRequiredService<BrokerKubernetes>();
            app.Services.GetRequiredService<BrokerKeyBackends>();
            if (options.AllowInsecureHttp)
            {
                LogInsecure(app.Logger);
            }

            if (verifiers.Trust.TrustsSimulator)
            {
                LogSimulator(app.Logger, options.TrustSimulatorPkiDirectory!);
            }

            app.UseExceptionHandler(new ExceptionHandlerOptions { ExceptionHandler = HandleExceptionAsync, StatusCodeSelector = _ => StatusCodes.Status500InternalServerError });
            app.UseStatusCodePages(async ctx =>
            {
                var status = ctx.HttpContext.Response.StatusCode;
                var problem = status switch
                {
                    404 => new BrokerProblem(404, ProblemCodes.NotFound, "Not found", "no such endpoint"),
                    405 => new BrokerProblem(405, ProblemCodes.MalformedRequest, "Method not allowed", "this endpoint does not accept that method"),
                    413 => new BrokerProblem(413, ProblemCodes.BodyTooLarge, "Body too large", "the request body exceeds the limit"),
                    415 => new BrokerProblem(415, ProblemCodes.UnsupportedMediaType, "Unsupported media type", "send application/json"),
                    _ => new BrokerProblem(status, ProblemCodes.MalformedRequest, "Request refused", "the request was refused"),
                };
                await problem.ToResult().ExecuteAsync(ctx.HttpContext);
            });
            app.UseRateLimiter();
            BrokerEndpoints.Map(app);
            Admin.AdminEndpoints.Map(app);
            return new BrokerHost(app, data, disposables);
        }
        catch
        {
            foreach (var d in disposables)
            {
                d.Dispose();
            }

            await data.DisposeAsync();
            throw;
        }
    }

    public Task StartAsync(CancellationToken cancellationToken = default) => App.StartAsync(cancellationToken);

    public Task RunAsync(CancellationToken cancellationToken = default) => App.RunAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await App.StopAsync();
        }
        catch (OperationCanceledException)
        {
        }

        await App.DisposeAsync();
        foreach (var d in _disposables)
        {
            d.Dispose();
        }

        await Data.DisposeAsync();
    }

    private static async Task HandleExceptionAsync(HttpContext context)
    {
        var error = context.Features.Get<IExceptionHandlerFeature>()?.Error;
        var problem = error switch
        {
            Microsoft.AspNetCore.Http.BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => new BrokerProblem(413, ProblemCodes.BodyTooLarge, "Body too large", "the request body exceeds the limit"),
            Microsoft.AspNetCore.Http.BadHttpRequestException b => new BrokerProblem(b.StatusCode, ProblemCodes.MalformedRequest, "Bad request", "the request could not be read"),
            StorageException s => new BrokerProblem(503, ProblemCodes.BackendUnavailable, "Backend unavailable", $"the broker's storage is unavailable ({s.Error}); retry later",
                new System.Text.Json.Nodes.JsonObject { ["backend"] = "storage", ["cause"] = s.Error.ToString() }),
            AttestBroker.Keys.Backends.KeyBackendException b => KeyBackendProblems.From(b),
            KeyStoreException k => new BrokerProblem(503, ProblemCodes.BackendUnavailable, "Backend unavailable", $"the keystore is unavailable ({k.Error}); retry later",
                new System.Text.Json.Nodes.JsonObject { ["backend"] = "keystore", ["cause"] = k.Error.ToString() }),
            OperationCanceledException => new BrokerProblem(503, ProblemCodes.BackendUnavailable, "Cancelled", "the request was cancelled"),
            _ => new BrokerProblem(500, ProblemCodes.InternalError, "Internal error", "an unexpected error occurred"),
        };
        context.Response.StatusCode = problem.Status;
        await problem.ToResult().ExecuteAsync(context);
    }

    private static VerifierSet BuildVerifiers(BrokerOptions options, List<IDisposable> disposables, TimeProvider time, ICollateralStore collateralStore)
    {
        var trust = TrustStore.Production;
        if (options.TrustSimulatorPkiDirectory is { } sim)
        {
            try
            {
                trust = SimulatorTrust.AddFromPkiDirectory(trust, sim);
            }
            catch (InvalidOperationException ex)
            {
                throw new BrokerStartupException("Broker:TrustSimulatorPkiDirectory: " + ex.Message, ex);
            }
        }

        ITdxCollateralProvider tdxFiles;
        ISnpCertificateProvider snpFiles;
        try
        {
            tdxFiles = TdxCollateralSource.FromPaths(options.CollateralPaths.ToList());
            snpFiles = SnpCertificateSource.FromPaths(options.CollateralPaths.ToList(), null, null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or FormatException)
        {
            throw new BrokerStartupException("Broker:CollateralPaths: " + ex.Message, ex);
        }

        IEvidenceVerifier tdx, snp;
        if (options.FetchCollateral)
        {
            var fetch = new CollateralFetchOptions();
            var http = new HttpClient();
            disposables.Add(http);
            if (options.IntelPcsUrl is { } pcs)
            {
                fetch.IntelPcsBaseUrl = new Uri(pcs);
                fetch.IntelCertificatesBaseUrl = new Uri(options.IntelCertificatesUrl ?? pcs);
            }
            else if (options.IntelCertificatesUrl is { } certificates)
            {
                fetch.IntelCertificatesBaseUrl = new Uri(certificates);
            }

            if (options.AmdKdsUrl is { } kds)
            {
                fetch.AmdKdsBaseUrl = new Uri(kds);
            }

            // The broker's clock decides freshness of cached collateral, as it decides the verification time. Fetched
            // responses are kept in the database, so every replica on it serves what one of them fetched.
            var cache = new CollateralHttpCache(http, fetch, time, new DatabaseCollateralStore(collateralStore));
            tdx = new TdxVerifier(new TdxPcsCollateralProvider(cache, fetch.IntelPcsBaseUrl, fetch.IntelCertificatesBaseUrl, tdxFiles));
            snp = new SnpVerifier(new SnpKdsCertificateProvider(cache, fetch.AmdKdsBaseUrl, snpFiles));
        }
        else
        {
            tdx = new TdxVerifier(tdxFiles);
            snp = new SnpVerifier(snpFiles);
        }

        return new VerifierSet(new Dictionary<TeeKind, IEvidenceVerifier> { [TeeKind.Tdx] = tdx, [TeeKind.SevSnp] = snp }, trust, options.SkipCrl);
    }

    private static X509Certificate2? LoadCertificate(BrokerOptions options, TimeProvider time)
    {
        if (options.AllowInsecureHttp)
        {
            return null;
        }

        if (options.DevCertificate)
        {
            return CreateDevelopmentCertificate(time.GetUtcNow());
        }

        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(options.CertificateFile!, options.CertificateKeyFile);
            // Re-import so the private key is usable by SslStream on every platform.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (CryptographicException ex)
        {
            throw new BrokerStartupException("Broker:CertificateFile/CertificateKeyFile: not a matching PEM certificate and private key", ex);
        }
    }

    /// <summary>A self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, valid for 30 days (local use only).</summary>
    public static X509Certificate2 CreateDevelopmentCertificate(DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost (attestbroker development certificate)", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(30));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "serving plain HTTP without TLS (Broker:AllowInsecureHttp): keys travel encrypted to the pod, but challenges, tokens and errors do not")]
    private static partial void LogInsecure(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "trusting SIMULATED hardware roots from {Directory}: never in production; policies must also set allowSimulated")]
    private static partial void LogSimulator(ILogger logger, string directory);
}
