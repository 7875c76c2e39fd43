using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Verification;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker verify FILE...</c>: verifies each piece of evidence and prints one result per input. Exit 0 when
/// every input is accepted, 1 when any is rejected, 2 for usage or I/O errors. Bad evidence is a rejection with a
/// reason, never a crash.
/// </summary>
internal static class VerifyCommand
{
    /// <summary>Evidence larger than this is refused unread (real quotes are a few kilobytes).</summary>
    private const long MaxEvidenceBytes = 1024 * 1024;

    public static Command Create()
    {
        var files = new Argument<string[]>("FILE") { Description = "Evidence files: TDX quotes (v4, v5) or SEV-SNP attestation reports, raw binary.", Arity = ArgumentArity.OneOrMore };
        var tee = new Option<string?>("--tee") { Description = "tdx or sev-snp; detected from the bytes when absent." };
        tee.AcceptOnlyFromAmong(TeeKindNames.Tdx, TeeKindNames.SevSnp);
        var collateral = new Option<string[]>("--collateral") { Description = "Collateral files or folders (repeatable): Intel QuoteCollateralV3 JSON, PCS responses, CRLs, issuer chains; AMD VCEK/VLEK, ASK/ASVK/ARK, CRLs. Recognised by content.", AllowMultipleArgumentsPerToken = false };
        var vcek = new Option<string?>("--vcek") { Description = "The VCEK or VLEK (DER or PEM; a PEM with several certificates is the VCEK/VLEK first, then its chain)." };
        var caChain = new Option<string?>("--ca-chain") { Description = "AMD ASK (or ASVK) and ARK, PEM or DER." };
        var at = new Option<string?>("--at") { Description = "Verification time, RFC 3339 (e.g. 2026-03-20T10:41:14Z); default: now." };
        var fetch = new Option<bool>("--fetch-collateral") { Description = "Fetch missing collateral from Intel PCS v4 and AMD KDS (or --pcs-url / --kds-url), through the on-disk cache." };
        var pcsUrl = new Option<string?>("--pcs-url") { Description = "Base URL of Intel PCS or a caching service serving its v4 paths (with --fetch-collateral)." };
        var kdsUrl = new Option<string?>("--kds-url") { Description = "Base URL of AMD KDS or a caching service serving its paths (with --fetch-collateral)." };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "Collateral cache folder (default ~/.cache/attestbroker/collateral)." };
        var skipCrl = new Option<bool>("--skip-crl") { Description = "Explicitly skip revocation checks (offline use where no in-date CRL exists); results say crl_checked: false." };
        var json = new Option<bool>("--json") { Description = "One JSON object per input, one per line." };
        var trustSim = new Option<string?>("--trust-simulator") { Description = "Also trust the simulated roots of this attest-sim PKI folder. Results then say simulated: true. Never for production." };

        var command = new Command("verify", "Verify TDX quotes and SEV-SNP reports: signatures, certificate chains to Intel's and AMD's pinned roots, CRLs, TCB status from the vendor's collateral.")
        {
            files, tee, collateral, vcek, caChain, at, fetch, pcsUrl, kdsUrl, cacheDir, skipCrl, json, trustSim,
        };

        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var request = new VerifierSettings
            {
                CollateralPaths = parse.GetValue(collateral) ?? [],
                VcekFile = parse.GetValue(vcek),
                CaChainFile = parse.GetValue(caChain),
                FetchCollateral = parse.GetValue(fetch),
                PcsUrl = ParseUrl(parse.GetValue(pcsUrl), "--pcs-url"),
                KdsUrl = ParseUrl(parse.GetValue(kdsUrl), "--kds-url"),
                CacheDirectory = parse.GetValue(cacheDir),
            };

            var trust = await TrustFromOptionAsync(parse.GetValue(trustSim), error).ConfigureAwait(false);

            var context = new VerificationContext(ParseTime(parse.GetValue(at)), trust) { SkipCrl = parse.GetValue(skipCrl) };
            TeeKind? forced = TeeKindNames.TryParse(parse.GetValue(tee), out var k) ? k : null;
            var asJson = parse.GetValue(json);

            using var verifiers = VerifierFactory.Create(request);
            var exit = ExitCodes.Success;
            foreach (var file in parse.GetValue(files) ?? [])
            {
                byte[] bytes;
                try
                {
                    bytes = ReadEvidence(file);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CliUsageException)
                {
                    await error.WriteLineAsync($"error: {file}: {ex.Message}").ConfigureAwait(false);
                    exit = ExitCodes.Usage;
                    continue;
                }

                var result = await VerifyOneAsync(verifiers, bytes, forced, context, ct).ConfigureAwait(false);
                if (!result.IsAccepted && exit == ExitCodes.Success)
                {
                    exit = ExitCodes.Failure;
                }

                await WriteResultAsync(output, file, result, asJson).ConfigureAwait(false);
            }

