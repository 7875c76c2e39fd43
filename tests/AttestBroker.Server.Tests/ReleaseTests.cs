using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Protocol;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

[TestFixture]
public sealed class Attested_simulated_workload_gets_its_key_as_a_JWE_and_a_bound_result_token
{
    [Test]
    public async Task Tdx_evidence_bound_to_a_P256_key_gets_the_key_bytes_and_a_token_that_verifies_against_the_published_JWKS()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, jwk, null, Shared.TdxKey);
        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());

        var keys = body!["keys"]!.AsArray();
        Assert.That(keys, Has.Count.EqualTo(1));
        Assert.That((string?)keys[0]!["key_id"], Is.EqualTo(Shared.TdxKey));
        var released = JweDecryptor.Decrypt((string)keys[0]!["jwe"]!, pod, out var kid);
        Assert.That(released, Is.EqualTo(Shared.KeyBytes(Shared.TdxKey)));
        Assert.That(kid, Is.EqualTo(Shared.TdxKey));
        Assert.That((bool?)body["simulated"], Is.True);

        using var response = await Shared.Broker.Client.GetAsync(new Uri("/.well-known/jwks.json", UriKind.Relative));
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/jwk-set+json"));
        var jwks = Jwks.Parse(await response.Content.ReadAsStringAsync());
        var claims = ResultToken.Verify((string)body["token"]!, jwks, "https://broker.test", jwk, Shared.Broker.Time.GetUtcNow());
        Assert.That(claims.ConfirmationThumbprint, Is.EqualTo(jwk.Thumbprint()));
        Assert.That(claims.Expires - claims.IssuedAt, Is.EqualTo(TimeSpan.FromMinutes(5)));
        Assert.That((string?)claims.Claims["mr_td"], Is.EqualTo((string?)Shared.Env.CleanClaims[TeeKind.Tdx]["mr_td"]));
    }

    [Test]
    public async Task Snp_evidence_bound_to_a_P384_key_gets_the_key_bytes()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP384);
        var jwk = Jwk.FromPublicKey(pod);
        var (status, body) = await Shared.AttestAsync(TeeKind.SevSnp, jwk, null, Shared.SnpKey);
        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
        Assert.That(JweDecryptor.Decrypt((string)body!["keys"]![0]!["jwe"]!, pod), Is.EqualTo(Shared.KeyBytes(Shared.SnpKey)));
    }

    [Test]
    public async Task Tdx_evidence_bound_to_an_RSA_3072_key_gets_the_key_bytes()
    {
        using var pod = RSA.Create(3072);
        var jwk = Jwk.FromPublicKey(pod);
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, jwk, null, Shared.TdxKey);
        Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
        Assert.That(JweDecryptor.Decrypt((string)body!["keys"]![0]!["jwe"]!, pod), Is.EqualTo(Shared.KeyBytes(Shared.TdxKey)));
    }

    [Test]
    public async Task The_token_does_not_verify_for_another_public_key()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, Jwk.FromPublicKey(pod), null, Shared.TdxKey);
        Assert.That(status, Is.EqualTo(200));
        var jwks = Jwks.Parse(Shared.Broker.Host.App.Services.GetService(typeof(TokenSigner)) is TokenSigner s ? s.JwksJson : "{}");
        var ex = Assert.Throws<ProtocolException>(() => ResultToken.Verify((string)body!["token"]!, jwks, "https://broker.test", Jwk.FromPublicKey(other), Shared.Broker.Time.GetUtcNow()));
        Assert.That(ex!.Error, Is.EqualTo(ProtocolError.TokenConfirmationMismatch));
    }
}
