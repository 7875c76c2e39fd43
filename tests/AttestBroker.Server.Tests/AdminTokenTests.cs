using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Server.Admin;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

/// <summary>An OIDC issuer in memory: discovery document and JWKS, counting JWKS fetches; can fail or stall.</summary>
internal sealed class FakeOidcIssuer : HttpMessageHandler
{
    public const string Issuer = "https://idp.example";

    public List<JsonObject> Keys { get; } = [];

    public int JwksFetches { get; private set; }

    public bool Down { get; set; }

    public string DiscoveryIssuer { get; set; } = Issuer;

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (Down)
        {
            throw new HttpRequestException("connection refused");
        }

        var path = request.RequestUri!.AbsolutePath;
        string body;
        if (path == "/.well-known/openid-configuration")
        {
            body = new JsonObject { ["issuer"] = DiscoveryIssuer, ["jwks_uri"] = Issuer + "/keys" }.ToJsonString();
        }
        else if (path == "/keys")
        {
            JwksFetches++;
            body = new JsonObject { ["keys"] = new JsonArray([.. Keys.Select(k => (JsonNode?)k.DeepClone())]) }.ToJsonString();
        }
        else
        {
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound));
        }

        return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body, Encoding.UTF8, "application/json") });
    }

    public static JsonObject RsaJwk(RSA key, string kid)
    {
        var p = key.ExportParameters(false);
        return new JsonObject { ["kty"] = "RSA", ["kid"] = kid, ["use"] = "sig", ["alg"] = "RS256", ["n"] = RunningBroker.Base64UrlEncode(p.Modulus!), ["e"] = RunningBroker.Base64UrlEncode(p.Exponent!) };
    }

    public static JsonObject EcJwk(ECDsa key, string kid)
    {
        var p = key.ExportParameters(false);
        return new JsonObject { ["kty"] = "EC", ["crv"] = "P-256", ["kid"] = kid, ["x"] = RunningBroker.Base64UrlEncode(p.Q.X!), ["y"] = RunningBroker.Base64UrlEncode(p.Q.Y!) };
    }
}

[TestFixture]
public sealed class Admin_tokens_from_oidc_issuers_and_key_files_are_validated_strictly
{
    private static readonly DateTimeOffset Now = new(2026, 5, 1, 12, 0, 0, TimeSpan.Zero);

    private static string Sign(string alg, string? kid, JsonObject payload, Func<byte[], byte[]> sign)
    {
        var header = new JsonObject { ["alg"] = alg, ["typ"] = "JWT" };
        if (kid is not null)
        {
            header["kid"] = kid;
        }

        var input = RunningBroker.Base64UrlEncode(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." + RunningBroker.Base64UrlEncode(Encoding.UTF8.GetBytes(payload.ToJsonString()));
        return input + "." + RunningBroker.Base64UrlEncode(sign(Encoding.ASCII.GetBytes(input)));
    }

    private static string Rs256(RSA key, string? kid, JsonObject payload) =>
        Sign("RS256", kid, payload, b => key.SignData(b, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));

    private static JsonObject Claims(string issuer = FakeOidcIssuer.Issuer, JsonNode? aud = null) => new()
    {
        ["iss"] = issuer,
        ["sub"] = "oidc-user",
        ["aud"] = aud ?? new JsonArray("other-api", AdminTokens.DefaultAudience),
        ["exp"] = Now.AddMinutes(5).ToUnixTimeSeconds(),
        ["iat"] = Now.ToUnixTimeSeconds(),
        ["role"] = AdminRoles.PolicyAdmin,
    };

    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static Task<AdminPrincipal> ValidateAsync(string token, IAdminKeySource source, DateTimeOffset? at = null) =>
        AdminTokens.ValidateAsync(token, [source], AdminTokens.DefaultAudience, at ?? Now, TimeSpan.FromSeconds(60), CancellationToken.None);

    [Test]
    public async Task An_rs256_token_from_the_oidc_issuer_is_accepted_with_a_single_role_claim_and_an_audience_array()
    {
        using var rsa = RSA.Create(2048);
        using var idp = new FakeOidcIssuer();
        idp.Keys.Add(FakeOidcIssuer.RsaJwk(rsa, "k1"));
        using var source = new OidcKeySource(FakeOidcIssuer.Issuer, TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), new Clock(Now), idp);
        var principal = await ValidateAsync(Rs256(rsa, "k1", Claims()), source);
        Assert.That((principal.Subject, principal.Issuer, principal.Roles.Single()), Is.EqualTo(("oidc-user", FakeOidcIssuer.Issuer, AdminRoles.PolicyAdmin)));
    }

