using System.CommandLine;

namespace AttestBroker.Cli.Commands;

/// <summary>attestbroker model encrypt|decrypt (owned by the models engineer).</summary>
internal static class ModelCommands
{
    public static Command Create()
    {
        var command = new Command("model", "Encrypt and decrypt models in the streaming AES-256-GCM format.");
        return command;
    }
}
