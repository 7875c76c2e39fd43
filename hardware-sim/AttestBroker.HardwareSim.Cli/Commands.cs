using System.CommandLine;
using System.Globalization;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim.ConfigFs;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.HardwareSim.Pki;
using AttestBroker.HardwareSim.Profiles;
using AttestBroker.HardwareSim.Snp;
using AttestBroker.HardwareSim.Tdx;

namespace AttestBroker.HardwareSim.Cli;

/// <summary>The attest-sim subcommands: thin wrappers over the HardwareSim library.</summary>
internal static class Commands
{
    public static Command Init()
    {
        var output = new Option<string>("--out") { Description = "Directory for the PKI (created; must be empty or absent unless --force).", Required = true };
        var seed = new Option<ulong?>("--seed") { Description = "Deterministic seed: the same seed gives the same keys and certificates." };
        var force = new Option<bool>("--force") { Description = "Write into a non-empty directory." };
        var command = new Command("init", "Create a simulated PKI: Intel-like SGX Root CA, PCK Platform CA, TCB Signing; AMD-like ARK/ASK/ASVK for Milan, Genoa and Turin. Private keys are written as PEM with mode 0600.") { output, seed, force };
        command.SetAction(async (parse, ct) =>
        {
            var dir = parse.GetRequiredValue(output);
            if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any() && !parse.GetValue(force))
            {
                throw new SimulatorException($"{dir} is not empty (use --force to write into it)");
            }

            using var pki = SimPki.Create(parse.GetValue(seed));
            pki.Save(dir);
            await parse.InvocationConfiguration.Output.WriteLineAsync($"simulated PKI written to {dir} (roots: intel/root-ca.pem, amd/<product>/ark.pem; keys *.key.pem mode 0600)").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    public static Command Quote()
    {
        var tee = new Option<string>("--tee") { Description = "tdx or sev-snp.", Required = true };
        var pkiDir = PkiOption();
        var reportData = new Option<string?>("--report-data") { Description = "REPORTDATA / REPORT_DATA as hex, up to 64 bytes (zero-padded)." };
        var profile = new Option<string?>("--profile") { Description = "Platform profile (YAML); see 'attest-sim profile'." };
        var product = new Option<string?>("--product") { Description = "SEV-SNP product: milan, genoa or turin." };
        var quoteVersion = new Option<ushort?>("--quote-version") { Description = "TDX quote version 4 or 5." };
        var tdVersion = new Option<string?>("--td-version") { Description = "TD body of a v5 quote: 1.0 or 1.5 (default 1.5)." };
        var reportVersion = new Option<uint?>("--report-version") { Description = "SEV-SNP report version: 2, 3 or 5." };
        var signingKey = new Option<string?>("--signing-key") { Description = "SEV-SNP signing key: vcek (default) or vlek." };
        var faults = FaultOption();
        var output = new Option<string>("--out") { Description = "Evidence output file (binary).", Required = true };
        var collateralOut = new Option<string?>("--collateral-out") { Description = "Also write the collateral for this evidence (with the collateral faults applied) to this directory." };
        var now = NowOption();
        var command = new Command("quote", "Write one piece of evidence: a TDX quote (v4/v5) or an SEV-SNP report (v2/v3/v5), signed by the simulated PKI.")
        {
            tee, pkiDir, reportData, profile, product, quoteVersion, tdVersion, reportVersion, signingKey, faults, output, collateralOut, now,
        };
        command.SetAction(async (parse, ct) =>
        {
            var kind = ParseTee(parse.GetRequiredValue(tee));
            using var pki = SimPki.Load(parse.GetRequiredValue(pkiDir));
            var prof = parse.GetValue(profile) is { } path ? SimProfile.LoadFile(path) : SimProfile.Default();
            var options = new EvidenceOptions
            {
                ReportData = parse.GetValue(reportData) is { } rd ? Hex(rd, "--report-data") : null,
                Product = parse.GetValue(product) is { } p ? AmdProducts.Parse(p) : null,
                QuoteVersion = parse.GetValue(quoteVersion) is { } qv ? (qv is 4 or 5 ? qv : throw new SimulatorException("--quote-version must be 4 or 5")) : null,
                TdBodyKind = parse.GetValue(tdVersion) switch
                {
                    null => null,
                    "1.0" => TdBodyKind.Td10,
                    "1.5" => TdBodyKind.Td15,
                    var v => throw new SimulatorException($"--td-version must be 1.0 or 1.5, got {v}"),
                },
                SnpReportVersion = parse.GetValue(reportVersion) is { } rv ? (rv is >= 2 and <= 5 ? rv : throw new SimulatorException("--report-version must be 2..5")) : null,
                SigningKey = parse.GetValue(signingKey) is { } sk ? ProfileSigningKey(sk) : null,
            };
            foreach (var f in parse.GetValue(faults) ?? [])
            {
                options.Faults.Add(FaultCatalog.Parse(f));
            }

            var evidence = SimEvidence.Create(pki, prof, kind, options);
            await File.WriteAllBytesAsync(parse.GetRequiredValue(output), evidence, ct).ConfigureAwait(false);
            var stdout = parse.InvocationConfiguration.Output;
            await stdout.WriteLineAsync($"wrote {evidence.Length} bytes of {kind.ToWireName()} evidence to {parse.GetRequiredValue(output)}").ConfigureAwait(false);
            if (parse.GetValue(collateralOut) is { } cdir)
            {
                var bundle = SimEvidence.CollateralForEvidence(pki, prof, kind, options, Now(parse.GetValue(now)));
                bundle.WriteTo(cdir);
                await stdout.WriteLineAsync($"wrote {bundle.Files.Count} collateral files to {cdir}").ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    public static Command CollateralCommand()
    {
        var pkiDir = PkiOption();
        var output = new Option<string>("--out") { Description = "Directory to write the collateral to.", Required = true };
        var profiles = new Option<string[]>("--profile") { Description = "Also cover this platform profile (repeatable).", AllowMultipleArgumentsPerToken = false };
        var faults = FaultOption();
        var now = NowOption();
        var validity = new Option<int>("--validity-days") { Description = "Days until nextUpdate.", DefaultValueFactory = _ => 30 };
        var command = new Command("collateral", "Write Intel collateral (TDX TCB Info v3, QE Identity v2, PCK and Root CA CRLs, issuer chains) and AMD collateral (ASK/ASVK/ARK chains, VCEKs/VLEKs, CRLs), signed by the simulated PKI, into one folder.")
        {
            pkiDir, output, profiles, faults, now, validity,
        };
        command.SetAction(async (parse, ct) =>
        {
            using var pki = SimPki.Load(parse.GetRequiredValue(pkiDir));
            var options = new EvidenceOptions();
            foreach (var f in parse.GetValue(faults) ?? [])
            {
                options.Faults.Add(FaultCatalog.Parse(f));
            }

            var profs = (parse.GetValue(profiles) ?? []).Select(SimProfile.LoadFile).ToList();
            var bundle = SimEvidence.Collateral(pki, profs, options, Now(parse.GetValue(now)), TimeSpan.FromDays(parse.GetValue(validity)));
            bundle.WriteTo(parse.GetRequiredValue(output));
            await parse.InvocationConfiguration.Output.WriteLineAsync($"wrote {bundle.Files.Count} collateral files to {parse.GetRequiredValue(output)}").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    public static Command FaultsCommand()
    {
        var command = new Command("faults", "List the named faults, one a line: NAME TEE STAGE REASON_CODE.");
        command.SetAction(async (parse, ct) =>
        {
            foreach (var f in FaultCatalog.All)
            {
                await parse.InvocationConfiguration.Output.WriteLineAsync(f.ToLine()).ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    public static Command ProfileCommand()
    {
        var name = new Option<string>("--name") { Description = "Profile name.", DefaultValueFactory = _ => "my-platform" };
        var command = new Command("profile", "Print a platform profile (YAML) with every field at its default, to edit and pass to --profile.") { name };
        command.SetAction(async (parse, ct) =>
        {
            var p = SimProfile.Default();
            p.Name = parse.GetRequiredValue(name);
            await parse.InvocationConfiguration.Output.WriteAsync(p.ToYaml()).ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    public static Command ConfigFsCommand()
    {
        var tee = new Option<string>("--tee") { Description = "tdx or sev-snp.", Required = true };
        var pkiDir = PkiOption();
        var reportData = new Option<string?>("--report-data") { Description = "inblob (hex, up to 64 bytes)." };
        var profile = new Option<string?>("--profile") { Description = "Platform profile (YAML)." };
        var signingKey = new Option<string?>("--signing-key") { Description = "SEV-SNP: vcek or vlek." };
        var faults = FaultOption();
        var output = new Option<string>("--out") { Description = "Report directory to lay out (like /sys/kernel/config/tsm/report/NAME).", Required = true };
        var command = new Command("configfs", "Lay out a configfs-tsm report directory (inblob, outblob, auxblob, provider, generation) for file-based agent tests.") { tee, pkiDir, reportData, profile, signingKey, faults, output };
        command.SetAction(async (parse, ct) =>
        {
            using var pki = SimPki.Load(parse.GetRequiredValue(pkiDir));
            var prof = parse.GetValue(profile) is { } path ? SimProfile.LoadFile(path) : SimProfile.Default();
            var options = new EvidenceOptions
            {
                ReportData = parse.GetValue(reportData) is { } rd ? Hex(rd, "--report-data") : null,
                SigningKey = parse.GetValue(signingKey) is { } sk ? ProfileSigningKey(sk) : null,
            };
            foreach (var f in parse.GetValue(faults) ?? [])
            {
                options.Faults.Add(FaultCatalog.Parse(f));
            }

            var evidence = ConfigFsTsmLayout.WriteReport(parse.GetRequiredValue(output), pki, prof, ParseTee(parse.GetRequiredValue(tee)), options);
            await parse.InvocationConfiguration.Output.WriteLineAsync($"laid out {parse.GetRequiredValue(output)} (outblob {evidence.Length} bytes)").ConfigureAwait(false);
            return ExitCodes.Success;
        });
        return command;
    }

    internal static Option<string> PkiOption() => new("--pki") { Description = "Simulated PKI directory (from 'attest-sim init').", Required = true };

    internal static Option<string[]> FaultOption() => new("--fault") { Description = "Named fault (repeatable); 'attest-sim faults' lists them." };

    internal static Option<string?> NowOption() => new("--now") { Description = "Issue time of the collateral (ISO 8601, default: now)." };

    internal static DateTimeOffset Now(string? value)
    {
        if (value is null)
        {
            return DateTimeOffset.UtcNow;
        }

        return DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
            ? t
            : throw new SimulatorException($"--now must be an ISO 8601 time, got '{value}'");
    }

    internal static TeeKind ParseTee(string value) =>
        TeeKindNames.TryParse(value, out var kind) ? kind : throw new SimulatorException($"--tee must be tdx or sev-snp, got '{value}'");

    private static SnpSigningKey ProfileSigningKey(string s) => s.Trim().ToLowerInvariant() switch
    {
        "vcek" => SnpSigningKey.Vcek,
        "vlek" => SnpSigningKey.Vlek,
        _ => throw new SimulatorException($"--signing-key must be vcek or vlek, got '{s}'"),
    };

    private static byte[] Hex(string value, string option)
    {
        try
        {
            return Convert.FromHexString(value.Trim());
        }
        catch (FormatException)
        {
            throw new SimulatorException($"{option} is not hex");
        }
    }
}
