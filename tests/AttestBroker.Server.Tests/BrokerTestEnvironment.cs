using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.Protocol;
using AttestBroker.Verification;
using AttestBroker.Verification.Snp;
using AttestBroker.Verification.Tdx;

namespace AttestBroker.Server.Tests;

/// <summary>A clock the tests move by hand.</summary>
internal sealed class ManualTime : TimeProvider
{
    private DateTimeOffset _now;

    public ManualTime(DateTimeOffset now) => _now = now;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>
/// A simulated PKI and collateral, and a broker on real HTTPS on 127.0.0.1 (ephemeral port, a freshly generated
/// certificate the client pins), trusting the simulator, with keys and policies loaded through <see cref="BrokerData"/>.
/// </summary>
internal sealed class BrokerTestEnvironment : IAsyncDisposable
{
    public static readonly DateTimeOffset Issued = new(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);

    private BrokerTestEnvironment(string root, SimPki pki, string pkiDir, string collateralDir, Dictionary<TeeKind, JsonObject> claims)
    {
        Root = root;
        Pki = pki;
        PkiDir = pkiDir;
        CollateralDir = collateralDir;
        CleanClaims = claims;
    }

    public string Root { get; }

    public SimPki Pki { get; }

    public string PkiDir { get; }

    public string CollateralDir { get; }

    /// <summary>Claims of clean simulated evidence per TEE kind (for pinning measurements in policies).</summary>
    public Dictionary<TeeKind, JsonObject> CleanClaims { get; }

    /// <param name="seed">The simulated PKI's seed (deterministic, slow RSA key generation); null: a random PKI with fast RSA keys.</param>
    public static async Task<BrokerTestEnvironment> CreateAsync(ulong? seed = 11)
    {
        var root = Directory.CreateTempSubdirectory("ab-server-").FullName;
        var pkiDir = Path.Combine(root, "pki");
        var pki = SimPki.Create(seed);
        pki.Save(pkiDir);
        var collateralDir = Path.Combine(root, "collateral");
        var profile = SimProfile.Default();
        SimEvidence.Collateral(pki, [profile], new EvidenceOptions(), Issued).WriteTo(collateralDir);

        var trust = SimulatorTrust.AddFromPkiDirectory(TrustStore.Production, pkiDir);
        var context = new VerificationContext(Issued.AddHours(1), trust);
        var claims = new Dictionary<TeeKind, JsonObject>();
        foreach (var tee in new[] { TeeKind.Tdx, TeeKind.SevSnp })
        {
            IEvidenceVerifier verifier = tee == TeeKind.Tdx
                ? new TdxVerifier(TdxCollateralSource.FromPaths([collateralDir]))
                : new SnpVerifier(SnpCertificateSource.FromPaths([collateralDir], null, null));
            var result = await verifier.VerifyAsync(SimEvidence.Create(pki, profile, tee, new EvidenceOptions()), context);
            if (!result.IsAccepted)
            {
                throw new InvalidOperationException($"clean simulated {tee} evidence does not verify: {string.Join(", ", result.Reasons.Select(r => r.Code))}");
            }

            claims[tee] = result.Claims.ToJson();
        }

        return new BrokerTestEnvironment(root, pki, pkiDir, collateralDir, claims);
    }

    /// <summary>A TDX policy pinning the clean evidence's MRTD, optionally with other settings.</summary>
    public string TdxPolicy(string name, bool allowSimulated = true, string? mrTd = null, bool explain = true, bool allowDebug = false) =>
        $"name: {name}\nversion: 1\nexplain: {(explain ? "true" : "false")}\ntee: [tdx]\nallowSimulated: {(allowSimulated ? "true" : "false")}\nallowDebug: {(allowDebug ? "true" : "false")}\n" +
        $"tdx:\n  mrTd: [{mrTd ?? (string)CleanClaims[TeeKind.Tdx]["mr_td"]!}]\n";

    public string SnpPolicy(string name) =>
        $"name: {name}\nversion: 1\ntee: [sev-snp]\nallowSimulated: true\nsnp:\n  measurement: [{(string)CleanClaims[TeeKind.SevSnp]["measurement"]!}]\n";

    /// <summary>Simulated evidence whose REPORT_DATA binds the nonce and the public key.</summary>
    public byte[] Evidence(TeeKind tee, byte[] nonce, Jwk publicKey, SimFault? fault = null) => Evidence(tee, ReportDataBinding.Compute(nonce, publicKey), fault);

