using AttestBroker.Storage;

namespace AttestBroker.Keys.Tests;

[TestFixture]
public sealed class RotationTests : KeysTestBase
{
    [Test]
    public async Task Rotation_keeps_every_key_readable_changes_the_wrapped_bytes_and_retires_the_old_kek()
    {
        FileKekSource kek = OpenKek();
        EmbeddedKeyStore store = OpenStore(kek);
        var before = new Dictionary<string, (byte[] Key, byte[] Wrapped)>();
        for (int i = 0; i < 12; i++)
        {
            await store.CreateAsync($"m{i}");
            before[$"m{i}"] = (Release(store, $"m{i}"), (await Storage.Keys.GetAsync($"m{i}"))!.Wrapped);
        }

        KekRotationResult result = await store.RotateKekAsync();

        Assert.That(result, Is.EqualTo(new KekRotationResult(2, 12, [1])).Using<KekRotationResult>((a, b) =>
            a.KekVersion == b.KekVersion && a.Rewrapped == b.Rewrapped && a.RetiredVersions.SequenceEqual(b.RetiredVersions)));
        foreach ((string id, (byte[] key, byte[] wrapped)) in before)
        {
            KeyRecord now = (await Storage.Keys.GetAsync(id))!;
            Assert.That(Release(store, id), Is.EqualTo(key), id);
            Assert.That(now.Wrapped, Is.Not.EqualTo(wrapped), id);
            Assert.That((now.WrappingKeyVersion, now.RotatedAt.HasValue), Is.EqualTo((2, true)), id);
        }

        Assert.That(File.Exists(kek.PathOf(1)), Is.False);
        Assert.That(kek.Versions, Is.EqualTo(new[] { 2 }));
        using var restarted = new FileKekSource(KekDirectory);
        Assert.That(Release(OpenStore(restarted), "m3"), Is.EqualTo(before["m3"].Key));
    }

    [Test]
    public async Task Keys_stay_readable_while_a_rotation_runs()
    {
        FileKekSource kek = OpenKek();
        EmbeddedKeyStore store = OpenStore(kek);
        var keys = new Dictionary<string, byte[]>();
        for (int i = 0; i < 20; i++)
        {
            await store.CreateAsync($"m{i}");
            keys[$"m{i}"] = Release(store, $"m{i}");
        }

        using var stop = new CancellationTokenSource();
        int reads = 0;
        Task reader = Task.Run(async () =>
        {
            byte[] buffer = new byte[32];
            while (!stop.IsCancellationRequested || reads < 40)
            {
                string id = $"m{reads % 20}";
                await store.GetForReleaseAsync(id, buffer);
                Assert.That(buffer, Is.EqualTo(keys[id]));
                Interlocked.Increment(ref reads);
            }
        });

        await store.RotateKekAsync();
        await store.RotateKekAsync();
        await stop.CancelAsync();
        await reader;

        Assert.That(kek.Versions, Is.EqualTo(new[] { 3 }));
        Assert.That(reads, Is.GreaterThanOrEqualTo(40));
    }

    [Test]
    public async Task A_replica_sharing_the_kek_directory_follows_a_rotation_made_by_another()
    {
        EmbeddedKeyStore replicaA = OpenStore(OpenKek());
        EmbeddedKeyStore replicaB = OpenStore(OpenKek());
        await replicaA.CreateAsync("m");
        byte[] key = Release(replicaB, "m");

        await replicaA.RotateKekAsync();

        Assert.That(Release(replicaB, "m"), Is.EqualTo(key), "B loads version 2 from the shared directory on demand");
        KeyInfo created = await replicaB.CreateAsync("after");
        Assert.That(created.WrappingKeyVersion, Is.EqualTo(2), "B wraps new keys under the newest version");
        Assert.That(Release(replicaA, "after"), Has.Length.EqualTo(32));
    }

    [Test]
    public async Task A_key_created_after_rotation_is_wrapped_under_the_new_version()
    {
        EmbeddedKeyStore store = OpenStore();
        await store.CreateAsync("old");
        await store.RotateKekAsync();
        KeyInfo fresh = await store.CreateAsync("new");
        Assert.That(fresh.WrappingKeyVersion, Is.EqualTo(2));
    }

    [Test]
    public async Task A_rotation_that_meets_a_damaged_key_stops_and_keeps_the_old_kek()
    {
        FileKekSource kek = OpenKek();
        EmbeddedKeyStore store = OpenStore(kek);
        await store.CreateAsync("good");
        await store.CreateAsync("bad");
        KeyRecord r = (await Storage.Keys.GetAsync("bad"))!;
        byte[] flipped = (byte[])r.Wrapped.Clone();
        flipped[20] ^= 1;
        await Storage.Keys.ReplaceWrappingAsync("bad", r.WrappingKeyId, 1, flipped, r.WrappingKeyId, 1, DateTimeOffset.UnixEpoch);

        KeyStoreException e = Assert.ThrowsAsync<KeyStoreException>(() => store.RotateKekAsync())!;
        Assert.That(e.Error, Is.EqualTo(KeyError.UnwrapFailed));
        Assert.That(File.Exists(kek.PathOf(1)), Is.True);
        Assert.That(Release(store, "good"), Has.Length.EqualTo(32));
    }
}
