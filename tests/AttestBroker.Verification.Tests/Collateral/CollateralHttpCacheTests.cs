using System.Net;
using AttestBroker.Verification.Collateral;
using NUnit.Framework;

namespace AttestBroker.Verification.Tests.Collateral;

[TestFixture]
public sealed class CollateralHttpCacheTests
{
    private static readonly Uri Url = new("https://pcs.test/tdx/certification/v4/tcb?fmspc=00806f050000");
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ab-cache-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task Fresh_entry_is_served_from_disk_without_a_request()
    {
        var handler = new ScriptedHandler(Ok("v1"));
        var time = new ManualTime(DateTimeOffset.Parse("2026-01-01T00:00:00Z", null));
        var first = new CollateralHttpCache(new HttpClient(handler), Options(), time);
        var a = await first.GetAsync(Url, _ => time.GetUtcNow().AddHours(1));

        var second = new CollateralHttpCache(new HttpClient(handler), Options(), time); // new process, same disk
        var b = await second.GetAsync(Url, _ => time.GetUtcNow().AddHours(1));

        Assert.Multiple(() =>
        {
            Assert.That(handler.Requests, Is.EqualTo(1));
            Assert.That(b.Body, Is.EqualTo(a.Body));
            Assert.That(b.Header("TCB-Info-Issuer-Chain"), Is.EqualTo("chain-v1"));
        });
    }

    [Test]
    public async Task Entry_past_its_next_update_is_fetched_again()
    {
        var handler = new ScriptedHandler(Ok("v1"), Ok("v2"));
        var time = new ManualTime(DateTimeOffset.Parse("2026-01-01T00:00:00Z", null));
        var nextUpdate = time.GetUtcNow().AddHours(1);
        var cache = new CollateralHttpCache(new HttpClient(handler), Options(), time);
        await cache.GetAsync(Url, _ => nextUpdate);
        time.Now = nextUpdate.AddSeconds(1);
        var again = await cache.GetAsync(Url, r => r.Body[1] == (byte)'2' ? nextUpdate.AddDays(1) : nextUpdate);

        Assert.Multiple(() =>
        {
            Assert.That(handler.Requests, Is.EqualTo(2));
            Assert.That(System.Text.Encoding.ASCII.GetString(again.Body), Is.EqualTo("v2"));
        });
    }

    [Test]
    public async Task Service_unavailable_is_retried_then_succeeds()
    {
        var handler = new ScriptedHandler(Status(HttpStatusCode.ServiceUnavailable), Status(HttpStatusCode.ServiceUnavailable), Ok("v1"));
        var cache = new CollateralHttpCache(new HttpClient(handler), Options(), new ManualTime(DateTimeOffset.UnixEpoch));
        var r = await cache.GetAsync(Url, _ => DateTimeOffset.MaxValue);
        Assert.That(handler.Requests, Is.EqualTo(3));
        Assert.That(r.Body, Is.Not.Empty);
    }

    [Test]
    public void Long_retry_after_fails_at_once_with_the_wait_and_sends_nothing_more()
    {
        var tooMany = Status(HttpStatusCode.TooManyRequests);
        tooMany.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(120));
        var handler = new ScriptedHandler(tooMany, Ok("never"));
        var cache = new CollateralHttpCache(new HttpClient(handler), Options(), new ManualTime(DateTimeOffset.UnixEpoch));

        var ex = Assert.ThrowsAsync<CollateralUnavailableException>(() => cache.GetAsync(Url, _ => DateTimeOffset.MaxValue));
        Assert.Multiple(() =>
        {
            Assert.That(ex!.StatusCode, Is.EqualTo(429));
            Assert.That(ex.RetryAfter, Is.EqualTo(TimeSpan.FromSeconds(120)));
            Assert.That(handler.Requests, Is.EqualTo(1));
        });

        var again = Assert.ThrowsAsync<CollateralUnavailableException>(() => cache.GetAsync(Url, _ => DateTimeOffset.MaxValue));
        Assert.That(handler.Requests, Is.EqualTo(1), "no request may be sent before Retry-After has passed");
        Assert.That(again!.StatusCode, Is.EqualTo(429));
    }

    [Test]
    public void Not_found_is_not_retried()
    {
        var handler = new ScriptedHandler(Status(HttpStatusCode.NotFound), Ok("never"));
        var cache = new CollateralHttpCache(new HttpClient(handler), Options(), new ManualTime(DateTimeOffset.UnixEpoch));
        var ex = Assert.ThrowsAsync<CollateralUnavailableException>(() => cache.GetAsync(Url, _ => DateTimeOffset.MaxValue));
        Assert.That(ex!.StatusCode, Is.EqualTo(404));
        Assert.That(handler.Requests, Is.EqualTo(1));
    }

    [Test]
    public async Task Unreadable_content_is_not_cached()
    {
        var handler = new ScriptedHandler(Ok("garbage"), Ok("v1"));
        var cache = new CollateralHttpCache(new HttpClient(handler), Options(), new ManualTime(DateTimeOffset.UnixEpoch));
        Assert.ThrowsAsync<CollateralUnavailableException>(() => cache.GetAsync(Url, r => r.Body[0] == (byte)'g' ? throw new FormatException("not JSON") : DateTimeOffset.MaxValue));
        var ok = await cache.GetAsync(Url, _ => DateTimeOffset.MaxValue);
        Assert.That(System.Text.Encoding.ASCII.GetString(ok.Body), Is.EqualTo("v1"));
    }

    [Test]
    public async Task Edited_cache_file_is_a_miss()
    {
        var handler = new ScriptedHandler(Ok("v1"), Ok("v1"));
        var time = new ManualTime(DateTimeOffset.UnixEpoch);
        await new CollateralHttpCache(new HttpClient(handler), Options(), time).GetAsync(Url, _ => DateTimeOffset.MaxValue);
        foreach (var f in Directory.GetFiles(_dir, "*.bin"))
        {
            await File.WriteAllTextAsync(f, "tampered");
        }

        var r = await new CollateralHttpCache(new HttpClient(handler), Options(), time).GetAsync(Url, _ => DateTimeOffset.MaxValue);
        Assert.That(handler.Requests, Is.EqualTo(2));
        Assert.That(System.Text.Encoding.ASCII.GetString(r.Body), Is.EqualTo("v1"));
    }

    private CollateralFetchOptions Options() => new()
    {
        CacheDirectory = _dir,
        InitialBackoff = TimeSpan.FromMilliseconds(1),
        MaxRetryAfter = TimeSpan.FromSeconds(5),
        MaxAttempts = 3,
    };

    private static HttpResponseMessage Ok(string body)
    {
        var r = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body) };
        r.Headers.Add("TCB-Info-Issuer-Chain", "chain-" + body);
        return r;
    }

    private static HttpResponseMessage Status(HttpStatusCode code) => new(code) { Content = new StringContent(string.Empty) };

    private sealed class ScriptedHandler(params HttpResponseMessage[] responses) : HttpMessageHandler
    {
        private int _next;

        public int Requests => _next;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var i = Interlocked.Increment(ref _next) - 1;
            if (i >= responses.Length)
            {
                throw new HttpRequestException("no more scripted responses");
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
