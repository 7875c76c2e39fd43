using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.Keys;
using AttestBroker.Protocol;
using AttestBroker.Server;
using AttestBroker.Verification;
using Microsoft.Extensions.DependencyInjection;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker bench release</c>: N simulated pods per concurrency level, each doing the whole protocol over
/// HTTPS on loopback (fresh P-256 key, challenge, simulator evidence bound to the nonce and the key, attest for one
/// key, unwrap, compare with the expected key), beside the verification-only rate of the same evidence kind measured
/// in the same run on the same cores. Exit 0 when the targets are met and no pod failed, 1 otherwise.
/// </summary>
internal static class BenchCommand
{
    public const string KeyId = "bench-model";
    private const double RatioTarget = 0.50;
    private const double P99TargetMs = 50;
    private const int P99TargetConcurrency = 64;

    /// <summary>
    /// Per release: two ES256 signatures (the simulated quote's, the result token's) and two ECDH agreements (the
    /// broker's and the pod's, for the JWE). The two key generations (the pod's key, the JWE's ephemeral key) are
    /// left out, which only lowers the floor.
    /// </summary>
    private const int EcOperationsPerRelease = 4;

    public static Command Create()
    {
        var bench = new Command("bench", "Load benchmarks of the broker.");
        bench.Subcommands.Add(CreateRelease());
        return bench;
    }

    private static Command CreateRelease()
    {
        var pods = new Option<int>("--pods") { Description = "Simulated pods per concurrency level (default 2000).", DefaultValueFactory = _ => 2000 };
        var concurrency = new Option<string>("--concurrency") { Description = "Comma-separated numbers of pods in flight at once (default 1,16,64).", DefaultValueFactory = _ => "1,16,64" };
        var tee = new Option<string>("--tee") { Description = "tdx or sev-snp (default tdx).", DefaultValueFactory = _ => "tdx" };
        var http = new Option<string>("--http") { Description = "HTTP version the pods speak over TLS: 1.1 (one connection per pod in flight) or 2 (default 1.1).", DefaultValueFactory = _ => "1.1" };
        var connections = new Option<string>("--connections") { Description = "shared: pods reuse a pool of kept-alive connections (default); per-pod: every pod opens its own TLS connection, as separate pods do, and pays the handshake.", DefaultValueFactory = _ => "shared" };
        var verifySeconds = new Option<double>("--verify-seconds") { Description = "How long each verification-only measurement runs (default 3).", DefaultValueFactory = _ => 3 };
        var broker = new Option<string?>("--broker") { Description = "Target a running broker at this https:// URL instead of starting one (needs --sim-pki and --key-id)." };
        var simPki = new Option<string?>("--sim-pki") { Description = "With --broker: the attest-sim PKI directory the broker trusts (Broker:TrustSimulatorPkiDirectory)." };
        var keyId = new Option<string?>("--key-id") { Description = "With --broker: the key to release; its policy must allow simulated evidence of the default profile." };
        var keySha256 = new Option<string?>("--key-sha256") { Description = "With --broker: hex SHA-256 of the expected key bytes (without it, every release must equal the first)." };
        var pin = new Option<string?>("--pin-sha256") { Description = "With --broker: accept only the TLS certificate with this hex SHA-256 (e.g. a --dev-cert broker); default: normal validation." };
        var release = new Command("release", "Run simulated pods through challenge, evidence, attest and unwrap over HTTPS at several concurrency levels; report releases/s, p50/p90/p99 latency and errors beside the verification-only rate measured in the same run. Targets: end-to-end >= 50% of verification-only, p99 < 50 ms at 64 pods.")
        {
            pods, concurrency, tee, http, connections, verifySeconds, broker, simPki, keyId, keySha256, pin,
        };
        release.SetAction(async (parse, ct) =>
        {
            var settings = new BenchSettings
            {
                Pods = parse.GetValue(pods) is var n and >= 1 and <= 1_000_000 ? n : throw new CliUsageException("--pods must be 1 .. 1000000"),
                Levels = ParseLevels(parse.GetRequiredValue(concurrency)),
                Tee = TeeKindNames.TryParse(parse.GetRequiredValue(tee), out var kind) ? kind : throw new CliUsageException("--tee must be tdx or sev-snp"),
                HttpVersion = parse.GetRequiredValue(http) switch
                {
                    "1.1" => HttpVersion.Version11,
                    "2" => HttpVersion.Version20,
                    _ => throw new CliUsageException("--http must be 1.1 or 2"),
                },
                VerifySeconds = parse.GetValue(verifySeconds) is var s and >= 0.5 and <= 600 ? s : throw new CliUsageException("--verify-seconds must be 0.5 .. 600"),
                ConnectionPerPod = parse.GetRequiredValue(connections) switch
                {
                    "shared" => false,
                    "per-pod" => true,
                    _ => throw new CliUsageException("--connections must be shared or per-pod"),
                },
            };
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var brokerUrl = parse.GetValue(broker);
            try
            {
                BenchReport report;
                if (brokerUrl is null)
                {
                    if (parse.GetValue(simPki) is not null || parse.GetValue(keyId) is not null || parse.GetValue(keySha256) is not null || parse.GetValue(pin) is not null)
                    {
                        throw new CliUsageException("--sim-pki, --key-id, --key-sha256 and --pin-sha256 go with --broker");
                    }

                    report = await RunOwnBrokerAsync(settings, output, ct).ConfigureAwait(false);
                }
                else
                {
                    var target = Uri.TryCreate(brokerUrl, UriKind.Absolute, out var u) && u.Scheme == Uri.UriSchemeHttps ? u : throw new CliUsageException("--broker must be an https:// URL");
                    var pkiDir = parse.GetValue(simPki) ?? throw new CliUsageException("--broker needs --sim-pki DIR (the simulated PKI the broker trusts)");
                    var id = parse.GetValue(keyId) ?? throw new CliUsageException("--broker needs --key-id (a key whose policy allows simulated evidence)");
                    var expected = parse.GetValue(keySha256) is { } h ? Hex(h, 32, "--key-sha256") : null;
                    var pinned = parse.GetValue(pin) is { } p ? Hex(p, 32, "--pin-sha256") : null;
                    report = await RunRemoteBrokerAsync(settings, target, pkiDir, id, expected, pinned, output, ct).ConfigureAwait(false);
                }

                return report.Passed ? ExitCodes.Success : ExitCodes.Failure;
            }
            catch (SimulatorException ex)
            {
                await error.WriteLineAsync("error: simulated hardware: " + ex.Message).ConfigureAwait(false);
                return ExitCodes.Usage;
            }
            catch (BrokerStartupException ex)
            {
                await error.WriteLineAsync("error: the broker did not start: " + ex.Message).ConfigureAwait(false);
                return ExitCodes.Failure;
            }
            catch (PodException ex)
            {
                await error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
                return ExitCodes.Failure;
            }
        });
        return release;
    }

