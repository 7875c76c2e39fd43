using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using AttestBroker.Agent;
using AttestBroker.Agent.Broker;
using AttestBroker.Agent.Providers;
using AttestBroker.Evidence;
using AttestBroker.Models;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker agent fetch-key</c>: the pod side at start-up. Makes an ephemeral key pair in memory, gets a
/// challenge, evidence bound to it (configfs-tsm, /dev/tdx_guest, /dev/sev-guest or the simulator), attests, unwraps
/// the released keys and writes each to DIR/&lt;key id&gt; with mode 0400 on a memory-backed volume. Exit 0 released,
/// 1 denied or failed, 2 usage or input error, 3 broker unavailable after the retries (docs/agent.md).
/// </summary>
internal static class AgentCommand
{
    /// <summary>Exit code when the broker stayed unavailable through every retry.</summary>
    public const int Unavailable = 3;

    /// <summary>Where Kubernetes projects the pod's service account token.</summary>
    public const string DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token";

    public static Command Create()
    {
        var agent = new Command("agent", "The pod side: attest from inside the TEE and fetch model keys.");
        agent.Subcommands.Add(FetchKey());
        return agent;
    }

    private static Command FetchKey()
    {
        var broker = new Option<string>("--broker") { Description = "The broker's base URL (https://...).", Required = true };
        var keyIds = new Option<string[]>("--key-id") { Description = "A key to fetch (repeatable, 1 .. 16); all are released or none.", Required = true, AllowMultipleArgumentsPerToken = false };
        var outDir = new Option<string>("--out") { Description = "Directory for the key files (created if missing); must be memory-backed (tmpfs/ramfs) unless --allow-disk.", Required = true };
        var evidence = new Option<string?>("--evidence") { Description = "Evidence provider: configfs, configfs:DIR, tdx-ioctl, sev-ioctl or sim:URL (attest-sim serve). Default: detect configfs-tsm, then /dev/tdx_guest, then /dev/sev-guest." };
        var tee = new Option<string?>("--tee") { Description = "tdx or sev-snp: the TEE the simulator emulates (sim:URL only; default tdx)." };
        tee.AcceptOnlyFromAmong(TeeKindNames.Tdx, TeeKindNames.SevSnp);
        var caCert = new Option<string?>("--ca-cert") { Description = "PEM file: trust only these certificates for the broker (its own certificate, pinned, or the CA that issued it) instead of the system store." };
        var saToken = new Option<string?>("--service-account-token-file") { Description = $"The pod's service account token, sent to the broker (default {DefaultServiceAccountTokenFile} when present)." };
        var allowDisk = new Option<bool>("--allow-disk") { Description = "Allow writing keys to a disk-backed directory (never in production: the key would reach persistent storage)." };
        var retries = new Option<int>("--retries") { Description = "Retries while the broker is unavailable (connection errors, timeouts, 429, 503), with exponential backoff and jitter; Retry-After honoured. Default 5.", DefaultValueFactory = _ => 5 };
        var keyType = new Option<string>("--key-type") { Description = "The ephemeral key pair: p256 (default), p384 or rsa3072.", DefaultValueFactory = _ => "p256" };
        keyType.AcceptOnlyFromAmong("p256", "p384", "rsa3072");
        var allowHttp = new Option<bool>("--allow-http") { Description = "Allow a plain http:// broker URL (only for a broker started with Broker:AllowInsecureHttp)." };

        var command = new Command("fetch-key", "Attest with this TEE's evidence and write the released keys to a memory-backed directory (mode 0400).")
        {
            broker, keyIds, outDir, evidence, tee, caCert, saToken, allowDisk, retries, keyType, allowHttp,
        };

        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;

            // Everything that can be refused locally is refused before the broker is contacted.
            var ids = parse.GetValue(keyIds) ?? [];
            var request = new KeyFetchRequest
            {
                KeyIds = ids,
                KeyAlgorithm = parse.GetValue(keyType) switch
                {
                    "p384" => EphemeralKeyAlgorithm.EcP384,
                    "rsa3072" => EphemeralKeyAlgorithm.Rsa3072,
                    _ => EphemeralKeyAlgorithm.EcP256,
                },
                ServiceAccountToken = ReadServiceAccountToken(parse.GetValue(saToken)),
            };
            try
            {
                request.Validate();
            }
            catch (ArgumentException ex)
            {
                throw new CliUsageException("--key-id: " + ex.Message);
            }

            var dir = Path.GetFullPath(parse.GetValue(outDir)!);
            if (File.Exists(dir))
            {
                throw new CliUsageException($"--out: {dir} is a file, not a directory");
            }

            var files = KeyFileNames(ids, dir);
            if (!parse.GetValue(allowDisk))
            {
                var (kind, magic) = MemoryVolume.Probe(dir);
                if (kind is not (VolumeKind.Tmpfs or VolumeKind.Ramfs))
                {
                    var what = kind == VolumeKind.Unknown ? "could not be determined (statfs unavailable)" : string.Create(CultureInfo.InvariantCulture, $"is not tmpfs or ramfs (f_type 0x{magic:x8})");
                    throw new CliUsageException($"--out: {dir} {what}: the released keys would reach persistent storage. Use a memory-backed volume (emptyDir medium: Memory, /dev/shm) or pass --allow-disk");
                }
            }

            var maxRetries = parse.GetValue(retries);
            if (maxRetries is < 0 or > 100)
            {
                throw new CliUsageException("--retries must be 0 .. 100");
            }

            if (!Uri.TryCreate(parse.GetValue(broker), UriKind.Absolute, out var brokerUrl))
            {
                throw new CliUsageException($"--broker: \"{parse.GetValue(broker)}\" is not an absolute URL");
            }

            var trusted = LoadTrustedCertificates(parse.GetValue(caCert));
            IEvidenceProvider provider;
            try
            {
                provider = CreateEvidenceProvider(parse.GetValue(evidence), parse.GetValue(tee));
            }
            catch (EvidenceProviderException ex)
            {
                await error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
                return ExitCodes.Failure;
            }

            var client = CreateBrokerClient(brokerUrl, trusted, parse.GetValue(allowHttp), maxRetries, error);
            using (client)
            using (provider as IDisposable)
            {
                FetchedKeys keys;
                try
                {
                    keys = await new KeyFetcher(client, provider).FetchAsync(request, ct).ConfigureAwait(false);
                }
                catch (BrokerProblemException ex)
                {
                    await error.WriteLineAsync(DescribeDenial(ex)).ConfigureAwait(false);
                    return ExitCodes.Failure;
                }
                catch (BrokerUnavailableException ex)
                {
                    await error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
                    return Unavailable;
                }
                catch (Exception ex) when (ex is BrokerResponseException or EvidenceProviderException)
                {
                    await error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
                    return ExitCodes.Failure;
                }

                using (keys)
                {
                    WriteKeys(keys, files, dir);
                    foreach (var id in keys.KeyIds)
                    {
                        await output.WriteLineAsync($"released {id} -> {files[id]} ({keys.GetKey(id).Length} bytes, mode 0400)").ConfigureAwait(false);
                    }

                    await output.WriteLineAsync($"attested with {keys.Provider} ({keys.Tee.ToWireName()}{(keys.Simulated ? ", SIMULATED evidence" : string.Empty)})").ConfigureAwait(false);
                }
            }

            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>The file name a key id is written under: letters, digits, '.', '-', '_' kept, anything else '_'; never hidden, never "." or "..".</summary>
    internal static string SafeFileName(string keyId)
    {
        var builder = new StringBuilder(keyId.Length);
        foreach (var c in keyId)
        {
            builder.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_');
        }

        var name = builder.ToString();
        if (name.StartsWith('.'))
        {
            name = "_" + name[1..];
        }

        return name.Length > 200 ? name[..200] : name;
    }

    private static Dictionary<string, string> KeyFileNames(IReadOnlyList<string> ids, string dir)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        var taken = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var id in ids)
        {
            var name = SafeFileName(id);
            if (taken.TryGetValue(name, out var other))
            {
                throw new CliUsageException($"--key-id: \"{id}\" and \"{other}\" would both be written as {name}");
            }

            taken[name] = id;
            files[id] = Path.Combine(dir, name);
        }

