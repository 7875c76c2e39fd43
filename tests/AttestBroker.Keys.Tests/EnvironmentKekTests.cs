namespace AttestBroker.Keys.Tests;

[TestFixture]
public sealed class EnvironmentKekTests : KeysTestBase
{
    private static readonly string KeyA = Convert.ToBase64String(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
    private static readonly string KeyB = Convert.ToBase64String(Enumerable.Range(101, 32).Select(i => (byte)i).ToArray());

    [Test]
    public void A_bare_base64_value_is_kek_version_1()
    {
        using var ring = new EnvironmentKekSource(KeyA, "test");
        Assert.That(ring.Versions, Is.EqualTo(new[] { 1 }));
        Assert.That(ring.CanAddVersion, Is.False);
    }

    [Test]
    public void Versioned_entries_make_the_highest_version_current()
    {
        using var ring = new EnvironmentKekSource($"1:{KeyA}, 2:{KeyB}", "test");
        Assert.That(ring.CurrentVersion, Is.EqualTo(2));
    }

    [TestCase("not base64 at all!")]
    [TestCase("AAAA")]
    [TestCase("0:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    public void A_malformed_value_is_refused_with_kek_invalid_and_the_value_is_not_echoed(string value)
    {
        KeyStoreException e = Assert.Throws<KeyStoreException>(() => new EnvironmentKekSource(value, "environment variable X").Dispose())!;
        Assert.That(e.Error, Is.EqualTo(KeyError.KekInvalid));
        Assert.That(e.Message, Does.Not.Contain(value));
    }

    [Test]
    public void An_unset_variable_is_refused_with_kek_unavailable()
    {
        KeyStoreException e = Assert.Throws<KeyStoreException>(() => new EnvironmentKekSource("ATTESTBROKER_TEST_UNSET_" + Guid.NewGuid().ToString("N")).Dispose())!;
        Assert.That(e.Error, Is.EqualTo(KeyError.KekUnavailable));
    }

    [Test]
    public async Task Rotation_with_an_environment_kek_rewraps_under_the_newly_supplied_version()
    {
        var before = Track(new EnvironmentKekSource(KeyA, "test"));
        EmbeddedKeyStore store = OpenStore(before);
        await store.CreateAsync("m1");
        byte[] key = Release(store, "m1");

        var after = Track(new EnvironmentKekSource($"1:{KeyA},2:{KeyB}", "test"));
        EmbeddedKeyStore restarted = OpenStore(after);
        KekRotationResult result = await restarted.RotateKekAsync();

        Assert.That((result.KekVersion, result.Rewrapped), Is.EqualTo((2, 1)));
        Assert.That(Release(restarted, "m1"), Is.EqualTo(key));
        Assert.That((await restarted.GetInfoAsync("m1"))!.WrappingKeyVersion, Is.EqualTo(2));
    }

    [Test]
    public void An_environment_kek_cannot_add_a_version_itself()
    {
        using var ring = new EnvironmentKekSource(KeyA, "test");
        var wrapper = new AesGcmKeyWrapper(ring);
        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => wrapper.AddVersionAsync())!;
        Assert.That(e.Error, Is.EqualTo(KeyError.RotationUnsupported));
    }
}
