namespace AttestBroker.Keys.Tests;

[TestFixture]
public sealed class DisableTests : KeysTestBase
{
    [Test]
    public async Task A_disabled_key_is_refused_with_disabled_and_nothing_is_written_to_the_buffer()
    {
        EmbeddedKeyStore store = OpenStore();
        await store.CreateAsync("m");
        await store.DisableAsync("m");

        byte[] buffer = new byte[32];
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => store.GetForReleaseAsync("m", buffer))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.Disabled));
        Assert.That(buffer, Is.All.EqualTo((byte)0));
    }

    [Test]
    public async Task Disabling_on_one_instance_stops_release_on_another_at_once()
    {
        FileKekSource kek = OpenKek();
        EmbeddedKeyStore replicaA = OpenStore(kek);
        await using var secondInstance = new AttestBroker.Storage.SqliteStorage(Path.Combine(Directory, "broker.db"));
        EmbeddedKeyStore replicaB = new(secondInstance.Keys, kek);
        await replicaA.CreateAsync("m");
        Assert.That(Release(replicaB, "m"), Has.Length.EqualTo(32));

        KeyInfo disabled = await replicaA.DisableAsync("m");

        Assert.That(disabled.State, Is.EqualTo(AttestBroker.Storage.KeyState.Disabled));
        Assert.That(disabled.DisabledAt, Is.Not.Null);
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => replicaB.GetForReleaseAsync("m", new byte[32]))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.Disabled));
    }

    [Test]
    public async Task A_re_enabled_key_is_released_again()
    {
        EmbeddedKeyStore store = OpenStore();
        await store.CreateAsync("m");
        byte[] key = Release(store, "m");
        await store.DisableAsync("m");
        await store.EnableAsync("m");
        Assert.That(Release(store, "m"), Is.EqualTo(key));
    }

    [Test]
    public void Disabling_an_unknown_key_is_refused_with_not_found()
    {
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => OpenStore().DisableAsync("ghost"))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.NotFound));
    }
}
