using System.CommandLine;
using AttestBroker.Cli.Commands;

namespace AttestBroker.Cli;

/// <summary>
/// The command tree of <c>attestbroker-node</c>, the native pod-side executable: <c>agent fetch-key</c>,
/// <c>node fetch-model</c> and <c>model decrypt</c>, the same commands (same code, options and exit codes) as in
/// <c>attestbroker</c>. Built here so that tests run exactly what the native executable runs.
/// </summary>
public static class PodCliApp
{
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("attestbroker-node: the pod side of AttestBroker. Attest from inside the TEE, fetch model keys, and decrypt models into memory. Encrypting models, the broker and its administration are in attestbroker.");
        var model = new Command("model", "Decrypt models in the streaming AES-256-GCM format (docs/model-format.md); encrypting is `attestbroker model encrypt`.");
        model.Subcommands.Add(ModelDecryptCommand.Create());
        root.Subcommands.Add(model);
        root.Subcommands.Add(NodeCommand.Create());
        root.Subcommands.Add(AgentCommand.Create());
        return root;
    }

    /// <summary>Runs the command line; output and errors go to the given writers (the console by default).</summary>
    public static Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null) =>
        CliHost.RunAsync(BuildRoot(), args, stdout, stderr);
}
