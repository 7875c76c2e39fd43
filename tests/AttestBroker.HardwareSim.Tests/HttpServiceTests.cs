using System.Net;
using System.Net.Http.Headers;
using System.Text;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Http;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.Verification;
using AttestBroker.Verification.Collateral;
using AttestBroker.Verification.Snp;
using AttestBroker.Verification.Tdx;

namespace AttestBroker.HardwareSim.Tests;

/// <summary>A clock fixed at the tests' verification time (the simulated server issues collateral "now").</summary>
internal sealed class FixedTime(DateTimeOffset at) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => at;
}

/// <summary>Routes HttpClient requests to the simulator's server logic in-process (no sockets).</summary>
internal sealed class SimHandler(SimHttpService service) : HttpMessageHandler
{
    public int Requests { get; private set; }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Requests++;
        var uri = request.RequestUri!;
        var query = System.Web.HttpUtility.ParseQueryString(uri.Query);
        var dict = query.AllKeys.Where(k => k is not null).ToDictionary(k => k!, k => query[k]!, StringComparer.Ordinal);
        var body = request.Content is null ? [] : await request.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        var r = await service.HandleAsync(request.Method.Method, uri.AbsolutePath, dict, body, cancellationToken).ConfigureAwait(false);
        var response = new HttpResponseMessage((HttpStatusCode)r.Status) { Content = new ByteArrayContent(r.Body), RequestMessage = request };
        response.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(r.ContentType);
        foreach (var (k, v) in r.Headers)
        {
            response.Headers.TryAddWithoutValidation(k, v);
        }

        return response;
    }
}

[TestFixture]
public sealed class Collateral_served_over_http_behaves_like_the_file_form
{
    private static readonly Uri Base = new("http://127.0.0.1:8088/");

    private static (SimHttpService Service, SimHandler Handler, HttpClient Http) Server(SimServerBehaviour? behaviour = null, IEnumerable<SimFault>? faults = null)
    {
        var service = new SimHttpService(SimTestEnvironment.Pki, [], faults ?? [], behaviour ?? new SimServerBehaviour { RetryAfterSeconds = 0 }, new FixedTime(SimTestEnvironment.At));
        var handler = new SimHandler(service);
        return (service, handler, new HttpClient(handler) { BaseAddress = Base });
    }

    private static async Task<VerificationResult> VerifySnpOverKdsAsync(HttpClient http, byte[] report)
    {
        var cacheDir = SimTestEnvironment.TempDir();
        try
        {
            var options = new CollateralFetchOptions { AmdKdsBaseUrl = Base, CacheDirectory = cacheDir, InitialBackoff = TimeSpan.FromMilliseconds(1), MaxAttempts = 3 };
            var cache = new CollateralHttpCache(http, options, new FixedTime(SimTestEnvironment.At));
            var verifier = new SnpVerifier(new SnpKdsCertificateProvider(cache, Base));
            return await verifier.VerifyAsync(report, SimTestEnvironment.Context());
        }
        finally
        {
            Directory.Delete(cacheDir, true);
        }
    }

    private static byte[] SnpReport(AmdProduct product = AmdProduct.Genoa) =>
        SimEvidence.Create(SimTestEnvironment.Pki, SimProfile.Default(), TeeKind.SevSnp, new EvidenceOptions { Product = product });

    [Test]
    public async Task Snp_report_verifies_with_vcek_chain_and_crl_fetched_from_the_simulated_kds()
    {
        var (_, handler, http) = Server();
        using (http)
        {
            var result = await VerifySnpOverKdsAsync(http, SnpReport());
            Assert.That(result.IsAccepted, Is.True, SimTestEnvironment.Describe(result));
            Assert.That(result.CrlChecked, Is.True);
            Assert.That(handler.Requests, Is.EqualTo(3), "VCEK, cert_chain, crl");
        }
    }

    [Test]
    public async Task A_429_with_retry_after_is_retried_and_the_report_still_verifies()
    {
        var (service, handler, http) = Server(new SimServerBehaviour { Fail429 = 1, RetryAfterSeconds = 0 });
        using (http)
        {
            var result = await VerifySnpOverKdsAsync(http, SnpReport(AmdProduct.Turin));
            Assert.That(result.IsAccepted, Is.True, SimTestEnvironment.Describe(result));
            Assert.That(service.Behaviour.Fail429, Is.Zero);
            Assert.That(handler.Requests, Is.EqualTo(4));
        }
    }