    private static IReadOnlyList<int> ParseLevels(string text)
    {
        var levels = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var c) || c is < 1 or > 4096)
            {
                throw new CliUsageException($"--concurrency: \"{part}\" is not a number of pods 1 .. 4096");
            }

            levels.Add(c);
        }

        return levels.Count > 0 ? levels : throw new CliUsageException("--concurrency lists no level");
    }

    private static byte[] Hex(string text, int length, string option)
    {
        try
        {
            var bytes = Convert.FromHexString(text.Replace(":", string.Empty, StringComparison.Ordinal));
            return bytes.Length == length ? bytes : throw new CliUsageException($"{option} must be {length} bytes of hex");
        }
        catch (FormatException)
        {
            throw new CliUsageException($"{option} is not hex");
        }
    }

    /// <summary>A temporary broker on embedded defaults (SQLite, embedded keystore), the simulator trusted for this run, the rate limit raised.</summary>
    private static async Task<BenchReport> RunOwnBrokerAsync(BenchSettings settings, TextWriter output, CancellationToken ct)
    {
        var root = Directory.CreateTempSubdirectory("attestbroker-bench-").FullName;
        try
        {
            var now = TimeProvider.System.GetUtcNow();
            var pkiDir = Path.Combine(root, "pki");
            var collateralDir = Path.Combine(root, "collateral");
            var dataDir = Path.Combine(root, "data");
            var profile = SimProfile.Default();
            using var pki = SimPki.Create(null, settings.Tee == TeeKind.Tdx ? [] : [profile.SnpPlatform.Product]);
            pki.Save(pkiDir);
            SimEvidence.CollateralForEvidence(pki, profile, settings.Tee, new EvidenceOptions(), now.AddHours(-1)).WriteTo(collateralDir);
            var claims = await SimulatedHardware.CleanClaimsAsync(pki, profile, settings.Tee, pkiDir, collateralDir, now, ct).ConfigureAwait(false);

            var modelKey = RandomNumberGenerator.GetBytes(32);
            try
            {
                await using (var data = await BrokerData.OpenAsync(dataDir, null, ct).ConfigureAwait(false))
                {
                    await data.Keys.ImportAsync(KeyId, modelKey, ct).ConfigureAwait(false);
                    await data.SetPolicyAsync(KeyId, SimulatedHardware.Policy("bench", settings.Tee, claims), "bench", now, ct).ConfigureAwait(false);
                }

                var extra = new Dictionary<string, string?>(StringComparer.Ordinal) { ["Broker:RateLimitPerMinute"] = "1000000" };
                var broker = await LocalBroker.StartAsync(dataDir, pkiDir, collateralDir, "https://attestbroker.bench", extra, ct).ConfigureAwait(false);
                await using (broker.ConfigureAwait(false))
                {
                    var verifiers = broker.Host.App.Services.GetRequiredService<VerifierSet>();
                    var verifier = verifiers.Verifiers[settings.Tee];
                    using var client = broker.CreateClient(settings.HttpVersion, Math.Max(64, settings.Levels.Max()));
                    var expected = ExpectedKey.FromKey(modelKey);
                    var where = $"own broker at {broker.Address.GetLeftPart(UriPartial.Authority)} (SQLite in a temporary directory, simulator trusted for this run only, rate limit raised)";
                    var pods = new PodClient(client, pki, profile);
                    var recording = await FloorRecording.RecordAsync(pods, settings.Tee, broker.Host.App.Services.GetRequiredService<BrokerOptions>().MaxRequestBodyBytes, ct).ConfigureAwait(false);
                    return await new BenchRun(settings, pods, KeyId, expected, verifier, verifiers.Trust, verifiers.SkipCrl, pki, profile, output) { Floor = recording, NewClient = () => broker.CreateClient(settings.HttpVersion, 1) }
                        .RunAsync(where, ct).ConfigureAwait(false);
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(modelKey);
            }
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>A running broker that trusts <paramref name="pkiDir"/>; the verification-only rate uses the same verifier over collateral made from that PKI.</summary>
    private static async Task<BenchReport> RunRemoteBrokerAsync(BenchSettings settings, Uri target, string pkiDir, string keyId, byte[]? expectedSha256, byte[]? pinned, TextWriter output, CancellationToken ct)
    {
        if (!EmbeddedKeyStore.IsValidKeyId(keyId))
        {
            throw new CliUsageException("--key-id is not a valid key id");
        }

        var root = Directory.CreateTempSubdirectory("attestbroker-bench-").FullName;
        try
        {
            using var pki = SimPki.Load(pkiDir);
            var profile = SimProfile.Default();
            var collateralDir = Path.Combine(root, "collateral");
            SimEvidence.CollateralForEvidence(pki, profile, settings.Tee, new EvidenceOptions(), TimeProvider.System.GetUtcNow().AddHours(-1)).WriteTo(collateralDir);
            var trust = SimulatorTrust.AddFromPkiDirectory(TrustStore.Production, pkiDir);
            var verifier = SimulatedHardware.CreateVerifier(settings.Tee, collateralDir);
            using var client = LocalBroker.PinnedClient(target, pinned, settings.HttpVersion, Math.Max(64, settings.Levels.Max()));
            var expected = ExpectedKey.FromDigest(expectedSha256);
            var where = $"running broker at {target.GetLeftPart(UriPartial.Authority)}";
            return await new BenchRun(settings, new PodClient(client, pki, profile), keyId, expected, verifier, trust, false, pki, profile, output)
                {
                    BrokerInProcess = false,
                    NewClient = () => LocalBroker.PinnedClient(target, pinned, settings.HttpVersion, 1),
                }
                .RunAsync(where, ct).ConfigureAwait(false);
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private sealed class BenchSettings
    {
        public int Pods { get; init; }

        public IReadOnlyList<int> Levels { get; init; } = [];

        public TeeKind Tee { get; init; }

        public Version HttpVersion { get; init; } = System.Net.HttpVersion.Version11;

        public double VerifySeconds { get; init; }

        /// <summary>Every pod (and every floor exchange pair) on a connection of its own, TLS handshake included.</summary>
        public bool ConnectionPerPod { get; init; }
    }

    private sealed record BenchReport(bool Passed);

    /// <summary>A challenge and a grant as the broker answered them (the floor server replays these bytes), and the broker's body limit.</summary>
    private sealed record FloorRecording(byte[] ChallengeRequest, byte[] Challenge, byte[] AttestRequest, byte[] Grant, long MaxRequestBodyBytes)
    {
        /// <summary>One pod's exchange with the real broker, kept as bytes. Throws <see cref="PodException"/> when it is not a grant.</summary>
        public static async Task<FloorRecording> RecordAsync(PodClient pods, TeeKind tee, long maxRequestBodyBytes, CancellationToken ct)
        {
            using var podKey = EcdhAgreement.CreateKey(ECCurve.NamedCurves.nistP256);
            var jwk = Jwk.FromPublicKey(podKey);
            var (challengeStatus, challenge) = await pods.PostRawAsync("/v1/challenge", PodClient.ChallengeRequest(tee), ct).ConfigureAwait(false);
            byte[] nonce;
            string token;
            try
            {
                var parsed = challengeStatus == 200 ? System.Text.Json.Nodes.JsonNode.Parse(challenge) : null;
                nonce = PodClient.Base64UrlDecode(parsed?["nonce"]?.GetValue<string>() ?? throw new FormatException("no nonce"));
                token = parsed?["challenge"]?.GetValue<string>() ?? throw new FormatException("no challenge");
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or FormatException)
            {
                throw new PodException($"recording a challenge for the protocol floor failed: HTTP {challengeStatus}, {ex.Message}");
            }

            var evidence = pods.Evidence(tee, nonce, jwk);
            var challengeRequest = PodClient.ChallengeRequest(tee);
            var attestRequest = PodClient.AttestRequest(token, evidence, jwk, [KeyId]);
            var (status, grant) = await pods.PostRawAsync("/v1/attest", attestRequest, ct).ConfigureAwait(false);
            return status == 200
                ? new FloorRecording(challengeRequest, challenge, attestRequest, grant, maxRequestBodyBytes)
                : throw new PodException($"recording a grant for the protocol floor failed: HTTP {status}");
        }
    }

    /// <summary>
    /// What a released key must be: the key's SHA-256 when known (never the bytes: they are zeroed by the owner), or
    /// else the SHA-256 of the first release, which every later release must match.
    /// </summary>
    private sealed class ExpectedKey
    {
        private readonly Lock _lock = new();
        private byte[]? _sha256;

        private ExpectedKey(byte[]? sha256) => _sha256 = sha256;

        public static ExpectedKey FromKey(byte[] key) => new(SHA256.HashData(key));

        /// <summary>Null: the first release sets what every later one must equal.</summary>
        public static ExpectedKey FromDigest(byte[]? sha256) => new(sha256);

        public bool Matches(ReadOnlySpan<byte> released)
        {
            Span<byte> digest = stackalloc byte[32];
            SHA256.HashData(released, digest);
            lock (_lock)
            {
                _sha256 ??= digest.ToArray();
                return CryptographicOperations.FixedTimeEquals(digest, _sha256);
            }
        }
    }

    /// <summary>One pod's timings (milliseconds) or its failure.</summary>
    private readonly record struct PodResult(double LatencyMs, double EvidenceMs, string? Error);

    private sealed class BenchRun
    {
        private readonly BenchSettings _settings;
        private readonly PodClient _pods;
        private readonly string _keyId;
        private readonly ExpectedKey _expected;
        private readonly IEvidenceVerifier _verifier;
        private readonly TrustStore _trust;
        private readonly bool _skipCrl;
        private readonly SimPki _pki;
        private readonly SimProfile _profile;
        private readonly TextWriter _out;

        public BenchRun(BenchSettings settings, PodClient pods, string keyId, ExpectedKey expected, IEvidenceVerifier verifier, TrustStore trust, bool skipCrl, SimPki pki, SimProfile profile, TextWriter output)
        {
            _settings = settings;
            _pods = pods;
            _keyId = keyId;
            _expected = expected;
            _verifier = verifier;
            _trust = trust;
            _skipCrl = skipCrl;
            _pki = pki;
            _profile = profile;
            _out = output;
        }

        /// <summary>A client on a new connection, for <see cref="BenchSettings.ConnectionPerPod"/>.</summary>
        public Func<HttpClient>? NewClient { get; init; }

        /// <summary>False with --broker: this process's CPU is then the pods' alone.</summary>
        public bool BrokerInProcess { get; init; } = true;

        public async Task<BenchReport> RunAsync(string where, CancellationToken ct)
        {
            var cpuWho = BrokerInProcess ? "broker + pod" : "pods only; the broker runs elsewhere";
            var tee = _settings.Tee.ToWireName();
            var cores = Environment.ProcessorCount;
            var connectionsText = _settings.ConnectionPerPod ? "a TLS connection of its own per pod (handshake included)" : "kept-alive connections shared by successive pods";
            await _out.WriteLineAsync($"bench release: {tee}, {_settings.Pods} pods per level, HTTP/{_settings.HttpVersion} over TLS, {connectionsText}, {where}; {cores} cores shared by the broker and the pods").ConfigureAwait(false);

            // Client-side cost: what making one piece of simulated evidence takes on this machine (the pods do it on the same cores).
            var premade = new List<byte[]>();
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < Math.Min(_settings.Pods, 256); i++)
            {
                premade.Add(SimEvidence.Create(_pki, _profile, _settings.Tee, new EvidenceOptions { ReportData = RandomNumberGenerator.GetBytes(64) }));
            }

            var evidenceMs = sw.Elapsed.TotalMilliseconds / premade.Count;
            var (before, verifyCpuMs) = await VerificationRateAsync(premade, ct).ConfigureAwait(false);
            await _out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"verification only ({_verifier.GetType().Name}, {premade.Count} pieces of pre-made evidence, {cores} workers in-process, {_settings.VerifySeconds:0.#} s): {before:N0}/s, {verifyCpuMs:F3} ms CPU each")).ConfigureAwait(false);
            await _out.WriteLineAsync($"simulated evidence generation (client side, one core): {evidenceMs:F2} ms per pod").ConfigureAwait(false);

            // Warm-up (JIT, connections, caches); not counted. A first small round fails fast when nothing works; the
            // second lets tiered compilation replace the first, unoptimised code of the hot paths, which otherwise
            // costs the first levels measured a fifth more CPU per release than a broker that has been running.
            var warm = await RunLevelAsync(Math.Min(16, _settings.Levels.Max()), Math.Min(_settings.Pods, 64), ct).ConfigureAwait(false);
            if (warm.Results.All(r => r.Error is not null))
            {
                throw new PodException("every warm-up pod failed: " + warm.Results[0].Error);
            }

            var warmPods = Math.Min(_settings.Pods, 1000);
            await RunLevelAsync(_settings.Levels.Max(), warmPods, ct).ConfigureAwait(false);
            await _out.WriteLineAsync($"warm-up: {warm.Results.Count + warmPods} pods, not counted").ConfigureAwait(false);

            var rows = new List<(int Concurrency, LevelResult Result)>();
            foreach (var level in _settings.Levels)
            {
                rows.Add((level, await RunLevelAsync(level, _settings.Pods, ct).ConfigureAwait(false)));
            }

            var (after, verifyCpuAfterMs) = await VerificationRateAsync(premade, ct).ConfigureAwait(false);
            var verifyRate = Math.Max(before, after);
            await _out.WriteLineAsync($"verification only, again after the levels: {after:N0}/s; the ratios below use the higher, {verifyRate:N0}/s").ConfigureAwait(false);
            await _out.WriteLineAsync().ConfigureAwait(false);
            await _out.WriteLineAsync($"| pods in flight | releases/s | p50 ms | p90 ms | p99 ms | errors | evidence ms/pod (client) | CPU ms/release ({cpuWho}) | end-to-end / verification-only |").ConfigureAwait(false);
            await _out.WriteLineAsync("|---|---|---|---|---|---|---|---|---|").ConfigureAwait(false);
            foreach (var (c, r) in rows)
            {
                await _out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"| {c} | {r.Rate:N0} | {r.P(0.50):F1} | {r.P(0.90):F1} | {r.P(0.99):F1} | {r.Errors} | {r.MeanEvidenceMs:F2} | {r.CpuMsPerPod:F2} | {r.Rate / verifyRate:P0} |")).ConfigureAwait(false);
            }

            await _out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"CPU per release ({cpuWho}; this process only) / CPU per verification: {rows.Min(r => r.Result.CpuMsPerPod) / verifyCpuMs:F1} x at best; a machine shared with other work moves the rates, far less these CPU figures")).ConfigureAwait(false);

            await _out.WriteLineAsync().ConfigureAwait(false);
            foreach (var (message, count) in rows.SelectMany(r => r.Result.Results).Where(r => r.Error is not null).GroupBy(r => r.Error!).Select(g => (g.Key, g.Count())).OrderByDescending(g => g.Item2).Take(5))
            {
                await _out.WriteLineAsync($"error x{count}: {message}").ConfigureAwait(false);
            }

            var best = rows.MaxBy(r => r.Result.Rate);
            var ratio = best.Result.Rate / verifyRate;
            var ratioMet = ratio >= RatioTarget;
            var judged = rows.Any(r => r.Concurrency == P99TargetConcurrency) ? rows.First(r => r.Concurrency == P99TargetConcurrency) : rows.MaxBy(r => r.Concurrency);
            var p99 = judged.Result.P(0.99);
            var p99Met = p99 < P99TargetMs;
            var errors = rows.Sum(r => r.Result.Errors);
            await _out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"target end-to-end >= {RatioTarget:P0} of verification-only: best level ({best.Concurrency} pods in flight) {best.Result.Rate:N0}/s = {ratio:P0}: {(ratioMet ? "met" : "NOT met")}"))
                .ConfigureAwait(false);
            await _out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"target p99 < {P99TargetMs:F0} ms at {P99TargetConcurrency} pods in flight: {p99:F1} ms at {judged.Concurrency}{(judged.Concurrency == P99TargetConcurrency ? string.Empty : " (64 not run; the highest level judged)")}: {(p99Met ? "met" : "NOT met")}"))
                .ConfigureAwait(false);
            await _out.WriteLineAsync($"errors (failed or wrong releases): {errors}").ConfigureAwait(false);
            if (Floor is not null)
            {
                await FloorAsync(Floor, Math.Min(verifyCpuMs, verifyCpuAfterMs), ct).ConfigureAwait(false);
            }

            return new BenchReport(ratioMet && p99Met && errors == 0);
        }

        /// <summary>A recording of the broker's challenge and grant when the broker runs in this process: the protocol floor is then measured after the levels.</summary>
        public FloorRecording? Floor { get; init; }

        /// <summary>
        /// The least CPU a release can take here, whatever the broker's design: the two HTTPS exchanges of the recorded
        /// sizes against <see cref="ProtocolFloor"/> (measured at the highest level, the same client settings as the
        /// pods), plus one verification (measured above), plus the elliptic-curve operations no release can skip. Prints
        /// the best rate and ratio that leaves on these cores, and the exchanges' own p99.
        /// </summary>
        private async Task FloorAsync(FloorRecording recording, double verifyCpuMs, CancellationToken ct)
        {
            var level = _settings.Levels.Max();
            await using var floor = await ProtocolFloor.StartAsync(recording.Challenge, recording.Grant, recording.MaxRequestBodyBytes, ct).ConfigureAwait(false);
            using var client = floor.CreateClient(_settings.HttpVersion, Math.Max(64, level));
            var pods = new PodClient(client, _pki, _profile);
            Func<HttpClient>? perPair = _settings.ConnectionPerPod ? () => floor.CreateClient(_settings.HttpVersion, 1) : null;
            await ExchangesAsync(pods, perPair, recording, Math.Min(16, level), Math.Min(_settings.Pods, 64), ct).ConfigureAwait(false);
            await ExchangesAsync(pods, perPair, recording, level, Math.Min(_settings.Pods, 1000), ct).ConfigureAwait(false);
            var http = await ExchangesAsync(pods, perPair, recording, level, _settings.Pods, ct).ConfigureAwait(false);
            var signature = ProtocolFloor.SignatureCpuMs(0.5);
            var crypto = EcOperationsPerRelease * signature;
            var cores = Environment.ProcessorCount;
            var leastCpuMs = http.CpuMsPerPod + verifyCpuMs + crypto;
            // In CPU terms, which other load on the machine moves far less than rates: verification-only keeps every core
            // busy verifying, so the best end-to-end / verification-only ratio is CPU per verification / least CPU per release.
            var bestRate = cores * 1000.0 / leastCpuMs;
            var bestRatio = verifyCpuMs / leastCpuMs;
            await _out.WriteLineAsync().ConfigureAwait(false);
            await _out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"protocol floor: the two HTTPS exchanges alone (recorded requests of {recording.ChallengeRequest.Length} and {recording.AttestRequest.Length} bytes, recorded answers of {recording.Challenge.Length} and {recording.Grant.Length} bytes, the same client and server stack), {level} in flight: {http.Rate:N0}/s, p50 {http.P(0.50):F1} ms, p99 {http.P(0.99):F1} ms, {http.CpuMsPerPod:F3} ms CPU per pair (client + server); errors {http.Errors}"))
                .ConfigureAwait(false);
            await _out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"elliptic-curve operations no release can skip: the simulated quote's and the result token's ES256 signatures, the broker's and the pod's ECDH agreements for the JWE, each agreement priced as a signature (it costs more); the two key generations left out: {EcOperationsPerRelease} x {signature:F4} ms = {crypto:F3} ms CPU"))
                .ConfigureAwait(false);
            await _out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"best any broker could reach here: a release needs at least {http.CpuMsPerPod:F3} exchanges + {verifyCpuMs:F3} verification + {crypto:F3} EC = {leastCpuMs:F3} ms CPU against {verifyCpuMs:F3} ms for a verification alone, so end-to-end is at most {bestRatio:P0} of verification-only ({bestRate:N0}/s on {cores} idle cores): the {RatioTarget:P0} target is {(bestRatio >= RatioTarget ? "within reach" : "beyond this machine")}"))
                .ConfigureAwait(false);
            await _out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"the exchanges alone at {level} in flight have p99 {http.P(0.99):F1} ms: the p99 < {P99TargetMs:F0} ms target is {(http.P(0.99) < P99TargetMs ? "not excluded by them" : "beyond this machine")}"))
                .ConfigureAwait(false);
        }

        /// <summary>
        /// Pairs of recorded exchanges (challenge, attest), <paramref name="concurrency"/> at a time, each pair on a fresh
        /// connection from <paramref name="perPair"/> when given; a pair counts as an error unless both answer 200.
        /// </summary>
        private Task<LevelResult> ExchangesAsync(PodClient shared, Func<HttpClient>? perPair, FloorRecording recording, int concurrency, int pairs, CancellationToken ct)
            => RunConcurrentlyAsync(concurrency, pairs, c => ExchangeAsync(shared, perPair, recording, c), ct);

        /// <summary>One recorded pair (challenge, attest), on its own connection when <paramref name="perPair"/> is given.</summary>
        private async Task<PodResult> ExchangeAsync(PodClient shared, Func<HttpClient>? perPair, FloorRecording recording, CancellationToken ct)
        {
            using var own = perPair?.Invoke();
            var client = own is null ? shared : new PodClient(own, _pki, _profile);
            try
            {
                var t0 = Stopwatch.GetTimestamp();
                var (s1, _) = await client.PostRawAsync("/v1/challenge", recording.ChallengeRequest, ct).ConfigureAwait(false);
                var (s2, _) = await client.PostRawAsync("/v1/attest", recording.AttestRequest, ct).ConfigureAwait(false);
                return s1 == 200 && s2 == 200
                    ? new PodResult(Stopwatch.GetElapsedTime(t0).TotalMilliseconds, 0, null)
                    : new PodResult(0, 0, $"the floor answered HTTP {s1} and {s2}");
            }
            catch (PodException ex)
            {
                return new PodResult(0, 0, ex.Message);
            }
        }

        /// <summary>Verifications per second of pre-made evidence on every core, with the broker's context (time now, same trust, same CRL setting).</summary>
        private async Task<(double Rate, double CpuMs)> VerificationRateAsync(IReadOnlyList<byte[]> evidence, CancellationToken ct)
        {
            var context = new VerificationContext(TimeProvider.System.GetUtcNow(), _trust) { SkipCrl = _skipCrl };
            for (var i = 0; i < Math.Min(evidence.Count, 32); i++)
            {
                var warm = await _verifier.VerifyAsync(evidence[i], context, ct).ConfigureAwait(false);
                if (!warm.IsAccepted)
                {
                    throw new PodException($"pre-made simulated evidence does not verify: {string.Join(", ", warm.Reasons.Select(r => r.Code))}");
                }
            }

            var deadline = Stopwatch.GetTimestamp() + (long)(_settings.VerifySeconds * Stopwatch.Frequency);
            long total = 0;
            var cpu = ProcessCpu();
            var sw = Stopwatch.StartNew();
            var workers = Enumerable.Range(0, Environment.ProcessorCount).Select(w => Task.Run(
                async () =>
                {
                    long count = 0;
                    var i = w;
                    while (Stopwatch.GetTimestamp() < deadline)
                    {
                        var result = await _verifier.VerifyAsync(evidence[i % evidence.Count], context, ct).ConfigureAwait(false);
                        if (!result.IsAccepted)
                        {
                            throw new PodException("pre-made simulated evidence stopped verifying: " + string.Join(", ", result.Reasons.Select(r => r.Code)));
                        }

                        count++;
                        i++;
                    }

                    Interlocked.Add(ref total, count);
                },
                ct)).ToList();
            await Task.WhenAll(workers).ConfigureAwait(false);
            return (total / sw.Elapsed.TotalSeconds, (ProcessCpu() - cpu).TotalMilliseconds / Math.Max(1, total));
        }

        /// <summary>CPU time of this process (broker and pods; other processes on the machine do not count).</summary>
        private static TimeSpan ProcessCpu()
        {
            using var self = Process.GetCurrentProcess();
            return self.TotalProcessorTime;
        }

        private Task<LevelResult> RunLevelAsync(int concurrency, int pods, CancellationToken ct)
            => RunConcurrentlyAsync(concurrency, pods, PodAsync, ct);

        /// <summary>Runs <paramref name="one"/> <paramref name="count"/> times, <paramref name="concurrency"/> at a time; wall and process CPU time of the whole.</summary>
        private static async Task<LevelResult> RunConcurrentlyAsync(int concurrency, int count, Func<CancellationToken, Task<PodResult>> one, CancellationToken ct)
        {
            var results = new PodResult[count];
            var next = -1;
            var cpu = ProcessCpu();
            var sw = Stopwatch.StartNew();
            var workers = Enumerable.Range(0, Math.Min(concurrency, count)).Select(_ => Task.Run(
                async () =>
                {
                    int i;
                    while ((i = Interlocked.Increment(ref next)) < count)
                    {
                        results[i] = await one(ct).ConfigureAwait(false);
                    }
                },
                ct)).ToList();
            await Task.WhenAll(workers).ConfigureAwait(false);
            return new LevelResult(results, sw.Elapsed.TotalSeconds, ProcessCpu() - cpu);
        }

        /// <summary>One pod: fresh key, challenge, evidence, attest, unwrap, compare. Latency is the two round trips as the pod sees them.</summary>
        private async Task<PodResult> PodAsync(CancellationToken ct)
        {
            using var own = _settings.ConnectionPerPod ? NewClient?.Invoke() : null;
            var pods = own is null ? _pods : new PodClient(own, _pki, _profile);
            using var podKey = EcdhAgreement.CreateKey(ECCurve.NamedCurves.nistP256);
            var jwk = Jwk.FromPublicKey(podKey);
            try
            {
                var t0 = Stopwatch.GetTimestamp();
                var (nonce, challenge) = await pods.ChallengeAsync(_settings.Tee, ct).ConfigureAwait(false);
                var t1 = Stopwatch.GetTimestamp();
                var evidence = pods.Evidence(_settings.Tee, nonce, jwk);
                var t2 = Stopwatch.GetTimestamp();
                var (status, body) = await pods.AttestAsync(challenge, evidence, jwk, [_keyId], ct).ConfigureAwait(false);
                var t3 = Stopwatch.GetTimestamp();
                var latency = Stopwatch.GetElapsedTime(t0, t1) + Stopwatch.GetElapsedTime(t2, t3);
                var evidenceTime = Stopwatch.GetElapsedTime(t1, t2);
                if (status != 200)
                {
                    return new PodResult(0, 0, $"attest answered HTTP {status} ({SimulatedHardware.Text(body?["code"])})");
                }

                var jwe = PodClient.JweFor(body, _keyId);
                if (jwe is null)
                {
                    return new PodResult(0, 0, "the grant carries no JWE for the key");
                }

                byte[] released;
                try
                {
                    released = JweDecryptor.Decrypt(jwe, podKey);
                }
                catch (ProtocolException ex)
                {
                    return new PodResult(0, 0, $"the JWE does not unwrap ({ex.Error})");
                }

                try
                {
                    return _expected.Matches(released)
                        ? new PodResult(latency.TotalMilliseconds, evidenceTime.TotalMilliseconds, null)
                        : new PodResult(0, 0, "the released key is not the expected key");
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(released);
                }
            }
            catch (PodException ex)
            {
                return new PodResult(0, 0, ex.Message);
            }
        }
    }

    private sealed class LevelResult
    {
        private readonly double[] _sorted;

        public LevelResult(PodResult[] results, double seconds, TimeSpan cpu)
        {
            Results = results;
            var ok = results.Where(r => r.Error is null).ToList();
            Errors = results.Length - ok.Count;
            Rate = ok.Count / seconds;
            CpuMsPerPod = cpu.TotalMilliseconds / Math.Max(1, results.Length);
            _sorted = ok.Select(r => r.LatencyMs).Order().ToArray();
            MeanEvidenceMs = ok.Count == 0 ? double.NaN : ok.Average(r => r.EvidenceMs);
        }

        public IReadOnlyList<PodResult> Results { get; }

        public int Errors { get; }

        public double Rate { get; }

        public double MeanEvidenceMs { get; }

        /// <summary>CPU time of this process per pod: the broker's and the simulated pod's work together.</summary>
        public double CpuMsPerPod { get; }

        /// <summary>Nearest-rank percentile of the successful pods' latency (NaN when none succeeded).</summary>
        public double P(double q) => _sorted.Length == 0 ? double.NaN : _sorted[Math.Clamp((int)Math.Ceiling(q * _sorted.Length) - 1, 0, _sorted.Length - 1)];
    }
}
