using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using AttestBroker.Testing;
using AttestBroker.Verification.Collateral;
using AttestBroker.Verification.Tdx;
using NUnit.Framework;
using static AttestBroker.Verification.Tests.Tdx.TdxVectors;

namespace AttestBroker.Verification.Tests.Tdx;

/// <summary>A loopback PCS serving the dcap-qvl collateral for GT-2 on the Intel PCS v4 paths, issuer chains in headers.</summary>
internal sealed class LoopbackPcs : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Dictionary<string, (byte[] Body, string? Header, string? Chain)> _routes = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private bool _disposed;

    public LoopbackPcs()
    {
        var port = FreePort();
        BaseUrl = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(BaseUrl.AbsoluteUri);
        _listener.Start();
        _loop = Task.Run(ServeAsync);
    }

    public Uri BaseUrl { get; }

    public ConcurrentQueue<string> Requests { get; } = new();

    public HashSet<string> Failing { get; } = new(StringComparer.Ordinal);

    public void Serve(string pathAndQuery, byte[] body) => _routes[pathAndQuery] = (body, null, null);

    public static LoopbackPcs WithGt2Collateral()
    {
        var pcs = new LoopbackPcs();
        string D(string f) => Vectors.Path("tdx/dcap-qvl/derived/tdx_quote_outdated/" + f);
        var tcbChain = File.ReadAllText(D("tcb_info_issuer_chain.pem"));
        pcs._routes["/tdx/certification/v4/tcb?fmspc=90c06f000000"] = (File.ReadAllBytes(D("tcb_info.json")), "TCB-Info-Issuer-Chain", tcbChain);
        pcs._routes["/tdx/certification/v4/qe/identity"] = (File.ReadAllBytes(D("qe_identity.json")), "SGX-Enclave-Identity-Issuer-Chain", tcbChain);
        pcs._routes["/sgx/certification/v4/pckcrl?ca=platform&encoding=der"] = (File.ReadAllBytes(D("pck_crl.der")), "SGX-PCK-CRL-Issuer-Chain", File.ReadAllText(D("pck_crl_issuer_chain.pem")));
        pcs._routes["/sgx/certification/v4/rootcacrl"] = (System.Text.Encoding.ASCII.GetBytes(Convert.ToHexStringLower(File.ReadAllBytes(D("root_ca_crl.der")))), null, null);
        return pcs;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _stop.Cancel();
        _listener.Stop();
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // the listener was stopped under the loop
        }

        _stop.Dispose();
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            var path = ctx.Request.Url!.PathAndQuery;
            Requests.Enqueue(path);
            if (!Failing.Contains(path) && _routes.TryGetValue(path, out var route))
            {
                if (route.Header is not null)
                {
                    ctx.Response.Headers[route.Header] = Uri.EscapeDataString(route.Chain!);
                }

                ctx.Response.StatusCode = 200;
                await ctx.Response.OutputStream.WriteAsync(route.Body).ConfigureAwait(false);
            }
            else
            {
                ctx.Response.StatusCode = 404;
            }

            ctx.Response.Close();
        }
    }
}

internal sealed class FixedTime(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}

/// <summary>Collateral fetched from a PCS (here a loopback one) verifies GT-2 like the files do, and is cached until nextUpdate.</summary>
[TestFixture]
public sealed class Collateral_fetched_from_a_pcs_verifies_and_is_cached
{
    private string _cacheDir = null!;

    [SetUp]
    public void SetUp() => _cacheDir = Directory.CreateTempSubdirectory("ab-tdx-pcs-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_cacheDir, recursive: true);

    private TdxPcsCollateralProvider Provider(LoopbackPcs pcs, HttpClient http) =>
        new(new CollateralHttpCache(http, new CollateralFetchOptions { CacheDirectory = _cacheDir, MaxAttempts = 1, InitialBackoff = TimeSpan.Zero }, new FixedTime(Gt2At)), pcs.BaseUrl, pcs.BaseUrl);

    [Test]
    public void Gt2_with_fetched_collateral_is_accepted_and_the_four_pcs_paths_were_asked()
    {
        using var pcs = LoopbackPcs.WithGt2Collateral();
        using var http = new HttpClient();
        var r = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, Provider(pcs, http));
        Assert.That(r.IsAccepted, Is.True, Describe(r));
        Assert.That(r.CrlChecked, Is.True);
        Assert.That(pcs.Requests, Is.EquivalentTo(new[]
        {
            "/tdx/certification/v4/tcb?fmspc=90c06f000000", "/tdx/certification/v4/qe/identity",
            "/sgx/certification/v4/pckcrl?ca=platform&encoding=der", "/sgx/certification/v4/rootcacrl",
        }));
    }

    [Test]
    public void Without_the_pccs_root_crl_path_the_root_crl_comes_from_the_certificate_site()
    {
        using var pcs = LoopbackPcs.WithGt2Collateral();
        pcs.Failing.Add("/sgx/certification/v4/rootcacrl");
        pcs.Serve("/IntelSGXRootCA.der", File.ReadAllBytes(Vectors.Path("tdx/dcap-qvl/derived/tdx_quote_outdated/root_ca_crl.der")));
        using var http = new HttpClient();
        var r = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, Provider(pcs, http));
        Assert.That(r.IsAccepted, Is.True, Describe(r));
        Assert.That(pcs.Requests, Does.Contain("/IntelSGXRootCA.der"));
    }

    [Test]
    public void A_second_verification_before_next_update_is_served_from_the_cache()
    {
        using var pcs = LoopbackPcs.WithGt2Collateral();
        using var http = new HttpClient();
        TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, Provider(pcs, http));
        var again = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, Provider(pcs, http));
        Assert.That(again.IsAccepted, Is.True, Describe(again));
        Assert.That(pcs.Requests, Has.Count.EqualTo(4));
    }

    [Test]
    public void A_pcs_that_does_not_have_the_tcb_info_gives_collateral_unavailable()
    {
        using var pcs = LoopbackPcs.WithGt2Collateral();
        pcs.Failing.Add("/tdx/certification/v4/tcb?fmspc=90c06f000000");
        using var http = new HttpClient();
        var r = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, Provider(pcs, http));
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralUnavailable), Describe(r));
        Assert.That(r.Reasons.First(x => x.Code == ReasonCodes.CollateralUnavailable).Message, Does.Contain("404"));
        Assert.That(Codes(r).Intersect(CryptoCodes), Is.Empty);
    }

    [Test]
    public void Unreachable_pcs_gives_collateral_unavailable()
    {
        using var pcs = LoopbackPcs.WithGt2Collateral();
        var url = pcs.BaseUrl;
        pcs.Dispose();
        using var http = new HttpClient();
        var provider = new TdxPcsCollateralProvider(new CollateralHttpCache(http, new CollateralFetchOptions { CacheDirectory = _cacheDir, MaxAttempts = 1, InitialBackoff = TimeSpan.Zero }, new FixedTime(Gt2At)), url, url);
        var r = TdxVectors.Verify(Vectors.Read(Gt2), Gt2At, provider);
        Assert.That(Codes(r), Does.Contain(ReasonCodes.CollateralUnavailable), Describe(r));
    }
}
