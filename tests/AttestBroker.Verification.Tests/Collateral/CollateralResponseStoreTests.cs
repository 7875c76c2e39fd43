using System.Collections.Concurrent;
using System.Net;
using System.Text;
using AttestBroker.Verification.Collateral;
using NUnit.Framework;

namespace AttestBroker.Verification.Tests.Collateral;

/// <summary>CollateralHttpCache over an <see cref="ICollateralResponseStore"/> other than the disk (as the broker's database is).</summary>
[TestFixture]
public sealed class CollateralResponseStoreTests
{
    private static readonly Uri Url = new("https://pcs.test/tdx/certification/v4/qe/identity");
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-01-01T00:00:00Z", null);

    [Test]
    public async Task A_response_stored_by_one_cache_is_served_to_another_on_the_same_store_without_a_request()
    {
        var store = new MemoryStore();
        var time = new ManualTime(Start);
        var firstHandler = new ScriptedHandler(Ok("v1"));
        var a = await new CollateralHttpCache(new HttpClient(firstHandler), Options(), time, store).GetAsync(Url, _ => Start.AddHours(1));

        var secondHandler = new ScriptedHandler(); // the service is down for the second replica
        var b = await new CollateralHttpCache(new HttpClient(secondHandler), Options(), time, store).GetAsync(Url, _ => Start.AddHours(1));

        Assert.Multiple(() =>
        {
            Assert.That(firstHandler.Requests, Is.EqualTo(1));
            Assert.That(secondHandler.Requests, Is.Zero);
            Assert.That(b.Body, Is.EqualTo(a.Body));
            Assert.That(b.Header("TCB-Info-Issuer-Chain"), Is.EqualTo("chain-v1"));
            Assert.That(store.Saves, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task A_miss_is_fetched_and_saved_with_the_freshness_limit_from_the_content()
    {
        var store = new MemoryStore();
        var handler = new ScriptedHandler(Ok("v1"));
        await new CollateralHttpCache(new HttpClient(handler), Options(), new ManualTime(Start), store).GetAsync(Url, _ => Start.AddHours(3));

        var saved = store.Entries.Single().Value;
        Assert.Multiple(() =>
        {
            Assert.That(handler.Requests, Is.EqualTo(1));
            Assert.That(saved.FreshUntil, Is.EqualTo(Start.AddHours(3)));
            Assert.That(saved.Response.Uri, Is.EqualTo(Url));
            Assert.That(Encoding.ASCII.GetString(saved.Response.Body), Is.EqualTo("v1"));
        });
    }

    [Test]
    public async Task A_stored_entry_past_its_limit_is_fetched_again_and_replaced_in_the_store()
    {
        var store = new MemoryStore();
        var time = new ManualTime(Start);
        var nextUpdate = Start.AddHours(1);
        Func<CachedResponse, DateTimeOffset> limit = r => r.Body[1] == (byte)'2' ? nextUpdate.AddDays(1) : nextUpdate;
        await new CollateralHttpCache(new HttpClient(new ScriptedHandler(Ok("v1"))), Options(), time, store).GetAsync(Url, limit);
        time.Now = nextUpdate.AddSeconds(1);

        var handler = new ScriptedHandler(Ok("v2"));
        var again = await new CollateralHttpCache(new HttpClient(handler), Options(), time, store).GetAsync(Url, limit);

        Assert.Multiple(() =>
        {
            Assert.That(handler.Requests, Is.EqualTo(1), "a stale stored entry is not served");
            Assert.That(Encoding.ASCII.GetString(again.Body), Is.EqualTo("v2"));
            Assert.That(Encoding.ASCII.GetString(store.Entries.Single().Value.Response.Body), Is.EqualTo("v2"));
            Assert.That(store.Entries.Single().Value.FreshUntil, Is.EqualTo(nextUpdate.AddDays(1)));
        });
    }

    [Test]
    public void A_stale_stored_entry_is_not_served_when_the_service_is_down()
    {
        var store = new MemoryStore();
        var time = new ManualTime(Start);
        Assert.That(async () => await new CollateralHttpCache(new HttpClient(new ScriptedHandler(Ok("v1"))), Options(), time, store).GetAsync(Url, _ => Start.AddHours(1)), Throws.Nothing);
        time.Now = Start.AddHours(2);

        var ex = Assert.ThrowsAsync<CollateralUnavailableException>(() =>
            new CollateralHttpCache(new HttpClient(new ScriptedHandler()), Options(), time, store).GetAsync(Url, _ => Start.AddHours(1)));
        Assert.That(ex!.Message, Does.Contain("could not be reached"));
    }

    [Test]
    public async Task An_unreachable_store_is_a_miss_and_the_response_is_fetched_and_served()
    {
        var store = new MemoryStore { Down = true };
        var handler = new ScriptedHandler(Ok("v1"));
        var r = await new CollateralHttpCache(new HttpClient(handler), Options(), new ManualTime(Start), store).GetAsync(Url, _ => Start.AddHours(1));

        Assert.Multiple(() =>
        {
            Assert.That(handler.Requests, Is.EqualTo(1));
            Assert.That(Encoding.ASCII.GetString(r.Body), Is.EqualTo("v1"));
            Assert.That(store.Entries, Is.Empty, "nothing could be saved");
        });
    }

    [Test]
    public void An_unreachable_store_and_an_unreachable_service_fail_closed_with_collateral_unavailable()
    {
        var store = new MemoryStore();
        var time = new ManualTime(Start);
        Assert.That(async () => await new CollateralHttpCache(new HttpClient(new ScriptedHandler(Ok("v1"))), Options(), time, store).GetAsync(Url, _ => Start.AddHours(1)), Throws.Nothing);
        store.Down = true; // the fresh entry is in the store, but the store cannot be read

        var ex = Assert.ThrowsAsync<CollateralUnavailableException>(() =>
            new CollateralHttpCache(new HttpClient(new ScriptedHandler()), Options(), time, store).GetAsync(Url, _ => Start.AddHours(1)));
        Assert.That(ex!.StatusCode, Is.Null);
        Assert.That(ex.Message, Does.Contain("could not be reached"));
    }

    [Test]
    public async Task A_store_entry_for_another_uri_is_a_miss()
    {
        var store = new MemoryStore();
        var other = new Uri("https://pcs.test/other");
        var time = new ManualTime(Start);
        var first = new CollateralHttpCache(new HttpClient(new ScriptedHandler(Ok("v1"))), Options(), time, store);
        await first.GetAsync(Url, _ => Start.AddHours(1));
        var key = store.Entries.Single().Key;
        store.Entries[key] = (store.Entries[key].Response with { Uri = other }, Start.AddHours(1));

        var handler = new ScriptedHandler(Ok("v2"));
        var r = await new CollateralHttpCache(new HttpClient(handler), Options(), time, store).GetAsync(Url, _ => Start.AddHours(1));
        Assert.That(handler.Requests, Is.EqualTo(1));
        Assert.That(Encoding.ASCII.GetString(r.Body), Is.EqualTo("v2"));
    }

    [Test]
    public async Task Without_a_store_the_cache_keeps_responses_in_its_cache_directory()
    {
        var dir = Directory.CreateTempSubdirectory("ab-cache-").FullName;
        try
        {
            var options = Options();
            options.CacheDirectory = dir;
            var cache = new CollateralHttpCache(new HttpClient(new ScriptedHandler(Ok("v1"))), options, new ManualTime(Start));
            await cache.GetAsync(Url, _ => Start.AddHours(1));
            Assert.That(cache.Store, Is.TypeOf<DiskCollateralResponseStore>());
            Assert.That(Directory.GetFiles(dir, "*.bin"), Has.Length.EqualTo(1));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static CollateralFetchOptions Options() => new()
    {
        CacheDirectory = "/nonexistent/must-not-be-used",
        InitialBackoff = TimeSpan.FromMilliseconds(1),
        MaxRetryAfter = TimeSpan.FromSeconds(5),
        MaxAttempts = 2,
    };

    private static HttpResponseMessage Ok(string body)
    {
        var r = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body) };
        r.Headers.Add("TCB-Info-Issuer-Chain", "chain-" + body);
        return r;
    }

    private sealed class MemoryStore : ICollateralResponseStore
    {
        private int _saves;

        public ConcurrentDictionary<string, (CachedResponse Response, DateTimeOffset FreshUntil)> Entries { get; } = new(StringComparer.Ordinal);

        public bool Down { get; set; }

        public int Saves => _saves;

        public Task<CachedResponse?> LoadAsync(string key, CancellationToken cancellationToken = default) =>
            Down ? throw new CollateralStoreException("the store cannot be reached")
                : Task.FromResult(Entries.TryGetValue(key, out var e) ? e.Response : null);

        public Task SaveAsync(string key, CachedResponse response, DateTimeOffset freshUntil, CancellationToken cancellationToken = default)
        {
            if (Down)
            {
                throw new CollateralStoreException("the store cannot be reached");
            }

            Interlocked.Increment(ref _saves);
            Entries[key] = (response, freshUntil);
            return Task.CompletedTask;
        }
    }

    private sealed class ScriptedHandler(params HttpResponseMessage[] responses) : HttpMessageHandler
    {
        private int _next;

        public int Requests => Math.Min(_next, responses.Length);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var i = Interlocked.Increment(ref _next) - 1;
            if (i >= responses.Length)
            {
                throw new HttpRequestException("connection refused (scripted)");
            }

            return Task.FromResult(responses[i]);
        }
    }

    private sealed class ManualTime(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
