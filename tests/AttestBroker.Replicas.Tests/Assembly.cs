using AttestBroker.Server.Tests;

namespace AttestBroker.Replicas.Tests;

/// <summary>One simulated PKI and collateral for the whole assembly (making them is the slow part).</summary>
[SetUpFixture]
public sealed class Assembly
{
    /// <summary>Pods in the load test; ATTESTBROKER_REPLICA_PODS sets it (10000 for the full run of issue 8).</summary>
    public const string PodsVariable = "ATTESTBROKER_REPLICA_PODS";

    internal static BrokerTestEnvironment Env { get; private set; } = null!;

    /// <summary>Pods per run: 400 by default (a few minutes on 2 cores for the whole suite), or the variable's value.</summary>
    internal static int Pods => int.TryParse(Environment.GetEnvironmentVariable(PodsVariable), out var n) && n > 0 ? n : 400;

    /// <summary>Pods per fault run: half the load size, at least 100.</summary>
    internal static int FaultPods => Math.Max(100, Pods / 2);

    internal const int Concurrency = 64;

    [OneTimeSetUp]
    public async Task StartAsync() => Env = await BrokerTestEnvironment.CreateAsync();

    [OneTimeTearDown]
    public async Task StopAsync() => await Env.DisposeAsync();
}
