using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Server;
using AttestBroker.Server.Tests;
using AttestBroker.Storage;
using Microsoft.AspNetCore.Builder;

namespace AttestBroker.Replicas.Tests;

/// <summary>
/// Several brokers (BrokerHost over HTTPS on 127.0.0.1, each with its own data directory and its own connection
/// pool) on one PostgreSQL schema, sharing the KEK, the challenge MAC secret, the token-signing key and the admin
/// API's audit-head key (PKCS#8 DER) and local admin signing key (PKCS#8 PEM) through files, as docs/server.md tells operators to. <see cref="Db"/> is one more opening of the same database (as an
/// admin would), used to seed keys and policies, change them and read the audit log.
/// </summary>
internal sealed class ReplicaCluster : IAsyncDisposable
{
    public const string PostgresVariable = "ATTESTBROKER_TEST_POSTGRES";
    public const string GrantKey = "model-tdx";
    public const string SnpKey = "model-snp";
    public const string DenyKey = "model-other-mrtd";
    public const string OtherMrTd = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    private readonly Dictionary<string, string?> _baseSettings;
    private readonly byte[] _certHash;
    private int _next;

    private ReplicaCluster(BrokerTestEnvironment env, string root, string connectionString, string schema, ManualTime time, BrokerData db, Dictionary<string, string?> baseSettings, byte[] certHash)
    {
        Env = env;
        Root = root;
        ConnectionString = connectionString;
        Schema = schema;
        Time = time;
        Db = db;
        _baseSettings = baseSettings;
        _certHash = certHash;
    }

    public BrokerTestEnvironment Env { get; }

    public string Root { get; }

    public string ConnectionString { get; }

    public string Schema { get; }

    public ManualTime Time { get; }

    public BrokerData Db { get; }

    public List<Replica> Replicas { get; } = [];

    /// <summary>The deterministic key bytes imported under an id.</summary>
    public static byte[] KeyBytes(string keyId) => SHA256.HashData(Encoding.UTF8.GetBytes("replica test key " + keyId));

    /// <summary>The connection string of the shared test server, or Assert.Ignore with the reason.</summary>
    public static string RequirePostgres()
    {
        var cs = Environment.GetEnvironmentVariable(PostgresVariable);
        if (string.IsNullOrWhiteSpace(cs))
        {
            Assert.Ignore($"{PostgresVariable} is not set: the replica tests need an Npgsql connection string to a PostgreSQL database they may create schemas in (.ci/postgres.sh starts one)");
        }

        return cs!;
    }

