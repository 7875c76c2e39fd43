using System.CommandLine;

namespace AttestBroker.Cli;

/// <summary>Exit codes shared by every subcommand.</summary>
public static class ExitCodes
{
    /// <summary>Everything succeeded (for verify: every input accepted).</summary>
    public const int Success = 0;

    /// <summary>The operation ran and said no (for verify: some input rejected; for decrypt: authentication failed).</summary>
    public const int Failure = 1;

    /// <summary>Usage or I/O error: bad arguments, unreadable files.</summary>
    public const int Usage = 2;
}

/// <summary>Thrown by a command for a usage or I/O problem; printed as one line and exit code 2. Never carries secrets.</summary>
public sealed class CliUsageException : Exception
{
    public CliUsageException(string message)
        : base(message)
    {
    }

    public CliUsageException()
    {
    }

    public CliUsageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Runs the command tree: parse errors and usage errors exit 2 with a one-line message; no stack traces reach the user.</summary>
public static class CliHost
{
    public static async Task<int> RunAsync(RootCommand root, string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        ArgumentNullException.ThrowIfNull(root);
        var config = new InvocationConfiguration
        {
            Output = stdout ?? Console.Out,
            Error = stderr ?? Console.Error,
            EnableDefaultExceptionHandler = false,
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors)
            {
                await config.Error.WriteLineAsync("error: " + e.Message).ConfigureAwait(false);
            }

            await config.Error.WriteLineAsync("run with --help for usage").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        try
        {
            return await parse.InvokeAsync(config).ConfigureAwait(false);
        }
        catch (CliUsageException ex)
        {
            await config.Error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        catch (IOException ex)
        {
            await config.Error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        catch (UnauthorizedAccessException ex)
        {
            await config.Error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        catch (OperationCanceledException)
        {
            await config.Error.WriteLineAsync("error: cancelled").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
    }
}
