using System.Text;
using AttestBroker.Storage;
using AttestBroker.Verification.Collateral;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

[TestFixture]
public sealed class The_collateral_cache_in_the_database
{
    private static readonly Uri Url = new("https://pcs.test/tdx/certification/v4/tcb?fmspc=00806f050000");
    private static readonly DateTimeOffset Fetched = DateTimeOffset.Parse("2026-01-01T00:00:00Z", null);

    [Test]
    public async Task Keeps_the_uri_body_headers_and_fetch_time_of_a_response_and_its_freshness_limit()
    {
        var dir = Directory.CreateTempSubdirectory("ab-dbcache-").FullName;
        try
        {
            await using var storage = new SqliteStorage(Path.Combine(dir, "attestbroker.db"));
            await storage.MigrateAsync();
            var store = new DatabaseCollateralStore(storage.Collateral);
            var headers = new Dictionary<string, string> { ["TCB-Info-Issuer-Chain"] = "chain", ["Content-Type"] = "application/json" };
            await store.SaveAsync("k1", new CachedResponse(Url, Encoding.ASCII.GetBytes("{\"tcbInfo\":{}}"), headers, Fetched), Fetched.AddDays(30));

            var loaded = await store.LoadAsync("k1");
            var raw = await storage.Collateral.GetAsync("k1");
            Assert.Multiple(() =>
            {
                Assert.That(loaded, Is.Not.Null);
                Assert.That(loaded!.Uri, Is.EqualTo(Url));
                Assert.That(Encoding.ASCII.GetString(loaded.Body), Is.EqualTo("{\"tcbInfo\":{}}"));
                Assert.That(loaded.FetchedAt, Is.EqualTo(Fetched));
                Assert.That(loaded.Headers.Keys, Is.EquivalentTo(new[] { "TCB-Info-Issuer-Chain", "Content-Type" }), "the URI pseudo-header is not handed back as a header");
                Assert.That(loaded.Header("tcb-info-issuer-chain"), Is.EqualTo("chain"));
                Assert.That(raw!.FreshUntil, Is.EqualTo(Fetched.AddDays(30)));
            });
            Assert.That(await store.LoadAsync("absent"), Is.Null);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public async Task A_row_without_the_uri_is_a_miss()
    {
        var inner = new FakeStore();
        await inner.PutAsync(new CollateralEntry("k", [1, 2, 3], new Dictionary<string, string>(), Fetched, Fetched.AddDays(1)));
        Assert.That(await new DatabaseCollateralStore(inner).LoadAsync("k"), Is.Null);
    }

    [Test]
    public void An_unavailable_database_is_a_collateral_store_failure_naming_the_cause()
    {
        var store = new DatabaseCollateralStore(new FakeStore { Down = true });
        var load = Assert.ThrowsAsync<CollateralStoreException>(() => store.LoadAsync("k"));
        var save = Assert.ThrowsAsync<CollateralStoreException>(() => store.SaveAsync("k", new CachedResponse(Url, [1], new Dictionary<string, string>(), Fetched), Fetched.AddDays(1)));
        Assert.That(load!.Message, Does.Contain("cannot be read").And.Contain(nameof(StorageError.Unavailable)));
        Assert.That(save!.Message, Does.Contain("cannot be written").And.Contain(nameof(StorageError.Unavailable)));
    }

    [Test]
    public async Task A_body_larger_than_the_database_keeps_is_not_cached()
    {
        var dir = Directory.CreateTempSubdirectory("ab-dbcache-").FullName;
        try
        {
            await using var storage = new SqliteStorage(Path.Combine(dir, "attestbroker.db"));
            var store = new DatabaseCollateralStore(storage.Collateral);
            var huge = new byte[SqlStorage.MaxCollateralBytes + 1];
            Assert.ThrowsAsync<CollateralStoreException>(() => store.SaveAsync("k", new CachedResponse(Url, huge, new Dictionary<string, string>(), Fetched), Fetched.AddDays(1)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private sealed class FakeStore : ICollateralStore
    {
        private readonly Dictionary<string, CollateralEntry> _rows = new(StringComparer.Ordinal);

        public bool Down { get; set; }

        public Task PutAsync(CollateralEntry entry, CancellationToken cancellationToken = default)
        {
            Check();
            _rows[entry.Key] = entry;
            return Task.CompletedTask;
        }

        public Task<CollateralEntry?> GetAsync(string key, CancellationToken cancellationToken = default)
        {
            Check();
            return Task.FromResult(_rows.TryGetValue(key, out var e) ? e : null);
        }

        public Task<int> PurgeStaleAsync(DateTimeOffset before, CancellationToken cancellationToken = default) => Task.FromResult(0);

        private void Check()
        {
            if (Down)
            {
                throw new StorageException(StorageError.Unavailable, "the database cannot be reached");
            }
        }
    }
}