    /// <summary>Makes shared secrets, seeds keys and policies in a fresh schema, and starts <paramref name="count"/> replicas.</summary>
    public static async Task<ReplicaCluster> StartAsync(BrokerTestEnvironment env, string connectionString, int count = 3, Action<int, WebApplicationBuilder>? configure = null, IDictionary<string, string?>? extra = null)
    {
        var time = new ManualTime(BrokerTestEnvironment.Issued.AddHours(1));
        var root = Path.Combine(env.Root, "cluster-" + Guid.NewGuid().ToString("N")[..8]);
        var shared = Path.Combine(root, "shared");
        CreatePrivateDirectory(shared);
        WriteSecret(Path.Combine(shared, "nonce.key"), RandomNumberGenerator.GetBytes(32));
        using (var signing = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            WriteSecret(Path.Combine(shared, "token-signing.key"), signing.ExportPkcs8PrivateKey());
        }

        using (var head = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        using (var admin = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            WriteSecret(Path.Combine(shared, "audit-head.key"), head.ExportPkcs8PrivateKey());
            WriteSecret(Path.Combine(shared, "admin-signing.key"), Encoding.ASCII.GetBytes(admin.ExportPkcs8PrivateKeyPem()));
        }

        var kekDir = Path.Combine(shared, "kek");
        CreatePrivateDirectory(kekDir);
        WriteSecret(Path.Combine(kekDir, "kek-v1.bin"), RandomNumberGenerator.GetBytes(32));

        using var certificate = BrokerHost.CreateDevelopmentCertificate(time.GetUtcNow());
        var certFile = Path.Combine(shared, "tls.crt");
        var keyFile = Path.Combine(shared, "tls.key");
        await File.WriteAllTextAsync(certFile, certificate.ExportCertificatePem());
        using (var key = certificate.GetECDsaPrivateKey()!)
        {
            WriteSecret(keyFile, Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem()));
        }

        var schema = "abrep_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5));
        var settings = new Dictionary<string, string?>
        {
            ["Broker:Port"] = "0",
            ["Broker:CertificateFile"] = certFile,
            ["Broker:CertificateKeyFile"] = keyFile,
            ["Broker:CollateralPaths:0"] = env.CollateralDir,
            ["Broker:TrustSimulatorPkiDirectory"] = env.PkiDir,
            ["Broker:Issuer"] = "https://broker.test",
            ["Broker:RateLimitPerMinute"] = "1000000",
            ["Broker:MaxRequestBodyBytes"] = "262144",
            ["Broker:Storage:Provider"] = "postgres",
            ["Broker:Storage:ConnectionString"] = connectionString,
            ["Broker:Storage:Schema"] = schema,
            ["Broker:Secrets:KekDirectory"] = kekDir,
            ["Broker:Secrets:NonceSecretFile"] = Path.Combine(shared, "nonce.key"),
            ["Broker:Secrets:TokenSigningKeyFile"] = Path.Combine(shared, "token-signing.key"),
            ["Broker:Secrets:AuditHeadKeyFile"] = Path.Combine(shared, "audit-head.key"),
            ["Broker:Secrets:AdminSigningKeyFile"] = Path.Combine(shared, "admin-signing.key"),
            // Errors only: each replica would otherwise repeat the simulated-roots warning.
            ["Logging:LogLevel:Default"] = "Error",
            // A request failing on a stopped database is answered with a 503 problem; its stack trace is not wanted in the test log.
            ["Logging:LogLevel:Microsoft.AspNetCore.Diagnostics"] = "None",
        };

        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
        {
            if (v is null)
            {
                settings.Remove(k);
            }
            else
            {
                settings[k] = v;
            }
        }

        var db = await BrokerData.OpenAsync(Options(settings, Path.Combine(root, "admin")), time);
        try
        {
            var now = time.GetUtcNow();
            foreach (var id in new[] { GrantKey, SnpKey, DenyKey })
            {
                await db.Keys.ImportAsync(id, KeyBytes(id));
            }

            await db.SetPolicyAsync(GrantKey, env.TdxPolicy("tdx-sim"), "test", now);
            await db.SetPolicyAsync(SnpKey, env.SnpPolicy("snp-sim"), "test", now);
            await db.SetPolicyAsync(DenyKey, env.TdxPolicy("tdx-other", mrTd: OtherMrTd), "test", now);
        }
        catch
        {
            await db.DisposeAsync();
            throw;
        }

        var cluster = new ReplicaCluster(env, root, connectionString, schema, time, db, settings, certificate.GetCertHash(HashAlgorithmName.SHA256));
        try
        {
            // Started together: their migrations race on the advisory lock.
            var started = await Task.WhenAll(Enumerable.Range(0, count).Select(i => cluster.StartReplicaAsync(i, configure)));
            cluster.Replicas.AddRange(started.OrderBy(r => r.Index));
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }

        return cluster;
    }

    /// <summary>The settings of replica <paramref name="index"/> (for start-up tests that change one).</summary>
    public Dictionary<string, string?> SettingsFor(int index) =>
        new(_baseSettings) { ["Broker:DataDirectory"] = Path.Combine(Root, "replica-" + index) };

