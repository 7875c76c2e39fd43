using System.CommandLine;
using AttestBroker.HardwareSim.Cli;

var root = new RootCommand("attest-sim: a TDX and SEV-SNP hardware simulator. Simulated PKI, evidence in the hardware's formats, Intel/AMD collateral, named faults, and a local PCS/KDS/virtual-TEE server. Simulated roots are never trusted unless a verifier is told to (attestbroker verify --trust-simulator DIR).");
root.Subcommands.Add(Commands.Init());
root.Subcommands.Add(Commands.Quote());
root.Subcommands.Add(Commands.CollateralCommand());
root.Subcommands.Add(Commands.FaultsCommand());
root.Subcommands.Add(Commands.ProfileCommand());
root.Subcommands.Add(Commands.ConfigFsCommand());
root.Subcommands.Add(ServeCommand.Create());
return await SimCliHost.RunAsync(root, args).ConfigureAwait(false);