        return files;
    }

    /// <summary>The broker client of <c>--broker</c>, <c>--ca-cert</c>, <c>--allow-http</c> and <c>--retries</c>, printing each retry to <paramref name="error"/>; options it refuses are a usage error.</summary>
    internal static BrokerClient CreateBrokerClient(Uri brokerUrl, X509Certificate2Collection? trusted, bool allowHttp, int maxRetries, TextWriter error)
    {
        try
        {
            return new BrokerClient(new BrokerClientOptions
            {
                BaseAddress = brokerUrl,
                TrustedCertificates = trusted,
                AllowInsecureHttp = allowHttp,
                Retry = new RetryOptions { MaxRetries = maxRetries },
                OnRetry = (n, delay, reason) => error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"retry {n}/{maxRetries} in {delay.TotalSeconds:0.0} s: {reason}")),
            });
        }
        catch (ArgumentException ex)
        {
            throw new CliUsageException("--broker: " + ex.Message);
        }
    }

    /// <summary>The certificates of <c>--ca-cert</c> (null when not given); a bad file is a usage error.</summary>
    internal static X509Certificate2Collection? LoadTrustedCertificates(string? caFile)
    {
        if (caFile is null)
        {
            return null;
        }

        try
        {
            return BrokerClient.LoadTrustedCertificates(caFile);
        }
        catch (ArgumentException ex)
        {
            throw new CliUsageException("--ca-cert: " + ex.Message);
        }
    }

    /// <summary>
    /// The provider of <c>--evidence</c> (detected when null) with <c>--tee</c> for the simulator. A request the provider
    /// refuses as such is a usage error; other provider failures are thrown as <see cref="EvidenceProviderException"/>.
    /// </summary>
    internal static IEvidenceProvider CreateEvidenceProvider(string? evidence, string? tee)
    {
        try
        {
            TeeKind? simTee = TeeKindNames.TryParse(tee, out var t) ? t : null;
            if (simTee is not null && evidence?.StartsWith("sim:", StringComparison.Ordinal) != true)
            {
                throw new CliUsageException("--tee applies to --evidence sim:URL only (other providers report their TEE themselves)");
            }

            return EvidenceProviders.Create(evidence, simTee);
        }
        catch (EvidenceProviderException ex) when (ex.Error == EvidenceProviderError.InvalidRequest)
        {
            throw new CliUsageException(ex.Message);
        }
    }

    /// <summary>The token of <c>--service-account-token-file</c>, or of the projected default path when present; null when neither.</summary>
    internal static string? ReadServiceAccountToken(string? file)
    {
        var path = file ?? (File.Exists(DefaultServiceAccountTokenFile) ? DefaultServiceAccountTokenFile : null);
        if (path is null)
        {
            return null;
        }

        try
        {
            var info = new FileInfo(path);
            if (info.Exists && info.Length > 64 * 1024)
            {
                throw new CliUsageException($"--service-account-token-file: {path} is larger than 64 KiB");
            }

            var token = File.ReadAllText(path).Trim();
            return token.Length == 0 ? throw new CliUsageException($"--service-account-token-file: {path} is empty") : token;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"--service-account-token-file: {ex.Message}");
        }
    }

    /// <summary>Writes every key under a temporary name (created 0600, never shared), sets 0400, then renames; on failure nothing is left.</summary>
    private static void WriteKeys(FetchedKeys keys, Dictionary<string, string> files, string dir)
    {
        if (!Directory.Exists(dir))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(dir);
            }
            else
            {
                Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        var temporary = new List<(string Temp, string Final)>();
        var renamed = new List<string>();
        try
        {
            foreach (var id in keys.KeyIds)
            {
                var final = files[id];
                var temp = Path.Combine(dir, "." + Path.GetFileName(final) + ".tmp-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = 0 };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                }

                temporary.Add((temp, final));
                using (var stream = new FileStream(temp, options))
                {
                    stream.Write(keys.GetKey(id).Span);
                    stream.Flush(flushToDisk: true);
                }

                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(temp, UnixFileMode.UserRead);
                }
            }

            foreach (var (temp, final) in temporary)
            {
                File.Move(temp, final, overwrite: true);
                renamed.Add(final);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            foreach (var path in temporary.Select(t => t.Temp).Concat(renamed))
            {
                try
                {
                    File.Delete(path);
                }
                catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
                {
                }
            }

            throw new IOException($"writing the keys to {dir} failed: {ex.Message}", ex);
        }
    }

    internal static string DescribeDenial(BrokerProblemException ex)
    {
        var text = new StringBuilder();
        text.Append(ex.IsDenial ? "denied: " : "refused: ").Append(ex.Message);
        foreach (var key in ex.Keys)
        {
            text.AppendLine().Append(CultureInfo.InvariantCulture, $"  key {key.KeyId}: {key.Decision}");
            if (key.Reason is not null)
            {
                text.Append(CultureInfo.InvariantCulture, $" ({key.Reason})");
            }

            if (key.Policy is not null)
            {
                text.Append(CultureInfo.InvariantCulture, $" by policy {key.Policy}{(key.PolicyVersion is { } v ? " v" + v.ToString(CultureInfo.InvariantCulture) : string.Empty)}");
            }

            foreach (var f in key.Failures)
            {
                text.AppendLine().Append(CultureInfo.InvariantCulture, $"    {f.Code}");
                if (f.Rule is not null)
                {
                    text.Append(CultureInfo.InvariantCulture, $" rule {f.Rule}");
                }

                if (f.Message is not null)
                {
                    text.Append(CultureInfo.InvariantCulture, $": {f.Message}");
                }
            }
        }

        return text.ToString();
    }
}