    public async Task<Replica> StartReplicaAsync(int index, Action<int, WebApplicationBuilder>? configure = null)
    {
        var host = await BrokerHost.CreateAsync([], SettingsFor(index), Time, configure is null ? null : b => configure(index, b));
        await host.StartAsync();
        var pinned = _certHash;
        var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, cert, _, _) =>
                cert is not null && CryptographicOperations.FixedTimeEquals(cert.GetCertHash(HashAlgorithmName.SHA256), pinned),
        };
        var client = new HttpClient(handler)
        {
            BaseAddress = host.Addresses.Single(),
            DefaultRequestVersion = System.Net.HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(60),
        };
        return new Replica(index, host, client);
    }

    /// <summary>Round robin over every replica, stopped or not (a client does not know; it retries on the next).</summary>
    public Replica Next() => Replicas[(int)((uint)Interlocked.Increment(ref _next) % (uint)Replicas.Count)];

    /// <summary>Every audit row, in order, with its event parsed.</summary>
    public async Task<List<(AuditRecord Row, JsonObject Event)>> AuditRowsAsync()
    {
        var rows = await Db.Storage.Audit.ReadAsync(1, int.MaxValue);
        return rows.Select(r => (r, (JsonObject)JsonNode.Parse(r.EventJson)!)).ToList();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var r in Replicas)
        {
            await r.DisposeAsync();
        }

        if (Db.Storage is PostgresStorage pg)
        {
            try
            {
                await pg.DropSchemaAsync();
            }
            catch (StorageException)
            {
                // The database may be gone (fault tests); the schema is throw-away either way.
            }
            catch (Npgsql.NpgsqlException)
            {
            }
        }

        await Db.DisposeAsync();
    }

    private static BrokerOptions Options(Dictionary<string, string?> settings, string dataDirectory)
    {
        var o = new BrokerOptions { DataDirectory = dataDirectory };
        o.Storage.Provider = "postgres";
        o.Storage.ConnectionString = settings["Broker:Storage:ConnectionString"];
        o.Storage.Schema = settings["Broker:Storage:Schema"]!;
        o.Secrets.KekDirectory = settings["Broker:Secrets:KekDirectory"];
        o.Secrets.NonceSecretFile = settings["Broker:Secrets:NonceSecretFile"];
        o.Secrets.TokenSigningKeyFile = settings["Broker:Secrets:TokenSigningKeyFile"];
        return o;
    }

    private static void CreatePrivateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    private static void WriteSecret(string path, byte[] bytes)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var s = new FileStream(path, options))
        {
            s.Write(bytes);
        }

        CryptographicOperations.ZeroMemory(bytes);
    }
}

/// <summary>One running replica and an HTTPS client that pins the shared certificate.</summary>
internal sealed class Replica : IAsyncDisposable
{
    private int _disposed;

    public Replica(int index, BrokerHost host, HttpClient client)
    {
        Index = index;
        Host = host;
        Client = client;
    }

    public int Index { get; }

    public BrokerHost Host { get; }

    public HttpClient Client { get; }

    public bool Stopped => Volatile.Read(ref _disposed) != 0;

    public async Task<(int Status, JsonNode? Body)> PostAsync(string path, string json, CancellationToken ct = default)
    {
        using var content = new StringContent(json, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await Client.PostAsync(new Uri(path, UriKind.Relative), content, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    public async Task<(int Status, JsonNode? Body, string? MediaType)> GetAsync(string path, CancellationToken ct = default)
    {
        using var response = await Client.GetAsync(new Uri(path, UriKind.Relative), ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        return ((int)response.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text), response.Content.Headers.ContentType?.MediaType);
    }

    public async Task<(byte[] Nonce, string Challenge)?> ChallengeAsync(TeeKind tee, CancellationToken ct = default)
    {
        var (status, body) = await PostAsync("/v1/challenge", $"{{\"tee\":\"{tee.ToWireName()}\"}}", ct);
        return status == 200 ? (RunningBroker.Base64UrlDecode((string)body!["nonce"]!), (string)body["challenge"]!) : null;
    }

    /// <summary>Stops the replica abruptly: in-flight requests are cut (a cancelled stop), like a killed pod.</summary>
    public async Task KillAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            await Host.App.StopAsync(new CancellationToken(canceled: true));
        }
        catch (OperationCanceledException)
        {
        }

        await Host.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await Host.DisposeAsync();
        }

        Client.Dispose();
    }
}
