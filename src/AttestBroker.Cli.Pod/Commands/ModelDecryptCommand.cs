using System.CommandLine;
using System.Globalization;
using AttestBroker.Models;

namespace AttestBroker.Cli.Commands;

/// <summary><c>model decrypt</c> (the same command in <c>attestbroker</c> and <c>attestbroker-node</c>) and the helpers the model and node commands share.</summary>
internal static class ModelDecryptCommand
{
    public static Command Create()
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
