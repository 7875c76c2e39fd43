namespace AttestBroker.Storage.Tests;

[TestFixture(Db.Sqlite)]
[TestFixture(Db.Postgres)]
public sealed class KeyRecordStoreTests(Db db) : StorageTestBase(db)
{
    private static KeyRecord Record(string id) =>
        new(id, [1, 2, 3, 4], "kek-a", 1, KeyState.Enabled, "embedded", Start, null, null);

    [Test]
    public async Task A_record_round_trips_with_its_metadata()
    {
        await Storage.Keys.InsertAsync(Record("k1"));
        KeyRecord r = (await Storage.Keys.GetAsync("k1"))!;
        Assert.That(r.Wrapped, Is.EqualTo(new byte[] { 1, 2, 3, 4 }));
        Assert.That((r.WrappingKeyId, r.WrappingKeyVersion, r.State, r.Backend, r.CreatedAt, r.RotatedAt), Is.EqualTo(("kek-a", 1, KeyState.Enabled, "embedded", Start, (DateTimeOffset?)null)));
        Assert.That(await Storage.Keys.GetAsync("nope"), Is.Null);
    }

    [Test]
    public async Task Inserting_an_existing_id_is_refused_with_already_exists()
    {
        await Storage.Keys.InsertAsync(Record("k1"));
        StorageException e = Assert.ThrowsAsync<StorageException>(() => Storage.Keys.InsertAsync(Record("k1")))!;
        Assert.That(e.Error, Is.EqualTo(StorageError.AlreadyExists));
    }

    [Test]
    public async Task Replacing_the_wrapping_is_a_compare_and_swap_on_the_kek_version()
    {
        await Storage.Keys.InsertAsync(Record("k1"));
        Assert.That(await Storage.Keys.ReplaceWrappingAsync("k1", "kek-a", 1, [9], "kek-b", 2, Start.AddHours(1)), Is.True);
        Assert.That(await Storage.Keys.ReplaceWrappingAsync("k1", "kek-a", 1, [8], "kek-c", 3, Start.AddHours(2)), Is.False);

        KeyRecord r = (await Storage.Keys.GetAsync("k1"))!;
        Assert.That((r.Wrapped.Single(), r.WrappingKeyId, r.WrappingKeyVersion, r.RotatedAt), Is.EqualTo(((byte)9, "kek-b", 2, (DateTimeOffset?)Start.AddHours(1))));
    }

    [Test]
    public async Task Disabling_sets_the_state_and_time_and_unknown_keys_report_false()
    {
        await Storage.Keys.InsertAsync(Record("k1"));
        Assert.That(await Storage.Keys.SetStateAsync("k1", KeyState.Disabled, Start.AddMinutes(3)), Is.True);
        Assert.That(await Storage.Keys.SetStateAsync("k2", KeyState.Disabled, Start), Is.False);

        KeyRecord r = (await NewReplica().Keys.GetAsync("k1"))!;
        Assert.That((r.State, r.DisabledAt), Is.EqualTo((KeyState.Disabled, (DateTimeOffset?)Start.AddMinutes(3))));
        Assert.That(r.ToString(), Does.Not.Contain("Wrapped"));
    }
}
