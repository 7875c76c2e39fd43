using System.Net;
using System.Threading.Channels;
using AttestBroker.Agent.Broker;
using AttestBroker.Agent.Providers;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace AttestBroker.Agent.Tests;

/// <summary>The fetch round against a scripted broker that checks the binding and encrypts real JWEs to the pod's key.</summary>
public sealed class KeyFetcherTests
{
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(60);
    private static readonly byte[] KeyA = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];
    private static readonly byte[] KeyB = [.. Enumerable.Range(101, 32).Select(i => (byte)i)];

    private FakeBrokerLogic _broker = null!;
    private FakeTimeProvider _time = null!;
    private Channel<TimeSpan> _waits = null!;

    [SetUp]
    public void Broker()
    {
        _broker = new FakeBrokerLogic();
        _broker.Keys["a"] = KeyA;
        _broker.Keys["b"] = KeyB;
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 0, 0, 0, TimeSpan.Zero));
        _waits = Channel.CreateUnbounded<TimeSpan>();
    }

    private ScriptedHandler Handler(Func<string, int, HttpResponseMessage?>? before = null) => new((request, body, n) =>
        before?.Invoke(request.RequestUri!.AbsolutePath, n) ?? (request.RequestUri!.AbsolutePath == "/v1/challenge" ? _broker.Challenge(body) : _broker.Attest(body)));

    private BrokerClient Client(ScriptedHandler handler) => new(new BrokerClientOptions
    {
        BaseAddress = new Uri("https://broker.test/"),
        Handler = handler,
        TimeProvider = _time,
        Jitter = () => 0,
        OnRetry = (_, d, _) => _waits.Writer.TryWrite(d),
    });

    [TestCase(EphemeralKeyAlgorithm.EcP256)]
    [TestCase(EphemeralKeyAlgorithm.EcP384)]
    [TestCase(EphemeralKeyAlgorithm.Rsa3072)]
    public async Task Granted_keys_are_unwrapped_with_the_ephemeral_key_and_zeroed_on_dispose(EphemeralKeyAlgorithm algorithm)
    {
        var handler = Handler();
        using var client = Client(handler);
        var evidence = new EchoEvidenceProvider();
        var keys = await new KeyFetcher(client, evidence).FetchAsync(new KeyFetchRequest { KeyIds = ["a", "b"], KeyAlgorithm = algorithm }, CancellationToken.None);

        var a = keys.GetKey("a");
        Assert.Multiple(() =>
        {
            Assert.That(a.ToArray(), Is.EqualTo(KeyA));
            Assert.That(keys.GetKey("b").ToArray(), Is.EqualTo(KeyB));
            Assert.That(keys.KeyIds, Is.EqualTo(new[] { "a", "b" }));
            Assert.That(keys.Token, Is.EqualTo("t.o.k"));
            Assert.That(keys.Simulated, Is.True);
            Assert.That(handler.Requests.Select(r => r.Path), Is.EqualTo(new[] { "/v1/challenge", "/v1/attest" }));
            Assert.That(handler.Requests[1].Body, Does.Not.Contain("\"d\""), "no private member leaves the process");
        });

        keys.Dispose();
        Assert.That(a.ToArray().All(b => b == 0), Is.True, "the key buffer is zeroed");
        Assert.That(() => keys.GetKey("a"), Throws.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public async Task Unavailable_attest_starts_again_from_a_new_challenge()
    {
        var handler = Handler((path, n) => path == "/v1/attest" && n == 2 ? ScriptedHandler.Problem(503, "collateral-unavailable", "PCS down") : null);
        using var client = Client(handler);
        var fetch = new KeyFetcher(client, new EchoEvidenceProvider()).FetchAsync(new KeyFetchRequest { KeyIds = ["a"] }, CancellationToken.None);
        _time.Advance(await _waits.Reader.ReadAsync().AsTask().WaitAsync(Guard));
        using var keys = await fetch.WaitAsync(Guard);
        Assert.That(handler.Requests.Select(r => r.Path), Is.EqualTo(new[] { "/v1/challenge", "/v1/attest", "/v1/challenge", "/v1/attest" }));
        Assert.That(keys.GetKey("a").ToArray(), Is.EqualTo(KeyA));
    }

    [Test]
    public async Task Busy_evidence_interface_is_retried_from_a_new_challenge()
    {
        var handler = Handler();
        using var client = Client(handler);
        var evidence = new EchoEvidenceProvider();
        evidence.Failures.Enqueue(new EvidenceProviderException(EvidenceProviderError.Busy, "EBUSY"));
        var fetch = new KeyFetcher(client, evidence).FetchAsync(new KeyFetchRequest { KeyIds = ["a"] }, CancellationToken.None);
        _time.Advance(await _waits.Reader.ReadAsync().AsTask().WaitAsync(Guard));
        using var keys = await fetch.WaitAsync(Guard);
        Assert.That(evidence.Calls, Is.EqualTo(2));
        Assert.That(handler.Requests.Count(r => r.Path == "/v1/challenge"), Is.EqualTo(2));
    }

    [Test]
    public void Missing_evidence_interface_is_not_retried()
    {
        var handler = Handler();
        using var client = Client(handler);
        var evidence = new EchoEvidenceProvider();
        evidence.Failures.Enqueue(new EvidenceProviderException(EvidenceProviderError.NotAvailable, "no configfs-tsm"));
        var ex = Assert.ThrowsAsync<EvidenceProviderException>(() => new KeyFetcher(client, evidence).FetchAsync(new KeyFetchRequest { KeyIds = ["a"] }, CancellationToken.None))!;
        Assert.That(ex.Message, Does.Contain("no configfs-tsm"));
        Assert.That(evidence.Calls, Is.EqualTo(1));
    }

    [Test]
    public void Key_released_that_was_not_requested_is_refused()
    {
        _broker.Tamper = grants => [.. grants, ("b", grants[0].Jwe)];
        using var client = Client(Handler());
        var ex = Assert.ThrowsAsync<BrokerResponseException>(() => new KeyFetcher(client, new EchoEvidenceProvider()).FetchAsync(new KeyFetchRequest { KeyIds = ["a"] }, CancellationToken.None))!;
        Assert.That(ex.Message, Does.Contain("\"b\", which was not requested"));
    }

    [Test]
    public void Grant_without_a_requested_key_is_refused()
    {
        _broker.Tamper = grants => [grants[0]];
        using var client = Client(Handler());
        var ex = Assert.ThrowsAsync<BrokerResponseException>(() => new KeyFetcher(client, new EchoEvidenceProvider()).FetchAsync(new KeyFetchRequest { KeyIds = ["a", "b"] }, CancellationToken.None))!;
        Assert.That(ex.Message, Does.Contain("without key(s) b"));
    }

    [Test]
    public void Jwe_listed_under_another_key_id_is_refused()
    {
        _broker.Tamper = grants => [(grants[0].KeyId, grants[1].Jwe), (grants[1].KeyId, grants[0].Jwe)];
        using var client = Client(Handler());
        var ex = Assert.ThrowsAsync<BrokerResponseException>(() => new KeyFetcher(client, new EchoEvidenceProvider()).FetchAsync(new KeyFetchRequest { KeyIds = ["a", "b"] }, CancellationToken.None))!;
        Assert.That(ex.Message, Does.Contain("carries kid"));
    }

    [Test]
    public void Jwe_that_does_not_decrypt_is_refused_with_the_protocol_error()
    {
        _broker.Tamper = grants => [(grants[0].KeyId, grants[0].Jwe[..^4] + (grants[0].Jwe[^4] == 'A' ? "BAAA" : "AAAA"))];
        using var client = Client(Handler());
        var ex = Assert.ThrowsAsync<BrokerResponseException>(() => new KeyFetcher(client, new EchoEvidenceProvider()).FetchAsync(new KeyFetchRequest { KeyIds = ["a"] }, CancellationToken.None))!;
        Assert.That(ex.Message, Does.Contain("does not decrypt").And.Contain("Jwe"));
    }

    [Test]
    public void Denial_is_not_retried_and_carries_the_problem()
    {
        var handler = Handler((path, _) => path == "/v1/attest" ? ScriptedHandler.Problem(403, "policy-denied", "denied") : null);
        using var client = Client(handler);
        var ex = Assert.ThrowsAsync<BrokerProblemException>(() => new KeyFetcher(client, new EchoEvidenceProvider()).FetchAsync(new KeyFetchRequest { KeyIds = ["a"] }, CancellationToken.None))!;
        Assert.That(ex.Code, Is.EqualTo("policy-denied"));
        Assert.That(handler.Requests, Has.Count.EqualTo(2));
    }

    [TestCase(new string[0], "at least one")]
    [TestCase(new[] { "a", "a" }, "repeated")]
    [TestCase(new[] { "a", "" }, "empty")]
    public void Invalid_request_is_refused_before_any_broker_call(string[] ids, string message)
    {
        var handler = Handler();
        using var client = Client(handler);
        var ex = Assert.ThrowsAsync<ArgumentException>(() => new KeyFetcher(client, new EchoEvidenceProvider()).FetchAsync(new KeyFetchRequest { KeyIds = ids }, CancellationToken.None))!;
        Assert.That(ex.Message, Does.Contain(message));
        Assert.That(handler.Requests, Is.Empty);
    }

    [Test]
    public void More_than_sixteen_key_ids_are_refused()
    {
        var request = new KeyFetchRequest { KeyIds = [.. Enumerable.Range(0, 17).Select(i => "k" + i)] };
        Assert.That(request.Validate, Throws.ArgumentException.With.Message.Contains("at most 16"));
    }
}
