using System.CommandLine;
using System.Security.Cryptography;
using AttestBroker.Keys;
using AttestBroker.Server;
using AttestBroker.Storage;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker audit verify|export</c>: check the hash chain of a broker data directory's audit log (and, with
/// <c>--head-key</c>, its signed heads), or write every row as one JSON object per line.
/// </summary>
internal static class AuditCommand
{
    private const long MaxHeadKeyBytes = 64 * 1024;

    public static Command Create()
    {
        var command = new Command("audit", "The broker's tamper-evident audit log.");
        command.Subcommands.Add(CreateVerify());
        command.Subcommands.Add(CreateExport());
        return command;
    }

    private static Option<string> DataDir() => new("--data-dir") { Description = "The broker's data directory.", Required = true };

    private static Command CreateVerify()
    {
        var dataDir = DataDir();
        var headKey = new Option<string?>("--head-key") { Description = "ECDSA P-256 public key (PEM) that signed the audit heads; every stored signed head is then checked too." };
        var command = new Command("verify", "Walk the audit chain: exit 0 when intact, 1 naming the first edited, deleted or reordered row.") { dataDir, headKey };
        command.SetAction((parse, ct) => VerifyLocalAsync(parse.GetRequiredValue(dataDir), parse.GetValue(headKey), parse.InvocationConfiguration.Output, ct));
        return command;
    }

    /// <summary>Walks the chain of a data directory's audit log (and its signed heads with a head key): 0 intact, 1 broken.</summary>
    internal static async Task<int> VerifyLocalAsync(string dataDir, string? headKeyPath, TextWriter output, CancellationToken ct)
    {
        using var key = ReadHeadKey(headKeyPath);
        await using var data = await OpenAsync(dataDir, ct).ConfigureAwait(false);
        var result = await data.Storage.Audit.VerifyAsync(key, ct).ConfigureAwait(false);
        if (result.FirstBreak is { } broken)
        {
            await output.WriteLineAsync($"audit chain broken at row {broken.Sequence}: {KindName(broken.Kind)}: {broken.Detail} ({result.RowsChecked} rows intact before it)").ConfigureAwait(false);
            return ExitCodes.Failure;
        }

        var heads = key is null ? string.Empty : $", {result.HeadsChecked} signed heads verified";
        await output.WriteLineAsync($"audit chain intact: {result.RowsChecked} rows (last row {result.LastSequence}){heads}").ConfigureAwait(false);
        return ExitCodes.Success;
    }

    private static Command CreateExport()
    {
        var dataDir = DataDir();
        var outFile = new Option<string?>("--out") { Description = "Write the JSON lines to this file (created; refuses to overwrite) instead of standard output." };
        var command = new Command("export", "Write every audit row as one JSON object per line.") { dataDir, outFile };
        command.SetAction((parse, ct) => ExportLocalAsync(parse.GetRequiredValue(dataDir), parse.GetValue(outFile), parse.InvocationConfiguration, ct));
        return command;
    }

    /// <summary>Writes every row of a data directory's audit log as JSON lines to a new file or to standard output.</summary>
    internal static async Task<int> ExportLocalAsync(string dataDir, string? path, InvocationConfiguration console, CancellationToken ct)
    {
        await using var data = await OpenAsync(dataDir, ct).ConfigureAwait(false);
        if (path is not null)
        {
            long rows;
            var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
            await using (stream.ConfigureAwait(false))
            {
                rows = await data.Storage.Audit.ExportAsync(stream, ct).ConfigureAwait(false);
            }

            await console.Error.WriteLineAsync($"exported {rows} rows to {path}").ConfigureAwait(false);
            return ExitCodes.Success;
        }

        using var buffer = new MemoryStream();
        await data.Storage.Audit.ExportAsync(buffer, ct).ConfigureAwait(false);
        buffer.Position = 0;
        using var reader = new StreamReader(buffer);
        var text = await reader.ReadToEndAsync(ct).ConfigureAwait(false);
        await console.Output.WriteAsync(text).ConfigureAwait(false);
        return ExitCodes.Success;
    }

    internal static string KindName(AuditBreakKind kind) => kind switch
    {
        AuditBreakKind.Edited => "edited",
        AuditBreakKind.Deleted => "deleted",
        AuditBreakKind.Reordered => "reordered",
        AuditBreakKind.HeadSignatureInvalid => "head signature invalid",
        _ => kind.ToString(),
    };

    private static ECDsa? ReadHeadKey(string? path)
    {
        if (path is null)
        {
            return null;
        }

        if (!File.Exists(path) || new FileInfo(path).Length > MaxHeadKeyBytes)
        {
            throw new CliUsageException($"--head-key: {path} does not exist or is too large for a public key");
        }

        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(File.ReadAllText(path));
            if (key.KeySize != 256)
            {
                throw new CliUsageException($"--head-key: {path} is not a P-256 key");
            }

            return key;
        }
        catch (ArgumentException ex)
        {
            key.Dispose();
            throw new CliUsageException($"--head-key: {path} holds no PEM EC public key", ex);
        }
        catch (CryptographicException ex)
        {
            key.Dispose();
            throw new CliUsageException($"--head-key: {path} holds no usable EC public key", ex);
        }
        catch (CliUsageException)
        {
            key.Dispose();
            throw;
        }
    }

    private static async Task<BrokerData> OpenAsync(string dataDir, CancellationToken ct)
    {
        if (!File.Exists(Path.Combine(dataDir, BrokerData.DatabaseFile)))
        {
            throw new CliUsageException($"--data-dir: {dataDir} holds no {BrokerData.DatabaseFile}");
        }

        try
        {
            return await BrokerData.OpenAsync(dataDir, null, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is KeyStoreException or StorageException or BrokerStartupException or IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"--data-dir: {ex.Message}", ex);
        }
    }
}
