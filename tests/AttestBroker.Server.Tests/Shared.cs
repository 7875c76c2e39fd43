using System.Security.Cryptography;
using System.Text;
using AttestBroker.Evidence;
using NUnit.Framework;

namespace AttestBroker.Server.Tests;

/// <summary>One simulated environment and one broker for the whole assembly (making PKI and collateral is the slow part).</summary>
[SetUpFixture]
public sealed class Shared
{
    public const string TdxKey = "model-tdx";
    public const string SnpKey = "model-snp";
    public const string NoSimKey = "model-nosim";
    public const string WrongMrTdKey = "model-wrong-mrtd";
    public const string HiddenKey = "model-hidden";
    public const string NoPolicyKey = "model-nopolicy";
    public const string DisabledKey = "model-disabled";
    public const string OtherMrTd = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    internal static BrokerTestEnvironment Env { get; private set; } = null!;

    internal static RunningBroker Broker { get; private set; } = null!;

    /// <summary>The deterministic key bytes imported under an id (so tests can compare what the JWE carries).</summary>
    internal static byte[] KeyBytes(string keyId) => SHA256.HashData(Encoding.UTF8.GetBytes("test key " + keyId));

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        Env = await BrokerTestEnvironment.CreateAsync();
        Broker = await RunningBroker.StartAsync(Env, async data =>
        {
            var now = BrokerTestEnvironment.Issued;
            foreach (var id in new[] { TdxKey, SnpKey, NoSimKey, WrongMrTdKey, HiddenKey, NoPolicyKey, DisabledKey })
            {
                await data.Keys.ImportAsync(id, KeyBytes(id));
            }

            await data.SetPolicyAsync(TdxKey, Env.TdxPolicy("tdx-sim"), "test", now);
            await data.SetPolicyAsync(SnpKey, Env.SnpPolicy("snp-sim"), "test", now);
            await data.SetPolicyAsync(NoSimKey, Env.TdxPolicy("tdx-nosim", allowSimulated: false), "test", now);
            await data.SetPolicyAsync(WrongMrTdKey, Env.TdxPolicy("tdx-other", mrTd: OtherMrTd), "test", now);
            await data.SetPolicyAsync(HiddenKey, Env.TdxPolicy("tdx-hidden", mrTd: OtherMrTd, explain: false), "test", now);
            await data.SetPolicyAsync(DisabledKey, Env.TdxPolicy("tdx-disabled"), "test", now);
            await data.Keys.DisableAsync(DisabledKey);
        });
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        await Broker.DisposeAsync();
        await Env.DisposeAsync();
    }

    /// <summary>Challenge, evidence bound to the nonce and <paramref name="publicKey"/>, attest for the keys.</summary>
    internal static async Task<(int Status, System.Text.Json.Nodes.JsonNode? Body)> AttestAsync(TeeKind tee, Protocol.Jwk publicKey, HardwareSim.Faults.SimFault? fault = null, params string[] keyIds)
    {
        var (nonce, challenge) = await Broker.ChallengeAsync(tee);
        var evidence = Env.Evidence(tee, nonce, publicKey, fault);
        var (status, body, _) = await Broker.PostAsync("/v1/attest", RunningBroker.AttestJson(challenge, evidence, publicKey, keyIds));
        return (status, body);
    }

    internal static string Code(System.Text.Json.Nodes.JsonNode? problem) => (string?)problem?["code"] ?? "<none>";
}
