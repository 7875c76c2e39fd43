using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using AttestBroker.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// The transport part of the protocol's floor, for <c>bench release</c>: an HTTPS server on the broker's stack
/// (ASP.NET Core on Kestrel, a certificate of the same kind, default protocols, the same body limit) that reads each
/// request whole and answers the bytes the real broker answered to the same request (recorded). What a broker does
/// between reading and answering is left out, so what the exchanges cost here is the least they cost any broker on
/// this stack. <see cref="SignatureCpuMs"/> prices the elliptic-curve operations no release can skip.
/// </summary>
internal sealed class ProtocolFloor : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly byte[] _pin;
    private readonly X509Certificate2 _certificate;

    private ProtocolFloor(WebApplication app, X509Certificate2 certificate, byte[] pin)
    {
        _app = app;
        _certificate = certificate;
        _pin = pin;
    }

    public Uri Address { get; private set; } = null!;

    public static async Task<ProtocolFloor> StartAsync(byte[] challengeAnswer, byte[] grantAnswer, long maxRequestBodyBytes, CancellationToken ct)
    {
        var certificate = BrokerHost.CreateDevelopmentCertificate(TimeProvider.System.GetUtcNow());
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = maxRequestBodyBytes;
            k.Listen(IPAddress.Loopback, 0, l => l.UseHttps(certificate));
        });
        var app = builder.Build();
        var floor = new ProtocolFloor(app, certificate, certificate.GetCertHash(HashAlgorithmName.SHA256));
        app.MapPost("/v1/challenge", context => ReadThenAnswerAsync(context, challengeAnswer));
        app.MapPost("/v1/attest", context => ReadThenAnswerAsync(context, grantAnswer));
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
            floor.Address = new Uri(app.Urls.First());
            return floor;
        }
        catch
        {
            await floor.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A client that accepts only this server's certificate, configured as the pods' client of the broker.</summary>
    public HttpClient CreateClient(Version httpVersion, int maxConnections) => LocalBroker.PinnedClient(Address, _pin, httpVersion, maxConnections);

    /// <summary>
    /// CPU milliseconds of one ES256 signature (SHA-256 and ECDSA P-256 over 700 bytes, a result token's size) through
    /// .NET's OpenSSL path, which runs at <c>openssl speed ecdsap256</c>'s rate: the least of three rounds of at least
    /// <paramref name="seconds"/> each. The floor counts every elliptic-curve operation a release needs at this price:
    /// a signature is one fixed-base multiplication and a hash, an agreement one variable-base multiplication (dearer),
    /// so pricing an agreement as a signature errs low.
    /// </summary>
    public static double SignatureCpuMs(double seconds)
    {
        using var signer = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var token = new byte[700];
        RandomNumberGenerator.Fill(token);
        void Once() => _ = signer.SignData(token, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        for (var i = 0; i < 200; i++)
        {
            Once();
        }

        var best = double.MaxValue;
        for (var round = 0; round < 3; round++)
        {
            var cpu = ProcessCpu();
            var sw = Stopwatch.StartNew();
            var n = 0;
            while (sw.Elapsed.TotalSeconds < seconds || n < 1000)
            {
                Once();
                n++;
            }

            best = Math.Min(best, (ProcessCpu() - cpu).TotalMilliseconds / n);
        }

        return best;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync().ConfigureAwait(false);
        _certificate.Dispose();
    }

    private static TimeSpan ProcessCpu()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime;
    }

    private static async Task ReadThenAnswerAsync(HttpContext context, byte[] answer)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 << 10);
        try
        {
            while (await context.Request.Body.ReadAsync(buffer, context.RequestAborted).ConfigureAwait(false) > 0)
            {
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = answer.Length;
        await context.Response.Body.WriteAsync(answer, context.RequestAborted).ConfigureAwait(false);
    }
}