    [Test]
    public async Task A_503_is_retried_and_the_report_still_verifies()
    {
        var (service, _, http) = Server(new SimServerBehaviour { Fail503 = 1 });
        using (http)
        {
            var result = await VerifySnpOverKdsAsync(http, SnpReport(AmdProduct.Milan));
            Assert.That(result.IsAccepted, Is.True, SimTestEnvironment.Describe(result));
            Assert.That(service.Behaviour.Fail503, Is.Zero);
        }
    }

    [Test]
    public async Task A_long_retry_after_leaves_the_vcek_missing_and_the_report_is_rejected()
    {
        var (_, _, http) = Server(new SimServerBehaviour { Fail429 = 100, RetryAfterSeconds = 3600 });
        using (http)
        {
            var result = await VerifySnpOverKdsAsync(http, SnpReport());
            Assert.That(result.IsAccepted, Is.False);
            Assert.That(result.HasReason(ReasonCodes.SigningKeyMissing), Is.True, SimTestEnvironment.Describe(result));
            Assert.That(result.Notes.Any(n => n.Code == ReasonCodes.CollateralUnavailable), Is.True);
        }
    }

    [Test]
    public async Task Stale_collateral_gives_an_expired_amd_crl()
    {
        var (_, _, http) = Server(new SimServerBehaviour { Stale = true });
        using (http)
        {
            var result = await VerifySnpOverKdsAsync(http, SnpReport());
            Assert.That(result.HasReason(ReasonCodes.CrlExpired), Is.True, SimTestEnvironment.Describe(result));
        }
    }

    [Test]
    public async Task Revoked_vcek_fault_on_the_server_revokes_over_http()
    {
        var (_, _, http) = Server(faults: [SimFault.RevokedVcek]);
        using (http)
        {
            var result = await VerifySnpOverKdsAsync(http, SnpReport());
            Assert.That(result.HasReason(ReasonCodes.CertificateRevoked), Is.True, SimTestEnvironment.Describe(result));
        }
    }

