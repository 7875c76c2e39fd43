using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.HardwareSim.Faults;
using AttestBroker.Policy;
using AttestBroker.Protocol;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

internal static class Denials
{
    public static async Task<JsonObject> DeniedKeyAsync(TeeKind tee, SimFault? fault, string keyId)
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await Shared.AttestAsync(tee, Jwk.FromPublicKey(pod), fault, keyId);
        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.PolicyDenied)), body?.ToJsonString());
        Assert.That((string?)body!["type"], Is.EqualTo(ProblemCodes.TypePrefix + ProblemCodes.PolicyDenied));
        Assert.That(body["keys"], Is.Not.Null);
        Assert.That(body.ToJsonString(), Does.Not.Contain("\"jwe\""));
        return body["keys"]!.AsArray().Single(k => (string?)k!["key_id"] == keyId)!.AsObject();
    }

    public static List<(string? Code, string? Rule)> Failures(JsonObject key) =>
        key["failures"]!.AsArray().Select(f => ((string?)f!["code"], (string?)f["rule"])).ToList();
}

[TestFixture]
public sealed class Debug_td_is_denied_with_the_allowDebug_rule_listed
{
    [Test]
    public async Task Debug_tdx_evidence_is_denied_with_debug_not_allowed()
    {
        var key = await Denials.DeniedKeyAsync(TeeKind.Tdx, SimFault.Debug, Shared.TdxKey);
        Assert.That(Denials.Failures(key), Is.EqualTo(new[] { ((string?)PolicyCodes.DebugNotAllowed, (string?)"allowDebug") }));
    }
}

[TestFixture]
public sealed class Wrong_measurement_is_denied_with_the_measurement_rule_listed
{
    [Test]
    public async Task Tdx_evidence_whose_mrtd_is_not_pinned_is_denied_with_measurement_mismatch_on_tdx_mrTd()
    {
        var key = await Denials.DeniedKeyAsync(TeeKind.Tdx, null, Shared.WrongMrTdKey);
        Assert.That(Denials.Failures(key), Is.EqualTo(new[] { ((string?)PolicyCodes.MeasurementMismatch, (string?)"tdx.mrTd") }));
        Assert.That((long?)key["policy_version"], Is.EqualTo(1));
    }

    [Test]
    public async Task A_policy_with_explain_false_denies_without_listing_the_failing_rules()
    {
        var key = await Denials.DeniedKeyAsync(TeeKind.Tdx, null, Shared.HiddenKey);
        Assert.That((string?)key["decision"], Is.EqualTo("denied"));
        Assert.That(key["failures"], Is.Null);
    }

    [Test]
    public async Task One_denied_key_withholds_every_requested_key()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, Jwk.FromPublicKey(pod), null, Shared.TdxKey, Shared.WrongMrTdKey);
        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.PolicyDenied)));
        Assert.That(body!.ToJsonString(), Does.Not.Contain("\"jwe\""));
        Assert.That((string?)body["keys"]![0]!["decision"], Is.EqualTo("granted"));
    }
}

[TestFixture]
public sealed class Simulated_evidence_is_refused_unless_the_policy_opts_in
{
    [Test]
    public async Task Simulated_evidence_is_denied_with_simulated_not_allowed_when_the_policy_lacks_allowSimulated()
    {
        var key = await Denials.DeniedKeyAsync(TeeKind.Tdx, null, Shared.NoSimKey);
        Assert.That(Denials.Failures(key), Is.EqualTo(new[] { ((string?)PolicyCodes.SimulatedNotAllowed, (string?)"allowSimulated") }));
    }
}

[TestFixture]
public sealed class Keys_without_a_policy_or_disabled_are_not_released
{
    [Test]
    public async Task A_key_without_a_release_policy_is_denied_with_no_policy()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, Jwk.FromPublicKey(pod), null, Shared.NoPolicyKey);
        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.PolicyDenied)));
        Assert.That((string?)body!["keys"]![0]!["reason"], Is.EqualTo("no_policy"));
    }

    [Test]
    public async Task A_disabled_key_is_refused_with_key_disabled()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, Jwk.FromPublicKey(pod), null, Shared.DisabledKey);
        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.KeyDisabled)), body?.ToJsonString());
        Assert.That(body!.ToJsonString(), Does.Not.Contain("\"jwe\""));
    }
}

[TestFixture]
public sealed class Unknown_key_is_404
{
    [Test]
    public async Task Attested_request_for_a_key_id_that_does_not_exist_is_404_unknown_key()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (status, body) = await Shared.AttestAsync(TeeKind.Tdx, Jwk.FromPublicKey(pod), null, "no-such-key");
        Assert.That((status, Shared.Code(body)), Is.EqualTo((404, ProblemCodes.UnknownKey)));
        Assert.That((string?)body!["key_id"], Is.EqualTo("no-such-key"));
    }
}

[TestFixture]
public sealed class Evidence_bound_to_another_public_key_is_refused
{
    [Test]
    public async Task Evidence_whose_report_data_binds_another_key_is_403_report_data_binding_mismatch()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        using var attacker = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var (nonce, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var evidence = Shared.Env.Evidence(TeeKind.Tdx, nonce, Jwk.FromPublicKey(pod));
        var (status, body, _) = await Shared.Broker.PostAsync("/v1/attest", RunningBroker.AttestJson(challenge, evidence, Jwk.FromPublicKey(attacker), Shared.TdxKey));
        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.BindingMismatch)));
        Assert.That(body!.ToJsonString(), Does.Not.Contain("\"jwe\""));
    }

    [Test]
    public async Task Evidence_bound_to_another_nonce_is_403_report_data_binding_mismatch()
    {
        using var pod = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(pod);
        var (_, challenge) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var (otherNonce, _) = await Shared.Broker.ChallengeAsync(TeeKind.Tdx);
        var evidence = Shared.Env.Evidence(TeeKind.Tdx, otherNonce, jwk);
        var (status, body, _) = await Shared.Broker.PostAsync("/v1/attest", RunningBroker.AttestJson(challenge, evidence, jwk, Shared.TdxKey));
        Assert.That((status, Shared.Code(body)), Is.EqualTo((403, ProblemCodes.BindingMismatch)));
    }
}
