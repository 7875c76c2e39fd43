using System.CommandLine;
using AttestBroker.Cli;
using AttestBroker.Cli.Commands;

var root = new RootCommand("AttestBroker: verify TEE evidence, release model keys to attested pods, and decrypt models into memory.");
root.Subcommands.Add(VerifyCommand.Create());
root.Subcommands.Add(ModelCommands.Create());

return await CliHost.RunAsync(root, args).ConfigureAwait(false);
