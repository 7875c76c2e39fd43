using System.CommandLine;
using AttestBroker.Server;
using AttestBroker.Storage;
using Microsoft.Extensions.Configuration;

namespace AttestBroker.Cli.Commands;

/// <summary>
/// <c>attestbroker db migrate|status</c>: apply the storage migrations, or show the schema version, of the database
/// <c>serve</c> would use. The database is chosen as for <c>serve</c>: the "Broker:Storage" section of
/// appsettings.json and the environment (<c>Broker__Storage__Provider=postgres</c>,
/// <c>Broker__Storage__ConnectionString=...</c>), or these options. The connection string is never printed.
/// </summary>
internal static class DbCommand
{
    public static Command Create()
    {
        var command = new Command("db", "The broker's database (SQLite in the data directory, or PostgreSQL for replicas).");
        command.Subcommands.Add(Create("migrate", "Apply pending migrations (serialised with replicas starting at the same time by an advisory lock); prints the schema version.", migrate: true));
        command.Subcommands.Add(Create("status", "Print the provider and schema version (0: not migrated).", migrate: false));
        return command;
    }

    private static Command Create(string name, string description, bool migrate)
    {
        var dataDir = new Option<string?>("--data-dir") { Description = "Data directory (SQLite: its attestbroker.db)." };
        var provider = new Option<string?>("--provider") { Description = "sqlite or postgres (default: Broker:Storage:Provider, else sqlite)." };
        var schema = new Option<string?>("--schema") { Description = "PostgreSQL schema (default: Broker:Storage:Schema, else attestbroker)." };
        var csFile = new Option<string?>("--connection-string-file") { Description = "File holding the Npgsql connection string (else Broker:Storage:ConnectionString from the environment or appsettings.json)." };
        var command = new Command(name, description) { dataDir, provider, schema, csFile };
        command.SetAction(async (parse, ct) =>
        {
            var configuration = new ConfigurationBuilder()
                .AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true)
                .AddEnvironmentVariables()
                .Build();
            var options = new BrokerOptions();
            configuration.GetSection(BrokerOptions.SectionName).Bind(options);
            options.DataDirectory = parse.GetValue(dataDir) ?? options.DataDirectory;
            options.Storage.Provider = parse.GetValue(provider) ?? options.Storage.Provider;
            options.Storage.Schema = parse.GetValue(schema) ?? options.Storage.Schema;
            if (parse.GetValue(csFile) is { } file)
            {
                options.Storage.ConnectionString = null;
                options.Storage.ConnectionStringFile = file;
            }

            var storageOptions = new StorageOptions();
            if (options.Storage.IsPostgres)
            {
                string connectionString;
                try
                {
                    connectionString = options.Storage.ResolveConnectionString();
                }
                catch (BrokerStartupException ex)
                {
                    throw new CliUsageException(ex.Message, ex);
                }

                storageOptions.Provider = "postgres";
                storageOptions.PostgresConnectionString = connectionString;
                storageOptions.PostgresSchema = options.Storage.Schema;
            }
            else if (string.Equals(options.Storage.Provider, BrokerStorageOptions.Sqlite, StringComparison.OrdinalIgnoreCase))
            {
                if (string.IsNullOrWhiteSpace(options.DataDirectory))
                {
                    throw new CliUsageException("--data-dir (or Broker:DataDirectory) is required for the SQLite provider");
                }

                if (!Directory.Exists(options.DataDirectory))
                {
                    throw new CliUsageException($"the data directory {options.DataDirectory} does not exist");
                }

                storageOptions.Provider = "sqlite";
                storageOptions.SqlitePath = Path.Combine(options.DataDirectory, BrokerData.DatabaseFile);
            }
            else
            {
                throw new CliUsageException("--provider (Broker:Storage:Provider) must be sqlite or postgres");
            }

            IBrokerStorage storage;
            try
            {
                storage = BrokerStorage.Create(storageOptions);
            }
            catch (StorageException ex)
            {
                throw new CliUsageException(ex.Message, ex);
            }

            await using (storage.ConfigureAwait(false))
            {
                var where = storageOptions.Provider == "postgres" ? $"postgres schema {storageOptions.PostgresSchema}" : $"sqlite {storageOptions.SqlitePath}";
                try
                {
                    if (migrate)
                    {
                        var result = await storage.MigrateAsync(ct).ConfigureAwait(false);
                        var applied = result.Applied.Count == 0 ? "nothing to apply" : "applied " + string.Join(", ", result.Applied);
                        await parse.InvocationConfiguration.Output.WriteLineAsync($"{where}: schema version {result.SchemaVersion} ({applied})").ConfigureAwait(false);
                    }
                    else
                    {
                        var version = await storage.SchemaVersionAsync(ct).ConfigureAwait(false);
                        await parse.InvocationConfiguration.Output.WriteLineAsync($"{where}: schema version {version}{(version == 0 ? " (not migrated)" : string.Empty)}").ConfigureAwait(false);
                    }
                }
                catch (StorageException ex)
                {
                    await parse.InvocationConfiguration.Error.WriteLineAsync($"{where}: {ex.Error}: {ex.Message}").ConfigureAwait(false);
                    return ExitCodes.Failure;
                }
            }

            return ExitCodes.Success;
        });
        return command;
    }
}
