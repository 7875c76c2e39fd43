namespace AttestBroker.Storage;

/// <summary>Why a storage operation failed; stable codes the broker maps to its own errors.</summary>
public enum StorageError
{
    /// <summary>The database could not be reached or the statement failed.</summary>
    Unavailable,
    /// <summary>A row with the same identity already exists.</summary>
    AlreadyExists,
    /// <summary>A stored row does not match its own digest (damaged or edited outside the broker).</summary>
    Corrupt,
    /// <summary>The database schema is newer than this build knows.</summary>
    SchemaTooNew,
    /// <summary>The database schema has not been migrated.</summary>
    NotMigrated,
    /// <summary>A concurrent writer changed the row first; retry.</summary>
    Conflict,
    /// <summary>A configuration value (connection string, schema name) is invalid.</summary>
    InvalidConfiguration,
}

/// <summary>A typed storage failure. Messages never carry key material or document bodies.</summary>
public sealed class StorageException : Exception
{
    public StorageException(StorageError error, string message, Exception? inner = null)
        : base(message, inner)
    {
        Error = error;
    }

    public StorageException()
        : this(StorageError.Unavailable, "storage operation failed")
    {
    }

    public StorageException(string message)
        : this(StorageError.Unavailable, message)
    {
    }

    public StorageException(string message, Exception innerException)
        : this(StorageError.Unavailable, message, innerException)
    {
    }

    public StorageError Error { get; }
}
