using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;

namespace AttestBroker.Kubernetes.Tests;

/// <summary>
/// Contract tests of the TokenReview path against <see cref="FakeKubernetesApi"/> (no API server here: a local server
/// answering authentication.k8s.io/v1 TokenReview the way the API server shapes its answers).
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class TokenReviewValidatorTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-03-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private FakeKubernetesApi _api = null!;

    [SetUp]
    public async Task StartAsync() => _api = await FakeKubernetesApi.StartAsync();

    [TearDown]
    public async Task StopAsync() => await _api.DisposeAsync();

    /// <summary>A JWT-shaped token (the API server is the one that checks it; the broker reads only exp for its cache).</summary>
    private static string Token(DateTimeOffset exp, string salt = "x")
    {
        static string B64(string json) => Convert.ToBase64String(Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return B64("{\"alg\":\"RS256\"}") + "." + B64($"{{\"exp\":{exp.ToUnixTimeSeconds()},\"salt\":\"{salt}\"}}") + "." + B64("sig");
    }

    private static (int, JsonObject) Answer(bool authenticated, string username = "system:serviceaccount:ml-prod:runner", string audience = "attestbroker", bool withPod = true)
    {
        var user = new JsonObject { ["username"] = username, ["uid"] = "u-1", ["groups"] = new JsonArray("system:serviceaccounts") };
        if (withPod)
        {
            user["extra"] = new JsonObject
            {
                ["authentication.kubernetes.io/pod-name"] = new JsonArray("llm-0"),
                ["authentication.kubernetes.io/pod-uid"] = new JsonArray("8d1e-pod-uid"),
            };
        }

        var status = authenticated
            ? new JsonObject { ["authenticated"] = true, ["user"] = user, ["audiences"] = new JsonArray(audience) }
            : new JsonObject { ["authenticated"] = false, ["error"] = "[invalid bearer token, token lookup failed]" };
        return (201, new JsonObject { ["apiVersion"] = "authentication.k8s.io/v1", ["kind"] = "TokenReview", ["spec"] = new JsonObject(), ["status"] = status });
    }

    [Test]
    public async Task An_authenticated_review_for_the_audience_gives_namespace_service_account_and_pod()
    {
        _api.TokenReview = _ => Answer(true);
        var validator = new TokenReviewValidator(_api.Client(), time: new FakeTimeProvider(Now));
        var token = Token(Now.AddMinutes(10));

        var result = await validator.ValidateAsync(token, CancellationToken.None);

        Assert.That(result.IsValid, Is.True, result.ToString());
        Assert.That(result.Identity, Is.EqualTo(new RequesterIdentity("ml-prod", "runner", "llm-0", "8d1e-pod-uid", "system:serviceaccount:ml-prod:runner")));
        var request = _api.TokenReviewRequests.Single();
        Assert.Multiple(() =>
        {
            Assert.That((string?)request["kind"], Is.EqualTo("TokenReview"));
            Assert.That((string?)request["spec"]!["token"], Is.EqualTo(token));
            Assert.That(request["spec"]!["audiences"]!.ToJsonString(), Is.EqualTo("[\"attestbroker\"]"));
        });
    }

    [Test]
    public async Task An_unauthenticated_token_is_invalid_and_the_API_servers_error_text_is_not_echoed()
    {
        _api.TokenReview = _ => Answer(false);
        var result = await new TokenReviewValidator(_api.Client()).ValidateAsync(Token(Now.AddMinutes(10)), CancellationToken.None);

        Assert.That(result.Outcome, Is.EqualTo(IdentityOutcome.Invalid));
        Assert.That(result.Error, Is.EqualTo(IdentityErrors.NotAuthenticated));
        Assert.That(result.Message, Does.Not.Contain("bearer"));
    }

    [Test]
    public async Task A_token_reviewed_for_another_audience_is_invalid()
    {
        _api.TokenReview = _ => Answer(true, audience: "https://kubernetes.default.svc");
        var result = await new TokenReviewValidator(_api.Client()).ValidateAsync(Token(Now.AddMinutes(10)), CancellationToken.None);

        Assert.That(result.Error, Is.EqualTo(IdentityErrors.AudienceMismatch));
    }

    [Test]
    public async Task A_user_that_is_not_a_service_account_is_invalid()
    {
        _api.TokenReview = _ => Answer(true, username: "alice@example.com");
        var result = await new TokenReviewValidator(_api.Client()).ValidateAsync(Token(Now.AddMinutes(10)), CancellationToken.None);

        Assert.That(result.Error, Is.EqualTo(IdentityErrors.NotServiceAccount));
    }

    [Test]
    public async Task An_API_server_error_is_unavailable_not_invalid_and_its_message_never_quotes_the_token()
    {
        _api.TokenReview = _ => (500, FakeKubernetesApi.Status(500, "InternalError", "etcd timeout"));
        var token = Token(Now.AddMinutes(10), salt: "secret-salt");
        var result = await new TokenReviewValidator(_api.Client()).ValidateAsync(token, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(result.Outcome, Is.EqualTo(IdentityOutcome.Unavailable));
            Assert.That(result.Error, Is.EqualTo(IdentityErrors.ReviewUnavailable));
            Assert.That(result.Message, Does.Contain("500"));
            Assert.That(result.Message, Does.Not.Contain(token[..20]));
        });
    }

    [Test]
    public async Task An_unreachable_API_server_is_unavailable()
    {
        var host = _api.Host;
        await _api.DisposeAsync();
        _api = await FakeKubernetesApi.StartAsync();
        var client = new k8s.Kubernetes(new k8s.KubernetesClientConfiguration { Host = host, DisableHttp2 = true });

        var result = await new TokenReviewValidator(client).ValidateAsync(Token(Now.AddMinutes(10)), CancellationToken.None);

        Assert.That(result.Outcome, Is.EqualTo(IdentityOutcome.Unavailable));
    }

    [Test]
    public async Task A_malformed_token_is_refused_without_asking_the_API_server()
    {
        var result = await new TokenReviewValidator(_api.Client()).ValidateAsync("has spaces\n", CancellationToken.None);

        Assert.That(result.Error, Is.EqualTo(IdentityErrors.Malformed));
        Assert.That(_api.TokenReviewRequests, Is.Empty);
    }

    [Test]
    public async Task A_successful_review_is_cached_briefly_and_never_past_the_tokens_expiry()
    {
        _api.TokenReview = _ => Answer(true);
        var time = new FakeTimeProvider(Now);
        var validator = new TokenReviewValidator(_api.Client(), new TokenValidationOptions { CacheLifetime = TimeSpan.FromSeconds(30), ExpiryMargin = TimeSpan.FromSeconds(10) }, time);
        var longLived = Token(Now.AddHours(1), "a");
        var expiring = Token(Now.AddSeconds(15), "b");

        await validator.ValidateAsync(longLived, CancellationToken.None);
        await validator.ValidateAsync(longLived, CancellationToken.None);
        Assert.That(_api.TokenReviewRequests, Has.Count.EqualTo(1), "the second check is served from the cache");

        time.Advance(TimeSpan.FromSeconds(31));
        await validator.ValidateAsync(longLived, CancellationToken.None);
        Assert.That(_api.TokenReviewRequests, Has.Count.EqualTo(2), "the cache lifetime has passed");

        await validator.ValidateAsync(expiring, CancellationToken.None);
        time.Advance(TimeSpan.FromSeconds(6)); // 9 s before exp: inside the 10 s margin
        await validator.ValidateAsync(expiring, CancellationToken.None);
        Assert.That(_api.TokenReviewRequests, Has.Count.EqualTo(4), "a token close to expiry is reviewed again");
    }

    [Test]
    public async Task Refused_tokens_are_not_cached()
    {
        _api.TokenReview = _ => Answer(false);
        var validator = new TokenReviewValidator(_api.Client(), time: new FakeTimeProvider(Now));
        var token = Token(Now.AddHours(1));

        await validator.ValidateAsync(token, CancellationToken.None);
        await validator.ValidateAsync(token, CancellationToken.None);

        Assert.That(_api.TokenReviewRequests, Has.Count.EqualTo(2));
        Assert.That(validator.CachedReviews, Is.Zero);
    }

    [Test]
    public async Task The_cache_is_bounded()
    {
        _api.TokenReview = _ => Answer(true);
        var validator = new TokenReviewValidator(_api.Client(), new TokenValidationOptions { CacheCapacity = 3 }, new FakeTimeProvider(Now));
        for (var i = 0; i < 10; i++)
        {
            await validator.ValidateAsync(Token(Now.AddHours(1), "t" + i), CancellationToken.None);
        }

        Assert.That(validator.CachedReviews, Is.EqualTo(3));
    }

    [TestCase("system:serviceaccount:ml-prod:runner", true)]
    [TestCase("system:serviceaccount:ml-prod", false)]
    [TestCase("system:serviceaccount::runner", false)]
    [TestCase("system:serviceaccount:ml-prod:runner:extra", false)]
    [TestCase("system:serviceaccount:ML:runner", false)]
    [TestCase("system:node:worker-1", false)]
    public void Only_service_account_usernames_name_a_requester(string username, bool ok) =>
        Assert.That(RequesterIdentity.TryParseUsername(username, out _, out _), Is.EqualTo(ok));
}
