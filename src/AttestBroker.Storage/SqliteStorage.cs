using System.Data.Common;
using System.Runtime.CompilerServices;
using AttestBroker.Storage.Migrations;
using Microsoft.Data.Sqlite;

namespace AttestBroker.Storage;

/// <summary>
/// The embedded default: one SQLite file in WAL mode with synchronous=FULL (a commit is on disk before it is
/// reported). Writers that must be serialised (audit appends, policy versions, migrations) use BEGIN IMMEDIATE,
/// which takes the database write lock for the whole transaction, so several processes on the same file stay
/// consistent. The request-path writes (replay inserts, audit appends) are group-committed: see <see cref="SqliteGroupCommit"/>.
/// </summary>
public sealed class SqliteStorage : SqlStorage
{
    // Physical connections (their sqlite3 handles, kept alive by the pool) that have had their PRAGMAs set.
    private static readonly ConditionalWeakTable<SQLitePCL.sqlite3, object> ConfiguredConnections = new();
    private static readonly object ConfiguredMark = new();

    private readonly string _connectionString;
    private readonly SqliteGroupCommit _group;

    /// <summary>Opens (creating with mode 0600 if absent) the database file at <paramref name="databasePath"/>.</summary>
    public SqliteStorage(string databasePath, TimeProvider? time = null)
        : base(time)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(databasePath);
        CreateOwnerOnly(databasePath);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        _group = new SqliteGroupCommit(OpenAsync, (c, ct) => BeginWriteAsync(c, WriteLock.Audit, ct));
    }

    /// <summary>Records the nonce in the next group commit; true only once the insert is durable.</summary>
    public override Task<bool> TryConsumeAsync(string nonceId, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
    {
        RequireNonceId(nonceId);
        return Run(() => _group.RunAsync((c, tx) => TryConsumeCoreAsync(c, tx, nonceId, expiresAt, CancellationToken.None), cancellationToken));
    }

    /// <summary>Appends the row in the next group commit (in arrival order); returns once it is durable.</summary>
    public override Task<AuditRecord> AppendAsync(AuditEvent auditEvent, CancellationToken cancellationToken = default)
    {
        byte[] json = AuditChain.CanonicalJson(auditEvent);
        return Run(() => _group.RunAsync((c, tx) => AppendCoreAsync(c, tx, auditEvent, json, CancellationToken.None), cancellationToken));
    }

    public override string Provider => "sqlite";

    internal override IReadOnlyList<Migration> Migrations => SqliteMigrations.All;

    internal override string SchemaVersionExistsSql => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'";

    internal override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var c = new SqliteConnection(_connectionString);
        try
        {
            await c.OpenAsync(cancellationToken).ConfigureAwait(false);
            // Both settings belong to the physical connection and last as long as it does; a pooled one handed out
            // again already has them (the request path opens three or four connections per release).
            if (c.Handle is { } handle && !ConfiguredConnections.TryGetValue(handle, out _))
            {
                await ExecAsync(c, null, "PRAGMA busy_timeout = 30000; PRAGMA synchronous = FULL", cancellationToken).ConfigureAwait(false);
                ConfiguredConnections.AddOrUpdate(handle, ConfiguredMark);
            }

            return c;
        }
        catch
        {
            await c.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    internal override Task<DbTransaction> BeginWriteAsync(DbConnection connection, WriteLock writeLock, CancellationToken cancellationToken)
    {
        // deferred: false issues BEGIN IMMEDIATE: the write lock is held from the start, so the read of the chain
        // head and the insert after it cannot interleave with another writer.
        DbTransaction tx = ((SqliteConnection)connection).BeginTransaction(deferred: false);
        return Task.FromResult(tx);
    }

    internal override bool IsUniqueViolation(DbException exception) =>
        exception is SqliteException { SqliteExtendedErrorCode: SqliteConstraintPrimaryKey or SqliteConstraintUnique };

    // Extended result codes: only key collisions count, not NOT NULL or CHECK failures.
    private const int SqliteConstraintPrimaryKey = 1555;
    private const int SqliteConstraintUnique = 2067;

    internal override Task BeforeMigrationAsync(DbConnection connection, CancellationToken cancellationToken) =>
        ExecAsync(connection, null, "PRAGMA journal_mode = WAL", cancellationToken);

    public override async ValueTask DisposeAsync()
    {
        await _group.DisposeAsync().ConfigureAwait(false);
        using var c = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(c);
    }

    private static void CreateOwnerOnly(string path)
    {
        if (OperatingSystem.IsWindows() || path == ":memory:" || File.Exists(path))
        {
            return;
        }

        try
        {
            using var _ = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }
        catch (IOException) when (File.Exists(path))
        {
            // created concurrently by another instance
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StorageException(StorageError.InvalidConfiguration, $"cannot create the SQLite database at {path}: {e.Message}", e);
        }
    }
}
