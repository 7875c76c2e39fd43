using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>A request the local service saw: method, path, query, headers that matter, body.</summary>
internal sealed record SeenRequest(string Method, string Path, string Query, IReadOnlyDictionary<string, string> Headers, byte[] Body);

/// <summary>
/// CONTRACT TESTS ONLY: a Kestrel server on 127.0.0.1 (HTTP, or HTTPS with a throwaway certificate for localhost)
/// that stands in for Vault, Key Vault, Azure Attestation or the Kubernetes API by answering with the documented
/// request and response shapes. Each test sets <see cref="Handler"/>; every request is recorded.
/// </summary>
internal sealed class LocalService : IAsyncDisposable
{
    private static readonly Lazy<X509Certificate2> TlsCertificate = new(CreateTlsCertificate);
    private readonly WebApplication _app;

    private LocalService(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public Func<HttpContext, byte[], Task> Handler { get; set; } = (ctx, _) =>
    {
        ctx.Response.StatusCode = 500;
        return Task.CompletedTask;
    };

    public ConcurrentQueue<SeenRequest> Requests { get; } = new();

    public static X509Certificate2 Certificate => TlsCertificate.Value;

    public static async Task<LocalService> StartAsync(bool https)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l =>
        {
            if (https)
            {
                l.UseHttps(TlsCertificate.Value);
            }
        }));
        var app = builder.Build();
        LocalService? self = null;
        app.Run(async ctx =>
        {
            using var ms = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(ms);
            byte[] body = ms.ToArray();
            var headers = ctx.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            self!.Requests.Enqueue(new SeenRequest(ctx.Request.Method, ctx.Request.Path.Value ?? "/", ctx.Request.QueryString.Value ?? string.Empty, headers, body));
            await self.Handler(ctx, body);
        });
        await app.StartAsync();
        int port = new Uri(app.Urls.First()).Port;
        self = new LocalService(app, new Uri($"{(https ? "https" : "http")}://localhost:{port}/"));
        return self;
    }

    /// <summary>An HttpClient handler that trusts exactly this service's throwaway certificate.</summary>
    public static HttpClientHandler TrustingHandler() => new()
    {
        ServerCertificateCustomValidationCallback = (_, cert, _, _) => cert is not null && cert.RawData.AsSpan().SequenceEqual(TlsCertificate.Value.RawData),
    };

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    public int Count(string method, string pathContains) => Requests.Count(r => r.Method == method && r.Path.Contains(pathContains, StringComparison.Ordinal));

    private static X509Certificate2 CreateTlsCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using X509Certificate2 cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }
}

/// <summary>Writes JSON or an error answer.</summary>
internal static class Answer
{
    public static async Task Json(HttpContext ctx, int status, string json, params (string Name, string Value)[] headers)
    {
        ctx.Response.StatusCode = status;
        foreach ((string n, string v) in headers)
        {
            ctx.Response.Headers[n] = v;
        }

        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(json);
    }
}

/// <summary>Collects log lines (formatted) so tests can check that no secret is ever logged.</summary>
internal sealed class ListLogger<T> : ILogger<T>
{
    public ConcurrentQueue<string> Lines { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Lines.Enqueue($"{logLevel}: {formatter(state, exception)} {exception?.Message}");
}
