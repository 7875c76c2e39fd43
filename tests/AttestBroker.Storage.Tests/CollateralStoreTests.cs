namespace AttestBroker.Storage.Tests;

[TestFixture(Db.Sqlite)]
[TestFixture(Db.Postgres)]
public sealed class CollateralStoreTests(Db db) : StorageTestBase(db)
{
    private const string Url = "https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=00806F050000";

    private static CollateralEntry Entry(byte[] body, DateTimeOffset freshUntil) =>
        new(Url, body, new Dictionary<string, string> { ["TCB-Info-Issuer-Chain"] = "-----BEGIN%20CERTIFICATE-----", ["Content-Type"] = "application/json" }, Start, freshUntil);

    [Test]
    public async Task An_entry_round_trips_with_headers_and_freshness()
    {
        await Storage.Collateral.PutAsync(Entry([1, 2, 3], Start.AddDays(30)));
        CollateralEntry e = (await Storage.Collateral.GetAsync(Url))!;

        Assert.That(e.Body, Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(e.Headers["tcb-info-issuer-chain"], Is.EqualTo("-----BEGIN%20CERTIFICATE-----"));
        Assert.That((e.FetchedAt, e.FreshUntil), Is.EqualTo((Start, Start.AddDays(30))));
        Assert.That(await Storage.Collateral.GetAsync("https://elsewhere/"), Is.Null);
    }

    [Test]
    public async Task Putting_again_replaces_the_entry()
    {
        await Storage.Collateral.PutAsync(Entry([1], Start.AddDays(1)));
        await Storage.Collateral.PutAsync(Entry([2], Start.AddDays(2)));
        CollateralEntry e = (await NewReplica().Collateral.GetAsync(Url))!;
        Assert.That((e.Body.Single(), e.FreshUntil), Is.EqualTo(((byte)2, Start.AddDays(2))));
    }

    [Test]
    public async Task A_damaged_body_is_a_miss()
    {
        await Storage.Collateral.PutAsync(Entry([1, 2, 3], Start.AddDays(1)));
        await TamperAsync("UPDATE collateral SET body = @b", ("b", new byte[] { 1, 2, 4 }));
        Assert.That(await Storage.Collateral.GetAsync(Url), Is.Null);
    }

    [Test]
    public async Task Purge_removes_entries_whose_freshness_has_passed()
    {
        await Storage.Collateral.PutAsync(Entry([1], Start.AddDays(1)));
        await Storage.Collateral.PutAsync(Entry([2], Start.AddDays(3)) with { Key = "other" });
        Assert.That(await Storage.Collateral.PurgeStaleAsync(Start.AddDays(2)), Is.EqualTo(1));
        Assert.That(await Storage.Collateral.GetAsync(Url), Is.Null);
        Assert.That(await Storage.Collateral.GetAsync("other"), Is.Not.Null);
    }
}
