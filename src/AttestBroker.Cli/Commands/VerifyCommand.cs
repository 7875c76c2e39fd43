using System.CommandLine;

namespace AttestBroker.Cli.Commands;

/// <summary>attestbroker verify FILE... (being written by the lead).</summary>
internal static class VerifyCommand
{
    public static Command Create()
    {
        var command = new Command("verify", "Verify TDX quotes and SEV-SNP reports against the vendors' roots and collateral.");
        return command;
    }
}
