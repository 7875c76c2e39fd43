using System.CommandLine;
using AttestBroker.Cli.Commands;

namespace AttestBroker.Cli;

/// <summary>The whole <c>attestbroker</c> command tree, built in one place so that tests run exactly what users run.</summary>
public static class CliApp
{
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("AttestBroker: verify TEE evidence, release model keys to attested pods, and decrypt models into memory.");
        root.Subcommands.Add(VerifyCommand.Create());
        root.Subcommands.Add(ModelCommands.Create());
        root.Subcommands.Add(NodeCommand.Create());
        root.Subcommands.Add(PolicyCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(DbCommand.Create());
        root.Subcommands.Add(AdminCommand.Create());
        root.Subcommands.Add(AuditCommand.Create());
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(IdentityCommand.Create());
        root.Subcommands.Add(AgentCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        return root;
    }

    /// <summary>Runs the command line; output and errors go to the given writers (the console by default).</summary>
    public static Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null) =>
        CliHost.RunAsync(BuildRoot(), args, stdout, stderr);
}
