using AttestBroker.Storage;

namespace AttestBroker.Keys.Tests;

[TestFixture]
public sealed class WrongKekTests : KeysTestBase
{
    [Test]
    public async Task A_key_read_with_a_different_kek_is_refused_with_wrong_kek()
    {
        await OpenStore().CreateAsync("m");
        EmbeddedKeyStore other = OpenStore(OpenKek(Path.Combine(Directory, "other-kek")));

        byte[] buffer = new byte[32];
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => other.GetForReleaseAsync("m", buffer))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.WrongKek));
        Assert.That(buffer, Is.All.EqualTo((byte)0));
    }

    [Test]
    public async Task A_key_wrapped_under_a_kek_version_that_is_not_loaded_is_refused_with_kek_unavailable()
    {
        EmbeddedKeyStore store = OpenStore();
        await store.CreateAsync("m");
        KeyRecord r = (await Storage.Keys.GetAsync("m"))!;
        await Storage.Keys.ReplaceWrappingAsync("m", r.WrappingKeyId, r.WrappingKeyVersion, r.Wrapped, r.WrappingKeyId, 7, DateTimeOffset.UnixEpoch);

        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => store.GetForReleaseAsync("m", new byte[32]))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.KekUnavailable));
    }

    [Test]
    public async Task A_flipped_bit_in_the_wrapped_key_is_refused_with_unwrap_failed()
    {
        EmbeddedKeyStore store = OpenStore();
        await store.CreateAsync("m");
        for (int i = AesGcmKeyWrapper.NonceOffset; i < AesGcmKeyWrapper.WrappedLength; i += 5)
        {
            KeyRecord r = (await Storage.Keys.GetAsync("m"))!;
            byte[] flipped = (byte[])r.Wrapped.Clone();
            flipped[i] ^= 0x80;
            await Storage.Keys.ReplaceWrappingAsync("m", r.WrappingKeyId, r.WrappingKeyVersion, flipped, r.WrappingKeyId, r.WrappingKeyVersion, DateTimeOffset.UnixEpoch);

            KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => store.GetForReleaseAsync("m", new byte[32]))!;
            Assert.That(e.Error, Is.EqualTo(KeyError.UnwrapFailed), $"byte {i}");

            await Storage.Keys.ReplaceWrappingAsync("m", r.WrappingKeyId, r.WrappingKeyVersion, r.Wrapped, r.WrappingKeyId, r.WrappingKeyVersion, DateTimeOffset.UnixEpoch);
        }
    }

    [Test]
    public async Task A_wrapped_key_moved_to_another_key_id_is_refused_with_unwrap_failed()
    {
        EmbeddedKeyStore store = OpenStore();
        await store.CreateAsync("victim");
        await store.CreateAsync("attacker");
        KeyRecord victim = (await Storage.Keys.GetAsync("victim"))!;
        KeyRecord attacker = (await Storage.Keys.GetAsync("attacker"))!;
        await Storage.Keys.ReplaceWrappingAsync("attacker", attacker.WrappingKeyId, attacker.WrappingKeyVersion, victim.Wrapped, victim.WrappingKeyId, victim.WrappingKeyVersion, DateTimeOffset.UnixEpoch);

        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => store.GetForReleaseAsync("attacker", new byte[32]))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.UnwrapFailed));
    }

    [Test]
    public async Task A_truncated_wrapped_key_is_refused_with_unwrap_failed()
    {
        EmbeddedKeyStore store = OpenStore();
        await store.CreateAsync("m");
        KeyRecord r = (await Storage.Keys.GetAsync("m"))!;
        await Storage.Keys.ReplaceWrappingAsync("m", r.WrappingKeyId, r.WrappingKeyVersion, r.Wrapped[..40], r.WrappingKeyId, r.WrappingKeyVersion, DateTimeOffset.UnixEpoch);

        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => store.GetForReleaseAsync("m", new byte[32]))!;
        Assert.That(e.Error, Is.EqualTo(KeyError.UnwrapFailed));
    }

    [Test]
    public async Task No_error_message_carries_the_key_bytes()
    {
        EmbeddedKeyStore store = OpenStore();
        byte[] key = [.. Enumerable.Range(0, 32).Select(i => (byte)(0xA0 + i))];
        await store.ImportAsync("m", key);
        EmbeddedKeyStore other = OpenStore(OpenKek(Path.Combine(Directory, "other-kek")));

        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => other.GetForReleaseAsync("m", new byte[32]))!;
        string all = e.ToString();
        Assert.That(all, Does.Not.Contain(Convert.ToHexString(key)).IgnoreCase);
        Assert.That(all, Does.Not.Contain(Convert.ToBase64String(key)));
    }
}
