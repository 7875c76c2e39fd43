using System.CommandLine;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.Policy;
using AttestBroker.Protocol;
using AttestBroker.Server;
using AttestBroker.Storage;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker demo</c>: the whole flow on one machine with no external service. A fresh simulated PKI and its
/// collateral, a broker on real HTTPS on 127.0.0.1 (ephemeral port, a dev certificate the client pins) trusting the
/// simulator for this run only, one key and its TDX policy, one pod that gets and unwraps the key, two pods that are
/// denied (a debug TD, a wrong MRTD), and the audit chain verified at the end. Exit 0 only when every step behaved.
/// </summary>
internal static class DemoCommand
{
    public const string KeyId = "model-llama";

    public static Command Create()
    {
        var keep = new Option<string?>("--keep") { Description = "Keep the demo's files (data directory, simulated PKI, collateral) in this directory instead of a deleted temporary one." };
        var command = new Command("demo", "Run a simulated pod through challenge, evidence, release and unwrap against a local broker, then two denied pods, then verify the audit log.") { keep };
        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var keepDir = parse.GetValue(keep);
            string root;
            if (keepDir is null)
            {
                root = Directory.CreateTempSubdirectory("attestbroker-demo-").FullName;
            }
            else
            {
                root = Path.GetFullPath(keepDir);
                if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
                {
                    throw new CliUsageException($"--keep: {root} exists and is not empty");
                }

                Directory.CreateDirectory(root);
            }

            try
            {
                var demo = new DemoRun(root, output);
                try
                {
                    await demo.RunAsync(ct).ConfigureAwait(false);
                }
                catch (DemoStepException ex)
                {
                    await error.WriteLineAsync($"demo failed at step {ex.Step}: {ex.Message}").ConfigureAwait(false);
                    return ExitCodes.Failure;
                }
                catch (SimulatorException ex)
                {
                    await error.WriteLineAsync($"demo failed while making simulated hardware: {ex.Message}").ConfigureAwait(false);
                    return ExitCodes.Failure;
                }
                catch (BrokerStartupException ex)
                {
                    await error.WriteLineAsync($"demo failed at step 1: the broker did not start: {ex.Message}").ConfigureAwait(false);
                    return ExitCodes.Failure;
                }

                await output.WriteLineAsync(keepDir is null ? "demo passed" : $"demo passed; files kept in {root} (broker data directory: {Path.Combine(root, "data")})").ConfigureAwait(false);
                return ExitCodes.Success;
            }
            finally
            {
                if (keepDir is null)
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
        });
        return command;
    }

    /// <summary>A demo step did not behave as expected.</summary>
    private sealed class DemoStepException : Exception
    {
        public DemoStepException(int step, string message)
            : base(message) => Step = step;

        public DemoStepException()
        {
        }

        public DemoStepException(string message)
            : base(message)
        {
        }

        public DemoStepException(string message, Exception innerException)
            : base(message, innerException)
        {
        }

        public int Step { get; }
    }

    private sealed class DemoRun
    {
        private readonly string _root;
        private readonly TextWriter _out;

        public DemoRun(string root, TextWriter output)
        {
            _root = root;
            _out = output;
        }

        public async Task RunAsync(CancellationToken ct)
        {
            var now = TimeProvider.System.GetUtcNow();
            var pkiDir = Path.Combine(_root, "pki");
            var collateralDir = Path.Combine(_root, "collateral");
            var dataDir = Path.Combine(_root, "data");
            var profile = SimProfile.Default();

            // Unseeded (fresh random keys from the platform generator) with no AMD chains: the demo pods are TDX, so only Intel's PKI and TDX collateral are made.
            using var pki = SimPki.Create(null, []);
            pki.Save(pkiDir);
            SimEvidence.CollateralForEvidence(pki, profile, TeeKind.Tdx, new EvidenceOptions(), now.AddHours(-1)).WriteTo(collateralDir);

            // The MRTD the policy pins: that of clean simulated evidence, as the verifier reports it.
            string mrTd;
            try
            {
                mrTd = SimulatedHardware.Text((await SimulatedHardware.CleanClaimsAsync(pki, profile, TeeKind.Tdx, pkiDir, collateralDir, now, ct).ConfigureAwait(false))["mr_td"]);
            }
            catch (PodException ex)
            {
                throw new DemoStepException(2, ex.Message);
            }

            var modelKey = RandomNumberGenerator.GetBytes(32);
            try
            {
                await using (var data = await BrokerData.OpenAsync(dataDir, null, ct).ConfigureAwait(false))
                {
                    await data.Keys.ImportAsync(KeyId, modelKey, ct).ConfigureAwait(false);
                    await data.SetPolicyAsync(KeyId, SimulatedHardware.Policy("demo-tdx", TeeKind.Tdx, new JsonObject { ["mr_td"] = mrTd }), "demo", now, ct).ConfigureAwait(false);
                }

                var broker = await LocalBroker.StartAsync(dataDir, pkiDir, collateralDir, "https://attestbroker.demo", null, ct).ConfigureAwait(false);
                await using (broker.ConfigureAwait(false))
                {
                    await _out.WriteLineAsync($"1. broker listening on {broker.Address.GetLeftPart(UriPartial.Authority)} (simulator trusted for this demo only; TLS certificate pinned by the client)").ConfigureAwait(false);
                    await _out.WriteLineAsync($"2. key {KeyId} created (32 random bytes, SHA-256 {Digest(modelKey)}), policy v1: tdx, mrTd = {Short(mrTd)}, debug forbidden, simulated evidence allowed").ConfigureAwait(false);

                    using var client = broker.CreateClient();
                    var pod = new PodClient(client, pki, profile);

                    await GoodPodAsync(pod, modelKey, ct).ConfigureAwait(false);
                    await DeniedPodAsync(pod, 4, "pod B (debug TD)", SimFault.Debug, PolicyCodes.DebugNotAllowed, "the TD's TDATTRIBUTES.DEBUG bit (bit 0) is set", ct).ConfigureAwait(false);
                    await DeniedPodAsync(pod, 5, "pod C (wrong MRTD)", SimFault.WrongMrtd, PolicyCodes.MeasurementMismatch, "its MRTD is not the pinned one", ct).ConfigureAwait(false);
                }

                await using (var data = await BrokerData.OpenAsync(dataDir, null, ct).ConfigureAwait(false))
                {
                    var verification = await data.Storage.Audit.VerifyAsync(null, ct).ConfigureAwait(false);
                    if (verification.FirstBreak is { } broken)
                    {
                        throw new DemoStepException(6, $"audit chain broken at row {broken.Sequence}: {broken.Kind.ToString().ToLowerInvariant()} ({broken.Detail})");
                    }

                    await _out.WriteLineAsync($"6. audit verify: {verification.RowsChecked} rows, chain intact").ConfigureAwait(false);
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(modelKey);
            }
        }

        private static async Task<(int Status, JsonNode? Body)> AttestAsync(PodClient pod, int step, ECDiffieHellman podKey, SimFault? fault, CancellationToken ct)
        {
            try
            {
                return await pod.AttestAsync(TeeKind.Tdx, podKey, KeyId, fault, ct).ConfigureAwait(false);
            }
            catch (PodException ex)
            {
                throw new DemoStepException(step, ex.Message);
            }
        }

        private async Task GoodPodAsync(PodClient pod, byte[] modelKey, CancellationToken ct)
        {
            const int Step = 3;
            using var podKey = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
            var (status, body) = await AttestAsync(pod, Step, podKey, null, ct).ConfigureAwait(false);
            if (status != 200)
            {
                throw new DemoStepException(Step, $"pod A was not granted: HTTP {status}, {ProblemSummary(body)}");
            }

            var jwe = PodClient.JweFor(body, KeyId);
            if (jwe is null)
            {
                throw new DemoStepException(Step, $"the grant carries no JWE for {KeyId}");
            }

            byte[] released;
            try
            {
                released = JweDecryptor.Decrypt(jwe, podKey);
            }
            catch (ProtocolException ex)
            {
                throw new DemoStepException(Step, $"the pod could not unwrap the JWE: {ex.Error}");
            }

            try
            {
                if (!CryptographicOperations.FixedTimeEquals(released, modelKey))
                {
                    throw new DemoStepException(Step, "the unwrapped key differs from the created key");
                }

                await _out.WriteLineAsync($"3. pod A (TDX, good): challenge → evidence → released {KeyId} ({released.Length} bytes, unwrapped with the pod's P-256 key; SHA-256 {Digest(released)}, equal to the created key)").ConfigureAwait(false);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(released);
            }
        }

        private async Task DeniedPodAsync(PodClient pod, int step, string label, SimFault fault, string expectedCode, string why, CancellationToken ct)
        {
            using var podKey = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
            var (status, body) = await AttestAsync(pod, step, podKey, fault, ct).ConfigureAwait(false);
            if (status == 200)
            {
                throw new DemoStepException(step, $"{label} was granted the key");
            }

            if (body?.ToJsonString().Contains("\"jwe\"", StringComparison.Ordinal) == true)
            {
                throw new DemoStepException(step, $"{label} was denied but the answer carries a JWE");
            }

            var entry = (body?["keys"] as JsonArray)?.FirstOrDefault(k => k?["key_id"]?.GetValueKind() == JsonValueKind.String && (string?)k["key_id"] == KeyId);
            var failures = (entry?["failures"] as JsonArray)?
                .Select(f => (Code: SimulatedHardware.Text(f?["code"]), Rule: SimulatedHardware.Text(f?["rule"])))
                .ToList() ?? [];
            if (status != 403 || failures.Count == 0 || failures.Any(f => f.Code != expectedCode))
            {
                throw new DemoStepException(step, $"{label}: expected a denial with {expectedCode}, got HTTP {status}, {ProblemSummary(body)}, failures [{string.Join(", ", failures.Select(f => f.Code))}]");
            }

            var reasons = string.Join("; ", failures.Select(f => $"{f.Code} (rule {f.Rule})"));
            await _out.WriteLineAsync($"{step}. {label}: denied: {reasons}: {why}").ConfigureAwait(false);
        }

        private static string ProblemSummary(JsonNode? body) => body is null ? "no body" : $"code {SimulatedHardware.Text(body["code"])}";
    }

    private static string Digest(byte[] key) => Convert.ToHexStringLower(SHA256.HashData(key))[..16] + "…";

    private static string Short(string hex) => hex.Length > 16 ? hex[..16] + "…" : hex;
}
