using System.Net;
using System.Threading.Channels;
using AttestBroker.Agent.Broker;
using AttestBroker.Evidence;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace AttestBroker.Agent.Tests;

/// <summary>Retries with backoff and Retry-After, on a fake clock: no test sleeps; each wait is observed, then the clock is moved past it.</summary>
public sealed class BrokerClientRetryTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 29, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60);

    private FakeTimeProvider _time = null!;
    private Channel<TimeSpan> _waits = null!;

    [SetUp]
    public void Clock()
    {
        _time = new FakeTimeProvider(Start);
        _waits = Channel.CreateUnbounded<TimeSpan>();
    }

    private BrokerClient Client(ScriptedHandler handler, int retries = 5, double jitter = 0, RetryOptions? retry = null) => new(new BrokerClientOptions
    {
        BaseAddress = new Uri("https://broker.test/"),
        Handler = handler,
        TimeProvider = _time,
        Jitter = () => jitter,
        Retry = retry ?? new RetryOptions { MaxRetries = retries },
        OnRetry = (_, delay, _) => _waits.Writer.TryWrite(delay),
    });

    /// <summary>Waits for the client to start its next backoff wait, returns its length, and moves the clock past it.</summary>
    private async Task<TimeSpan> NextWaitAsync(bool advance = true)
    {
        var delay = await _waits.Reader.ReadAsync().AsTask().WaitAsync(Guard);
        if (advance)
        {
            _time.Advance(delay);
        }

        return delay;
    }

    private static HttpResponseMessage ChallengeOk() => ScriptedHandler.Json(HttpStatusCode.OK, "{\"tee\":\"tdx\",\"nonce\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\",\"challenge\":\"c\",\"expires_at\":\"2026-11-29T00:02:00Z\"}");

    [Test]
    public async Task Retry_after_seconds_of_a_429_is_waited_exactly_before_the_next_attempt()
    {
        var handler = new ScriptedHandler((_, _, n) =>
        {
            if (n == 1)
            {
                var r = ScriptedHandler.Problem(429, "rate-limited", "slow down");
                r.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(7));
                return r;
            }

            return ChallengeOk();
        });
        using var client = Client(handler);

        var call = client.ChallengeAsync(TeeKind.Tdx, CancellationToken.None);
        var delay = await NextWaitAsync(advance: false);
        Assert.That(delay, Is.EqualTo(TimeSpan.FromSeconds(7)));
        _time.Advance(TimeSpan.FromSeconds(6.9));
        Assert.That(handler.Requests, Has.Count.EqualTo(1), "no second attempt before Retry-After has passed");
        _time.Advance(TimeSpan.FromSeconds(0.1));

        var challenge = await call.WaitAsync(Guard);
        Assert.That(challenge.Nonce, Has.Length.EqualTo(32));
        Assert.That(handler.Requests, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task Retry_after_as_an_http_date_is_measured_on_the_clock()
    {
        var handler = new ScriptedHandler((_, _, n) =>
        {
            if (n == 1)
            {
                var r = ScriptedHandler.Problem(503, "backend-unavailable", "database down");
                r.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(Start.AddSeconds(20));
                return r;
            }

            return ChallengeOk();
        });
        using var client = Client(handler);
        var call = client.ChallengeAsync(TeeKind.Tdx, CancellationToken.None);
        Assert.That(await NextWaitAsync(), Is.EqualTo(TimeSpan.FromSeconds(20)));
        await call.WaitAsync(Guard);
    }

    [Test]
    public async Task Unavailable_broker_is_retried_with_exponential_backoff_then_succeeds()
    {
        var handler = new ScriptedHandler((_, _, n) => n <= 3 ? ScriptedHandler.Problem(503, "collateral-unavailable", "PCS down") : ChallengeOk());
        using var client = Client(handler, jitter: 0);
        var call = client.ChallengeAsync(TeeKind.Tdx, CancellationToken.None);
        var waits = new[] { await NextWaitAsync(), await NextWaitAsync(), await NextWaitAsync() };
        await call.WaitAsync(Guard);
        Assert.That(waits, Is.EqualTo(new[] { TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(1000) }), "jitter 0 gives half of 500 ms x 2^(n-1)");
        Assert.That(handler.Requests, Has.Count.EqualTo(4));
    }

    [Test]
    public async Task Connection_errors_are_retried()
    {
        var handler = new ScriptedHandler((_, _, n) => n == 1 ? throw new HttpRequestException(HttpRequestError.ConnectionError, "connection refused") : ChallengeOk());
        using var client = Client(handler);
        var call = client.ChallengeAsync(TeeKind.Tdx, CancellationToken.None);
        await NextWaitAsync();
        await call.WaitAsync(Guard);
        Assert.That(handler.Requests, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task Retries_spent_give_broker_unavailable_with_the_attempt_count_and_last_failure()
    {
        var handler = new ScriptedHandler((_, _, _) => ScriptedHandler.Problem(503, "backend-unavailable", "database down"));
        using var client = Client(handler, retries: 2);
        var call = client.ChallengeAsync(TeeKind.Tdx, CancellationToken.None);
        await NextWaitAsync();
        await NextWaitAsync();
        var ex = Assert.ThrowsAsync<BrokerUnavailableException>(() => call.WaitAsync(Guard))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Attempts, Is.EqualTo(3));
            Assert.That(ex.Message, Does.Contain("HTTP 503").And.Contain("backend-unavailable"));
            Assert.That(handler.Requests, Has.Count.EqualTo(3));
        });
    }

    [TestCase(400, "malformed-request")]
    [TestCase(403, "policy-denied")]
    [TestCase(404, "unknown-key")]
    [TestCase(409, "nonce-already-used")]
    public void Client_errors_are_never_retried(int status, string code)
    {
        var handler = new ScriptedHandler((_, _, _) => ScriptedHandler.Problem(status, code, "no"));
        using var client = Client(handler);
        var ex = Assert.ThrowsAsync<BrokerProblemException>(() => client.ChallengeAsync(TeeKind.Tdx, CancellationToken.None).WaitAsync(Guard))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.Status, Is.EqualTo(status));
            Assert.That(ex.Code, Is.EqualTo(code));
            Assert.That(ex.Type, Is.EqualTo("urn:attestbroker:problem:" + code));
            Assert.That(handler.Requests, Has.Count.EqualTo(1));
            Assert.That(_waits.Reader.TryRead(out _), Is.False, "no backoff wait");
        });
    }

    [Test]
    public void Policy_denied_problem_carries_every_failing_rule()
    {
        const string keys = ",\"keys\":[{\"key_id\":\"llama\",\"decision\":\"denied\",\"policy\":\"prod\",\"policy_version\":3,\"failures\":[{\"code\":\"measurement_mismatch\",\"rule\":\"tdx.mrTd\",\"claim\":\"mr_td\",\"message\":\"mr_td is not accepted\"}]},{\"key_id\":\"other\",\"decision\":\"denied\",\"reason\":\"no_policy\"}]";
        var handler = new ScriptedHandler((_, _, _) => ScriptedHandler.Problem(403, "policy-denied", "denied", keys));
        using var client = Client(handler);
        var ex = Assert.ThrowsAsync<BrokerProblemException>(() => client.ChallengeAsync(TeeKind.Tdx, CancellationToken.None))!;
        Assert.Multiple(() =>
        {
            Assert.That(ex.IsDenial, Is.True);
            Assert.That(ex.Keys.Select(k => (k.KeyId, k.Policy, k.PolicyVersion, k.Reason)), Is.EqualTo(new[] { ("llama", (string?)"prod", (long?)3, (string?)null), ("other", null, null, "no_policy") }));
            Assert.That(ex.Keys[0].Failures.Single(), Is.EqualTo(new BrokerRuleFailure("measurement_mismatch", "tdx.mrTd", "mr_td", "mr_td is not accepted")));
        });
    }

    [Test]
    public void Backoff_grows_exponentially_within_the_jitter_band_and_stops_at_the_ceiling()
    {
        var options = new RetryOptions { InitialBackoff = TimeSpan.FromMilliseconds(500), MaxBackoff = TimeSpan.FromSeconds(30) };
        var low = new RetryPolicy(options, _time, () => 0);
        var high = new RetryPolicy(options, _time, () => 0.999999);
        Assert.Multiple(() =>
        {
            Assert.That(low.Backoff(1), Is.EqualTo(TimeSpan.FromMilliseconds(250)));
            Assert.That(high.Backoff(1).TotalMilliseconds, Is.EqualTo(500).Within(0.01));
            Assert.That(low.Backoff(4), Is.EqualTo(TimeSpan.FromMilliseconds(2000)));
            Assert.That(low.Backoff(20), Is.EqualTo(TimeSpan.FromSeconds(15)));
            Assert.That(high.Backoff(20).TotalSeconds, Is.EqualTo(30).Within(0.001));
        });
    }

    [Test]
    public void Retry_after_beyond_the_limit_is_capped()
    {
        var policy = new RetryPolicy(new RetryOptions { MaxRetryAfter = TimeSpan.FromMinutes(2) }, _time, () => 0);
        Assert.That(policy.DelayFor(1, new BrokerTransientException("429", TimeSpan.FromHours(1))), Is.EqualTo(TimeSpan.FromMinutes(2)));
    }

    [Test]
    public void Plain_http_broker_url_is_refused_unless_allowed()
    {
        var ex = Assert.Throws<ArgumentException>(() => new BrokerClient(new BrokerClientOptions { BaseAddress = new Uri("http://broker.test/") }))!;
        Assert.That(ex.Message, Does.Contain("plain http://"));
        using var allowed = new BrokerClient(new BrokerClientOptions { BaseAddress = new Uri("http://broker.test/"), AllowInsecureHttp = true });
    }
}
