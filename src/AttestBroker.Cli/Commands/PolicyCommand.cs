using System.CommandLine;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Policy;
using AttestBroker.Verification;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker policy</c>: <c>test</c> verifies evidence exactly like <c>attestbroker verify</c> and evaluates a
/// release policy over the result without releasing anything (exit 0 granted, 1 denied, 2 usage, I/O or invalid
/// policy); <c>check</c> only validates a policy document (exit 0 valid, 2 invalid).
/// </summary>
internal static class PolicyCommand
{
    /// <summary>Policy files larger than this are refused unread (the parser accepts at most 256 Ki characters).</summary>
    private const long MaxPolicyBytes = 1024 * 1024;

    public static Command Create()
    {
        var command = new Command("policy", "Release policies: validate a policy document, or test one against evidence without releasing a key.");
        command.Subcommands.Add(CreateTest());
        command.Subcommands.Add(CreateCheck());
        return command;
    }

    private static Command CreateCheck()
    {
        var file = new Argument<string>("FILE") { Description = "The policy document, YAML or JSON (docs/policy.md)." };
        var command = new Command("check", "Validate a policy document: prints its name and version, or the first problem with the path of the field.") { file };
        command.SetAction(async (parse, ct) =>
        {
            var policy = ReadPolicy(parse.GetValue(file)!, "FILE");
            await parse.InvocationConfiguration.Output.WriteLineAsync($"valid: policy {policy.Name} (version {policy.Version}) allows {(policy.Tee.Count == 0 ? "no TEE kind" : string.Join(", ", policy.Tee))}").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateTest()
    {
        var policyFile = new Option<string>("--policy") { Description = "The policy document, YAML or JSON (docs/policy.md).", Required = true };
        var evidenceFile = new Option<string?>("--evidence") { Description = "The evidence: a TDX quote (v4, v5) or an SEV-SNP attestation report, raw binary (or --azure-token)." };
        var azureToken = new Option<string?>("--azure-token") { Description = "Instead of --evidence: a file holding a Microsoft Azure Attestation token (JWT); its nonce and key binding are not checked (nothing is released)." };
        var azureInstance = new Option<string?>("--azure-instance") { Description = "With --azure-token: the attestation instance (https URL, no path) the token must come from." };
        var azureJwks = new Option<string?>("--azure-jwks") { Description = "With --azure-token: the instance's signing keys as saved from {instance}/certs (offline); default: fetched from the instance." };
        var at = new Option<string?>("--at") { Description = "Verification time, RFC 3339 (e.g. 2026-03-20T10:41:14Z); default: now." };
        var collateral = new Option<string[]>("--collateral") { Description = "Collateral files or folders (repeatable), as for attestbroker verify.", AllowMultipleArgumentsPerToken = false };
        var vcek = new Option<string?>("--vcek") { Description = "The VCEK or VLEK (DER or PEM)." };
        var caChain = new Option<string?>("--ca-chain") { Description = "AMD ASK (or ASVK) and ARK, PEM or DER." };
        var trustSim = new Option<string?>("--trust-simulator") { Description = "Also trust the simulated roots of this attest-sim PKI folder; simulated evidence is then granted only if the policy sets allowSimulated. Never for production." };
        var skipCrl = new Option<bool>("--skip-crl") { Description = "Skip revocation checks; the policy then denies unless it sets allowUncheckedCrl." };
        var json = new Option<bool>("--json") { Description = "Print the decision, every failing rule and the verification result as one JSON object." };
        var ns = new Option<string?>("--namespace") { Description = "Evaluate as a requester from this Kubernetes namespace (for policies with a requester section)." };
        var sa = new Option<string?>("--service-account") { Description = "Evaluate as a requester with this Kubernetes service account (with --namespace)." };

        var command = new Command("test", "Verify evidence like attestbroker verify, then evaluate a release policy over the result without releasing anything. Exit 0 granted, 1 denied, 2 usage, I/O or invalid policy.")
        {
            policyFile, evidenceFile, at, collateral, vcek, caChain, trustSim, skipCrl, json, ns, sa, azureToken, azureInstance, azureJwks,
        };

        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var policy = ReadPolicy(parse.GetValue(policyFile)!, "--policy");
            if (parse.GetValue(azureToken) is { } tokenPath)
            {
                if (parse.GetValue(evidenceFile) is not null)
                {
                    throw new CliUsageException("give --evidence or --azure-token, not both");
                }

                return await AzureTokenTestAsync(policy, tokenPath, parse.GetValue(azureInstance), parse.GetValue(azureJwks), VerifyCommand.ParseTime(parse.GetValue(at)),
                    Requester(parse.GetValue(ns), parse.GetValue(sa)), parse.GetValue(json), output, ct).ConfigureAwait(false);
            }

            if (parse.GetValue(azureInstance) is not null || parse.GetValue(azureJwks) is not null)
            {
                throw new CliUsageException("--azure-instance and --azure-jwks go with --azure-token");
            }

            var evidencePath = parse.GetValue(evidenceFile) ?? throw new CliUsageException("--evidence (or --azure-token) is required");
            byte[] bytes;
            try
            {
                bytes = VerifyCommand.ReadEvidence(evidencePath);
            }
            catch (CliUsageException ex)
            {
                throw new CliUsageException($"--evidence: {evidencePath}: {ex.Message}", ex);
            }

            var requester = Requester(parse.GetValue(ns), parse.GetValue(sa));
            var trust = await VerifyCommand.TrustFromOptionAsync(parse.GetValue(trustSim), error).ConfigureAwait(false);

            var context = new VerificationContext(VerifyCommand.ParseTime(parse.GetValue(at)), trust) { SkipCrl = parse.GetValue(skipCrl) };
            var settings = new VerifierSettings
            {
                CollateralPaths = parse.GetValue(collateral) ?? [],
                VcekFile = parse.GetValue(vcek),
                CaChainFile = parse.GetValue(caChain),
            };

            using var verifiers = VerifierFactory.Create(settings);
            var result = await VerifyCommand.VerifyOneAsync(verifiers, bytes, null, context, ct).ConfigureAwait(false);
            var input = ToPolicyInput(result, context.At, trust.TrustsSimulator, requester);
            var decision = PolicyEvaluator.Evaluate(policy, input);
            if (parse.GetValue(json))
            {
                var o = decision.ToJson();
                o["evidence"] = evidencePath;
                o["verification"] = result.ToJson();
                await output.WriteLineAsync(o.ToJsonString()).ConfigureAwait(false);
            }
            else
            {
                await WriteTextAsync(output, evidencePath, result, decision).ConfigureAwait(false);
            }

            return decision.Granted ? ExitCodes.Success : ExitCodes.Failure;
        });
        return command;
    }

    /// <summary>
    /// policy test over an Azure Attestation token: checked like the broker checks it (signature under the instance's
    /// keys, issuer, lifetime at --at, claims) except the nonce and key binding, which need a live challenge.
    /// </summary>
    private static async Task<int> AzureTokenTestAsync(ReleasePolicy policy, string tokenPath, string? instance, string? jwksPath, DateTimeOffset at,
        RequesterIdentity? requester, bool json, TextWriter output, CancellationToken ct)
    {
        if (instance is null || !Uri.TryCreate(instance, UriKind.Absolute, out var instanceUri))
        {
            throw new CliUsageException("--azure-token needs --azure-instance, an https URL such as https://myprovider.eus2.attest.azure.net");
        }

        var options = new Verification.Azure.AzureAttestationOptions { Enabled = true, Instance = instanceUri };
        try
        {
            options.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new CliUsageException("--azure-instance: " + ex.Message.Split(" (Parameter", 2)[0], ex);
        }

        var token = (await ReadFileAsync(tokenPath, "--azure-token", ct).ConfigureAwait(false)).Trim();
        var jwks = jwksPath is null ? null : Encoding.UTF8.GetBytes(await ReadFileAsync(jwksPath, "--azure-jwks", ct).ConfigureAwait(false));

        using var http = jwks is null ? new HttpClient { Timeout = TimeSpan.FromSeconds(10) } : new HttpClient(new SavedJwksHandler(jwks));
        var verifier = new Verification.Azure.AzureAttestationTokenVerifier(options, http, new FixedTime(at));
        var result = await verifier.VerifyAsync(token, Verification.Azure.AzureTokenExpectations.Unbound, ct).ConfigureAwait(false);
        var input = ToPolicyInput(result, at, trustsSimulator: false, requester) with { AzureAttestation = true };
        var decision = PolicyEvaluator.Evaluate(policy, input);
        const string binding = "not checked: a dry run has no challenge, so x-ms-runtime's nonce and key are not compared (the broker checks them)";
        if (json)
        {
            var o = decision.ToJson();
            o["evidence"] = tokenPath;
            o["evidence_format"] = "azure-attestation-token";
            o["binding"] = binding;
            o["verification"] = result.ToJson();
            await output.WriteLineAsync(o.ToJsonString()).ConfigureAwait(false);
        }
        else
        {
            await WriteTextAsync(output, tokenPath, result, decision).ConfigureAwait(false);
            await output.WriteLineAsync("binding " + binding).ConfigureAwait(false);
        }

        return decision.Granted ? ExitCodes.Success : ExitCodes.Failure;
    }

    private static async Task<string> ReadFileAsync(string path, string option, CancellationToken ct)
    {
        try
        {
            return await File.ReadAllTextAsync(path, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"{option}: {path}: {ex.Message}", ex);
        }
    }

    /// <summary>Answers every request with the saved {instance}/certs document (policy test --azure-jwks).</summary>
    private sealed class SavedJwksHandler(byte[] jwks) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(new HttpResponseMessage(System.Net.HttpStatusCode.OK) { Content = new ByteArrayContent(jwks) });
    }

