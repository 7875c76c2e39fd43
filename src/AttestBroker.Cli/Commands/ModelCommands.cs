using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using AttestBroker.Models;
using AttestBroker.Models.Benchmarking;

namespace AttestBroker.Cli.Commands;

/// <summary>attestbroker model encrypt|decrypt|keygen|bench: thin wrappers over AttestBroker.Models.</summary>
internal static class ModelCommands
{
    public static Command Create()
    {
        var command = new Command("model", "Encrypt and decrypt models in the streaming AES-256-GCM format (MENC v1 files, manifest v2; docs/model-format.md).");
        command.Subcommands.Add(CreateEncrypt());
        command.Subcommands.Add(CreateDecrypt());
        command.Subcommands.Add(CreateKeygen());
        command.Subcommands.Add(CreateBench());
        return command;
    }

    private static Command CreateEncrypt()
    {
        var source = new Argument<string>("SRC_DIR") { Description = "Model directory (weights shards, tokenizer, config); every regular file is encrypted." };
        var keyId = new Option<string>("--key-id") { Description = "Key id recorded in every header and the manifest (A-Z a-z 0-9 . _ : / @ + = -; with --broker a broker key id: letters, digits, . _ : - only).", Required = true };
        var keyFile = new Option<string?>("--key-file") { Description = "File holding the 32-byte model key, raw or as base64 text (\"-\" reads standard input)." };
        var broker = new Option<string?>("--broker") { Description = "Broker base URL (https://...): make a fresh random model key in memory, encrypt with it, and import it under --key-id through the admin API (role key-admin); the key is never written anywhere. An existing key id is refused (exit 1) and nothing is written at --out." };
        var output = new Option<string>("--out") { Description = "Output directory (must not exist or be empty).", Required = true };
        var signKey = new Option<string?>("--sign-key") { Description = "Publisher ECDSA P-256 private key, unencrypted PEM PKCS#8 ('PRIVATE KEY') or 'EC PRIVATE KEY'; writes manifest.json.sig in cosign sign-blob format." };
        var segmentSize = new Option<int>("--segment-size") { Description = "Plaintext bytes per segment, 1048576..4194304 (default 1 MiB; decrypt memory grows with it).", DefaultValueFactory = _ => ModelFileHeader.DefaultSegmentSize };
        var digest = DigestOption("The ciphertext digest tree's hash, which the manifest pins per file: blake3 (default; about 1.9 times SHA-256's speed per core, so decryption costs less CPU) or sha256 (FIPS-approved; the manifest stays v2, which earlier versions read).");
        var command = new Command("encrypt", "Encrypt a model directory for publishing (for model owners), with a key file or a fresh key imported into the broker. Exit 0 ok, 1 refused by the broker (401, 403, key id exists, 5xx), 2 usage, input or I/O error (also an unreachable broker).") { source, keyId, keyFile, broker, output, signKey, segmentSize, digest };
        var import = new ModelKeyImport(broker);
        import.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var stdout = parse.InvocationConfiguration.Output;
            try
            {
                var brokerUrl = parse.GetValue(broker);
                var keyPath = parse.GetValue(keyFile);
                if ((brokerUrl is null) == (keyPath is null))
                {
                    throw new CliUsageException("give the key source: --key-file FILE or --broker URL (not both)");
                }

                using var signer = parse.GetValue(signKey) is { } signPath ? ManifestSigning.LoadPrivateKeyPem(ReadText(signPath, "signing key")) : null;
                if (brokerUrl is not null)
                {
                    ModelFileHeader.ValidateKeyId(parse.GetRequiredValue(keyId));
                    ModelFileHeader.ValidateSegmentSize(parse.GetValue(segmentSize));
                    return await import.EncryptAndImportAsync(parse, parse.GetRequiredValue(source), parse.GetRequiredValue(output), parse.GetRequiredValue(keyId), signer, parse.GetValue(segmentSize), parse.GetValue(digest), ct).ConfigureAwait(false);
                }

                import.RefuseWithoutBroker(parse);
                using var key = LoadKeyFile(keyPath!);
                var manifest = await ModelEncryptor.EncryptDirectoryAsync(parse.GetRequiredValue(source), parse.GetRequiredValue(output), key, parse.GetRequiredValue(keyId), signer, parse.GetValue(segmentSize), parse.GetValue(digest), ct).ConfigureAwait(false);
                var bytes = manifest.Files.Sum(f => f.Size);
                await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"encrypted {manifest.Files.Count} files ({bytes} bytes) under key id '{manifest.KeyId}'{(signer is null ? ", manifest not signed" : ", manifest signed")}")).ConfigureAwait(false);
                return ExitCodes.Success;
            }
            catch (ModelException ex)
            {
                // Encrypting authenticates nothing: every refusal is about the arguments or the input files.
                await error.WriteLineAsync($"error: {ex.Message} [{ex.Reason}]").ConfigureAwait(false);
                return ExitCodes.Usage;
            }
        });
        return command;
    }

    private static Command CreateDecrypt()
    {
        var source = new Argument<string>("ENC_DIR") { Description = "Encrypted model: a directory, or an http(s):// base URL (streamed, never written to disk; resumes with Range requests)." };
        var keys = new ModelKeySource();
        var output = new Option<string>("--out") { Description = "Destination directory; must be on tmpfs or ramfs unless --allow-disk.", Required = true };
        var allowDisk = new Option<bool>("--allow-disk") { Description = "Allow a disk-backed destination (plaintext weights would reach disk)." };
        var publisherKey = new Option<string?>("--publisher-key") { Description = "Publisher public key (PEM SPKI, as cosign public-key prints); manifest.json.sig must verify under it. Without it the signature is not checked (a warning is printed)." };
        var keyId = new Option<string?>("--key-id") { Description = "Require the model to be encrypted under this key id (required with --broker: the key to fetch)." };
        var workers = new Option<int>("--workers") { Description = "Decrypting threads, 1..64 (default: number of processors).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = new Command("decrypt", "Decrypt an encrypted model into a memory-backed directory (for a node or a test). Exit 0 ok, 1 authentication/verification failure or key denied, 2 usage or I/O, 3 broker unavailable.") { source, output, allowDisk, publisherKey, keyId, workers };
        keys.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var error = parse.InvocationConfiguration.Error;
            var stdout = parse.InvocationConfiguration.Output;
            try
            {
                keys.Validate(parse, parse.GetValue(keyId));
                var workerCount = parse.GetValue(workers);
                if (workerCount is < 1 or > 64)
                {
                    throw new CliUsageException("--workers must be 1 .. 64");
                }

                using var publisher = parse.GetValue(publisherKey) is { } pubPath ? ManifestSigning.LoadPublicKeyPem(ReadText(pubPath, "publisher key")) : null;
                using var http = OpenSource(parse.GetRequiredValue(source), out var modelSource);
                var destination = parse.GetRequiredValue(output);
                MemoryVolume.Require(destination, parse.GetValue(allowDisk));
                if (publisher is null)
                {
                    await error.WriteLineAsync("warning: no --publisher-key: the manifest signature is not checked (contents are still authenticated with the model key)").ConfigureAwait(false);
                }

                var options = new ModelDecryptionOptions
                {
                    PublisherKey = publisher,
                    AllowDisk = parse.GetValue(allowDisk),
                    ExpectedKeyId = parse.GetValue(keyId),
                    Workers = workerCount,
                };
                // Loaded last: DecryptAsync takes ownership and zeroes it whatever happens.
                var key = await keys.GetAsync(parse, parse.GetValue(keyId), error, ct).ConfigureAwait(false);
                var result = await ModelDecryptor.DecryptAsync(modelSource, key, destination, options, ct).ConfigureAwait(false);
                await stdout.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"decrypted {result.Files} files ({result.PlaintextBytes} bytes) under key id '{result.KeyId}'; manifest signature {(result.SignatureChecked ? "verified" : "not checked")}")).ConfigureAwait(false);
                return ExitCodes.Success;
            }
            catch (ModelException ex)
            {
                return await ReportAsync(error, ex).ConfigureAwait(false);
            }
            catch (KeyReleaseException ex)
            {
                await error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
                return ex.ExitCode;
            }
        });
        return command;
    }

    /// <summary>A directory or an http(s) base URL; returns the HttpClient to dispose (null for a directory).</summary>
    internal static HttpClient? OpenSource(string location, out IModelSource source)
    {
        var isUrl = location.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || location.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
        if (!isUrl)
        {
            source = new DirectoryModelSource(location);
            return null;
        }

        if (!Uri.TryCreate(location, UriKind.Absolute, out var uri))
        {
            throw new CliUsageException($"not a valid URL: {location}");
        }

        // No overall timeout: a model download takes as long as it takes; a cut connection is resumed by the source.
        var http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(30), AutomaticDecompression = System.Net.DecompressionMethods.None }) { Timeout = Timeout.InfiniteTimeSpan };
        try
        {
            source = new HttpModelSource(http, uri);
            return http;
        }
        catch
        {
            http.Dispose();
            throw;
        }
    }

    private static Command CreateKeygen()
    {
        var output = new Option<string>("--out") { Description = "Key file to create (base64 text, mode 0600); refuses to overwrite.", Required = true };
        var command = new Command("keygen", "Create a random 32-byte model key file for --key-file.") { output };
        command.SetAction(parse =>
        {
            var path = parse.GetRequiredValue(output);
            var key = new byte[ModelKey.Length];
            var text = new char[44];
            var bytes = new byte[45];
            try
            {
                RandomNumberGenerator.Fill(key);
                Convert.TryToBase64Chars(key, text, out _);
                for (var i = 0; i < text.Length; i++)
                {
                    bytes[i] = (byte)text[i];
                }

                bytes[44] = (byte)'\n';
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                }

                using (var stream = new FileStream(path, options))
                {
                    stream.Write(bytes);
                }

                parse.InvocationConfiguration.Output.WriteLine("wrote a new model key to " + path);
                return ExitCodes.Success;
            }
            finally
            {
                CryptographicOperations.ZeroMemory(key);
                CryptographicOperations.ZeroMemory(bytes);
                Array.Clear(text);
            }
        });
        return command;
    }

    /// <summary>--digest blake3|sha256 (the enum's names, which System.CommandLine matches ignoring case); anything else is a usage error naming both.</summary>
    private static Option<CiphertextTreeHash> DigestOption(string description)
    {
        var option = new Option<CiphertextTreeHash>("--digest") { Description = description, DefaultValueFactory = _ => CiphertextTreeHash.Blake3 };
        option.AcceptOnlyFromAmong("blake3", "sha256");
        return option;
    }

    private static Command CreateBench()
    {
        var size = new Option<long>("--size") { Description = "Plaintext bytes (default 2 GiB).", DefaultValueFactory = _ => 2L << 30 };
        var dir = new Option<string>("--dir") { Description = "Memory-backed directory for the plaintext and the decrypted output (default /dev/shm).", DefaultValueFactory = _ => "/dev/shm" };
        var cipherDir = new Option<string?>("--cipher-dir") { Description = "Directory for the ciphertexts (default: the system temp directory, on disk)." };
        var runs = new Option<int>("--runs") { Description = "Timed runs of each contender; the best is reported (default 3).", DefaultValueFactory = _ => 3 };
        var digest = DigestOption("The digest tree hash of the model the bench encrypts and decrypts: blake3 (default, as encrypt) or sha256.");
        var command = new Command("bench", "Time decrypting a model into tmpfs against cat, age -d and one core's AES-256-GCM, BLAKE3 and SHA-256 rates; report ratios, peak RSS, and an estimate of the floor a decryptor doing our work could reach on this machine (from the same run's figures). Deletes everything afterwards. Exit 0 when every target (<= 1.15 x cat, >= 2 x faster than age, <= 64 MiB) is met, 1 otherwise.") { size, dir, cipherDir, runs, digest };
        command.SetAction(async (parse, ct) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var (self, prefix) = SelfInvocation();
            var options = new ModelBenchOptions
            {
                Size = parse.GetValue(size),
                MemoryDirectory = parse.GetRequiredValue(dir),
                CipherDirectory = parse.GetValue(cipherDir) ?? Path.GetTempPath(),
                Runs = Math.Max(1, parse.GetValue(runs)),
                TreeHash = parse.GetValue(digest),
                DecryptorExecutable = self,
                DecryptorPrefixArguments = prefix,
            };
            try
            {
                var report = await ModelBench.RunAsync(options, line => stdout.WriteLine(line), ct).ConfigureAwait(false);
                return report.Succeeded ? ExitCodes.Success : ExitCodes.Failure;
            }
            catch (ModelException ex)
            {
                return await ReportAsync(parse.InvocationConfiguration.Error, ex).ConfigureAwait(false);
            }
        });
        return command;
    }

    private static (string Executable, IReadOnlyList<string> Prefix) SelfInvocation()
    {
        var process = Environment.ProcessPath ?? throw new CliUsageException("cannot locate the attestbroker executable");
        if (string.Equals(Path.GetFileNameWithoutExtension(process), "dotnet", StringComparison.OrdinalIgnoreCase))
        {
            var assembly = Assembly.GetEntryAssembly()?.Location;
            if (string.IsNullOrEmpty(assembly))
            {
                throw new CliUsageException("cannot locate attestbroker.dll");
            }

            return (process, [assembly]);
        }

        return (process, []);
    }

    /// <summary>A key file, or standard input for "-".</summary>
    internal static ModelKey LoadKeyFile(string keyFile)
    {
        if (keyFile == "-")
        {
            using var stdin = Console.OpenStandardInput();
            return ModelKey.FromStream(stdin, "standard input");
        }

        return ModelKey.FromKeyFile(keyFile);
    }

    internal static string ReadText(string path, string what)
    {
        try
        {
            var info = new FileInfo(path);
            if (info.Exists && info.Length > 64 * 1024)
            {
                throw new CliUsageException($"{what} file {path} is too large");
            }

            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"cannot read {what} file {path}: {ex.Message}");
        }
    }

    internal static async Task<int> ReportAsync(TextWriter error, ModelException ex)
    {
        await error.WriteLineAsync($"error: {ex.Message} [{ex.Reason}]").ConfigureAwait(false);
        return ex.IsVerificationFailure ? ExitCodes.Failure : ExitCodes.Usage;
    }
}
