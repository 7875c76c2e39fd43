return await AttestBroker.Cli.PodCliApp.RunAsync(args).ConfigureAwait(false);
