using System.Buffers.Binary;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using AttestBroker.Storage.Migrations;
using Npgsql;

namespace AttestBroker.Storage;

/// <summary>
/// PostgreSQL storage for several replicas. Tables live in one schema (default "attestbroker"). Serialised writes
/// take a transaction-scoped advisory lock (pg_advisory_xact_lock) derived from the schema and the write path.
/// </summary>
public sealed partial class PostgresStorage : SqlStorage
{
    public const string DefaultSchema = "attestbroker";

    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schema;

    public PostgresStorage(string connectionString, string schema = DefaultSchema, TimeProvider? time = null)
        : base(time)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        if (!SchemaName().IsMatch(schema))
        {
            throw new StorageException(StorageError.InvalidConfiguration, "the PostgreSQL schema name must match [a-z_][a-z0-9_]{0,62}");
        }

        _schema = schema;
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            // The connection string may hold a password: it is not repeated here.
            throw new StorageException(StorageError.InvalidConfiguration, "the PostgreSQL connection string is invalid: " + e.Message.Split('\'')[0].Trim(), e);
        }

        builder.SearchPath = schema;
        _dataSource = NpgsqlDataSource.Create(builder);
    }

    public override string Provider => "postgres";

    public string Schema => _schema;

    internal override IReadOnlyList<Migration> Migrations => PostgresMigrations.All;

    internal override string SchemaVersionExistsSql => "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_version'";

    internal override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken) =>
        await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

    internal override async Task<DbTransaction> BeginWriteAsync(DbConnection connection, WriteLock writeLock, CancellationToken cancellationToken)
    {
        DbTransaction tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using DbCommand cmd = Command(connection, tx, "SELECT pg_advisory_xact_lock(@k)", ("k", LockKey(writeLock)));
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return tx;
        }
        catch
        {
            await tx.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A lost connection (the server restarted or went away) means every idle pooled connection is dead too: drop
    /// them all, so the requests that follow open fresh connections instead of each failing once on a stale one.
    /// </summary>
    internal override void OnFailure(DbException exception)
    {
        if (exception is not PostgresException pe || pe.SqlState.StartsWith("08", StringComparison.Ordinal) || pe.SqlState.StartsWith("57P", StringComparison.Ordinal))
        {
            _dataSource.Clear();
        }
    }

    internal override bool IsUniqueViolation(DbException exception) =>
        exception is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation };

    internal override Task PrepareMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken) =>
        ExecAsync(connection, transaction, $"CREATE SCHEMA IF NOT EXISTS \"{_schema}\"", cancellationToken);

    /// <summary>Drops the schema and everything in it (tests and `db reset` only).</summary>
    public async Task DropSchemaAsync(CancellationToken cancellationToken = default)
    {
        await using NpgsqlConnection c = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await ExecAsync(c, null, $"DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE", cancellationToken).ConfigureAwait(false);
    }

    public override ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    /// <summary>64-bit advisory lock key: SHA-256("attestbroker-lock" 0 schema 0 path), first 8 bytes.</summary>
    internal long LockKey(WriteLock writeLock)
    {
        byte[] digest = SHA256.HashData(Encoding.UTF8.GetBytes($"attestbroker-lock\0{_schema}\0{(int)writeLock}"));
        return BinaryPrimitives.ReadInt64BigEndian(digest);
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex SchemaName();
}
