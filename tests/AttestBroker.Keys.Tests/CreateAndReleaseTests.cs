using AttestBroker.Storage;

namespace AttestBroker.Keys.Tests;

[TestFixture]
public sealed class CreateAndReleaseTests : KeysTestBase
{
    [Test]
    public async Task A_created_key_is_32_random_bytes_released_identically_each_time()
    {
        EmbeddedKeyStore store = OpenStore();
        KeyInfo info = await store.CreateAsync("llama-70b");
        await store.CreateAsync("mistral-7b");

        byte[] a = Release(store, "llama-70b");
        Assert.That(a, Is.EqualTo(Release(store, "llama-70b")));
        Assert.That(a, Is.Not.EqualTo(Release(store, "mistral-7b")));
        Assert.That(a.Any(b => b != 0), Is.True);
        Assert.That((info.State, info.Backend, info.WrappingKeyVersion), Is.EqualTo((KeyState.Enabled, "embedded", 1)));
    }

    [Test]
    public async Task An_imported_key_is_released_as_imported_and_stored_only_wrapped()
    {
        EmbeddedKeyStore store = OpenStore();
        byte[] key = [.. Enumerable.Range(0, 32).Select(i => (byte)(i * 7 + 1))];
        await store.ImportAsync("imported", key);

        Assert.That(Release(store, "imported"), Is.EqualTo(key));
        KeyRecord record = (await Storage.Keys.GetAsync("imported"))!;
        Assert.That(record.Wrapped, Has.Length.EqualTo(AesGcmKeyWrapper.WrappedLength));
        Assert.That(Convert.ToHexString(record.Wrapped), Does.Not.Contain(Convert.ToHexString(key)));
    }

    [TestCase(16)]
    [TestCase(31)]
    [TestCase(33)]
    public void Importing_a_key_that_is_not_32_bytes_is_refused_with_invalid_key_material(int length)
    {
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => OpenStore().ImportAsync("k", new byte[length].Select(_ => (byte)1).ToArray()))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.InvalidKeyMaterial));
    }

    [Test]
    public void Importing_an_all_zero_key_is_refused_with_invalid_key_material()
    {
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => OpenStore().ImportAsync("k", new byte[32]))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.InvalidKeyMaterial));
    }

    [Test]
    public async Task Creating_an_existing_key_id_is_refused_with_already_exists()
    {
        EmbeddedKeyStore store = OpenStore();
        await store.CreateAsync("dup");
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => store.CreateAsync("dup"))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.AlreadyExists));
    }

    [TestCase("")]
    [TestCase("-starts-with-dash")]
    [TestCase("has space")]
    [TestCase("slash/inside")]
    public void A_malformed_key_id_is_refused_with_invalid_key_id(string keyId)
    {
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => OpenStore().CreateAsync(keyId))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.InvalidKeyId));
    }

    [Test]
    public void Releasing_an_unknown_key_is_refused_with_not_found()
    {
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => OpenStore().GetForReleaseAsync("ghost", new byte[32]))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.NotFound));
    }

    [Test]
    public async Task List_returns_metadata_of_every_key_and_never_bytes()
    {
        EmbeddedKeyStore store = OpenStore();
        await store.CreateAsync("b");
        await store.CreateAsync("a");
        IReadOnlyList<KeyInfo> list = await store.ListAsync();

        Assert.That(list.Select(k => k.KeyId), Is.EqualTo(new[] { "a", "b" }));
        Assert.That(typeof(KeyInfo).GetProperties().Select(p => p.PropertyType), Has.None.EqualTo(typeof(byte[])));
        KeyRecord record = (await Storage.Keys.GetAsync("a"))!;
        Assert.That(record.ToString(), Does.Not.Contain("Byte"));
    }
}
