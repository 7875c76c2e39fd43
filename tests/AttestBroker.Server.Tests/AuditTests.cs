using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Policy;
using AttestBroker.Protocol;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

[TestFixture]
public sealed class Every_decision_is_audited_in_a_verifiable_chain
{
    private static async Task<List<JsonObject>> NewRowsAsync(long after)
    {
        var rows = await Shared.Broker.Host.Data.Storage.Audit.ReadAsync(after + 1, 1000);
        return rows.Select(r => JsonNode.Parse(r.EventJson)!.AsObject()).ToList();
    }

    private static async Task<long> LastAsync() => (await Shared.Broker.Host.Data.Storage.Audit.GetLastAsync())?.Sequence ?? 0;

    [Test]
    public async Task A_grant_and_a_denial_each_append_one_release_row_without_key_material_and_the_chain_verifies()
    {
        var before = await LastAsync();
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (granted, grantedBody) = await Shared.AttestAsync(TeeKind.Tdx, jwk, null, Shared.TdxKey);
        var (denied, _) = await Shared.AttestAsync(TeeKind.Tdx, jwk, null, Shared.WrongMrTdKey);
        Assert.That((granted, denied), Is.EqualTo((200, 403)));

        var rows = await NewRowsAsync(before);
        var text = string.Join("\n", rows.Select(r => r.ToJsonString()));
        Assert.That(rows.Select(r => ((string?)r["kind"], (string?)r["decision"], (string?)r["key_id"])), Is.EqualTo(new[]
        {
            ("release", "granted", Shared.TdxKey),
            ("release", "denied", Shared.WrongMrTdKey),
        }));
        Assert.That(text, Does.Contain(PolicyCodes.MeasurementMismatch));
        Assert.That(text, Does.Contain("sha256:"));
        Assert.That(text, Does.Contain(jwk.Thumbprint()));
        Assert.That(text, Does.Not.Contain((string)grantedBody!["keys"]![0]!["jwe"]!));
        Assert.That(text, Does.Not.Contain(Convert.ToHexStringLower(Shared.KeyBytes(Shared.TdxKey))));
        Assert.That(text, Does.Not.Contain(Convert.ToBase64String(Shared.KeyBytes(Shared.TdxKey))));
        Assert.That(rows.All(r => r["policy_version"] is not null && r["evidence_digest"] is not null && r["claims_digest"] is not null), Is.True, text);

        var verification = await Shared.Broker.Host.Data.Storage.Audit.VerifyAsync();
        Assert.That(verification.IsValid, Is.True, verification.FirstBreak?.Detail);
    }

    [Test]
    public async Task A_replayed_nonce_appends_a_denied_attestation_row_with_its_reason()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (nonce, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var json = RunningBroker.AttestJson(challenge, Shared.Env.Evidence(TeeKind.Tdx, nonce, jwk), jwk, Shared.TdxKey);
        await Shared.Broker.PostAsync("/v1/attest", json);
        var before = await LastAsync();
        await Shared.Broker.PostAsync("/v1/attest", json);
        var rows = await NewRowsAsync(before);
        Assert.That(rows, Has.Count.EqualTo(1));
        Assert.That(((string?)rows[0]["kind"], (string?)rows[0]["decision"], rows[0]["reasons"]!.AsArray().Select(r => (string?)r).ToList()),
            Is.EqualTo(("attestation", "denied", new List<string?> { ProblemCodes.NonceUsed })));
    }
}
