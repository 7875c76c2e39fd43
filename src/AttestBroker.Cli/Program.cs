return await AttestBroker.Cli.CliApp.RunAsync(args).ConfigureAwait(false);
