namespace AttestBroker.Storage;

/// <summary>Which database the broker uses; validated by <see cref="BrokerStorage.Create"/>.</summary>
public sealed class StorageOptions
{
    /// <summary>"sqlite" (default) or "postgres".</summary>
    public string Provider { get; set; } = "sqlite";

    /// <summary>SQLite database file (created with mode 0600 if absent).</summary>
    public string SqlitePath { get; set; } = "attestbroker.db";

    /// <summary>Npgsql connection string (PostgreSQL only).</summary>
    public string? PostgresConnectionString { get; set; }

    /// <summary>PostgreSQL schema holding the tables.</summary>
    public string PostgresSchema { get; set; } = PostgresStorage.DefaultSchema;
}

/// <summary>Opens the configured storage provider.</summary>
public static class BrokerStorage
{
    /// <summary>Creates the provider; a bad configuration is a <see cref="StorageError.InvalidConfiguration"/> error.</summary>
    public static IBrokerStorage Create(StorageOptions options, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Provider.ToUpperInvariant() switch
        {
            "SQLITE" => string.IsNullOrWhiteSpace(options.SqlitePath)
                ? throw new StorageException(StorageError.InvalidConfiguration, "the SQLite provider needs a database path")
                : new SqliteStorage(options.SqlitePath, time),
            "POSTGRES" or "POSTGRESQL" => string.IsNullOrWhiteSpace(options.PostgresConnectionString)
                ? throw new StorageException(StorageError.InvalidConfiguration, "the PostgreSQL provider needs a connection string")
                : new PostgresStorage(options.PostgresConnectionString, options.PostgresSchema, time),
            _ => throw new StorageException(StorageError.InvalidConfiguration, $"unknown storage provider '{options.Provider}'; use sqlite or postgres"),
        };
    }
}