    [Test]
    public async Task Keys_are_cached_and_fetched_again_once_when_a_token_names_an_unknown_kid()
    {
        using var first = RSA.Create(2048);
        using var second = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var idp = new FakeOidcIssuer();
        idp.Keys.Add(FakeOidcIssuer.RsaJwk(first, "k1"));
        var clock = new Clock(Now);
        using var source = new OidcKeySource(FakeOidcIssuer.Issuer, TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), clock, idp);
        await ValidateAsync(Rs256(first, "k1", Claims()), source);
        await ValidateAsync(Rs256(first, "k1", Claims()), source);
        Assert.That(idp.JwksFetches, Is.EqualTo(1));

        // The issuer rotates to a new (EC) key; a token with its kid makes the broker fetch again.
        idp.Keys.Add(FakeOidcIssuer.EcJwk(second, "k2"));
        clock.Now = Now.AddSeconds(30);
        var es256 = Sign("ES256", "k2", Claims(), b => second.SignData(b, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
        var principal = await ValidateAsync(es256, source, clock.Now);
        Assert.That((principal.Subject, idp.JwksFetches), Is.EqualTo(("oidc-user", 2)));

        // A kid the issuer does not have: one more fetch at most, then UnknownKey.
        clock.Now = Now.AddSeconds(60);
        var ex = Assert.ThrowsAsync<AdminTokenException>(() => ValidateAsync(Rs256(first, "k9", Claims()), source, clock.Now));
        Assert.That((ex!.Error, idp.JwksFetches), Is.EqualTo((AdminTokenError.UnknownKey, 3)));
        Assert.ThrowsAsync<AdminTokenException>(() => ValidateAsync(Rs256(first, "k9", Claims()), source, clock.Now));
        Assert.That(idp.JwksFetches, Is.EqualTo(3), "refresh on unknown kid is rate-limited");
    }

    [Test]
    public void An_unreachable_issuer_or_a_discovery_document_for_another_issuer_is_signer_unavailable()
    {
        using var rsa = RSA.Create(2048);
        using var idp = new FakeOidcIssuer { Down = true };
        using var down = new OidcKeySource(FakeOidcIssuer.Issuer, TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), new Clock(Now), idp);
        Assert.That(Assert.ThrowsAsync<AdminTokenException>(() => ValidateAsync(Rs256(rsa, "k1", Claims()), down))!.Error, Is.EqualTo(AdminTokenError.SignerUnavailable));

        using var impostor = new FakeOidcIssuer { DiscoveryIssuer = "https://evil.example" };
        using var wrong = new OidcKeySource(FakeOidcIssuer.Issuer, TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), new Clock(Now), impostor);
        var ex = Assert.ThrowsAsync<AdminTokenException>(() => ValidateAsync(Rs256(rsa, "k1", Claims()), wrong));
        Assert.That((ex!.Error, ex.Message), Is.EqualTo((AdminTokenError.SignerUnavailable, "the OIDC discovery document's \"issuer\" does not equal the configured issuer")));
    }

    [Test]
    public void Alg_none_hs256_a_missing_exp_or_sub_and_a_future_nbf_are_refused_with_their_reason()
    {
        using var rsa = RSA.Create(2048);
        using var idp = new FakeOidcIssuer();
        idp.Keys.Add(FakeOidcIssuer.RsaJwk(rsa, "k1"));
        using var source = new OidcKeySource(FakeOidcIssuer.Issuer, TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), new Clock(Now), idp);

        AdminTokenError Refused(string token) => Assert.ThrowsAsync<AdminTokenException>(() => ValidateAsync(token, source))!.Error;

        Assert.That(Refused(Sign("none", "k1", Claims(), _ => [])), Is.EqualTo(AdminTokenError.UnsupportedAlgorithm));
        Assert.That(Refused(Sign("HS256", "k1", Claims(), b => HMACSHA256.HashData(Encoding.ASCII.GetBytes("k1"), b))), Is.EqualTo(AdminTokenError.UnsupportedAlgorithm));
        var noExp = Claims();
        noExp.Remove("exp");
        Assert.That(Refused(Rs256(rsa, "k1", noExp)), Is.EqualTo(AdminTokenError.MissingExpiry));
        var noSub = Claims();
        noSub.Remove("sub");
        Assert.That(Refused(Rs256(rsa, "k1", noSub)), Is.EqualTo(AdminTokenError.MissingSubject));
        var later = Claims();
        later["nbf"] = Now.AddMinutes(3).ToUnixTimeSeconds();
        Assert.That(Refused(Rs256(rsa, "k1", later)), Is.EqualTo(AdminTokenError.NotYetValid));
        Assert.That(Refused(Rs256(rsa, "k1", Claims(aud: "attestbroker"))), Is.EqualTo(AdminTokenError.WrongAudience));
        var badRoles = Claims();
        badRoles["roles"] = AdminRoles.KeyAdmin;
        Assert.That(Refused(Rs256(rsa, "k1", badRoles)), Is.EqualTo(AdminTokenError.RolesMalformed));
    }

    [Test]
    public async Task An_expired_token_is_accepted_within_the_clock_skew_and_refused_beyond_it()
    {
        using var rsa = RSA.Create(2048);
        using var idp = new FakeOidcIssuer();
        idp.Keys.Add(FakeOidcIssuer.RsaJwk(rsa, "k1"));
        using var source = new OidcKeySource(FakeOidcIssuer.Issuer, TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), new Clock(Now), idp);
        var token = Rs256(rsa, "k1", Claims());
        Assert.That((await ValidateAsync(token, source, Now.AddMinutes(5).AddSeconds(59))).Subject, Is.EqualTo("oidc-user"));
        Assert.That(Assert.ThrowsAsync<AdminTokenException>(() => ValidateAsync(token, source, Now.AddMinutes(6)))!.Error, Is.EqualTo(AdminTokenError.Expired));
    }

    [Test]
    public async Task Pem_key_files_sign_tokens_for_their_configured_issuer_and_small_rsa_keys_are_refused()
    {
        var dir = Directory.CreateTempSubdirectory("ab-admin-pem-").FullName;
        try
        {
            using var rsa = RSA.Create(3072);
            var pem = Path.Combine(dir, "signer.pem");
            await File.WriteAllTextAsync(pem, rsa.ExportSubjectPublicKeyInfoPem());
            using var source = new StaticAdminKeySource("https://ci.example", [AdminVerificationKey.FromPemFile(pem)]);
            var principal = await ValidateAsync(Rs256(rsa, null, Claims("https://ci.example")), source);
            Assert.That(principal.Issuer, Is.EqualTo("https://ci.example"));

            using var small = RSA.Create(1024);
            var smallPem = Path.Combine(dir, "small.pem");
            await File.WriteAllTextAsync(smallPem, small.ExportSubjectPublicKeyInfoPem());
            Assert.Throws<CryptographicException>(() => AdminVerificationKey.FromPemFile(smallPem));

            var privatePem = Path.Combine(dir, "private.pem");
            await File.WriteAllTextAsync(privatePem, rsa.ExportPkcs8PrivateKeyPem());
            Assert.That(Assert.Throws<CryptographicException>(() => AdminVerificationKey.FromPemFile(privatePem))!.Message, Does.Contain("private key"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void A_result_token_is_never_taken_for_an_admin_token()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var source = new StaticAdminKeySource(FakeOidcIssuer.Issuer, [AdminVerificationKey.FromEcdsa(ECDsa.Create(key.ExportParameters(false)))]);
        var input = RunningBroker.Base64UrlEncode(Encoding.UTF8.GetBytes("{\"alg\":\"ES256\",\"typ\":\"attest-result+jwt\"}")) + "." + RunningBroker.Base64UrlEncode(Encoding.UTF8.GetBytes(Claims().ToJsonString()));
        var token = input + "." + RunningBroker.Base64UrlEncode(key.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
        Assert.That(Assert.ThrowsAsync<AdminTokenException>(() => ValidateAsync(token, source))!.Error, Is.EqualTo(AdminTokenError.Malformed));
    }
}

