using System.CommandLine;
using System.Security.Cryptography;
using AttestBroker.Keys;
using AttestBroker.Policy;
using AttestBroker.Server;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker admin</c>: local administration of a broker data directory until the admin API exists:
/// import a model key into the embedded keystore, set a key's release policy, list keys, disable or enable a key.
/// Run it on the broker's machine with the same data directory (the SQLite database and the KEK directory).
/// </summary>
internal static class AdminCommand
{
    private const long MaxKeyFileBytes = 4096;
    private const long MaxPolicyBytes = 1024 * 1024;

    public static Command Create()
    {
        var command = new Command("admin", "Administer a broker data directory locally: model keys and their release policies.");
        var key = new Command("key", "Model keys in the embedded keystore.");
        key.Subcommands.Add(CreateImport());
        key.Subcommands.Add(CreateList());
        key.Subcommands.Add(CreateState("disable", "Stop releasing the key at once.", disable: true));
        key.Subcommands.Add(CreateState("enable", "Release the key again.", disable: false));
        var policy = new Command("policy", "Release policies (one per key).");
        policy.Subcommands.Add(CreatePolicySet());
        command.Subcommands.Add(key);
        command.Subcommands.Add(policy);
        return command;
    }

    private static Option<string> DataDir() => new("--data-dir") { Description = "The broker's data directory.", Required = true };

    private static Option<string> KeyId() => new("--id") { Description = "Key id (A-Z a-z 0-9 . _ : / @ + = -).", Required = true };

    private static Command CreateImport()
    {
        var dataDir = DataDir();
        var id = KeyId();
        var file = new Option<string>("--key-file") { Description = "The 32-byte model key, raw or base64 text (as written by 'attestbroker model keygen').", Required = true };
        var command = new Command("import", "Wrap a model key under the data directory's KEK and store it under an id.") { dataDir, id, file };
        command.SetAction(async (parse, ct) =>
        {
            var keyBytes = ReadKeyFile(parse.GetRequiredValue(file));
            try
            {
                await using var data = await OpenAsync(parse.GetRequiredValue(dataDir), ct).ConfigureAwait(false);
                var info = await data.Keys.ImportAsync(parse.GetRequiredValue(id), keyBytes, ct).ConfigureAwait(false);
                await parse.InvocationConfiguration.Output.WriteLineAsync($"imported key {info.KeyId} (KEK version {info.WrappingKeyVersion})").ConfigureAwait(false);
                return ExitCodes.Success;
            }
            catch (KeyStoreException ex)
            {
                throw new CliUsageException($"key: {ex.Error}: {ex.Message}", ex);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(keyBytes);
            }
        });
        return command;
    }