            return exit;
        });
        return command;
    }

    /// <summary>
    /// The production roots, plus the simulated roots of <paramref name="simulatorPkiDir"/> when the operator named
    /// one (--trust-simulator), with a warning on the error stream. Shared by every command that verifies evidence.
    /// </summary>
    internal static async Task<TrustStore> TrustFromOptionAsync(string? simulatorPkiDir, TextWriter error)
    {
        var trust = TrustStore.Production;
        if (simulatorPkiDir is null)
        {
            return trust;
        }

        if (!Directory.Exists(simulatorPkiDir))
        {
            throw new CliUsageException($"--trust-simulator: {simulatorPkiDir} is not a folder");
        }

        try
        {
            trust = SimulatorTrust.AddFromPkiDirectory(trust, simulatorPkiDir);
        }
        catch (InvalidOperationException ex)
        {
            throw new CliUsageException("--trust-simulator: " + ex.Message, ex);
        }

        await error.WriteLineAsync($"warning: trusting the simulated roots in {simulatorPkiDir}; results are marked simulated").ConfigureAwait(false);
        return trust;
    }

    /// <summary>Runs the verifier for the detected (or forced) TEE kind; undetectable bytes are a malformed-evidence rejection.</summary>
    internal static async Task<VerificationResult> VerifyOneAsync(VerifierFactory verifiers, byte[] bytes, TeeKind? forced, VerificationContext context, CancellationToken ct)
    {
        var kind = forced ?? EvidenceDetector.Detect(bytes);
        if (kind is null)
        {
            // Report under the kind it most resembles so that consumers always get a valid "tee" value.
            var guess = bytes.Length == 0x4A0 ? TeeKind.SevSnp : TeeKind.Tdx;
            var reason = new VerificationReason(ReasonCodes.MalformedEvidence, $"not recognised as a TDX quote (u16 version 4 or 5, tee_type 0x81) or an SEV-SNP report (u32 version 2 to 5, signature_algo 1); {bytes.Length} bytes");
            return new VerificationResult(guess, [reason], [], new ClaimSet(), simulated: false, crlChecked: false);
        }

        return await verifiers.For(kind.Value).VerifyAsync(bytes, context, ct).ConfigureAwait(false);
    }

    internal static byte[] ReadEvidence(string file)
    {
        var info = new FileInfo(file);
        if (!info.Exists)
        {
            throw new CliUsageException("no such file");
        }

        if (info.Length > MaxEvidenceBytes)
        {
            throw new CliUsageException($"{info.Length} bytes is more than the {MaxEvidenceBytes} bytes accepted for one piece of evidence");
        }

        return File.ReadAllBytes(file);
    }

    private static async Task WriteResultAsync(TextWriter output, string file, VerificationResult result, bool asJson)
    {
        if (asJson)
        {
            var o = new JsonObject { ["file"] = file };
            foreach (var (key, value) in result.ToJson())
            {
                o[key] = value?.DeepClone();
            }

            await output.WriteLineAsync(o.ToJsonString(JsonOptions)).ConfigureAwait(false);
            return;
        }

        var verdict = result.IsAccepted ? "accepted" : "rejected";
        var status = result.Claims["tcb_status"] is JsonNode s ? $", tcb_status {s}" : string.Empty;
        var sim = result.Simulated ? ", SIMULATED root" : string.Empty;
        var crl = result.CrlChecked ? string.Empty : ", CRL not checked";
        await output.WriteLineAsync($"{file}: {verdict} ({result.Tee.ToWireName()}{status}{sim}{crl})").ConfigureAwait(false);
        foreach (var r in result.Reasons)
        {
            await output.WriteLineAsync($"  x {r.Code}: {r.Message}").ConfigureAwait(false);
        }

        foreach (var n in result.Notes)
        {
            await output.WriteLineAsync($"  - {n.Code}: {n.Message}").ConfigureAwait(false);
        }
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = false };

    internal static DateTimeOffset ParseTime(string? value)
    {
        if (value is null)
        {
            return DateTimeOffset.UtcNow;
        }

        if (DateTimeOffset.TryParseExact(value, ["yyyy-MM-dd'T'HH:mm:ssK", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK"], CultureInfo.InvariantCulture, DateTimeStyles.None, out var t)
            && (value.EndsWith('Z') || value.EndsWith('z') || value.Length > 19 && (value.Contains('+', StringComparison.Ordinal) || value.LastIndexOf('-') > 10)))
        {
            return t.ToUniversalTime();
        }

        throw new CliUsageException($"--at: '{value}' is not an RFC 3339 time with a zone, such as 2026-03-20T10:41:14Z");
    }

    private static Uri? ParseUrl(string? value, string option)
    {
        if (value is null)
        {
            return null;
        }

        if (Uri.TryCreate(value, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttps || u.Scheme == Uri.UriSchemeHttp))
        {
            return u;
        }

        throw new CliUsageException($"{option}: '{value}' is not an http(s) URL");
    }
}
