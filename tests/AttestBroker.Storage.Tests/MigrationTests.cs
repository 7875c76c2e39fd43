namespace AttestBroker.Storage.Tests;

[TestFixture(Db.Sqlite)]
[TestFixture(Db.Postgres)]
public sealed class MigrationTests(Db db) : StorageTestBase(db)
{
    [Test]
    public async Task Migrating_again_applies_nothing_and_keeps_the_version()
    {
        MigrationResult again = await Storage.MigrateAsync();
        Assert.That(again.Applied, Is.Empty);
        Assert.That(again.SchemaVersion, Is.EqualTo(1));
        Assert.That(await Storage.SchemaVersionAsync(), Is.EqualTo(1));
    }

    [Test]
    public async Task Replicas_migrating_at_the_same_time_all_succeed_with_one_schema()
    {
        SqlStorage[] replicas = [.. Enumerable.Range(0, 4).Select(_ => OpenDatabase("_fresh"))];
        Assert.That(await replicas[0].SchemaVersionAsync(), Is.Zero);

        MigrationResult[] results = await Task.WhenAll(replicas.Select(r => Task.Run(() => r.MigrateAsync())));

        Assert.That(results.All(r => r.SchemaVersion == 1), Is.True);
        Assert.That(results.Count(r => r.Applied.Count == 1), Is.EqualTo(1), "exactly one replica applies the migration");
        Assert.That(await replicas[0].SchemaVersionAsync(), Is.EqualTo(1));
        Assert.That(await replicas[1].Replay.TryConsumeAsync("n", Start.AddMinutes(1)), Is.True);
    }

    [Test]
    public void Using_a_store_before_migrating_is_a_typed_storage_error()
    {
        SqlStorage fresh = OpenDatabase("_unmigrated");
        StorageException e = Assert.ThrowsAsync<StorageException>(() => fresh.Replay.TryConsumeAsync("n", Start.AddMinutes(1)))!;
        Assert.That(e.Error, Is.EqualTo(StorageError.Unavailable));
    }

    [Test]
    public async Task A_schema_newer_than_this_build_is_refused_with_schema_too_new()
    {
        await TamperAsync("INSERT INTO schema_version (version, name, applied_ms) VALUES (99, 'future', 0)");
        StorageException e = Assert.ThrowsAsync<StorageException>(() => Storage.MigrateAsync())!;
        Assert.That(e.Error, Is.EqualTo(StorageError.SchemaTooNew));
    }
}
