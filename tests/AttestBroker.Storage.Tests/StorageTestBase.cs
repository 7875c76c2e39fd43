using System.Data.Common;
using System.Security.Cryptography;

namespace AttestBroker.Storage.Tests;

public enum Db
{
    Sqlite,
    Postgres,
}

/// <summary>A settable clock: storage takes time only from here.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>
/// The storage suite is written once: every fixture derives from this base and runs once per provider.
/// SQLite always; PostgreSQL when ATTESTBROKER_TEST_POSTGRES holds an Npgsql connection string (each test gets
/// its own schema, dropped afterwards); otherwise the PostgreSQL fixtures are Ignored with the reason.
/// </summary>
public abstract class StorageTestBase
{
    public const string PostgresVariable = "ATTESTBROKER_TEST_POSTGRES";

    private readonly List<SqlStorage> _opened = [];
    private string? _directory;
    private string? _schema;

    protected StorageTestBase(Db db)
    {
        Provider = db;
    }

    protected Db Provider { get; }

    protected SqlStorage Storage { get; private set; } = null!;

    protected ManualClock Clock { get; private set; } = null!;

    protected static DateTimeOffset Start { get; } = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    [SetUp]
    public async Task CreateStorage()
    {
        Clock = new ManualClock(Start);
        if (Provider == Db.Postgres)
        {
            if (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(PostgresVariable)))
            {
                Assert.Ignore($"{PostgresVariable} is not set: the PostgreSQL suite needs an Npgsql connection string to a database the tests may create schemas in");
            }

            _schema = "abtest_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        }
        else
        {
            _directory = Directory.CreateTempSubdirectory("ab-storage-test-").FullName;
        }

        Storage = NewReplica();
        await Storage.MigrateAsync();
    }

    [TearDown]
    public async Task DropStorage()
    {
        foreach (PostgresStorage pg in _opened.OfType<PostgresStorage>().DistinctBy(p => p.Schema))
        {
            await pg.DropSchemaAsync();
        }

        foreach (SqlStorage s in _opened)
        {
            await s.DisposeAsync();
        }

        _opened.Clear();
        if (Storage is not null)
        {
            await Storage.DisposeAsync(); // already disposed above; idempotent
        }
        if (_directory is not null && Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>Another broker instance on the same database (a second replica).</summary>
    protected SqlStorage NewReplica() => OpenDatabase(string.Empty);

    /// <summary>An instance on a separate, possibly not yet migrated, database named by <paramref name="suffix"/>.</summary>
    protected SqlStorage OpenDatabase(string suffix)
    {
        SqlStorage s = Provider == Db.Sqlite
            ? new SqliteStorage(Path.Combine(_directory!, $"broker{suffix}.db"), Clock)
            : new PostgresStorage(Environment.GetEnvironmentVariable(PostgresVariable)!, _schema! + suffix, Clock);
        _opened.Add(s);
        return s;
    }

    /// <summary>Runs raw SQL against the database, as an attacker with database access would.</summary>
    protected async Task<int> TamperAsync(string sql, params (string Name, object? Value)[] parameters)
    {
        await using DbConnection c = await Storage.OpenAsync(CancellationToken.None);
        await using DbCommand cmd = SqlStorage.Command(c, null, sql, parameters);
        return await cmd.ExecuteNonQueryAsync();
    }
}
