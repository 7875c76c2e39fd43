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
        var command = new Command("model", "Encrypt and decrypt models in the streaming AES-256-GCM format (MENC v1 files, manifest v2 or v3; docs/model-format.md).");
        command.Subcommands.Add(CreateEncrypt());
        command.Subcommands.Add(ModelDecryptCommand.Create());
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

                using var signer = parse.GetValue(signKey) is { } signPath ? ManifestSigning.LoadPrivateKeyPem(ModelDecryptCommand.ReadText(signPath, "signing key")) : null;
                if (brokerUrl is not null)
                {
                    ModelFileHeader.ValidateKeyId(parse.GetRequiredValue(keyId));
                    ModelFileHeader.ValidateSegmentSize(parse.GetValue(segmentSize));
                    return await import.EncryptAndImportAsync(parse, parse.GetRequiredValue(source), parse.GetRequiredValue(output), parse.GetRequiredValue(keyId), signer, parse.GetValue(segmentSize), parse.GetValue(digest), ct).ConfigureAwait(false);
                }

                import.RefuseWithoutBroker(parse);
                using var key = ModelDecryptCommand.LoadKeyFile(keyPath!);
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
        var decryptor = new Option<string?>("--decryptor") { Description = $"The executable whose `model decrypt` is timed (default: {NativeDecryptorName} beside this executable when present, as `dotnet publish src/AttestBroker.Node -c Release -o DIR` makes it; else attestbroker itself)." };
        var command = new Command("bench", "Time decrypting a model into tmpfs against cat, age -d and one core's AES-256-GCM, BLAKE3 and SHA-256 rates; report ratios, peak RSS, and an estimate of the floor a decryptor doing our work could reach on this machine (from the same run's figures). Deletes everything afterwards. Exit 0 when every target (<= 1.15 x cat, >= 2 x faster than age, <= 64 MiB) is met, 1 otherwise.") { size, dir, cipherDir, runs, digest, decryptor };
        command.SetAction(async (parse, ct) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var (self, prefix) = parse.GetValue(decryptor) is { } path ? (ExistingFile(path, "--decryptor"), (IReadOnlyList<string>)[]) : DefaultDecryptor();
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
                return await ModelDecryptCommand.ReportAsync(parse.InvocationConfiguration.Error, ex).ConfigureAwait(false);
            }
        });
        return command;
    }

    private static string ExistingFile(string path, string option) =>
        File.Exists(path) ? Path.GetFullPath(path) : throw new CliUsageException($"{option}: no such file: {path}");

    /// <summary>The native pod-side executable's file name.</summary>
    private const string NativeDecryptorName = "attestbroker-node";

    /// <summary>attestbroker-node beside this executable when present (what a pod runs), else this executable.</summary>
    private static (string Executable, IReadOnlyList<string> Prefix) DefaultDecryptor()
    {
        var native = Path.Combine(AppContext.BaseDirectory, NativeDecryptorName);
        if (File.Exists(native))
        {
            return (native, []);
        }

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
}
