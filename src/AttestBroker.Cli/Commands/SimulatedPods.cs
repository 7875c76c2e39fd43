using System.Buffers;
using System.Buffers.Text;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.Protocol;
using AttestBroker.Server;
using AttestBroker.Verification;
using AttestBroker.Verification.Snp;
using AttestBroker.Verification.Tdx;

namespace AttestBroker.Cli.Commands;

/// <summary>A simulated pod's request went wrong (transport, an unreadable answer, a challenge refused). Never carries key bytes.</summary>
internal sealed class PodException : Exception
{
    public PodException(string message)
        : base(message)
    {
    }

    public PodException()
    {
    }

    public PodException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// A broker on real HTTPS on 127.0.0.1 over a data directory (ephemeral port; a fresh self-signed certificate whose
/// private key is written 0600 next to the data), trusting a simulated PKI for this run only. Used by
/// <c>attestbroker demo</c> and <c>attestbroker bench release</c>; clients from <see cref="CreateClient"/> pin the certificate.
/// </summary>
internal sealed class LocalBroker : IAsyncDisposable
{
    private readonly byte[] _pinnedCertificateHash;

    private LocalBroker(BrokerHost host, Uri address, byte[] pinned)
    {
        Host = host;
        Address = address;
        _pinnedCertificateHash = pinned;
    }

    public BrokerHost Host { get; }

    public Uri Address { get; }

    /// <summary>
    /// Starts the broker. <paramref name="extraSettings"/> override the defaults (e.g. "Broker:RateLimitPerMinute").
    /// Throws <see cref="BrokerStartupException"/> when it does not start.
    /// </summary>
    public static async Task<LocalBroker> StartAsync(string dataDir, string pkiDir, string collateralDir, string issuer, IReadOnlyDictionary<string, string?>? extraSettings, CancellationToken ct)
    {
        Directory.CreateDirectory(dataDir);
        using var certificate = BrokerHost.CreateDevelopmentCertificate(TimeProvider.System.GetUtcNow());
        var certFile = Path.Combine(dataDir, "tls.crt");
        var certKeyFile = Path.Combine(dataDir, "tls.key");
        await File.WriteAllTextAsync(certFile, certificate.ExportCertificatePem(), ct).ConfigureAwait(false);
        using (var key = certificate.GetECDsaPrivateKey()!)
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using var stream = new FileStream(certKeyFile, options);
            using var writer = new StreamWriter(stream);
            writer.Write(key.ExportPkcs8PrivateKeyPem());
        }

        var settings = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["Broker:DataDirectory"] = dataDir,
            ["Broker:ListenAddress"] = "127.0.0.1",
            ["Broker:Port"] = "0",
            ["Broker:CertificateFile"] = certFile,
            ["Broker:CertificateKeyFile"] = certKeyFile,
            ["Broker:CollateralPaths:0"] = collateralDir,
            ["Broker:TrustSimulatorPkiDirectory"] = pkiDir,
            ["Broker:Issuer"] = issuer,
            ["Logging:LogLevel:Default"] = "Error",
        };
        foreach (var (k, v) in extraSettings ?? new Dictionary<string, string?>())
        {
            settings[k] = v;
        }

        var host = await BrokerHost.CreateAsync([], settings, cancellationToken: ct).ConfigureAwait(false);
        try
        {
            await host.StartAsync(ct).ConfigureAwait(false);
            var address = host.Addresses.FirstOrDefault() ?? throw new BrokerStartupException("the broker did not report a listening address");
            return new LocalBroker(host, address, certificate.GetCertHash(HashAlgorithmName.SHA256));
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>An HTTPS client for this broker that accepts only its certificate (by SHA-256 of the certificate).</summary>
    public HttpClient CreateClient(Version? httpVersion = null, int maxConnections = 64) =>
        PinnedClient(Address, _pinnedCertificateHash, httpVersion, maxConnections);

    /// <summary>
    /// A client whose TLS check is a pin (SHA-256 of the server certificate) when <paramref name="pinnedSha256"/> is
    /// given, the platform's normal validation otherwise. Connections are kept and reused.
    /// </summary>
    public static HttpClient PinnedClient(Uri address, byte[]? pinnedSha256, Version? httpVersion, int maxConnections)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = maxConnections,
            EnableMultipleHttp2Connections = true,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        };
        if (pinnedSha256 is not null)
        {
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, cert, _, _) =>
                    cert is not null && CryptographicOperations.FixedTimeEquals(cert.GetCertHash(HashAlgorithmName.SHA256), pinnedSha256),
            };
        }

        return new HttpClient(handler)
        {
            BaseAddress = address,
            Timeout = TimeSpan.FromSeconds(30),
            DefaultRequestVersion = httpVersion ?? HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
    }

    public async ValueTask DisposeAsync() => await Host.DisposeAsync().ConfigureAwait(false);
}

