using System.Buffers.Text;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;

namespace AttestBroker.Keys.Backends.Tests;

/// <summary>
/// CONTRACT TESTS ONLY: a Microsoft Azure Attestation instance on 127.0.0.1 (HTTPS, a throwaway certificate): it
/// serves {instance}/certs in MAA's shape (keys with kid, kty and x5c only) and signs tokens (RS256) with the
/// published keys, with the SEV-SNP and TDX claims MAA issues. Tokens are signed here, not by Azure. Shared with the
/// Server tests (linked).
/// </summary>
internal sealed class FakeAttestationService : IAsyncDisposable
{
    private readonly List<(string Kid, RSA Key, X509Certificate2 Cert)> _published = [];

    private FakeAttestationService(LocalService service, DateTimeOffset certificatesFrom)
    {
        Service = service;
        CertificatesFrom = certificatesFrom;
        service.Handler = async (ctx, _) =>
        {
            if (ctx.Request.Path != "/certs")
            {
                await Answer.Json(ctx, 404, "{}");
                return;
            }

            if (Down)
            {
                await Answer.Json(ctx, 503, """{"error":{"code":"ServiceUnavailable","message":"down for the test"}}""");
                return;
            }

            var keys = new JsonArray();
            foreach (var (kid, _, cert) in _published)
            {
                keys.Add(new JsonObject { ["kid"] = kid, ["kty"] = "RSA", ["x5c"] = new JsonArray(Convert.ToBase64String(cert.RawData)) });
            }

            await Answer.Json(ctx, 200, new JsonObject { ["keys"] = keys }.ToJsonString());
        };
    }

    public LocalService Service { get; }

    /// <summary>The instance URL (https://localhost:port/) and its issuer string (without the slash).</summary>
    public Uri Instance => Service.Address;

    public string Issuer => Service.Address.GetLeftPart(UriPartial.Authority);

    /// <summary>The start of the signing certificates' validity (they last a year): the verifier checks them at its own clock.</summary>
    public DateTimeOffset CertificatesFrom { get; }

    /// <summary>/certs answers 503 while set.</summary>
    public bool Down { get; set; }

    /// <summary>How many times /certs was asked for.</summary>
    public int CertsRequests => Service.Requests.Count(r => r.Path == "/certs");

    public static async Task<FakeAttestationService> StartAsync(DateTimeOffset? certificatesFrom = null)
    {
        var service = await LocalService.StartAsync(https: true);
        var fake = new FakeAttestationService(service, certificatesFrom ?? DateTimeOffset.UtcNow.AddDays(-1));
        fake.Publish("signing-key-1");
        return fake;
    }

    /// <summary>An HttpClient handler that trusts exactly this service's throwaway TLS certificate.</summary>
    public static HttpClientHandler TrustingHandler() => LocalService.TrustingHandler();

    /// <summary>Publishes a new signing key (a key rollover) and returns its kid.</summary>
    public string Publish(string kid)
    {
        var rsa = RSA.Create(2048);
        var req = new CertificateRequest("CN=https://shared.attest.azure.net", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        X509Certificate2 cert = req.CreateSelfSigned(CertificatesFrom, CertificatesFrom.AddYears(1));
        _published.Add((kid, rsa, cert));
        return kid;
    }

    /// <summary>Signs <paramref name="claims"/> as the instance does (RS256, kid of the newest published key unless named).</summary>
    public string Sign(JsonObject claims, string? kid = null)
    {
        var signer = kid is null ? _published[^1] : _published.Single(p => p.Kid == kid);
        return Sign(claims, signer.Kid, signer.Key);
    }

    /// <summary>Signs with any RSA key under any kid (a forgery, when the key is not published).</summary>
    public static string Sign(JsonObject claims, string kid, RSA key)
    {
        string header = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(new JsonObject { ["alg"] = "RS256", ["kid"] = kid, ["typ"] = "JWT" }.ToJsonString()));
        string input = header + "." + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        return input + "." + Base64Url.EncodeToString(key.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
    }

    /// <summary>The common claims: issuer, 8-hour lifetime from <paramref name="issuedAt"/>, x-ms-ver, and x-ms-runtime with the nonce and keys.</summary>
    public JsonObject Claims(string attestationType, DateTimeOffset issuedAt, string nonce, params JsonNode[] runtimeKeys)
    {
        long iat = issuedAt.ToUnixTimeSeconds();
        return new JsonObject
        {
            ["iss"] = Issuer,
            ["iat"] = iat,
            ["nbf"] = iat,
            ["exp"] = iat + (8 * 3600),
            ["x-ms-ver"] = "1.0",
            ["x-ms-attestation-type"] = attestationType,
            ["x-ms-runtime"] = new JsonObject { ["nonce"] = nonce, ["keys"] = new JsonArray(runtimeKeys.Select(k => (JsonNode?)k.DeepClone()).ToArray()) },
        };
    }

    /// <summary>A SEV-SNP token's claims (x-ms-sevsnpvm-*), launch measurement <paramref name="measurementHex"/> (96 hex digits).</summary>
    public JsonObject SnpClaims(DateTimeOffset issuedAt, string nonce, string measurementHex, params JsonNode[] runtimeKeys)
    {
        JsonObject c = Claims("sevsnpvm", issuedAt, nonce, runtimeKeys);
        c["x-ms-compliance-status"] = "azure-compliant-uvm";
        c["x-ms-sevsnpvm-launchmeasurement"] = measurementHex;
        c["x-ms-sevsnpvm-hostdata"] = new string('0', 64);
        c["x-ms-sevsnpvm-is-debuggable"] = false;
        c["x-ms-sevsnpvm-vmpl"] = 0;
        c["x-ms-sevsnpvm-guestsvn"] = 2;
        c["x-ms-sevsnpvm-bootloader-svn"] = 3;
        c["x-ms-sevsnpvm-tee-svn"] = 0;
        c["x-ms-sevsnpvm-snpfw-svn"] = 8;
        c["x-ms-sevsnpvm-microcode-svn"] = 115;
        return c;
    }

    /// <summary>A TDX token's claims (tdx_*), MRTD <paramref name="mrTdHex"/> (96 hex digits), TCB status UpToDate.</summary>
    public JsonObject TdxClaims(DateTimeOffset issuedAt, string nonce, string mrTdHex, params JsonNode[] runtimeKeys)
    {
        JsonObject c = Claims("tdxvm", issuedAt, nonce, runtimeKeys);
        c["x-ms-compliance-status"] = "azure-compliant-cvm";
        c["tdx_mrtd"] = mrTdHex;
        c["tdx_rtmr0"] = new string('2', 96);
        c["tdx_td_attributes"] = "0000001000000000";
        c["tdx_td_attributes_debug"] = false;
        c["tdx_tee_tcb_svn"] = "0b010400000000000000000000000000";
        c["attester_tcb_status"] = "UpToDate";
        c["attester_advisory_ids"] = new JsonArray();
        return c;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (_, k, c) in _published)
        {
            k.Dispose();
            c.Dispose();
        }

        _published.Clear();
        await Service.DisposeAsync();
    }
}
