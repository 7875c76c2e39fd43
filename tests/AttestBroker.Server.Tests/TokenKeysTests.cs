using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Protocol;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

[TestFixture]
public sealed class Result_token_gets_further_keys_for_the_same_public_key
{
    private static async Task<(int Status, JsonNode? Body)> KeysAsync(string? token, Jwk publicKey, params string[] keyIds)
    {
        var json = new JsonObject { ["public_key"] = JsonNode.Parse(publicKey.ToJson()), ["key_ids"] = new JsonArray(keyIds.Select(k => (JsonNode?)k).ToArray()) }.ToJsonString();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/keys", UriKind.Relative)) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using var response = await Shared.Broker.Client.SendAsync(request);
        return ((int)response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync()));
    }

    private static async Task<(ECDiffieHellman Pod, Jwk Jwk, string Token)> AttestedPodAsync()
    {
        var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, jwk, null, Shared.TdxKey);
        Assert.That(status, Is.EqualTo(200));
        return (pod, jwk, (string)body!["token"]!);
    }

    [Test]
    public async Task The_token_with_the_same_public_key_gets_another_granted_key_and_no_new_token()
    {
        var (pod, jwk, token) = await AttestedPodAsync();
        using (pod)
        {
            var (status, body) = await KeysAsync(token, jwk, Shared.TdxKey);
            Assert.That(status, Is.EqualTo(200), body?.ToJsonString());
            Assert.That(JweDecryptor.Decrypt((string)body!["keys"]![0]!["jwe"]!, pod), Is.EqualTo(Shared.KeyBytes(Shared.TdxKey)));
            Assert.That(body["token"], Is.Null);
        }
    }

    [Test]
    public async Task The_token_is_still_appraised_by_each_key_policy_and_a_wrong_measurement_is_denied()
    {
        var (pod, jwk, token) = await AttestedPodAsync();
        using (pod)
        {
            var (status, body) = await KeysAsync(token, jwk, Shared.WrongMrTdKey);
            Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.PolicyDenied)));
        }
    }

    [Test]
    public async Task Without_a_token_the_request_is_401_token_missing()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await KeysAsync(null, Jwk.FromPublicKey(pod), Shared.TdxKey);
        Assert.That((status, Shared.Code(body)), Is.EqualTo((401, ProblemCodes.TokenMissing)));
    }

    [Test]
    public async Task The_token_presented_with_another_public_key_is_401_token_invalid_confirmation_mismatch()
    {
        var (pod, _, token) = await AttestedPodAsync();
        using (pod)
        {
            using var other = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
            var (status, body) = await KeysAsync(token, Jwk.FromPublicKey(other), Shared.TdxKey);
            Assert.That((status, Shared.Code(body), (string?)body!["error"]), Is.EqualTo((401, ProblemCodes.TokenInvalid, nameof(ProtocolError.TokenConfirmationMismatch))));
        }
    }

    [Test]
    public async Task A_token_with_a_flipped_signature_bit_is_401_token_invalid_signature()
    {
        var (pod, jwk, token) = await AttestedPodAsync();
        using (pod)
        {
            var parts = token.Split('.');
            var sig = RunningBroker.Base64UrlDecode(parts[2]);
            sig[5] ^= 0x01;
            var (status, body) = await KeysAsync(parts[0] + "." + parts[1] + "." + RunningBroker.Base64UrlEncode(sig), jwk, Shared.TdxKey);
            Assert.That((status, Shared.Code(body), (string?)body!["error"]), Is.EqualTo((401, ProblemCodes.TokenInvalid, nameof(ProtocolError.TokenSignatureInvalid))));
            var last = await Shared.Broker.Host.Data.Storage.Audit.GetLastAsync();
            var row = JsonNode.Parse(last!.EventJson)!;
            Assert.That(((string?)row["kind"], (string?)row["decision"], (string?)row["reasons"]![0], (string?)row["details"]!["error"]),
                Is.EqualTo(("attestation", "denied", ProblemCodes.TokenInvalid, nameof(ProtocolError.TokenSignatureInvalid))));
        }
    }

    [Test]
    public async Task An_expired_token_is_401_token_invalid_expired()
    {
        var (pod, jwk, token) = await AttestedPodAsync();
        using (pod)
        {
            Shared.Broker.Time.Advance(TimeSpan.FromMinutes(6));
            var (status, body) = await KeysAsync(token, jwk, Shared.TdxKey);
            Assert.That((status, Shared.Code(body), (string?)body!["error"]), Is.EqualTo((401, ProblemCodes.TokenInvalid, nameof(ProtocolError.TokenExpired))));
        }
    }
}