/// <summary>Simulated hardware for a local run: its PKI saved to a folder, collateral written beside it, and the claims of clean evidence.</summary>
internal static class SimulatedHardware
{
    /// <summary>The claims the verifier reports for clean simulated evidence of <paramref name="tee"/> (to pin measurements in a policy).</summary>
    public static async Task<JsonObject> CleanClaimsAsync(SimPki pki, SimProfile profile, TeeKind tee, string pkiDir, string collateralDir, DateTimeOffset now, CancellationToken ct)
    {
        var trust = SimulatorTrust.AddFromPkiDirectory(TrustStore.Production, pkiDir);
        var verifier = CreateVerifier(tee, collateralDir);
        var result = await verifier.VerifyAsync(SimEvidence.Create(pki, profile, tee, new EvidenceOptions()), new VerificationContext(now, trust), ct).ConfigureAwait(false);
        if (!result.IsAccepted)
        {
            throw new PodException($"clean simulated {tee.ToWireName()} evidence does not verify: {string.Join(", ", result.Reasons.Select(r => r.Code))}");
        }

        return result.Claims.ToJson();
    }

    /// <summary>The verifier the broker builds for <paramref name="tee"/> over collateral files.</summary>
    public static IEvidenceVerifier CreateVerifier(TeeKind tee, string collateralDir) => tee == TeeKind.Tdx
        ? new TdxVerifier(TdxCollateralSource.FromPaths([collateralDir]))
        : new SnpVerifier(SnpCertificateSource.FromPaths([collateralDir], null, null));

    /// <summary>A release policy for <paramref name="tee"/> that pins the clean evidence's MRTD or measurement and accepts simulated evidence.</summary>
    public static string Policy(string name, TeeKind tee, JsonObject cleanClaims)
    {
        var common = $"name: {name}\nversion: 1\nexplain: true\ntee: [{tee.ToWireName()}]\nallowSimulated: true\nallowDebug: false\n";
        return tee == TeeKind.Tdx
            ? common + $"tdx:\n  mrTd: [{Text(cleanClaims["mr_td"])}]\n"
            : common + $"snp:\n  measurement: [{Text(cleanClaims["measurement"])}]\n";
    }

    internal static string Text(JsonNode? node) => node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? (string)v! : "?";
}

/// <summary>What a pod does: ask for a challenge, make simulated evidence bound to the nonce and its public key, attest, unwrap.</summary>
internal sealed class PodClient
{
    private readonly HttpClient _client;
    private readonly SimPki _pki;
    private readonly SimProfile _profile;

    public PodClient(HttpClient client, SimPki pki, SimProfile profile)
    {
        _client = client;
        _pki = pki;
        _profile = profile;
    }

    /// <summary>POST /v1/challenge: the nonce and the opaque challenge token.</summary>
    public async Task<(byte[] Nonce, string Challenge)> ChallengeAsync(TeeKind tee, CancellationToken ct)
    {
        var (status, challenge) = await PostAsync("/v1/challenge", ChallengeRequest(tee), ct).ConfigureAwait(false);
        if (status != 200 || challenge?["nonce"] is not JsonValue nonceText || challenge["challenge"] is not JsonValue challengeText
            || nonceText.GetValueKind() != JsonValueKind.String || challengeText.GetValueKind() != JsonValueKind.String)
        {
            throw new PodException($"challenge failed: HTTP {status}{(challenge?["code"] is { } code ? ", code " + SimulatedHardware.Text(code) : string.Empty)}");
        }

        try
        {
            return (Base64UrlDecode((string)nonceText!), (string)challengeText!);
        }
        catch (FormatException)
        {
            throw new PodException("the challenge's nonce is not base64url");
        }
    }

    /// <summary>The body of POST /v1/challenge for <paramref name="tee"/>.</summary>
    public static byte[] ChallengeRequest(TeeKind tee) => Json(w => w.WriteString("tee", tee.ToWireName()));