    public byte[] Evidence(TeeKind tee, byte[] reportData, SimFault? fault = null)
    {
        var options = new EvidenceOptions { ReportData = reportData };
        if (fault is { } f)
        {
            options.Faults.Add(f);
        }

        return SimEvidence.Create(Pki, SimProfile.Default(), tee, options);
    }

    public async ValueTask DisposeAsync()
    {
        Pki.Dispose();
        await Task.Yield();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>One running broker and an HTTPS client that pins its certificate.</summary>
internal sealed class RunningBroker : IAsyncDisposable
{
    private RunningBroker(BrokerHost host, HttpClient client, ManualTime time, string dataDir)
    {
        Host = host;
        Client = client;
        Time = time;
        DataDir = dataDir;
    }

    public BrokerHost Host { get; }

    public HttpClient Client { get; }

    public ManualTime Time { get; }

    public string DataDir { get; }

    public static async Task<RunningBroker> StartAsync(BrokerTestEnvironment env, Func<BrokerData, Task> seed, IDictionary<string, string?>? extra = null, bool trustSimulator = true,
        Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? configure = null)
    {
        var time = new ManualTime(BrokerTestEnvironment.Issued.AddHours(1));
        var dataDir = Path.Combine(env.Root, "data-" + Guid.NewGuid().ToString("N"));

        // Seed keys and policies through the same data-directory API the admin command uses.
        await using (var data = await BrokerData.OpenAsync(dataDir, time))
        {
            await seed(data);
        }

        using var certificate = BrokerHost.CreateDevelopmentCertificate(time.GetUtcNow());
        var certFile = Path.Combine(dataDir, "tls.crt");
        var keyFile = Path.Combine(dataDir, "tls.key");
        await File.WriteAllTextAsync(certFile, certificate.ExportCertificatePem());
        using (var key = certificate.GetECDsaPrivateKey()!)
        {
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());
        }

        var settings = new Dictionary<string, string?>
        {
            ["Broker:DataDirectory"] = dataDir,
            ["Broker:Port"] = "0",
            ["Broker:CertificateFile"] = certFile,
            ["Broker:CertificateKeyFile"] = keyFile,
            ["Broker:CollateralPaths:0"] = env.CollateralDir,
            ["Broker:Issuer"] = "https://broker.test",
            ["Broker:RateLimitPerMinute"] = "100000",
            ["Broker:MaxRequestBodyBytes"] = "262144",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        if (trustSimulator)
        {
            settings["Broker:TrustSimulatorPkiDirectory"] = env.PkiDir;
        }

        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
        {
            settings[k] = v;
        }

        var host = await BrokerHost.CreateAsync([], settings, time, configure);
        await host.StartAsync();
        var address = host.Addresses.Single();
        var pinned = certificate.GetCertHash(HashAlgorithmName.SHA256);
        var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, cert, _, _) =>
                cert is not null && CryptographicOperations.FixedTimeEquals(cert.GetCertHash(HashAlgorithmName.SHA256), pinned),
        };
        // HTTP/2 over TLS (ALPN), so an early 413 reaches the client while it is still sending the body.
        var client = new HttpClient(handler) { BaseAddress = address, DefaultRequestVersion = System.Net.HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        return new RunningBroker(host, client, time, dataDir);
    }

    public async Task<(int Status, JsonNode? Body, string? ContentType)> PostAsync(string path, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await Client.PostAsync(new Uri(path, UriKind.Relative), content);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), response.Content.Headers.ContentType?.MediaType);
    }

    public async Task<(byte[] Nonce, string Challenge)> ChallengeAsync(TeeKind tee)
    {
        var (status, body, _) = await PostAsync("/v1/challenge", $"{{\"tee\":\"{tee.ToWireName()}\"}}");
        if (status != 200)
        {
            throw new InvalidOperationException($"challenge failed: {status} {body}");
        }

        return (Base64UrlDecode((string)body!["nonce"]!), (string)body["challenge"]!);
    }

    public static string AttestJson(string challenge, byte[] evidence, Jwk publicKey, params string[] keyIds) =>
        new JsonObject
        {
            ["challenge"] = challenge,
            ["evidence"] = Base64UrlEncode(evidence),
            ["public_key"] = JsonNode.Parse(publicKey.ToJson()),
            ["key_ids"] = new JsonArray(keyIds.Select(k => (JsonNode?)k).ToArray()),
        }.ToJsonString();

    public static string Base64UrlEncode(byte[] data) => Convert.ToBase64String(data).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static byte[] Base64UrlDecode(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(s + new string('=', (4 - (s.Length % 4)) % 4));
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Host.DisposeAsync();
    }
}