    private sealed class FixedTime(DateTimeOffset at) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => at;
    }

    /// <summary>
    /// The policy input for a verification result: its claims, reasons, simulated and CRL flags, at the verification
    /// time. Collateral issue dates are not yet part of a result, so a policy with maxCollateralAge denies.
    /// </summary>
    internal static PolicyInput ToPolicyInput(VerificationResult result, DateTimeOffset verifiedAt, bool trustsSimulator, RequesterIdentity? requester) =>
        new(result.Tee.ToWireName(), result.Claims.ToJson(), verifiedAt)
        {
            VerificationFailures = [.. result.Reasons.Select(r => new VerificationFailure(r.Code, r.Message))],
            Simulated = result.Simulated,
            CrlChecked = result.CrlChecked,
            TrustsSimulator = trustsSimulator,
            Requester = requester,
        };

    private static RequesterIdentity? Requester(string? ns, string? sa) => (ns, sa) switch
    {
        (null, null) => null,
        (not null, not null) => new RequesterIdentity(ns, sa),
        _ => throw new CliUsageException("--namespace and --service-account go together"),
    };

    /// <summary>Reads and validates a policy file; every problem is a usage error (exit 2) naming the file and the field.</summary>
    internal static ReleasePolicy ReadPolicy(string file, string option)
    {
        var info = new FileInfo(file);
        if (!info.Exists)
        {
            throw new CliUsageException($"{option}: {file}: no such file");
        }

        if (info.Length > MaxPolicyBytes)
        {
            throw new CliUsageException($"{option}: {file}: {info.Length} bytes is more than the {MaxPolicyBytes} bytes accepted for a policy");
        }

        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(File.ReadAllBytes(file));
        }
        catch (DecoderFallbackException ex)
        {
            throw new CliUsageException($"{option}: {file}: not UTF-8 text", ex);
        }

        try
        {
            return ReleasePolicy.Parse(text.TrimStart('\uFEFF'));
        }
        catch (PolicyFormatException ex)
        {
            throw new CliUsageException($"{option}: {file}: invalid policy: {ex.Message}", ex);
        }
    }

    private static async Task WriteTextAsync(TextWriter output, string file, VerificationResult result, PolicyDecision decision)
    {
        var verdict = decision.Granted ? "granted" : "denied";
        var sim = result.Simulated ? ", SIMULATED root" : string.Empty;
        var crl = result.CrlChecked ? string.Empty : ", CRL not checked";
        await output.WriteLineAsync($"{verdict} by policy {decision.PolicyName} (version {decision.PolicyVersion}) for {file} ({result.Tee.ToWireName()}{sim}{crl})").ConfigureAwait(false);
        foreach (var f in decision.Failures)
        {
            await output.WriteLineAsync($"  x {f.Code} [{f.Rule}] {f.Claim}: {f.Message}").ConfigureAwait(false);
            await output.WriteLineAsync($"      expected: {Show(f.Expected)}").ConfigureAwait(false);
            await output.WriteLineAsync($"      actual:   {Show(f.Actual)}").ConfigureAwait(false);
        }

        if (!decision.Granted && !decision.Explain)
        {
            await output.WriteLineAsync("  (the policy sets explain: false, so a requester is told only \"denied\")").ConfigureAwait(false);
        }
    }

    private static readonly JsonSerializerOptions Readable = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>A value for the terminal (not for HTML: quotes and apostrophes are left unescaped for legibility).</summary>
    private static string Show(JsonNode? node) => node is null ? "(absent)" : node.ToJsonString(Readable);
}
