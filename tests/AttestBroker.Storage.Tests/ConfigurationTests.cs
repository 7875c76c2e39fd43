namespace AttestBroker.Storage.Tests;

[TestFixture]
public sealed class ConfigurationTests
{
    [Test]
    public void An_unknown_provider_is_refused_with_invalid_configuration()
    {
        StorageException e = Assert.Throws<StorageException>(() => BrokerStorage.Create(new StorageOptions { Provider = "mysql" }))!;
        Assert.That(e.Error, Is.EqualTo(StorageError.InvalidConfiguration));
    }

    [Test]
    public void Postgres_without_a_connection_string_is_refused_with_invalid_configuration()
    {
        StorageException e = Assert.Throws<StorageException>(() => BrokerStorage.Create(new StorageOptions { Provider = "postgres" }))!;
        Assert.That(e.Error, Is.EqualTo(StorageError.InvalidConfiguration));
    }

    [TestCase("Robert'); DROP TABLE x;--")]
    [TestCase("UPPER")]
    [TestCase("")]
    public void A_schema_name_outside_the_safe_pattern_is_refused_with_invalid_configuration(string schema)
    {
        StorageException e = Assert.Throws<StorageException>(() => new PostgresStorage("Host=127.0.0.1", schema))!;
        Assert.That(e.Error, Is.EqualTo(StorageError.InvalidConfiguration));
    }

    [Test]
    public void A_malformed_connection_string_is_refused_without_repeating_the_password()
    {
        StorageException e = Assert.Throws<StorageException>(() => new PostgresStorage("Host=127.0.0.1;Password=hunter2secret;Port=notaport"))!;
        Assert.That(e.Error, Is.EqualTo(StorageError.InvalidConfiguration));
        Assert.That(e.Message, Does.Not.Contain("hunter2secret"));
    }

    [Test]
    public async Task An_unreachable_postgres_is_a_typed_unavailable_error()
    {
        await using var s = new PostgresStorage("Host=127.0.0.1;Port=1;Timeout=2;Username=x;Password=y;Database=z");
        StorageException e = Assert.ThrowsAsync<StorageException>(() => s.MigrateAsync())!;
        Assert.That(e.Error, Is.EqualTo(StorageError.Unavailable));
    }

    [Test]
    [Platform(Exclude = "Win", Reason = "Unix file modes")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task The_sqlite_database_file_is_created_owner_only()
    {
        string dir = Directory.CreateTempSubdirectory("ab-storage-cfg-").FullName;
        try
        {
            string path = Path.Combine(dir, "broker.db");
            await using (IBrokerStorage s = BrokerStorage.Create(new StorageOptions { SqlitePath = path }))
            {
                await s.MigrateAsync();
            }

            Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