    private static Command CreateList()
    {
        var dataDir = DataDir();
        var command = new Command("list", "List key ids, states and current policy versions (never key bytes).") { dataDir };
        command.SetAction(async (parse, ct) =>
        {
            await using var data = await OpenAsync(parse.GetRequiredValue(dataDir), ct).ConfigureAwait(false);
            foreach (var k in await data.Keys.ListAsync(ct).ConfigureAwait(false))
            {
                var policy = await data.Storage.Policies.GetCurrentAsync(k.KeyId, ct).ConfigureAwait(false);
                var p = policy is null ? "no policy (never released)" : $"policy version {policy.Version}";
                await parse.InvocationConfiguration.Output.WriteLineAsync($"{k.KeyId}\t{k.State}\t{p}").ConfigureAwait(false);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateState(string name, string description, bool disable)
    {
        var dataDir = DataDir();
        var id = KeyId();
        var command = new Command(name, description) { dataDir, id };
        command.SetAction(async (parse, ct) =>
        {
            await using var data = await OpenAsync(parse.GetRequiredValue(dataDir), ct).ConfigureAwait(false);
            try
            {
                var keyId = parse.GetRequiredValue(id);
                var info = disable ? await data.Keys.DisableAsync(keyId, ct).ConfigureAwait(false) : await data.Keys.EnableAsync(keyId, ct).ConfigureAwait(false);
                await data.Storage.Audit.AppendAsync(new Storage.AuditEvent("key." + name, DateTimeOffset.UtcNow, "admin-cli", KeyId: keyId), ct).ConfigureAwait(false);
                await parse.InvocationConfiguration.Output.WriteLineAsync($"{info.KeyId}: {info.State}").ConfigureAwait(false);
                return ExitCodes.Success;
            }
            catch (KeyStoreException ex)
            {
                throw new CliUsageException($"key: {ex.Error}: {ex.Message}", ex);
            }
        });
        return command;
    }

    private static Command CreatePolicySet()
    {
        var dataDir = DataDir();
        var id = new Option<string>("--key") { Description = "The key the policy governs.", Required = true };
        var file = new Option<string>("--file") { Description = "The release policy, YAML or JSON (docs/policy.md).", Required = true };
        var command = new Command("set", "Validate a release policy and store it as a new version for a key (the running broker reads it on the next request).") { dataDir, id, file };
        command.SetAction(async (parse, ct) =>
        {
            var path = parse.GetRequiredValue(file);
            if (!File.Exists(path) || new FileInfo(path).Length > MaxPolicyBytes)
            {
                throw new CliUsageException($"--file: {path} does not exist or is larger than {MaxPolicyBytes} bytes");
            }

            var text = await File.ReadAllTextAsync(path, ct).ConfigureAwait(false);
            await using var data = await OpenAsync(parse.GetRequiredValue(dataDir), ct).ConfigureAwait(false);
            try
            {
                var stored = await data.SetPolicyAsync(parse.GetRequiredValue(id), text, "admin-cli", DateTimeOffset.UtcNow, ct).ConfigureAwait(false);
                await parse.InvocationConfiguration.Output.WriteLineAsync($"policy for {stored.Name}: version {stored.Version} (sha256 {stored.Sha256Hex})").ConfigureAwait(false);
                return ExitCodes.Success;
            }
            catch (PolicyFormatException ex)
            {
                throw new CliUsageException($"{path}: {ex.Message}", ex);
            }
            catch (BrokerStartupException ex)
            {
                throw new CliUsageException(ex.Message, ex);
            }
        });
        return command;
    }

    private static async Task<BrokerData> OpenAsync(string dataDir, CancellationToken ct)
    {
        try
        {
            return await BrokerData.OpenAsync(dataDir, null, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is KeyStoreException or Storage.StorageException or BrokerStartupException or IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"--data-dir: {ex.Message}", ex);
        }
    }

    /// <summary>Exactly 32 raw bytes, or base64 text of 32 bytes with surrounding whitespace. The caller zeroes the result.</summary>
    private static byte[] ReadKeyFile(string path)
    {
        if (!File.Exists(path) || new FileInfo(path).Length > MaxKeyFileBytes)
        {
            throw new CliUsageException($"--key-file: {path} does not exist or is not a key file");
        }

        var content = File.ReadAllBytes(path);
        try
        {
            if (content.Length == IKeyBackend.KeyLength)
            {
                return (byte[])content.Clone();
            }

            var text = content.AsSpan();
            var start = 0;
            var end = text.Length;
            while (start < end && text[start] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t')
            {
                start++;
            }

            while (end > start && text[end - 1] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t')
            {
                end--;
            }

            var decoded = new byte[IKeyBackend.KeyLength];
            var status = System.Buffers.Text.Base64.DecodeFromUtf8(text[start..end], decoded, out var consumed, out var written);
            if (status != System.Buffers.OperationStatus.Done || consumed != end - start || written != IKeyBackend.KeyLength)
            {
                CryptographicOperations.ZeroMemory(decoded);
                throw new CliUsageException($"--key-file: {path} is neither 32 raw bytes nor base64 of 32 bytes");
            }

            return decoded;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
        }
    }
}