    /// <summary>Simulated evidence whose REPORT_DATA is SHA-512(nonce || thumbprint of <paramref name="jwk"/>).</summary>
    public byte[] Evidence(TeeKind tee, byte[] nonce, Jwk jwk, SimFault? fault = null)
    {
        var options = new EvidenceOptions { ReportData = ReportDataBinding.Compute(nonce, jwk) };
        if (fault is { } f)
        {
            options.Faults.Add(f);
        }

        return SimEvidence.Create(_pki, _profile, tee, options);
    }

    /// <summary>POST /v1/attest for <paramref name="keyIds"/>; the status and the parsed body.</summary>
    public Task<(int Status, JsonNode? Body)> AttestAsync(string challenge, byte[] evidence, Jwk jwk, IEnumerable<string> keyIds, CancellationToken ct) =>
        PostAsync("/v1/attest", AttestRequest(challenge, evidence, jwk, keyIds), ct);

    /// <summary>The body of POST /v1/attest, written straight to UTF-8 as an agent would, not built as a JSON tree first.</summary>
    public static byte[] AttestRequest(string challenge, byte[] evidence, Jwk jwk, IEnumerable<string> keyIds) =>
        Json(w =>
        {
            w.WriteString("challenge", challenge);
            w.WriteString("evidence", Base64UrlEncode(evidence));
            w.WritePropertyName("public_key");
            w.WriteRawValue(jwk.ToJson(), skipInputValidation: true);
            w.WriteStartArray("key_ids");
            foreach (var k in keyIds)
            {
                w.WriteStringValue(k);
            }

            w.WriteEndArray();
        });

    /// <summary>The whole round trip for one key: challenge, evidence (with an optional fault), attest.</summary>
    public async Task<(int Status, JsonNode? Body)> AttestAsync(TeeKind tee, ECDiffieHellman podKey, string keyId, SimFault? fault, CancellationToken ct)
    {
        var jwk = Jwk.FromPublicKey(podKey);
        var (nonce, challenge) = await ChallengeAsync(tee, ct).ConfigureAwait(false);
        return await AttestAsync(challenge, Evidence(tee, nonce, jwk, fault), jwk, [keyId], ct).ConfigureAwait(false);
    }

    /// <summary>The JWE the grant carries for <paramref name="keyId"/>, or null.</summary>
    public static string? JweFor(JsonNode? body, string keyId)
    {
        var jwe = ((body as JsonObject)?["keys"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(k => k["key_id"]?.GetValueKind() == JsonValueKind.String && (string?)k["key_id"] == keyId)?["jwe"];
        return jwe is JsonValue v && v.GetValueKind() == JsonValueKind.String ? (string)v! : null;
    }

    /// <summary>A JSON object written by <paramref name="members"/>, as UTF-8.</summary>
    private static byte[] Json(Action<Utf8JsonWriter> members)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            members(w);
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>POSTs <paramref name="body"/> as JSON; the status and the answer's bytes, unparsed.</summary>
    public async Task<(int Status, byte[] Body)> PostRawAsync(string path, byte[] body, CancellationToken ct)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        try
        {
            using var response = await _client.PostAsync(new Uri(path, UriKind.Relative), content, ct).ConfigureAwait(false);
            return ((int)response.StatusCode, await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false));
        }
        catch (HttpRequestException ex)
        {
            throw new PodException($"{path}: {ex.Message}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new PodException($"{path}: no answer within {_client.Timeout.TotalSeconds:F0} s");
        }
    }

    private async Task<(int Status, JsonNode? Body)> PostAsync(string path, byte[] body, CancellationToken ct)
    {
        var (status, bytes) = await PostRawAsync(path, body, ct).ConfigureAwait(false);
        JsonNode? parsed = null;
        if (bytes.Length > 0)
        {
            try
            {
                parsed = JsonNode.Parse(bytes) as JsonObject ?? throw new PodException($"{path} answered HTTP {status} with JSON that is not an object");
            }
            catch (JsonException)
            {
                throw new PodException($"{path} answered HTTP {status} with a body that is not JSON");
            }
        }

        return (status, parsed);
    }

    public static string Base64UrlEncode(byte[] data) => Base64Url.EncodeToString(data);

    /// <summary>Unpadded base64url; throws <see cref="FormatException"/> for anything else.</summary>
    public static byte[] Base64UrlDecode(string text) =>
        text.Contains('=', StringComparison.Ordinal) ? throw new FormatException("padded") : Base64Url.DecodeFromChars(text);
}
