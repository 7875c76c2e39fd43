using System.Text.Json.Nodes;
using AttestBroker.Evidence;
using AttestBroker.Protocol;
using AttestBroker.Server.Tests;

namespace AttestBroker.Replicas.Tests;

/// <summary>Audit checks shared by the load and fault tests.</summary>
internal static class AuditAssert
{
    /// <summary>
    /// The chain verifies with no gap, and release rows match the decisions the pods saw: exactly (no faults) or at
    /// least (faults: a decision may be recorded and its response lost). No nonce appears in two grants.
    /// </summary>
    public static async Task DecisionsAsync(ReplicaCluster cluster, LoadResult result, bool exact)
    {
        var verification = await cluster.Db.Storage.Audit.VerifyAsync();
        Assert.That(verification.IsValid, Is.True, verification.FirstBreak?.Detail);
        var rows = await cluster.AuditRowsAsync();
        Assert.That(verification.LastSequence, Is.EqualTo(rows.Count), "sequences run 1..n without a gap");

        var releases = rows.Where(r => r.Row.Kind == "release").ToList();
        var grants = releases.Where(r => (string?)r.Event["decision"] == "granted").ToList();
        var denials = releases.Where(r => (string?)r.Event["decision"] == "denied").ToList();
        if (exact)
        {
            Assert.That(grants, Has.Count.EqualTo(result.Granted), "one granted row per grant a pod received");
            Assert.That(denials, Has.Count.EqualTo(result.Denied), "one denied row per denial a pod received");
            Assert.That(rows.Count(r => r.Row.Kind == "attestation"), Is.Zero, "no refused attestation (replay, bad challenge) in a clean run");
        }
        else
        {
            Assert.That(grants, Has.Count.GreaterThanOrEqualTo(result.Granted));
            Assert.That(denials, Has.Count.GreaterThanOrEqualTo(result.Denied));
        }

        var nonces = grants.Select(g => (string?)g.Event["details"]?["nonce_id"]).ToList();
        Assert.That(nonces, Has.None.Null, "every grant names its nonce");
        Assert.That(nonces.Distinct().Count(), Is.EqualTo(nonces.Count), "no nonce was granted twice");
    }
}

[TestFixture]
[NonParallelizable]
public sealed class Three_replicas_on_one_database_under_load
{
    [Test]
    public async Task Every_pod_gets_its_decision_with_exactly_one_audit_row_each_and_the_chain_verifies()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs);
        var pods = Assembly.Pods;

        var result = await LoadDriver.RunAsync(cluster, pods, Assembly.Concurrency);
        TestContext.Progress.WriteLine(result.Summary($"3 replicas, {Assembly.Concurrency} concurrent", pods));

        Assert.That(result.Unexpected, Is.Empty);
        Assert.That(result.Retries, Is.Zero, "no request needed a retry without faults");
        var expectedDenied = Enumerable.Range(0, pods).Count(p => LoadDriver.KindOf(p) == PodKind.TdxDenied);
        Assert.That(result.Denied, Is.EqualTo(expectedDenied));
        Assert.That(result.Granted, Is.EqualTo(pods - expectedDenied));
        await AuditAssert.DecisionsAsync(cluster, result, exact: true);
    }
}

[TestFixture]
[NonParallelizable]
public sealed class A_nonce_is_used_once_across_replicas
{
    [Test]
    public async Task The_same_attest_body_sent_to_all_three_replicas_at_once_is_granted_exactly_once()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs);
        for (var round = 0; round < 20; round++)
        {
            using var key = System.Security.Cryptography.ECDiffieHellman.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
            var jwk = Jwk.FromPublicKey(key);
            var challenge = (await cluster.Replicas[round % 3].ChallengeAsync(TeeKind.Tdx))!.Value;
            var body = RunningBroker.AttestJson(challenge.Challenge, Assembly.Env.Evidence(TeeKind.Tdx, challenge.Nonce, jwk), jwk, ReplicaCluster.GrantKey);

            var answers = await Task.WhenAll(cluster.Replicas.Select(r => r.PostAsync("/v1/attest", body)));

            Assert.That(answers.Count(a => a.Status == 200), Is.EqualTo(1), string.Join(" | ", answers.Select(a => $"{a.Status} {a.Body?.ToJsonString()}")));
            Assert.That(answers.Where(a => a.Status != 200).Select(a => (a.Status, (string?)a.Body?["code"])),
                Is.All.EqualTo((409, (string?)"nonce-already-used")));
        }

        var rows = await cluster.AuditRowsAsync();
        var grants = rows.Where(r => (string?)r.Event["decision"] == "granted").ToList();
        Assert.That(grants, Has.Count.EqualTo(20));
        Assert.That(grants.Select(g => (string?)g.Event["details"]?["nonce_id"]).Distinct().Count(), Is.EqualTo(20));
        Assert.That(rows.Count(r => r.Row.Kind == "attestation" && r.Event["reasons"]?[0]?.GetValue<string>() == "nonce-already-used"), Is.EqualTo(40), "each refused replay is audited");
        Assert.That((await cluster.Db.Storage.Audit.VerifyAsync()).IsValid, Is.True);
    }

    [Test]
    public async Task A_nonce_granted_on_one_replica_is_refused_by_every_other()
    {
        var cs = ReplicaCluster.RequirePostgres();
        await using var cluster = await ReplicaCluster.StartAsync(Assembly.Env, cs);
        using var key = System.Security.Cryptography.ECDiffieHellman.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var jwk = Jwk.FromPublicKey(key);
        var challenge = (await cluster.Replicas[0].ChallengeAsync(TeeKind.Tdx))!.Value;
        var body = RunningBroker.AttestJson(challenge.Challenge, Assembly.Env.Evidence(TeeKind.Tdx, challenge.Nonce, jwk), jwk, ReplicaCluster.GrantKey);

        var first = await cluster.Replicas[1].PostAsync("/v1/attest", body);
        Assert.That(first.Status, Is.EqualTo(200), "a challenge from replica 0 is accepted by replica 1 (shared MAC secret)");
        foreach (var r in cluster.Replicas)
        {
            var again = await r.PostAsync("/v1/attest", body);
            Assert.That((again.Status, (string?)again.Body?["code"]), Is.EqualTo((409, (string?)"nonce-already-used")), $"replica {r.Index}");
        }
    }
}
