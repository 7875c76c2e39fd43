using System.CommandLine;

namespace AttestBroker.HardwareSim.Cli;

/// <summary>Exit codes of attest-sim (the same convention as attestbroker).</summary>
internal static class ExitCodes
{
    public const int Success = 0;
    public const int Failure = 1;
    public const int Usage = 2;
}

/// <summary>Runs the command tree: parse and usage errors print one line and exit 2; no stack traces reach the user.</summary>
internal static class SimCliHost
{
    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        var config = new InvocationConfiguration
        {
            Output = Console.Out,
            Error = Console.Error,
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
        catch (Exception ex) when (ex is SimulatorException or IOException or UnauthorizedAccessException)
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
