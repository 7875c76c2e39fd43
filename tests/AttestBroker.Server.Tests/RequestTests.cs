using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Protocol;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

[TestFixture]
public sealed class Malformed_requests_are_400_problem_json
{
    [TestCase("{", ProblemCodes.MalformedRequest)]
    [TestCase("[]", ProblemCodes.MalformedRequest)]
    [TestCase("{\"challenge\":\"x\"}", ProblemCodes.MalformedRequest)]
    [TestCase("{\"challenge\":1,\"evidence\":\"AA\",\"public_key\":{},\"key_ids\":[\"a\"]}", ProblemCodes.MalformedRequest)]
    [TestCase("{\"unknown\":true}", ProblemCodes.MalformedRequest)]
    public async Task Bad_json_shapes_on_attest_are_400_with_their_code(string json, string code)
    {
        var (status, body, type) = await Shared.Broker.PostAsync("/v1/attest", json);
        Assert.That((status, Shared.Code(body), type), Is.EqualTo((400, code, "application/problem+json")));
        Assert.That((string?)body!["type"], Is.EqualTo(ProblemCodes.TypePrefix + code));
        Assert.That(body.ToJsonString(), Does.Not.Contain(" at "));
    }

    [Test]
    public async Task Challenge_for_an_unknown_tee_is_400_malformed_request()
    {
        var (status, body, _) = await Shared.Broker.PostAsync("/v1/challenge", "{\"tee\":\"sgx\"}");
        Assert.That((status, Shared.Code(body)), Is.EqualTo((400, ProblemCodes.MalformedRequest)));
    }

    [Test]
    public async Task A_public_key_with_a_private_member_is_400_invalid_public_key()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (_, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var jwk = JsonNode.Parse(Jwk.FromPublicKey(pod).ToJson())!.AsObject();
        jwk["d"] = RunningBroker.Base64UrlEncode(pod.ExportParameters(true).D!);
        var json = new JsonObject { ["challenge"] = challenge, ["evidence"] = "AAAA", ["public_key"] = jwk, ["key_ids"] = new JsonArray("k") }.ToJsonString();
        var (status, body, _) = await Shared.Broker.PostAsync("/v1/attest", json);
        Assert.That((status, Shared.Code(body), (string?)body!["error"]), Is.EqualTo((400, ProblemCodes.InvalidPublicKey, nameof(ProtocolError.JwkContainsPrivateMembers))));
        Assert.That(body.ToJsonString(), Does.Not.Contain((string)jwk["d"]!));
    }

    [Test]
    public async Task An_RSA_2048_public_key_is_400_invalid_public_key()
    {
        using var rsa = RSA.Create(2048);
        var p = rsa.ExportParameters(false);
        var jwk = new JsonObject { ["kty"] = "RSA", ["n"] = RunningBroker.Base64UrlEncode(p.Modulus!), ["e"] = RunningBroker.Base64UrlEncode(p.Exponent!) };
        var (_, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var json = new JsonObject { ["challenge"] = challenge, ["evidence"] = "AAAA", ["public_key"] = jwk, ["key_ids"] = new JsonArray("k") }.ToJsonString();
        var (status, body, _) = await Shared.Broker.PostAsync("/v1/attest", json);
        Assert.That((status, Shared.Code(body), (string?)body!["error"]), Is.EqualTo((400, ProblemCodes.InvalidPublicKey, nameof(ProtocolError.JwkRsaModulusTooShort))));
    }

    [Test]
    public async Task Evidence_that_is_not_a_quote_is_400_malformed_evidence()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (_, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var (status, body, _) = await Shared.Broker.PostAsync("/v1/attest", RunningBroker.AttestJson(challenge, new byte[100], jwk, Shared.TdxKey));
        Assert.That((status, Shared.Code(body)), Is.EqualTo((400, ProblemCodes.MalformedEvidence)));
    }

    [Test]
    public async Task A_body_that_is_not_json_media_type_is_415()
    {
        using var content = new StringContent("{\"tee\":\"tdx\"}", Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        using var response = await Shared.Broker.Client.PostAsync(new Uri("/v1/challenge", UriKind.Relative), content);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync());
        Assert.That(((int)response.StatusCode, Shared.Code(body)), Is.EqualTo((415, ProblemCodes.UnsupportedMediaType)));
    }
}

[TestFixture]
public sealed class Oversized_body_is_413
{
    [Test]
    public async Task A_body_over_the_limit_is_413_body_too_large()
    {
        var json = "{\"challenge\":\"" + new string('A', 300 * 1024) + "\"}";
        var (status, body, _) = await Shared.Broker.PostAsync("/v1/attest", json);
        Assert.That((status, Shared.Code(body)), Is.EqualTo((413, ProblemCodes.BodyTooLarge)));
    }

    [Test]
    public async Task A_chunked_body_over_the_limit_is_413_body_too_large()
    {
        var bytes = Encoding.UTF8.GetBytes("{\"challenge\":\"" + new string('A', 300 * 1024) + "\"}");
        using var content = new StreamContent(new MemoryStream(bytes));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/attest", UriKind.Relative)) { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var response = await Shared.Broker.Client.SendAsync(request);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync());
        Assert.That(((int)response.StatusCode, Shared.Code(body)), Is.EqualTo((413, ProblemCodes.BodyTooLarge)));
    }
}