    [Test]
    public async Task Tdx_collateral_from_pcs_paths_with_issuer_chain_headers_verifies_a_quote()
    {
        var (_, _, http) = Server();
        using (http)
        {
            var dir = SimTestEnvironment.TempDir();
            try
            {
                var fmspc = Convert.ToHexStringLower(new Tdx.TdxPlatform().Fmspc);
                await SaveAsync(http, $"tdx/certification/v4/tcb?fmspc={fmspc}", "TCB-Info-Issuer-Chain", dir, "tcb");
                await SaveAsync(http, "tdx/certification/v4/qe/identity", "SGX-Enclave-Identity-Issuer-Chain", dir, "qe");
                await SaveAsync(http, "sgx/certification/v4/pckcrl?ca=platform&encoding=der", "SGX-PCK-CRL-Issuer-Chain", dir, "pckcrl");
                await SaveAsync(http, "sgx/certification/v4/rootcacrl", null, dir, "rootcrl");

                var quote = SimEvidence.Create(SimTestEnvironment.Pki, SimProfile.Default(), TeeKind.Tdx, new EvidenceOptions());
                var result = await new TdxVerifier(TdxCollateralSource.FromPaths([dir])).VerifyAsync(quote, SimTestEnvironment.Context());
                Assert.That(result.IsAccepted, Is.True, SimTestEnvironment.Describe(result));
                Assert.That(result.CrlChecked, Is.True);
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }
    }

    [TestCase(0, 0, TestName = "Tdx_quote_verifies_with_collateral_fetched_by_the_pcs_provider_from_the_simulated_pcs")]
    [TestCase(1, 1, TestName = "Tdx_quote_verifies_through_a_429_and_a_503_from_the_simulated_pcs")]
    public async Task Tdx_quote_verifies_over_pcs(int fail429, int fail503)
    {
        var (service, _, http) = Server(new SimServerBehaviour { Fail429 = fail429, Fail503 = fail503, RetryAfterSeconds = 0 });
        using (http)
        {
            var cacheDir = SimTestEnvironment.TempDir();
            try
            {
                var options = new CollateralFetchOptions { IntelPcsBaseUrl = Base, IntelCertificatesBaseUrl = Base, CacheDirectory = cacheDir, InitialBackoff = TimeSpan.FromMilliseconds(1), MaxAttempts = 3 };
                var cache = new CollateralHttpCache(http, options, new FixedTime(SimTestEnvironment.At));
                var verifier = new TdxVerifier(new TdxPcsCollateralProvider(cache, Base, Base));
                var quote = SimEvidence.Create(SimTestEnvironment.Pki, SimProfile.Default(), TeeKind.Tdx, new EvidenceOptions { QuoteVersion = 5 });
                var result = await verifier.VerifyAsync(quote, SimTestEnvironment.Context());
                Assert.That(result.IsAccepted, Is.True, SimTestEnvironment.Describe(result));
                Assert.That(result.CrlChecked, Is.True);
                Assert.That(service.Behaviour.Fail429 + service.Behaviour.Fail503, Is.Zero);
            }
            finally
            {
                Directory.Delete(cacheDir, true);
            }
        }
    }

    [Test]
    public async Task Tcb_revoked_fault_on_the_simulated_pcs_is_rejected_with_tcb_revoked()
    {
        var (_, _, http) = Server(faults: [SimFault.TcbRevoked]);
        using (http)
        {
            var cacheDir = SimTestEnvironment.TempDir();
            try
            {
                var options = new CollateralFetchOptions { IntelPcsBaseUrl = Base, IntelCertificatesBaseUrl = Base, CacheDirectory = cacheDir, InitialBackoff = TimeSpan.FromMilliseconds(1) };
                var cache = new CollateralHttpCache(http, options, new FixedTime(SimTestEnvironment.At));
                var verifier = new TdxVerifier(new TdxPcsCollateralProvider(cache, Base, Base));
                var quote = SimEvidence.Create(SimTestEnvironment.Pki, SimProfile.Default(), TeeKind.Tdx, new EvidenceOptions());
                var result = await verifier.VerifyAsync(quote, SimTestEnvironment.Context());
                Assert.That(result.HasReason(ReasonCodes.TcbRevoked), Is.True, SimTestEnvironment.Describe(result));
            }
            finally
            {
                Directory.Delete(cacheDir, true);
            }
        }
    }

    [Test]
    public async Task Pck_crl_for_the_processor_ca_is_not_found_and_unknown_paths_are_404()
    {
        var (_, _, http) = Server();
        using (http)
        {
            Assert.That((await http.GetAsync(new Uri("sgx/certification/v4/pckcrl?ca=processor", UriKind.Relative))).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That((await http.GetAsync(new Uri("nothing/here", UriKind.Relative))).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That((await http.GetAsync(new Uri("tdx/certification/v4/tcb?fmspc=000000000000", UriKind.Relative))).StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That((await http.GetAsync(new Uri("vcek/v1/Genoa/zz?blSPL=1", UriKind.Relative))).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        }
    }

    [Test]
    public async Task Kds_cert_chain_is_pem_ask_then_ark()
    {
        var (_, _, http) = Server();
        using (http)
        {
            var pem = await http.GetStringAsync(new Uri("vcek/v1/Milan/cert_chain", UriKind.Relative));
            var certs = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
            certs.ImportFromPem(pem);
            Assert.That(certs, Has.Count.EqualTo(2));
            Assert.That(certs[0].RawData, Is.EqualTo(SimTestEnvironment.Pki.Chain(AmdProduct.Milan).Ask.Certificate.RawData));
            Assert.That(certs[1].RawData, Is.EqualTo(SimTestEnvironment.Pki.Chain(AmdProduct.Milan).Ark.Certificate.RawData));
        }
    }

    private static async Task SaveAsync(HttpClient http, string path, string? chainHeader, string dir, string stem)
    {
        using var response = await http.GetAsync(new Uri(path, UriKind.Relative));
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), path);
        await File.WriteAllBytesAsync(Path.Combine(dir, stem + ".body"), await response.Content.ReadAsByteArrayAsync());
        if (chainHeader is not null)
        {
            var encoded = response.Headers.GetValues(chainHeader).Single();
            var pem = Uri.UnescapeDataString(encoded);
            Assert.That(pem, Does.StartWith("-----BEGIN CERTIFICATE-----"));
            await File.WriteAllTextAsync(Path.Combine(dir, stem + "-chain.pem"), pem);
        }
    }
}

[TestFixture]
public sealed class The_virtual_tee_answers_evidence_requests
{
    [Test]
    public async Task Post_evidence_returns_a_tdx_quote_binding_the_report_data_that_verifies()
    {
        var service = new SimHttpService(SimTestEnvironment.Pki, [], [], new SimServerBehaviour(), new FixedTime(SimTestEnvironment.At));
        var rd = new string('a', 128);
        var response = await service.HandleAsync("POST", "/sim/v1/evidence", new Dictionary<string, string>(), Encoding.UTF8.GetBytes($"{{\"tee\":\"tdx\",\"platform\":\"default\",\"report_data\":\"{rd}\"}}"), CancellationToken.None);
        Assert.That(response.Status, Is.EqualTo(200));
        var collateral = SimEvidence.CollateralForEvidence(SimTestEnvironment.Pki, SimProfile.Default(), TeeKind.Tdx, new EvidenceOptions(), SimTestEnvironment.At);
        var result = await SimTestEnvironment.VerifyAsync(TeeKind.Tdx, response.Body, collateral);
        Assert.That(result.IsAccepted, Is.True, SimTestEnvironment.Describe(result));
        Assert.That(result.Claims["report_data"]!.GetValue<string>(), Is.EqualTo(rd));
    }

    [Test]
    public async Task Post_evidence_for_sev_snp_with_a_fault_returns_the_faulty_report()
    {
        var service = new SimHttpService(SimTestEnvironment.Pki, [], [], new SimServerBehaviour(), new FixedTime(SimTestEnvironment.At));
        var response = await service.HandleAsync("POST", "/sim/v1/evidence", new Dictionary<string, string>(), Encoding.UTF8.GetBytes("{\"tee\":\"sev-snp\",\"product\":\"turin\",\"faults\":[\"vmpl1\"]}"), CancellationToken.None);
        Assert.That(response.Status, Is.EqualTo(200));
        Assert.That(response.Body, Has.Length.EqualTo(1184));
        Assert.That(BitConverter.ToUInt32(response.Body, 0x30), Is.EqualTo(1u));
    }

    [TestCase("{\"tee\":\"sgx\"}", 400)]
    [TestCase("{\"tee\":\"tdx\",\"platform\":\"nope\"}", 404)]
    [TestCase("{\"tee\":\"tdx\",\"report_data\":\"zz\"}", 400)]
    [TestCase("not json", 400)]
    [TestCase("{\"tee\":\"tdx\",\"faults\":[\"vmpl1\"]}", 400)]
    public async Task Bad_evidence_requests_get_a_clear_client_error(string body, int status)
    {
        var service = new SimHttpService(SimTestEnvironment.Pki, [], [], new SimServerBehaviour(), new FixedTime(SimTestEnvironment.At));
        var response = await service.HandleAsync("POST", "/sim/v1/evidence", new Dictionary<string, string>(), Encoding.UTF8.GetBytes(body), CancellationToken.None);
        Assert.That(response.Status, Is.EqualTo(status));
        Assert.That(response.ContentType, Does.StartWith("text/plain"));
    }

    [Test]
    public void Latency_delays_pcs_and_kds_responses_and_the_delay_is_cancellable()
    {
        var service = new SimHttpService(SimTestEnvironment.Pki, [], [], new SimServerBehaviour { Latency = TimeSpan.FromHours(1) }, TimeProvider.System);
        using var cts = new CancellationTokenSource();
        var pending = service.HandleAsync("GET", "/vcek/v1/Milan/cert_chain", new Dictionary<string, string>(), ReadOnlyMemory<byte>.Empty, cts.Token);
        Assert.That(pending.IsCompleted, Is.False, "an hour of latency cannot have elapsed");
        cts.Cancel();
        Assert.That(async () => await pending, Throws.InstanceOf<OperationCanceledException>());
    }

    [Test]
    public async Task Control_changes_the_failure_behaviour_at_run_time()
    {
        var service = new SimHttpService(SimTestEnvironment.Pki, [], [], new SimServerBehaviour(), new FixedTime(SimTestEnvironment.At));
        var ok = await service.HandleAsync("POST", "/sim/v1/control", new Dictionary<string, string>(), Encoding.UTF8.GetBytes("{\"fail_503\":1,\"fail_429\":1,\"retry_after\":7}"), CancellationToken.None);
        Assert.That(ok.Status, Is.EqualTo(200));
        var first = await service.HandleAsync("GET", "/vcek/v1/Milan/cert_chain", new Dictionary<string, string>(), ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        var second = await service.HandleAsync("GET", "/vcek/v1/Milan/cert_chain", new Dictionary<string, string>(), ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        var third = await service.HandleAsync("GET", "/vcek/v1/Milan/cert_chain", new Dictionary<string, string>(), ReadOnlyMemory<byte>.Empty, CancellationToken.None);
        Assert.That(first.Status, Is.EqualTo(429));
        Assert.That(first.Headers["Retry-After"], Is.EqualTo("7"));
        Assert.That(second.Status, Is.EqualTo(503));
        Assert.That(third.Status, Is.EqualTo(200));
    }
}
