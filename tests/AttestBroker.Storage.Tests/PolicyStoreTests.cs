namespace AttestBroker.Storage.Tests;

[TestFixture(Db.Sqlite)]
[TestFixture(Db.Postgres)]
public sealed class PolicyStoreTests(Db db) : StorageTestBase(db)
{
    [Test]
    public async Task Each_set_returns_the_next_version_and_history_keeps_who_and_when()
    {
        PolicyVersion v1 = await Storage.Policies.SetAsync("llama-70b", "tee: tdx\n", "alice", "first");
        Clock.Advance(TimeSpan.FromMinutes(1));
        PolicyVersion v2 = await Storage.Policies.SetAsync("llama-70b", "tee: [tdx, snp]\n", "bob");
        PolicyVersion other = await Storage.Policies.SetAsync("mistral", "tee: snp\n", "carol");

        Assert.That((v1.Version, v2.Version, other.Version), Is.EqualTo((1L, 2L, 1L)));
        IReadOnlyList<PolicyVersion> history = await Storage.Policies.HistoryAsync("llama-70b");
        Assert.That(history.Select(h => (h.Version, h.Author, h.CreatedAt)), Is.EqualTo(new[]
        {
            (1L, "alice", Start),
            (2L, "bob", Start.AddMinutes(1)),
        }));
        Assert.That(history[0].Comment, Is.EqualTo("first"));
        Assert.That(history[1].Comment, Is.Null);
        Assert.That(await Storage.Policies.ListNamesAsync(), Is.EqualTo(new[] { "llama-70b", "mistral" }));
    }

    [Test]
    public async Task Current_is_the_latest_version_and_old_versions_stay_readable()
    {
        await Storage.Policies.SetAsync("p", "one", "alice");
        await Storage.Policies.SetAsync("p", "two", "alice");

        PolicyVersion current = (await Storage.Policies.GetCurrentAsync("p"))!;
        Assert.That((current.Version, current.Document), Is.EqualTo((2L, "two")));
        Assert.That(current.Sha256Hex, Is.EqualTo("3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"));
        Assert.That((await Storage.Policies.GetVersionAsync("p", 1))!.Document, Is.EqualTo("one"));
        Assert.That(await Storage.Policies.GetVersionAsync("p", 3), Is.Null);
        Assert.That(await Storage.Policies.GetCurrentAsync("absent"), Is.Null);
    }

    [Test]
    public async Task A_document_edited_in_the_database_is_refused_as_corrupt()
    {
        await Storage.Policies.SetAsync("p", "allow: false", "alice");
        await TamperAsync("UPDATE policies SET document = 'allow: true'");

        StorageException e = Assert.ThrowsAsync<StorageException>(() => Storage.Policies.GetCurrentAsync("p"))!;
        Assert.That(e.Error, Is.EqualTo(StorageError.Corrupt));
    }

    [Test]
    public async Task Concurrent_sets_from_two_replicas_get_distinct_consecutive_versions()
    {
        SqlStorage other = NewReplica();
        PolicyVersion[] set = await Task.WhenAll(Enumerable.Range(0, 20)
            .Select(i => Task.Run(() => (i % 2 == 0 ? Storage : other).Policies.SetAsync("p", $"doc {i}", "admin"))));

        Assert.That(set.Select(s => s.Version).Order(), Is.EqualTo(Enumerable.Range(1, 20).Select(i => (long)i)));
    }
}
