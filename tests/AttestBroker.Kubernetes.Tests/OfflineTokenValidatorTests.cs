using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;

namespace AttestBroker.Kubernetes.Tests;

/// <summary>
/// The offline check of projected service-account tokens: tokens are signed here with RSA and EC keys the way
/// kube-apiserver signs them (RS256 / ES256, iss, aud, exp/nbf/iat, sub, the kubernetes.io claim), and the issuer's
/// discovery document and JWKS are served by <see cref="FakeKubernetesApi"/> (a contract test: no API server here).
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class OfflineTokenValidatorTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-03-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
    private FakeKubernetesApi _api = null!;
    private static readonly RSAParameters IssuerKey = MakeKey();
    private static readonly RSAParameters RotatedKey = MakeKey();
    private RSA _rsa = null!;
    private ECDsa _ec = null!;
    private FakeTimeProvider _time = null!;

    [SetUp]
    public async Task StartAsync()
    {
        _api = await FakeKubernetesApi.StartAsync();
        _rsa = RSA.Create();
        _rsa.ImportParameters(IssuerKey); // made once: RSA key generation is slow on a small machine
        _ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        _time = new FakeTimeProvider(Now);
        _api.Discovery = new JsonObject { ["issuer"] = Issuer, ["jwks_uri"] = Issuer + "/openid/v1/jwks" };
        _api.Jwks = new JsonObject { ["keys"] = new JsonArray(RsaJwk(_rsa, "rsa-1"), EcJwk(_ec, "ec-1")) };
    }

    [TearDown]
    public async Task StopAsync()
    {
        _rsa.Dispose();
        _ec.Dispose();
        await _api.DisposeAsync();
    }

    private static RSAParameters MakeKey()
    {
        using var rsa = RSA.Create(2048);
        return rsa.ExportParameters(true);
    }

    private string Issuer => _api.Host.TrimEnd('/');

    private static string B64(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static JsonObject RsaJwk(RSA rsa, string kid)
    {
        var p = rsa.ExportParameters(false);
        return new JsonObject { ["kty"] = "RSA", ["use"] = "sig", ["alg"] = "RS256", ["kid"] = kid, ["n"] = B64(p.Modulus!), ["e"] = B64(p.Exponent!) };
    }

    private static JsonObject EcJwk(ECDsa ec, string kid)
    {
        var p = ec.ExportParameters(false);
        return new JsonObject { ["kty"] = "EC", ["crv"] = "P-256", ["use"] = "sig", ["kid"] = kid, ["x"] = B64(p.Q.X!), ["y"] = B64(p.Q.Y!) };
    }

    private JsonObject Claims(string ns = "ml-prod", string sa = "runner") => new()
    {
        ["iss"] = Issuer,
        ["aud"] = new JsonArray("attestbroker"),
        ["sub"] = $"system:serviceaccount:{ns}:{sa}",
        ["iat"] = Now.AddMinutes(-1).ToUnixTimeSeconds(),
        ["nbf"] = Now.AddMinutes(-1).ToUnixTimeSeconds(),
        ["exp"] = Now.AddMinutes(9).ToUnixTimeSeconds(),
        ["kubernetes.io"] = new JsonObject
        {
            ["namespace"] = ns,
            ["serviceaccount"] = new JsonObject { ["name"] = sa, ["uid"] = "sa-uid" },
            ["pod"] = new JsonObject { ["name"] = "llm-0", ["uid"] = "pod-uid" },
        },
    };

    private string Sign(JsonObject claims, string alg = "RS256", string kid = "rsa-1")
    {
        var input = B64(Encoding.UTF8.GetBytes(new JsonObject { ["alg"] = alg, ["kid"] = kid }.ToJsonString())) + "." + B64(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        var data = Encoding.ASCII.GetBytes(input);
        var sig = alg switch
        {
            "RS256" => _rsa.SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
            "ES256" => _ec.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
            _ => [],
        };
        return input + "." + B64(sig);
    }

    private OfflineTokenValidator Validator(OfflineTokenOptions? options = null) =>
        new(options ?? new OfflineTokenOptions { Issuer = Issuer }, time: _time);

    [Test]
    public async Task An_RS256_token_found_through_discovery_gives_namespace_service_account_and_pod()
    {
        using var validator = Validator();
        var result = await validator.ValidateAsync(Sign(Claims()), CancellationToken.None);

        Assert.That(result.IsValid, Is.True, result.ToString());
        Assert.That(result.Identity, Is.EqualTo(new RequesterIdentity("ml-prod", "runner", "llm-0", "pod-uid", "system:serviceaccount:ml-prod:runner")));
    }

    [Test]
    public async Task An_ES256_token_checked_against_a_JWKS_file_is_valid_without_fetching()
    {
        var file = Path.Combine(Path.GetTempPath(), $"jwks-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, _api.Jwks!.ToJsonString());
        try
        {
            using var validator = Validator(new OfflineTokenOptions { Issuer = Issuer, JwksFile = file });
            var result = await validator.ValidateAsync(Sign(Claims(), "ES256", "ec-1"), CancellationToken.None);

            Assert.That(result.IsValid, Is.True, result.ToString());
            Assert.That(_api.IssuerRequests, Is.Empty);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public async Task A_token_for_another_audience_is_refused()
    {
        var claims = Claims();
        claims["aud"] = new JsonArray("https://kubernetes.default.svc");
        using var validator = Validator();

        var result = await validator.ValidateAsync(Sign(claims), CancellationToken.None);

        Assert.That(result.Error, Is.EqualTo(IdentityErrors.AudienceMismatch));
    }

    [Test]
    public async Task An_expired_token_is_refused_past_the_skew_but_accepted_within_it()
    {
        var claims = Claims();
        claims["exp"] = Now.AddSeconds(-30).ToUnixTimeSeconds();
        using var validator = Validator();

        Assert.That((await validator.ValidateAsync(Sign(claims), CancellationToken.None)).IsValid, Is.True, "30 s late is within the 60 s skew");
        _time.Advance(TimeSpan.FromSeconds(31));
        Assert.That((await validator.ValidateAsync(Sign(claims), CancellationToken.None)).Error, Is.EqualTo(IdentityErrors.Expired));
    }

    [Test]
    public async Task A_token_not_yet_valid_is_refused()
    {
        var claims = Claims();
        claims["nbf"] = Now.AddMinutes(5).ToUnixTimeSeconds();
        using var validator = Validator();

        Assert.That((await validator.ValidateAsync(Sign(claims), CancellationToken.None)).Error, Is.EqualTo(IdentityErrors.NotYetValid));
    }

    [Test]
    public async Task A_token_of_another_issuer_is_refused()
    {
        var claims = Claims();
        claims["iss"] = "https://other.example";
        using var validator = Validator();

        Assert.That((await validator.ValidateAsync(Sign(claims), CancellationToken.None)).Error, Is.EqualTo(IdentityErrors.IssuerMismatch));
    }

    [Test]
    public async Task A_changed_payload_fails_the_signature()
    {
        var token = Sign(Claims());
        var parts = token.Split('.');
        var forged = parts[0] + "." + B64(Encoding.UTF8.GetBytes(Claims("ml-prod", "admin").ToJsonString())) + "." + parts[2];
        using var validator = Validator();

        Assert.That((await validator.ValidateAsync(forged, CancellationToken.None)).Error, Is.EqualTo(IdentityErrors.SignatureInvalid));
    }

    [Test]
    public async Task An_unsigned_token_is_refused_for_its_algorithm()
    {
        using var validator = Validator();
        Assert.That((await validator.ValidateAsync(Sign(Claims(), "none"), CancellationToken.None)).Error, Is.EqualTo(IdentityErrors.AlgorithmNotAllowed));
    }

    [Test]
    public async Task A_sub_that_disagrees_with_the_kubernetes_io_claim_is_refused()
    {
        var claims = Claims();
        claims["kubernetes.io"]!["namespace"] = "kube-system";
        using var validator = Validator();

        Assert.That((await validator.ValidateAsync(Sign(claims), CancellationToken.None)).Error, Is.EqualTo(IdentityErrors.ClaimsInvalid));
    }

    [Test]
    public async Task A_rotated_key_is_found_by_fetching_the_JWKS_again()
    {
        using var validator = Validator();
        Assert.That((await validator.ValidateAsync(Sign(Claims()), CancellationToken.None)).IsValid, Is.True);

        _rsa.ImportParameters(RotatedKey);
        _api.Jwks = new JsonObject { ["keys"] = new JsonArray(RsaJwk(_rsa, "rsa-2")) };
        _time.Advance(OfflineTokenValidator.MinimumRefreshInterval);

        var result = await validator.ValidateAsync(Sign(Claims(), kid: "rsa-2"), CancellationToken.None);
        Assert.That(result.IsValid, Is.True, result.ToString());
    }

    [Test]
    public async Task An_unreachable_issuer_is_unavailable_not_invalid()
    {
        _api.Discovery = null;
        using var validator = Validator();

        var result = await validator.ValidateAsync(Sign(Claims()), CancellationToken.None);

        Assert.That(result.Outcome, Is.EqualTo(IdentityOutcome.Unavailable));
        Assert.That(result.Error, Is.EqualTo(IdentityErrors.IssuerKeysUnavailable));
    }

    [Test]
    public async Task The_bearer_token_file_is_sent_to_the_issuer_endpoints()
    {
        var file = Path.Combine(Path.GetTempPath(), $"sa-token-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(file, "broker-own-token\n");
        try
        {
            using var validator = Validator(new OfflineTokenOptions { Issuer = Issuer, BearerTokenFile = file });
            await validator.ValidateAsync(Sign(Claims()), CancellationToken.None);

            Assert.That(_api.IssuerRequests, Has.All.EndsWith("Bearer broker-own-token"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public void A_non_loopback_http_issuer_is_refused_at_construction() =>
        Assert.That(() => new OfflineTokenValidator(new OfflineTokenOptions { Issuer = "http://kubernetes.example" }), Throws.ArgumentException);
}
